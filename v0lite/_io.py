"""Low-level I/O: atomic writes, checksums, safetensors arrays, JSON-ready values.

Atomic writes go to a temporary file in the same folder, fsync, then rename, so a reader sees
either the old file or the whole new one, never half of it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import stat
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = [
    "read_json_file",
    "atomic_path",
    "stream_of",
    "TMP_FILE_EXTRA",
    "LIVE_WRITE_S",
    "TEMP_ID",
    "writer_alive",
    "sweep_dead_temps",
    "name_too_long",
    "read_only_volume",
    "atomic_write_bytes",
    "atomic_write_json",
    "usual_permissions",
    "sha256_file",
    "save_arrays",
    "load_arrays",
    "write_failure",
    "exchange_paths",
    "through_links",
    "newest_file",
    "remove_path",
    "remove_replaced",
    "to_jsonable",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", *, sweep: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    A symlink is written through: the temporary file goes beside its final target, which the rename
    replaces (renaming onto the link would replace the link with a plain file and leave its target
    stale). A stream (``/dev/stdout``, a link into ``/proc/*/fd``) is refused: it has no name to rename onto.

    The temporary file is ``.NAME.PID.XXXXXXXX.tmp``: one that a killed writer (``kill -9``) left is removed
    by the next write of ``path``, with a warning naming it, once its process is gone (:func:`writer_alive`,
    the rule that a saved folder's leftovers follow); a write still running in another process keeps its own.
    ``sweep=False``: the caller swept the folder itself (:func:`sweep_dead_temps`), so it is not listed twice.
    """
    what = stream_of(path)
    if what:
        raise OSError(errno.EINVAL, f"cannot write {path}: it is {what}, not a file; whole files are written")
    path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if sweep:
            _remove_dead_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{suffix}", dir=path.parent)
    except OSError as exc:  # name the caller's path, not the hidden temporary file
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp_path, path)
    except OSError as exc:  # a disk that refused the write (full, read-only): name the caller's path
        if write_failure(exc) is None or str(path) in str(exc):
            raise
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


# What atomic_path adds to a name for its temporary file: "." NAME "." PID "." + mkstemp's 8 random characters
# + ".tmp", a PID of at most 7 digits (pid_max <= 2**22), plus the longest suffix a caller keeps on it
# (v0lite.routing._plot's ".png": matplotlib reads it).
TMP_FILE_EXTRA = len(".." + "9" * 7 + "." + "x" * 8 + ".tmp" + ".png")
# what follows ".NAME." in a temporary file or folder of a write (atomic_path, persist's folder saves): the
# writer's PID (the regex group), mkstemp's / mkdtemp's 8 characters, ".tmp"
TEMP_ID = r"(\d+)\.[a-z0-9_]{8}\.tmp"
# a leftover older than this is a dead writer's even if its PID runs again (a reused PID, a new process)
LIVE_WRITE_S = 3600.0


def writer_alive(pid: int, leftover: Path, live_s: float = LIVE_WRITE_S) -> bool:
    """Whether ``leftover``, named with the PID of the process writing it, belongs to a write still running.

    The process exists (``os.kill(pid, 0)``; another user's process counts as existing) and ``leftover``
    changed within ``live_s`` seconds; a leftover that is gone is no live write.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        pass
    try:
        return time.time() - leftover.stat().st_mtime < live_s
    except OSError:
        return False


def _remove_dead_temps(path: Path) -> None:
    """Remove the temporary files a killed write of ``path`` left beside it (``.NAME.PID.XXXXXXXX.tmp``, its
    process gone); warn once, naming them. This process's own are left alone: another thread may be writing."""
    sweep_dead_temps(path.parent, re.escape(path.name), path, stacklevel=5)


