"""Split a log by prompt, so no prompt lands on both sides."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from .._log_warnings import prompt_key
from ..exceptions import DataError
from ..log import as_frame

__all__ = ["split_by_prompt"]


def split_by_prompt(df: Any, test_size: float = 0.2, random_state: int | None = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a log by unique prompt text, so no prompt lands on both sides.

    Prompts that differ only by case, spaces or Unicode normalisation (near-duplicates, which the log's
    twin warning names) are drawn as one, so they land on the same side too.

    Parameters
    ----------
    df : polars/pandas DataFrame, path or dict
        A log with a ``prompt`` column.
    test_size : float, default 0.2
        Share of unique prompts in the test side, in (0, 1) (near-duplicates counted once).
    random_state : int or None, default 0
        Seed of the permutation of the (sorted) unique prompts.

    Returns
    -------
    (train, test) : tuple of polars.DataFrame
        Rows keep their original order; duplicates of one prompt stay together.

    Examples
    --------
    >>> log = {"policy": ["a"] * 4, "prompt": ["x", "y", "x", "z"], "score": [1.0, 0.0, 0.5, 1.0]}
    >>> tr, te = split_by_prompt(log, test_size=0.34)
    >>> set(tr["prompt"]) & set(te["prompt"])
    set()
    """
    frame = as_frame(df)
    if "prompt" not in frame.columns:
        raise DataError(f"missing column 'prompt' (columns present: {frame.columns}). Fix: pass an outcome log.")
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or not 0.0 < test_size < 1.0:
        raise DataError(f"test_size={test_size!r} must be a fraction in (0, 1). Fix: use e.g. test_size=0.2.")
    unique = sorted(frame["prompt"].drop_nulls().unique().to_list())
    # near-duplicates ('x', 'X ') are drawn as one: groups in the order of their first prompt, so a log
    # without any draws exactly the prompts it drew before groups existed (same seed, same split)
    groups: dict[str, list[str]] = {}
    for prompt, key in zip(unique, prompt_key(pl.Series(unique, dtype=pl.String)).to_list()):
        groups.setdefault(key, []).append(prompt)
    drawn = list(groups.values())
    if len(drawn) < 2:
        has = f"{len(unique)} distinct prompt{'' if len(unique) == 1 else 's'}"
        if len(unique) > 1:  # several, but all twins of one: say why they count as one
            has += ", but they are one once case, spaces and Unicode form are ignored (the split keeps those together)"
        raise DataError(f"the log has {has}; a split needs at least 2. Fix: pass more prompts.")
    n_test = min(max(int(round(test_size * len(drawn))), 1), len(drawn) - 1)
    rng = np.random.default_rng(random_state)
    perm = rng.permutation(len(drawn))
    test_prompts = [p for j in perm[:n_test] for p in drawn[j]]
    in_test = frame["prompt"].is_in(test_prompts)
    return frame.filter(~in_test), frame.filter(in_test)


# --------------------------------------------------------------------------- oneshot-rlvr
