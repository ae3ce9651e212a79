"""The model-folder format: save and load without pickle, so loading never runs code from the files.

Layout of a model folder::

    meta.json              format name + version, parameters, policies, head metadata, sha256 of every file
    history.safetensors    embeddings and outcome rows (numeric arrays only)
    head/                  the head's own files (LightGBM text, safetensors, JSON)

A save never removes what it did not write: the target must be absent, an empty folder, or a
folder of the same format holding only the files its ``meta.json`` lists
(:func:`check_save_target`, also called by the CLI before any work). The folder is written
beside the target under a temporary name (``.NAME.PID.XXXX.tmp``) and swapped into place in one
atomic step (Linux ``renameat2(RENAME_EXCHANGE)``), so a reader finds the old folder or the new
one at every instant. Where the swap is not available, the old folder is first renamed to
``.NAME.old-PID``; a crash between the two renames leaves no folder at the path for a moment,
and the next save or load restores it (:func:`recover_leftovers`). Leftovers of a killed save
are removed by the next save or load, with a :class:`~v0lite.exceptions.V0liteWarning`. Every
file's checksum is verified on load (checksums catch accidents, not tampering: anyone who can
edit the folder can recompute them).

This module knows the folder, not the estimator: :meth:`v0lite.estimator.V0Regressor.save`
and ``load`` own their state and call :func:`save_model_folder` / :func:`read_model_folder`.
:func:`write_folder` / :func:`read_folder` are the format-agnostic part (checksums, version
check, atomic swap), also used by the router's folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable

from . import _io
from ._io import (
    TEMP_ID,
    atomic_write_json,
    load_arrays,
    read_json_file,
    save_arrays,
    sha256_file,
    usual_permissions,
    writer_alive,
)
from ._io import exchange_paths as _exchange
from ._model_params import FALLBACKS, batch_size_ok, saved_head_problem, seed_ok
from .exceptions import DataError, FormatVersionError, V0liteError, V0liteWarning

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ROUTER_FORMAT",
    "save_model_folder",
    "read_model_folder",
    "write_folder",
    "read_folder",
    "check_save_target",
    "folder_format",
    "recover_leftovers",
    "check_model_meta",
    "load_head_safely",
    "smoke_predict",
]

FORMAT_NAME = "v0lite-model"
FORMAT_VERSION = 1
# the router folder's format (routing/_router_folder.py writes it); named here so that code below
# routing (the CLI's model-folder check) can tell the two folders apart without importing routing
ROUTER_FORMAT = "v0lite-router"

# how to re-save each folder: the fix of every error loading finds in one
MODEL_FIX = "re-save the model: refit it (`v0lite fit HISTORY --model-dir DIR`, or V0Regressor(...).fit(...).save(DIR))"
ROUTER_FIX = "re-save the router: save it again (`v0lite route-eval TRAIN TEST --save-router DIR`)"
# another kind of v0lite folder than the one loaded: what it is and how to load it
_OTHER_KIND = {
    FORMAT_NAME: "a v0lite model folder (saved by V0Regressor.save or `v0lite fit`), not a router. Fix: load it "
    "with V0Regressor.load(path), or make a router of it: Router(V0Regressor.load(path), ...).fit(log).save(DIR).",
    ROUTER_FORMAT: "a v0lite router folder (saved by Router.save or `v0lite route-eval --save-router`), not a model. "
    "Fix: load it with Router.load(path), or its value model with V0Regressor.load(path / 'value_model').",
}
# A test seam: called with the name of each step of a save ("tmp", "filled", "meta", "swapped",
# "moved-old", "renamed", "done"), so a test can kill the process between any two steps.
_STEP_HOOK: Callable[[str], None] | None = None
# a leftover whose process is alive is a save in progress, unless it is older than this
_LIVE_SAVE_S = 3600.0


def _step(name: str) -> None:
    if _STEP_HOOK is not None:
        _STEP_HOOK(name)


def _meta_digest(meta: dict) -> str:
    """sha256 of meta.json's content (minus this digest), so a flipped byte in meta.json is caught too."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


