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


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """``(row, object)`` for every non-blank line; row is the 0-based line number."""
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}, row {i}: not valid JSON ({exc.msg}). Fix: repair or remove that line.") from exc
                if not isinstance(obj, dict):
                    raise DataError(f"{path}, row {i}: expected a JSON object, got {type(obj).__name__}. Fix: write one object per line.")
                _check_text(path, f"row {i}", obj)
                out.append((i, obj))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc}). Fix: re-encode the file as UTF-8.") from exc
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
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
        _check_text(path, "entry", obj)
        return obj
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}). Fix: repair the file.") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc}). Fix: re-encode the file as UTF-8.") from exc


def _field(path: Path, row: int, obj: dict, key: str) -> Any:
    if key not in obj or obj[key] is None:
        raise DataError(
            f"{path}, row {row}: field {key!r} is missing (fields present: {sorted(obj)}). "
            f"Fix: give every row a {key!r}, or pass the right file."
        )
    return obj[key]


def _number(path: Path, row: int, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{path}, row {row}: field {key!r} = {value!r} is not a finite number. Fix: write it as a number.")
    return float(value)
