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

from tests.conftest import make_log
from v0lite.cli import build_parser, command_flags, main
from v0lite.log import read_log, write_log


@pytest.fixture
def files(tmp_path):
    log = make_log(steps=True)
    hist = write_log(log.filter(pl.col("prompt").str.contains("case [0-8]$")), tmp_path / "hist.jsonl")
    queries = write_log(log.filter(~pl.col("prompt").str.contains("case [0-8]$")), tmp_path / "queries.csv")
    return tmp_path, hist, queries


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


def test_every_subcommand_has_quiet_and_every_option_has_help():
    import argparse

    from v0lite.heads.base import HEADS

    leaves = dict(_leaf_parsers())
    assert {
        "fit",
        "predict",
        "evaluate",
        "demo",
        "route",
        "route-eval",
        "alloc-sim",
        "data convert",
        "data prices",
        "data prompts",
    } <= set(leaves)
    for name, p in leaves.items():
        opts = {s: a for a in p._actions for s in a.option_strings}
        assert "--quiet" in opts and opts["--progress"].help == argparse.SUPPRESS, name
        for a in p._actions:
            if a.help == argparse.SUPPRESS or isinstance(a, argparse._HelpAction):
                continue
            assert a.help and len(a.help) > 10, (name, a.dest)
        if "--head" in opts:
            assert sorted(opts["--head"].choices) == sorted(HEADS), name
        if "--encoder" in opts:
            assert opts["--encoder"].metavar == "MODEL" and opts["--encoder"].choices is None, name
    assert "--head" in dict((s, 1) for a in leaves["route-eval"]._actions for s in a.option_strings)
    assert "--head" in dict((s, 1) for a in leaves["alloc-sim"]._actions for s in a.option_strings)


def test_knob_help_states_each_strategys_scale():
    from v0lite.routing import STRATEGIES

    leaves = dict(_leaf_parsers())
    knob = next(a for a in leaves["route"]._actions if "--knob" in a.option_strings)
    for name in STRATEGIES:
        assert f"{name}:" in knob.help
    assert "USD per call" in knob.help


@pytest.mark.parametrize(
    "message, expect",
    [
        (
            "policy 'g' has no history. Fix: call add_history with some of its outcomes, "
            "or set fallback='global_mean'.",
            "Fix: add some of its outcomes to the history log and refit, or pass --fallback global_mean.",
        ),
        ("strategy 'budget' needs its knob 'budget'. Fix: pass budget=<value>.", "Fix: pass --knob VALUE."),
        (
            "utility knob lam must be >= 0, got -1.0. Fix: pass lam >= 0 (0 = best quality).",
            "Fix: pass --knob >= 0 (0 = best quality).",
        ),
        ("a budget=3 outside the fix stays. Fix: none.", "a budget=3 outside the fix stays. Fix: none."),
    ],
)
def test_cli_text_puts_fixes_in_flag_names(message, expect):
    from v0lite.commands._common import cli_text

    assert cli_text(message).endswith(expect)


def test_route_errors_speak_flags(files, capsys, fake_minilm):
    tmp, hist, queries = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "prior"]) == 0
    pols = ",".join(sorted(set(read_log(hist)["policy"].to_list())))
    capsys.readouterr()
    base = ["route", str(queries), "--model-dir", str(tmp / "m"), "--pool", pols, "--out", str(tmp / "r.jsonl")]
    assert main(base + ["--strategy", "budget"]) == 1
    err = capsys.readouterr().err
    assert "needs its knob 'budget'" in err and "--knob VALUE" in err and "budget=<value>" not in err
    prices = tmp / "prices.json"
    prices.write_text(json.dumps({"pol0": 0.001}))
    assert main(base + ["--prices", str(prices)]) == 1
    err = capsys.readouterr().err
    assert "no price for 2 of the 3 pool models: ['pol1', 'pol2']" in err and "USD per call" in err
    prices.write_text(json.dumps({"pol0": 0.001, "pol1": 0.002, "pol2": 0.01, "other": 1.0}))
    assert main(base + ["--prices", str(prices), "--strategy", "budget", "--knob", "0.002"]) == 0
    routed = read_log(tmp / "r.jsonl", require_score=False)
    assert float(routed["pred_cost"].mean()) <= 0.002 + 1e-12
    assert main(base + ["--prices", str(tmp / "nope.json"), "--force"]) == 1  # --force: r.jsonl exists now
    assert "--prices" in (err := capsys.readouterr().err) and "does not exist" in err


