"""Output paths checked before any work: what ``v0lite``'s commands and the library's writers refuse up front.

An output that cannot be written (a folder, a FIFO, a stream, a parent that is a file, a folder that cannot
be written, a name too long once the temporary file beside it is counted, a trailing '/', a link into a
missing folder, an existing non-empty file without leave to replace it) would otherwise fail only at the
write, after the work, and the work would be lost. Each check takes a ``label``: the caller's name for the
path, so the message and its fix speak the caller's terms: a CLI flag (``"--out"``: ``--out x.csv``), a
file a command writes inside a folder it was given (``"OUT/train.jsonl"``), or a library keyword ending in
``=`` (``"out="``: ``out='x.csv'``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ._io import TMP_FILE_EXTRA, name_too_long, read_only_volume, stream_of
from .exceptions import DataError

__all__ = ["named", "another", "in_folder", "file_size", "folder_problem", "check_regular", "check_name_fits",
           "check_output", "check_no_replace"]  # fmt: skip


def _keyword(label: str) -> bool:
    """A library keyword (``out=``), not a flag or a file name."""
    return label.endswith("=")


def named(label: str, value) -> str:
    """``value`` as the caller writes it: ``--out x.csv``, ``out='x.csv'``."""
    return f"{label}{str(value)!r}" if _keyword(label) else f"{label} {value}"


def in_folder(label: str) -> bool:
    """The label of a file a command writes inside the folder it was given (``OUT/train.jsonl``)."""
    return "/" in label and not label.startswith("-") and not _keyword(label)


def another(label: str) -> str:
    """What a fix asks for: ``another --out``, ``another out``, or ``another OUT folder`` for ``OUT/train.jsonl``."""
    return f"another {label.partition('/')[0]} folder" if in_folder(label) else f"another {label.rstrip('=')}"


def file_size(p: str | os.PathLike) -> int | None:
    """The size of ``p`` if it is an existing regular file (a symlink: its target's), else None (also when
    it cannot be looked at: the write that follows says why, in the caller's terms)."""
    try:
        return os.stat(p).st_size if os.path.isfile(p) else None
    except OSError:
        return None


def folder_problem(folder: str | os.PathLike) -> str | None:
    """Why a file cannot be written in ``folder`` (created with its parents when missing), or None: its nearest
    existing part is a file, or a folder this process cannot write in."""
    parent = Path(folder)
    while not os.path.exists(parent) and parent != parent.parent:  # writers create missing folders
        parent = parent.parent
    if not os.path.isdir(parent):  # not Path.is_dir: a folder that cannot be looked into raises there (< 3.12)
        return f"{parent} is a file, not a folder"
    if read_only_volume(parent):  # the cause, not its symptom (None, not told: os.access below still says no)
        return f"cannot write in {parent} (read-only file system)"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot write in {parent} (permission denied)"
    return None


_EXAMPLES = {"--json": "metrics.json", "--plot": "plot.png"}


def _check_not_stream(path: str, label: str, suffix: str) -> None:
    """Refuse ``/dev/stdout`` and its kin (:func:`v0lite._io.stream_of`) before anything: ``--json /dev/stdout >
    f`` passes every other check (the shell made ``f`` empty, a link leads to it) and the atomic rename
    would replace the link itself."""
    what = stream_of(path)
    if not what:
        return
    example = _EXAMPLES.get(label, "out" + suffix)
    if in_folder(label):
        fix = f"choose {another(label)}"
    elif label.startswith("-"):
        fix = named(label, example)
    elif _keyword(label):
        fix = f"pass {named(label, example)}"
    else:
        fix = f"pass a file as {label}, e.g. {example}"
    then = ", then cat it" if what.startswith("standard") else ""
    raise DataError(f"{named(label, path)}: is {what}, not a file; v0lite writes whole files. Fix: {fix}{then}.")


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip


def check_regular(path: str | os.PathLike, label: str, *, folder_ok: bool = False) -> None:
    """Refuse, without opening it, a path that is a FIFO, a device or a socket (reading a FIFO with no
    writer would wait forever; writing over ``/dev/stdout`` would replace the device's name)."""
    try:
        mode = os.stat(path).st_mode  # stat never opens: no hang on a FIFO
    except OSError:
        return
    for test, what in _KINDS:
        if test(mode):
            raise DataError(
                f"{named(label, path)}: is {what}, not a regular file. Fix: pass a regular file"
                f"{' or folder' if folder_ok else ''} (copy the stream to a file first)."
            )


def check_name_fits(path: str | os.PathLike | None, label: str, *, extra: int = TMP_FILE_EXTRA, kind="file") -> None:
    """Refuse an output whose name is longer than its file system takes once the temporary name a writer puts
    beside it (``extra`` bytes more, a ``kind``: file or folder) is counted (:func:`v0lite._io.name_too_long`);
    the write would fail only after the work, with a bare "File name too long"."""
    if path is None:
        return
    too_long = name_too_long(path, extra, kind)
    if too_long:  # the message starts with the path, as the caller wrote it
        raise DataError(f"{label}{too_long}" if _keyword(label) else f"{label} {too_long}")


def check_output(path: str | os.PathLike | None, label: str, suffixes: tuple[str, ...]) -> Path | None:
    """An output file whose suffix is one of ``suffixes`` (the first is the example's) and whose folder can
    hold it, checked before any work.

    The suffix picks the format; an output with one format (``suffixes`` of one) also takes an existing
    empty file whatever its name (``mktemp``'s), as the format is not in doubt.

    Raises
    ------
    DataError
        A stream, a name too long, a folder, an unknown suffix, a trailing '/', a FIFO or device, a link
        into a missing folder, a parent that is a file, or a folder that cannot be written; each naming
        ``label`` and the fix.
    """
    if path is None:
        return None
    _check_not_stream(str(path), label, suffixes[0])
    check_name_fits(path, label)
    p = Path(path)
    if os.path.isdir(p):  # not Path.is_dir: a folder that cannot be looked into raises there (Python < 3.12)
        if in_folder(label):
            raise DataError(f"{named(label, path)}: is a directory. Fix: remove it, or choose {another(label)}.")
        raise DataError(
            f"{named(label, path)}: is a directory. Fix: name a file, e.g. {named(label, p / ('out' + suffixes[0]))}."
        )
    if p.suffix.lower() not in suffixes and not (len(suffixes) == 1 and file_size(p) == 0):
        one = len(suffixes) == 1
        listing = suffixes[0] if one else f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"
        example = p.with_name(p.name.partition(".")[0] or "out").with_suffix(suffixes[0])
        raise DataError(
            f"{named(label, path)}: the name lacks a known suffix ({listing})"
            f"{'' if one else ', which picks the format'}. "
            f"Fix: name the output {listing}, e.g. {named(label, example)}"
            + (
                " (an existing empty file, e.g. from mktemp, is written over whatever its name)."
                if one
                else f" (from mktemp: mktemp --suffix={suffixes[0]})."
            )
        )
    if str(path).endswith(("/", os.sep + ".")):  # Path() drops the slash: a file would be written
        plain = named(label, p) if label.startswith("-") or _keyword(label) else str(p)
        raise DataError(
            f"{named(label, path)}: ends in '/', which names a folder, but {label.rstrip('=')} is a file. "
            f"Fix: drop the slash: {plain}."
        )
    check_regular(p, label)  # writing over a FIFO would replace its name, not write to it
    if os.path.islink(p):  # written through (v0lite._io.atomic_path): its target is what must be writable
        target = Path(os.path.realpath(p))
        if not os.path.isdir(target.parent):
            raise DataError(
                f"{named(label, path)}: is a link to {target}, whose folder does not exist. Fix: create "
                f"{target.parent}, or remove the link, or choose {another(label)}."
            )
        p = target
    problem = folder_problem(p.parent)  # atomic writes create missing folders; a file in the way cannot be one
    if problem:
        where = ", in a folder you can write" if problem.startswith("cannot write") else ""
        raise DataError(f"{named(label, path)}: {problem}. Fix: choose {another(label)}{where}.")
    return Path(path)


def check_no_replace(writes: dict, force: bool = False, force_label: str = "--force") -> None:
    """Refuse, before any work, an output file that exists and is not empty, unless ``force``.

    ``writes``: ``{label: path}`` of the files a caller writes (a missing path or an empty file passes);
    ``force_label``: how the caller gives leave to replace (``--force``, ``force=True``).
    """
    if force:
        return
    for label, path in dict(writes).items():
        if path is None or stream_of(path):  # check_output refuses a stream, whatever its size
            continue
        size = file_size(path)
        if size:
            raise DataError(
                f"{named(label, path)}: exists ({size:,} bytes); writing would replace it. "
                f"Fix: pass {force_label} to replace it, or choose {another(label)}."
            )
