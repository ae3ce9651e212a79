"""Leakage-free context/query episodes for meta-training the learned heads.

A head learns *how to read a history*, so it is trained on queries whose answers are hidden
from the context it reads. Two kinds of episodes, both built from one fitted history:

* **cold** (prompt-held-out): the history's unique prompts are split into folds; a fold's rows
  (every policy, every step) are the queries and the context is everything else. The same
  prompt is never on both sides, as for a prompt never seen before.
* **warm** (row-held-out): every row is a query against the full history with its own
  (policy, prompt, step) row hidden (``exclude="same_step"``); the prompt's other steps and
  other policies stay visible, as for a prompt the log has seen before.
* **thin** (a policy known from a few outcomes; histories with three or more policies): as a
  cold episode, but one policy's context is cut to a random 8 to 256 of its rows and only
  that policy's rows of the fold are queried (at most a tenth of the fold's rows, so thin
  queries stay a minority), as for a model just added to the pool with
  ``add_history``. Without them a head never sees a thin policy and takes its few outcomes
  at their word.

Cold folds use :func:`v0lite._folds.prompt_folds`, which assigns whole prompts, so validation splits built
on it also never put a prompt on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._folds import prompt_folds
from .index import HistoryIndex, Queries

__all__ = ["Episode", "make_episodes", "subindex", "row_queries"]


@dataclass
class Episode:
    """Context index, queries (rows of the full history), their scores, and the exclude mode."""

    context: HistoryIndex
    queries: Queries
    y: np.ndarray
    rows: np.ndarray
    exclude: str
    kind: str


def subindex(index: HistoryIndex, rows: np.ndarray) -> HistoryIndex:
    """A history holding only ``rows`` (same prompt table and policy codes)."""
    return HistoryIndex(
        index.emb,
        index.keys,
        index.policies,
        index.policy[rows],
        index.prompt_row[rows],
        index.score[rows],
        index.step[rows],
        index.n[rows],
        index.lengths,
    )


def row_queries(index: HistoryIndex, rows: np.ndarray) -> Queries:
    """History rows seen as queries."""
    pr = index.prompt_row[rows]
    return Queries(index.policy[rows].astype(np.int32), index.step[rows], index.emb[pr], pr, index.lengths[pr])


THIN_SIZES = (8, 256)


def make_episodes(
    index: HistoryIndex,
    *,
    n_folds: int = 5,
    warm: bool = True,
    max_rows: int | None = None,
    thin: int = 2,
    random_state: int = 0,
) -> list[Episode]:
    """Cold episodes (one per prompt fold), ``thin`` thin ones per fold and, if ``warm``, one warm episode.

    Parameters
    ----------
    index : HistoryIndex
        The fitted history.
    n_folds : int, default 5
        Prompt folds for cold episodes (each row is a cold query exactly once).
    warm : bool, default True
        Add the row-held-out episode.
    max_rows : int, optional
        Subsample query rows per episode (seeded) to bound training time on huge logs.
    thin : int, default 2
        Thin episodes per fold (policies taken in a seeded cycle; context sizes log-uniform in
        :data:`THIN_SIZES`); none when the history has fewer than three policies.
    random_state : int, default 0

    Examples
    --------
    >>> from v0lite import V0Regressor
    >>> from v0lite.data import make_demo_log
    >>> index = V0Regressor(head="knn").fit(make_demo_log()).index_  # 4 policies  # doctest: +SKIP
    >>> eps = make_episodes(index, n_folds=5)  # doctest: +SKIP
    >>> [e.kind for e in eps][:6], len(eps), eps[-1].kind  # doctest: +SKIP
    (['cold', 'cold', 'cold', 'cold', 'cold', 'thin'], 16, 'warm')
    """
    rng = np.random.default_rng(random_state)
    folds = prompt_folds(len(index.keys), n_folds, random_state)
    row_fold = folds[index.prompt_row]

    def _cap(rows):
        if max_rows is not None and len(rows) > max_rows:
            rows = np.sort(rng.choice(rows, max_rows, replace=False))
        return rows

    episodes = []
    for f in range(n_folds):
        q_rows = np.flatnonzero(row_fold == f)
        if len(q_rows) == 0:
            continue
        ctx = subindex(index, np.flatnonzero(row_fold != f))
        q_rows = _cap(q_rows)
        episodes.append(Episode(ctx, row_queries(index, q_rows), index.score[q_rows], q_rows, "same_step", "cold"))
    codes = np.unique(index.policy)
    if thin > 0 and len(codes) >= 3:
        cycle = rng.permutation(codes)
        lo, hi = np.log(THIN_SIZES[0]), np.log(THIN_SIZES[1])
        for f in range(n_folds):
            for t in range(thin):
                code = cycle[(f * thin + t) % len(cycle)]
                mine = index.policy == code
                in_fold = row_fold == f
                q_rows = np.flatnonzero(mine & in_fold)
                own = np.flatnonzero(mine & ~in_fold)
                if len(q_rows) == 0 or len(own) == 0:
                    continue
                size = int(round(np.exp(rng.uniform(lo, hi))))
                keep = np.sort(rng.choice(own, min(size, len(own)), replace=False))
                ctx = subindex(index, np.sort(np.concatenate([np.flatnonzero(~mine & (row_fold != f)), keep])))
                share = max(1, int(0.1 * in_fold.sum()))  # thin rows stay a minority of the training set
                if len(q_rows) > share:
                    q_rows = np.sort(rng.choice(q_rows, share, replace=False))
                q_rows = _cap(q_rows)
                episodes.append(
                    Episode(ctx, row_queries(index, q_rows), index.score[q_rows], q_rows, "same_step", "thin")
                )
    if warm:
        q_rows = _cap(np.arange(index.n_rows))
        episodes.append(Episode(index, row_queries(index, q_rows), index.score[q_rows], q_rows, "same_step", "warm"))
    return episodes