def test_input_log_errors_name_the_input_and_its_file(files, capsys, fake_minilm, guarantees):
    """Issue: a missing column of route-eval's TRAIN or TEST, or onboard's LOG, did not say which file; a
    --prices lacking a pool model did not name --prices; a router folder given as --model-dir had no fix."""
    tmp, hist, queries = files
    renamed = write_log(read_log(hist).rename({"score": "reward"}), tmp / "renamed.jsonl")
    empty = tmp / "empty.jsonl"
    empty.write_text("")
    cands = write_log(read_log(queries).select("prompt"), tmp / "cands.jsonl")
    onboard = ["--policy", "pol0", "--candidates", str(cands), "--n", "2", "--out", str(tmp / "o.jsonl"), "-q"]
    cases = [
        (["route-eval", str(renamed), str(queries)], f"TRAIN {renamed}: missing required column 'score'"),
        (["route-eval", str(hist), str(renamed)], f"TEST {renamed}: missing required column 'score'"),
        (["onboard", str(renamed), *onboard], f"LOG {renamed}: missing required column 'score'"),
        (["route-eval", str(hist), str(empty)], f"TEST {empty}: the file is empty"),  # the path once, not twice
        (["route-eval", str(hist), str(queries), "--prices", '{"pol0": 1, "pol1": 2}'],
         "--prices (inline JSON) has no price for 1 of the 3 pool models: ['pol2']. Fix: add them to the prices "
         "file (USD per call)."),
    ]  # fmt: skip
    guarantees.tick("bad-input cases tried", len(cases) + 2)
    for argv, needle in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, (argv, err)
    prices = tmp / "prices.json"
    prices.write_text(json.dumps({"pol0": 1.0}))
    assert main(["route-eval", str(hist), str(queries), "--prices", str(prices)]) == 1
    assert f"--prices {prices} has no price for 2 of the 3 pool models" in capsys.readouterr().err
    # a router folder where a model folder belongs: say so, and what to pass
    (tmp / "r").mkdir()
    (tmp / "r" / "meta.json").write_text(json.dumps({"format": "v0lite-router", "format_version": 1}))
    assert main(["onboard", str(hist), *onboard, "--model-dir", str(tmp / "r")]) == 1
    err = capsys.readouterr().err
    assert f"--model-dir {tmp / 'r'}: is a router folder" in err
    assert f"Fix: pass the value model saved inside it, --model-dir {tmp / 'r' / 'value_model'}." in err
    route = ["route", str(queries), "--model-dir", str(tmp / "r"), "--pool", "pol0,pol1", "--out", str(tmp / "x.jsonl")]
    assert main(route) == 1
    assert f"or pass the router itself as --router {tmp / 'r'}" in capsys.readouterr().err
    # and the reverse: a model folder given as --router
    (tmp / "m").mkdir()
    (tmp / "m" / "meta.json").write_text(json.dumps({"format": "v0lite-model", "format_version": 1}))
    assert main(["route", str(queries), "--router", str(tmp / "m"), "--out", str(tmp / "x.jsonl")]) == 1
    err = capsys.readouterr().err
    assert f"--router {tmp / 'm'}: is a model folder" in err and f"Fix: pass it as --model-dir {tmp / 'm'}" in err
    # a file given as --model-dir: the fix does not tell to fit into that file's name
    assert main(["predict", str(queries), "--model-dir", str(hist), "--out", str(tmp / "p.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "is a file, not a model folder" in err and f"--model-dir {hist}`" not in err, err


def test_paths_are_checked_before_any_work(files, capsys, monkeypatch, fake_minilm, guarantees):
    from v0lite.estimator import V0Regressor

    tmp, hist, queries = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "knn"]) == 0

    def boom(*a, **k):
        raise AssertionError("the work started before the output was checked")

    monkeypatch.setattr(V0Regressor, "load", boom)
    monkeypatch.setattr(V0Regressor, "fit", boom)
    capsys.readouterr()
    cases = [
        (
            ["predict", str(queries), "--model-dir", str(tmp / "m"), "--out", str(tmp / "x.txt")],
            "lacks a known suffix (.jsonl, .csv or .parquet)",
        ),
        (["predict", str(queries), "--model-dir", str(tmp / "m"), "--out", str(tmp)], "is a directory"),
        (
            ["predict", str(queries), "--model-dir", str(tmp / "nomodel"), "--out", str(tmp / "o.jsonl")],
            "--model-dir " + str(tmp / "nomodel") + ": does not exist. Fix: fit one first with `v0lite fit",
        ),
        (["predict", str(queries), "--model-dir", str(hist), "--out", str(tmp / "o.jsonl")], "is a file, not a model"),
        (["predict", str(queries), "--model-dir", str(tmp), "--out", str(tmp / "o.jsonl")], "holds no saved model"),
        (["fit", str(tmp), "--model-dir", str(tmp / "m2")], "is a directory, not a file"),
        (["fit", str(tmp / "nope.jsonl"), "--model-dir", str(tmp / "m2")], "does not exist"),
        (["evaluate", str(hist), str(queries), "--json", str(tmp / "m.txt")], "lacks a known suffix (.json)"),
        (["route-eval", str(hist), str(queries), "--plot", str(tmp / "f.jpg")], "lacks a known suffix (.png)"),
        (["alloc-sim", str(hist), "--json", str(tmp / "a.csv")], "lacks a known suffix (.json)"),
        (["data", "prices", str(hist), str(tmp / "p.csv")], "lacks a known suffix (.json)"),
    ]
    guarantees.tick("bad-input cases tried", len(cases))
    for argv, needle in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert needle in err and "Fix" in err and err.count("\n") == 1, (argv, err)


def test_an_empty_mktemp_file_is_written_over_when_the_output_has_one_format(tmp_path, capsys, guarantees):
    """A plain ``mktemp`` file (random suffix, empty) passes as an output of one format (JSON); an output whose
    suffix picks the format refuses it, saying the name lacks a known suffix (not that it cannot write one)."""
    log = tmp_path / "log.jsonl"
    rows = {"policy": ["a", "b"], "prompt": ["x", "x"], "score": [1.0, 0.0], "cost": [0.1, 0.2]}
    pl.DataFrame(rows).write_ndjson(log)
    out = tmp_path / "tmp.gOZKl0lLXI"
    out.touch()
    assert main(["data", "prices", str(log), str(out)]) == 0
    assert json.loads(out.read_text()) == {"a": 0.1, "b": 0.2}
    capsys.readouterr()
    assert main(["data", "prices", str(log), str(out), "--force"]) == 1  # not empty now: the suffix rule again
    err = capsys.readouterr().err
    assert f"OUT {out}: the name lacks a known suffix (.json). Fix: name the output .json" in err
    guarantees.tick("bad-input cases tried", 2)
    empty = tmp_path / "tmp.kTLqrSJr31"
    empty.touch()
    assert main(["data", "prompts", str(log), str(empty)]) == 1
    err = capsys.readouterr().err
    assert "lacks a known suffix (.jsonl, .csv or .parquet), which picks the format" in err
    assert "mktemp --suffix=.jsonl" in err and ".gOZ" not in err and "cannot write" not in err


def test_data_prices_and_prompts(tmp_path, capsys):
    log = pl.DataFrame(
        {
            "policy": ["a", "a", "b", "b"],
            "prompt": ["x", "y", "x", "y"],
            "score": [1.0, 0.0, 1.0, 1.0],
            "cost": [0.001, 0.003, 0.01, 0.03],
        }
    )
    write_log(log, tmp_path / "log.jsonl")
    assert main(["data", "prices", str(tmp_path / "log.jsonl"), str(tmp_path / "prices.json")]) == 0
    assert json.loads((tmp_path / "prices.json").read_text()) == {"a": 0.002, "b": 0.02}
    assert "USD per call" in capsys.readouterr().out
    assert main(["data", "prompts", str(tmp_path / "log.jsonl"), str(tmp_path / "p.jsonl")]) == 0
    assert pl.read_ndjson(tmp_path / "p.jsonl")["prompt"].to_list() == ["x", "y"]
    write_log(log.drop("cost"), tmp_path / "nocost.jsonl")
    capsys.readouterr()
    assert main(["data", "prices", str(tmp_path / "nocost.jsonl"), str(tmp_path / "q.json")]) == 1
    assert f"LOG {tmp_path / 'nocost.jsonl'}: the log has no 'cost' column" in capsys.readouterr().err
    write_log(log.with_columns(pl.lit(-1.0).alias("cost")), tmp_path / "neg.jsonl")
    assert main(["data", "prices", str(tmp_path / "neg.jsonl"), str(tmp_path / "q.json")]) == 1
    assert f"LOG {tmp_path / 'neg.jsonl'}: column 'cost', row 0" in capsys.readouterr().err
    assert not (tmp_path / "q.json").exists()


def test_progress_is_off_in_a_pipe_and_forced_with_progress(files, capsys, monkeypatch, fake_minilm):
    from v0lite import _progress

    monkeypatch.setattr(_progress, "DELAY_S", 0.0)
    tmp, hist, queries = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "gbdt"]) == 0
    assert "fit:" not in capsys.readouterr().err  # capsys' stderr is not a terminal
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m3"), "--head", "gbdt", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "fit: features" in err and "fit: gbdt: done in" in err
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m4"), "--head", "gbdt", "--progress", "--quiet"]) == 0
    assert "fit: gbdt: done in" in capsys.readouterr().err  # --progress forces it on, even with --quiet


