"""Tests of v0lite.baselines: the baseline table, the loss/chance flags, evaluate's comparison."""

from __future__ import annotations

import doctest
import re

import numpy as np
import polars as pl
import pytest

import v0lite.baselines as B
from tests.conftest import make_log


def test_available_baselines_skips_unregistered_heads_with_a_note(monkeypatch):
    from v0lite.heads import base

    monkeypatch.setattr(base, "HEADS", {k: v for k, v in base.HEADS.items() if k != "linear"})
    notes = []
    rows = B.available_baselines(notes.append)
    assert "ridge" not in [r[0] for r in rows] and [r[0] for r in rows][:2] == ["prior", "knn"]
    assert any("'ridge' skipped" in n and "'linear'" in n for n in notes)


def test_flags():
    signs = {"auc": 1, "brier": -1}
    d = {"auc": {"ci_low": -0.2, "ci_high": -0.01}, "brier": {"ci_low": -0.1, "ci_high": 0.1}}
    assert B.flags(d, 0.6, signs) == {"loses": ["auc"], "chance": False}
    d = {"auc": {"ci_low": -0.2, "ci_high": 0.01}, "brier": {"ci_low": 0.001, "ci_high": 0.1}}
    assert B.flags(d, 0.45, signs) == {"loses": ["brier"], "chance": True}
    assert B.flags({"auc": {"ci_low": float("nan"), "ci_high": 1.0}}, None, signs) == {"loses": [], "chance": False}


def test_no_verdict_from_too_few_query_prompts():
    """Issue: one query prompt gave "knn LOSES to logistic on Brier ... [+0.0020, +0.0020]": a bootstrap of one
    prompt has no spread. Below MIN_VERDICT_PROMPTS no flag is raised, and evaluate says why."""
    from v0lite.commands.core import verdict_lines

    signs = {"brier": -1}
    point = {"estimate": 0.002, "ci_low": 0.002, "ci_high": 0.002}
    for n, loses in ((1, []), (B.MIN_VERDICT_PROMPTS - 1, []), (B.MIN_VERDICT_PROMPTS, ["brier"])):
        diff = {"brier": {**point, "n_groups": n}}
        assert B.flags(diff, 0.4, signs) == {"loses": loses, "chance": bool(loses)}
        assert (B.too_few_prompts(diff) is None) == bool(loses)
    lines = verdict_lines("knn", 0.4, {"logistic": {"diff": {"brier": {**point, "n_groups": 1}}, "loses": []}}, {})
    assert len(lines) == 1 and lines[0].startswith("no verdict: the comparison rests on 1 query prompt(s)")
    assert not any("LOSES" in line or "chance" in line for line in lines)


def test_evaluate_baselines(fake_minilm):
    from v0lite import V0Regressor
    from v0lite.metrics import brier

    log = make_log(n_prompts=48, steps=True)
    case = pl.col("prompt").str.split(" ").list.last().cast(pl.Int64)
    hist, queries = log.filter(case < 30), log.filter(case >= 30)
    rng = np.random.default_rng(0)
    p_chosen = rng.uniform(size=queries.height)  # a head that knows nothing
    lines = []
    out = B.evaluate_baselines(hist, queries, p_chosen, n_boot=100, log=lines.append)
    assert {"prior", "knn", "ridge"} <= set(out)
    # probe FE2: the kNN baseline is the knn head's own k="cv" (k and temperature by its prompt-grouped CV),
    # what a user's knn-by-CV scores; it was a k-only leave-one-prompt-out search of its own
    own = V0Regressor(head="knn", head_params={"k": "cv"}, random_state=0).fit(hist)
    assert out["knn"]["params"] == {"k": own.head_.k_, "temperature": own.head_.temperature_}
    assert out["knn"]["brier"] == pytest.approx(brier(queries["score"].to_numpy(), own.predict(queries)))
    for r in out.values():
        for metric in B.EVAL_METRICS:
            d = r["diff"][metric]
            assert d["ci_low"] <= d["estimate"] <= d["ci_high"]
        assert r["diff"]["brier"]["estimate"] == pytest.approx(
            np.mean((p_chosen - queries["score"].to_numpy()) ** 2) - r["brier"]
        )
    # prompt-blind: 0.5 inside each policy by construction, which is no finding, so no "chance" flag
    assert out["prior"]["within_policy_auc"] == pytest.approx(0.5) and out["prior"]["chance"] is False
    # it cannot rank within a (policy, step) at all; the others' predictions vary there
    assert out["prior"]["ranks_within"] is False and out["knn"]["ranks_within"] and out["ridge"]["ranks_within"]
    assert "brier" in out["prior"]["loses"]  # uniform noise is far worse calibrated than the prior
    assert any(line.startswith("baseline 1/") for line in lines)


def test_doctests():
    assert doctest.testmod(B).failed == 0


