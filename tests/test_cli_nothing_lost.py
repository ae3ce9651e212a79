"""The CLI loses nothing (issue 27): saves never delete, outputs never overwrite inputs or kept files,
unusable paths are named in the user's terms, and nothing hangs on a FIFO or a closed pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import make_log
from v0lite.cli import build_parser, command_flags, main
from v0lite.log import read_log, write_log

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
    # a file in the way below the root (its embeddings folder): refused before any work, not after encoding
    (tmp / "c3").mkdir()
    (tmp / "c3" / "embeddings").write_text("x")
    monkeypatch.setenv("V0LITE_CACHE", str(tmp / "c3"))
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m")]) == 1
    err = capsys.readouterr().err
    assert f"V0LITE_CACHE={tmp / 'c3'}: {tmp / 'c3' / 'embeddings'} is a file, not a folder. Fix: point" in err
    assert fake_minilm.texts_seen == 0
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
        (["data", "map", str(hist), log, "--policy", "policy", "--prompt", "prompt", "--score", "score"], "OUT"),
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
