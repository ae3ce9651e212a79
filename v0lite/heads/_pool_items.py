"""What the fitted policies say about a prompt, as the base of a policy added later (issue 29).

A policy first seen through ``add_history`` is known from a few outcomes. Before they say
anything, the best guess of its success on a prompt is how the *pool* (the policies the head
was fitted on) does there. Two item features carry that, on the logit scale:

* **consensus**: the mean over fitted policies of the head's own linear predictor on the prompt
  (for the logistic head, the average policy's weights on the embedding);
* **neighbour difficulty**: the fitted policies' pooled mean outcome over each one's ``k``
  nearest eligible history prompts (smoothed by one success and one failure), the
  non-parametric view of the same question.

Neither alone is the best ranker of a new model's prompts: on routerdc-7model's official split
the consensus alone gave a held-out model a within-model AUC of 0.641, the neighbours alone
0.642, their mix 0.650 (benchmarks/onboarding.py). The mix (an intercept and two slopes) is
fitted once, at fit time, *leave one policy out*: each fitted policy's outcomes are regressed on
the features of the *other* fitted policies, on prompts whose own rows are hidden (cold), which is
exactly the situation of a policy added later. Each policy gets its own level in that regression,
so the slopes say how well the features rank a policy's prompts, not how strong it is (its rows
say that): with one shared level, a pool whose models differ much in strength fitted both slopes
to 0 (tests/test_onboard.py). Nothing is tuned on held-out data.

The new policy's own rows then fit how it differs from that base: a Gaussian-prior logistic
regression of the deviation on the embedding (:func:`~v0lite.heads.logistic.population_prior`'s
covariance, centred at zero) and a level shift whose prior variance is the fitted policies' spread
of levels (:func:`solve_deviation`).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "K_POOL",
    "item_table",
    "base_logit",
    "fit_mix",
    "level_variance",
    "population_prior",
    "solve_deviation",
    "pool_base",
    "solve_on_items",
]

K_POOL = 32  # neighbours per fitted policy (the difficulty prior's k in benchmarks/onboarding.py)
MIN_POLICIES = 3  # leave-one-policy-out needs two others to average over
MAX_MIX_PROMPTS = 3000  # (prompt, step) pairs the mix is fitted on: three slopes need few
_EPS = 0.01  # offsets: a probability is clipped to [eps, 1 - eps] before its logit
_CHUNK_CELLS = 65_536  # (prompt, fitted policy) pairs per item-table block: memory ~ cells x dim floats


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def offset_of(p, link):
    """A probability as the link's offset: itself (identity) or its logit, clipped to [eps, 1 - eps]."""
    p = np.asarray(p, np.float64)
    if link == "identity":
        return p
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def item_table(decision, index, n_fitted, emb, step, prompt_row, exclude, k=K_POOL):
    """Each prompt's view from every fitted policy: ``(lin, S, C)``, each of shape (m, n_fitted).

    ``lin`` is the head's linear predictor of fitted policy j on the prompt (``decision``, the
    head's own method, with ``exclude`` hiding the query's own rows), ``S`` and ``C`` the sum of
    outcomes and the count of policy j's ``k`` nearest eligible history rows.
    """
    from ..index import Queries

    m = len(step)
    lin = np.zeros((m, n_fitted))
    S = np.zeros((m, n_fitted))
    C = np.zeros((m, n_fitted))
    chunk = max(1, _CHUNK_CELLS // max(n_fitted, 1))
    for s in range(0, m, chunk):
        e, st, pr = emb[s : s + chunk], step[s : s + chunk], prompt_row[s : s + chunk]
        mm = len(st)
        q = Queries(
            np.repeat(np.arange(n_fitted, dtype=np.int32), mm),
            np.tile(st, n_fitted),
            np.tile(e, (n_fitted, 1)),
            np.tile(pr, n_fitted),
        )
        lin[s : s + mm] = decision(index, q, exclude=exclude).reshape(n_fitted, mm).T
        rows, _ = index.search_queries(q, k, exclude, search="numpy")
        ok = rows >= 0
        S[s : s + mm] = np.where(ok, index.score[np.maximum(rows, 0)], 0.0).sum(1).reshape(n_fitted, mm).T
        C[s : s + mm] = ok.sum(1).reshape(n_fitted, mm).T
    return lin, S, C


def _features(lin, S, C, drop=None):
    """``(consensus, neighbour logit)`` over the fitted policies, without column ``drop``."""
    n = lin.shape[1]
    if drop is None:
        return lin.mean(1), np.log((S.sum(1) + 1.0) / (C.sum(1) - S.sum(1) + 1.0))
    c = (lin.sum(1) - lin[:, drop]) / (n - 1)
    s = S.sum(1) - S[:, drop]
    t = C.sum(1) - C[:, drop]
    return c, np.log((s + 1.0) / (t - s + 1.0))


def base_logit(mix, lin, S, C):
    """The pool's logit for a policy it has not seen: ``mix @ [1, consensus, neighbour logit]``."""
    c, nb = _features(lin, S, C)
    return mix[0] + mix[1] * c + mix[2] * nb


def _pooled_level(y, w, offset, n_iter=50):
    """The one intercept ``b`` of ``sigmoid(b + offset)`` on weighted soft labels (Newton)."""
    b = 0.0
    for _ in range(n_iter):
        p = _sigmoid(b + offset)
        step = np.sum(w * (p - y)) / max(float(np.sum(w * np.maximum(p * (1 - p), 1e-6))), 1e-9)
        b -= step
        if abs(step) < 1e-8:
            break
    return b


def fit_mix(decision, index, n_fitted, random_state=0):
    """The mix ``[intercept, consensus slope, neighbour slope]``, fitted leave one policy out; None if it cannot be.

    On up to :data:`MAX_MIX_PROMPTS` (prompt, step) pairs of the fitted history, every prompt's
    own rows hidden (``exclude="any_step"``: a cold prompt), each fitted policy's mean outcome there
    is regressed (logistic, weighted by its rows, one free level per policy) on the consensus and
    the neighbour logit of the *other* fitted policies; the intercept returned is the pooled level
    at those slopes. None with fewer than :data:`MIN_POLICIES` fitted policies.
    """
    rows = np.flatnonzero(index.policy < n_fitted)
    if n_fitted < MIN_POLICIES or len(np.unique(index.policy[rows])) < MIN_POLICIES:
        return None
    ustep, srank = np.unique(index.step[rows], return_inverse=True)
    pair = index.prompt_row[rows].astype(np.int64) * len(ustep) + srank
    upair, pinv = np.unique(pair, return_inverse=True)
    rng = np.random.default_rng(random_state)
    pick = np.sort(rng.choice(len(upair), min(len(upair), MAX_MIX_PROMPTS), replace=False))
    slot = np.full(len(upair), -1)
    slot[pick] = np.arange(len(pick))
    sel = slot[pinv] >= 0
    r, sl = rows[sel], slot[pinv[sel]]
    cnt = np.zeros((len(pick), n_fitted))
    tot = np.zeros((len(pick), n_fitted))
    np.add.at(cnt, (sl, index.policy[r]), 1.0)
    np.add.at(tot, (sl, index.policy[r]), index.score[r])
    pr = (upair[pick] // len(ustep)).astype(np.int64)
    st = ustep[upair[pick] % len(ustep)]
    lin, S, C = item_table(decision, index, n_fitted, index.emb[pr], st, pr, "any_step")
    X, y, w, who = [], [], [], []
    for j in range(n_fitted):
        has = cnt[:, j] > 0
        if not has.any():
            continue
        X.append(np.column_stack(_features(lin[has], S[has], C[has], drop=j)))
        y.append(tot[has, j] / cnt[has, j])
        w.append(cnt[has, j])
        who.append(np.full(has.sum(), j))
    X, y, w, who = np.vstack(X), np.concatenate(y), np.concatenate(w), np.concatenate(who)
    if not np.isfinite(X).all() or len(np.unique(y)) < 2:
        return None
    # one intercept per left-out policy: the slopes then measure how well the features rank a
    # policy's own prompts (what its in-context level cannot supply). With one shared intercept,
    # a strong policy's higher outcomes against the lower consensus of the others (it is left out
    # of it) pulled the slopes toward the noisier neighbour feature on RouterBench.
    _, who = np.unique(who, return_inverse=True)
    # slopes >= 0: what the pool finds hard is never predicted easy for a newcomer (its own rows may
    # say so); a pool of specialists with no shared difficulty otherwise fits a negative slope
    keep = [0, 1]
    slopes = np.zeros(2)
    while keep:
        slopes[:] = 0.0
        slopes[keep] = _levels_and_slopes(X[:, keep], y, w, who)
        neg = [k for k in keep if slopes[k] < 0]
        if not neg:
            break
        keep.remove(min(neg, key=lambda k: slopes[k]))
    slopes[slopes < 0] = 0.0
    # the intercept of a policy not yet seen: the pooled level at these slopes (its rows move it)
    b = _pooled_level(y, w, X @ slopes)
    return np.r_[b, slopes]


def _levels_and_slopes(X, y, w, group, ridge=1e-3, n_iter=50):
    """Slopes of a weighted logistic regression with one free level per group (Newton).

    The levels are profiled out through the Schur complement of their diagonal block, so the cost
    is linear in the rows whatever the number of groups (a dense one-hot design with hundreds of
    fitted policies would not fit in memory).
    """
    n_g, k = int(group.max()) + 1, X.shape[1]
    b, s = np.zeros(n_g), np.zeros(k)
    pen = ridge * max(float(w.sum()), 1.0)
    for _ in range(n_iter):
        p = _sigmoid(b[group] + X @ s)
        r, h = w * (p - y), w * np.maximum(p * (1 - p), 1e-6)
        g_b, g_s = np.bincount(group, r, n_g), X.T @ r + pen * s
        h_bb = np.bincount(group, h, n_g) + 1e-9
        h_bs = np.column_stack([np.bincount(group, h * X[:, j], n_g) for j in range(k)])
        h_ss = (X * h[:, None]).T @ X + np.eye(k) * (pen + 1e-9)
        schur = h_ss - h_bs.T @ (h_bs / h_bb[:, None])
        ds = np.linalg.solve(schur, g_s - h_bs.T @ (g_b / h_bb))
        db = (g_b - h_bs @ ds) / h_bb
        b, s = b - db, s - ds
        if max(np.abs(ds).max(), np.abs(db).max()) < 1e-8:
            break
    return s


def level_variance(index, n_fitted, intercepts=None):
    """Variance over fitted policies of their overall logit level (mean outcome, plus ``intercepts``), >= 0.01."""
    pol = index.policy
    keep = pol < n_fitted
    cnt = np.bincount(pol[keep], None, n_fitted)
    mean = np.bincount(pol[keep], index.score[keep], n_fitted) / np.maximum(cnt, 1)
    lv = offset_of(mean, "logit")
    if intercepts is not None:
        lv = lv + np.asarray(intercepts, np.float64)
    lv = lv[cnt > 0]
    return max(float(np.var(lv, ddof=1)) if len(lv) > 1 else 1.0, 1e-2)


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


def _map_glm(Z, y, off, w0, b0, P, b_var, link, max_iter=30):
    """MAP weights of one policy under the Gaussian prior of :func:`population_prior` (dense Newton)."""
    d = Z.shape[1]
    X = np.column_stack([Z, np.ones(len(Z))])
    c = np.r_[w0, b0]
    Pf = np.zeros((d + 1, d + 1))
    Pf[:d, :d] = P
    Pf[d, d] = 1.0 / b_var

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
    d = Z.shape[1]
    Pn = (1.0 - t) * P + t * lam * np.eye(d)
    b_var = level_var / (1.0 - t) if t < 1.0 else 1e12
    off = (1.0 - t) * base + t * own
    return _map_glm(Z, y, off, t * np.asarray(w0), t * float(b0), Pn, b_var, "logit", max_iter=max_iter)


def pool_base(head, index, emb, step, prompt_row, exclude):
    """The pool's logit for an unseen policy on these prompts, from ``head`` (a fitted logistic head)."""
    lin, S, C = item_table(head.decision, index, head.n_fitted_, emb, step, prompt_row, exclude)
    return base_logit(head._mix(index), lin, S, C)


def solve_on_items(head, index, code, step_cut, population, lam, n_fit):
    """``(w, b, t)``: how added policy ``code`` differs from the pool's base, from its rows (zeros without rows).

    ``t`` (its rows over a fitted policy's, at most 1) is how far it has moved to the fitted
    policies' treatment (:func:`solve_deviation`); the head's ``decision`` applies the same ``t``.
    """
    from ..episodes import row_queries
    from .prior import policy_prior

    d = head.coef_.shape[1]
    rows = np.flatnonzero((index.policy == code) & (index.step <= step_cut))
    if len(rows) == 0:
        return np.zeros(d), 0.0, 0.0
    # each row's prompt seen cold (its own rows hidden), as the new prompts it generalises to are
    pair, inv = np.unique(np.column_stack([index.prompt_row[rows], index.step[rows]]), axis=0, return_inverse=True)
    inv = inv.ravel()
    pr = pair[:, 0].astype(np.int64)
    base = pool_base(head, index, index.emb[pr], pair[:, 1].astype(np.int64), pr, "any_step")[inv]
    t = min(1.0, len(rows) / n_fit) if n_fit > 0 else 1.0
    lv = level_variance(index, head.n_fitted_, head.intercept_)
    Z = head.design_.transform(index.emb[pr])[inv]
    prior = policy_prior(index, row_queries(index, rows))  # what decision() adds for this policy's queries
    own = offset_of(np.nan_to_num(prior, nan=float(index.score[rows].mean())), "logit")
    w0, b0, prec, _ = population
    w, b = solve_deviation(Z, index.score[rows], base, own, w0, b0, prec, lv, lam, t)
    return w, b, t
