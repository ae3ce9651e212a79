"""``map_columns``: your own table (a spreadsheet export, an eval dump) as an outcome log.

The columns you name are renamed to the log's names; a true/false or yes/no outcome becomes 1.0/0.0,
a 0..K score is divided by K, and rows without an outcome are dropped only when asked. Every other
column is kept as it is (one that would clash with a log name is kept under ``original_<name>``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .._log_files import _json_rows, read_file, sniff_text
from .._log_files import fmt as _fmt
from ..exceptions import DataError, ParameterError, V0liteWarning
from ..log import as_frame, looks_like_percentages, rows_text, validate_log

__all__ = ["map_columns"]

_TRUE = ("true", "yes")
_FALSE = ("false", "no")
_TEXT = ("policy", "prompt", "task", "prompt_id")  # read as text from a CSV, as the log's own columns are


def map_columns(
    data: Any,
    *,
    policy: str,
    prompt: str,
    score: str,
    step: str | None = None,
    n: str | None = None,
    cost: str | None = None,
    task: str | None = None,
    prompt_id: str | None = None,
    score_scale: float | None = None,
    drop_unscored: bool = False,
) -> pl.DataFrame:
    """Your own table as a validated outcome log: name its columns, get ``policy, prompt, score, ...``.

    Parameters
    ----------
    data : path, polars/pandas DataFrame or dict
        Any ``.csv``/``.jsonl``/``.json``/``.parquet`` file (read as logs are read) or frame.
    policy, prompt, score : str
        The columns holding the model, the prompt text and the outcome (numbers, numbers written
        as text, or true/false/yes/no). A dotted name (``model.name``) that is not a column reads
        a field of a struct column (nested JSON objects); a list (chat ``messages``) is not read.
    step, n, cost, task, prompt_id : str, optional
        The columns holding the log's optional columns, where the data has them.
    score_scale : float, optional
        Divide the scores by this (``100`` for percentages, ``10`` for 0-10 grades).
    drop_unscored : bool, default False
        Drop the rows without an outcome (an empty, null or NaN score), counted in a
        :class:`~v0lite.exceptions.V0liteWarning`; by default they are an error naming them.

    Returns
    -------
    polars.DataFrame
        The log, validated (:func:`v0lite.log.validate_log`): the named columns under the log's
        names, the score as floats in [0, 1], every other column as it was.

    Raises
    ------
    DataError
        A named column is missing, an outcome is neither a number nor true/false/yes/no
        (any case), rows have no outcome, or the log is invalid, naming your column, the row (of
        the table as read, dropped rows counted) and the value; a CSV line with fewer fields than the
        header (a truncated file) or a JSON row without the score key, naming the line (never read
        as a row without an outcome).
    ParameterError
        A column named twice, or a ``score_scale`` that is not a positive number.

    Examples
    --------
    >>> raw = {"Model": ["a", "b", "a"], "Question": ["1+1?", "1+1?", "2+2?"], "Correct": ["yes", "No", None]}
    >>> log = map_columns(raw, policy="Model", prompt="Question", score="Correct", drop_unscored=True)
    >>> log.rows()
    [('a', '1+1?', 1.0), ('b', '1+1?', 0.0)]
    """
    return _map(data, **_names(locals()), score_scale=score_scale, drop_unscored=drop_unscored)[0]


def _names(kwargs: dict) -> dict:
    return {k: kwargs[k] for k in ("policy", "prompt", "score", "step", "n", "cost", "task", "prompt_id")}


def _map(data, *, score_scale=None, drop_unscored=False, warn_drop=True, **names) -> tuple[pl.DataFrame, int]:
    """``(log, rows read)``: :func:`map_columns`; ``warn_drop``: count the dropped rows in a warning."""
    mapping = {k: v for k, v in names.items() if v is not None}
    for k, v in mapping.items():
        if not isinstance(v, str) or not v:
            raise ParameterError(f"{k} must name a column (a non-empty str), got {v!r}. Fix: pass {k}='<column>'.")
    seen: dict[str, str] = {}
    for k, v in mapping.items():
        if v in seen:
            raise ParameterError(
                f"{seen[v]} and {k} both name the column {v!r}. Fix: give each its own column, or leave {k} out."
            )
        seen[v] = k
    if score_scale is not None and (
        isinstance(score_scale, bool)
        or not isinstance(score_scale, (int, float, np.number))
        or not math.isfinite(score_scale)
        or score_scale <= 0
    ):
        raise ParameterError(
            f"score_scale must be a positive number (the top of the score's scale), got {score_scale!r}. "
            "Fix: pass score_scale=100 for percentages, or leave it out for scores already in [0, 1]."
        )
    src = Path(data) if isinstance(data, (str, os.PathLike)) else None
    if src is not None:
        text = [mapping[k] for k in _TEXT if k in mapping]
        df = read_file(src, "your table, with a header row", text=text)
        if src.suffix.lower() == ".csv" and df.null_count().sum_horizontal().item():
            _check_short_csv_rows(src)  # a truncated last line reads as empty cells: never as "no outcome"
    else:
        df = as_frame(data)
    rows_in = df.height
    df = _nested(df, mapping)
    for k, v in mapping.items():
        if v not in df.columns:
            near = [c for c in df.columns if c.strip().lower() == v.strip().lower()]
            fix = f"pass {k}={near[0]!r}" if near else f"pass {k}=<column>, one of the columns present"
            raise DataError(
                f"column {v!r} ({k}) is not in the data (columns present: {df.columns}). Fix: {fix}.", column=k
            )
    # a column that is not mapped but has a log name (a 'score' beside score='Correct') is kept under another name
    clash = {c: _free(f"original_{c}", df.columns) for c in df.columns if c in mapping and c not in seen}
    for old, new in clash.items():
        warnings.warn(
            f"column {old!r} is kept as {new!r}: {mapping[old]!r} is read as {old!r}.", V0liteWarning, stacklevel=3
        )
    df = df.rename({**clash, **{v: k for k, v in mapping.items() if v != k}})
    df = df.with_columns(_scores(df["score"], mapping["score"], score_scale))
    missing = df["score"].is_null().to_numpy()
    if missing.any() and src is not None and src.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        _check_score_keys(src, mapping["score"], np.flatnonzero(missing))
    if missing.any():
        rows = np.flatnonzero(missing)
        where = f"{len(rows)} of {rows_in} rows"
        what = f"no outcome (an empty, null or NaN cell): {rows_text(rows)}"
        if not drop_unscored:
            raise DataError(
                f"column {mapping['score']!r} (score): {where} have {what}. Fix: drop them (drop_unscored=True), "
                "or fill in their outcomes.",
                column="score",
            )
        if warn_drop:
            warnings.warn(
                f"column {mapping['score']!r} (score): dropped the {where} with {what}.", V0liteWarning, stacklevel=3
            )
    try:
        return validate_log(df.filter(~pl.Series(missing)) if missing.any() else df), rows_in
    except DataError as exc:
        error = exc
    if missing.any():  # the same checks with the dropped rows made valid: the error names the row as read
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                validate_log(_fill_dropped(df, missing))
            except DataError as exc:
                error = exc
    raise _your_terms(error, mapping, df) from error


# a valid value of each log column (text, number), put in the rows --drop-unscored drops
_VALID = {"policy": "x", "prompt": "x", "task": "x", "prompt_id": "x", "score": 1, "step": 1, "n": 1, "cost": 1}


def _fill_dropped(df: pl.DataFrame, dropped: np.ndarray) -> pl.DataFrame:
    """``df`` with the log columns of the ``dropped`` rows valid, so that a check names a kept row by its
    number in the table as read (the rows before it counted), not in the table without the dropped rows."""
    keep = pl.lit(pl.Series(~dropped))
    fills = []
    for col, value in _VALID.items():
        dtype = df.schema.get(col)
        if dtype is not None and (dtype == pl.String or dtype.is_numeric()):
            valid = pl.lit(str(value) if dtype == pl.String else value).cast(dtype)
            fills.append(pl.when(keep).then(pl.col(col)).otherwise(valid).alias(col))
    return df.with_columns(fills)


def _your_terms(exc: DataError, mapping: dict[str, str], df: pl.DataFrame) -> DataError:
    """A log check's error (it names the log's column, ``'cost'``) naming your column and its argument:
    ``column 'cost_usd' (cost)``, with the fix in its terms."""
    col = exc.column
    src = mapping.get(col) if col is not None else None
    if src is None:
        return exc
    head, sep, fix = str(exc).partition("Fix:")
    head = head.replace(f"column {col!r}", f"column {src!r} ({col})", 1)
    if "must be numeric" in head and df.schema.get(col) == pl.String:
        sign = df[col].str.contains(r"^\s*[-+]?\s*[$€£¥]").any()
        fix = " write " + repr(src) + " as plain numbers"
        fix += " (strip the currency sign: 0.016 for '$0.016'; say the unit in the column name)" if sign else ""
        fix += f", or leave {col} out." if col != "score" else "."
    else:
        fix = fix.replace(repr(col), repr(src)).replace("drop the column", f"leave {col} out")
    return DataError(head + sep + fix, column=col)


def _nested(df: pl.DataFrame, mapping: dict[str, str]) -> pl.DataFrame:
    """``df`` with each named dotted path (``model.name``) that is not a column but reaches into a struct
    column (a nested JSON object) added as a column of that name: numbers, booleans and text inside structs."""
    for k, v in mapping.items():
        parts = v.split(".")
        root = next((i for i in range(len(parts) - 1, 0, -1) if ".".join(parts[:i]) in df.columns), None)
        if v in df.columns or root is None:
            continue  # a column, or no column to start from: the missing-column error names it
        path = ".".join(parts[:root])
        expr, dtype = pl.col(path), df.schema[path]
        for field in parts[root:]:
            if isinstance(dtype, (pl.List, pl.Array)):
                fix = (  # chat messages are a prompt's shape; a list elsewhere is several values in one cell
                    "a list of messages: store the last user message as the prompt (its text, the text "
                    "`v0lite serve` routes on) in a column of its own, and name that column."
                    if k == "prompt"
                    else f"name a column that holds one {k} per row (a list cannot be read as one)."
                )
                raise DataError(
                    f"column {v!r} ({k}): {path!r} holds lists, and a dotted name reads fields of nested "
                    f"objects only. Fix: {fix}",
                    column=k,
                )
            fields = {f.name: f.dtype for f in dtype.fields} if isinstance(dtype, pl.Struct) else {}
            if field not in fields:
                what = f"has no field {field!r} (fields: {list(fields)})" if fields else f"holds {dtype}, not objects"
                fix = f"pass {k}='{path}.<field>', one of its fields" if fields else f"pass {k}=<column>"
                raise DataError(f"column {v!r} ({k}): {path!r} {what}. Fix: {fix}.", column=k)
            expr, dtype, path = expr.struct.field(field), fields[field], f"{path}.{field}"
        df = df.with_columns(expr.alias(v))
    return df


def _check_short_csv_rows(path: Path) -> None:
    """Refuse the first CSV record with fewer fields than the header (a truncated line): polars reads its
    missing fields as empty cells, which ``drop_unscored`` would drop as rows without an outcome."""
    reader = csv.reader(io.StringIO(sniff_text(path).decode("utf-8"), newline=""))
    header = next(reader, None) or []
    line = reader.line_num + 1
    for rec in reader:
        start, line = line, reader.line_num + 1
        if rec and len(rec) < len(header):
            raise DataError(
                f"{path}, line {start}: {len(rec)} fields where the header has {len(header)} (no value for "
                f"{header[len(rec) :]}: a truncated line?). Fix: complete or remove that line; a row without an "
                "outcome keeps its commas and leaves the cell empty ('a,q,')."
            )


def _check_score_keys(path: Path, name: str, rows: np.ndarray) -> None:
    """Refuse the first JSON row among ``rows`` (null scores as read) that lacks the score key: a key written
    as null or "" is a row without an outcome, a key left out is a row written wrong. A dotted ``name``
    (``eval.correct``) that is not a key is followed into nested objects."""
    lines = path.suffix.lower() != ".json"
    wanted = set(rows.tolist())
    for row, line, raw in _json_rows(sniff_text(path), lines=lines):
        if row not in wanted:
            continue
        obj = json.loads(raw) if lines else raw
        parts, inside = ([name] if name in obj else name.split(".")), ""
        for part in parts:
            if not isinstance(obj, dict):
                break  # a null on the way: no outcome
            if part not in obj:
                where = f"line {line}" if lines else f"row {row}"
                raise DataError(
                    f"{path}, {where}: key {name!r} (score) is missing (keys present{inside}: {sorted(obj)[:8]}). "
                    f"Fix: give that row its {name!r}, or write it as null for a row without an outcome.",
                    column="score",
                )
            obj, inside = obj[part], f" in {part!r}"


def _free(name: str, taken: list[str]) -> str:
    while name in taken:
        name = "_" + name
    return name


def _scores(s: pl.Series, col: str, scale) -> pl.Series:
    """The outcome column as Float64 in the log's terms: true/yes 1.0, false/no 0.0, numbers (text ones
    included: ``'1'``, ``'0.5'``) / ``scale``; an empty cell, a null or NaN is null. Anything else is an
    error naming the row and the value."""
    label = f"column {col!r} (score)"
    raw = s
    if isinstance(s.dtype, (pl.Categorical, pl.Enum)):
        s = s.cast(pl.String)
    if s.dtype == pl.Boolean or s.dtype == pl.String:
        word = s.cast(pl.String).str.strip_chars().str.to_lowercase()
        word = pl.select(pl.when(word != "").then(word)).to_series()  # an empty cell: no outcome
        is_word = word.is_in([*_TRUE, *_FALSE]).fill_null(False)
        number = word.cast(pl.Float64, strict=False)  # '1', ' 0.5', '1e-1'; '$1' and 'maybe' are not numbers
        unknown = (~is_word & number.is_null() & word.is_not_null()).to_numpy()
        if unknown.any():
            r = int(np.flatnonzero(unknown)[0])
            raise DataError(
                f"{label}, row {r}: value {_fmt(raw[r])} is not an outcome: a text outcome must be a number or "
                "true/false or yes/no (any case). Fix: write numbers in [0, 1] or one of true/false/yes/no, and "
                "leave the cell empty for a row without an outcome.",
                column="score",
            )
        if scale is not None and is_word.any():
            raise ParameterError(
                f"score_scale={scale:g} divides numbers, and {label} holds true/false or yes/no outcomes "
                "(read as 1.0/0.0). Fix: leave score_scale out."
            )
        s = pl.select(pl.when(is_word).then(word.is_in(_TRUE).cast(pl.Float64)).otherwise(number)).to_series()
    if not (s.dtype.is_numeric() or s.dtype == pl.Null):
        raise DataError(
            f"{label} holds {s.dtype}, not outcomes (row 0: {_fmt(s[0])}). Fix: name a column of numbers in [0, 1] "
            "or of true/false.",
            column="score",
        )
    v = s.cast(pl.Float64)
    v = v.fill_nan(None) / (1.0 if scale is None else float(scale))
    finite = v.drop_nulls().to_numpy()
    vals = v.fill_null(0.5).to_numpy()  # a null is no outcome, counted after this
    bad = np.isfinite(vals) & ((vals < 0) | (vals > 1))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        top = float(finite.max())
        hint = (
            "percentages? Fix: divide by 100 (score_scale=100)."
            if scale is None and looks_like_percentages(finite)
            else "Fix: correct or drop the rows outside [0, 1], pass score_scale=K for scores on a 0..K scale, "
            "or map the values to [0, 1] first (e.g. (reward + 1) / 2 for ±1 rewards)."
        )
        shown = "" if scale is None else f" (after dividing by {scale:g})"
        raise DataError(
            f"{label}, row {r}: value {_fmt(raw[r])}{shown} is not a success rate in [0, 1]; the scores run from "
            f"{float(finite.min()):g} to {top:g}{shown}. {hint}",
            column="score",
        )
    return v.alias("score")
