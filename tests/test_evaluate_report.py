"""Tests of what ``v0lite evaluate`` says about its within-policy AUC: the groups it leaves out, why it is
undefined, and the prior baseline that cannot rank within a policy (v0lite.commands.core)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from v0lite.cli import main
from v0lite.commands.core import within_report
from v0lite.log import write_log
from v0lite.metrics import within_policy_auc


def _log(scores: dict[str, list[float]], n_prompts: int, prefix: str) -> pl.DataFrame:
    """Every policy on every prompt, step ``j % 3``; ``scores[policy]`` cycles over the prompts."""
    rows = [
        {"policy": pol, "prompt": f"{prefix} case {j}", "score": s[j % len(s)], "step": j % 3}
        for pol, s in scores.items()
        for j in range(n_prompts)
    ]
    return pl.DataFrame(rows)


@pytest.fixture
def hist(tmp_path):
    mixed = {"pol0": [0.0, 1.0, 0.25, 0.75], "pol1": [1.0, 0.0, 0.5], "pol2": [1.0, 0.75, 0.0, 1.0]}
    return write_log(_log(mixed, 24, "add the numbers"), tmp_path / "h.jsonl")


def _evaluate(tmp_path, hist, queries: pl.DataFrame, capsys) -> tuple[dict, list[str]]:
    q = write_log(queries, tmp_path / "q.jsonl")
    capsys.readouterr()
    argv = ["evaluate", str(hist), str(q), "--head", "knn", "-q", "--force", "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0
    return json.loads((tmp_path / "r.json").read_text()), capsys.readouterr().out.splitlines()


def test_evaluate_says_which_one_class_groups_its_within_policy_auc_leaves_out(tmp_path, hist, fake_minilm, capsys):
    """Issue: within-policy AUC averaged over the (policy, step) groups with both classes and skipped the
    others (every row on one side of 0.5) without a word; 48 of 192 rows could drop out unseen."""
    # 12 query prompts: pol2 succeeds on all of them, so its 3 (policy, step) groups hold one class
    queries = _log({"pol0": [0.0, 1.0], "pol1": [1.0, 0.0, 0.0, 1.0], "pol2": [1.0]}, 12, "sort the list")
    res, out = _evaluate(tmp_path, hist, queries, capsys)
    assert res["within_policy_auc_groups"] == {"used": 6, "skipped": 3, "rows_used": 24}
    assert res["within_policy_auc_reason"] is None and res["within_policy_auc"] is not None
    line = (
        "within_policy_auc leaves out 3 of 9 (policy, step) groups (12 of 36 rows), where every row is on one "
        "side of score 0.5 (no pair to rank): (pol2, 0) (all 4 rows succeed), (pol2, 1) (all 4 rows succeed), "
        "(pol2, 2) (all 4 rows succeed)"
    )
    assert out[3] == line  # right under the table and its legend
    # the prior baseline ranks nothing within a (policy, step): said as a fact, not flagged as a finding
    prior = res["baselines"]["prior"]
    assert prior["chance"] is False and prior["ranks_within"] is False
    assert (
        "baseline prior: within-policy AUC 0.5000 (its predictions do not rank prompts within a policy: 0.5 by "
        "construction)" in out
    )
    assert not any("prior: within-policy AUC" in s and "no better than chance" in s for s in out)
    # a complete log: nothing left out, nothing said
    full = _log({"pol0": [0.0, 1.0], "pol1": [1.0, 0.0, 0.0, 1.0], "pol2": [1.0, 0.0]}, 12, "sort the list")
    res, out = _evaluate(tmp_path, hist, full, capsys)
    assert res["within_policy_auc_groups"] == {"used": 9, "skipped": 0, "rows_used": 36}
    assert not any("leaves out" in s or "within_policy_auc nan" in s for s in out)


def test_evaluate_says_why_within_policy_auc_is_undefined(tmp_path, hist, fake_minilm, capsys):
    """Issue: when no (policy, step) group had both classes the table printed ``nan`` and every baseline's
    d_within_policy_auc ``-`` with no reason, and the JSON held a bare null."""
    queries = _log({"pol0": [0.0], "pol1": [0.25], "pol2": [1.0]}, 12, "sort the list")
    res, out = _evaluate(tmp_path, hist, queries, capsys)
    reason = "no (policy, step) group holds both a success (score >= 0.5) and a failure, so no pair to rank"
    assert res["within_policy_auc"] is None and res["within_policy_auc_reason"] == reason
    assert res["within_policy_auc_groups"] == {"used": 0, "skipped": 9, "rows_used": 0}
    assert out[3] == (
        f"within_policy_auc nan: {reason}: (pol0, 0) (all 4 rows fail), (pol0, 1) (all 4 rows fail), "
        "(pol0, 2) (all 4 rows fail) and 6 more. Fix: score queries a policy both passes and fails."
    )
    assert all(r["diff"]["within_policy_auc"]["estimate"] is None for r in res["baselines"].values())
    assert f"d_within_policy_auc '-': within-policy AUC is undefined ({reason})" in out
    assert res["auc"] is not None and res["brier"] is not None  # the other metrics are untouched


def test_within_report_groups_by_policy_where_the_log_has_no_step():
    q = pl.DataFrame({"policy": ["a", "a", "b", "b", "c"], "prompt": list("vwxyz"), "score": [0.0, 1.0, 1.0, 1.0, 0.0]})
    p = [0.2, 0.7, 0.5, 0.4, 0.3]
    groups, reason, line = within_report(q, p)
    assert groups == {"used": 1, "skipped": 2, "rows_used": 2} and reason is None
    assert line.startswith("within_policy_auc leaves out 2 of 3 policy groups (3 of 5 rows)")
    assert line.endswith(": b (all 2 rows succeed), c (all 1 rows fail)")
    assert within_policy_auc(q["score"], p, q["policy"]) == 1.0


def test_evaluate_judges_the_head_by_the_baselines_chance_rule(tmp_path, hist, fake_minilm, capsys):
    """Probe FE1: the same constant predictions got opposite verdicts: ``--head prior`` printed "prior: ... no
    better than chance" (JSON chance true) beside "baseline prior: ... 0.5 by construction" (chance false); the
    same for ``--fallback global_mean`` answering every query. One rule (baselines.no_better_than_chance with
    ranks_within) for both, and the fact worded to read right for every name."""
    queries = _log({"pol0": [0.0, 1.0], "pol1": [1.0, 0.0, 0.0, 1.0], "pol2": [1.0, 0.0]}, 12, "sort the list")
    q = write_log(queries, tmp_path / "q.jsonl")
    argv = ["evaluate", str(hist), str(q), "--head", "prior", "-q", "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0
    res, out = json.loads((tmp_path / "r.json").read_text()), capsys.readouterr().out.splitlines()
    prior = res["baselines"]["prior"]
    assert (res["chance"], res["ranks_within"]) == (prior["chance"], prior["ranks_within"]) == (False, False)
    fact = "within-policy AUC 0.5000 (its predictions do not rank prompts within a policy: 0.5 by construction)"
    assert f"prior: {fact}" in out and f"baseline prior: {fact}" in out
    assert not any("no better than chance" in line and "prior" in line for line in out)
    # every query of a policy with no history: --fallback global_mean answers each with one constant
    ghost = write_log(_log({"ghost": [0.0, 1.0, 0.25, 0.75]}, 12, "sort the list"), tmp_path / "g.jsonl")
    argv = ["evaluate", str(hist), str(ghost), "--head", "knn", "--fallback", "global_mean", "-q", "--force"]
    assert main([*argv, "--json", str(tmp_path / "r.json")]) == 0
    res, printed = json.loads((tmp_path / "r.json").read_text()), capsys.readouterr()
    assert res["chance"] is False and res["ranks_within"] is False
    assert all(r["chance"] == (r["ranks_within"] and r["within_policy_auc"] <= 0.5) for r in res["baselines"].values())
    assert f"knn: {fact}" in printed.out.splitlines()
    assert "the knn" not in printed.out and "the prior" not in printed.out  # no article before a label


def test_evaluate_says_how_many_rows_the_fallback_answered(tmp_path, hist, fake_minilm, capsys):
    """Probe FE3: ``evaluate --fallback global_mean`` did not say how many query rows the fallback answered,
    where predict does; the same note now, and the count in the JSON (0 when the fallback answered none)."""
    mixed = pl.concat(
        [
            _log({"pol0": [0.0, 1.0]}, 12, "sort the list"),
            _log({"ghost": [1.0, 0.0, 0.5]}, 5, "sort the list"),
        ]
    )
    q = write_log(mixed, tmp_path / "q.jsonl")
    base = ["evaluate", str(hist), str(q), "--head", "knn", "--no-baselines", "--json", str(tmp_path / "r.json")]
    assert main([*base, "--fallback", "global_mean"]) == 0
    err = capsys.readouterr().err
    assert (
        "v0lite evaluate: note: 5 of 17 rows name a policy with no history: answered by --fallback global_mean" in err
    )
    assert json.loads((tmp_path / "r.json").read_text())["fallback_rows"] == 5
    known = write_log(_log({"pol0": [0.0, 1.0]}, 12, "sort the list"), tmp_path / "k.jsonl")
    assert main([*base[:2], str(known), *base[3:], "--force"]) == 0
    assert "no history" not in capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["fallback_rows"] == 0


def test_evaluate_with_the_auto_head_says_which_member_it_served(tmp_path, hist, fake_minilm, capsys):
    """Probe FE4: ``evaluate`` with the default auto head never said which member made its predictions, where
    ``fit`` prints it ("chosen: ..."); a 'served' column and JSON field now, the one fit reports."""
    q = write_log(
        _log({"pol0": [0.0, 1.0], "pol1": [1.0, 0.0, 0.5], "pol2": [1.0, 0.0]}, 12, "sort it"), tmp_path / "q.jsonl"
    )
    assert main(["fit", str(hist), "--model-dir", str(tmp_path / "m"), "-q"]) == 0
    chosen = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("chosen: "))
    argv = ["evaluate", str(hist), str(q), "--no-baselines", "-q", "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0
    res, out = json.loads((tmp_path / "r.json").read_text()), capsys.readouterr().out.splitlines()
    assert res["head"] == "auto" and chosen.startswith(f"chosen: {res['served']} (")
    assert out[0].split()[:2] == ["head", "served"] and out[1].split()[:2] == ["auto", res["served"]]
    assert "served_from" in res
    argv = ["evaluate", str(hist), str(q), "--head", "knn", "--no-baselines", "-q", "--force"]
    assert main([*argv, "--json", str(tmp_path / "r.json")]) == 0  # a plain head serves itself: no column
    assert json.loads((tmp_path / "r.json").read_text())["served"] == "knn"
    assert "served" not in capsys.readouterr().out.splitlines()[0]


def test_queries_before_a_policys_first_checkpoint_are_noted(tmp_path, hist, fake_minilm, capsys):
    """Probe PS3: queries at a step before every history row of their policy got one value per policy, silently
    (evaluate then called the head 'does not rank'); predict and evaluate now say how many rows and why."""
    early = _log({"pol0": [0.0, 1.0]}, 12, "sort the list").with_columns(step=pl.lit(-1, pl.Int64))
    q = write_log(pl.concat([early, _log({"pol1": [1.0, 0.0]}, 6, "sort the list")]), tmp_path / "q.jsonl")
    said = "12 of 18 rows ask at a step before their policy's first checkpoint in the history"
    assert main(["evaluate", str(hist), str(q), "--head", "knn", "--no-baselines", "-q"]) == 0
    assert f"v0lite evaluate: note: {said}" in capsys.readouterr().err
    assert main(["fit", str(hist), "--model-dir", str(tmp_path / "m"), "--head", "knn", "-q"]) == 0
    assert main(["predict", str(q), "--model-dir", str(tmp_path / "m"), "--out", str(tmp_path / "p.jsonl")]) == 0
    assert f"v0lite predict: note: {said}" in capsys.readouterr().err
    later = write_log(_log({"pol1": [1.0, 0.0]}, 6, "sort the list"), tmp_path / "later.jsonl")
    assert main(["evaluate", str(hist), str(later), "--head", "knn", "--no-baselines", "-q"]) == 0
    assert "first checkpoint" not in capsys.readouterr().err
