"""Output paths checked before any work (_out_checks.py): one set of refusals, each in its caller's terms
(a CLI flag, or a library keyword ``out=`` with ``force=True``), and write_log's own suffix rule."""

from __future__ import annotations

import os

import polars as pl
import pytest

from v0lite._out_checks import check_no_replace, check_output, file_size
from v0lite.exceptions import DataError
from v0lite.log import WRITE_SUFFIXES, write_log

CLI = (".jsonl", ".csv", ".parquet")


def _refusal(path, label, suffixes=CLI) -> str:
    with pytest.raises(DataError) as err:
        check_output(path, label, suffixes)
    return str(err.value)


def test_each_refusal_names_the_flag_or_the_keyword_and_the_fix(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    cases = {  # path -> what the message says, after the caller's name for it
        f"{blocker}/o.csv": f"{blocker} is a file, not a folder. Fix: choose another ",
        f"{tmp_path}/o.csv/": "ends in '/', which names a folder",
        str(fifo): "is a FIFO (named pipe), not a regular file. Fix: pass a regular file",
        "/dev/stdout": "is standard output, not a file; v0lite writes whole files. Fix: ",
        str(tmp_path): "is a directory. Fix: name a file, e.g. ",
        f"{tmp_path}/o.txt": "the name lacks a known suffix",
        f"{tmp_path}/{'n' * 250}.csv": "bytes; at most",
    }
    for path, what in cases.items():
        shown = path if len(path) < 200 else str(tmp_path)  # a long name is cut short in the message
        cli = _refusal(path, "--out")
        assert cli.startswith(f"--out {shown}"), cli
        lib = _refusal(path, "out=")
        assert lib.startswith(f"out={path!r}") or lib.startswith(f"out={shown}"), lib
        assert what in cli and what in lib and "Fix:" in lib
        assert "--out" not in lib  # the library caller is never told a CLI flag
    assert "choose another out." in _refusal(f"{blocker}/o.csv", "out=")
    assert "Fix: drop the slash: out=" in _refusal(f"{tmp_path}/o.csv/", "out=")
    assert "Fix: pass out='out.jsonl', then cat it." in _refusal("/dev/stdout", "out=")
    assert set(tmp_path.iterdir()) == {blocker, fifo}  # a check writes nothing


def test_a_link_into_a_missing_folder_is_refused_and_a_good_path_passes(tmp_path):
    link = tmp_path / "o.csv"
    link.symlink_to(tmp_path / "gone" / "o.csv")
    assert "whose folder does not exist. Fix: create" in _refusal(link, "out=")
    assert check_output(tmp_path / "new" / "o.parquet", "out=", CLI) == tmp_path / "new" / "o.parquet"
    assert check_output(None, "out=", CLI) is None
    assert not (tmp_path / "new").exists()  # a check writes nothing


def test_replacing_a_file_needs_the_callers_own_leave(tmp_path, monkeypatch):
    old = tmp_path / "old.csv"
    old.write_text("mine")
    with pytest.raises(DataError, match=r"^--out .*old.csv: exists \(4 bytes\).*Fix: pass --force .* another --out\."):
        check_no_replace({"--out": old})
    with pytest.raises(DataError, match=r"^out='.*old.csv': exists \(4 bytes\).*Fix: pass force=True .* another out\."):
        check_no_replace({"out=": old}, force_label="force=True")
    check_no_replace({"out=": old}, force=True)
    (tmp_path / "empty.csv").write_text("")
    check_no_replace({"--out": tmp_path / "empty.csv", "--json": None})
    assert old.read_text() == "mine"

    def denied(*a, **kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "stat", denied)  # a file that cannot be looked at: no bare PermissionError here
    assert file_size(old) is None
    check_no_replace({"out=": old}, force_label="force=True")


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson", ".csv", ".parquet", ".PARQUET", ".json", ".txt", ""])
def test_write_log_and_the_check_share_one_suffix_rule(tmp_path, suffix):
    path = tmp_path / f"o{suffix}"
    checked = True
    try:
        check_output(path, "out=", WRITE_SUFFIXES)
    except DataError:
        checked = False
    try:
        write_log(pl.DataFrame({"policy": ["a"]}), path)
        written = True
    except DataError:
        written = False
    assert checked == written == (suffix.lower() in (".jsonl", ".ndjson", ".csv", ".parquet"))
    assert path.exists() == written


def test_a_read_only_file_system_is_named_as_such(tmp_path, monkeypatch):
    """A read-only mount was reported as "permission denied" (os.access says no), hiding the cause."""
    from types import SimpleNamespace

    from v0lite._out_checks import folder_problem

    real = os.statvfs
    monkeypatch.setattr(
        os, "statvfs", lambda p: SimpleNamespace(f_flag=os.ST_RDONLY) if str(p) == str(tmp_path) else real(p)
    )
    assert folder_problem(tmp_path / "new" / "sub") == f"cannot write in {tmp_path} (read-only file system)"
    monkeypatch.setattr(os, "statvfs", real)
    assert folder_problem(tmp_path / "new") is None


def test_folder_problem_asks_the_one_read_only_helper(tmp_path, monkeypatch):
    """The read-only test is _io.read_only_volume's, shared with the serve store (it had its own copy)."""
    from v0lite import _out_checks

    asked = []
    monkeypatch.setattr(_out_checks, "read_only_volume", lambda where: asked.append(where) or True)
    assert _out_checks.folder_problem(tmp_path / "new") == f"cannot write in {tmp_path} (read-only file system)"
    assert asked == [tmp_path]
