"""The CLI says things one way across commands: the diagnostic prefix, a mistyped name's nearest match,
one spelling of the seed flag, outputs written where named, a JSON report's keys whatever the flags."""

from __future__ import annotations

import argparse
import json

import polars as pl
import pytest

from tests.conftest import make_log
from tests.test_cli import _leaf_parsers
from v0lite.cli import main
from v0lite.log import read_log, write_log


def _split(tmp, n_prompts=12):
    log = make_log(n_prompts=n_prompts, steps=True)
    held = pl.col("prompt").str.contains("case [0-8]$")
    hist = write_log(log.filter(held), tmp / "hist.jsonl")
    queries = write_log(log.filter(~held), tmp / "queries.csv")
    return hist, queries


def test_every_stderr_note_carries_the_command_prefix(tmp_path, capsys, fake_minilm):
    """Review: `route` printed 'note: no --prices ...' bare, while its warnings and errors say
    'v0lite route: warning: ...' and 'v0lite route: error: ...'."""
    hist, queries = _split(tmp_path)
    assert main(["fit", str(hist), "--model-dir", str(tmp_path / "m"), "--head", "knn", "-q"]) == 0
    capsys.readouterr()
    argv = ["route", str(queries), "--model-dir", str(tmp_path / "m"), "--pool", "pol0,pol1", "-q"]
    assert main([*argv, "--out", str(tmp_path / "r.jsonl")]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert "v0lite route: note: no --prices or --cost-log: every call costs 1 (routing trades success only)" in lines
    assert "v0lite route: note: input columns ['policy'] are replaced by the routing output" in lines
    assert all(line.startswith("v0lite route: ") for line in lines), lines


def test_data_convert_says_the_librarys_warnings_and_its_notes_as_every_command(tmp_path, capsys):
    """Review: `data convert` printed the converter's warnings as bare 'note: ...' lines, where every other
    command prints 'v0lite CMD: warning: ...'; its own note had no prefix either."""
    src = tmp_path / "dc"
    src.mkdir()
    for name, question in (("mmlu_train", "M1"), ("mmlu_test", "M3"), ("MATH_prealgebra", "P1")):
        (src / f"{name}.json").write_text(json.dumps([{"question": question, "scores": {"a/m1": 1, "b/m2": 0}}]))
    assert main(["data", "convert", "routerdc", str(src), str(tmp_path / "o"), "--split", "official", "-q"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert "v0lite data convert: note: no test question of the split is also in train (none dropped)" in lines
    warned = [line for line in lines if line.startswith("v0lite data convert: warning: ")]
    assert any("ceval" in line for line in warned), lines  # the official split's out-of-distribution files absent
    assert len(warned) + 1 == len(lines), lines


def test_data_convert_writes_the_out_it_was_named_or_refuses(tmp_path, capsys):
    """Review: `data convert v0 SRC foo` wrote foo.jsonl, a file the user never named, where every other
    log output refuses a name without a suffix (the suffix picks the format)."""
    src = tmp_path / "ctx.jsonl"
    src.write_text(json.dumps({"id": 7, "score": 0.6, "model": "m", "step": 16, "dataset": "dapomath"}) + "\n")
    (tmp_path / "prompt_dict.json").write_text(json.dumps({"dapomath_7": "1+1?"}))
    assert main(["data", "convert", "v0", str(src), str(tmp_path / "foo")]) == 1
    err = capsys.readouterr().err
    assert f"OUT {tmp_path / 'foo'}: the name lacks a known suffix (.jsonl, .csv or .parquet)" in err, err
    assert f"Fix: name the output .jsonl, .csv or .parquet, e.g. OUT {tmp_path / 'foo.jsonl'}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx.jsonl", "prompt_dict.json"]  # nothing written
    assert main(["data", "convert", "v0", str(src), str(tmp_path / "foo.csv")]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'foo.csv'}\n"
    assert read_log(tmp_path / "foo.csv")["prompt"].to_list() == ["1+1?"]


@pytest.mark.parametrize(
    "argv, typed, hint",
    [
        (["evalute"], "evalute", "evaluate"),
        (["route-evl", "x"], "route-evl", "route-eval"),
        (["data", "convrt", "v0", "a", "b"], "convrt", "convert"),
        (["fit", "h.jsonl", "--model-dir", "m", "--head", "knnn"], "knnn", "knn"),
    ],
)
def test_a_mistyped_subcommand_names_the_nearest_as_a_mistyped_flag_does(argv, typed, hint, capsys):
    """Review: `v0lite evalute` listed the commands but named none, while `--forse` gets 'did you mean --force?'."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"invalid choice: '{typed}' (choose from " in err and err.endswith(f" (did you mean {hint}?)\n"), err
    assert main(["xyzzy"]) == 2
    assert "did you mean" not in capsys.readouterr().err  # nothing near: no guess


def test_every_seed_flag_is_random_state_and_alloc_sims_seed_still_works(tmp_path, capsys, monkeypatch):
    """Review: `alloc-sim --seed` where every other command says `--random-state` (the library's name)."""
    shown = {
        name: {s for a in p._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
        for name, p in _leaf_parsers()
    }
    seeds = {name: {f for f in flags if "seed" in f or "random" in f} for name, flags in shown.items()}
    assert {name for name, s in seeds.items() if s} >= {"fit", "evaluate", "route-eval", "onboard", "alloc-sim"}
    assert all(s <= {"--random-state"} for s in seeds.values()), seeds
    assert main(["alloc-sim", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--random-state SEED" in out and "--seed" not in out
    # the old spelling is still read, into the same setting; the new one too; the default is 0
    import v0lite.rl

    got = []

    def fake_alloc_sim(log, **kw):
        got.append(kw["random_state"])
        raise KeyboardInterrupt  # stop before the replay: the seed is what is checked

    monkeypatch.setattr(v0lite.rl, "alloc_sim", fake_alloc_sim)
    hist = write_log(make_log(steps=True).with_columns(n=pl.lit(8)), tmp_path / "h.jsonl")
    for extra, seed in (([], 0), (["--seed", "3"], 3), (["--random-state", "4"], 4)):
        assert main(["alloc-sim", str(hist), "-q", *extra]) == 130
        assert got[-1] == seed, extra
    assert main(["alloc-sim", str(hist), "--seed", "-1"]) == 2
    assert "argument --seed: -1 is below 0" in capsys.readouterr().err


def test_evaluate_json_has_chance_with_or_without_baselines(tmp_path, capsys, fake_minilm):
    """Review: `evaluate --no-baselines --json` wrote no 'chance' key (the head's within-policy AUC <= 0.5),
    which needs no baseline; the key set of a report must not depend on the flag silently."""
    hist, queries = _split(tmp_path, n_prompts=40)  # 31 query prompts: enough for a verdict
    base = ["evaluate", str(hist), str(queries), "--head", "prior", "-q", "--json"]
    assert main([*base, str(tmp_path / "with.json")]) == 0
    assert main([*base, str(tmp_path / "without.json"), "--no-baselines"]) == 0
    with_b = json.loads((tmp_path / "with.json").read_text())
    without = json.loads((tmp_path / "without.json").read_text())
    # the prior is prompt-blind: 0.5 inside each policy by construction, which is no finding (the baselines'
    # rule, probe FE1), with or without baselines, and its own prior baseline says the same
    assert with_b["within_policy_auc"] == pytest.approx(0.5) and with_b["chance"] is False
    assert with_b["ranks_within"] is False and without["ranks_within"] is False and without["chance"] is False
    assert with_b["baselines"]["prior"]["chance"] is False
    assert set(with_b) - set(without) == {"baselines", "loses_to"} and set(without) <= set(with_b)
    # fewer query prompts than a verdict needs (3): False with or without baselines, as route-eval says
    (tmp_path / "few").mkdir()
    hist, queries = _split(tmp_path / "few")
    base = ["evaluate", str(hist), str(queries), "--head", "prior", "-q", "--json"]
    for extra in ([], ["--no-baselines"]):
        assert main([*base, str(tmp_path / "few" / f"r{len(extra)}.json"), *extra]) == 0
        assert json.loads((tmp_path / "few" / f"r{len(extra)}.json").read_text())["chance"] is False, extra


def test_evaluate_help_names_the_verdict_minimum():
    from v0lite.baselines import MIN_VERDICT_PROMPTS

    p = dict(_leaf_parsers())["evaluate"]
    json_help = next(a.help for a in p._actions if "--json" in a.option_strings)
    assert f"on {MIN_VERDICT_PROMPTS} query prompts or more" in json_help and "'chance'" in json_help


def test_every_json_command_says_wrote_its_file(tmp_path, capsys, fake_minilm):
    """Probe K2: `evaluate --json F` printed no `wrote F` line, where alloc-sim and route-eval did. Every
    command with --json ends its report with it (the list below is checked against the parsers)."""
    from tests.test_cli import _leaf_parsers

    with_json = {name for name, p in _leaf_parsers() if any("--json" in a.option_strings for a in p._actions)}
    hist, queries = _split(tmp_path, n_prompts=24)
    write_log(read_log(hist).with_columns(n=pl.lit(8)), tmp_path / "hn.jsonl")
    runs = {
        "evaluate": ["evaluate", hist, queries, "--head", "prior", "--no-baselines"],
        "route-eval": ["route-eval", hist, queries, "--head", "prior", "--no-baselines"],
        "alloc-sim": ["alloc-sim", tmp_path / "hn.jsonl", "--head", "prior"],
    }
    assert set(runs) == with_json
    for name, argv in runs.items():
        out = tmp_path / f"{name}.json"
        assert main([*map(str, argv), "-q", "--json", str(out)]) == 0, name
        printed = capsys.readouterr().out.splitlines()
        assert f"wrote {out}" in printed, (name, printed[-3:])
        json.loads(out.read_text())  # strict JSON: no NaN