def sweep_dead_temps(folder: Path, name_re: str, path: Path | None = None, stacklevel: int = 4) -> None:
    """Remove the temporary files that killed writes left in ``folder`` of any file whose name matches
    ``name_re`` (a regex): for files never written again under the same name (the embedding cache's shards,
    named by their contents), which :func:`atomic_path`'s own sweep of one name never meets. ``path``: the one
    file whose leftovers these are, named by the warning (default: the warning names the folder)."""
    pat = re.compile(r"^\.(?:" + name_re + r")\." + TEMP_ID + r"(?:\.[A-Za-z0-9]+)?$")
    try:
        names = sorted(os.listdir(folder))
    except OSError:  # the write that follows says why, naming the caller's path
        return
    removed, kept = [], []
    for name in names:
        m = pat.match(name)
        leftover = Path(folder) / name
        if not m or int(m.group(1)) == os.getpid() or writer_alive(int(m.group(1)), leftover):
            continue
        if leftover.is_dir():  # a folder save's leftover of the same grammar: persist's own sweep handles it
            continue
        try:
            leftover.unlink()
            removed.append(name)
        except FileNotFoundError:  # another writer removed it first
            pass
        except OSError:
            kept.append(name)
    if removed or kept:
        from .exceptions import V0liteWarning

        said = [f"removed {', '.join(removed)}"] if removed else []
        said += [f"could not remove {', '.join(kept)} (delete by hand)"] if kept else []
        where = f"{path}: {'; '.join(said)} beside it" if path else f"{folder}: {'; '.join(said)} in it"
        warnings.warn(f"{where}, left by a write that was killed (its process is gone)", V0liteWarning, stacklevel)


def read_only_volume(where) -> bool | None:
    """Whether a file system is mounted read-only (``ST_RDONLY``): the cause a permission check would hide
    behind "permission denied". ``where``: a path on it, or what :func:`os.statvfs` said of one (a caller that
    also reads its free space). None where it cannot be told: no ``statvfs`` (not POSIX), or a path that
    cannot be looked at (the caller's own check speaks then).

    Examples
    --------
    >>> read_only_volume(".") in (True, False, None)
    True
    """
    try:
        st = where if hasattr(where, "f_flag") else os.statvfs(where)
        return bool(st.f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):
        return None


def name_too_long(path: str | os.PathLike, extra: int, kind: str = "file") -> str | None:
    """Why ``path`` cannot be written, when a name in it is longer than its file system takes; else None.

    The last name gets ``extra`` bytes more: the temporary name a writer puts beside it first
    (:data:`TMP_FILE_EXTRA`; :data:`v0lite.persist.TMP_FOLDER_EXTRA` for a saved folder). A folder on the
    way that does not exist yet is created under its own name. The limit is the nearest existing folder's
    ``NAME_MAX`` (255 where it cannot be read). A symlink at the end is followed, as :func:`atomic_path` does.

    Parameters
    ----------
    path : str or Path
        The file or folder to be written.
    extra : int
        Bytes the writer's temporary name adds to the last name.
    kind : str
        What the temporary beside it is (``"file"``, ``"folder"``), for the message.

    Returns
    -------
    str or None
        ``"PATH: the name is N bytes; at most M fit here (...). Fix: shorten it."`` with the long name cut
        short in PATH, for the caller to prefix with its flag; None when every name fits.
    """
    full = Path(os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path))
    base = full.parent
    while not os.path.isdir(base):  # isdir, not Path.exists: a too-long name there raises rather than says False
        base = base.parent
    try:
        limit = os.pathconf(base, "PC_NAME_MAX")
    except (OSError, ValueError):  # no such limit here (or not POSIX): the usual one
        limit = 255
    new = full.parts[len(base.parts) :]
    for i, part in enumerate(new):
        last = i == len(new) - 1
        size, room = len(os.fsencode(part)), limit - (extra if last else 0)
        if size <= room:
            continue
        short = part[:24] + "..."
        shown = str(path).replace(part, short) if part in str(path) else str(full).replace(part, short)
        if last:
            why = (
                f"the name is {size} bytes; at most {room} fit here (v0lite writes a temporary {kind} beside it first)"
            )
        else:
            why = f"the folder name {short} is {size} bytes; at most {room} fit here"
        return f"{shown}: {why}. Fix: shorten it."
    return None


_STD = {"0": "standard input", "1": "standard output", "2": "standard error"}
_STD_DEV = {"stdin": "0", "stdout": "1", "stderr": "2"}


