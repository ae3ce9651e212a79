"""Read only the prompt columns of a file (``prompt`` and, where present, ``prompt_id``, ``task``).

``v0lite data prompts`` takes any file with a ``prompt`` column. The file is read by the outcome log's
one reader (:func:`v0lite._log_files.read_file`), so whatever it refuses is refused here too, naming the
line or row (a file that is not UTF-8 or holds a NUL byte, a repeated CSV header or JSON key, a CSV row
with extra fields, a type clash, a list among text prompts); the cells of its other columns (a ``score``
written as text, a policy it lacks) are not checked. Every prompt must be non-empty text: a null,
missing, empty or non-text prompt raises a DataError naming the file, the line or row, and the value; a
file with no rows (a header alone) is refused too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

from .._log_files import SUFFIXES, _json_rows, read_file, sniff_text
from ..exceptions import DataError
from ..log import BLANK_PATTERN, is_blank
from ._common import _kind, _show

__all__ = ["PROMPT_COLUMNS", "read_prompt_columns"]

PROMPT_COLUMNS = ("prompt", "prompt_id", "task")
_HOLDS = "a 'prompt' column, one prompt text per row"
# the text polars' JSON reader makes of a number or boolean among text prompts ("5", "1.5", "true")
_LITERAL = r"^(?:-?[0-9][0-9.eE+-]*|true|false)$"
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


def _check_prompts(path: Path, prompts: pl.Series) -> None:
    """Refuse the first prompt that is not non-empty text, naming its line (JSON lines) or row."""
    json_file = SUFFIXES[path.suffix.lower()] in ("json", "jsonl")
    if prompts.dtype != pl.String and not json_file:
        raise DataError(f"{path}: column 'prompt' holds {prompts.dtype}, not text. Fix: write the prompts as text.")
    if prompts.dtype == pl.String:
        bad = prompts.is_null() | prompts.str.contains(BLANK_PATTERN)
        if json_file:  # a number or boolean read as its text: a suspect, its written value looked up below
            bad |= prompts.str.contains(_LITERAL).fill_null(False)
        suspects = bad.arg_true().to_list()
    else:  # a JSON column of numbers, lists, objects or nulls: its first row is not text
        suspects = [0]
    if not suspects:
        return
    if not json_file:
        r = suspects[0]
        raise _bad_prompt(path, f"row {r}", prompts[r])
    # the failure path: only the suspect rows are parsed again, to tell "missing" from null and 5 from "5"
    lines = SUFFIXES[path.suffix.lower()] == "jsonl"
    wanted = set(suspects)
    for row, line, raw in _json_rows(sniff_text(path), lines=lines):
        if row not in wanted:
            continue
        obj = json.loads(raw) if lines else raw  # an object: read_file refuses any other row
        value = obj.get("prompt", _MISSING) if isinstance(obj, dict) else _MISSING
        if not isinstance(value, str) or is_blank(value):
            raise _bad_prompt(path, f"line {line}" if lines else f"row {row}", value)


def read_prompt_columns(path: str | os.PathLike) -> pl.DataFrame:
    """The ``prompt`` column of ``path`` (.jsonl/.json/.csv/.parquet), with ``prompt_id`` and ``task`` where
    present, read as the outcome-log reader reads them; no other column is kept.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "q.jsonl"
    >>> _ = f.write_text('{"prompt": "a", "score": "1"}\\n{"prompt": "b", "score": 0}\\n')
    >>> read_prompt_columns(f)["prompt"].to_list()
    ['a', 'b']
    """
    path = Path(path)
    df = read_file(path, _HOLDS, columns=PROMPT_COLUMNS)  # no number column of a log is read: none is checked
    if df.height == 0:  # a header alone: no prompt to write (an empty OUT would pass for a result)
        raise DataError(f"{path}: no rows (a header but no prompts). Fix: pass a file with at least one prompt row.")
    if "prompt" not in df.columns:
        raise DataError(f"{path}: no 'prompt' column (columns present: {df.columns}). Fix: add one.")
    df = df.select([c for c in PROMPT_COLUMNS if c in df.columns])
    _check_prompts(path, df["prompt"])
    return df
