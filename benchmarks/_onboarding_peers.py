"""The simple peers of benchmarks/onboarding.py: what a user could fit on a new model's n rows and the
other models' outcomes, on the same MiniLM vectors (the protocol is onboarding.py's docstring)."""

from __future__ import annotations

import numpy as np

K_NB = 32  # neighbours of the difficulty prior and the IRT peer's item parameters
_EPS = 0.01


def _logit(p):
    p = np.clip(np.asarray(p, np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def _glm(Z, y, off, lam, n_iter=30):
    """Ridge-penalised logistic regression with soft labels and an unpenalised intercept (Newton)."""
    X = np.column_stack([np.ones(len(Z)), Z])
    w = np.zeros(X.shape[1])
    pen = np.r_[0.0, np.full(Z.shape[1], lam)]
    for _ in range(n_iter):
        p = _sigmoid(X @ w + off)
        g = X.T @ (p - y) + pen * w
        H = (X * np.maximum(p * (1 - p), 1e-6)[:, None]).T @ X + np.diag(pen + 1e-8)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


def _design(E_tr):
    """Standardise the embedding on the train prompts and keep the top 64 principal directions (fast, stable)."""
    mu, sd = E_tr.mean(0), E_tr.std(0) + 1e-6
    X = (E_tr - mu) / sd
    _, _, Vt = np.linalg.svd(X[:: max(1, len(X) // 4000)], full_matrices=False)
    V = Vt[:64].T / np.sqrt(64)
    return lambda E: ((E - mu) / sd) @ V


def peer_predictions(D, u, rows_idx, y_rows, design):
    """Each peer's predicted success of unit ``u`` on the test prompts, from its n train rows."""
    j = D.units.index(u)
    others = [i for i in range(len(D.units)) if i != j]
    n = len(rows_idx)
    pool_mean = float(np.nanmean(D.Y_tr[:, others]))
    out = {}
    m = (y_rows.sum() + pool_mean * 2) / (n + 2)
    out["mean of n rows"] = np.full(len(D.te_prompts), m)
    # kNN on the n rows: k by leave-one-out Brier on the rows
    if n >= 5:
        sub = np.arange(n) if n <= 1000 else np.random.default_rng(0).choice(n, 1000, replace=False)
        S = D.E_tr[rows_idx[sub]] @ D.E_tr[rows_idx].T  # leave-one-out on at most 1,000 of the rows
        S[np.arange(len(sub)), sub] = -np.inf
        best, best_k = np.inf, 5
        for k in (5, 10, 20, 50):
            if k >= n:
                break
            nb = np.argpartition(-S, k, axis=1)[:, :k]
            pl_ = (y_rows[nb].sum(1) + 2 * m) / (k + 2)
            b = np.mean((pl_ - y_rows[sub]) ** 2)
            if b < best:
                best, best_k = b, k
        St = D.E_te @ D.E_tr[rows_idx].T
        nb = np.argpartition(-St, best_k - 1, axis=1)[:, :best_k] if best_k < n else np.tile(np.arange(n), (len(St), 1))
        out["kNN on n rows"] = (y_rows[nb].sum(1) + 2 * m) / (nb.shape[1] + 2)
    else:
        out["kNN on n rows"] = out["mean of n rows"]
    # per-model logistic on the n rows, L2 by 5-fold CV (n >= 30; else a fixed strong penalty)
    if n >= 5 and 0 < y_rows.mean() < 1:
        Z = design(D.E_tr[rows_idx])
        lams = (1.0, 3.0, 10.0, 30.0, 100.0)
        lam = 10.0
        if n >= 30:
            f = np.arange(n) % 5
            losses = []
            for lm in lams:
                ll = 0.0
                for k in range(5):
                    w = _glm(Z[f != k], y_rows[f != k], 0.0, lm)
                    p = np.clip(_sigmoid(w[0] + Z[f == k] @ w[1:]), 1e-4, 1 - 1e-4)
                    ll -= np.sum(y_rows[f == k] * np.log(p) + (1 - y_rows[f == k]) * np.log(1 - p))
                losses.append(ll)
            lam = lams[int(np.argmin(losses))]
        w = _glm(Z, y_rows, 0.0, lam)
        out["logistic on n rows"] = _sigmoid(w[0] + design(D.E_te) @ w[1:])
    else:
        out["logistic on n rows"] = out["mean of n rows"]
    # difficulty prior: the other models' mean outcome on the 32 nearest train prompts, Platt on the n rows
    d_tr = _logit(np.nanmean(D.NB_tr[:, others], 1))
    d_te = _logit(np.nanmean(D.NB_te[:, others], 1))
    if n >= 2:
        a = _platt(d_tr[rows_idx], y_rows)
        out["difficulty prior"] = _sigmoid(a[0] + a[1] * d_te)
    else:
        out["difficulty prior"] = _sigmoid(d_te)
    # IRT peer: item parameters from the other models (mean logit + principal components), ability on the n rows
    L_tr = _logit((D.NB_tr[:, others] * K_NB + 1) / (K_NB + 2))
    L_te = _logit((D.NB_te[:, others] * K_NB + 1) / (K_NB + 2))
    ok = ~np.isnan(L_tr).any(1)
    mu_m = np.nanmean(L_tr[ok].mean(1))
    R = L_tr[ok] - L_tr[ok].mean(1, keepdims=True)
    c = R.mean(0)
    _, s, Vt = np.linalg.svd(R - c, full_matrices=False)
    r = max(1, min(len(others) - 1, 4))
    Vt, sd = Vt[:r], s[:r] / np.sqrt(ok.sum())

    def feats(L):
        mm = L.mean(1, keepdims=True)
        return np.column_stack([mm[:, 0] - mu_m, ((L - mm - c) @ Vt.T) / sd])

    F_tr, F_te = feats(np.nan_to_num(L_tr, nan=0.0)), feats(L_te)
    # the other models' abilities on the normalised components: coefficient sd_r * V[r, k]
    G = (Vt * sd[:, None]).T  # (n_others, r)
    prior_var = np.r_[0.25, np.maximum(G.var(0, ddof=1), 1e-3)]
    level = _logit(m)
    if n >= 1:
        w = _eb_logistic(F_tr[rows_idx], y_rows, level, np.r_[1.0, np.zeros(r)], prior_var)
    else:
        w = np.r_[0.0, 1.0, np.zeros(r)]
    out["IRT peer"] = _sigmoid(level + w[0] + F_te @ w[1:])
    return out


def _platt(x, y):
    """``(a, b)`` of ``sigmoid(a + b x)`` on soft labels; b >= 0, weak ridge toward (mean, 1)."""
    w = np.array([0.0, 1.0])
    X = np.column_stack([np.ones(len(x)), x])
    for _ in range(30):
        p = _sigmoid(X @ w)
        g = X.T @ (p - y) + np.array([0.0, 1.0]) * (w - [0, 1])
        H = (X * np.maximum(p * (1 - p), 1e-6)[:, None]).T @ X + np.diag([1e-6, 1.0])
        w = w - np.linalg.solve(H, g)
    w[1] = max(w[1], 0.05)  # never flat or reversed: the calibration keeps the prior's ranking
    return w


def _eb_logistic(F, y, off, center, prior_var, n_iter=30):
    """MAP of ``sigmoid(off + d + F @ a)``: ``a ~ N(center, diag(prior_var))``, ``d ~ N(0, 0.25)``."""
    X = np.column_stack([np.ones(len(F)), F])
    c = np.r_[0.0, center]
    P = 1.0 / np.r_[0.25, prior_var]
    w = c.copy()
    for _ in range(n_iter):
        p = _sigmoid(off + X @ w)
        g = X.T @ (p - y) + P * (w - c)
        H = (X * np.maximum(p * (1 - p), 1e-6)[:, None]).T @ X + np.diag(P)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return w