def stream_of(path: str | os.PathLike) -> str | None:
    """What ``path`` names when it, or a link on the way to its target, lies under ``/dev`` or ``/proc``:
    ``"standard output"`` (``/dev/stdout``, ``/dev/fd/1``, a link to ``/proc/self/fd/1``), the other
    standard streams likewise, or ``"a device or process file"`` (``"... (TARGET)"`` when a link led to it);
    None for anything else.

    Each link is followed by hand: ``/proc/self/fd/1`` resolves to wherever the shell sent the output
    (``> file``: a plain file), so only the path on the way says it is a stream. ``/dev/shm`` is a
    plain folder (a memory file system) and passes.
    """
    hop = os.path.abspath(path)
    hops = [hop]
    for _ in range(40):  # the kernel's own limit on links followed
        try:
            target = os.readlink(hop)
        except OSError:  # not a link (or gone): the end of the chain
            break
        hop = os.path.normpath(os.path.join(os.path.dirname(hop), target))
        hops.append(hop)
    hops.append(os.path.realpath(path))  # a linked folder on the way (out/ -> /dev)
    for hop in hops:
        parts = Path(hop).parts
        if len(parts) < 2 or parts[1] not in ("dev", "proc") or parts[1:3] == ("dev", "shm"):
            continue
        fd = _STD_DEV.get(parts[2]) if parts[1] == "dev" and len(parts) == 3 else None
        if fd is None and len(parts) >= 3 and parts[-2] == "fd":
            fd = parts[-1]
        # the target named only where a link led to it: the path itself is already in the caller's message
        return _STD.get(fd) or ("a device or process file" + (f" ({hop})" if hop != hops[0] else ""))
    return None


def _umask() -> int:
    """The process umask: read from ``/proc`` where there is one (setting it to read it would, for a moment,
    give files other threads create no mask), else set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_permissions(root: str | os.PathLike) -> None:
    """Give ``root`` and everything under it the permissions a plain ``open``/``mkdir`` gives under the
    process umask: folders ``0o777 & ~umask``, files ``0o666 & ~umask``. Temporary folders and files
    (``mkdtemp``/``mkstemp``: 0700/0600) and safetensors' writer (0600) make them private, so a saved
    folder would be unreadable to another user (a service account) though the umask allows it."""
    mask = _umask()
    root = Path(root)
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~mask)
        for name in filenames:
            f = os.path.join(dirpath, name)
            if not os.path.islink(f):
                os.chmod(f, 0o666 & ~mask)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, sweep: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (``sweep``: as :func:`atomic_path`)."""
    with atomic_path(path, sweep=sweep) as tmp:
        tmp.write_bytes(data)


def json_bytes(obj) -> bytes:
    """``obj`` as indented, key-sorted JSON (sorted keys keep saves byte-identical), UTF-8, newline-ended; strict:
    a NaN or infinity raises ``ValueError`` (pass it through :func:`to_jsonable` first: null)."""
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as :func:`json_bytes` atomically."""
    atomic_write_bytes(path, json_bytes(obj))


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_arrays(path: str | os.PathLike, arrays: dict) -> None:
    """Write numeric arrays to a safetensors file (contiguous copies)."""
    import numpy as np
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import sys

    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # a libc without renameat2 (glibc < 2.28)
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):  # a file system without it
        return False
    raise OSError(err, os.strerror(err), str(b))


def through_links(path: Path) -> Path:
    """``path`` with a symlink at its end followed to the folder it names, so a save replaces that
    folder and the link stays; any other path as it is."""
    try:
        return path.resolve() if path.is_symlink() else path
    except (OSError, RuntimeError):  # a symlink loop: left to the caller's own check
        return path


def newest_file(tmp: Path, named) -> Path | None:
    """The file under ``tmp`` a failed write was writing: ``named`` when it is under ``tmp``, else the newest."""
    if isinstance(named, str) and tmp in Path(named).parents:
        return Path(named)
    stamps = {}
    for f in tmp.rglob("*") if tmp.is_dir() else ():
        with contextlib.suppress(OSError):
            stamps[f] = f.stat().st_mtime_ns if f.is_file() else None
    return max((f for f in stamps if stamps[f] is not None), key=stamps.get, default=None)


def remove_path(p: Path) -> None:
    """Remove a folder, file or symlink (never following the link); errors are ignored."""
    if p.is_symlink() or (p.exists() and not p.is_dir()):
        with contextlib.suppress(OSError):
            p.unlink()
    else:
        shutil.rmtree(p, ignore_errors=True)


def remove_replaced(old: Path, path: Path) -> None:
    """Remove the folder a save replaced, now at ``old``; one that cannot be removed is named in a warning
    (else every later load would take it for an interrupted save's leftover, with no reason given)."""
    try:
        shutil.rmtree(old)
    except OSError as exc:
        shutil.rmtree(old, ignore_errors=True)  # as much as can go
        from .exceptions import V0liteWarning

        warnings.warn(
            f"saved {path}, but the folder it replaced, now {old}, could not be removed ({exc.strerror or exc}). "
            f"Fix: remove it by hand (chmod -R u+w {shlex.quote(str(old))}, then delete it).",
            V0liteWarning,
            stacklevel=4,
        )


# the errors of a write the disk refused (full, over quota, read-only, denied, failing, too big); any other
# error, even an OSError (a missing folder, a folder where a file goes), is a bug's or the caller's, not the disk's
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG)


