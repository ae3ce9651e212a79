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


def _key_range(b, step, prompt_row, hide):
    """Each query's own rows as a range of the table's (prompt, checkpoint) keys: ``[base + first,
    base + le)``, empty for a prompt outside the history."""
    le = np.searchsorted(b.ustep, step, side="right")  # checkpoints <= t
    base = np.maximum(prompt_row, 0).astype(np.int64) * len(b.ustep)
    if hide == "any_step":
        first = np.zeros(len(step), np.int64)
    else:  # only the query's own step, when it is the latest eligible checkpoint
        last_is_t = (le > 0) & (b.ustep[np.maximum(le - 1, 0)] == step)
        first = np.where(last_is_t, le - 1, le)
    first = np.where(prompt_row >= 0, first, le)
    return base, base + first, base + le


def own_groups(index, code: int, step: np.ndarray, prompt_row: np.ndarray, hide: str):
    """The rows :func:`own_rows` counts, one entry per (query, checkpoint): ``(query, checkpoint
    index, count, sum)``, sorted by query then checkpoint."""
    b = index.block(code)
    empty = np.zeros(0, np.int64)
    if len(b) == 0 or hide not in ("same_step", "any_step"):
        return empty, empty, np.zeros(0), np.zeros(0)
    _, cs, _, ukey, ustart = _own_table(b)
    base, lo, hi = _key_range(b, step, prompt_row, hide)
    glo, ghi = np.searchsorted(ukey, lo), np.searchsorted(ukey, hi)
    size = ghi - glo
    query = np.repeat(np.arange(len(step)), size)
    g = np.repeat(glo, size) + (np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size))
    lo, hi = ustart[g], ustart[g + 1]
    return query, ukey[g] - base[query], (hi - lo).astype(np.float64), cs[hi] - cs[lo]


def own_rows(index, code: int, step: np.ndarray, prompt_row: np.ndarray, hide: str):
    """What a query's own eligible rows of policy ``code`` add up to: ``(count, sum, sum of
    squares)``, each of shape (m,).

    ``hide="same_step"``: the rows of the query's (prompt, step); ``"any_step"``: every row of its
    prompt with step <= t. A prompt outside the history (row -1) has none.
    """
    b = index.block(code)
    zero = np.zeros(len(step))
    if len(b) == 0 or hide not in ("same_step", "any_step"):
        return zero, zero, zero
    key, cs, cs2 = _own_table(b)[:3]
    _, lo, hi = _key_range(b, step, prompt_row, hide)
    lo, hi = np.searchsorted(key, lo), np.searchsorted(key, hi)
    return (hi - lo).astype(np.float64), cs[hi] - cs[lo], cs2[hi] - cs2[lo]
