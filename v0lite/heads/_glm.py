"""The penalised per-policy GLM under the ``logistic`` and ``ridge`` heads: its design and its solver.

:class:`Design` rotates standardised embeddings onto the eigenvectors of their Gram matrix, where
each policy's Hessian is close to diagonal; :func:`fit_glm` then fits every policy at once by
Jacobi-preconditioned Newton steps, and :func:`cv_glm` chooses each policy's penalty by
prompt-grouped cross-validation. :mod:`~v0lite.heads.logistic` builds the heads on them.
"""

from __future__ import annotations

import numpy as np

from ._deviation import LEVEL_VAR, _sigmoid, offset_of

__all__ = ["ALPHAS", "Design", "fit_glm", "cv_glm", "NewtonRows"]

ALPHAS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0)  # penalty per row of the policy


class Design:
    """``z = ((e - mean) / sd) @ V``: standardised embeddings on the eigenvectors of their Gram matrix."""

    def __init__(self, mean, sd, V):
        self.mean, self.sd, self.V = mean, sd, V

    @classmethod
    def fit(cls, emb, weights):
        w = np.asarray(weights, np.float64)
        keep = w > 0
        E = np.asarray(emb[keep], np.float64)
        w = w[keep] / w[keep].sum()
        mean = w @ E
        sd = np.sqrt(np.maximum(w @ (E - mean) ** 2, 0)) + 1e-6
        X = (E - mean) / sd
        G = X.T @ (X * w[:, None])
        s, V = np.linalg.eigh(G)
        return cls(mean, sd, V[:, ::-1].copy())

    def transform(self, emb):
        return ((np.asarray(emb, np.float64) - self.mean) / self.sd) @ self.V


def _objective(eta, y, link, policy, n_pol):
    if link == "identity":
        loss = 0.5 * (y - eta) ** 2
    else:
        loss = np.logaddexp(0.0, eta) - y * eta
    return np.bincount(policy, loss, n_pol)


def fit_glm(
    Z, prompt_row, policy, y, offset, n_pol, lam, *, link="logit", W=None, b=None, center=None, max_iter=60, tol=1e-7,
    level_var=LEVEL_VAR
):  # fmt: skip
    """Penalised GLM per policy, every policy at once: returns ``(W, b, info)``.

    Minimises, for each policy, the sum over its rows of the log loss (``link="logit"``,
    soft labels) or half the squared error (``"identity"``) plus ``lam / 2 * |w - center|^2``;
    the intercept ``b`` is free under the identity link, ``N(0, level_var)`` under the logit (why:
    a policy whose outcomes are all 1 got p = 1 - 6e-8 where the prior and kNN say 0.997). ``Z`` holds
    one row per prompt, rows point into it by ``prompt_row``. Each Newton step is preconditioned
    by the diagonal of each policy's Hessian (Jacobi).
    """
    n_p, d = Z.shape
    lam = np.broadcast_to(np.asarray(lam, np.float64), (n_pol,)).copy()
    C = np.zeros((n_pol, d)) if center is None else np.broadcast_to(center, (n_pol, d))
    W = C.copy() if W is None else np.array(W, np.float64)
    b = np.zeros(n_pol) if b is None else np.array(b, np.float64)
    key = prompt_row.astype(np.int64) * n_pol + policy
    Z2 = Z * Z
    counts = np.bincount(policy, None, n_pol).astype(np.float64)
    active = counts > 0

    gather = n_p * n_pol > 4 * len(y)  # few rows per (prompt, policy) cell: per-row products are cheaper

    def eta_of(W_, b_):
        if gather:
            return np.einsum("ij,ij->i", Z[prompt_row], W_[policy])
        return (Z @ W_.T)[prompt_row, policy]

    b_prec = 0.0 if link == "identity" else 1.0 / level_var

    def total(W_, b_, eta):
        pen = 0.5 * lam * ((W_ - C) ** 2).sum(1) + 0.5 * b_prec * b_**2
        return _objective(eta + b_[policy] + offset, y, link, policy, n_pol) + pen

    eta = eta_of(W, b)
    f = total(W, b, eta)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is read after the loop)
        lin = eta + b[policy] + offset
        p = lin if link == "identity" else _sigmoid(lin)
        r = y - p
        h = np.ones_like(p) if link == "identity" else np.maximum(p * (1 - p), 1e-6)
        R = np.bincount(key, r, n_p * n_pol).reshape(n_p, n_pol)
        Hm = np.bincount(key, h, n_p * n_pol).reshape(n_p, n_pol)
        gW = R.T @ Z - lam[:, None] * (W - C)
        hdiag = Hm.T @ Z2 + lam[:, None]
        gb = np.bincount(policy, r, n_pol) - b_prec * b
        hb = np.maximum(np.bincount(policy, h, n_pol), 1e-9) + b_prec
        dW, db = gW / hdiag, gb / hb
        t = np.ones(n_pol)
        todo = active.copy()
        for _ in range(8):  # step halving, per policy
            Wn, bn = W + t[:, None] * dW, b + t * db
            eta_n = eta_of(Wn, bn)
            fn = total(Wn, bn, eta_n)
            bad = todo & (fn > f + 1e-12 * np.abs(f))
            if not bad.any():
                break
            t = np.where(bad, t / 2, t)
        ok = fn <= f + 1e-12 * np.abs(f)
        W = np.where(ok[:, None], Wn, W)
        b = np.where(ok, bn, b)
        eta = eta_n if ok.all() else eta_of(W, b)
        gain = np.where(ok, f - fn, 0.0)
        f = np.where(ok, fn, f)
        if np.all(gain[active] <= tol * np.maximum(np.abs(f[active]), 1.0)):
            break
    return W, b, {"n_iter": it}


