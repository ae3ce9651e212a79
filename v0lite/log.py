"""The outcome log: v0lite's one input format.

One row per observed outcome of a policy on a prompt.

========  ========  ==========================================================
column    required  meaning
========  ========  ==========================================================
policy    yes       model or policy lineage (str)
prompt    yes       the instruction text (str, not empty)
score     yes*      success rate in [0, 1] (* not needed for queries)
step      no        training checkpoint (int); absent = one static policy
n         no        rollouts behind the score (int >= 1)
cost      no        cost of the call (float >= 0)
prompt_id no        the prompt's id in its source (str)
task      no        task or benchmark name (str)
========  ========  ==========================================================

Every check names the column, the row (0-based, as in the file), the value and the
fix; nothing is silently dropped. Other columns pass through untouched.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ._io import atomic_path
from .exceptions import DataError

__all__ = [
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "read_log",
    "validate_log",
    "write_log",
    "as_frame",
    "split_xy",
]

REQUIRED_COLUMNS = ("policy", "prompt", "score")
OPTIONAL_COLUMNS = ("step", "n", "cost", "prompt_id", "task")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# Common misnamings, so the error can say what was probably meant.
_ALIASES = {
    "policy": ("model", "model_name", "policy_name", "llm"),
    "prompt": ("question", "instruction", "text", "query", "input"),
    "score": ("reward", "accuracy", "acc", "label", "y", "success", "correct", "outcome"),
}


def _fmt(value: Any) -> str:
    if isinstance(value, pl.Series):  # a list cell: one line, not a Series table
        value = value.to_list()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _read_file(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: file not found. Fix: pass the path of an existing .jsonl/.csv/.parquet outcome log.")
    if path.is_dir():
        raise DataError(
            f"{path}: is a directory, not a log file. Fix: pass a .jsonl/.csv/.parquet outcome log "
            "(a folder of public data is converted first: v0lite.datasets.convert)."
        )
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unknown file type {path.suffix!r}. Fix: use one of {sorted(_SUFFIXES)} "
            "(JSON lines, CSV or Parquet)."
        )
    try:
        if kind == "jsonl":
            # infer over the whole file: a late row of another type must fail here, not be cast away.
            return pl.read_ndjson(path, infer_schema_length=None)
        if kind == "json":
            return pl.read_json(path, infer_schema_length=None)
        if kind == "csv":
            return pl.read_csv(path, infer_schema_length=None)
        return pl.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc}). Fix: re-encode the file as UTF-8.") from exc
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        if "utf-8" in str(exc).lower() or "utf8" in str(exc).lower():
            raise DataError(
                f"{path}: not valid UTF-8 ({str(exc).splitlines()[0]}). Fix: re-encode the file as UTF-8."
            ) from exc
        raise DataError(
            f"{path}: cannot be read as {kind} ({str(exc).splitlines()[0]}). "
            "Fix: check the file is well-formed and each column holds one type."
        ) from exc


# what polars / pyarrow raise on a column they cannot build (an int over 64 bits: OverflowError)
_CONVERT_ERRORS = (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError)


def as_frame(data: Any) -> pl.DataFrame:
    """Return ``data`` (path, polars or pandas DataFrame, dict of columns) as a polars DataFrame."""
    if isinstance(data, (str, os.PathLike)):
        return _read_file(Path(data))
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pl.LazyFrame):
        return data.collect()
    pd = sys.modules.get("pandas")  # an optional extra: a pandas frame exists only once pandas is imported
    if pd is not None and isinstance(data, pd.DataFrame):
        from ._extras import require

        require("pyarrow", "pandas", "pandas DataFrame input")  # polars converts pandas frames through pyarrow
        frame = data.reset_index(drop=True)
        for col in frame.columns:
            if frame[col].dtype == object:
                _check_object_column(col, frame[col].tolist())
        try:
            return pl.from_pandas(frame)
        except _CONVERT_ERRORS as exc:
            raise DataError(
                f"DataFrame cannot be converted: {_failing_column(frame)}({exc}). Fix: give each column one type "
                "(integers within 64 bits)."
            ) from exc
    if isinstance(data, dict):
        for col, vals in data.items():
            if isinstance(vals, (list, tuple)):  # strict=False below would silently cast a stray 5 to "5"
                _check_object_column(col, list(vals))
        try:
            return pl.DataFrame(data, strict=False)
        except _CONVERT_ERRORS as exc:
            raise DataError(f"columns cannot be built ({exc}). Fix: give each column one type and one length.") from exc
    raise DataError(
        f"unsupported input of type {type(data).__name__}. Fix: pass a file path, a polars or pandas "
        "DataFrame, or a dict of columns."
    )


def _failing_column(frame) -> str:
    """``"column 'x' "`` for the first pandas column that polars cannot convert alone, else ``""``."""
    for col in frame.columns:
        try:
            pl.from_pandas(frame[[col]])
        except _CONVERT_ERRORS:
            return f"column {col!r} "
    return ""


def _check_object_column(col: str, values: list) -> None:
    kinds = {}
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        k = "str" if isinstance(v, str) else "number" if isinstance(v, (int, float, np.number)) else type(v).__name__
        kinds.setdefault(k, i)
    if len(kinds) > 1:
        (k1, r1), (k2, r2) = sorted(kinds.items(), key=lambda kv: kv[1])[:2]
        raise DataError(
            f"column {col!r} mixes types: row {r1} is {k1} ({_fmt(values[r1])}), row {r2} is {k2} "
            f"({_fmt(values[r2])}). Fix: give every value of {col!r} the same type."
        )


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _missing_column_error(col: str, present: list[str]) -> DataError:
    hint = [a for a in _ALIASES.get(col, ()) if a in present]
    fix = f"rename {hint[0]!r} to {col!r}" if hint else f"add a {col!r} column"
    return DataError(f"missing required column {col!r} (columns present: {present}). Fix: {fix}.")


def _string_column(df: pl.DataFrame, col: str, *, allow_empty: bool) -> pl.Series:
    s = df[col]
    if s.dtype != pl.String:
        if s.dtype.is_numeric() and col != "prompt":
            s = s.cast(pl.String)
        else:
            bad = next((i for i, v in enumerate(s.to_list()) if v is not None and not isinstance(v, str)), 0)
            raise DataError(
                f"column {col!r} must hold text, found dtype {s.dtype} (row {bad}: {_fmt(s[bad])}). "
                f"Fix: write {col!r} as strings."
            )
    nulls = s.is_null().to_numpy()
    if nulls.any():
        r = _first_bad(nulls)
        raise DataError(
            f"column {col!r}, row {r}: value is missing (null). Fix: fill it in or remove that row yourself."
        )
    if not allow_empty:
        empty = (s.str.strip_chars().str.len_chars() == 0).to_numpy()
        if empty.any():
            r = _first_bad(empty)
            raise DataError(
                f"column {col!r}, row {r}: value {_fmt(s[r])} is empty or whitespace. "
                f"Fix: give every row a non-empty {col}."
            )
    return s


def _numeric_column(df: pl.DataFrame, col: str) -> np.ndarray:
    s = df[col]
    if not (s.dtype.is_numeric() or s.dtype == pl.Null or s.null_count() == s.len()):
        vals = s.to_list()
        bad = next((i for i, v in enumerate(vals) if _not_a_number(v)), 0)
        raise DataError(
            f"column {col!r} must be numeric, found dtype {s.dtype} (row {bad}: {_fmt(vals[bad])}). "
            f"Fix: write {col!r} as numbers."
        )
    return s.cast(pl.Float64).to_numpy()


def _not_a_number(v: Any) -> bool:
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return False
    if isinstance(v, str):  # a text column of numbers: point at the first one that is not
        try:
            float(v)
            return False
        except ValueError:
            return True
    return True


def validate_log(data: Any, *, require_score: bool = True) -> pl.DataFrame:
    """Check an outcome log and return it with normalised dtypes.

    Parameters
    ----------
    data : path, polars/pandas DataFrame or dict
        The outcome log.
    require_score : bool, default True
        Queries to predict need no ``score``; histories do.

    Returns
    -------
    polars.DataFrame
        Same rows in the same order; ``policy``/``prompt`` as String, ``score``/``cost``
        as Float64, ``step``/``n`` as Int64. Extra columns are kept.

    Raises
    ------
    DataError
        Naming column, row, value and fix.

    Examples
    --------
    >>> validate_log({"policy": ["a"], "prompt": ["1+1?"], "score": [1.0]}).shape
    (1, 3)
    """
    df = as_frame(data)
    required = REQUIRED_COLUMNS if require_score else REQUIRED_COLUMNS[:2]
    for col in required:
        if col not in df.columns:
            raise _missing_column_error(col, df.columns)
    if df.height == 0:
        raise DataError("the log has no rows. Fix: pass at least one outcome row.")
    out = {}
    out["policy"] = _string_column(df, "policy", allow_empty=False)
    out["prompt"] = _string_column(df, "prompt", allow_empty=False)
    if "score" in df.columns:
        score = _numeric_column(df, "score")
        bad = ~np.isfinite(score) if require_score else (~np.isnan(score) & ~np.isfinite(score))
        bad |= np.isfinite(score) & ((score < 0) | (score > 1))
        if bad.any():
            r = _first_bad(bad)
            raise DataError(
                f"column 'score', row {r}: value {_fmt(df['score'][r])} is not a success rate in [0, 1]. "
                "Fix: map rewards to [0, 1] first (e.g. (reward + 1) / 2 for ±1 rewards; "
                "'v0lite data convert' does this for the public formats)."
            )
        out["score"] = pl.Series("score", score, dtype=pl.Float64)
    for col in ("step", "n"):
        if col in df.columns:
            v = _numeric_column(df, col)
            bad = ~np.isfinite(v) | (v != np.round(v))
            if col == "n":
                bad |= np.isfinite(v) & (v < 1)
            if bad.any():
                r = _first_bad(bad)
                what = "a positive integer" if col == "n" else "an integer"
                raise DataError(
                    f"column {col!r}, row {r}: value {_fmt(df[col][r])} is not {what}. "
                    f"Fix: write {col!r} as {what}, or drop the column."
                )
            out[col] = pl.Series(col, v.astype(np.int64), dtype=pl.Int64)
    if "cost" in df.columns:
        v = _numeric_column(df, "cost")
        bad = ~np.isfinite(v) | (v < 0)
        if bad.any():
            r = _first_bad(bad)
            raise DataError(
                f"column 'cost', row {r}: value {_fmt(df['cost'][r])} is not a finite cost >= 0. "
                "Fix: give every row its cost, or drop the column."
            )
        out["cost"] = pl.Series("cost", v, dtype=pl.Float64)
    for col in ("prompt_id", "task"):
        if col in df.columns:
            s = df[col]
            out[col] = s.cast(pl.String) if s.dtype != pl.String else s
    return df.with_columns([s.alias(name) for name, s in out.items()])


def read_log(source: Any, *, require_score: bool = True) -> pl.DataFrame:
    """Read and validate an outcome log from a file or DataFrame (see :func:`validate_log`)."""
    return validate_log(source, require_score=require_score)


def write_log(df: pl.DataFrame, path: str | os.PathLike) -> Path:
    """Write a log atomically; the suffix picks the format (.jsonl, .csv, .parquet)."""
    path = Path(path)
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None or kind == "json":
        raise DataError(f"{path}: cannot write {path.suffix!r}. Fix: name the output .jsonl, .csv or .parquet.")
    with atomic_path(path) as tmp:
        if kind == "jsonl":
            df.write_ndjson(tmp)
        elif kind == "csv":
            df.write_csv(tmp)
        else:
            df.write_parquet(tmp)
    return path


def split_xy(df: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """Split a validated log into ``X`` (every column but ``score``) and ``y`` (the scores)."""
    return df.drop("score"), df["score"].to_numpy().astype(np.float64)
