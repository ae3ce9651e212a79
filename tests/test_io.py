"""v0lite._io: what an atomic write leaves beside its file, and the paths it names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings

import pytest

from v0lite._io import atomic_path, atomic_write_bytes, read_only_volume, stream_of
from v0lite.exceptions import V0liteWarning

# a writer killed (SIGKILL: no finally, no atexit) halfway through writing its temporary file
_KILLED = r"""
import os, signal, sys
from v0lite._io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_text('{"half": "writ')
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _leftovers(path):
    return sorted(n for n in os.listdir(path.parent) if n.startswith(f".{path.name}."))


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    """Probe K2: ``kill -9`` during ``predict --out`` left ``.NAME.XXXX.tmp`` beside the file for ever. The
    temporary name carries the writer's PID; the next write of the path removes a dead writer's, saying so."""
    out = tmp_path / "k9.jsonl"
    out.write_text('{"old": "file"}\n')
    proc = subprocess.run([sys.executable, "-c", _KILLED, str(out)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    left = _leftovers(out)
    assert len(left) == 1 and left[0].startswith(".k9.jsonl.") and left[0].endswith(".tmp"), left
    assert out.read_text() == '{"old": "file"}\n'  # the old file stays whole
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        atomic_write_bytes(out, b"new\n")
    assert out.read_bytes() == b"new\n" and _leftovers(out) == []
    said = [str(w.message) for w in caught if issubclass(w.category, V0liteWarning)]
    assert len(said) == 1 and left[0] in said[0] and "killed" in said[0], said
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing left: no second warning
        atomic_write_bytes(out, b"again\n")


def test_a_live_writers_temporary_file_and_a_users_own_file_are_kept(tmp_path):
    """Only a dead process's temporary file goes: a write still running elsewhere keeps its own, and a file
    that is not of atomic_path's making (no PID in it) is the user's."""
    out = tmp_path / "x.json"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".x.json.{sleeper.pid}.abcd1234.tmp"
        mine = [tmp_path / ".x.json.backup.tmp", tmp_path / ".x.json.abcd1234.tmp"]
        for f in (live, *mine):
            f.write_text("keep")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            atomic_write_bytes(out, b"{}\n")
        assert live.exists() and all(f.exists() for f in mine)
    finally:
        sleeper.kill()
        sleeper.wait()
    # its process gone, the same leftover is removed; the user's files stay
    with pytest.warns(V0liteWarning, match=live.name):
        atomic_write_bytes(out, b"{}\n")
    assert not live.exists() and all(f.exists() for f in mine)


def test_the_temporary_name_carries_the_pid(tmp_path):
    with atomic_path(tmp_path / "a.json", suffix=".png") as tmp:
        assert tmp.name.startswith(f".a.json.{os.getpid()}.") and tmp.name.endswith(".tmp.png")
        tmp.write_bytes(b"x")


def test_a_process_file_is_named_once():
    """Probe K2: "/proc/1/x.json: is a device or process file (/proc/1/x.json)" repeated the path; the target
    is named only when a link led there."""
    assert stream_of("/proc/1/x.json") == "a device or process file"
    assert stream_of("/dev/stdout") == "standard output"


def test_a_link_into_proc_names_its_target(tmp_path):
    (tmp_path / "lnk.json").symlink_to("/proc/1/x.json")
    assert stream_of(tmp_path / "lnk.json") == "a device or process file (/proc/1/x.json)"


def test_json_bytes_is_strict_and_the_clis_json_is_built_before_any_write(tmp_path):
    """Probe K2: commands.core.jsonable duplicated to_jsonable; json_bytes wrote NaN (not JSON). Now one
    sanitiser, a strict writer, and one CLI helper that fails in --json's terms before a byte is written."""
    import math

    from v0lite._io import json_bytes
    from v0lite.commands._common import json_bytes as cli_json_bytes
    from v0lite.commands._common import write_json
    from v0lite.exceptions import DataError

    with pytest.raises(ValueError):
        json_bytes({"a": math.nan})
    assert (
        cli_json_bytes("r.json", {"a": math.nan, "b": (1, math.inf)})
        == b'{\n  "a": null,\n  "b": [\n    1,\n    null\n  ]\n}\n'
    )
    with pytest.raises(DataError, match=r"^--json r.json: the result cannot be written as JSON"):
        cli_json_bytes("r.json", {"a": object()})
    out = tmp_path / "r.json"
    with pytest.raises(DataError):
        write_json(str(out), {"a": object()})
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_folder_saves_leftover_of_the_same_name_is_left_to_the_folder_sweep(tmp_path):
    """A dead folder save leaves `.x.PID.abcd1234.tmp` (a folder); the file sweep took it for its own and said
    "could not remove ... (delete by hand)"."""
    import warnings

    from v0lite._io import sweep_dead_temps

    dead = tmp_path / ".x.999999999.abcd1234.tmp"
    dead.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sweep_dead_temps(tmp_path, "x")
    assert dead.is_dir()


def test_read_only_volume_reads_the_flag_and_says_none_when_it_cannot_tell(tmp_path, monkeypatch):
    """One reading of statvfs's ST_RDONLY for the output checks and the serve store (three copies before)."""
    from types import SimpleNamespace

    assert read_only_volume(tmp_path) in (False, True)  # a real volume: a bool (tests may run on a read-only one)
    assert read_only_volume(SimpleNamespace(f_flag=os.ST_RDONLY | os.ST_NOSUID)) is True  # what statvfs said
    assert read_only_volume(SimpleNamespace(f_flag=os.ST_NOSUID)) is False
    ro = str(tmp_path / "ro")
    real = os.statvfs
    monkeypatch.setattr(os, "statvfs", lambda p: SimpleNamespace(f_flag=os.ST_RDONLY) if str(p) == ro else real(p))
    assert read_only_volume(ro) is True and read_only_volume(tmp_path) is False
    assert read_only_volume(tmp_path / "missing" / "x") is None  # cannot be looked at: the caller's check speaks

    def missing(p):
        raise FileNotFoundError(2, "No such file or directory", str(p))

    monkeypatch.setattr(os, "statvfs", missing)
    assert read_only_volume(ro) is None
    monkeypatch.delattr(os, "statvfs")  # not POSIX
    assert read_only_volume(ro) is None