def cv_glm(
    Z, prompt_row, policy, y, off_train, off_test, n_pol, fold_of_prompt, alphas=ALPHAS, *, link="logit", tol=1e-5
):
    """Prompt-grouped CV of :func:`fit_glm` over ``alphas`` (penalty per row of the policy).

    ``off_train[f]`` / ``off_test[f]`` are the offsets of every row when fold ``f`` is held out
    (read from the other folds only). Returns ``(oof, loss)``: out-of-fold linear predictors of
    every row for each alpha ``(n_alphas, n_rows)`` and each policy's summed held-out loss
    ``(n_alphas, n_pol)``. The fits stop at a looser ``tol`` than the final one: the held-out
    loss moves far less than the gaps between alphas. A fold with no training row (a log of one
    prompt) is skipped: its rows' ``oof`` is NaN and it adds no loss.
    """
    folds = np.unique(fold_of_prompt[prompt_row])
    oof = np.zeros((len(alphas), len(y)))
    loss = np.zeros((len(alphas), n_pol))
    order = np.argsort(alphas)[::-1]  # strongest penalty first: warm starts move little
    for f in folds:
        te = fold_of_prompt[prompt_row] == f
        tr = ~te
        if not tr.any():
            oof[:, te] = np.nan
            continue
        te_prompts, te_pos = np.unique(prompt_row[te], return_inverse=True)
        W = b = None
        ntr = np.bincount(policy[tr], None, n_pol).astype(np.float64)
        for a in order:
            W, b, _ = fit_glm(
                Z,
                prompt_row[tr],
                policy[tr],
                y[tr],
                off_train[f][tr],
                n_pol,
                alphas[a] * np.maximum(ntr, 1),
                link=link,
                W=W,
                b=b,
                tol=tol,
            )
            lin = (Z[te_prompts] @ W.T)[te_pos, policy[te]] + b[policy[te]] + off_test[f][te]
            oof[a, te] = lin
            loss[a] += _objective(lin, y[te], link, policy[te], n_pol)
    return oof, loss


