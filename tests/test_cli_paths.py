"""Paths as users type them (v0lite/commands/_common.py's checks, v0lite/_io.atomic_path): a standard
stream, a quoted ``~``, a trailing slash and an unreadable encoding are refused in flag terms before any
work; a symlinked output file is written through, the link kept."""

from __future__ import annotations

import os
import shlex

import polars as pl
import pytest

from tests.conftest import make_log
from v0lite._io import atomic_write_bytes, stream_of
from v0lite.cli import main
from v0lite.log import write_log

PRICES = '{"pol0": 1.0, "pol1": 2.0, "pol2": 3.0}'


@pytest.fixture
def log(tmp_path, monkeypatch):
    """A priced log in a tmp working folder (``data prices`` reads it: no embedding, no model)."""
    monkeypatch.chdir(tmp_path)
    frame = make_log().with_columns(cost=pl.lit(0.001))
    return write_log(frame, tmp_path / "log.jsonl")


def _refused(argv, capsys, *needles):
    """``main(argv)`` exits 1 with one line holding every needle; returns that line."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _standin(tmp_path, name="out.json"):
    """A stand-in for ``/dev/stdout`` inside tmp_path: a link to ``/proc/self/fd/1`` (the real one is never
    touched: renaming onto it would break the machine)."""
    link = tmp_path / name
    link.symlink_to("/proc/self/fd/1")
    return link


def test_stream_of_names_the_standard_streams_and_devices(tmp_path):
    assert stream_of("/dev/stdout") == stream_of("/dev/fd/1") == stream_of("/proc/self/fd/1") == "standard output"
    assert stream_of("/dev/stderr") == "standard error"
    assert stream_of(_standin(tmp_path)) == "standard output"
    assert stream_of("/dev/null").startswith("a device or process file")
    assert stream_of("/dev/shm/x.json") is None  # a plain (memory) folder
    assert stream_of(tmp_path / "x.json") is None


def test_a_standard_stream_as_output_is_refused_and_the_link_kept(log, tmp_path, capsys):
    """``--json /dev/stdout > file``: the shell made the file empty and the link leads to it; the atomic
    rename would have replaced the link. Refused first, even with --force, and never for a name under /dev."""
    link = _standin(tmp_path)
    err = _refused(["data", "prices", log, link, "--force"], capsys, "is standard output, not a file",
                   "v0lite writes whole files", "Fix: pass a file as OUT, e.g. out.json, then cat it.")  # fmt: skip
    assert "/dev" not in err.partition("Fix:")[2]
    queries = write_log(make_log(seed=1), tmp_path / "q.jsonl")
    _refused(["evaluate", log, queries, "--json", link], capsys, "Fix: --json metrics.json, then cat it.")
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"
    with pytest.raises(OSError, match="standard output"):  # the library too: nothing renamed onto the link
        atomic_write_bytes(link, b"{}")
    assert link.is_symlink()


def test_a_prices_file_in_utf16_is_named_and_a_bom_accepted(log, tmp_path, capsys):
    from v0lite.commands.route import parse_prices

    (tmp_path / "p16.json").write_bytes(PRICES.encode("utf-16"))
    _refused(["route-eval", log, log, "--prices", "p16.json"], capsys, "--prices p16.json", "UTF-16", "Fix: re-encode")
    (tmp_path / "pbom.json").write_bytes(b"\xef\xbb\xbf" + PRICES.encode())
    assert parse_prices("pbom.json") == {"pol0": 1.0, "pol1": 2.0, "pol2": 3.0}


def test_a_symlinked_output_file_is_written_through(log, tmp_path, capsys):
    """The link stays a link and its target gets the whole file (a plain file replacing the link would
    leave the target stale); a dangling link's target is created if its folder exists."""
    real = tmp_path / "real.json"
    real.write_text("{}")
    (tmp_path / "lnk.json").symlink_to("real.json")
    assert main(["data", "prices", str(log), "lnk.json", "--force"]) == 0
    assert (tmp_path / "lnk.json").is_symlink() and "pol0" in real.read_text()
    (tmp_path / "dangling.json").symlink_to("new.json")
    assert main(["data", "prices", str(log), "dangling.json"]) == 0
    assert (tmp_path / "dangling.json").is_symlink() and "pol0" in (tmp_path / "new.json").read_text()
    (tmp_path / "lost.json").symlink_to("nofolder/x.json")
    _refused(["data", "prices", log, "lost.json"], capsys, "whose folder does not exist", "Fix: create")
    assert not (tmp_path / "nofolder").exists() and (tmp_path / "lost.json").is_symlink()


