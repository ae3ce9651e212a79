"""How a policy known from its own rows differs from a base: a Gaussian-prior logistic solve (issue 29).

A policy added later (``add_history``), or fitted from a few rows (a *thin* policy,
:func:`~v0lite.heads._pool_items.thin_policies`), is read as ``logit p = base + z @ w + b``: the
base says what the pool expects on the prompt, ``(w, b)`` how this policy departs from it. The
departure is solved MAP under the fitted policies' spread (:func:`population_prior`, empirical
Bayes), so a few outcomes move it along the directions in which the pool's policies differ, and
as its rows near a fitted policy's count it moves to the fitted policies' own treatment
(:func:`solve_deviation`). :class:`OwnRows` keeps the step rule for such a policy: a query whose
own rows are hidden is answered as if its solve had not seen them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["offset_of", "population_prior", "solve_deviation", "OwnRows", "ExactRows"]

# prior variance of a policy's level beyond its offset (logit link): weak, so only a policy whose
# outcomes are all 1 (or all 0) feels it (its level stays finite); used by fit_glm and the added policies
LEVEL_VAR = 16.0
_EPS = 0.01  # offsets: a probability is clipped to [eps, 1 - eps] before its logit


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def offset_of(p, link):
    """A probability as the link's offset: itself (identity) or its logit, clipped to [eps, 1 - eps]."""
    p = np.asarray(p, np.float64)
    if link == "identity":
        return p
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def population_prior(W, b, lam, *, scale=1.0):
    """The fitted policies' weights as a Gaussian prior for a policy added later (empirical Bayes).

    ``w ~ N(mean(W), scale * cov(W) + I / lam)``, ``b ~ N(mean(b), var(b))``: the low-rank part is
    how the fitted policies differ from one another (the pool's "ability" directions, estimated
    from three or more of them), the isotropic part is the penalty the fitted policies themselves
    were solved with (``lam``). A policy known from a few outcomes then moves along the
    directions in which the pool's policies differ, and only slowly elsewhere: with no rows it is
    the average policy (the pool's difficulty prior), with as many rows as a fitted policy it is
    close to a per-policy fit. Returns ``(w0, b0, precision, b_var)``; ``precision`` is None with
    fewer than 3 policies (then the isotropic ``lam`` alone, as before issue 29).
    """
    W = np.asarray(W, np.float64)
    b = np.asarray(b, np.float64)
    K, d = W.shape
    w0, b0 = W.mean(0), float(b.mean())
    if K < 3:
        return w0, b0, None, None
    D = (W - w0) * np.sqrt(scale / (K - 1))
    # Woodbury: (D'D + I/lam)^-1 = lam I - lam^2 D' (I + lam D D')^-1 D
    M = np.eye(K) + lam * (D @ D.T)
    P = lam * np.eye(d) - lam**2 * (D.T @ np.linalg.solve(M, D))
    b_var = max(float(np.var(b, ddof=1)), 1e-2)
    return w0, b0, 0.5 * (P + P.T), b_var


def _joint_precision(P, b_var):
    """The prior precision of ``(w, b)``: ``P`` for the weights, ``1 / b_var`` for the level."""
    d = P.shape[0]
    Pf = np.zeros((d + 1, d + 1))
    Pf[:d, :d] = P
    Pf[d, d] = 1.0 / b_var
    return Pf


def _map_glm(Z, y, off, w0, b0, P, b_var, link, max_iter=30):
    """MAP weights of one policy under the Gaussian prior of :func:`population_prior` (dense Newton)."""
    d = Z.shape[1]
    X = np.column_stack([Z, np.ones(len(Z))])
    c = np.r_[w0, b0]
    Pf = _joint_precision(P, b_var)

    def loss(t):
        eta = X @ t + off
        data = 0.5 * np.sum((y - eta) ** 2) if link == "identity" else np.sum(np.logaddexp(0.0, eta) - y * eta)
        return data + 0.5 * (t - c) @ Pf @ (t - c)

    t = c.copy()
    f = loss(t)
    for _ in range(max_iter):
        eta = X @ t + off
        p = eta if link == "identity" else _sigmoid(eta)
        h = np.ones_like(p) if link == "identity" else np.maximum(p * (1 - p), 1e-6)
        g = X.T @ (p - y) + Pf @ (t - c)
        H = (X * h[:, None]).T @ X + Pf
        step = np.linalg.solve(H + 1e-9 * np.eye(d + 1), g)
        for _ in range(10):  # step halving
            tn = t - step
            fn = loss(tn)
            if fn <= f + 1e-12 * abs(f):
                break
            step = step / 2
        else:
            break
        done = f - fn <= 1e-10 * max(abs(f), 1.0)
        t, f = tn, fn
        if done or link == "identity":
            break
    return t[:d], float(t[d])