# -- what a save may replace ------------------------------------------------------------------------
def _foreign_entries(folder: Path, format_name: str, limit: int = 3) -> tuple[list[str], str | None]:
    """Entries of ``folder`` a save of ``format_name`` did not write (at most ``limit``), and what the folder is.

    A folder is replaceable when it is empty or its ``meta.json`` names ``format_name`` and every
    file in it is ``meta.json`` or listed in ``meta.json``'s checksums (empty sub-folders hold nothing).
    """
    try:
        entries = sorted(os.listdir(folder))
    except OSError as exc:
        return [f"(unreadable: {exc.strerror})"], None
    if not entries:
        return [], None
    meta = None
    if "meta.json" in entries:
        try:
            meta = read_json_file(folder / "meta.json")
        except (OSError, ValueError):
            meta = None
    fmt = meta.get("format") if isinstance(meta, dict) else None
    files = meta.get("files") if isinstance(meta, dict) else None
    if fmt != format_name or not isinstance(files, dict):
        return [e + ("/" if (folder / e).is_dir() else "") for e in entries if e != "meta.json"][:limit] or [
            "meta.json"
        ], fmt
    ours = {"meta.json", *files}
    foreign = []  # an empty sub-folder holds nothing to lose (a knn head writes an empty head/)
    for root, dnames, fnames in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for name in sorted(fnames) + sorted(d for d in dnames if (Path(root) / d).is_symlink()):
            r = str(rel / name)
            if r not in ours or (Path(root) / name).is_symlink():
                foreign.append(r)
        dnames.sort()
        if len(foreign) >= limit:
            break
    return foreign[:limit], fmt


def folder_format(folder) -> str | None:
    """The format that ``folder``'s ``meta.json`` names, or None when it has none or cannot be read.

    A quick look, not a check: loading the folder (:func:`read_folder`) says what is wrong with it.
    """
    try:
        meta = read_json_file(Path(folder) / "meta.json")
    except (OSError, ValueError):
        return None
    fmt = meta.get("format") if isinstance(meta, dict) else None
    return fmt if isinstance(fmt, str) else None


# What write_folder adds to a name for its temporary folder: "." NAME "." PID "." + mkdtemp's 8 characters
# + ".tmp", a PID of at most 7 digits (pid_max <= 2**22); a swap's ".NAME.old-PID" is shorter.
TMP_FOLDER_EXTRA = len(".." + "9" * 7 + "." + "x" * 8 + ".tmp")


