"""A policy's prompt-blind mean at each checkpoint, each checkpoint shrunk toward the one before.

``p[0] = m[0]`` and ``p[k] = (n[k] m[k] + w[k] p[k-1]) / (n[k] + w[k])`` with ``w[k] = min(shrink,
e[k-1])``, where ``n[k]`` and ``m[k]`` are the row count and mean score at the policy's k-th
checkpoint and ``e[k] = n[k] + w[k]`` the rows' worth behind ``p[k]``. A thin new checkpoint is
read as a small update of the last estimate: one success there moves the prior up, never back
toward the mean of every step (which, for an improving policy, is lower). The previous estimate
counts as at most the rows it rests on: a policy known from 3 rows that logs a success at a new
checkpoint reads it as 1 row of 4, not of 21 (review R: as 1 of 21 the pool's shrinkage, which
counts every row, won and the prior fell). A static policy (one checkpoint) gets its mean.

Hiding a query's own rows changes a few checkpoints' counts. Rather than running the recursion
again for every query, :meth:`StepChain.without` walks from one changed checkpoint to the next:
once the estimate rests on ``shrink`` rows or more, the unchanged checkpoints between ``k < j``
apply the unchanged chain's affine map, ``p[j] = chain[j] + A(k, j] (p[k] - chain[k])`` with
``A(k, j] = prod_{i=k+1..j} w[i] / (n[i] + w[i])`` (prefix sums of logs); below that it steps
checkpoint by checkpoint (at most ``shrink`` of them: each holds a row). The cost is about the
number of (query, changed checkpoint) pairs, not queries x checkpoints.
"""

from __future__ import annotations

import numpy as np

__all__ = ["StepChain"]


class StepChain:
    """The chain of one policy's checkpoint levels (``count``, ``total`` per checkpoint, in step order)."""

    def __init__(self, count: np.ndarray, total: np.ndarray, shrink: float):
        self.count = np.asarray(count, np.float64)
        self.total = np.asarray(total, np.float64)
        self.shrink = float(shrink)
        k = len(self.count)
        self.value = np.empty(k)
        self.rows = np.empty(k)  # e[k]: the rows' worth behind value[k]
        p, e = 0.0, 0.0
        for i in range(k):  # a few thousand checkpoints at most: a plain loop is clear and fast
            w = min(self.shrink, e)
            p = (self.total[i] + w * p) / (self.count[i] + w)
            e = self.count[i] + w
            self.value[i], self.rows[i] = p, e
        w = np.minimum(self.shrink, self.rows[:-1])
        # log A(0, j]: how much of checkpoint 0's estimate survives to checkpoint j
        self.log_a = np.concatenate([[0.0], np.cumsum(np.log(w / (self.count[1:] + w)))])

    def without(self, last: np.ndarray, group_query: np.ndarray, group_ck: np.ndarray, group_count, group_total):
        """The chain at checkpoint ``last[q]`` for each query q, with some rows taken out.

        ``group_*`` (one entry per (query, checkpoint) whose rows are taken out, sorted by query
        then checkpoint, every checkpoint <= that query's ``last``): how many rows and how much
        score. A checkpoint left without rows is skipped. NaN where no row is left at or before
        ``last``.
        """
        m = len(last)
        if len(group_query) == 0:
            return self.value[last]
        p = np.zeros(m)
        e = np.zeros(m)  # 0: no row yet, p is meaningless
        pos = np.full(m, -1, np.int64)  # the checkpoint p stands at; -1: before the first
        # the r-th changed checkpoint of each query, r = 0, 1, ...: one vectorised pass per rank
        first = np.r_[0, np.flatnonzero(np.diff(group_query)) + 1]
        rank = np.arange(len(group_query)) - np.repeat(first, np.diff(np.r_[first, len(group_query)]))
        by_rank = np.argsort(rank, kind="stable")
        ends = np.cumsum(np.bincount(rank))
        for r in range(len(ends)):
            g = by_rank[ends[r - 1] if r else 0 : ends[r]]
            q, ck = group_query[g], group_ck[g]
            p[q], e[q], pos[q] = self._reach(p[q], e[q], pos[q], ck - 1)
            n = self.count[ck] - group_count[g]
            w = np.minimum(self.shrink, e[q])
            kept = n > 0
            p[q] = np.where(kept, (self.total[ck] - group_total[g] + w * p[q]) / np.where(kept, n + w, 1.0), p[q])
            e[q] = np.where(kept, n + w, e[q])
            pos[q] = ck
        p, e, _ = self._reach(p, e, pos, last)
        return np.where(e > 0, p, np.nan)

    def _reach(self, p, e, pos, to):
        """The state ``(p, e, pos)`` carried through the unchanged checkpoints up to ``to`` (>= pos)."""
        p, e, pos = p.copy(), e.copy(), pos.copy()
        # below `shrink` rows the next weight depends on this state's own e: step one checkpoint at a time
        while True:
            thin = np.flatnonzero((pos < to) & (e < self.shrink))
            if len(thin) == 0:
                break
            i = pos[thin] + 1
            w = np.minimum(self.shrink, e[thin])
            p[thin] = (self.total[i] + w * p[thin]) / (self.count[i] + w)
            e[thin] = self.count[i] + w
            pos[thin] = i
        # at `shrink` rows or more the unchanged chain's weights apply: one affine map to `to`
        move = np.flatnonzero(pos < to)
        if len(move):
            a, b = pos[move], to[move]
            p[move] = self.value[b] + np.exp(self.log_a[b] - self.log_a[a]) * (p[move] - self.value[a])
            e[move] = self.rows[b]
            pos[move] = b
        return p, e, pos