def solve_deviation(Z, y, base, own, w0, b0, P, level_var, lam, t, max_iter=30):
    """``(w, b)`` of ``logit p = (1 - t) base + t own + Z @ w + b`` for the added policy's rows (MAP).

    At ``t = 0``: ``w ~ N(0, P^-1)``, the fitted policies' weight spread (:func:`population_prior`),
    ``b ~ N(0, level_var)``. ``t`` in [0, 1] (the policy's rows over a fitted policy's) moves
    everything to the fitted policies' own treatment: their offset ``own`` (the policy's mean
    outcome), the isotropic ``lam`` around the average fitted policy ``(w0, b0)``. Why: the pool's
    base ranks a new policy's prompts better than its fitted treatment (routerdc-7model, a
    held-out model with all its train rows: within-model AUC 0.673 vs 0.663), but it is sharper
    on difficulty than the fitted policies' predictions, and an argmax router compares the two:
    kept at every n, the routing headline fell from 0.690 to 0.632 (mean task accuracy).
    """
    Pn, b_var = _deviation_prior(P, level_var, lam, t)
    off = (1.0 - t) * base + t * own
    return _map_glm(Z, y, off, t * np.asarray(w0), t * float(b0), Pn, b_var, "logit", max_iter=max_iter)


def _deviation_prior(P, level_var, lam, t, link="logit"):
    """The precision of ``w`` and the variance of ``b`` at ``t`` (:func:`solve_deviation`)."""
    Pn = (1.0 - t) * P + t * lam * np.eye(P.shape[0])
    # the level's prior widens as the rows grow, up to the fitted policies' own: fit_glm's LEVEL_VAR under
    # the logit, free (1e12) under the identity link (the ridge's intercept is unpenalised)
    cap = max(level_var, LEVEL_VAR if link == "logit" else 1e12)
    return Pn, (min(level_var / (1.0 - t), cap) if t < 1.0 else cap)


class OwnRows:
    """What removing one of an added policy's own rows does to its solve (approximate leave-one-out).

    The inverse Hessian of :func:`solve_deviation` at its solution and, per prompt and per
    (prompt, step) of the policy's rows, their summed residual and weight: a query whose own rows
    must be hidden (``exclude``) gets one Newton step without them, as a fitted policy's query does
    (:class:`~v0lite.heads._glm.NewtonRows`). Without it, a prediction on a prompt the policy answered would
    read that answer through its fitted deviation.
    """

    def __init__(self, Z, y, p, prompt_row, step, P, b_var):
        X = np.column_stack([Z, np.ones(len(Z))])
        h = np.maximum(p * (1 - p), 1e-6)
        H = (X * h[:, None]).T @ X + _joint_precision(P, b_var)
        self.Hinv = np.linalg.inv(0.5 * (H + H.T))
        r = y - p
        self.ustep = np.unique(step)
        srank = np.searchsorted(self.ustep, step)
        k1 = prompt_row.astype(np.int64)
        self.k1, inv1 = np.unique(k1, return_inverse=True)
        self.r1, self.h1 = np.bincount(inv1, r), np.bincount(inv1, h)
        self.k2, inv2 = np.unique(k1 * len(self.ustep) + srank, return_inverse=True)
        self.r2, self.h2 = np.bincount(inv2, r), np.bincount(inv2, h)

    def correction(self, z, prompt_row, step, exclude):
        """What to subtract from the linear predictor of queries ``(z, prompt_row, step)`` under ``exclude``."""
        m = len(prompt_row)
        if exclude not in ("any_step", "same_step") or not m:
            return np.zeros(m)
        pr = np.asarray(prompt_row, np.int64)
        if exclude == "any_step":
            keys, tab_k, tab_r, tab_h = pr, self.k1, self.r1, self.h1
            ok = pr >= 0
        else:
            rank = np.clip(np.searchsorted(self.ustep, step), 0, len(self.ustep) - 1)
            ok = (pr >= 0) & (self.ustep[rank] == step)
            keys, tab_k, tab_r, tab_h = pr * len(self.ustep) + rank, self.k2, self.r2, self.h2
        pos = np.clip(np.searchsorted(tab_k, keys), 0, len(tab_k) - 1)
        hit = ok & (tab_k[pos] == keys)
        out = np.zeros(m)
        if hit.any():
            X = np.column_stack([z[hit], np.ones(hit.sum())])
            lev = np.einsum("ij,jk,ik->i", X, self.Hinv, X)
            out[hit] = lev * tab_r[pos[hit]] / np.maximum(1 - lev * tab_h[pos[hit]], 1e-3)
        return out