class NewtonRows:
    """One fitted policy's :func:`fit_glm` solve with a query's own rows left out: a Newton step, bounded.

    The policy's rows are given as *cells* (one per prompt and step: ``z`` the prompt's features,
    ``group`` the step, ``r`` and ``h`` the summed residual ``y - p`` and weight ``p (1 - p)`` at
    the solution ``theta = (w, b)``, ``n`` and ``ysum`` the count and summed score), in the design's
    coordinates (:class:`Design`, as :func:`fit_glm` solved in). Leaving out a query's cells ``S``
    (its (prompt, step), or every step of its prompt) is one Newton step from ``theta`` on the
    leave-out objective: ``theta_S = theta + H_S^-1 g_S``, ``g_S`` its gradient (of the log
    likelihood less the penalty ``P = diag(lam, b_prec)``, so ``g = X' r - P theta``) and ``H_S`` its
    Hessian. ``g_S`` is the full ``g0 = g(theta)``, which is not 0 (:func:`fit_glm` stops at a
    tolerance), less ``S``'s ``s_r x`` (all of ``S`` share the query's ``x = (z, 1)``), less what the
    offsets move: the steps ``S`` was part of lose it from their mean score (each step's offset, as
    the fit's), so their offsets move by ``delta_g`` and ``g`` by ``-delta_g (G_g - h_{S, g} x)``,
    ``G_g`` the step's summed ``h x``. ``H_S = H - s_h x x'``, so by Sherman-Morrison
    ``x' H_S^-1 = x' H^-1 / (1 - s_h lev)``, ``lev = x' H^-1 x``, and the linear predictor loses
    ``x' (theta - theta_S) = (lev s_r + sum_g delta_g (x' H^-1 G_g - h_{S, g} lev) - x' H^-1 g0)
    / (1 - s_h lev)``. ``H`` includes ``s_h x x'``, so ``s_h lev < 1``: bounded, no clamp (the
    Gram-diagonal ``lev`` it replaced reached 1.76 on v0-dapomath and a logit shift of ~184).

    Under the identity link the objective is quadratic and the step is the exact solve without
    ``S`` (:class:`~v0lite.heads._deviation.ExactRows`' downdate, to 3e-10; without the ``g0``
    term it was up to 2.7 off on small ridge logs, which ``H^-1`` and ``1 / (1 - s_h lev)``
    amplify). Under the logit, the ``g0`` term cut the error against a refit without ``S`` at
    alpha 1e-3 (see the ``logistic`` bullet of ``docs/design.md``). A query whose cells are all
    the policy's has nothing left: ``H_S`` is the penalty alone, ``1 - s_h lev`` can be as small as
    rounding (1e-4 on one prompt answered 12 times, ~1e-11 seen), and the leave-out solve is the
    penalty's centre, ``theta_S = 0``, so it is answered exactly.
    """

    def __init__(self, z, group, r, h, n, ysum, lam, b_prec, link, theta):
        X = np.column_stack([z, np.ones(len(z))])
        pen = np.r_[np.full(z.shape[1], lam), b_prec]
        H = (X * h[:, None]).T @ X + np.diag(pen)
        self.A = np.linalg.inv(0.5 * (H + H.T))
        self.theta = np.asarray(theta, np.float64)
        self.Ag0 = self.A @ (X.T @ r - pen * self.theta)  # H^-1 g0: the solver's leftover gradient
        self.group, self.r, self.h, self.n, self.ysum, self.link = group, r, h, n, ysum, link
        ng = int(group.max()) + 1 if len(group) else 0
        self.G = np.zeros((ng, X.shape[1]))
        np.add.at(self.G, group, X * h[:, None])
        self.n_g, self.y_g = np.bincount(group, n, ng), np.bincount(group, ysum, ng)
        self.o_g = offset_of(self.y_g / np.maximum(self.n_g, 1), link)

    def shift(self, z, cells, owner):
        """What each query's linear predictor loses when its ``cells`` (``owner``: the query of each) are left out."""
        X = np.column_stack([z, np.ones(len(z))])
        XA = X @ self.A
        lev = np.einsum("ij,ij->i", XA, X)
        m = len(z)
        s_r, s_h = np.bincount(owner, self.r[cells], m), np.bincount(owner, self.h[cells], m)
        g = self.group[cells]  # a query has at most one cell per step: its groups are distinct
        rem = self.n_g[g] - self.n[cells]
        moved = offset_of((self.y_g[g] - self.ysum[cells]) / np.maximum(rem, 1), self.link) - self.o_g[g]
        delta = np.where(rem > 0, moved, 0.0)  # a step left empty has no other row to move
        xg = np.einsum("ij,ij->i", XA[owner], self.G[g])
        t = np.bincount(owner, delta * (xg - self.h[cells] * lev[owner]), m)
        empty = np.bincount(owner, self.n[cells], m) >= self.n.sum() - 0.5  # no row of the policy left
        step = (lev * s_r + t - X @ self.Ag0) / np.where(empty, 1.0, 1.0 - lev * s_h)
        return np.where(empty, X @ self.theta, step)