def test_route_eval_saves_a_router_and_route_uses_it(tmp_path, capsys, fake_minilm):
    log = make_log(3, 40, seed=1)
    price = {"pol0": 0.0001, "pol1": 0.001, "pol2": 0.01}
    log = log.with_columns(pl.col("policy").replace_strict(price, return_dtype=pl.Float64).alias("cost"))
    train = write_log(log.filter(~pl.col("prompt").str.contains("case 3")), tmp_path / "train.jsonl")
    test = write_log(log.filter(pl.col("prompt").str.contains("case 3")), tmp_path / "test.jsonl")
    r = tmp_path / "router"
    assert (
        main(
            [
                "route-eval",
                str(train),
                str(test),
                "--head",
                "knn",
                "--save-router",
                str(r),
                "--json",
                str(tmp_path / "route.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"--router {r}" in out and (r / "meta.json").exists() and (r / "value_model" / "meta.json").exists()
    for line in out.splitlines():  # every '-' comes with its reason
        if line.split()[-1:] == ["-"] or "  -  " in line:
            assert "(" in line, line
    assert main(["data", "prompts", str(test), str(tmp_path / "prompts.jsonl")]) == 0
    routed = tmp_path / "routed.jsonl"
    assert (
        main(
            [
                "route",
                str(tmp_path / "prompts.jsonl"),
                "--router",
                str(r),
                "--strategy",
                "budget",
                "--knob",
                "0.002",
                "--out",
                str(routed),
            ]
        )
        == 0
    )
    a = pl.read_ndjson(routed)
    n_test = pl.read_ndjson(test)["prompt"].n_unique()
    assert set(a["policy"].to_list()) <= set(price) and a.height == n_test
    assert float(a["pred_cost"].mean()) <= 0.002 + 1e-12  # the budget, in the log's USD per call
    # prices from a file replace the router's learned costs: pred_cost is exactly the price per call
    (tmp_path / "prices.json").write_text(json.dumps({"pol0": 0.5, "pol1": 0.001, "pol2": 0.002}))
    assert (
        main(
            [
                "route",
                str(tmp_path / "prompts.jsonl"),
                "--router",
                str(r),
                "--prices",
                str(tmp_path / "prices.json"),
                "--strategy",
                "threshold",
                "--knob",
                "0.0",
                "--out",
                str(routed),
                "--force",  # it replaces the first routing's file
            ]
        )
        == 0
    )
    b = pl.read_ndjson(routed)
    assert set(b["policy"].to_list()) == {"pol1"} and set(b["pred_cost"].to_list()) == {0.001}
    capsys.readouterr()
    assert (
        main(
            [
                "route",
                str(tmp_path / "prompts.jsonl"),
                "--router",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "x.jsonl"),
            ]
        )
        == 1
    )
    assert "--router" in (err := capsys.readouterr().err) and "does not exist" in err and "--save-router" in err


# --- issue 27: knobs in range, and every fix names a flag its command has ----------------------------------


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["alloc-sim", "h.jsonl", "--rollouts-per-prompt", "0"], "argument --rollouts-per-prompt: 0 is below 2"),
        (["alloc-sim", "h.jsonl", "--rollouts-per-prompt", "1"], "argument --rollouts-per-prompt: 1 is below 2"),
        (["alloc-sim", "h.jsonl", "--fit-fraction", "0"], "argument --fit-fraction: 0 is outside (0, 1)"),
        (["alloc-sim", "h.jsonl", "--fit-fraction", "1.5"], "argument --fit-fraction: 1.5 is outside (0, 1)"),
        (["alloc-sim", "h.jsonl", "--seed", "-1"], "argument --seed: -1 is below 0"),
        (["fit", "h.jsonl", "--model-dir", "m", "--random-state", "-3"], "argument --random-state: -3 is below 0"),
        (["evaluate", "h.jsonl", "q.jsonl", "--random-state", "x"], "argument --random-state: 'x' is not an integer"),
        (["route-eval", "a.jsonl", "b.jsonl", "--k-baseline", "0"], "argument --k-baseline: 0 is below 1"),
        (["route-eval", "a.jsonl", "b.jsonl", "--new-model", "x", "--n", "0"], "argument --n: 0 is below 1"),
        (["route-eval", "a.jsonl", "b.jsonl", "--shrink", "1.5"], "argument --shrink: 1.5: a weight must be in [0, 1]"),
        (["route-eval", "a.jsonl", "b.jsonl", "--shrink", "abc"], "argument --shrink: 'abc' is not 'none', 'cv'"),
        (["route-eval", "a.jsonl", "b.jsonl", "--new-model", "", "--n", "3"], "argument --new-model: '' is empty"),
        (
            ["route-eval", "a.jsonl", "b.jsonl", "--new-model", "pol1 ", "--n", "3"],
            "argument --new-model: 'pol1 ' has leading or trailing spaces, so it would name another model than 'pol1'",
        ),
        (
            ["onboard", "h.jsonl", "--policy", "x", "--candidates", "c.jsonl", "--n", "0", "--out", "o.jsonl"],
            "argument --n: 0 is below 1",
        ),
        (
            ["onboard", "h.jsonl", "--policy", "", "--candidates", "c.jsonl", "--n", "1", "--out", "o.jsonl"],
            "argument --policy: '' is empty",
        ),
    ],
)
def test_out_of_range_flags_are_argument_errors_naming_the_flag(argv, needle, capsys, guarantees):
    guarantees.tick("bad-input cases tried")
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_out_of_range_knobs_are_refused_before_any_work(files, capsys, monkeypatch, fake_minilm, guarantees):
    from v0lite.estimator import V0Regressor

    tmp, hist, queries = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "prior", "-q"]) == 0

    def boom(*a, **k):
        raise AssertionError("the work started before the knob was checked")

    monkeypatch.setattr(V0Regressor, "load", boom)
    monkeypatch.setattr(V0Regressor, "fit", boom)
    capsys.readouterr()
    route = ["route", str(queries), "--model-dir", str(tmp / "m"), "--pool", "pol0,pol1", "--out", str(tmp / "r.jsonl")]
    cases = [
        (route + ["--strategy", "threshold", "--knob", "7"], "knob 'tau' must be in [0, 1], got 7. Fix: pass --knob"),
        (route + ["--strategy", "quality-target", "--knob", "1.5"], "knob 'target' must be in [0, 1]"),
        (route + ["--strategy", "utility", "--knob", "-1"], "knob 'lam' must be >= 0, got -1"),
        (route + ["--knob", "-1"], "knob 'lam' must be >= 0"),  # utility is the default strategy
        (route + ["--strategy", "budget", "--knob", "-0.5"], "knob 'budget' must be >= 0"),
    ]
    guarantees.tick("bad-input cases tried", len(cases))
    for argv, needle in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, (argv, err)


