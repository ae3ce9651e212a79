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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ._io import atomic_path
from ._log_files import CHAT_FIX, check_decodable, read_file, row_place, sniff_text
from ._log_files import SUFFIXES as _SUFFIXES
from ._log_files import fmt as _fmt
from ._log_files import lone_surrogate as _lone_surrogate
from ._log_files import not_utf8 as _not_utf8
from ._log_warnings import warn_history, warn_near_misses
from ._out_checks import named
from .exceptions import DataError, ParameterError

__all__ = [
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "read_log",
    "validate_log",
    "write_log",
    "check_csv_columns",
    "as_frame",
    "split_xy",
    "check_policy_name",
]

REQUIRED_COLUMNS = ("policy", "prompt", "score")
OPTIONAL_COLUMNS = ("step", "n", "cost", "prompt_id", "task")
# a text with nothing to read: empty, whitespace or invisible format characters only (Unicode category Cf:
# U+200B zero-width space, U+FEFF, U+2060 ...). A regex for polars (Rust: \s is Unicode White_Space, to which
# Python's str.isspace adds \x1C-\x1F); :func:`is_blank` is the same rule for one Python str
BLANK_PATTERN = r"^[\s\x1C-\x1F\p{Cf}]*$"
# Common misnamings, so the error can say what was probably meant.
_ALIASES = {
    "policy": ("model", "model_name", "policy_name", "llm"),
    "prompt": ("question", "instruction", "text", "query", "input"),
    "score": ("reward", "accuracy", "acc", "label", "y", "success", "correct", "outcome"),
}


_OUTCOME_LOG = "an outcome log: policy, prompt, score"