def check_save_target(path, format_name: str = FORMAT_NAME, *, flag: str | None = None) -> Path:
    """Refuse, before any work, a save that could remove or overwrite what v0lite did not write.

    A save of ``format_name`` may go to a path that does not exist (its parent folder is created),
    to an empty folder, or to a folder holding a v0lite folder of the same format (``meta.json``
    says so) and nothing else: no file or sub-folder that its ``meta.json`` does not list. The
    service's data dir, the CLI's ``--model-dir``/``--save-router`` and ``save()`` all call it.

    Parameters
    ----------
    path : str or Path
        The folder the save will write.
    format_name : str
        The folder format, e.g. ``"v0lite-model"`` (:data:`FORMAT_NAME`) or ``"v0lite-router"``.
    flag : str, optional
        How the caller named the path (``"--model-dir"``); the fix then names that flag.

    Returns
    -------
    Path
        ``path`` as a ``Path``.

    Raises
    ------
    DataError
        The path is a file, the current folder or one above it, holds files v0lite did not write
        (the first few are named), holds another format, its folder is not writable, or its name with
        the temporary folder's (:data:`TMP_FOLDER_EXTRA`) is longer than the file system takes, or the
        folder or one inside it is read-only (the old folder could not be removed after the swap). For root
        ``os.access`` ignores the mode bits, so a ``chattr +a`` folder passes: the save warns after the swap.
    """
    p = Path(path)
    label = f"{flag} {path}" if flag else str(path)
    other = f"choose another {flag}" if flag else "save to another path"
    from ._io import name_too_long

    too_long = name_too_long(p, TMP_FOLDER_EXTRA, "folder")  # first: p.exists() raises on a too-long name
    if too_long:  # else refused only after the work, when the temporary folder is made
        raise DataError(f"{flag} {too_long}" if flag else too_long)
    try:
        full = p.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise DataError(f"{label}: cannot be resolved ({exc}). Fix: {other}.") from exc
    cwd = Path.cwd().resolve()
    if not full.name or full == cwd or full in cwd.parents:
        raise DataError(
            f"{label}: is the current folder or one above it, and a save replaces the whole folder. "
            f"Fix: name a new sub-folder, e.g. {flag or 'path'} {Path(path) / 'model'}."
        )
    if p.exists():  # a symlink is followed: a save goes through it into its target (a dangling one: created)
        if not p.is_dir():
            raise DataError(f"{label}: is a file, not a folder. Fix: {other} (a new folder is created).")
        foreign, fmt = _foreign_entries(p, format_name)
        if foreign:
            other_kind = fmt and fmt != format_name and str(fmt).startswith("v0lite")
            what = f"holds a {fmt} folder, not a {format_name} one" if other_kind else "holds files v0lite did not"
            what += "" if other_kind else f" write ({', '.join(foreign)})"
            raise DataError(
                f"{label}: {what}; a save replaces the whole folder and would delete {'it' if other_kind else 'them'}. "
                f"Fix: {other} (a new or empty folder), or empty {path} first."
            )
        stuck = next((d for d, _, _ in os.walk(p) if not os.access(d, os.W_OK | os.X_OK)), None)
        if stuck:  # the swap would succeed, but the old folder could not be removed and would stay beside it
            raise DataError(
                f"{label}: {'is' if Path(stuck) == p else f'holds {stuck}, which is'} read-only, so the folder this "
                "save replaces could not be removed. "
                f"Fix: make it writable (chmod -R u+w {shlex.quote(str(path))}), or {other}."
            )
    parent = full.parent
    while not parent.exists():  # the save creates missing folders; the nearest existing one must take them
        parent = parent.parent
    if not parent.is_dir():
        raise DataError(f"{label}: {parent} is a file, not a folder. Fix: {other}.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(f"{label}: cannot write in {parent} (permission denied). Fix: {other} in a writable folder.")
    return p


# -- leftovers of interrupted saves -------------------------------------------------------------------
def _leftovers(path: Path) -> list[tuple[Path, str, int | None]]:
    """``(leftover, kind, pid)`` beside ``path``: ``old`` (``.NAME.old-PID``) and ``tmp`` (``.NAME.PID.X.tmp``)."""
    # exactly the names write_folder makes (mkdtemp adds 8 characters of [a-z0-9_]): a user's own
    # ".model.backup.tmp" is never taken for a leftover
    pat = re.compile(r"^\." + re.escape(path.name) + r"\.(?:old-(\d+)|" + TEMP_ID + r")$")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    out = []
    for name in sorted(names):
        m = pat.match(name)
        if m:
            out.append((path.parent / name, "old" if m.group(1) else "tmp", int(m.group(1) or m.group(2))))
    return out


def _alive(pid: int | None, leftover: Path) -> bool:
    """Whether ``leftover`` belongs to a save still running (its process lives and it is recent)."""
    return pid is not None and pid != os.getpid() and writer_alive(pid, leftover, _LIVE_SAVE_S)


def _complete(folder: Path, format_name: str) -> bool:
    """Whether ``folder`` is a whole folder of ``format_name``: meta.json and every checksum verify."""
    try:
        _verify(folder, format_name=format_name, format_version=10**9)
        return True
    except (FormatVersionError, OSError):
        return False


def recover_leftovers(path, format_name: str = FORMAT_NAME) -> list[str]:
    """Restore or remove what an interrupted save of ``path`` left beside it; return what was done.

    If ``path`` is missing, a complete ``.NAME.old-PID`` (the folder before the save) is renamed
    back, else a complete ``.NAME.*.tmp`` (the new folder, checksums verified) is promoted. Then
    every leftover of a dead process is removed. Each action is reported as a
    :class:`~v0lite.exceptions.V0liteWarning`; a leftover of a save still running is left alone.
    """
    path = Path(path)
    done = []
    found = [(f, kind, pid) for f, kind, pid in _leftovers(path) if not _alive(pid, f)]
    if not found:
        return done
    if not path.exists() and not path.is_symlink():
        for f, _kind, _pid in sorted(found, key=lambda t: t[1] != "old"):  # the old folder first
            if f.is_dir() and _complete(f, format_name):
                try:
                    os.replace(f, path)
                except OSError as exc:
                    raise FormatVersionError(
                        f"{path}: missing; an interrupted save left a complete copy at {f}, which cannot be "
                        f"renamed back ({exc.strerror}). Fix: rename {f} to {path}."
                    ) from exc
                done.append(
                    f"restored {path} from {f.name}, the folder an interrupted save replaced"
                    if _kind == "old"
                    else f"completed an interrupted save of {path}: its finished folder {f.name} put in place"
                )
                found.remove((f, _kind, _pid))
                break
    removed, kept = [], []
    for f, _kind, _pid in found:
        try:
            shutil.rmtree(f) if f.is_dir() and not f.is_symlink() else f.unlink()
            removed.append(f.name)
        except OSError:
            kept.append(f.name)
    # with ``path`` in place, a leftover may be the copy a finished save could not remove (it warned then)
    why = "an earlier save (interrupted, or unable to remove its old copy)" if path.exists() else "an interrupted save"
    done += [f"removed {', '.join(removed)} beside {path}, left by {why}"] if removed else []
    done += (
        [f"could not remove {', '.join(kept)} beside {path} (left by {why}); chmod -R u+w, then delete"] if kept else []
    )
    for msg in done:
        warnings.warn(msg, V0liteWarning, stacklevel=3)
    return done


# -- the atomic swap ----------------------------------------------------------------------------------
def _swap_into_place(tmp: Path, path: Path, old: Path) -> None:
    """Put the finished folder ``tmp`` at ``path``; the folder it replaces is removed (via ``old`` without a swap)."""
    if not path.exists() and not path.is_symlink():
        os.replace(tmp, path)
        _step("renamed")
        return
    if _exchange(tmp, path):  # one step: a reader sees the old folder or the new one, never none
        _step("swapped")
        _io.remove_replaced(tmp, path)  # tmp now holds the old folder
        return
    os.replace(path, old)
    _step("moved-old")
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)  # put the old folder back: a failed save changes nothing
        raise
    _step("renamed")
    _io.remove_replaced(old, path)


