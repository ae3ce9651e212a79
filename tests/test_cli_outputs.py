"""The CLI's inputs and outputs (v0lite/cli.py's checks before any work): an output never overwrites an
input, nor another output; a stream, device or socket path is refused without being opened."""

from __future__ import annotations

import os
import socket

import polars as pl
import pytest

from tests.conftest import make_log
from v0lite.cli import main
from v0lite.log import write_log


@pytest.fixture
def logs(tmp_path):
    log = make_log(steps=True)
    hist = write_log(log.filter(pl.col("prompt").str.contains("case [0-8]$")), tmp_path / "hist.jsonl")
    queries = write_log(log.filter(~pl.col("prompt").str.contains("case [0-8]$")), tmp_path / "queries.csv")
    return tmp_path, hist, queries


def _refused(argv, capsys, needle):
    """``main(argv)`` exits 1 before any work with one line holding ``needle`` and a fix."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 1 and needle in err and "Fix: choose another" in err and err.count("\n") == 1, (argv, err)


def test_a_path_read_through_an_option_is_never_an_output(logs, capsys, guarantees):
    """--prices, --router and --encoder name files or folders the command reads: no output may be one of
    them or a file inside one, even with --force."""
    tmp, hist, queries = logs
    prices = tmp / "p.json"
    prices.write_text('{"pol0": 1.0, "pol1": 2.0, "pol2": 3.0}')
    folder = tmp / "saved"  # stands in for a router or an encoder folder: the check is before any reading
    folder.mkdir()
    inside = folder / "x.json"
    inside.write_text("{}\n")
    kept = [prices.read_bytes(), inside.read_bytes()]
    evaluate = ["route-eval", hist, queries]
    _refused([*evaluate, "--prices", prices, "--json", prices, "--force"], capsys, f"is the input --prices {prices}")
    _refused(
        ["route", queries, "--router", folder, "--out", inside, "--force"],
        capsys,
        f"is a file inside the input folder --router {folder}",
    )
    _refused(
        [*evaluate, "--encoder", folder, "--json", inside, "--force"],
        capsys,
        f"is a file inside the input folder --encoder {folder}",
    )
    assert [prices.read_bytes(), inside.read_bytes()] == kept
    guarantees.tick("bad-input cases tried", 3)


def test_two_outputs_are_never_one_file(logs, capsys, guarantees):
    tmp, hist, queries = logs
    both = tmp / "x.json"
    _refused(["route-eval", hist, queries, "--json", both, "--plot", both], capsys, "one output would overwrite")
    assert not both.exists()
    guarantees.tick("bad-input cases tried")


def test_device_socket_and_fifo_paths_are_refused_by_kind(tmp_path, capsys, guarantees):
    """Not regular files: refused at once (never opened: a FIFO with no writer or a socket would hang), each
    named by what it is."""
    out = tmp_path / "p.jsonl"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "s.jsonl"))
    out_fifo = tmp_path / "out.jsonl"
    os.mkfifo(out_fifo)
    hist = tmp_path / "m.jsonl"
    cases = [
        (["/dev/null", out], "LOG /dev/null: is a character device, not a regular file"),
        ([tmp_path / "s.jsonl", out], f"LOG {tmp_path / 's.jsonl'}: is a socket, not a regular file"),
        ([hist, out_fifo], f"LOG {hist}: does not exist"),  # the missing input is named first
    ]
    try:
        for paths, needle in cases:
            capsys.readouterr()
            assert main(["data", "prompts", *map(str, paths)]) == 1
            err = capsys.readouterr().err
            assert needle in err and "Fix: pass" in err, err
        write_log(make_log(), hist)
        capsys.readouterr()
        assert main(["data", "prompts", str(hist), str(out_fifo)]) == 1
        err = capsys.readouterr().err
        assert f"OUT {out_fifo}: is a FIFO (named pipe), not a regular file" in err and "Fix: pass" in err, err
    finally:
        sock.close()
    assert out_fifo.is_fifo() and not out.exists()  # nothing written, the FIFO left as it was
    guarantees.tick("bad-input cases tried", 4)


def test_a_nested_column_and_a_csv_out_are_refused_before_any_work(logs, capsys, fake_minilm, monkeypatch):
    """Probe K2: a list/struct column passed through to a .csv --out died with polars' ComputeError after
    the predictions (predict) or the routing (route). Refused right after the input is read, naming --out,
    the column and the fix; write_log refuses the same for a library caller, writing nothing."""
    from v0lite.estimator import V0Regressor
    from v0lite.exceptions import DataError

    tmp, hist, queries = logs
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "knn", "-q"]) == 0
    nested = pl.read_csv(queries).with_columns(meta=pl.struct(id=pl.lit(1), tags=pl.lit(["a"])))
    write_log(nested, tmp / "q.jsonl")

    def no_work(*a, **k):
        raise AssertionError("the model was loaded: the refusal came after the work began")

    monkeypatch.setattr(V0Regressor, "load", no_work)
    runs = {
        "predict": ["predict", tmp / "q.jsonl", "--model-dir", tmp / "m", "--out", tmp / "o.csv"],
        "route": ["route", tmp / "q.jsonl", "--model-dir", tmp / "m", "--pool", "pol0,pol1", "--out", tmp / "o.csv"],
    }
    for name, argv in runs.items():
        capsys.readouterr()
        assert main([*map(str, argv), "-q"]) == 1, name
        err = capsys.readouterr().err
        assert f"--out {tmp / 'o.csv'}: column 'meta' holds nested values" in err, err
        assert f"Fix: --out {tmp / 'o.jsonl'} or .parquet, or drop the column 'meta'" in err and "Traceback" not in err
        assert not (tmp / "o.csv").exists()
    with pytest.raises(DataError, match="column 'meta' holds nested values") as exc:
        write_log(nested, tmp / "lib.csv")
    assert exc.value.column == "meta" and not any(p.name.startswith((".lib.csv", "lib.csv")) for p in tmp.iterdir())
    assert write_log(nested, tmp / "lib.jsonl").exists()  # a format that holds it is written as before


def test_a_printed_table_has_no_trailing_spaces(capsys):
    """Probe K2: print_table padded its last column, leaving trailing spaces on every line."""
    from v0lite.commands.core import print_table

    print_table([{"a": "x", "b": ""}, {"a": "longer", "b": "yy"}], ["a", "b"])
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["a       b", "x", "longer  yy"]
