"""Readers shared by the converters: every bad row raises a DataError naming file, row and value."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import polars as pl

from ..exceptions import DataError


def _existing(path: str | os.PathLike, what: str, *, directory: bool = False) -> Path:
    path = Path(path)
    ok = path.is_dir() if directory else path.is_file()
    if ok:
        return path
    if directory and path.exists():
        raise DataError(f"{path}: is a file, not a {what} folder. Fix: pass the folder that holds the {what} files.")
    if not directory and path.is_dir():
        inside = sorted(f.name for f in path.iterdir() if f.suffix.lower() in (".jsonl", ".ndjson"))[:6]
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise DataError(f"{path}: is a folder, not a {what} file. Fix: pass one {what} file of that folder{hint}.")
    kind = "folder" if directory else "file"
    raise DataError(f"{path}: {what} {kind} not found. Fix: pass the path of an existing {what} {kind}.")


def _text(path: Path) -> str:
    """The file's text, read as ``fit`` reads a log (:func:`v0lite.log.read_text`)."""
    from ..log import read_text

    return read_text(path)


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """``(line, object)`` for every non-blank line; line is the 1-based line number."""
    out = []
    for i, line in enumerate(_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}, line {i}: not valid JSON ({exc.msg} at column {exc.colno}). Fix: repair or remove that line."
            ) from exc
        if not isinstance(obj, dict):
            raise DataError(
                f"{path}, line {i}: expected a JSON object, got {type(obj).__name__}. Fix: write one object per line."
            )
        _check_text(path, f"line {i}", obj)
        out.append((i, obj))
    if not out:
        raise DataError(f"{path}: no rows. Fix: pass a non-empty JSON-lines file.")
    return out


def _check_text(path: Path, where: str, obj: Any) -> None:
    """A lone surrogate (``"\\ud800"``) is valid JSON but no character: refuse it, naming where it is."""
    from ..log import _lone_surrogate

    if _lone_surrogate(obj) is None:
        return
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else [("", obj)]
    for key, value in items:
        bad = _lone_surrogate(value)
        if bad is not None:
            raise DataError(
                f"{path}, {where}: {key!r} holds undecodable text {ascii(bad)[:80]} (a lone UTF-16 surrogate, not a "
                "character). Fix: repair that text at its source or remove it."
            )


def _read_json(path: Path) -> Any:
    text = _text(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}). Fix: repair the file.") from exc
    _check_text(path, "entry", obj)
    return obj


def _where(row: int | str) -> str:
    """``row 3`` for an item's index, or the place as given (``line 4``)."""
    return row if isinstance(row, str) else f"row {row}"


def _field(path: Path, row: int | str, obj: dict, key: str) -> Any:
    if key not in obj:
        raise DataError(
            f"{path}, {_where(row)}: field {key!r} is missing (fields present: {sorted(obj)}). "
            f"Fix: give every row a {key!r}, or pass the right file."
        )
    if obj[key] is None:
        raise DataError(
            f"{path}, {_where(row)}: field {key!r} is null. Fix: give that row a {key!r} value, or remove the row."
        )
    return obj[key]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object", str: "text"}
    return names.get(type(value), type(value).__name__)


def _text_value(path: Path, row: int | str, key: str, value: Any) -> str:
    """``value`` if it is non-empty text; a number, list, object or boolean is never turned into text."""
    if not isinstance(value, str):
        raise DataError(
            f"{path}, {_where(row)}: field {key!r} = {_show(value)} is {_kind(value)}, not text. "
            f"Fix: write {key!r} there as a JSON string."
        )
    if not value.strip():
        raise DataError(
            f"{path}, {_where(row)}: field {key!r} = {_show(value)} is empty or whitespace. "
            f"Fix: give that row its {key!r} text, or remove the row."
        )
    return value


def _id_value(path: Path, row: int | str, key: str, value: Any) -> str:
    """An id as text: a string, or an integer written as its digits (ids that are numbers are normal)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (isinstance(value, str) and not value.strip()):
        raise DataError(
            f"{path}, {_where(row)}: field {key!r} = {_show(value)} is not an id (a string or an integer). "
            f"Fix: write {key!r} there as a string or an integer."
        )
    return str(value)


def _int_value(path: Path, row: int | str, key: str, value: Any) -> int:
    """An integer (``16``, or ``16.0``); a boolean, text or fraction is refused, never read as a number."""
    ok = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if isinstance(value, bool) or not ok or not -(2**63) <= value < 2**63:
        raise DataError(
            f"{path}, {_where(row)}: field {key!r} = {_show(value)} is not an integer within 64 bits. "
            f"Fix: write {key!r} there as an integer (a JSON number, not a string)."
        )
    return int(value)


def _number(path: Path, row: int | str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(
            f"{path}, {_where(row)}: field {key!r} = {value!r} is not a finite number. Fix: write it as a number."
        )
    return float(value)


def _log_of(cols: dict[str, list], places: list[str], source: str) -> pl.DataFrame:
    """The validated log of the converted columns ``cols``; ``places[i]`` names output row i's source.

    The converters check every value as they read it, so this final check should find nothing; if it
    does, the error names the source file and line (``places``), never the converted log's row.
    """
    from ..log import validate_log

    if not places:
        raise DataError(f"{source}: no outcome rows to convert. Fix: pass a file with at least one outcome row.")
    try:
        return validate_log(pl.DataFrame(cols))
    except (DataError, TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        msg = str(exc)
        m = re.search(r"\brow (\d+)", msg)
        if m is None or int(m.group(1)) >= len(places):
            raise DataError(f"{source}: {msg}") from exc
        place, n = places[int(m.group(1))], m.group(1)
        for pattern, repl in ((f", row {n}:", ":"), (f"(row {n}: ", "("), (f" at row {n}:", ":")):
            msg = msg.replace(pattern, repl)
        msg = re.sub(r"Fix: .*$", "Fix: repair that value in the source file, or remove it there.", msg)
        raise DataError(f"{place}: {msg}") from exc
