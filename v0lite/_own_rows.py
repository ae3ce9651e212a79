"""A query's own rows in one policy's history: the rows a query never reads (the step rule).

``hide="same_step"``: the rows of the query's (prompt, step), when that step is the latest
eligible checkpoint; ``"any_step"``: every row of its prompt at a step <= the query's. Both are
read from the policy's rows sorted by (prompt, checkpoint), with prefix sums, built once per
block (``_Block._own``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["own_groups", "own_rows"]


def _own_table(b):
    """A block's rows sorted by (prompt, step rank), with prefix sums and each (prompt, step)'s start."""
    if b._own is None:
        rank = np.searchsorted(b.ustep, b.steps)
        key = b.prompt_rows.astype(np.int64) * len(b.ustep) + rank
        order = np.argsort(key, kind="stable")
        key = key[order]
        sc = b.scores[order]
        ukey, ustart = np.unique(key, return_index=True)
        b._own = (
            key,
            np.concatenate([[0.0], np.cumsum(sc)]),
            np.concatenate([[0.0], np.cumsum(sc**2)]),
            ukey,
            np.append(ustart, len(key)),
        )
    return b._own


def own_groups(index, code: int, step: np.ndarray, prompt_row: np.ndarray, hide: str):
    """The rows :func:`own_rows` counts, one entry per (query, checkpoint): ``(query, checkpoint
    index, count, sum)``, sorted by query then checkpoint."""
    b = index.block(code)
    empty = np.zeros(0, np.int64)
    if len(b) == 0 or hide not in ("same_step", "any_step"):
        return empty, empty, np.zeros(0), np.zeros(0)
    _, cs, _, ukey, ustart = _own_table(b)
    ns = len(b.ustep)
    le = np.searchsorted(b.ustep, step, side="right")
    base = np.maximum(prompt_row, 0).astype(np.int64) * ns
    if hide == "any_step":
        first = np.zeros(len(step), np.int64)
    else:  # only the query's own step, when it is the latest eligible checkpoint
        last_is_t = (le > 0) & (b.ustep[np.maximum(le - 1, 0)] == step)
        first = np.where(last_is_t, le - 1, le)
    glo = np.searchsorted(ukey, base + first)
    ghi = np.where(prompt_row >= 0, np.searchsorted(ukey, base + le), glo)
    size = ghi - glo
    query = np.repeat(np.arange(len(step)), size)
    g = np.repeat(glo, size) + (np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size))
    return (
        query,
        ukey[g] - base[query],
        (ustart[g + 1] - ustart[g]).astype(np.float64),
        cs[ustart[g + 1]] - cs[ustart[g]],
    )


def own_rows(index, code: int, step: np.ndarray, prompt_row: np.ndarray, hide: str):
    """What a query's own eligible rows of policy ``code`` add up to: ``(count, sum, sum of
    squares)``, each of shape (m,).

    ``hide="same_step"``: the rows of the query's (prompt, step); ``"any_step"``: every row of its
    prompt with step <= t. A prompt outside the history (row -1) has none.
    """
    b = index.block(code)
    m = len(step)
    zero = np.zeros(m)
    if len(b) == 0 or hide not in ("same_step", "any_step"):
        return zero, zero, zero
    key, cs, cs2 = _own_table(b)[:3]
    ns = len(b.ustep)
    le = np.searchsorted(b.ustep, step, side="right")  # unique steps <= t
    base = np.maximum(prompt_row, 0).astype(np.int64) * ns
    hi = np.searchsorted(key, base + le)
    if hide == "any_step":
        lo = np.searchsorted(key, base)
    else:  # only the rows at the query's own step, which is the latest eligible one when it has rows
        last_is_t = (le > 0) & (b.ustep[np.maximum(le - 1, 0)] == step)
        lo = np.where(last_is_t, np.searchsorted(key, base + np.maximum(le - 1, 0)), hi)
    lo = np.where(prompt_row >= 0, lo, hi)
    return (hi - lo).astype(np.float64), cs[hi] - cs[lo], cs2[hi] - cs2[lo]