def test_library_knobs_and_rollouts_are_checked(guarantees):
    from v0lite.exceptions import ParameterError
    from v0lite.rl import alloc_sim
    from v0lite.routing import get_strategy

    guarantees.tick("bad-input cases tried", 4)
    P, C = np.array([[0.2, 0.9]]), np.array([[1.0, 2.0]])
    with pytest.raises(ParameterError, match=r"knob 'tau' must be in \[0, 1\], got 7"):
        get_strategy("threshold").choose(P, C, 7)
    with pytest.raises(ParameterError, match=r"knob 'target' must be in \[0, 1\]"):
        get_strategy("quality-target").choose(P, C, -0.1)
    assert get_strategy("threshold").choose(P, C, 1.0).tolist() == [1]  # the bounds themselves are fine
    with pytest.raises(ParameterError, match=r"got 1\.0000001\. Fix"):  # the value as given, not rounded to 1
        get_strategy("threshold").choose(P, C, 1.0000001)
    for bad in (0, 1):
        with pytest.raises(ParameterError, match="rollouts_per_prompt must be an integer >= 2"):
            alloc_sim(make_log(steps=True), head="prior", rollouts_per_prompt=bad)


def _flags_of(parser) -> frozenset[str]:
    return frozenset(s for a in parser._actions for s in a.option_strings)


def _commands():
    """{"fit": (parser, func), "data convert": ...} for every subcommand."""
    import argparse

    out = {}

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    if sub._defaults.get("func"):
                        out[f"{prefix}{name}"] = (sub, sub._defaults["func"])
                    walk(sub, f"{prefix}{name} ")

    walk(build_parser(), "")
    return out


def _strings(node):
    """Every string literal under an AST node; an f-string's fields read as 'X'."""
    import ast

    parts = {id(v) for n in ast.walk(node) if isinstance(n, ast.JoinedStr) for v in ast.walk(n) if v is not n}
    for n in ast.walk(node):
        if isinstance(n, ast.JoinedStr) and id(n) not in parts:
            yield "".join(v.value if isinstance(v, ast.Constant) else "X" for v in n.values)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in parts:
            yield n.value


_FLAG = r"(?<![\w-])--[a-z][a-z-]*[a-z]"


def _flags_by_command(text, command, names):
    """(command, flag) for each flag in ``text``; a flag after "v0lite NAME" belongs to that command, up to
    the end of the `quoted command line` it is in."""
    import re

    pattern = r"v0lite (" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")\b|" + _FLAG
    for segment in text.split("`"):
        owner = command
        for m in re.finditer(pattern, segment):
            if m.group(1):
                owner = m.group(1)
            else:
                yield owner, m.group(0)


def test_every_flag_a_command_names_in_its_messages_exists_on_that_command(guarantees):
    """Issue 27: fixes that point to flags that do not exist. Each command's function and the module
    functions it calls are walked; every --flag in their strings must be on that command's parser
    (or on the command the string quotes, as in "`v0lite route-eval ... --save-router DIR`")."""
    import ast
    import inspect
    import sys

    commands = _commands()
    checked = 0
    for name, (_, func) in commands.items():
        module = sys.modules[func.__module__]
        tree = ast.parse(inspect.getsource(module))
        defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        todo, seen = [func.__name__], set()
        while todo:  # the command's function and every module function it calls
            f = todo.pop()
            if f in seen or f not in defs:
                continue
            seen.add(f)
            todo += [c.func.id for c in ast.walk(defs[f]) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)]
        for f in seen:
            for text in _strings(defs[f]):
                for owner, flag in _flags_by_command(text, name, commands):
                    checked += 1
                    assert flag in _flags_of(commands[owner][0]), f"`v0lite {owner}` has no {flag} ({f}: {text!r})"
    # the shared helpers' strings, reached from no single command: a flag quoted after `v0lite CMD` is CMD's
    root, quoted = Path(__file__).resolve().parents[1] / "v0lite", 0
    for path in [*sorted((root / "commands").glob("*.py")), root / "cli.py"]:
        for text in _strings(ast.parse(path.read_text())):
            for owner, flag in _flags_by_command(text, None, commands):
                if owner is not None:
                    quoted += 1
                    assert flag in _flags_of(commands[owner][0]), (
                        f"`v0lite {owner}` has no {flag} ({path.name}: {text!r})"
                    )
    assert checked > 40 and quoted > 10  # the walk saw the commands' messages and the quoted command lines
    guarantees.tick("bad-input cases tried", checked)


def test_every_library_fix_is_shown_with_flags_its_command_has(guarantees):
    """Every 'Fix:' string of the library, as each command would print it (cli_text), names only flags of
    that command; the ones a command has are translated (fallback='global_mean' -> --fallback global_mean)."""
    import ast

    from v0lite.commands._common import cli_text

    root = Path(__file__).resolve().parents[1] / "v0lite"
    fixes = []
    for path in root.rglob("*.py"):
        if "commands" in path.parts or path.name == "cli.py":
            continue
        fixes += [t for t in _strings(ast.parse(path.read_text())) if "Fix:" in t]
    assert len(fixes) > 100
    commands = _commands()
    for name, (parser, _) in commands.items():
        flags = _flags_of(parser)
        for text in fixes:
            shown = cli_text(text, flags)
            for owner, flag in _flags_by_command(shown, name, commands):
                assert flag in _flags_of(commands[owner][0]), (name, text, shown)
    guarantees.tick("bad-input cases tried", len(fixes))
    # where a command has the flag, the Python spelling is translated
    for name in ("predict", "evaluate", "route"):
        assert "--fallback global_mean" in cli_text("Fix: set fallback='global_mean'.", _flags_of(commands[name][0]))
    assert "--encoder PATH" in cli_text("Fix: pass it (encoder=<path>).", _flags_of(commands["predict"][0]))
    assert "--prompt-dict PATH" in cli_text("Fix: (prompt_dict=<path>).", _flags_of(commands["data convert"][0]))
    assert "no flag" in cli_text("Fix: set fallback='global_mean'.", _flags_of(commands["fit"][0]))


