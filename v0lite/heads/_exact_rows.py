"""The ``ridge`` head's own rows hidden exactly: its solve without them (the identity link).

A query whose own rows must be hidden (the step rule, ``exclude``) is answered by the policy's
ridge solve without those rows, not one Newton step toward it (:class:`~v0lite.heads._deviation.ExactRows`):
for a fitted policy from its fit rows, for a policy solved in context from the rows that solve read,
with each step's offset recomputed without them; its prior offset hides them too. The logistic
link keeps its Newton step (:class:`~v0lite.heads._deviation.OwnRows`, the Gram-diagonal one for
fitted policies). Nothing here runs for a prompt outside the history.
"""

from __future__ import annotations

import numpy as np

from ._deviation import ExactRows, _deviation_prior, _joint_precision, offset_of

__all__ = ["exact_fitted", "exact_in_context", "hide_exactly", "hide_in_context"]


def exact_fitted(head, index, code):
    """``(ExactRows, delta)`` of fitted policy ``code``'s ridge solve (its fit-time rows, offsets per step)."""
    cache = index.__dict__.setdefault("_glm_exact_cache", {})
    key = (id(head), int(code), "fitted")
    if key not in cache:
        n_fit = int(round(float(head.loo_pair_[:, 2].sum())))  # identity link: the weight sums count rows
        rows = np.flatnonzero(index.policy[:n_fit] == code)  # an index only grows at its end (add_history)
        cache[key] = _exact_step_means(head, index, rows, float(head.lam_[code]), np.zeros(head.coef_.shape[1]))
    return cache[key]


def _exact_step_means(head, index, rows, lam, centre):
    """``(ExactRows, delta)``: :func:`fit_glm`'s ridge on ``rows`` (offsets: step means, ``w`` to ``centre``)."""
    _, g = np.unique(index.step[rows], return_inverse=True)
    y = index.score[rows]
    ng, yg = np.bincount(g).astype(np.float64), np.bincount(g, y)
    c = (yg / ng)[g]  # the offsets the fit used (group_means): each step's mean
    X = np.column_stack([head.design_.transform(index.emb[index.prompt_row[rows]]), np.ones(len(rows))])
    pen = np.full(X.shape[1], lam)
    pen[-1] = 0.0  # the intercept is not penalised
    rhs = X.T @ (y - c) + pen * np.r_[centre, 0.0]
    ex = ExactRows(X, y, c, g, index.prompt_row[rows], index.step[rows], X.T @ X + np.diag(pen), rhs)

    def delta(S, q_step, exclude):
        ys, ns = np.bincount(g[S], y[S], len(ng)), np.bincount(g[S], None, len(ng))
        rem = ng - ns
        return np.where(rem > 0, (yg - ys) / np.maximum(rem, 1) - yg / ng, 0.0)

    return ex, delta


def exact_in_context(head, index, code, step_cut):
    """``(ExactRows, delta)`` of a ridge policy solved in context (:func:`solve_in_context`); None: no rows."""
    cache = index.__dict__.setdefault("_glm_exact_cache", {})
    key = (id(head), int(code), int(step_cut))
    if key not in cache:
        cache[key] = None
        w0, b0, prec, b_var = head._population()
        rows = np.flatnonzero((index.policy == code) & (index.step <= step_cut))
        if len(rows) and (not head.params.get("pool_prior", True) or prec is None):  # the isotropic pull
            cache[key] = _exact_step_means(head, index, rows, head._pool_scales()[0], w0)
        elif len(rows):
            lam, n_fit = head._pool_scales()
            P = prec
            if n_fit:
                P, b_var = _deviation_prior(prec, b_var, lam, min(1.0, len(rows) / float(n_fit)), "identity")
            ustep, g = np.unique(index.step[rows], return_inverse=True)
            y = index.score[rows]
            og = np.nan_to_num(index.recent_prior(int(code), ustep), nan=float(y.mean()))  # solve_in_context's
            o = og[g]
            X = np.column_stack([head.design_.transform(index.emb[index.prompt_row[rows]]), np.ones(len(rows))])
            Pf = _joint_precision(P, b_var)
            H = X.T @ X + Pf + 1e-9 * np.eye(X.shape[1])  # as _map_glm's step
            rhs = X.T @ (y - o) + Pf @ np.r_[w0, b0]
            ex = ExactRows(X, y, o, g, index.prompt_row[rows], index.step[rows], H, rhs)

            def delta(S, q_step, exclude):
                # each step's offset (the policy's prior there) recomputed without the rows S
                pr = np.full(len(ustep), index.prompt_row[rows[S[0]]])
                if exclude == "same_step":
                    pr = np.where(ustep == q_step, pr, -1)  # only that step's prior reads them
                new = index.recent_prior(int(code), ustep, hide=(pr, exclude))
                keep = np.ones(len(y), bool)
                keep[S] = False
                new = np.nan_to_num(new, nan=float(y[keep].mean()) if keep.any() else 0.5)
                rem = np.bincount(g[keep], None, len(ustep))
                return np.where(rem > 0, new - og, 0.0)

            cache[key] = (ex, delta)
    return cache[key]


def hide_exactly(head, index, queries, hit, z, exclude, out, off, exact):
    """Queries ``hit`` answered by the ridge solve without their own rows, and their prior without them too."""
    from ..index import hidden_prior

    ex, delta = exact
    done = []
    for i, h in enumerate(hit):
        S = ex.hidden(int(queries.prompt_row[h]), int(queries.step[h]), exclude)
        if not len(S):
            continue
        lin = ex.linear(np.r_[z[i], 1.0], S, delta(S, int(queries.step[h]), exclude))
        out[h] = 0.0 if lin is None else lin  # no row left: the solve of no rows
        done.append(h)
    if done:
        done = np.asarray(done)
        off[done] = offset_of(hidden_prior(index, queries.subset(done), exclude), head.link)


def hide_in_context(head, index, queries, qj, code, cut, z, exclude, out, off):
    """Queries ``qj`` of policy ``code`` solved in context at step ``cut``: their own rows hidden exactly."""
    if exclude not in ("any_step", "same_step"):
        return
    mine = queries.prompt_row[qj] >= 0  # only prompts of the history can have own rows
    ex = exact_in_context(head, index, code, cut) if mine.any() else None
    if ex is not None:
        hide_exactly(head, index, queries, qj[mine], z[mine], exclude, out, off, ex)