class ExactRows:
    """A least-squares solve (the identity link) with a query's own rows removed exactly.

    ``(w, b) = H^-1 rhs``, ``H = X'X + penalty``, ``rhs = X'(y - o) + penalty @ centre``, ``X`` the
    rows' features with a column of ones, ``o`` their offsets, one value per offset *group*
    (``group``: a step of the policy). Removing the rows ``S`` of a query's prompt (``"any_step"``)
    or of its (prompt, step) (``"same_step"``), which share the query's ``x``, is a rank-one
    downdate, ``x' H_R^-1 = x' H^-1 / (1 - |S| x' H^-1 x)``, and moves the offsets of the groups
    they were part of by ``delta`` (the caller's: the offsets recomputed without them), which
    changes ``rhs`` by ``-sum_g delta_g (s_g - |S & g| x)``, ``s_g`` the summed ``X`` of group g.
    So the answer is the solve without those rows, not one Newton step toward it: nothing of
    their outcomes reaches it (the ``ridge`` head; :class:`OwnRows` is the logistic link's step).
    """

    def __init__(self, X, y, o, group, prompt_row, step, H, rhs):
        self.A = np.linalg.inv(0.5 * (H + H.T))
        self.beta = self.A @ rhs
        self.r0 = np.asarray(y, np.float64) - o
        self.group = np.asarray(group, np.int64)
        self.n_groups = int(self.group.max()) + 1 if len(self.group) else 0
        G = np.zeros((self.n_groups, X.shape[1]))
        np.add.at(G, self.group, X)
        self.M = self.A @ G.T  # (d + 1, groups)
        self.n_rows = len(self.r0)
        # rows sorted by (prompt, step): a query's own rows are one slice of that order
        self.order = np.lexsort((np.asarray(step, np.int64), np.asarray(prompt_row, np.int64)))
        self.keys = np.column_stack([np.asarray(prompt_row, np.int64), np.asarray(step, np.int64)])[self.order]

    def hidden(self, prompt_row, step, exclude):
        """Indices of the rows a query ``(prompt_row, step)`` must not read under ``exclude`` (maybe empty)."""
        if exclude not in ("any_step", "same_step") or prompt_row < 0:
            return np.zeros(0, np.int64)
        pr = self.keys[:, 0]
        lo, hi = np.searchsorted(pr, prompt_row), np.searchsorted(pr, prompt_row, side="right")
        if exclude == "same_step":
            st = self.keys[lo:hi, 1]
            lo, hi = lo + np.searchsorted(st, step), lo + np.searchsorted(st, step, side="right")
        return self.order[lo:hi]

    def linear(self, x, S, delta):
        """``x'(w, b)`` of the solve without rows ``S`` (non-empty), ``delta`` (per group) its offsets' move.

        None when ``S`` holds every row (nothing left to solve from).
        """
        n_s = len(S)
        if n_s >= self.n_rows:
            return None
        xa = self.A @ x
        lev = float(x @ xa)
        n_sg = np.bincount(self.group[S], minlength=self.n_groups)
        v = x @ self.beta - lev * self.r0[S].sum() - float(np.sum(delta * (x @ self.M - n_sg * lev)))
        return v / (1.0 - n_s * lev)