def write_folder(path, fill: Callable[[Path], None], meta: dict, *, format_name: str, format_version: int) -> Path:
    """Write a checksummed folder atomically.

    ``fill(tmp)`` writes the folder's files into the temporary folder ``tmp`` (and may add
    entries to ``meta``); then ``meta.json`` gets the format name and version, the v0lite
    version, the sha256 of every file and its own digest, and the folder is swapped into place.
    The target is checked first (:func:`check_save_target`: nothing v0lite did not write is
    ever removed) and leftovers of an interrupted save are recovered (:func:`recover_leftovers`).
    A failed save changes nothing. The finished folder and its files get the usual permissions under
    the process umask (folders ``0o777 & ~umask``, files ``0o666 & ~umask``), set before the swap.
    """
    path = Path(path)
    check_save_target(path, format_name)
    real = _io.through_links(path)  # a symlinked folder: its target is replaced, the link stays
    recover_leftovers(real, format_name)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{real.name}.{os.getpid()}.", suffix=".tmp", dir=real.parent))
    except OSError as exc:  # name the user's path, not the hidden temporary folder
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from exc
    _step("tmp")
    doing, old = "writing its files", real.with_name(f".{real.name}.old-{os.getpid()}")  # the two-rename swap's
    try:
        fill(tmp)
        _step("filled")
        doing = f"writing {path / 'meta.json'}"
        files = {str(f.relative_to(tmp)): sha256_file(f) for f in sorted(tmp.rglob("*")) if f.is_file()}
        from ._version import __version__

        meta = {
            "format": format_name,
            "format_version": format_version,
            "v0lite_version": __version__,
            **meta,
            "files": files,
        }
        meta["meta_sha256"] = _meta_digest(meta)
        atomic_write_json(tmp / "meta.json", meta)
        _step("meta")
        usual_permissions(tmp)  # mkdtemp makes 0700, safetensors 0600: readable by others as the umask allows
        check_save_target(path, format_name)  # again: the folder may have changed during a long fill
        doing = "moving it into place"
        _swap_into_place(tmp, real, old)
        _step("done")
    except Exception as exc:  # a full disk: an OSError, or a library's error quoting its errno (safetensors)
        from ._io import write_failure

        why = None if isinstance(exc, V0liteError) else write_failure(exc)
        if why is None:
            raise
        if doing == "writing its files":  # the file being written: the one the error names, else the newest
            f = _io.newest_file(tmp, getattr(exc, "filename", None))
            doing = f"writing {path / f.relative_to(tmp)}" if f else doing
        kept = "the folder there is unchanged" if real.exists() else "nothing was saved"
        if not real.exists() and old.exists():  # the two-rename swap moved it and could not put it back
            kept = f"the folder there is now {old} (the next load or save of {path} puts it back)"
        raise V0liteError(
            f"{path}: the save failed while {doing} ({why}); {kept}. Fix: free space on that disk (or make it "
            "writable), or save to another path."
        ) from exc
    finally:
        if tmp.exists() or tmp.is_symlink():
            _io.remove_path(tmp)
    return path


