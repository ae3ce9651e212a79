"""Out-of-fold predictions of the simple heads on prompt-grouped folds of a history.

Each fold's rows are predicted from a context holding every other fold's rows (every policy,
every step): the cold-prompt situation of a routing query. Shared by ``knn`` with ``k="cv"``
and by the ``auto`` head, which compares and stacks these predictions.
"""

from __future__ import annotations

import numpy as np

from ..episodes import row_queries, subindex
from ..features import weighted_gram
from .prior import policy_prior

__all__ = ["KNN_GRID", "fold_contexts", "oof_simple", "brier_by_config", "choice_accuracy", "choice_groups"]

# (k, temperature) candidates of the kNN head; temperature 1.0 weighs the k neighbours almost equally
KNN_GRID = tuple((k, t) for k in (8, 16, 32, 64, 128, 256) for t in (0.02, 0.05, 0.2, 1.0))


def fold_contexts(index, folds, only=None):
    """(fold id, held-out rows, context index of the other rows) for each fold present (or in ``only``)."""
    fold_of_row = folds[index.prompt_row]
    out = []
    for f in np.unique(fold_of_row):
        if only is not None and f not in only:
            continue
        te = np.flatnonzero(fold_of_row == f)
        tr = np.flatnonzero(fold_of_row != f)
        if len(tr) == 0:
            continue
        out.append((f, te, subindex(index, tr)))
    return out


def _ridge_prompt_level(ctx, lam_scale=0.03):
    """Pooled ridge (as :class:`~v0lite.heads.linear.LinearHead`) from per-prompt sums: one Gram over prompts."""
    r = ctx.score - ctx.row_base(np.arange(ctx.n_rows))
    n_p = len(ctx.keys)
    cnt = np.bincount(ctx.prompt_row, None, n_p).astype(np.float64)
    rs = np.bincount(ctx.prompt_row, r, n_p)
    seen = np.flatnonzero(cnt > 0)
    E = ctx.emb[seen].astype(np.float64)
    A = weighted_gram(ctx.emb[seen], cnt[seen]) + lam_scale * max(ctx.n_rows, 1) * np.eye(E.shape[1])
    return np.linalg.solve(A, E.T @ rs[seen])


def oof_simple(index, folds, *, knn_grid=KNN_GRID, ridge=True, only=None):
    """Out-of-fold prior, kNN (every config of ``knn_grid``) and pooled-ridge predictions of every row.

    Returns a dict: ``prior`` (n_rows,), ``knn`` (n_configs, n_rows), ``ridge`` (n_rows,) and
    ``covered`` (rows that got a prediction: their fold had a context, and is in ``only`` if given).
    """
    n = index.n_rows
    out = {
        "prior": np.full(n, np.nan),
        "knn": np.full((len(knn_grid), n), np.nan),
        "ridge": np.full(n, np.nan),
        "covered": np.zeros(n, bool),
    }
    kmax = max((k for k, _ in knn_grid), default=0)
    for _, te, ctx in fold_contexts(index, folds, only):
        q = row_queries(index, te)
        prior = policy_prior(ctx, q)
        fill = float(ctx.score.mean())
        prior0 = np.nan_to_num(prior, nan=fill)
        out["prior"][te] = prior0
        out["covered"][te] = True
        if knn_grid:
            rows, sims = ctx.search_queries(q, kmax, "same_step")
            valid = rows >= 0
            resid = np.where(valid, ctx.score[np.where(valid, rows, 0)] - ctx.row_base(rows), 0.0)
            out["knn"][:, te] = _knn_grid_estimates(resid, sims, valid, prior0, knn_grid)
        if ridge:
            w = _ridge_prompt_level(ctx)
            out["ridge"][te] = np.clip(prior0 + index.emb[index.prompt_row[te]].astype(np.float64) @ w, 0.0, 1.0)
    return out


def _knn_grid_estimates(resid, sims, valid, prior, grid):
    """:func:`~v0lite.heads.knn.knn_estimate` for every (k, temperature) of ``grid`` at once.

    The weights are absolute (an exact match weighs 1), so one exponential per temperature and
    prefix sums over the neighbours give every k.
    """
    s = np.minimum(sims.astype(np.float64), 1.0)
    out = np.empty((len(grid), len(prior)))
    by_t = {}
    for c, (k, t) in enumerate(grid):
        if t not in by_t:
            w = np.exp((s - 1.0) / t) * valid
            by_t[t] = (np.cumsum(w * resid, axis=1), np.cumsum(w, axis=1))
        wr, ws = by_t[t]
        kk = min(k, wr.shape[1]) - 1
        out[c] = np.clip(prior + wr[:, kk] / (ws[:, kk] + 1.0), 0.0, 1.0)
    return out


