"""The CLI's one vocabulary: help on every subcommand and option, fixes and errors in flag names,
checks before any work, and progress lines that follow ``-q``."""

from __future__ import annotations

import json
import sys

import polars as pl
import pytest

from tests.conftest import make_log
from tests.test_cli import _leaf_parsers
from v0lite.cli import main
from v0lite.log import read_log, write_log


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
        # probe PS4: the misspelt name that left a model unpriced is named with the one meant
        (["route-eval", str(hist), str(queries), "--prices", '{"pol0": 1, "pol1": 2, "Pol2": 3}'],
         "has no price for 1 of the 3 pool models: ['pol2'] ('Pol2' is probably 'pol2'). Fix: add them"),
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
    (tmp_path / "router.json").write_text("{}")  # a file where the folder should be: named as a file
    args = ["route", str(tmp_path / "prompts.jsonl"), "--router", str(tmp_path / "router.json")]
    assert main([*args, "--out", str(tmp_path / "x.jsonl")]) == 1
    assert "is a file, not a folder" in (err := capsys.readouterr().err) and "--save-router" in err


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