def _verify(path: Path, *, format_name: str, format_version: int, required=(), what="v0lite model", fix=MODEL_FIX):
    mfile = path / "meta.json"
    if not mfile.exists():
        raise FormatVersionError(
            f"{path}: no meta.json, not a {what} folder. Fix: pass the folder given to save"
            f"{'/fit --model-dir' if format_name == FORMAT_NAME else ''}."
        )
    try:
        meta = read_json_file(mfile)
    except ValueError as exc:  # not a file, JSONDecodeError, UnicodeDecodeError, nesting, a huge integer
        raise FormatVersionError(f"{mfile}: corrupt JSON ({str(exc)[:200]}). Fix: {fix}.") from exc
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt != format_name:
        other = _OTHER_KIND.get(fmt) if isinstance(fmt, str) else None
        raise FormatVersionError(f"{mfile}: {other or f'not a {what} (format={fmt!r}). Fix: {fix}.'}")
    ver = meta.get("format_version")
    if not _int(ver):
        got = "missing" if "format_version" not in meta else f"{json.dumps(ver)[:40]}, not an integer"
        raise FormatVersionError(f"{mfile}: corrupt ('format_version' is {got}). Fix: {fix}.")
    if ver > format_version or ver < 1:
        raise FormatVersionError(
            f"{mfile}: format version {ver!r} is not supported by this v0lite (reads 1..{format_version}). "
            f"Fix: upgrade v0lite, or {fix} with this version."
        )
    sealed = False
    with contextlib.suppress(ValueError, RecursionError):  # a value nested too deep to write back: not sealed
        sealed = meta.get("meta_sha256") == _meta_digest(meta)
    if not sealed:
        raise FormatVersionError(f"{mfile}: corrupt (its content does not match its checksum). Fix: {fix}.")
    files = meta.get("files")
    if not isinstance(files, dict) or not all(r in files for r in required):
        raise FormatVersionError(f"{mfile}: corrupt (no file checksums). Fix: {fix}.")
    for rel, digest in files.items():
        f = path / rel
        if not isinstance(rel, str) or ".." in Path(rel).parts or Path(rel).is_absolute():
            raise FormatVersionError(f"{mfile}: corrupt (file name {rel!r} outside the folder). Fix: {fix}.")
        if not f.is_file() or sha256_file(f) != digest:
            raise FormatVersionError(f"{f}: missing or corrupt (checksum mismatch). Fix: {fix}.")
    return meta


def read_folder(
    path,
    *,
    format_name: str,
    format_version: int,
    required: tuple[str, ...] = (),
    what: str = "v0lite model",
    fix: str = MODEL_FIX,
) -> dict:
    """``meta.json`` of a folder written by :func:`write_folder`, after checking format, version and checksums.

    Leftovers of an interrupted save beside ``path`` are recovered first (:func:`recover_leftovers`).

    Raises
    ------
    FormatVersionError
        Missing or corrupt ``meta.json``, another format, a newer version, or a file whose
        checksum does not match.
    """
    path = Path(path)
    if path.name:
        recover_leftovers(_io.through_links(path), format_name)  # beside the folder a save replaced
    return _verify(path, format_name=format_name, format_version=format_version, required=required, what=what, fix=fix)