def brier_by_config(P, y, covered):
    """Mean squared error of each row of ``P`` (configs x rows) on the covered rows."""
    return np.mean((P[:, covered] - y[covered]) ** 2, axis=1)


def _dense(a):
    """``a``'s values as codes 0..k-1 in sorted order (int64)."""
    return np.unique(np.asarray(a), return_inverse=True)[1].ravel().astype(np.int64)


def choice_groups(prompt, policy, step=None):
    """Each row's (prompt, step) group as codes 0..k-1 in sorted order, and which groups hold >= 2 policies."""
    g = _dense(prompt)
    if step is not None:
        s = _dense(step)
        g = _dense(g * (int(s.max(initial=0)) + 1) + s)
    if not len(g):
        return g, np.zeros(0, bool)
    pol = _dense(policy)
    n_pol = int(pol.max()) + 1
    pairs = np.unique(g * n_pol + pol)  # 1-d codes: a 2-d np.unique sorts rows, ~10x slower
    return g, np.bincount(pairs // n_pol, minlength=g.max() + 1) >= 2


def choice_accuracy(y, p, prompt, policy, step=None, *, per_prompt=False):
    """Mean over prompts of the true score of the argmax-p policy (prompts answered by >= 2 policies).

    Rows are grouped by prompt (and step, if given); a group needs two or more distinct
    policies. Ties in ``p`` take the first row. ``nan`` when no prompt qualifies. With
    ``per_prompt=True`` the array of each qualifying group's score (ordered by group).
    """
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    g, ok = choice_groups(prompt, policy, step)
    if not ok.any():
        return np.zeros(0) if per_prompt else float("nan")
    order = np.lexsort((-p, g))
    gs = g[order]
    first = np.r_[True, gs[1:] != gs[:-1]]
    best_rows = order[first]
    best_group = gs[first]
    keep = ok[best_group]
    return y[best_rows[keep]] if per_prompt else float(y[best_rows[keep]].mean())


def pairwise_accuracy(y, p, prompt, policy, step=None, *, per_group=False):
    """Concordance of ``p`` with the outcomes between policies on the same prompt, weighted by the outcome gap.

    Over every prompt (and step) and every pair of policies that answered it with different
    scores: the share, weighted by ``|y_i - y_j|``, of pairs where the policy with the higher
    ``p`` is the better one (a tie in ``p`` counts half). It is what a router needs at every
    cost trade-off, where the choice is between the best policy and cheaper ones; the argmax's
    :func:`choice_accuracy` only scores the top pick, which one dominant policy can decide alone.
    Rows repeated within a (prompt, step, policy) cell are averaged. ``nan`` when no pair differs.
    With ``per_group=True`` the weighted right and total counts of each (prompt, step) group, as
    two arrays indexed by the group codes of :func:`choice_groups`.
    """
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    g, _ = choice_groups(prompt, policy, step)
    if not len(g):
        return (np.zeros(0), np.zeros(0)) if per_group else float("nan")
    pol = _dense(policy)
    n_g, n_pol = int(g.max()) + 1, int(pol.max()) + 1
    cell = g * n_pol + pol
    n = np.bincount(cell, None, n_g * n_pol).reshape(n_g, n_pol)
    with np.errstate(invalid="ignore", divide="ignore"):
        Y = np.bincount(cell, y, n_g * n_pol).reshape(n_g, n_pol) / n
        P = np.bincount(cell, p, n_g * n_pol).reshape(n_g, n_pol) / n
    num, den = np.zeros(n_g), np.zeros(n_g)
    for i in range(n_pol - 1):
        dy = Y[:, i, None] - Y[:, i + 1 :]  # nan where either policy is missing
        dp = P[:, i, None] - P[:, i + 1 :]
        w = np.nan_to_num(np.abs(dy))
        right = np.where(dp == 0, 0.5, (np.sign(dp) == np.sign(dy)).astype(np.float64))
        num += (w * np.nan_to_num(right)).sum(1)
        den += w.sum(1)
    if per_group:
        return num, den
    return float(num.sum() / den.sum()) if den.sum() > 0 else float("nan")