def test_a_quoted_tilde_is_refused_not_made_a_folder(log, tmp_path, capsys):
    fix = "Fix: leave ~ unquoted, or write $HOME/"
    _refused(["data", "prices", log, "~/p.json"], capsys, "OUT ~/p.json: starts with a literal '~'", fix + "p.json")
    _refused(["data", "prices", "~/log.jsonl", "p.json"], capsys, "LOG ~/log.jsonl", fix)
    _refused(["fit", log, "--model-dir", "~/m"], capsys, "--model-dir ~/m", fix)
    _refused(["serve", "--router", "r", "--data-dir", "~/store"], capsys, "--data-dir ~/store", fix)
    assert not (tmp_path / "~").exists()


def test_a_trailing_slash_on_an_output_file_is_refused(log, tmp_path, capsys):
    _refused(
        ["data", "prices", log, "p.json/"], capsys, "ends in '/', which names a folder", "Fix: drop the slash: p.json"
    )
    assert not (tmp_path / "p.json").exists()


def test_printed_commands_quote_their_paths(log, tmp_path, capsys):
    """A follow-up command printed with a path holding a space runs as printed."""
    from v0lite.exceptions import DataError
    from v0lite.serve._state import load_router

    path = str(tmp_path / "my router")
    with pytest.raises(DataError, match="does not exist") as info:
        load_router(path)
    assert f"--save-router {shlex.quote(path)}`" in str(info.value)
    _refused(
        ["predict", log, "--model-dir", "m d", "--out", "o.jsonl"], capsys, "`v0lite fit HISTORY --model-dir 'm d'`"
    )


def test_a_name_too_long_with_the_temporary_one_is_refused_before_the_work(log, tmp_path, capsys):
    """The file system takes 255 bytes a name; v0lite's temporary name beside an output adds some. A name
    that fits alone but not with it was refused only after the work, as "[Errno 36] File name too long"
    (over 255: a bare errno from the first check)."""
    from v0lite._io import TMP_FILE_EXTRA
    from v0lite.exceptions import DataError
    from v0lite.persist import TMP_FOLDER_EXTRA, check_save_target

    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    fix = "(v0lite writes a temporary file beside it first). Fix: shorten it."
    for size in (250, 300):
        name = "a" * (size - 5) + ".json"
        err = _refused(["data", "prices", log, name], capsys, f"OUT {name[:24]}...: the name is {size} bytes", fix)
        assert f"at most {limit - TMP_FILE_EXTRA} fit here" in err and "Errno" not in err
    err = _refused(["fit", log, "--model-dir", "m" * 250], capsys, "--model-dir mmm", "the name is 250 bytes",
                   f"at most {limit - TMP_FOLDER_EXTRA} fit here (v0lite writes a temporary folder")  # fmt: skip
    _refused(["data", "prices", log, f"{'d' * 300}/p.json"], capsys, "the folder name ddd", "is 300 bytes")
    with pytest.raises(DataError, match="the name is 250 bytes"):
        check_save_target(tmp_path / ("m" * 250))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]  # nothing written, no leftovers
    # the bounds are not stricter than needed: the longest names allowed are written
    longest = "b" * (limit - TMP_FILE_EXTRA - 5) + ".json"
    assert main(["data", "prices", str(log), longest]) == 0 and (tmp_path / longest).is_file()
    check_save_target(tmp_path / ("m" * (limit - TMP_FOLDER_EXTRA)))


def test_a_file_name_starting_with_a_dash_gets_a_hint(log, tmp_path, capsys):
    """argparse reads ``-x.jsonl`` as a flag: "HISTORY is required" or "--out expected one argument" alone
    does not say why. The hint joins argparse's one error line; a mistyped flag gets none."""

    def last_line(argv):
        capsys.readouterr()
        assert main(argv) == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    (tmp_path / "-x.jsonl").write_bytes(log.read_bytes())
    line = last_line(["fit", "-x.jsonl", "--model-dir", "m"])
    assert line.startswith("v0lite fit: error: the following arguments are required: HISTORY")
    assert line.endswith(" (-x.jsonl is read as a flag: pass ./-x.jsonl)")
    line = last_line(["predict", "--model-dir", "m", "q.jsonl", "--out", "-o.jsonl"])  # no such file: its suffix
    assert line.startswith("v0lite predict: error: argument --out: expected one argument")
    assert line.endswith(" (-o.jsonl is read as a flag: pass ./-o.jsonl, or --out=-o.jsonl)")
    assert "read as a flag" in last_line(["data", "prices", "-q.csv", "p.json"])  # -q takes ".csv": still a file
    assert "read as a flag" not in last_line(["fit", "--model-dir", "m", "-zz"])
    assert main(["data", "prices", "./-x.jsonl", "p.json"]) == 0  # the hint's fix works
