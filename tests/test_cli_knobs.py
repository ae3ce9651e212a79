"""The CLI's knobs (issue 27): out-of-range values are argument errors naming the flag, refused before
any work, and every fix a command or the library prints names a flag that command has."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.conftest import make_log
from v0lite.cli import build_parser, main
from v0lite.log import read_log, write_log

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
