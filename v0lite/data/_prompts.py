"""Read only the prompt columns of a file (``prompt`` and, where present, ``prompt_id``, ``task``).

``v0lite data prompts`` takes any file with a ``prompt`` column: its other columns (a ``score`` written as
text, a policy it lacks) are never read nor checked. Every prompt must be non-empty text: a null, missing,
empty or non-text prompt raises a DataError naming the file, the line or row, and the value.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import polars as pl

from ..exceptions import DataError
from ._common import _check_text, _kind, _show, _text

__all__ = ["PROMPT_COLUMNS", "read_prompt_columns"]

PROMPT_COLUMNS = ("prompt", "prompt_id", "task")
_KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


_MISSING = object()


def _bad_prompt(path: Path, where: str, value) -> DataError:
    if value is _MISSING:
        what = "missing"
    elif value is None:
        what = "null"
    elif isinstance(value, str):
        what = f"{_show(value)}: empty or whitespace"
    else:
        what = f"{_show(value)}: {_kind(value)}, not text"
    return DataError(f"{path}, {where}: 'prompt' is {what}. Fix: give that row its prompt text, or remove the row.")


def _check_prompt(path: Path, where: str, value) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _bad_prompt(path, where, value)


def _json_objects(path: Path, kind: str) -> list[tuple[str, dict]]:
    """``(where, object)`` of every row of a JSON-lines or JSON-array file."""
    text = _text(path)
    if kind == "json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}). Fix: repair the file.") from exc
        rows = [(f"row {i}", o) for i, o in enumerate(obj if isinstance(obj, list) else [obj])]
    else:
        rows = []
        for i, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                rows.append((f"line {i}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}, line {i}: not valid JSON ({exc.msg} at column {exc.colno}). "
                    "Fix: repair or remove that line."
                ) from exc
    for where, obj in rows:
        if not isinstance(obj, dict):
            raise DataError(
                f"{path}, {where}: expected a JSON object, got {type(obj).__name__}. Fix: write one object per row."
            )
    return rows


def _no_prompt_column(path: Path, columns: list[str]) -> DataError:
    return DataError(f"{path}: no 'prompt' column (columns present: {columns}). Fix: add one.")


def read_prompt_columns(path: str | os.PathLike) -> pl.DataFrame:
    """The ``prompt`` column of ``path`` (.jsonl/.json/.csv/.parquet), with ``prompt_id`` and ``task`` where
    present, read as the outcome-log reader reads them; no other column is read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "q.jsonl"
    >>> _ = f.write_text('{"prompt": "a", "score": "1"}\\n{"prompt": "b", "score": 0}\\n')
    >>> read_prompt_columns(f)["prompt"].to_list()
    ['a', 'b']
    """
    path = Path(path)
    kind = _KINDS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r}. Fix: use one of {sorted(_KINDS)}.")
    if kind in ("json", "jsonl"):
        rows = _json_objects(path, kind)
        present = list(dict.fromkeys(k for _, obj in rows for k in obj))
        if "prompt" not in present:
            raise _no_prompt_column(path, present)
        kept = []
        for where, obj in rows:
            _check_prompt(path, where, obj.get("prompt", _MISSING))
            row = {k: obj[k] for k in PROMPT_COLUMNS if k in obj}
            _check_text(path, where, row)
            kept.append(row)
        data = (("\n".join(json.dumps(r) for r in kept)) if kind == "jsonl" else json.dumps(kept)).encode()
        try:  # polars infers prompt_id and task as when it reads the whole file
            df = (pl.read_ndjson if kind == "jsonl" else pl.read_json)(io.BytesIO(data), infer_schema_length=None)
            return df.select([c for c in PROMPT_COLUMNS if c in df.columns])
        except (pl.exceptions.PolarsError, ValueError) as exc:
            raise DataError(
                f"{path}: its prompt_id or task column cannot be read ({str(exc).splitlines()[0]}). "
                "Fix: give each of those columns one type."
            ) from exc
    try:
        if kind == "parquet":
            present = list(pl.read_parquet_schema(path))
        else:
            data = _text(path).encode("utf-8")
            present = pl.read_csv(io.BytesIO(data), n_rows=0).columns
        if "prompt" not in present:
            raise _no_prompt_column(path, present)
        keep = [c for c in PROMPT_COLUMNS if c in present]
        if kind == "parquet":
            df = pl.read_parquet(path, columns=keep)
        else:
            df = pl.read_csv(
                io.BytesIO(data),
                columns=keep,
                schema_overrides=dict.fromkeys(keep, pl.String),
                infer_schema_length=None,
            )
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(
            f"{path}: cannot be read as {kind} ({str(exc).splitlines()[0]}). Fix: repair the file."
        ) from exc
    prompts = df["prompt"]
    if prompts.dtype != pl.String:
        raise DataError(f"{path}: column 'prompt' holds {prompts.dtype}, not text. Fix: write the prompts as text.")
    for i, value in enumerate(prompts.to_list()):
        if value is None or not value.strip():
            raise _bad_prompt(path, f"row {i}", value)
    return df
