"""Readers shared by the converters: every bad row raises a DataError naming file, row and value."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..exceptions import DataError


def _existing(path: str | os.PathLike, what: str, *, directory: bool = False) -> Path:
    path = Path(path)
    ok = path.is_dir() if directory else path.is_file()
    if not ok:
        kind = "folder" if directory else "file"
        raise DataError(f"{path}: {what} {kind} not found. Fix: pass the path of an existing {what} {kind}.")
    return path


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
    if key not in obj or obj[key] is None:
        raise DataError(
            f"{path}, {_where(row)}: field {key!r} is missing (fields present: {sorted(obj)}). "
            f"Fix: give every row a {key!r}, or pass the right file."
        )
    return obj[key]


def _number(path: Path, row: int | str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(
            f"{path}, {_where(row)}: field {key!r} = {value!r} is not a finite number. Fix: write it as a number."
        )
    return float(value)
