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
regression of the deviation on the embedding (:func:`~v0lite.heads._deviation.population_prior`'s
covariance, centred at zero) and a level shift whose prior variance is the fitted policies' spread
of levels (:func:`~v0lite.heads._deviation.solve_deviation`, :func:`solve_on_items`).

A policy fitted from far fewer rows than the others (:func:`thin_policies`) is read the same way
and is not part of the pool: a refit on the pool plus a few outcomes of a new model then predicts
it as ``add_history`` would, where its own per-policy fit on those rows ranked its prompts far
worse (benchmarks/onboarding.py, "v0lite refit").
"""

from __future__ import annotations

import numpy as np

from ._deviation import OwnRows, _deviation_prior, _sigmoid, offset_of, solve_deviation

__all__ = [
    "K_POOL",
    "THIN_SHARE",
    "thin_policies",
    "thin_mask",
    "pool_head",
    "item_table",
    "base_logit",
    "fit_mix",
    "level_variance",
    "pool_base",
    "solve_on_items",
    "fitted_like",
    "like_key",
    "NO_ROWS",
    "eligible_cut",
]

K_POOL = 32  # neighbours per fitted policy (the difficulty prior's k in benchmarks/onboarding.py)
MIN_POLICIES = 3  # leave-one-policy-out needs two others to average over
MAX_MIX_PROMPTS = 3000  # (prompt, step) pairs the mix is fitted on: three slopes need few
_CHUNK_CELLS = 65_536  # (prompt, fitted policy) pairs per item-table block: memory ~ cells x dim floats
# a policy fitted with fewer rows than this share of the median fitted policy's is read as one added
# later: its own per-policy fit on a few rows ranked its prompts far below the pool's base with the
# same rows added (benchmarks/onboarding.py, "v0lite refit" at n = 30)
THIN_SHARE = 0.25
NO_ROWS = np.iinfo(np.int64).min  # the eligible cut of a query before its policy's first step


def eligible_cut(index, code, step):
    """The largest step of policy ``code``'s rows at or before each query step (:data:`NO_ROWS` where none).

    A query at step t reads the rows with step <= t, so every in-context solve at t equals the
    solve at this cut: caches key on it (keyed by t, queries at many steps past a policy's last
    row solved and stored the same weights once per step). ``code`` outside the index: none.
    """
    step = np.asarray(step, np.int64)
    if not 0 <= code < len(index.policies):
        return np.full(step.shape, NO_ROWS, np.int64)
    u = index.block(int(code)).ustep  # the policy's distinct steps, sorted
    j = np.searchsorted(u, step, side="right") - 1
    return np.where(j >= 0, u[np.maximum(j, 0)] if len(u) else 0, NO_ROWS).astype(np.int64)


def thin_policies(counts, min_policies=None):
    """Which fitted policies are *thin*: fewer rows than :data:`THIN_SHARE` of the median policy's.

    A thin policy is predicted as a policy added later (the pool's base and its deviation from it,
    :func:`solve_on_items`) and is left out of the pool that base is made of. None are thin unless
    at least ``min_policies`` (:data:`MIN_POLICIES`) others remain.
    """
    counts = np.asarray(counts, np.float64)
    thin = counts < THIN_SHARE * float(np.median(counts)) if len(counts) else np.zeros(0, bool)
    if (~thin).sum() < (MIN_POLICIES if min_policies is None else min_policies):
        return np.zeros(len(counts), bool)
    return thin


def pool_head(head):
    """The logistic-type head that reads the pool (``head`` itself, or the one ``auto`` keeps for it), or None."""
    if hasattr(head, "_population") and hasattr(head, "design_"):
        return head
    heads = getattr(head, "heads_", None) or {}
    member = heads.get(getattr(head, "pool_member_", None) or "logistic")
    return member if member is not None and hasattr(member, "_population") else None


def thin_mask(codes, n_fitted):
    """The thin policies' mask from their codes as saved (a list of ints in ``[0, n_fitted)``), checked."""
    if not isinstance(codes, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and 0 <= c < n_fitted for c in codes
    ):
        raise ValueError(f"'thin' must list policy codes in [0, {n_fitted}), got {str(codes)[:60]}")
    mask = np.zeros(n_fitted, bool)
    mask[np.asarray(codes, np.int64)] = True
    return mask


