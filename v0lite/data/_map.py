"""``map_columns``: your own table (a spreadsheet export, an eval dump) as an outcome log.

The columns you name are renamed to the log's names; a true/false or yes/no outcome becomes 1.0/0.0,
a 0..K score is divided by K, and rows without an outcome are dropped only when asked. Every other
column is kept as it is (one that would clash with a log name is kept under ``original_<name>``).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .._log_files import fmt as _fmt
from .._log_files import read_file
from ..exceptions import DataError, ParameterError, V0liteWarning
from ..log import as_frame, rows_text, validate_log

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
        The columns holding the model, the prompt text and the outcome.
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
        (any case), rows have no outcome, or the log is invalid, naming the row and the value.
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
    if isinstance(data, (str, os.PathLike)):
        text = [mapping[k] for k in _TEXT if k in mapping]
        df = read_file(Path(data), "your table, with a header row", text=text)
    else:
        df = as_frame(data)
    rows_in = df.height
    for k, v in mapping.items():
        if v not in df.columns:
            near = [c for c in df.columns if c.strip().lower() == v.strip().lower()]
            fix = f"pass {k}={near[0]!r}" if near else f"pass {k}=<column>, one of the columns present"
            raise DataError(f"column {v!r} ({k}={v!r}) is not in the data (columns present: {df.columns}). Fix: {fix}.")
    # a column that is not mapped but has a log name (a 'score' beside score='Correct') is kept under another name
    clash = {c: _free(f"original_{c}", df.columns) for c in df.columns if c in mapping and c not in seen}
    for old, new in clash.items():
        warnings.warn(
            f"column {old!r} is kept as {new!r}: {mapping[old]!r} is read as {old!r}.", V0liteWarning, stacklevel=3
        )
    df = df.rename({**clash, **{v: k for k, v in mapping.items() if v != k}})
    df = df.with_columns(_scores(df["score"], mapping["score"], score_scale))
    missing = df["score"].is_null().to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        where = f"{len(rows)} of {rows_in} rows"
        what = f"no outcome (an empty, null or NaN cell): {rows_text(rows)}"
        if not drop_unscored:
            raise DataError(
                f"column {mapping['score']!r} (score): {where} have {what}. Fix: drop them (drop_unscored=True), "
                "or fill in their outcomes."
            )
        if warn_drop:
            warnings.warn(
                f"column {mapping['score']!r} (score): dropped the {where} with {what}.", V0liteWarning, stacklevel=3
            )
        df = df.filter(~pl.Series(missing))
    return validate_log(df), rows_in


def _free(name: str, taken: list[str]) -> str:
    while name in taken:
        name = "_" + name
    return name


def _scores(s: pl.Series, col: str, scale) -> pl.Series:
    """The outcome column as Float64 in the log's terms: true/yes 1.0, false/no 0.0, numbers / ``scale``;
    an empty cell, a null or NaN is null. Anything else is an error naming the row and the value."""
    label = f"column {col!r} (score)"
    if isinstance(s.dtype, (pl.Categorical, pl.Enum)):
        s = s.cast(pl.String)
    if s.dtype == pl.Boolean or s.dtype == pl.String:
        if scale is not None:
            raise ParameterError(
                f"score_scale={scale:g} divides numbers, and {label} holds true/false or yes/no outcomes "
                "(read as 1.0/0.0). Fix: leave score_scale out."
            )
        if s.dtype == pl.Boolean:
            return s.cast(pl.Float64).alias("score")
        word = s.str.strip_chars().str.to_lowercase()
        word = pl.select(pl.when(word != "").then(word)).to_series()  # an empty cell: no outcome
        known = (word.is_in([*_TRUE, *_FALSE]) | word.is_null()).to_numpy()
        if not known.all():
            r = int(np.flatnonzero(~known)[0])
            raise DataError(
                f"{label}, row {r}: value {_fmt(s[r])} is not an outcome: a text outcome must be true/false or "
                "yes/no (any case). Fix: write numbers in [0, 1] or one of true/false/yes/no, and leave the cell "
                "empty for a row without an outcome."
            )
        value = pl.when(word.is_not_null()).then(word.is_in(_TRUE).cast(pl.Float64))
        return pl.select(value).to_series().alias("score")
    if not (s.dtype.is_numeric() or s.dtype == pl.Null):
        raise DataError(
            f"{label} holds {s.dtype}, not outcomes (row 0: {_fmt(s[0])}). Fix: name a column of numbers in [0, 1] "
            "or of true/false."
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
            if scale is None and finite.min() >= 0 and 1 < top <= 100
            else "Fix: pass score_scale=K for scores on a 0..K scale, or map the values to [0, 1] first "
            "(e.g. (reward + 1) / 2 for ±1 rewards)."
        )
        shown = "" if scale is None else f" (after dividing by {scale:g})"
        raise DataError(
            f"{label}, row {r}: value {_fmt(s[r])}{shown} is not a success rate in [0, 1]; the scores run from "
            f"{float(finite.min()):g} to {top:g}{shown}. {hint}"
        )
    return v.alias("score")