def read_text(path: Path) -> str:
    """The file's text, read as ``fit`` reads a log: a UTF-8 byte-order mark is dropped, and a UTF-16/32
    file, a NUL byte or a byte that is not UTF-8 is refused naming the encoding or the line."""
    data = sniff_text(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _not_utf8(path, data) from None


# what polars / pyarrow raise on a column they cannot build (an int over 64 bits: OverflowError)
_CONVERT_ERRORS = (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError)


def _only(present, columns, required=("policy", "prompt")):
    """The columns of ``columns`` present, or None (keep all) when one of ``required`` is missing: the
    missing-column error then lists every column, and its rename hint can point at e.g. 'question'."""
    if columns is None or not all(c in present for c in required):
        return None
    return [c for c in present if c in columns]


def as_frame(data: Any, *, holds: str = _OUTCOME_LOG, columns=None, keep_all: bool = False) -> pl.DataFrame:
    """Return ``data`` (path, polars or pandas DataFrame, dict of columns) as a polars DataFrame.

    ``holds``: what a file should hold, for the fix of an empty one. ``columns``: only these columns
    are kept (and checked) when the frame has ``policy`` and ``prompt``; the others are never read
    (``predict``'s queries: policy, prompt, step). ``keep_all`` (files only): every column is kept, the
    others as read and unchecked (``v0lite predict`` copies them to its output).
    """
    if isinstance(data, (str, os.PathLike)):
        df = read_file(Path(data), holds, columns)
        keep = None if keep_all else _only(df.columns, columns)
        return df if keep is None else df.select(keep)
    if isinstance(data, pl.LazyFrame):
        data = data.collect()
    if isinstance(data, pl.DataFrame):
        keep = _only(data.columns, columns)
        return data if keep is None else data.select(keep)
    pd = sys.modules.get("pandas")  # an optional extra: a pandas frame exists only once pandas is imported
    if pd is not None and isinstance(data, pd.DataFrame):
        from ._extras import require

        require("pyarrow", "pandas", "pandas DataFrame input")  # polars converts pandas frames through pyarrow
        dup = data.columns[data.columns.duplicated()]
        if len(dup):
            names = list(dict.fromkeys(str(c) for c in dup))
            raise DataError(
                f"the DataFrame has duplicate column names {names}: each column must appear once. "
                "Fix: rename or drop the duplicates (df.loc[:, ~df.columns.duplicated()] keeps the first)."
            )
        keep = _only([str(c) for c in data.columns], columns)
        frame = (data if keep is None else data[keep]).reset_index(drop=True)
        for col in frame.columns:
            if frame[col].dtype == object:
                _check_object_column(col, frame[col].tolist())
        try:
            df = pl.from_pandas(frame)
        except _CONVERT_ERRORS as exc:
            raise DataError(
                f"DataFrame cannot be converted: {_failing_column(frame)}({exc}). Fix: give each column one type "
                "(integers within 64 bits)."
            ) from exc
        # pyarrow makes a NaN null; in the number columns that refuse both, keep the NaN the user sees
        nan = [c for c in ("step", "n", "cost") if c in df.columns and isinstance(frame[c].dtype, np.dtype)]
        nan = [c for c in nan if frame[c].dtype.kind == "f" and frame[c].isna().any()]
        return df.with_columns([pl.Series(c, frame[c].to_numpy(), nan_to_null=False) for c in nan])
    if isinstance(data, dict):
        keep = _only(list(data), columns)
        data = data if keep is None else {c: data[c] for c in keep}
        for col, vals in list(data.items()):
            if isinstance(vals, (list, tuple)):  # strict=False below would silently cast a stray 5 to "5"
                _check_object_column(col, list(vals))
                if any(_is_nan(v) for v in vals) and any(isinstance(v, str) for v in vals):
                    data = {**data, col: [None if _is_nan(v) else v for v in vals]}  # not the text "NaN"
        try:
            return pl.DataFrame(data, strict=False)
        except _CONVERT_ERRORS as exc:
            raise DataError(f"columns cannot be built ({exc}). Fix: give each column one type and one length.") from exc
    rows = ""
    if isinstance(data, (list, tuple)) and data and all(isinstance(r, dict) for r in data):
        rows = f" (this is a list of {len(data)} row dicts: pl.DataFrame(rows) makes them one frame)"
    raise DataError(
        f"unsupported input of type {type(data).__name__}. Fix: pass a file path, a polars or pandas "
        f"DataFrame, or a dict of columns{rows}."
    )


def _failing_column(frame) -> str:
    """``"column 'x' "`` for the first pandas column that polars cannot convert alone, else ``""``."""
    for col in frame.columns:
        try:
            pl.from_pandas(frame[[col]])
        except _CONVERT_ERRORS:
            return f"column {col!r} "
    return ""


def _is_nan(v: Any) -> bool:
    return isinstance(v, (float, np.floating)) and math.isnan(v)


def _check_object_column(col: str, values: list) -> None:
    kinds = {}
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if isinstance(v, (bool, np.bool_)):  # True is an int to Python: never read it as the number 1
            k = "bool"
        else:
            k = (
                "str"
                if isinstance(v, str)
                else "number"
                if isinstance(v, (int, float, np.number))
                else type(v).__name__
            )
        if k == "str" and not v.isascii() and _lone_surrogate(v) is not None:
            raise DataError(
                f"column {col!r}, row {i}: value {_fmt(v)} holds undecodable text (a lone UTF-16 surrogate, not a "
                "character). Fix: repair that text at its source (decode it with errors='replace') or remove the row.",
                column=col,
            )
        kinds.setdefault(k, i)
    if len(kinds) > 1:
        (k1, r1), (k2, r2) = sorted(kinds.items(), key=lambda kv: kv[1])[:2]
        fix = " (numbers: 1.0/0.0 for True/False)" if "bool" in kinds else ""
        raise DataError(
            f"column {col!r} mixes types: row {r1} is {k1} ({_fmt(values[r1])}), row {r2} is {k2} "
            f"({_fmt(values[r2])}). Fix: give every value of {col!r} the same type{fix}.",
            column=col,
        )


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _missing_column_error(col: str, present: list[str]) -> DataError:
    def norm(name: Any) -> str:  # 'Prompt' and ' prompt' are 'prompt' misspelt
        return str(name).strip().lower()

    hint = [p for p in present if norm(p) == col] or [p for a in _ALIASES.get(col, ()) for p in present if norm(p) == a]
    fix = f"rename {hint[0]!r} to {col!r}" if hint else f"add a {col!r} column"
    return DataError(f"missing required column {col!r} (columns present: {present}). Fix: {fix}.", column=col)


_TRUE_FALSE = ("true", "false", "yes", "no")


def rows_text(rows: np.ndarray, shown: int = 5) -> str:
    """``"rows 0, 3, 7"``, or ``"rows 0, 3, 7, 9, 12, ..."`` beyond ``shown``: the first few rows named."""
    rows = [int(r) for r in rows]
    more = ", ..." if len(rows) > shown else ""
    return f"row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows[:shown]))}{more}"


def _no_place(row: int) -> str:
    """Where a row of a frame is: nothing more than its number (a file's row adds its line: ``row_place``)."""
    return ""


def _check_scored(score: np.ndarray, raw: pl.Series, at=_no_place) -> None:
    """Rows without an outcome (a null or NaN score): counted and the first few named, with the fix to drop them."""
    missing = np.isnan(score)
    if not missing.any():
        return
    rows = np.flatnonzero(missing)
    r = int(rows[0])
    count = f"{len(rows)} of {len(score)} rows {'has' if len(rows) == 1 else 'have'} no outcome: {rows_text(rows)}"
    drop = (
        "drop the unlabeled rows (`v0lite data map LOG OUT --policy policy --prompt prompt --score score "
        "--drop-unscored` drops them and says how many)"
    )
    if raw[r] is None:  # an empty cell, a null
        raise DataError(
            f"column 'score', row {r}: value None{at(r)} means the row has no outcome ({count}). Fix: {drop}, or "
            "fill in their scores.",
            column="score",
        )
    raise DataError(
        f"column 'score', row {r}: value {_fmt(raw[r])}{at(r)} is not a success rate in [0, 1]: a NaN score is no "
        f"outcome ({count}). Fix: map rewards to [0, 1] without NaN, or {drop}.",
        column="score",
    )


def looks_like_percentages(finite: np.ndarray) -> bool:
    """Whether finite scores read as percentages: all in [0, 100], more above 1 than in (0, 1] (not one stray 2.0)."""
    above, within = np.count_nonzero(finite > 1), np.count_nonzero((finite > 0) & (finite <= 1))
    return bool(finite.size and finite.min() >= 0 and finite.max() <= 100 and above > within)


def score_range_fix(score: np.ndarray) -> str:
    """The end of the message for a score outside [0, 1]. Percentages (all in [0, 100], most of the non-zero
    ones above 1) are to be divided by 100; else the scores outside are named (the first few, with their
    values) to be fixed or dropped, or the column mapped to [0, 1] (±1 rewards) when most are outside."""
    finite = score[np.isfinite(score)]
    if looks_like_percentages(finite):
        return (
            f"is not a success rate in [0, 1], and the scores run up to {float(finite.max()):g}: percentages? "
            "Fix: divide by 100 (`v0lite data map LOG OUT --policy policy --prompt prompt --score score "
            "--score-scale 100` does it)."
        )
    rows = np.flatnonzero(~np.isnan(score) & ~((score >= 0) & (score <= 1)))
    shown = ", ".join(f"row {r} ({_fmt(float(score[r]))})" for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
    are = "is" if len(rows) == 1 else "are"
    named = f"is not a success rate in [0, 1] ({len(rows)} of {len(score)} scores {are} outside it)."
    rewards = (
        "map rewards to [0, 1] first (e.g. (reward + 1) / 2 for ±1 rewards; 'v0lite data convert' does this for "
        "the public formats)"
    )
    # the rows go in the fix: a converter that names its source's lines replaces the fix, not the row numbers
    if 2 * len(rows) < np.count_nonzero(~np.isnan(score)):  # a few stray values: dividing all would break the rest
        return f"{named} Fix: correct or drop those rows ({shown}); if the column holds rewards, not rates, {rewards}."
    return f"{named} Fix: {rewards}, or correct or drop those rows ({shown})."


def _string_column(df: pl.DataFrame, col: str, *, allow_empty: bool, at=_no_place) -> pl.Series:
    s = df[col]
    # a NaN among numeric names is a missing cell, not the policy 'NaN'
    nan = s.is_nan().fill_null(False).to_numpy() if s.dtype.is_float() else None
    if isinstance(s.dtype, (pl.Categorical, pl.Enum)):  # pandas 'category', polars Categorical/Enum: text
        s = s.cast(pl.String)
    if s.dtype != pl.String:
        if s.dtype.is_numeric() and col != "prompt":
            s = s.cast(pl.String)
        else:
            bad = next((i for i, v in enumerate(s.to_list()) if v is not None and not isinstance(v, str)), 0)
            chat = col == "prompt" and isinstance(s.dtype, (pl.List, pl.Array, pl.Struct))
            raise DataError(
                f"column {col!r} must hold text, found dtype {s.dtype} (row {bad}: {_fmt(s[bad])}){at(bad)}. "
                f"Fix: write {col!r} as strings{CHAT_FIX if chat else ''}.",
                column=col,
            )
    nulls = s.is_null().to_numpy() if nan is None else s.is_null().to_numpy() | nan
    if nulls.any():
        r = _first_bad(nulls)
        raise DataError(
            f"column {col!r}, row {r}: value is missing (null){at(r)}. Fix: fill it in or remove that row yourself.",
            column=col,
        )
    if not allow_empty:
        # invisible format characters (U+200B zero-width space, U+FEFF, U+2060: Unicode category Cf) are as
        # empty as whitespace: a prompt of them only would be embedded as if it said something
        empty = s.str.contains(BLANK_PATTERN).to_numpy()
        if empty.any():
            r = _first_bad(empty)
            raise DataError(
                f"column {col!r}, row {r}: value {_fmt(s[r])}{at(r)} is empty or whitespace (invisible format "
                "characters such as U+200B zero-width space count as whitespace). "
                f"Fix: give every row a non-empty {col}.",
                column=col,
            )
    return s


def _numeric_column(df: pl.DataFrame, col: str, at=_no_place) -> np.ndarray:
    s = df[col]
    if not (s.dtype.is_numeric() or s.dtype == pl.Null or s.null_count() == s.len()):
        vals = s.to_list()
        bad = next((i for i, v in enumerate(vals) if _not_a_number(v)), None)
        if bad is None and s.dtype == pl.String:  # text Python reads as a number but polars does not ('1_000')
            unparsed = (s.cast(pl.Float64, strict=False).is_null() & s.is_not_null()).to_numpy()
            bad = _first_bad(unparsed) if unparsed.any() else None
        bad = 0 if bad is None else bad
        fix = f"write {col!r} as numbers"
        if col == "score" and (s.dtype == pl.Boolean or str(vals[bad]).strip().lower() in _TRUE_FALSE):
            fix = (
                "write 'score' as 1.0/0.0 for true/false (`v0lite data map LOG OUT --policy policy --prompt prompt "
                "--score score` or v0lite.data.map_columns converts them; a boolean is never read as 1.0)"
            )
        raise DataError(
            f"column {col!r} must be numeric, found dtype {s.dtype} (row {bad}: {_fmt(vals[bad])}){at(bad)}. "
            f"Fix: {fix}.",
            column=col,
        )
    return s.cast(pl.Float64).to_numpy()


def _integer_column(df: pl.DataFrame, col: str, at=_no_place) -> pl.Series:
    """``step`` or ``n`` as Int64, each value exactly as given: integers never pass through a float (2**53 + 1
    would round, 2**63 - 1 wrap); a whole float (3.0) is read as its integer. ``n`` must be >= 1."""
    s = df[col]
    if s.dtype.is_integer():
        ints = s.cast(pl.Int64, strict=False)  # Int128, UInt64: what does not fit is null
        wide = (ints.is_null() & s.is_not_null()).to_numpy()
        bad = s.is_null().to_numpy() | wide
        small = (ints < 1).fill_null(False).to_numpy()
    else:
        v = _numeric_column(df, col, at)
        with np.errstate(invalid="ignore"):  # 2**63 is the first float beyond Int64
            wide = np.isfinite(v) & ((v >= 2.0**63) | (v < -(2.0**63)))
            bad = ~np.isfinite(v) | (v != np.round(v)) | wide
            small = np.isfinite(v) & (v < 1)
        ints = pl.Series(col, np.where(bad, 0, v).astype(np.int64), dtype=pl.Int64)
    if col == "n":
        bad |= small
    if bad.any():
        r = _first_bad(bad)
        what = ("a positive integer" if col == "n" else "an integer") + (" within 64 bits" if wide[r] else "")
        raise DataError(
            f"column {col!r}, row {r}: value {_fmt(s[r])}{at(r)} is not {what}. "
            f"Fix: write {col!r} as {what}, or drop the column.",
            column=col,
        )
    return ints.alias(col)


def _not_a_number(v: Any) -> bool:
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return False
    if isinstance(v, str):  # a text column of numbers: point at the first one that is not
        try:
            return math.isnan(float(v))  # 'nan' is not a number: a CSV reader keeps the column as text for it
        except ValueError:
            return True
    return True


def validate_log(
    data: Any, *, require_score: bool = True, allow_empty: bool = False, source: str | os.PathLike | None = None
) -> pl.DataFrame:
    """Check an outcome log and return it with normalised dtypes.

    Parameters
    ----------
    data : path, polars/pandas DataFrame or dict
        The outcome log.
    require_score : bool, default True
        Queries to predict need no ``score``; histories do.
    allow_empty : bool, default False
        A frame with the required columns and no rows is returned as it is (``predict``'s queries);
        by default no rows is a ``DataError`` (a history needs outcomes).
    source : str or Path, optional
        The ``.jsonl``/``.csv`` file ``data`` (a frame) was read from, row for row: an error about a row
        names its line too, as it does when ``data`` is that path.

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
    warn_near_misses(df.columns, OPTIONAL_COLUMNS, REQUIRED_COLUMNS)
    required = REQUIRED_COLUMNS if require_score else REQUIRED_COLUMNS[:2]
    for col in required:
        if col not in df.columns:
            raise _missing_column_error(col, df.columns)
    if df.height == 0:
        if allow_empty:  # queries with no rows: nothing to check (predict answers an empty array)
            return df
        raise DataError("the log has no rows. Fix: pass at least one outcome row.")
    out = {}
    source = data if source is None and isinstance(data, (str, os.PathLike)) else source
    at = _no_place if source is None else lambda row: row_place(Path(source), row)
    out["policy"] = _string_column(df, "policy", allow_empty=False, at=at)
    out["prompt"] = _string_column(df, "prompt", allow_empty=False, at=at)
    if "score" in df.columns:
        score = _numeric_column(df, "score", at)
        if require_score:
            _check_scored(score, df["score"], at)
        bad = ~np.isnan(score) & ~np.isfinite(score)
        bad |= np.isfinite(score) & ((score < 0) | (score > 1))
        if bad.any():
            r = _first_bad(bad)
            raise DataError(
                f"column 'score', row {r}: value {_fmt(df['score'][r])}{at(r)} {score_range_fix(score)}",
                column="score",
            )
        out["score"] = pl.Series("score", score, dtype=pl.Float64)
    for col in ("step", "n"):
        if col in df.columns:
            out[col] = _integer_column(df, col, at)
    if require_score:  # a history: prompt twins, padded names, a 'step' that is no checkpoint
        warn_history(out["policy"], out["prompt"], out.get("step"))
    if "cost" in df.columns:
        v = _numeric_column(df, "cost", at)
        bad = ~np.isfinite(v) | (v < 0)
        if bad.any():
            r = _first_bad(bad)
            raise DataError(
                f"column 'cost', row {r}: value {_fmt(df['cost'][r])}{at(r)} is not a finite cost >= 0. "
                "Fix: give every row its cost, or drop the column.",
                column="cost",
            )
        out["cost"] = pl.Series("cost", v, dtype=pl.Float64)
    for col in ("prompt_id", "task"):
        if col in df.columns:
            s = df[col]
            out[col] = s.cast(pl.String) if s.dtype != pl.String else s
    return df.with_columns([s.alias(name) for name, s in out.items()])


def read_log(source: Any, *, require_score: bool = True, path: str | os.PathLike | None = None) -> pl.DataFrame:
    """Read and validate an outcome log from a file or DataFrame (see :func:`validate_log`; ``path``: its
    ``source``, the file a frame was read from)."""
    return validate_log(source, require_score=require_score, source=path)


# the suffixes write_log writes, each picking its format (.json is read, never written: it holds no rows as
# write_log writes them); predict_with_ray checks out= against the same tuple before any work
WRITE_SUFFIXES = tuple(s for s, kind in _SUFFIXES.items() if kind != "json")


def check_csv_columns(schema, path: str | os.PathLike, label: str | None = None) -> None:
    """Refuse a ``.csv`` ``path`` for columns a CSV cannot hold (a list, struct or array; bytes; objects).

    The CLI calls it right after reading its input, before any work, with its flag as ``label``
    (``"--out"``); :func:`write_log` calls it too, so a library caller gets the same
    :class:`~v0lite.exceptions.DataError` rather than polars' ``ComputeError`` once the work is done.

    Parameters
    ----------
    schema : polars.Schema or Mapping[str, polars.DataType]
        The columns to be written (``frame.schema``).
    path : str or Path
        The output file; any suffix but ``.csv`` passes.
    label : str, optional
        The caller's name for ``path`` (a flag, ``out=``); the message and its fix use it.
    """
    p = Path(path)
    if p.suffix.lower() != ".csv":
        return
    for name, dtype in schema.items():
        if dtype.is_nested() or dtype in (pl.Binary, pl.Object):
            what = "nested values" if dtype.is_nested() else "values that are not text or numbers"
            jsonl = p.with_suffix(".jsonl")
            there, other = (named(label, path), named(label, jsonl)) if label else (path, f"write {jsonl.name}")
            raise DataError(
                f"{there}: column {name!r} holds {what} ({dtype}), which a .csv cannot hold. Fix: "
                f"{other} or .parquet, or drop the column {name!r}.",
                column=name,
            )


def write_log(df: pl.DataFrame, path: str | os.PathLike) -> Path:
    """Write a log atomically; the suffix picks the format (.jsonl, .csv, .parquet)."""
    path = Path(path)
    if path.suffix.lower() not in WRITE_SUFFIXES:
        raise DataError(f"{path}: cannot write {path.suffix!r}. Fix: name the output .jsonl, .csv or .parquet.")
    check_csv_columns(df.schema, path)  # before the temporary file, not polars' ComputeError after it
    kind = _SUFFIXES[path.suffix.lower()]
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


def _with_y(X, y) -> pl.DataFrame:
    """``X`` as a frame with ``y`` (if given) as its ``score`` column: the one check of a separate y."""
    df = as_frame(X)
    if y is None:
        return df
    if "score" in df.columns:
        raise DataError(
            "X has a 'score' column and y was given too: it is not clear which holds the success rates. "
            "Fix: pass one of them: X with its 'score' column and no y, or X.drop('score') with y."
        )
    _check_y_kind(y)
    # a None in y is a missing outcome, as an empty cell of a 'score' column is (not the float NaN)
    values = y.tolist() if isinstance(y, np.ndarray) and y.dtype == object else y
    missing = [i for i, v in enumerate(values) if v is None] if isinstance(values, (list, tuple)) else []
    try:
        y = np.asarray(y, dtype=np.float64) if not isinstance(y, (pl.Series,)) else y.to_numpy().astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"y cannot be read as numbers ({exc}). Fix: pass one success rate in [0, 1] per row of X."
        ) from exc
    if y.ndim != 1:
        raise DataError(f"y must be one-dimensional, got shape {y.shape}. Fix: pass one success rate per row of X.")
    if len(y) != df.height:
        raise DataError(f"X has {df.height} rows but y has {len(y)} values. Fix: pass one success rate per row of X.")
    score = pl.Series("score", y, dtype=pl.Float64)
    return df.with_columns(score.scatter(missing, None) if missing else score)


def _check_y_kind(y) -> None:
    """y as strings or booleans is refused as a file's ``score`` column is (numpy would cast ``"0.5"`` and True);
    a generator or other one-pass iterator is refused by name (numpy reads it as one object)."""
    if isinstance(y, Iterator):
        raise DataError(
            f"y must be a list or array, not a {type(y).__name__} (it can be read only once). "
            "Fix: pass list(y) or np.array(list(y))."
        )
    if isinstance(y, pl.Series):
        kind = "text" if y.dtype == pl.String else "booleans" if y.dtype == pl.Boolean else None
        first = y[0] if y.len() else None
    else:
        values = y.tolist() if hasattr(y, "tolist") else list(y) if isinstance(y, (list, tuple)) else None
        if values is None:
            return
        flat = [v for v in values if not isinstance(v, (list, tuple))]
        bad = next((v for v in flat if isinstance(v, (str, bytes, bool, np.bool_))), None)
        kind = None if bad is None else "booleans" if isinstance(bad, (bool, np.bool_)) else "text"
        first = bad
    if kind is not None:
        raise DataError(
            f"y must be numeric, found {kind} (e.g. {first!r}), as a file's 'score' column must. "
            "Fix: pass success rates in [0, 1] as numbers (float(v) for text, 1.0/0.0 for True/False)."
        )


def is_blank(text: str) -> bool:
    """Whether ``text`` is empty, whitespace or invisible format characters only (:data:`BLANK_PATTERN`).

    Examples
    --------
    >>> is_blank("\\u200b \\ufeff"), is_blank("\\xa0"), is_blank("a\\u200b")
    (True, True, False)
    """
    import unicodedata

    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


def _prompt_list(prompts, name: str = "prompts") -> list:
    """``prompts`` as a list of non-empty texts (``warm``, ``suggest_prompts``); a bare str is refused.

    ``name``: the argument as the caller knows it (the RL adapters pass ``"texts"``), in every message.
    """
    if isinstance(prompts, str) or not hasattr(prompts, "__iter__"):
        raise DataError(f"{name} must be a list of prompt texts, got {type(prompts).__name__}. Fix: pass a list.")
    if hasattr(prompts, "columns"):  # a frame iterates over its columns (polars) or their names (pandas)
        col = "prompt" if "prompt" in list(prompts.columns) else "<the column of prompt texts>"
        raise DataError(
            f"{name} is a DataFrame (columns {list(prompts.columns)[:10]}); pass its {col!r} column "
            f"(df[{col!r}]). Fix: pass a list or Series of prompt texts."
        )
    prompts = list(prompts)
    for i, t in enumerate(prompts):
        if not isinstance(t, str) or is_blank(t):
            raise DataError(f"{name}, row {i}: {t!r} is not a non-empty text. Fix: pass prompt texts only.")
        check_decodable(f"{name}, row {i}", t)
    return prompts


def check_policy_name(
    policy: Any, example: str = "'<the policy's name in the history>'", *, allow_int: bool = False, known=()
) -> str:
    """``policy`` names one policy of a log: a non-empty str without leading or trailing spaces; returned.

    A padded name is refused rather than stripped: it would be another policy than the one meant, unless
    it is in ``known`` (the names a fitted model holds, exactly: a log may have held ``'pol0 '``).
    ``example`` is the fix shown for a missing or empty name (Python terms: ``policy=...``).
    ``allow_int``: an integer (not a bool) is taken as its text, ``3`` as ``"3"``, as the log reader
    reads an integer ``policy`` column; the caller uses the returned name.
    """
    if allow_int and isinstance(policy, (int, np.integer)) and not isinstance(policy, (bool, np.bool_)):
        return str(int(policy))
    if isinstance(policy, str) and policy.strip() and (policy == policy.strip() or policy in known):
        return policy
    if isinstance(policy, str) and policy.strip():
        raise ParameterError(
            f"policy must be a non-empty name without leading or trailing spaces, got {policy!r}: a padded name "
            f"would name another policy than {policy.strip()!r}. Fix: policy={policy.strip()!r}."
        )
    raise ParameterError(f"policy must be a non-empty name, got {policy!r}. Fix: policy={example}.")