def save_model_folder(path, *, arrays: dict, texts: list | None, head, meta: dict) -> Path:
    """Write a model folder: ``arrays`` to ``history.safetensors``, ``texts`` (or none) to
    ``texts.json``, the head's files under ``head/`` (``head.save(folder) -> head meta``) and
    ``meta`` (JSON-ready: params, encoder id, policies) into ``meta.json``."""
    meta = dict(meta)

    def fill(tmp: Path) -> None:
        save_arrays(tmp / "history.safetensors", arrays)
        if texts is not None:  # kept only for heads that re-encode text
            (tmp / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        (tmp / "head").mkdir()
        meta["head"] = {"name": head.name, "meta": head.save(tmp / "head")}
        meta["emb_dim"] = int(arrays["emb"].shape[1])  # the encoder's width: load checks emb against it

    return write_folder(path, fill, meta, format_name=FORMAT_NAME, format_version=FORMAT_VERSION)


def read_model_folder(path) -> tuple[dict, dict, list | None]:
    """``(meta, arrays, texts)`` of a model folder, checksums verified; the head stays on disk under ``head/``."""
    path = Path(path)
    meta = read_folder(path, format_name=FORMAT_NAME, format_version=FORMAT_VERSION, required=("history.safetensors",))
    arrays = load_arrays(path / "history.safetensors")
    texts = None
    if "texts.json" in meta["files"]:  # every save lists it; an unlisted one was never written by v0lite
        try:
            texts = read_json_file(path / "texts.json")  # checksummed above: a regular file
        except ValueError as exc:
            raise FormatVersionError(f"{path / 'texts.json'}: corrupt JSON ({exc}). Fix: {MODEL_FIX}.") from exc
    return meta, arrays, texts


# -- loading is total: every value read back is checked before it is used ------------------------------
def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# V0Regressor's parameters in meta.json: name -> (check, what it must be); fit's own rules where fit has one
_PARAMS = {
    "head": (lambda v: isinstance(v, str), "a head name"),
    "encoder": (lambda v: v is None or isinstance(v, str), "an encoder name or null"),
    "k": (lambda v: _int(v) and 1 <= v < 2**31, "an integer in [1, 2^31)"),
    "head_params": (lambda v: v is None or (isinstance(v, dict) and all(isinstance(x, str) for x in v)), "an object"),
    "fallback": (lambda v: isinstance(v, str) and v in (*FALLBACKS, "prior"), "'error', 'global_mean' or 'prior'"),
    "cache_dir": (lambda v: v is None or v is False or isinstance(v, str), "a path or null"),
    "batch_size": (batch_size_ok, "an integer in [1, 2^20]"),
    "show_progress_bar": (lambda v: isinstance(v, bool), "true or false"),
    "random_state": (seed_ok, "an integer in [0, 2^31 - 16]"),
}


def check_saved_params(meta: dict, table: dict, bad) -> None:
    """``meta['params']`` against ``table`` (name -> (check, want)); ``bad(text)`` names the first fault."""
    params = meta.get("params")
    if not isinstance(params, dict):
        raise bad(f"'params' is {type(params).__name__}, not an object")
    for name, value in params.items():
        if name not in table:
            raise bad(f"unknown parameter {name!r}")
        check, want = table[name]
        if not check(value):
            raise bad(f"parameter {name!r} is {str(value)[:60]!r}, not {want}")


def check_model_meta(meta: dict, arrays: dict, texts, path) -> None:
    """Check every value of a model folder that the estimator will use, before it uses any.

    Raises
    ------
    FormatVersionError
        A parameter of the wrong type or out of range, an unknown one, policies, head entry or
        arrays of the wrong shape, type or range (codes beyond the policies, scores outside [0, 1],
        non-finite embeddings), each named with its value.
    """
    import numpy as np

    from .heads._params import saved_params_problem

    mfile = Path(path) / "meta.json"

    def bad(what: str) -> FormatVersionError:
        return FormatVersionError(f"{mfile}: {what}. Fix: {MODEL_FIX} with this v0lite.")

    check_saved_params(meta, _PARAMS, bad)
    params = meta["params"]
    policies = meta.get("policies")
    if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
        raise bad("'policies' is not a list of names")
    if len(set(policies)) != len(policies):
        raise bad("'policies' names a policy twice")
    if not isinstance(meta.get("encoder_id"), str):
        raise bad(f"'encoder_id' is {meta.get('encoder_id')!r}, not a name")
    head = meta.get("head")
    if not isinstance(head, dict) or not isinstance(head.get("name"), str) or not isinstance(head.get("meta"), dict):
        raise bad("'head' is not an object with a name and its meta")
    if why := saved_params_problem(head["name"], params.get("head_params")):  # a refit (shrink='cv') uses them
        raise bad(f"'params.head_params': {why}")
    if why := saved_head_problem(params, head["name"]):  # get_params would name another head than predicts
        raise bad(why)
    need = ("emb", "keys", "lengths", "policy", "prompt_row", "score", "step", "n")
    missing = [k for k in need if k not in arrays]
    if missing:
        raise bad(f"history.safetensors lacks {missing}")
    a = arrays
    emb, keys = a["emb"], a["keys"]
    n_prompts = len(keys)
    if emb.ndim != 2 or emb.dtype.kind != "f" or len(emb) != n_prompts or emb.shape[1] < 1:
        raise bad(f"emb has shape {emb.shape} and type {emb.dtype} for {n_prompts} prompts")
    if keys.ndim != 2 or keys.shape[1] != 32 or keys.dtype != np.uint8 or a["lengths"].shape != (n_prompts,):
        raise bad(f"keys {keys.shape} {keys.dtype} / lengths {a['lengths'].shape} do not match")
    if not np.isfinite(emb).all():
        raise bad("emb holds non-finite values")
    if "emb_dim" in meta and meta["emb_dim"] != emb.shape[1]:  # older folders lack it
        raise bad(f"emb is {emb.shape[1]} wide, but the model was saved with {meta['emb_dim']!r}-wide embeddings")
    n_rows = len(a["score"])
    for name, kind in (("policy", "iu"), ("prompt_row", "iu"), ("score", "f"), ("step", "iu"), ("n", "iu")):
        if a[name].shape != (n_rows,) or a[name].dtype.kind not in kind:
            raise bad(f"{name} has shape {a[name].shape} and type {a[name].dtype} for {n_rows} rows")
    if n_rows and not (0 <= a["policy"].min() and a["policy"].max() < len(policies)):
        raise bad(f"policy codes outside 0..{len(policies) - 1}")
    if n_rows and not (0 <= a["prompt_row"].min() and a["prompt_row"].max() < n_prompts):
        raise bad(f"prompt rows outside 0..{n_prompts - 1}")
    if n_rows and not (np.isfinite(a["score"]).all() and 0 <= a["score"].min() and a["score"].max() <= 1):
        raise bad("scores outside [0, 1]")
    if n_rows and a["n"].min() < 0:
        raise bad("negative rollout counts n")
    if texts is not None and (
        not isinstance(texts, list) or len(texts) != n_prompts or not all(isinstance(t, str) for t in texts)
    ):
        raise bad(f"texts.json is not a list of {n_prompts} prompts")


def load_head_safely(get_head_class, name: str, folder: Path, head_meta: dict, smoke):
    """``get_head_class(name).load(folder, head_meta)``, then ``smoke(head)`` (one prediction per policy);
    any failure is a :class:`FormatVersionError` naming the head and the fix, never a traceback."""
    from .exceptions import V0liteError
    from .heads._params import saved_params_problem

    fix = f"Fix: {MODEL_FIX} with this v0lite."
    if why := saved_params_problem(name, head_meta.get("params")):  # the check fit runs (a knn k of 0 was clamped)
        raise FormatVersionError(f"{folder}: the {name!r} head's saved parameters are not valid ({why}). {fix}")
    try:
        head = get_head_class(name).load(folder, head_meta)
        smoke(head)
    except FormatVersionError:
        raise
    except (Exception, V0liteError) as exc:  # a head's own loader trusts its meta: anything it raises is ours
        raise FormatVersionError(
            f"{folder}: the {name!r} head cannot be loaded ({type(exc).__name__}: {str(exc)[:200]}). {fix}"
        ) from exc
    return head


def smoke_predict(head, index) -> None:
    """One prediction per policy, from each policy's first history row, through the loaded head: a head whose
    saved state cannot predict fails here, at load, not at the user's first ``predict``."""
    import numpy as np

    from .index import Queries

    if getattr(head, "needs_text", False) or index.n_rows == 0:  # re-encodes text: needs the encoder
        return
    _, first = np.unique(index.policy, return_index=True)
    rows = index.prompt_row[first]
    q = Queries(
        index.policy[first].astype(np.int32),
        index.step[first].astype(np.int64),
        np.asarray(index.emb[rows], np.float32),
        rows.astype(np.int64),
        index.lengths[rows],
    )
    # nothing hidden: every policy has its own row to read, so a NaN (NaN weights) is a broken head
    p = np.asarray(head.predict(index, q, exclude="none"), dtype=np.float64)
    if p.shape != (len(first),) or not (np.isfinite(p).all() and 0 <= p.min() and p.max() <= 1):
        raise ValueError(f"a test prediction gave shape {p.shape} / values {p[:4].tolist()}, not finite in [0, 1]")