def test_fixes_that_name_a_flag_work_with_it(files, capsys, fake_minilm, guarantees):
    """The flags the fixes name exist and do what the fix says: evaluate and route --fallback."""
    tmp, hist, queries = files
    ghost = read_log(queries).with_columns(pl.lit("ghost").alias("policy"))
    write_log(ghost, tmp / "ghost.jsonl")
    ev = ["evaluate", str(hist), str(tmp / "ghost.jsonl"), "--head", "prior", "--no-baselines", "-q"]
    assert main(ev) == 1
    assert "Fix:" in (err := capsys.readouterr().err) and "--fallback global_mean" in err
    assert main([*ev, "--fallback", "global_mean"]) == 0
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "prior", "-q"]) == 0
    capsys.readouterr()
    route = [
        "route",
        str(queries),
        "--model-dir",
        str(tmp / "m"),
        "--pool",
        "pol0,ghost",
        "--out",
        str(tmp / "r.jsonl"),
    ]
    assert main(route) == 1
    err = capsys.readouterr().err
    assert "['ghost'] have no history" in err and "--fallback global_mean" in err and "row" not in err
    assert main([*route, "--fallback", "global_mean"]) == 0
    guarantees.tick("bad-input cases tried", 2)


def test_convert_v0_prompt_dict_fix_names_the_flag_it_has(tmp_path, capsys, guarantees):
    src = tmp_path / "raw" / "ctx.jsonl"
    src.parent.mkdir()
    src.write_text(json.dumps({"id": 7, "score": 0.6, "model": "m", "step": 16, "dataset": "dapomath"}) + "\n")
    out = tmp_path / "log.jsonl"
    assert main(["data", "convert", "v0", str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert "--prompt-dict PATH" in err and "prompt_dict=" not in err
    (tmp_path / "dict.json").write_text(json.dumps({"dapomath_8": "other"}))
    assert main(["data", "convert", "v0", str(src), str(out), "--prompt-dict", str(tmp_path / "dict.json")]) == 1
    assert "--prompt-dict PATH" in capsys.readouterr().err
    (tmp_path / "dict.json").write_text(json.dumps({"dapomath_7": "1+1?"}))
    assert main(["data", "convert", "v0", str(src), str(out), "--prompt-dict", str(tmp_path / "dict.json")]) == 0
    assert read_log(out)["prompt"].to_list() == ["1+1?"]
    assert main(["data", "convert", "routerbench", str(src), str(tmp_path / "o"), "--prompt-dict", str(src)]) == 1
    assert "applies to the v0 format only" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"dapomath_7": "1+1?"}\n{"x": 1}\n')  # a JSON-lines file, not one object
    assert (
        main(
            ["data", "convert", "v0", str(src), str(tmp_path / "b.jsonl"), "--prompt-dict", str(tmp_path / "bad.json")]
        )
        == 1
    )
    assert f"--prompt-dict {tmp_path / 'bad.json'}: not valid JSON" in capsys.readouterr().err
    # a multi-file format writes a folder: an OUT with a file suffix is a mistake, not a folder name
    assert main(["data", "convert", "routerbench", str(tmp_path / "raw"), str(tmp_path / "rb.jsonl")]) == 1
    assert "routerbench writes a folder" in capsys.readouterr().err and not (tmp_path / "rb.jsonl").exists()
    guarantees.tick("bad-input cases tried", 3)


def test_predict_and_route_read_their_input_before_loading_a_model(files, capsys, monkeypatch, fake_minilm, guarantees):
    from v0lite.estimator import V0Regressor

    tmp, hist, queries = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "prior", "-q"]) == 0

    def boom(*a, **k):
        raise AssertionError("a model was loaded before the input was read")

    monkeypatch.setattr(V0Regressor, "load", boom)
    bad = tmp / "q.csv"
    bad.write_bytes("policy,prompt\npol0,x\n".encode("utf-16"))
    capsys.readouterr()
    out = str(tmp / "o.jsonl")
    for argv in (
        ["predict", str(bad), "--model-dir", str(tmp / "m"), "--out", out],
        ["route", str(bad), "--model-dir", str(tmp / "m"), "--pool", "pol0,pol1", "--out", out],
    ):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "UTF-16" in err and "Fix: re-encode the file as UTF-8" in err, err
    guarantees.tick("bad-input cases tried", 2)


# --- nothing lost: saves never delete, outputs never overwrite inputs, no hang (issue 27) ---------------


def _bytes(*paths):
    return [Path(p).read_bytes() for p in paths]


def test_fit_refuses_a_folder_it_did_not_write(files, capsys, monkeypatch, fake_minilm, guarantees):
    """The issue's cases: `fit small.jsonl --model-dir precious` wiped precious/; `fit run1/hist.jsonl
    --model-dir run1` deleted the training log itself; `--model-dir .` gave a raw error. Refused before the fit."""
    from v0lite.estimator import V0Regressor

    tmp, hist, _ = files
    precious = tmp / "precious"
    (precious / "sub").mkdir(parents=True)
    (precious / "thesis.txt").write_text("years of work")
    (precious / "sub" / "results.csv").write_text("a,b\n1,2\n")
    run1 = tmp / "run1"
    run1.mkdir()
    (run1 / "hist.jsonl").write_bytes(hist.read_bytes())
    work = tmp / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    kept = [precious / "thesis.txt", precious / "sub" / "results.csv", run1 / "hist.jsonl"]
    before = _bytes(*kept)

    def boom(*a, **k):
        raise AssertionError("the fit started before the model folder was checked")

    monkeypatch.setattr(V0Regressor, "fit", boom)
    cases = [
        (["fit", str(hist), "--model-dir", str(precious)], "holds files v0lite did not write (sub/, thesis.txt)"),
        (["fit", str(run1 / "hist.jsonl"), "--model-dir", str(run1)], "holds the input HISTORY"),
        (["fit", str(hist), "--model-dir", "."], "is the current folder or one above it"),
        (["fit", str(hist), "--model-dir", ".."], "holds the input HISTORY"),  # .. is tmp, which holds hist
        (["fit", str(hist), "--model-dir", str(hist)], "is the input HISTORY"),
        (["route-eval", str(hist), str(hist), "--save-router", str(precious)], "holds files v0lite did not write"),
        (["route-eval", str(run1 / "hist.jsonl"), str(hist), "--save-router", str(run1)], "holds the input TRAIN"),
    ]
    capsys.readouterr()
    for argv, needle in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        fix = "Fix: name a new sub-folder, e.g. --model-dir" if "current" in needle else "Fix: choose another --"
        assert needle in err and fix in err and err.count("\n") == 1, (argv, err)
        guarantees.tick("bad-input cases tried")
    assert _bytes(*kept) == before
    assert sorted(p.name for p in precious.rglob("*")) == ["results.csv", "sub", "thesis.txt"]
    assert list(work.iterdir()) == []