def write_failure(exc: BaseException) -> str | None:
    """Why a write failed, in the system's words (``"No space left on device"``), when ``exc`` is a write the
    disk refused; else None (a bug, or a path that is wrong: the caller re-raises it as it is).

    A refused write is an ``OSError`` whose ``errno`` is one of ``_WRITE_ERRNOS``, or another library's error
    quoting such a number (safetensors' ``SafetensorError``: "... No space left on device (os error 28)";
    "[Errno 28] ..." in the text of one that wraps an ``OSError``). A phrase alone is not enough: "Operation
    not permitted on a frozen graph" is a library's own refusal, not the disk's.
    """
    if isinstance(exc, OSError):
        return (exc.strerror or os.strerror(exc.errno)) if exc.errno in _WRITE_ERRNOS else None
    m = re.search(r"os error (\d+)|\[Errno (\d+)\]", str(exc))
    code = int(m.group(1) or m.group(2)) if m else None
    return os.strerror(code) if code in _WRITE_ERRNOS else None


def load_arrays(path: str | os.PathLike) -> dict:
    """Read a safetensors file into numpy arrays; an unreadable file raises ``FormatVersionError``."""
    from safetensors.numpy import load_file

    from .exceptions import FormatVersionError

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError type
        raise FormatVersionError(f"{path}: not a readable safetensors file ({exc}). Fix: re-save the model.") from exc


def to_jsonable(obj: Any, default: Callable[[Any], Any] = str) -> Any:
    """``obj`` as plain JSON values, recursively.

    Dict keys become strings, tuples and arrays lists, numpy scalars Python numbers, NaN and
    infinities ``None``; any other object goes through ``default`` (``str`` unless told).

    Examples
    --------
    >>> to_jsonable({"a": (1, float("nan")), 2: object}, default=lambda o: "obj")
    {'a': [1, None], '2': 'obj'}
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, default) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, default) for v in obj]
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if type(obj).__module__ == "numpy":  # numpy scalars and arrays, without importing numpy here
        if hasattr(obj, "tolist"):
            return to_jsonable(obj.tolist(), default)
    return default(obj)


def read_json_file(path):
    """The JSON in ``path``, read only if a regular file (a FIFO would block); ``OSError``, or ``ValueError`` for
    another kind of file, what is not UTF-8 JSON, or what the parser refuses (too deep, a 5000-digit integer)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
            raise ValueError(f"{Path(path).name} is {kind}, not a file")
        with open(fd, "rb", closefd=False) as fh:
            text = fh.read().decode("utf-8")
        return json.loads(text)
    except RecursionError as exc:  # not a JSONDecodeError: callers catch ValueError
        raise ValueError("nested too deeply") from exc
    finally:
        os.close(fd)