def item_table(decision, index, codes, emb, step, prompt_row, exclude, k=K_POOL):
    """Each prompt's view from every pool policy: ``(lin, S, C)``, each of shape (m, len(codes)).

    ``codes`` are the pool's policy codes (the fitted policies that are not thin). ``lin`` is the
    head's linear predictor of pool policy j on the prompt (``decision``, the head's own method,
    with ``exclude`` hiding the query's own rows), ``S`` and ``C`` the sum of outcomes and the count
    of policy j's ``k`` nearest eligible history rows. A pool policy with no row at or before the
    query's step says nothing there: ``lin`` is NaN (its fitted weights read its later rows), ``S``
    and ``C`` are 0, and :func:`_features` leaves it out.
    """
    from ..index import Queries

    codes = np.asarray(codes, np.int32)
    n_fitted = len(codes)
    m = len(step)
    lin = np.zeros((m, n_fitted))
    S = np.zeros((m, n_fitted))
    C = np.zeros((m, n_fitted))
    chunk = max(1, _CHUNK_CELLS // max(n_fitted, 1))
    for s in range(0, m, chunk):
        e, st, pr = emb[s : s + chunk], step[s : s + chunk], prompt_row[s : s + chunk]
        mm = len(st)
        q = Queries(
            np.repeat(codes, mm),
            np.tile(st, n_fitted),
            np.tile(e, (n_fitted, 1)),
            np.tile(pr, n_fitted),
        )
        seen = np.concatenate([eligible_cut(index, c, st) != NO_ROWS for c in codes])  # q's order: policy-major
        if seen.all():
            lin[s : s + mm] = decision(index, q, exclude=exclude).reshape(n_fitted, mm).T
        else:
            part = np.full(len(seen), np.nan)
            part[seen] = decision(index, q.subset(np.flatnonzero(seen)), exclude=exclude)
            lin[s : s + mm] = part.reshape(n_fitted, mm).T
        rows, _ = index.search_queries(q, k, exclude, search="numpy")
        ok = rows >= 0
        S[s : s + mm] = np.where(ok, index.score[np.maximum(rows, 0)], 0.0).sum(1).reshape(n_fitted, mm).T
        C[s : s + mm] = ok.sum(1).reshape(n_fitted, mm).T
    return lin, S, C


def _features(lin, S, C, drop=None):
    """``(consensus, neighbour logit)`` over the fitted policies, without column ``drop``.

    The consensus averages the policies with a ``lin`` (NaN: no eligible row, :func:`item_table`);
    0 where none has one.
    """
    has = ~np.isnan(lin)
    n = has.sum(1)
    lin = np.where(has, lin, 0.0)
    if drop is None:
        return lin.sum(1) / np.maximum(n, 1), np.log((S.sum(1) + 1.0) / (C.sum(1) - S.sum(1) + 1.0))
    c = (lin.sum(1) - lin[:, drop]) / np.maximum(n - has[:, drop], 1)
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


def fit_mix(decision, index, codes, random_state=0):
    """The mix ``[intercept, consensus slope, neighbour slope]``, fitted leave one policy out; None if it cannot be.

    On up to :data:`MAX_MIX_PROMPTS` (prompt, step) pairs of the fitted history, every prompt's
    own rows hidden (``exclude="any_step"``: a cold prompt), each fitted policy's mean outcome there
    is regressed (logistic, weighted by its rows, one free level per policy) on the consensus and
    the neighbour logit of the *other* fitted policies; the intercept returned is the pooled level
    at those slopes. ``codes``: the pool's policies. None with fewer than :data:`MIN_POLICIES`.
    """
    codes = np.asarray(codes, np.int64)
    n_fitted = len(codes)
    col = _columns(codes, index)
    rows = np.flatnonzero(col[index.policy] >= 0)
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
    np.add.at(cnt, (sl, col[index.policy[r]]), 1.0)
    np.add.at(tot, (sl, col[index.policy[r]]), index.score[r])
    pr = (upair[pick] // len(ustep)).astype(np.int64)
    st = ustep[upair[pick] % len(ustep)]
    lin, S, C = item_table(decision, index, codes, index.emb[pr], st, pr, "any_step")
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


def _columns(codes, index):
    """Column of each policy code in the pool's tables (-1: not in the pool)."""
    col = np.full(max(len(index.policies), int(codes.max()) + 1 if len(codes) else 0), -1, np.int64)
    col[codes] = np.arange(len(codes))
    return col


def level_variance(index, codes, intercepts=None):
    """Variance over the pool's policies of their overall logit level (mean outcome, plus ``intercepts``), >= 0.01."""
    codes = np.asarray(codes, np.int64)
    n_fitted = len(codes)
    col = _columns(codes, index)[index.policy]
    keep = col >= 0
    cnt = np.bincount(col[keep], None, n_fitted)
    mean = np.bincount(col[keep], index.score[keep], n_fitted) / np.maximum(cnt, 1)
    lv = offset_of(mean, "logit")
    if intercepts is not None:
        lv = lv + np.asarray(intercepts, np.float64)
    lv = lv[cnt > 0]
    return max(float(np.var(lv, ddof=1)) if len(lv) > 1 else 1.0, 1e-2)


def pool_base(head, index, emb, step, prompt_row, exclude):
    """The pool's logit for an unseen policy on these prompts, from ``head`` (a fitted logistic head)."""
    lin, S, C = item_table(head.decision, index, head.pool_codes(), emb, step, prompt_row, exclude)
    return base_logit(head._mix(index), lin, S, C)


def solve_on_items(head, index, code, step_cut, population, lam, n_fit):
    """``(w, b, t, own)``: how added policy ``code`` differs from the pool's base, from its rows (zeros without rows).

    ``t`` (its rows over a fitted policy's, at most 1) is how far it has moved to the fitted
    policies' treatment (:func:`solve_deviation`); the head's ``decision`` applies the same ``t``,
    and hides a query's own rows with ``own`` (:class:`OwnRows`; None without rows). A *thin*
    fitted policy (:func:`thin_policies`) is solved the same way.
    """
    from ..episodes import row_queries
    from .prior import policy_prior

    d = head.coef_.shape[1]
    rows = np.flatnonzero((index.policy == code) & (index.step <= step_cut))
    if len(rows) == 0:
        return np.zeros(d), 0.0, 0.0, None
    # each row's prompt seen cold (its own rows hidden), as the new prompts it generalises to are
    pair, inv = np.unique(np.column_stack([index.prompt_row[rows], index.step[rows]]), axis=0, return_inverse=True)
    inv = inv.ravel()
    pr = pair[:, 0].astype(np.int64)
    base = pool_base(head, index, index.emb[pr], pair[:, 1].astype(np.int64), pr, "any_step")[inv]
    t = min(1.0, len(rows) / n_fit) if n_fit > 0 else 1.0
    codes = head.pool_codes()
    lv = level_variance(index, codes, head.intercept_[codes])
    Z = head.design_.transform(index.emb[pr])[inv]
    prior = policy_prior(index, row_queries(index, rows))  # what decision() adds for this policy's queries
    own = offset_of(np.nan_to_num(prior, nan=float(index.score[rows].mean())), "logit")
    w0, b0, prec, _ = population
    y = index.score[rows]
    w, b = solve_deviation(Z, y, base, own, w0, b0, prec, lv, lam, t)
    p = _sigmoid(Z @ w + b + (1.0 - t) * base + t * own)
    Pn, b_var = _deviation_prior(prec, lv, lam, t)
    return w, b, t, OwnRows(Z, y, p, index.prompt_row[rows], index.step[rows], Pn, b_var)


def fitted_like(head, index, code, step_cut, n_fit, items=True):
    """The head whose in-context solve reads added policy ``code`` when it has a fitted policy's rows, or None.

    ``auto`` keeps a second logistic head for added policies when its served one chose its penalty
    for routing (``fitted_like_`` on the kept head, :func:`~v0lite.heads._auto_members.keep_pool_member`):
    the kept head's loss-chosen penalties rank a new model's prompts better from few rows, but a
    policy with ``n_fit`` rows or more is compared with the fitted ones by the router, so its
    column is then the served head's (read by the kept head, it routed routerdc's held-out models
    at 0.642 mean task accuracy instead of 0.693 with every row; benchmarks/onboarding.py).
    ``items``: whether ``head`` reads the policy on the pool's base; then ``like`` must too (the two
    solves' outputs differ in form), else either form serves (at a fitted policy's rows the base is gone).
    """
    like = getattr(head, "fitted_like_", None)
    if like is None or (items and like._mix(index) is None):
        return None
    return like if np.count_nonzero((index.policy == code) & (index.step <= step_cut)) >= n_fit else None


def like_key(head):
    """What of :func:`fitted_like`'s head an in-context solve cached by ``head`` depends on (None without one)."""
    like = getattr(head, "fitted_like_", None)
    return None if like is None else (id(like), bool(like.params.get("pool_prior", True)))