def test_an_output_never_overwrites_an_input(files, capsys, fake_minilm, guarantees):
    """Every command refuses, before any work, an output that is one of its inputs: same path, a symlink or a hard
    link (`data convert v0 X X`, `data prompts log log`, `predict --out`, `route --out`, `--json`, ...)."""
    tmp, hist, queries = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "knn"]) == 0
    hard = tmp / "hard.jsonl"
    os.link(queries if queries.suffix == ".jsonl" else hist, hard)  # a hard link: another name, the same file
    (tmp / "hist.json").symlink_to(hist)  # a .json name that is the history
    os.link(hist, tmp / "linked.json")
    raw = tmp / "raw"
    raw.mkdir()
    (raw / "context.jsonl").write_text('{"x": 1}\n')
    (raw / "train.jsonl").write_text("{}\n")
    inputs = [hist, queries, raw / "context.jsonl", raw / "train.jsonl"]
    before = _bytes(*inputs)
    ctx = str(raw / "context.jsonl")
    cases = [
        (["data", "convert", "v0", ctx, ctx], "OUT " + ctx + ": is the input SRC"),
        (["data", "convert", "routerbench", str(raw), str(raw)], "is a file inside the input folder SRC"),
        (["data", "prompts", str(hist), str(hist)], "is the input LOG"),
        (["data", "prompts", str(hard), str(hist)], "is the input LOG"),
        (["data", "prices", str(hist), str(tmp / "linked.json")], "is the input LOG"),
        (["predict", str(queries), "--model-dir", str(tmp / "m"), "--out", str(queries)], "is the input QUERIES"),
        (["predict", str(hist), "--model-dir", str(tmp / "m"), "--out", str(hard)], "is the input QUERIES"),
        (["evaluate", str(hist), str(queries), "--json", str(tmp / "hist.json")], "is the input HISTORY"),
        (["alloc-sim", str(hist), "--json", str(tmp / "linked.json")], "is the input HISTORY"),
        (["route-eval", str(hist), str(queries), "--json", str(tmp / "hist.json")], "is the input TRAIN"),
        (
            ["route", str(hist), "--model-dir", str(tmp / "m"), "--pool", "pol0,pol1", "--out", str(hist)],
            "is the input PROMPTS",
        ),
        (
            ["route", str(hist), "--model-dir", str(tmp / "m"), "--pool", "pol0", "--out", str(tmp / "m" / "x.jsonl")],
            None,  # a new file inside the model folder overwrites nothing: allowed (routes, exit 0)
        ),
    ]
    capsys.readouterr()
    for argv, needle in cases:
        rc = main(argv)
        err = capsys.readouterr().err
        if needle is None:
            assert rc == 0, err
            continue
        assert rc == 1 and needle in err and "Fix: choose another" in err and err.count("\n") == 1, (argv, err)
        guarantees.tick("bad-input cases tried")
    assert _bytes(*inputs) == before


def test_fifo_and_device_inputs_are_refused_at_once(tmp_path, fake_minilm, guarantees):
    """A FIFO with no writer made `fit` hang forever: it is refused without being opened (through the real
    entry point, with a timeout that a hang would hit)."""
    fifo = tmp_path / "hist.jsonl"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run(
        [sys.executable, "-m", "v0lite", "fit", str(fifo), "--model-dir", str(tmp_path / "m")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "is a FIFO (named pipe), not a regular file" in r.stderr and "Fix" in r.stderr
    guarantees.tick("bad-input cases tried")  # devices, sockets and output FIFOs: test_cli_outputs.py


def test_unusable_cache_and_unwritable_outputs_name_the_users_path(files, capsys, monkeypatch, fake_minilm):
    tmp, hist, queries = files
    capsys.readouterr()
    (tmp / "cachefile").write_text("x")
    monkeypatch.setenv("V0LITE_CACHE", str(tmp / "cachefile"))
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m")]) == 1
    err = capsys.readouterr().err
    assert f"V0LITE_CACHE={tmp / 'cachefile'}: is a file" in err and "Fix: point V0LITE_CACHE" in err
    monkeypatch.setenv("V0LITE_CACHE", str(tmp / "cache"))
    # an output folder the process cannot write: read-only for a normal user; /sys refuses even root
    if os.geteuid() != 0:
        ro = tmp / "ro"
        ro.mkdir()
        ro.chmod(0o500)
    else:
        ro = Path("/sys")
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "prior"]) == 0
    for argv, path in (
        (["predict", str(queries), "--model-dir", str(tmp / "m"), "--out", str(ro / "p.jsonl")], ro / "p.jsonl"),
        (["fit", str(hist), "--model-dir", str(ro / "model"), "--head", "prior"], ro / "model"),
    ):
        capsys.readouterr()
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert str(path) in err and ".tmp" not in err and err.count("\n") == 1, err


def test_an_existing_output_file_is_kept_unless_force(files, capsys, fake_minilm, guarantees):
    """Issue: `predict --out mylog.jsonl` replaced a 3,072-row log with 5 rows, exit 0. Every command that writes
    a file refuses a non-empty one before any work, naming it and the fix; --force replaces it."""
    tmp, hist, queries = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "prior"]) == 0
    kept = {name: tmp / name for name in ("mylog.jsonl", "mine.json", "mine.png")}
    for path in kept.values():
        path.write_bytes(hist.read_bytes())
    (tmp / "rbsrc").mkdir()
    (tmp / "rbout").mkdir()
    kept["rbout/train.jsonl"] = tmp / "rbout" / "train.jsonl"
    kept["rbout/train.jsonl"].write_bytes(hist.read_bytes())
    log, js, png = str(kept["mylog.jsonl"]), str(kept["mine.json"]), str(kept["mine.png"])
    m = ["--model-dir", str(tmp / "m")]
    cases = [
        (["predict", str(queries), *m, "--out", log], "--out"),
        (["evaluate", str(hist), str(queries), "--json", js], "--json"),
        (["route-eval", str(hist), str(queries), "--json", js], "--json"),
        (["route-eval", str(hist), str(queries), "--plot", png], "--plot"),
        (["route", str(queries), *m, "--pool", "pol0,pol1", "--out", log], "--out"),
        (["alloc-sim", str(hist), "--json", js], "--json"),
        (["onboard", str(hist), "--policy", "x", "--candidates", str(queries), "--n", "1", "--out", log], "--out"),
        (["data", "prompts", str(hist), log], "OUT"),
        (["data", "prices", str(hist), js], "OUT"),
        (["data", "convert", "v0", str(hist), log], "OUT"),
        (["data", "convert", "routerbench", str(tmp / "rbsrc"), str(tmp / "rbout")], "OUT folder"),
    ]
    before = {name: path.read_bytes() for name, path in kept.items()}
    for argv, fix in cases:
        capsys.readouterr()
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "exists" in err and f"Fix: pass --force to replace it, or choose another {fix}." in err, err
        assert err.count("\n") == 1 and err.startswith(f"v0lite {argv[0]}"), err
        assert {name: path.read_bytes() for name, path in kept.items()} == before
    # --force replaces an output, never an input (--candidates and --prompt-dict are inputs too)
    v0 = tmp / "v0.jsonl"
    v0.write_text('{"id": 1, "score": 1.0, "model": "a", "step": 0, "dataset": "d"}\n')
    for argv, flag in (
        (["onboard", str(hist), "--policy", "x", "--candidates", log, "--n", "1", "--out", log], "--candidates"),
        (["data", "convert", "v0", str(v0), log, "--prompt-dict", log], "--prompt-dict"),
    ):
        assert main([*argv, "--force"]) == 1
        assert f"is the input {flag} {log}" in capsys.readouterr().err
        assert kept["mylog.jsonl"].read_bytes() == before["mylog.jsonl"]
    guarantees.tick("bad-input cases tried", len(cases) + 2)
    # every command that declares an output file has --force
    parser = build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        subs = (
            [(name, sub)]
            if name != "data"
            else [(f"data {k}", v) for k, v in sub._subparsers._group_actions[0].choices.items()]
        )
        for label, p in subs:
            if p.get_default("outputs"):
                assert "--force" in command_flags(parser, label), label
    # --force replaces it; an empty file (mktemp) needs no --force
    assert main(["predict", str(queries), *m, "--out", log, "--force"]) == 0
    assert read_log(kept["mylog.jsonl"], require_score=False).height == read_log(queries).height
    empty = tmp / "empty.jsonl"
    empty.write_bytes(b"")
    assert main(["predict", str(queries), *m, "--out", str(empty)]) == 0