def test_a_baseline_that_cannot_rank_within_a_policy_is_not_called_no_better_than_chance():
    """Issue: evaluate always printed "baseline prior: within-policy AUC 0.5000 <= 0.5, no better than chance":
    the prior is one value per (policy, step), 0.5 by construction, which is no finding; flags leaves its
    ``chance`` false (probe K2), and the line is said from ``ranks_within`` whatever ``chance`` holds."""
    from v0lite.commands.core import verdict_lines

    diff = {"auc": {"estimate": 0.1, "ci_low": 0.05, "ci_high": 0.2, "n_groups": 20}}
    b = {
        "prior": {"within_policy_auc": 0.5, "diff": diff, "loses": [], "chance": False, "ranks_within": False},
        "knn": {"within_policy_auc": 0.45, "diff": diff, "loses": [], "chance": True, "ranks_within": True},
        "ridge": {"within_policy_auc": 0.5, "diff": diff, "loses": [], "chance": True},  # route-eval's: no key
    }
    lines = verdict_lines("auto", 0.7, b, {})
    assert (
        "baseline prior: within-policy AUC 0.5000 (its predictions do not rank prompts within a policy: 0.5 by "
        "construction)" in lines
    )
    assert not any(line.startswith("baseline prior:") and "no better than chance" in line for line in lines)
    assert "baseline knn (k by CV): within-policy AUC 0.4500 <= 0.5, no better than chance" in lines
    assert "baseline ridge (pooled): within-policy AUC 0.5000 <= 0.5, no better than chance" in lines


def test_the_knn_baseline_is_told_apart_from_the_knn_head(tmp_path, fake_minilm, capsys):
    """Issue: ``evaluate --head knn`` printed "knn LOSES to knn on AUC": the baseline is kNN with k chosen by CV.
    Printed tables and verdicts name it "knn (k by CV)"; the JSON keeps the key "knn"."""
    import json

    from v0lite.cli import main
    from v0lite.commands._route_report import print_route_baselines
    from v0lite.commands.core import verdict_lines
    from v0lite.log import write_log

    log = make_log(n_prompts=24, steps=True)
    case = pl.col("prompt").str.split(" ").list.last().cast(pl.Int64)
    hist, queries = write_log(log.filter(case < 16), tmp_path / "h.jsonl"), tmp_path / "q.jsonl"
    write_log(log.filter(case >= 16), queries)
    args = ["evaluate", str(hist), str(queries), "--head", "knn", "--json", str(tmp_path / "r.json")]
    assert main(args) == 0
    rows = capsys.readouterr().out.splitlines()
    # the baseline column (padded to its longest name), then its head
    assert any(re.match(r"knn \(k by CV\) +knn ", line) for line in rows)
    assert "knn" in json.loads((tmp_path / "r.json").read_text())["baselines"]
    loses = {"diff": {"auc": {"estimate": -0.1, "ci_low": -0.2, "ci_high": -0.05, "n_groups": 20}}, "loses": ["auc"]}
    chance = {"within_policy_auc": 0.4, "chance": True}
    lines = verdict_lines("knn", 0.7, {"knn": {**loses, **chance}}, {"auc": "AUC"})
    assert lines[0].startswith("knn LOSES to knn (k by CV) on AUC: -0.1000")
    assert lines[1].startswith("baseline knn (k by CV): within-policy AUC 0.4000 <= 0.5")
    # route-eval: its headline's baseline_knn_* is the fixed-k kNN router; the table's row is the tuned one
    print_route_baselines({"baselines": {"knn": {**loses, **chance, "auc": 0.5}}, "baseline_knn_tuned_k": 16})
    out = capsys.readouterr().out.splitlines()
    assert out[3].startswith("knn (k by CV)  ") and out[4].startswith("(knn (k by CV): the tuned kNN router's")
    assert "router LOSES to knn (k by CV) on auc" in out[5]


def _split_log(tmp_path, n_prompts=24):
    """A history of 16 prompts and a query log of the rest (``n_prompts - 16``), both with steps."""
    from v0lite.log import write_log

    log = make_log(n_prompts=n_prompts, steps=True)
    case = pl.col("prompt").str.split(" ").list.last().cast(pl.Int64)
    hist = write_log(log.filter(case < 16), tmp_path / "h.jsonl")
    return hist, log.filter(case >= 16)


