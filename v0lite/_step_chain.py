"""A policy's prompt-blind mean at each checkpoint, each checkpoint shrunk toward the one before.

``p[0] = m[0]`` and ``p[k] = (n[k] m[k] + shrink p[k-1]) / (n[k] + shrink)``, where ``n[k]`` and
``m[k]`` are the row count and mean score at the policy's k-th checkpoint. A thin new checkpoint is
read as a small update of the last estimate: one success there moves the prior up, never back
toward the mean of every step (which, for an improving policy, is lower). A static policy (one
checkpoint) gets its mean.

Hiding a query's own rows changes a few checkpoints' counts. Rather than running the recursion
again for every query, :func:`chain_without` walks from one changed checkpoint to the next with
the unchanged chain's affine maps: between changed checkpoints ``k < j`` the recursion is
``p[j] = chain[j] + A(k, j] (p[k] - chain[k])`` with ``A(k, j] = prod_{i=k+1..j} shrink / (n[i] +
shrink)``, kept as prefix sums of logs. The cost is the number of (query, changed checkpoint)
pairs, not queries x checkpoints.
"""

from __future__ import annotations

import numpy as np

__all__ = ["StepChain"]


class StepChain:
    """The chain of one policy's checkpoint means (``count``, ``total`` per checkpoint, in step order)."""

    def __init__(self, count: np.ndarray, total: np.ndarray, shrink: float):
        self.count = np.asarray(count, np.float64)
        self.total = np.asarray(total, np.float64)
        self.shrink = float(shrink)
        k = len(self.count)
        self.value = np.empty(k)
        p = 0.0
        for i in range(k):  # a few hundred checkpoints at most: a plain loop is clear and fast
            p = self.total[i] / self.count[i] if i == 0 else (self.total[i] + shrink * p) / (self.count[i] + shrink)
            self.value[i] = p
        # log A(0, j]: how much of checkpoint 0's estimate survives to checkpoint j
        decay = np.log(shrink / (self.count[1:] + shrink)) if k > 1 else np.zeros(0)
        self.log_a = np.concatenate([[0.0], np.cumsum(decay)])

    def _carry(self, p: np.ndarray, frm: np.ndarray, to: np.ndarray) -> np.ndarray:
        """``p`` at checkpoint ``frm`` carried through the unchanged checkpoints up to ``to`` (>= frm)."""
        return self.value[to] + np.exp(self.log_a[to] - self.log_a[frm]) * (p - self.value[frm])

    def without(self, last: np.ndarray, group_query: np.ndarray, group_ck: np.ndarray, group_count, group_total):
        """The chain at checkpoint ``last[q]`` for each query q, with some rows taken out.

        ``group_*`` (one entry per (query, checkpoint) whose rows are taken out, sorted by query
        then checkpoint, every checkpoint <= that query's ``last``): how many rows and how much
        score. NaN where no row is left at or before ``last``.
        """
        m = len(last)
        p = np.full(m, np.nan)
        pos = np.full(m, -1, np.int64)  # the checkpoint p stands at; -1: before the first
        if len(group_query) == 0:
            return self.value[last]
        # the r-th changed checkpoint of each query, r = 0, 1, ...: one vectorised pass per rank
        first = np.r_[0, np.flatnonzero(np.diff(group_query)) + 1]
        rank = np.arange(len(group_query)) - np.repeat(first, np.diff(np.r_[first, len(group_query)]))
        by_rank = np.argsort(rank, kind="stable")
        ends = np.cumsum(np.bincount(rank))
        for r in range(len(ends)):
            g = by_rank[ends[r - 1] if r else 0 : ends[r]]
            q, ck = group_query[g], group_ck[g]
            p[q] = self._reach(p[q], pos[q], ck - 1)
            n = self.count[ck] - group_count[g]
            s = self.total[ck] - group_total[g]
            prev = p[q]
            upd = np.where(
                np.isnan(prev), s / np.maximum(n, 1e-300), (s + self.shrink * np.nan_to_num(prev)) / (n + self.shrink)
            )
            p[q] = np.where(n > 0, upd, prev)
            pos[q] = ck
        return self._reach(p, pos, last)

    def _reach(self, p: np.ndarray, pos: np.ndarray, to: np.ndarray) -> np.ndarray:
        """``p`` (standing at ``pos``; NaN: no row yet) carried to checkpoint ``to`` (>= pos)."""
        out = p.copy()
        move = np.flatnonzero(to > pos)
        if len(move) == 0:
            return out
        p, pos, to = p[move], pos[move], to[move]
        fresh = np.isnan(p)  # no row so far: the chain starts again at the next checkpoint, from its mean
        start = np.where(fresh, pos + 1, pos)
        s = np.maximum(start, 0)
        base = np.where(fresh, self.total[s] / self.count[s], p)
        out[move] = self._carry(base, s, to)
        return out