def test_an_unwritable_out_folder_is_named_as_the_out_folder(tmp_path, capsys, monkeypatch):
    """Issue: `data convert routerbench SRC ro` said "Fix: choose another OUT/train.jsonl"."""
    (tmp_path / "src").mkdir()
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != ro and real(p, mode))
    assert main(["data", "convert", "routerbench", str(tmp_path / "src"), str(ro)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write in {ro} (permission denied). Fix: choose another OUT folder" in err, err
    assert "another OUT/" not in err


def test_alloc_sim_says_what_the_log_needs_in_flags(tmp_path, capsys, fake_minilm):
    """Issue: a one-step log said "Fix: lower fit_fraction" (no such flag, and it cannot help); --max-step 10
    said "Fix: raise max_step"."""
    log = make_log(steps=True)  # steps 0, 1, 2
    hist = write_log(log, tmp_path / "h.jsonl")
    one = write_log(log.filter(pl.col("step") == 1), tmp_path / "one.jsonl")
    for argv, needle in (
        ([str(one)], "has one distinct step (step 1)"),
        ([str(hist), "--max-step", "-1"], "--max-step -1 keeps none of HISTORY"),
        ([str(hist), "--max-step", "0"], "has one distinct step up to --max-step 0"),
        ([str(hist), "--fit-fraction", "0.9"], "--fit-fraction 0.9 fits on 3 of HISTORY's 3 distinct steps"),
    ):
        capsys.readouterr()
        assert main(["alloc-sim", *argv, "-q"]) == 1
        err = capsys.readouterr().err
        assert needle in err and "Fix:" in err and err.count("\n") == 1, err
        assert "max_step" not in err and "fit_fraction" not in err, err


def test_predict_ignores_the_columns_it_does_not_read(files, capsys, fake_minilm):
    """Issue: an unused `score` of ±1 rewards made predict refuse the query file ("not a success rate")."""
    tmp, hist, queries = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "prior"]) == 0
    q = read_log(queries)
    pm1 = write_log(q.with_columns(pl.col("score") * 2 - 1, pl.lit(None).alias("note")), tmp / "pm1.jsonl")
    assert main(["predict", str(pm1), "--model-dir", str(tmp / "m"), "--out", str(tmp / "o.jsonl")]) == 0
    out = pl.read_ndjson(tmp / "o.jsonl")
    assert out["score"].to_list() == (q["score"] * 2 - 1).to_list()  # copied as it was
    assert out["p_success"].is_between(0, 1).all()
    # a JSON file whose unread score is text ("1"): not checked either, copied as text
    text = tmp / "text.jsonl"
    text.write_text(
        "".join(f'{{"policy": "{a}", "prompt": "{b}", "score": "1"}}\n' for a, b in q.select("policy", "prompt").rows())
    )
    assert main(["predict", str(text), "--model-dir", str(tmp / "m"), "--out", str(tmp / "o_text.jsonl")]) == 0
    assert set(pl.read_ndjson(tmp / "o_text.jsonl")["score"].to_list()) == {"1"}
    bad = write_log(q.with_columns(pl.lit("").alias("prompt")), tmp / "bad.jsonl")  # a column it reads: checked
    assert main(["predict", str(bad), "--model-dir", str(tmp / "m"), "--out", str(tmp / "o2.jsonl")]) == 1
    assert f"QUERIES {bad}: column 'prompt', row 0" in capsys.readouterr().err
    renamed = write_log(q.rename({"policy": "model"}), tmp / "renamed.jsonl")
    assert main(["predict", str(renamed), "--model-dir", str(tmp / "m"), "--out", str(tmp / "o3.jsonl")]) == 1
    assert "Fix: rename 'model' to 'policy'" in capsys.readouterr().err  # the hint sees every column


# --------------------------------------------------------------------------- data map: your own table


def test_data_map_turns_a_spreadsheet_export_into_a_log(tmp_path, capsys):
    src = tmp_path / "export.csv"
    src.write_text(
        "Model,Question,Correct,Latency ms,Cost ($),Task\n"
        "gpt,What is 2+2?,TRUE,120,0.01,math\n"
        "small,What is 2+2?,FALSE,90,0.001,math\n"
        "gpt,Name a prime.,,200,0.01,math\n"
        "small,Name a prime.,true,80,0.001,math\n",
        encoding="utf-8",
    )
    out = tmp_path / "log.jsonl"
    cmd = ["data", "map", str(src), str(out), "--policy", "Model", "--prompt", "Question", "--score", "Correct"]
    cmd += ["--cost", "Cost ($)", "--task", "Task"]
    assert main(cmd) == 1  # the unlabeled row: an error in flag terms, naming the count and the row
    err = capsys.readouterr().err
    assert f"SRC {src}" in err and "1 of 4 rows have no outcome" in err and "row 2" in err, err
    assert "--drop-unscored" in err and "drop_unscored" not in err
    assert not out.exists()
    assert main([*cmd, "--drop-unscored"]) == 0
    printed = capsys.readouterr().out
    assert "3 rows out of 4 read, 1 without a score dropped" in printed and "'Model' -> 'policy'" in printed
    log = read_log(out)
    assert log["score"].to_list() == [1.0, 0.0, 1.0] and log["cost"].to_list() == [0.01, 0.001, 0.001]
    assert log["task"].to_list() == ["math"] * 3 and log["Latency ms"].to_list() == [120, 90, 80]
    assert main([*cmd, "--drop-unscored"]) == 1  # an existing OUT needs --force, as for the other data commands
    assert "--force" in capsys.readouterr().err
    assert main([*cmd, "--drop-unscored", "--force", "-q"]) == 0