def test_evaluate_fallback_reaches_every_baseline(tmp_path, fake_minilm, capsys):
    """Issue: ``evaluate --fallback global_mean`` with a query policy the history lacks passed the head, then
    stopped at the first baseline (fitted without the fallback) with an error suggesting the flag just given."""
    import json

    from v0lite.cli import main
    from v0lite.log import write_log

    hist, q = _split_log(tmp_path)
    ghost = q.head(4).with_columns(pl.lit("ghost").alias("policy"))
    queries = write_log(pl.concat([q, ghost]), tmp_path / "q.jsonl")
    argv = ["evaluate", str(hist), str(queries), "--head", "knn", "-q", "--json", str(tmp_path / "r.json")]
    assert main([*argv, "--fallback", "global_mean"]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert set(res["baselines"]) == {label for label, _, _ in B.available_baselines()}
    assert all(r["n"] == q.height + 4 for r in res["baselines"].values())  # every row, the ghost's included
    capsys.readouterr()
    assert main([*argv, "--force"]) == 1  # without the flag: stopped at the head, naming QUERIES and the flag
    err = capsys.readouterr().err
    assert f"QUERIES {queries}: column 'policy'" in err and "--fallback global_mean" in err
    assert "(1 unknown policy: ['ghost'])" in err  # singular


def test_a_baselines_unknown_policy_error_names_queries(tmp_path, fake_minilm, capsys, monkeypatch):
    """Errors of the baselines' predictions of QUERIES name that file, as the head's do."""
    from v0lite.cli import main
    from v0lite.exceptions import UnknownPolicyError
    from v0lite.log import write_log

    def boom(*_a, **_k):
        raise UnknownPolicyError("column 'policy', row 3: policy 'x' has no history.")

    monkeypatch.setattr(B, "evaluate_baselines", boom)
    hist, q = _split_log(tmp_path)
    queries = write_log(q, tmp_path / "q.jsonl")
    assert main(["evaluate", str(hist), str(queries), "--head", "prior", "-q"]) == 1
    assert f"QUERIES {queries}: column 'policy', row 3" in capsys.readouterr().err


def test_the_ridge_baseline_is_told_apart_from_the_ridge_head(tmp_path, fake_minilm, capsys):
    """Issue: ``evaluate --head ridge`` (the per-policy ridge) printed "ridge LOSES to ridge": the baseline is the
    pooled ``linear`` head. Printed rows and verdicts name it "ridge (pooled)"; the JSON keeps the key "ridge"."""
    import json

    from v0lite.cli import main
    from v0lite.commands.core import verdict_lines
    from v0lite.log import write_log

    hist, q = _split_log(tmp_path)
    queries = write_log(q, tmp_path / "q.jsonl")
    assert main(["evaluate", str(hist), str(queries), "--head", "ridge", "-q", "--json", str(tmp_path / "r.json")]) == 0
    assert any(re.match(r"ridge \(pooled\) +linear ", line) for line in capsys.readouterr().out.splitlines())
    assert "ridge" in json.loads((tmp_path / "r.json").read_text())["baselines"]
    loses = {"diff": {"auc": {"estimate": -0.1, "ci_low": -0.2, "ci_high": -0.05, "n_groups": 20}}, "loses": ["auc"]}
    assert verdict_lines("ridge", 0.7, {"ridge": loses}, {"auc": "AUC"})[0].startswith("ridge LOSES to ridge (pooled)")


def test_a_baseline_that_cannot_rank_is_never_flagged_chance_in_evaluate_or_route_eval(tmp_path, capsys, fake_minilm):
    """Probe K2: route-eval printed the prior baseline as "no better than chance" (JSON chance: true) where
    evaluate said "0.5 by construction". One rule (ranks_within) for both; chance is false for it."""
    import json

    from v0lite.cli import main
    from v0lite.log import write_log

    d = {"auc": {"ci_low": -0.3, "ci_high": -0.1, "n_groups": 20}}
    assert B.flags(d, 0.5, {"auc": 1}, ranks=False) == {"loses": ["auc"], "chance": False}
    assert B.flags(d, 0.5, {"auc": 1}, ranks=True) == {"loses": ["auc"], "chance": True}
    assert B.ranks_within([0, 0, 1, 1], [0.2, 0.2, 0.7, 0.7]) is False
    assert B.ranks_within([0, 0, 1, 1], [0.2, 0.3, 0.7, 0.7]) is True
    log = make_log(n_prompts=40, steps=True)
    held = pl.col("prompt").str.contains("case [0-8]$")
    hist, test = write_log(log.filter(held), tmp_path / "h.jsonl"), write_log(log.filter(~held), tmp_path / "t.jsonl")
    for cmd in ("evaluate", "route-eval"):
        out = tmp_path / f"{cmd}.json"
        assert main([cmd, str(hist), str(test), "--head", "knn", "-q", "--json", str(out)]) == 0
        printed = capsys.readouterr().out
        prior = json.loads(out.read_text())["baselines"]["prior"]
        assert prior["ranks_within"] is False and prior["chance"] is False, (cmd, prior)
        assert "(its predictions do not rank prompts within a policy: 0.5 by construction)" in printed, cmd
        assert "baseline prior: within-policy AUC 0.5000 <= 0.5, no better than chance" not in printed, cmd
