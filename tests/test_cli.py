"""The CLI: happy paths with the fake encoder, exit codes and messages, and a property over random logs."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v0lite.cli import build_parser, main
from v0lite.log import read_log, write_log


def test_help_and_version(capsys):
    assert main([]) == 2
    assert main(["--version"]) == 0
    assert "v0lite 0.1.0" in capsys.readouterr().out
    assert main(["fit", "--help"]) == 0
    sub = build_parser()._subparsers._group_actions[0].choices
    assert {"fit", "predict", "evaluate", "demo", "data"} <= set(sub)


def test_fit_then_predict(files, capsys, fake_minilm):
    tmp, hist, queries = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "knn"]) == 0
    assert "saved to" in capsys.readouterr().out
    assert (tmp / "m" / "meta.json").exists()
    out = tmp / "pred.parquet"
    assert main(["predict", str(queries), "--model-dir", str(tmp / "m"), "--out", str(out)]) == 0
    pred = read_log(out, require_score=False)
    q = read_log(queries)
    assert pred.height == q.height and pred["prompt"].to_list() == q["prompt"].to_list()
    p = pred["p_success"].to_numpy()
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()


def test_predict_unknown_policy_then_fallback(files, capsys, fake_minilm):
    tmp, hist, _ = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "prior"]) == 0
    q = write_log(pl.DataFrame({"policy": ["ghost"], "prompt": ["hello"]}), tmp / "q.jsonl")
    capsys.readouterr()
    assert main(["predict", str(q), "--model-dir", str(tmp / "m"), "--out", str(tmp / "o.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "policy 'ghost' has no history" in err and "--fallback global_mean" in err
    assert f"QUERIES {q}: column 'policy', row 0" in err  # which file, not only which column
    assert "cross-validation" not in err  # the library's hint for CV folds, not a CLI run's
    assert (
        main(
            [
                "predict",
                str(q),
                "--model-dir",
                str(tmp / "m"),
                "--out",
                str(tmp / "o.jsonl"),
                "--fallback",
                "global_mean",
            ]
        )
        == 0
    )


def test_evaluate_writes_json(files, fake_minilm, capsys):
    tmp, hist, queries = files
    assert main(["evaluate", str(hist), str(queries), "--head", "knn", "--json", str(tmp / "r.json")]) == 0
    res = json.loads((tmp / "r.json").read_text())
    assert res["head"] == "knn" and res["n"] == read_log(queries).height
    out = capsys.readouterr().out
    assert "auc" in out and "baselines (d = knn minus baseline" in out and "d_within_policy_auc" in out
    assert {"prior", "knn", "ridge"} <= set(res["baselines"]) and isinstance(res["loses_to"], list)
    for r in res["baselines"].values():
        assert {"auc", "within_policy_auc", "brier", "diff", "loses", "chance"} <= set(r)
        d = r["diff"]["auc"]
        assert d["estimate"] == pytest.approx(res["auc"] - r["auc"])
    assert "_p" not in res
    # 3 query prompts: too few for a verdict, and both the output and the JSON say so
    assert res["no_verdict"] == "3 query prompt(s), fewer than 10" and res["loses_to"] == [] and not res["chance"]
    assert "no verdict: the comparison rests on 3 query prompt(s)" in out and "LOSES" not in out
    assert (
        main(["evaluate", str(hist), str(queries), "--head", "knn", "--no-baselines", "--json", str(tmp / "n.json")])
        == 0
    )
    assert "baselines" not in capsys.readouterr().out
    assert "baselines" not in json.loads((tmp / "n.json").read_text())


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["fit", "h.jsonl", "--model-dir", "m", "--head", "magic"], "invalid choice: 'magic' (choose from"),
        (
            ["predict", "q.jsonl", "--model-dir", "m", "--out", "o.jsonl", "--fallback", "zero"],
            "invalid choice: 'zero'",
        ),
        (["predict"], "the following arguments are required"),
        (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
    ],
)
def test_bad_arguments_return_2_and_list_the_choices(argv, needle, capsys, guarantees):
    guarantees.tick("bad-input cases tried")
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_corrupt_model_folder(files, capsys, fake_minilm, guarantees):
    tmp, hist, queries = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "knn"]) == 0
    f = tmp / "m" / "history.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    guarantees.tick("faults injected")
    capsys.readouterr()
    assert main(["predict", str(queries), "--model-dir", str(tmp / "m"), "--out", str(tmp / "o.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "re-save" in err
    guarantees.tick("corruptions detected")


def test_interrupt_prints_resume_hint_and_rerun_works(files, capsys, monkeypatch, fake_minilm, guarantees):
    tmp, hist, _ = files

    def interrupted(texts):
        raise KeyboardInterrupt

    fake_minilm.encode = interrupted  # not monkeypatch: undo() would also undo fake_minilm's patches
    guarantees.tick("faults injected")
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "knn"]) == 130
    # interrupted before any batch finished: nothing is cached, and the message says so
    assert (
        capsys.readouterr().err
        == "v0lite fit: interrupted while embedding; none of the 9 prompts to embed was cached yet.\n"
    )
    assert not (tmp / "m").exists()
    del fake_minilm.encode  # the class's encode again
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "knn"]) == 0


def test_interrupt_names_what_was_cached_and_says_nothing_of_a_cache_when_not_embedding(
    files, capsys, monkeypatch, fake_minilm
):
    import v0lite.cli as cli
    import v0lite.embed as embed

    tmp, hist, _ = files
    init, real, calls = embed.Embedder.__init__, type(fake_minilm).encode, []
    monkeypatch.setattr(embed.Embedder, "__init__", lambda self, *a, **kw: init(self, *a, **{**kw, "batch_size": 4}))

    def second_batch_interrupted(texts):  # 9 prompts, batches of 4: the first batch finishes
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(fake_minilm, texts)

    fake_minilm.encode = second_batch_interrupted
    args = ["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "knn"]
    assert main(args) == 130
    assert capsys.readouterr().err == (
        "v0lite fit: interrupted while embedding; 4 of the 9 prompts to embed are cached and will not be "
        "embedded again.\n"
    )
    del fake_minilm.encode
    fake_minilm.texts_seen = 0
    assert main(args) == 0 and fake_minilm.texts_seen == 5  # the 4 cached prompts are not embedded again

    def no_embedding(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_check_inputs", no_embedding)
    capsys.readouterr()
    assert main(["data", "convert", "v0", str(hist), str(tmp / "h.csv")]) == 130
    assert capsys.readouterr().err == "v0lite data convert: interrupted.\n"


def test_an_encoder_folder_that_is_not_a_model_is_an_error_naming_the_flag(files, capsys, monkeypatch):
    """Issue: `fit --encoder <an empty folder>` printed transformers' ValueError traceback."""
    from v0lite.embed import _load_sentence_transformer

    tmp, hist, _ = files
    monkeypatch.setenv("V0LITE_CACHE", str(tmp / "cache"))
    import types

    from tests.test_embed import _no_model

    monkeypatch.setattr("v0lite.embed._load_sentence_transformer", _load_sentence_transformer)
    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=_no_model))
    (tmp / "fakeenc").mkdir()
    args = ["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "knn", "--encoder", str(tmp / "fakeenc")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"v0lite fit: error: encoder folder {str(tmp / 'fakeenc')!r} holds no sentence-trans"), err
    assert "--encoder" in err and "encoder=" not in err and err.count("\n") == 1, err
    assert not (tmp / "m").exists()


# --- property: any log file gives exit 0 with a model, or exit 1 with a one-line error ------------------

_cells = st.one_of(st.none(), st.integers(-2, 3), st.floats(-1, 2), st.sampled_from(["", " ", "p", "q r", "1.5"]))


_counter = itertools.count()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {"policy": st.sampled_from(["a", "b", ""]), "prompt": _cells, "score": _cells}, optional={"step": _cells}
        ),
        min_size=0,
        max_size=6,
    ),
    suffix=st.sampled_from([".jsonl", ".csv"]),
)
def test_cli_fit_never_crashes(rows, suffix, tmp_path, capsys, fake_minilm, guarantees):
    guarantees.tick("property examples run")
    i = next(_counter)
    path = tmp_path / f"log{i}{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        cols = ["policy", "prompt", "score", "step"]
        lines = [",".join(cols)] + [",".join("" if r.get(c) is None else json.dumps(r[c]) for c in cols) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    rc = main(["fit", str(path), "--model-dir", str(tmp_path / f"m{i}"), "--head", "knn"])
    err = capsys.readouterr().err
    assert rc in (0, 1), err
    if rc == 1:
        assert err.startswith("v0lite fit: error: ") and err.count("\n") == 1 and "Fix" in err, err
        assert not (tmp_path / f"m{i}").exists()
    else:
        assert (tmp_path / f"m{i}" / "meta.json").exists()


# --- a light start: --help, --version and argument errors import no heavy library ------------------------

_HEAVY = ("sklearn", "torch", "polars", "lightgbm", "faiss")


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["fit", "--help"],
        ["data", "convert", "--help"],
        ["route", "--help"],
        ["fit", "h.jsonl", "--model-dir", "m", "--head", "magic"],
        ["nosuchcommand"],
        ["fit", "no-such-log.jsonl", "--model-dir", "m"],
        ["data", "convert", "nope", "a", "b"],
    ],
)
def test_cli_start_imports_no_heavy_library(argv, tmp_path):
    # a fresh interpreter: this test process has imported everything already
    code = (
        "import sys, v0lite.cli, v0lite.exceptions\n"
        "v0lite.cli.build_parser()\n"
        f"rc = v0lite.cli.main({argv!r})\n"
        f"print(sorted(m for m in {_HEAVY!r} if m in sys.modules), rc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    loaded, rc = out.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert loaded == "[]", f"{argv} imported {loaded}"
    assert int(rc) in (0, 1, 2)


def test_python_dash_m_and_missing_input(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-m", "v0lite", "--version"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0 and out.stdout.startswith("v0lite ")
    out = subprocess.run(
        [sys.executable, "-m", "v0lite", "fit", "h.jsonl", "--model-dir", "m"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 1 and "HISTORY h.jsonl: does not exist" in out.stderr and "Fix" in out.stderr
    (tmp_path / "q.jsonl").write_text("{}\n")
    out = subprocess.run(
        [sys.executable, "-m", "v0lite", "predict", "q.jsonl", "--model-dir", "nodir", "--out", "o"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 1 and "--model-dir nodir: does not exist. Fix: fit one first" in out.stderr


def test_cli_spelled_out_names_match_the_registries():
    from v0lite.commands.data import FORMAT_NAMES
    from v0lite.commands.route import STRATEGY_NAMES
    from v0lite.data import CONVERTERS
    from v0lite.routing import STRATEGIES

    assert sorted(FORMAT_NAMES) == sorted(CONVERTERS)
    from v0lite.commands.data import SPLIT_NAMES
    from v0lite.data import ROUTERDC_SPLITS

    assert sorted(SPLIT_NAMES) == sorted(ROUTERDC_SPLITS)
    assert sorted(STRATEGY_NAMES) == sorted(STRATEGIES)


def test_not_fitted_error_is_lazy_cached_and_sklearns():
    import sklearn.exceptions

    import v0lite
    import v0lite.exceptions as exc

    cls = exc.NotFittedError
    assert cls is exc.NotFittedError is v0lite.NotFittedError
    assert issubclass(cls, sklearn.exceptions.NotFittedError) and issubclass(cls, exc.V0liteError)
    try:
        raise cls("not fitted")
    except exc.NotFittedError as e:
        assert isinstance(e, sklearn.exceptions.NotFittedError)


# --- one vocabulary: the same flags everywhere, help on every option, fixes in flag names -------------------


def _leaf_parsers(parser=None, prefix=()):
    import argparse

    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaf_parsers(sub, prefix + (name,))
            return
    if prefix:
        yield " ".join(prefix), parser


def test_evaluate_prints_the_legend_and_the_heads_chance_verdict_without_baselines(tmp_path, fake_minilm, capsys):
    """Issue: ``evaluate --no-baselines`` never printed the head's chance verdict its --json held; and no line
    said which way each metric of the table is better."""
    from tests.conftest import make_log
    from v0lite.commands.core import metric_legend
    from v0lite.metrics import ece

    log = make_log(n_prompts=24, steps=True)
    case = pl.col("prompt").str.split(" ").list.last().cast(pl.Int64)
    hist = write_log(log.filter(case < 12), tmp_path / "h.jsonl")
    queries = write_log(log.filter(case >= 12), tmp_path / "q.jsonl")  # 12 prompts: enough for a verdict
    argv = ["evaluate", str(hist), str(queries), "--head", "prior", "--no-baselines", "-q"]
    assert main([*argv, "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    res = json.loads((tmp_path / "r.json").read_text())
    # the prompt-blind prior ranks nothing within a (policy, step): 0.5 by construction is said as that fact,
    # by the baselines' rule (probe FE1: it was "no better than chance" for the head, not for the baseline)
    assert res["chance"] is False and res["ranks_within"] is False
    assert (
        f"prior: within-policy AUC {res['within_policy_auc']:.4f} (its predictions do not rank prompts within a "
        "policy: 0.5 by construction)" in out
    )
    assert not any("no better than chance" in line for line in out)
    legend = out[2]  # right under the one-row table
    assert legend.startswith("auc, within_policy_auc (AUC within each (policy, step)")
    assert (
        "brier, ece (10 equal-width bins), log_loss: lower is better (they compare p with the score itself)" in legend
    )
    assert "success when score >= 0.5" in legend
    assert ece.__defaults__ == (10,)  # the legend's bin count
    demo = metric_legend(["head", "auc", "within_policy_auc", "brier", "ece"])  # demo's table has no log_loss
    assert "brier, ece (10 equal-width bins): lower" in demo and "log_loss" not in demo


def test_predict_refuses_a_query_file_with_no_rows_in_the_words_of_queries(files, capsys, fake_minilm):
    """Probe FE5: a query file with a header and no rows was refused as "the log has no rows ... pass at least
    one outcome row": predict reads no outcomes. Refused in the queries' terms, and --out is not written."""
    tmp, hist, _ = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "prior", "-q"]) == 0
    (tmp / "q.csv").write_text("policy,prompt,step\n")
    (tmp / "q.jsonl").write_text("")
    capsys.readouterr()
    for q in ("q.csv", "q.jsonl"):
        assert main(["predict", str(tmp / q), "--model-dir", str(tmp / "m"), "--out", str(tmp / "o.csv")]) == 1
        err = capsys.readouterr().err
        assert "outcome" not in err and not (tmp / "o.csv").exists(), err
    assert f"QUERIES {tmp / 'q.jsonl'}: the file is empty" in err and "(queries: policy, prompt[, step])" in err
    main(["predict", str(tmp / "q.csv"), "--model-dir", str(tmp / "m"), "--out", str(tmp / "o.csv")])
    assert capsys.readouterr().err.strip() == (
        f"v0lite predict: error: QUERIES {tmp / 'q.csv'}: has no rows (only a header). Fix: add at least one query "
        "row (policy, prompt[, step])."
    )
    (tmp / "q.csv").write_text("policy,step\n")  # a missing column is said first, as for any query file
    assert main(["predict", str(tmp / "q.csv"), "--model-dir", str(tmp / "m"), "--out", str(tmp / "o.csv")]) == 1
    assert "missing required column 'prompt'" in capsys.readouterr().err


def test_predict_notes_a_replaced_p_success_and_the_rows_the_fallback_answered(files, capsys, fake_minilm):
    tmp, hist, _ = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "prior", "-q"]) == 0
    q = pl.DataFrame({"policy": ["pol0", "ghost", "ghost"], "prompt": ["a", "b", "c"], "p_success": [0.1, 0.2, 0.3]})
    q = write_log(q, tmp / "q.jsonl")
    capsys.readouterr()
    argv = ["predict", str(q), "--model-dir", str(tmp / "m"), "--out", str(tmp / "o.jsonl"), "--fallback"]
    assert main([*argv, "global_mean"]) == 0
    err = capsys.readouterr().err
    assert f"v0lite predict: note: QUERIES {q} has a 'p_success' column: --out {tmp / 'o.jsonl'} holds" in err
    assert "v0lite predict: note: 2 of 3 rows name a policy with no history: answered by --fallback global_mean" in err
    assert read_log(tmp / "o.jsonl", require_score=False)["p_success"].to_list() != [0.1, 0.2, 0.3]


def test_fallback_help_says_what_global_mean_predicts(capsys):
    assert main(["predict", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "with 3+ fitted policies the logistic/auto heads give it the pool's view of each prompt" in text
    assert "other heads the mean score of the whole history" in text


def test_evaluate_says_why_its_auc_is_undefined(tmp_path, capsys, fake_minilm):
    """Probe K2: queries of one class gave auc nan / d_auc '-' / null with no reason, where within_policy_auc
    had one. ``auc_reason`` in --json (null when defined) and a printed line say why."""
    from tests.conftest import make_log

    log = make_log(n_prompts=24, steps=True)
    held = pl.col("prompt").str.contains("case [0-8]$")
    hist = write_log(log.filter(held), tmp_path / "h.jsonl")
    wins = write_log(log.filter(~held).with_columns(score=pl.lit(1.0)), tmp_path / "wins.jsonl")
    mixed = write_log(log.filter(~held), tmp_path / "mixed.jsonl")
    why = "every one of the 45 query rows is a success (score >= 0.5), so no success and failure pair to rank"
    assert main(["evaluate", str(hist), str(wins), "--head", "knn", "-q", "--json", str(tmp_path / "w.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    res = json.loads((tmp_path / "w.json").read_text())
    assert res["auc"] is None and res["auc_reason"] == why
    assert f"auc nan: {why}. Fix: score queries holding both successes and failures." in out
    assert f"d_auc '-': AUC is undefined ({why})" in out
    assert main(["evaluate", str(hist), str(mixed), "--head", "knn", "-q", "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["auc_reason"] is None
    assert "auc nan" not in capsys.readouterr().out


def test_alloc_sim_table_says_what_star_and_dash_mean():
    """Probe K2: the alloc-sim table marked a row `*` and cells `-` with no word on either."""
    from v0lite.commands.alloc import strategies_table

    row = {"causal": True, "label": "l", "rollouts_per_mixed_group": 9.0, "keep_half_mixed_share": 0.8}
    table = strategies_table({"strategies": {"a": row, "b": {**row, "rollouts_per_mixed_group": 10.0}}})
    lines = table.splitlines()
    assert lines[2].startswith("* a") and " - " in lines[2]
    legend = [line for line in lines if line.startswith("legend: * = ")]
    assert legend and "fewest rollouts per mixed group" in legend[0] and "- = no value" in legend[0]
    assert sum(line.startswith("* ") for line in lines) == 1  # the legend does not read as a marked row