def test_data_map_errors_name_its_flags(tmp_path, capsys):
    src = tmp_path / "pct.csv"
    src.write_text("Model,Question,Pct\na,x,0\nb,x,80\n", encoding="utf-8")
    out = str(tmp_path / "log.csv")
    base = ["data", "map", str(src), out, "--policy", "Model", "--prompt", "Question"]
    assert main([*base, "--score", "Pct"]) == 1
    err = capsys.readouterr().err
    assert "percentages? Fix: divide by 100 (--score-scale 100)" in err and "score_scale" not in err, err
    assert main([*base, "--score", "pct"]) == 1
    assert "Fix: pass --score Pct." in capsys.readouterr().err
    assert main([*base, "--score", "Model"]) == 1
    assert "Fix: give each its own column, or drop --score." in capsys.readouterr().err
    assert main([*base, "--score", "Pct", "--score-scale", "0"]) == 2  # argparse: K > 0
    capsys.readouterr()
    assert main([*base, "--score", "Pct", "--score-scale", "100"]) == 0
    assert read_log(out)["score"].to_list() == [0.0, 0.8]
    assert main(["data", "map", str(src), out, "--policy", "Model", "--score", "Pct"]) == 2  # --prompt is required


def test_fit_points_a_boolean_or_unlabeled_log_at_data_map(tmp_path, capsys):
    """The log's own fixes name `v0lite data map` flags that exist, and a near-miss column is a warning."""
    src = tmp_path / "b.csv"
    src.write_text("policy,prompt,score,Task\na,x,TRUE,m\nb,x,FALSE,m\n", encoding="utf-8")
    assert main(["fit", str(src), "--model-dir", str(tmp_path / "m"), "--head", "prior", "-q"]) == 1
    err = capsys.readouterr().err
    assert "warning: column 'Task' differs from the optional column 'task'" in err and "--task Task" in err, err
    assert "1.0/0.0 for true/false (`v0lite data map LOG OUT --policy policy" in err
    fixed = tmp_path / "fixed.csv"
    argv = ["data", "map", str(src), str(fixed), "--policy", "policy", "--prompt", "prompt", "--score", "score"]
    assert main([*argv, "--task", "Task"]) == 0  # the command the fix names works as written
    assert read_log(fixed)["task"].to_list() == ["m", "m"]


def test_an_unknown_flag_is_named_by_its_command_with_the_nearest_flag(capsys):
    """Probe: `v0lite route ... --stratgy budget` printed the top level's usage and no hint."""
    assert main(["route", "p.csv", "--router", "r", "--out", "o.csv", "--stratgy", "budget"]) == 2
    err = capsys.readouterr().err
    assert "usage: v0lite route" in err and "v0lite route: error: unrecognized arguments: --stratgy budget" in err
    assert "(did you mean --strategy?)" in err
    assert main(["data", "convert", "v0", "a", "b", "--forse"]) == 2
    assert "v0lite data convert: error: unrecognized arguments: --forse (did you mean --force?)" in (
        capsys.readouterr().err
    )


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    """Probe: `v0lite ... | head -1` failed with 'error: [Errno 32] Broken pipe', exit 1."""
    import subprocess

    (tmp_path / "x.jsonl").write_text('{"policy": "a", "prompt": "q", "score": 1}\n')
    code = (
        "import sys, v0lite.cli as c\n"
        "def f(args):\n    raise BrokenPipeError(32, 'Broken pipe')\n"
        "p = c.build_parser(); a = p.parse_args(['data', 'prices', 'x.jsonl', 'y.json'])\n"
        "a.func = f; sys.exit(c._run(a, 'data prices'))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 141 and r.stderr == "", r.stderr


def test_a_warning_is_shown_once_and_a_system_refusal_names_its_fix(tmp_path, capsys):
    import warnings as w

    from v0lite import cli
    from v0lite.exceptions import V0liteWarning

    def twice(args):
        w.warn("column 'Task' differs from the optional column 'task'", V0liteWarning, stacklevel=1)
        w.warn("column 'Task' differs from the optional column 'task'", V0liteWarning, stacklevel=1)
        raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "no" / "x.jsonl"))

    real = cli._run
    try:
        cli._run = lambda args, name, flags=None: real(type("A", (), {"func": staticmethod(twice)})(), name, flags)
        assert cli.main(["data", "prices", str(tmp_path / "a.jsonl"), str(tmp_path / "p.json")]) == 1
    finally:
        cli._run = real
    err = capsys.readouterr().err
    assert err.count("differs from the optional column") == 1
    assert "No such file or directory" in err and "Fix: check that the path's folder exists" in err


def test_progress_lines_follow_the_q_help(monkeypatch):
    """Probe: evaluate/route-eval wrote their baseline progress lines into a redirected stderr although every
    command's -q help says progress is shown when stderr is a terminal."""
    import argparse as ap

    from v0lite.commands._common import progress_lines

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert progress_lines(ap.Namespace(quiet=False, progress=False)) is None
    assert progress_lines(ap.Namespace(quiet=False, progress=True)) is not None
    assert progress_lines(ap.Namespace(quiet=True, progress=False)) is None


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["predict", "-", "--model-dir", "m", "--out", "o.jsonl"], "QUERIES"),
        (["predict", "q.jsonl", "--model-dir", "m", "--out", "-"], "--out"),
        (["fit", "q.jsonl", "--model-dir", "-"], "--model-dir"),
        (["data", "prices", "q.jsonl", "-"], "OUT"),
        (["onboard", "q.jsonl", "--policy", "a", "--candidates", "-", "--n", "2", "--out", "o.jsonl"], "--candidates"),
    ],
)
def test_a_dash_for_a_path_is_refused_in_flag_terms(tmp_path, monkeypatch, capsys, argv, flag):
    """Probe: `-` was read as a file named "-" ("does not exist", `--out -.jsonl`, a folder named `-`)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "q.jsonl").write_text('{"policy": "a", "prompt": "x", "score": 1}\n')
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{flag} -: v0lite reads and writes files and folders, not standard input or output" in err
    assert not (tmp_path / "-").exists() and not (tmp_path / "-.jsonl").exists()
