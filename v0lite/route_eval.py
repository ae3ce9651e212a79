"""Offline evaluation of routers: cost-accuracy frontiers, AIQ, APGR/CPT, baselines, plot.

Definitions used here (``acc`` = mean true outcome of the chosen models on the test
prompts, ``cost`` = mean true cost per prompt of the chosen models):

* **Non-decreasing convex hull (NDCH)** of a set of (cost, acc) points: the upper convex
  hull, from the cheapest point up to the most accurate one (RouterBench, Hu et al. 2024,
  arXiv:2403.12031, Sec. 3). Every point on a hull segment is reachable by randomly mixing
  the two routers at its ends, so the hull is what a router family can achieve.
* **AIQ** (RouterBench's Average Improvement in Quality): the NDCH is extended flat from its
  last point to ``c_max`` (the largest mean cost of any single model in the pool; a part of
  the hull beyond ``c_max`` is cut there by linear interpolation), and

  ``AIQ = (1 / c_max) * integral_{c_0}^{c_max} hull(c) dc``

  with ``c_0`` the cheapest hull point, the integral taken by the trapezoid rule over the
  hull vertices (exact for the piecewise-linear hull). This is the normalisation of the
  RouterBench reference implementation (area from the curve's cheapest point, divided by
  the largest cost); a curve starting at or after ``c_max`` scores 0.
* **cost_at_accuracy**: the lowest cost at which the NDCH reaches a target accuracy
  (linear interpolation inside the hull segment, i.e. a random mix of two routing points);
  ``None`` if the hull never reaches it.
* **Oracle**: per prompt, the model with the highest true outcome, the cheapest among ties
  (for 0/1 outcomes: the cheapest correct model, or the cheapest model if none is correct).
* **Tuned kNN router**: the kNN router whose ``k`` is chosen on the train log only, by
  prompt-grouped cross-validation (:func:`tune_knn_router`): each candidate's out-of-fold
  predictions of every train prompt are swept like a router's, and the ``k`` with the best
  out-of-fold AIQ is kept (with equal costs, the best accuracy of the most likely model).
* **APGR / CPT** (RouteLLM, Ong et al. 2024, arXiv:2406.18665), for a two-model pool only:
  ``PGR = (acc - acc_weak) / (acc_strong - acc_weak)`` against ``x`` = fraction of prompts
  sent to the strong model (strong = the more accurate single model, the dearer on ties).
  The curve is the routing points sorted by ``x`` (the best accuracy where ``x`` repeats),
  with the always-weak ``(0, acc_weak)`` and always-strong ``(1, acc_strong)`` points added
  when absent; ``APGR = integral_0^1 PGR dx`` (trapezoid), ``CPT(q)`` = the smallest ``x``
  where the linearly interpolated curve reaches ``PGR >= q`` (a fraction in [0, 1];
  multiply by 100 for RouteLLM's percent), ``None`` if never.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import polars as pl

from ._io import atomic_path
from .exceptions import DataError, V0liteError, V0liteWarning
from .log import read_log, split_xy
from .route import Router, UtilityStrategy, _knn_mean, _knn_prefix_means, _normalise, get_strategy

__all__ = [
    "non_decreasing_hull",
    "aiq",
    "cost_at_accuracy",
    "best_single",
    "oracle",
    "apgr",
    "cpt",
    "knn_router_baseline",
    "tune_knn_router",
    "group_router_baseline",
    "route_eval",
    "plot_frontiers",
]


# --------------------------------------------------------------------------- curves and metrics


def _points(costs, accs) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(costs, dtype=np.float64).reshape(-1)
    a = np.asarray(accs, dtype=np.float64).reshape(-1)
    if c.shape != a.shape or c.size == 0:
        raise V0liteError(f"costs and accs must be non-empty and of equal length, got {c.size} and {a.size}.")
    keep = np.isfinite(c) & np.isfinite(a)
    if not keep.any():
        raise V0liteError("no finite (cost, accuracy) point. Fix: check the curve.")
    return c[keep], a[keep]


def non_decreasing_hull(costs, accs) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the non-decreasing upper convex hull of (cost, accuracy) points.

    Returns
    -------
    hull_costs, hull_accs : ndarray
        Sorted by cost, accuracy strictly increasing, from the cheapest point (its best
        accuracy) to the first point of maximal accuracy.

    Examples
    --------
    >>> non_decreasing_hull([1, 2, 3, 4], [0.5, 0.6, 0.9, 0.8])
    (array([1., 3.]), array([0.5, 0.9]))
    """
    c, a = _points(costs, accs)
    order = np.lexsort((-a, c))  # by cost, best accuracy first within a cost
    c, a = c[order], a[order]
    first = np.ones(c.size, dtype=bool)
    first[1:] = c[1:] != c[:-1]
    c, a = c[first], a[first]
    hull: list[int] = []
    for i in range(c.size):  # Andrew's monotone chain, upper hull (left to right)
        while len(hull) >= 2:
            o, p = hull[-2], hull[-1]
            cross = (c[p] - c[o]) * (a[i] - a[o]) - (a[p] - a[o]) * (c[i] - c[o])
            if cross >= 0:  # p is on or below the chord o -> i
                hull.pop()
            else:
                break
        hull.append(i)
    hc, ha = c[hull], a[hull]
    top = int(np.argmax(ha))  # concave: increasing up to here, non-increasing after
    return hc[: top + 1], ha[: top + 1]


def _hull_to(costs, accs, c_max: float) -> tuple[np.ndarray, np.ndarray]:
    """The NDCH cut at ``c_max`` or extended flat to it."""
    hc, ha = non_decreasing_hull(costs, accs)
    if hc[0] >= c_max:
        return hc[:1], ha[:1]
    if hc[-1] > c_max:
        keep = hc < c_max
        a_cut = float(np.interp(c_max, hc, ha))
        return np.append(hc[keep], c_max), np.append(ha[keep], a_cut)
    if hc[-1] < c_max:
        return np.append(hc, c_max), np.append(ha, ha[-1])
    return hc, ha


def aiq(costs, accs, c_max: float) -> float:
    """RouterBench's Average Improvement in Quality of a router's (cost, accuracy) points.

    ``(1 / c_max) * area under the non-decreasing convex hull, extended flat to c_max,
    from the hull's cheapest point to c_max`` (see the module docstring).

    Parameters
    ----------
    costs, accs : array-like
        The router's points (one per knob value).
    c_max : float
        Upper end of the cost axis: the largest mean cost of a single model in the pool.

    Examples
    --------
    >>> round(aiq([1, 2, 3, 4], [0.5, 0.6, 0.9, 0.8], c_max=5.0), 6)  # (1.4 + 1.8) / 5
    0.64
    """
    c_max = float(c_max)
    if not math.isfinite(c_max) or c_max <= 0:
        raise V0liteError(f"c_max must be a finite cost > 0, got {c_max}.")
    hc, ha = _hull_to(costs, accs, c_max)
    if hc[0] >= c_max:
        return 0.0
    area = float(np.sum(np.diff(hc) * (ha[1:] + ha[:-1]) * 0.5))
    return area / c_max


def _curve_arrays(curve) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(curve, Mapping):
        return _points(curve["cost"], curve["acc"])
    costs, accs = curve
    return _points(costs, accs)


def cost_at_accuracy(curve, target: float) -> float | None:
    """Lowest mean cost at which a curve's non-decreasing convex hull reaches ``target`` accuracy.

    Parameters
    ----------
    curve : (costs, accs) pair or mapping with ``cost`` and ``acc``
    target : float

    Returns
    -------
    float or None
        Interpolated linearly inside the hull segment that crosses ``target`` (a random mix
        of its two end routers); the cheapest point's cost if it already reaches ``target``;
        None if the hull never does.

    Examples
    --------
    >>> round(cost_at_accuracy(([1, 3], [0.5, 0.9]), 0.7), 6)
    2.0
    >>> cost_at_accuracy(([1, 3], [0.5, 0.9]), 0.95) is None
    True
    """
    hc, ha = non_decreasing_hull(*_curve_arrays(curve))
    target = float(target)
    if ha[-1] < target - 1e-12:
        return None
    j = int(np.argmax(ha >= target - 1e-12))
    if j == 0:
        return float(hc[0])
    c0, c1, a0, a1 = hc[j - 1], hc[j], ha[j - 1], ha[j]
    return float(c0 + (c1 - c0) * (target - a0) / (a1 - a0))


def best_single(outcomes, costs, policies: Sequence[str]) -> dict[str, Any]:
    """The most accurate single model (the cheaper on ties) and every model's point.

    Parameters
    ----------
    outcomes, costs : ndarray of shape (n_prompts, n_policies)
    policies : list of str

    Returns
    -------
    dict
        ``model``, ``acc``, ``cost`` of the best one; ``accs``, ``costs`` of all.

    Examples
    --------
    >>> best_single(np.array([[1, 0], [1, 1]]), np.array([[2.0, 1.0], [2.0, 1.0]]), ["a", "b"])["model"]
    'a'
    """
    Y = np.asarray(outcomes, dtype=np.float64)
    C = np.asarray(costs, dtype=np.float64)
    accs, cst = Y.mean(axis=0), C.mean(axis=0)
    tied = accs >= accs.max() - 1e-12
    j = int(np.where(tied, cst, np.inf).argmin())
    return {"model": policies[j], "acc": float(accs[j]), "cost": float(cst[j]),
            "accs": accs.tolist(), "costs": cst.tolist()}


def oracle(outcomes, costs) -> tuple[np.ndarray, float, float]:
    """Per prompt, the best true outcome's model (the cheapest among ties).

    Returns
    -------
    idx : ndarray of int, accuracy : float, mean cost : float

    Examples
    --------
    >>> oracle(np.array([[1, 1], [0, 0]]), np.array([[2.0, 1.0], [2.0, 1.0]]))[1:]
    (0.5, 1.0)
    """
    Y = np.asarray(outcomes, dtype=np.float64)
    C = np.asarray(costs, dtype=np.float64)
    best = Y.max(axis=1, keepdims=True)
    idx = np.where(Y >= best - 1e-12, C, np.inf).argmin(axis=1)
    rows = np.arange(Y.shape[0])
    return idx, float(Y[rows, idx].mean()), float(C[rows, idx].mean())


def _pgr_curve(strong_frac, accs, weak_acc: float, strong_acc: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(strong_frac, dtype=np.float64).reshape(-1)
    a = np.asarray(accs, dtype=np.float64).reshape(-1)
    if x.shape != a.shape:
        raise V0liteError("strong_frac and accs must have equal length.")
    x = np.concatenate([x, [0.0, 1.0]])
    a = np.concatenate([a, [weak_acc, strong_acc]])
    order = np.lexsort((-a, x))
    x, a = x[order], a[order]
    first = np.ones(x.size, dtype=bool)
    first[1:] = x[1:] != x[:-1]
    x, a = x[first], a[first]  # the best accuracy at each x (the added end points only if better)
    return x, (a - weak_acc) / (strong_acc - weak_acc)


def apgr(strong_frac, accs, weak_acc: float, strong_acc: float) -> float | None:
    """RouteLLM's Average Performance Gap Recovered (two-model pool).

    Parameters
    ----------
    strong_frac : array-like
        Fraction of prompts routed to the strong model at each routing point.
    accs : array-like
        Accuracy at each routing point.
    weak_acc, strong_acc : float
        Accuracy of always-weak and always-strong.

    Returns
    -------
    float or None
        ``integral_0^1 PGR(x) dx``; None when the two models are equally accurate.

    Examples
    --------
    >>> apgr([0.0, 0.5, 1.0], [0.5, 0.8, 0.9], 0.5, 0.9)
    0.625
    """
    if not strong_acc - weak_acc > 1e-12:
        return None
    x, pgr = _pgr_curve(strong_frac, accs, weak_acc, strong_acc)
    return float(np.sum(np.diff(x) * (pgr[1:] + pgr[:-1]) * 0.5))


def cpt(strong_frac, accs, weak_acc: float, strong_acc: float, pgr: float) -> float | None:
    """RouteLLM's Call-Performance Threshold: smallest strong-call fraction reaching ``pgr``.

    Examples
    --------
    >>> round(cpt([0.0, 0.5, 1.0], [0.5, 0.8, 0.9], 0.5, 0.9, 0.5), 6)
    0.333333
    """
    if not strong_acc - weak_acc > 1e-12:
        return None
    x, g = _pgr_curve(strong_frac, accs, weak_acc, strong_acc)
    target = float(pgr) - 1e-12
    if g[0] >= target:
        return float(x[0])
    cross = np.flatnonzero((g[:-1] < target) & (g[1:] >= target))
    if cross.size == 0:
        return None
    j = int(cross[0])
    return float(x[j] + (x[j + 1] - x[j]) * (pgr - g[j]) / (g[j + 1] - g[j]))


def knn_router_baseline(train_emb, train_outcomes, train_costs, test_emb, k: int = 32, *,
                        cost: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """RouterBench's kNN router: per model, the mean outcome of the ``k`` nearest train prompts.

    Parameters
    ----------
    train_emb : ndarray (n_train, d)
    train_outcomes : ndarray (n_train, n_policies)
    train_costs : ndarray (n_train, n_policies) or (n_policies,)
    test_emb : ndarray (n_test, d)
    k : int, default 32
    cost : {"mean", "knn"}, default "mean"
        Predicted cost: each model's mean train cost, or the same kNN average on costs.

    Returns
    -------
    P, C : ndarray (n_test, n_policies)
        Sweep them with :class:`v0lite.route.UtilityStrategy` as for any router.

    Examples
    --------
    >>> E = np.eye(3, dtype=np.float32)
    >>> P, C = knn_router_baseline(E, np.array([[1, 0], [0, 1], [1, 1]]), np.array([1.0, 2.0]), E[:1], k=1)
    >>> P.tolist(), C.tolist()
    ([[1.0, 0.0]], [[1.0, 2.0]])
    """
    tr, te = _normalise(train_emb), _normalise(test_emb)
    Y = np.asarray(train_outcomes, dtype=np.float64)
    Ct = np.asarray(train_costs, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[0] != tr.shape[0]:
        raise V0liteError(f"train_outcomes must be (n_train={tr.shape[0]}, n_policies), got {Y.shape}.")
    if cost not in ("mean", "knn"):
        raise V0liteError(f"unknown baseline cost {cost!r}. Fix: use one of ['knn', 'mean'].")
    if Ct.ndim == 1:
        if cost == "knn":
            raise V0liteError("cost='knn' needs per-prompt train_costs of shape (n_train, n_policies).")
        Ct = np.broadcast_to(Ct, Y.shape)
    if cost == "knn":
        both = _knn_mean(te, tr, np.concatenate([Y, Ct], axis=1), k)
        return both[:, : Y.shape[1]], both[:, Y.shape[1]:]
    P = _knn_mean(te, tr, Y, k)
    return P, np.tile(Ct.mean(axis=0), (te.shape[0], 1))


TUNED_KS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)


def tune_knn_router(train_emb, train_outcomes, train_costs, ks: Sequence[int] = TUNED_KS, *, cv: int = 5,
                    random_state: int = 0, n_knobs: int = 64) -> tuple[int, dict[str, Any]]:
    """Choose the kNN router's ``k`` by prompt-grouped cross-validation on train prompts only.

    The train prompts (rows; one row per prompt, so folds are prompt-grouped) are split into
    ``cv`` seeded folds. Each fold is predicted by the kNN router fitted on the other folds
    (per model, the mean outcome of the ``k`` nearest prompts; predicted cost: each model's
    mean cost on those folds, as in :func:`knn_router_baseline` with ``cost="mean"``). The
    pooled out-of-fold predictions are swept with the utility strategy against the true
    outcomes and costs, and scored by AIQ (``c_max`` = the largest mean train cost of a
    model). When every model costs the same, AIQ is undefined and the score is the accuracy
    of the most likely model per prompt. The best score wins; ties go to the smaller ``k``.

    Parameters
    ----------
    train_emb : ndarray (n_train, d)
    train_outcomes : ndarray (n_train, n_policies)
    train_costs : ndarray (n_train, n_policies) or (n_policies,)
    ks : sequence of int, default (8, 16, 32, ..., 2048)
        Candidates (powers of two, so the choice is rarely at the edge even for ~20k prompts); each
        is capped at the size of the fitted folds (duplicates dropped).
    cv : int, default 5
    random_state : int, default 0
        Seeds the folds.
    n_knobs : int, default 64
        Points of each candidate's sweep.

    Returns
    -------
    k : int
    scores : dict
        ``{"k": [...], "score": [...], "criterion": "aiq" | "acc", "cv": cv}``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> E = rng.normal(size=(60, 4)); Y = (rng.uniform(size=(60, 2)) < 0.5).astype(float)
    >>> k, scores = tune_knn_router(E, Y, np.array([1.0, 2.0]), ks=(4, 8), cv=3)
    >>> k in (4, 8), scores["criterion"]
    (True, 'aiq')
    """
    tr = _normalise(train_emb)
    Y = np.asarray(train_outcomes, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[0] != tr.shape[0]:
        raise V0liteError(f"train_outcomes must be (n_train={tr.shape[0]}, n_policies), got {Y.shape}.")
    C = np.asarray(train_costs, dtype=np.float64)
    C = np.array(np.broadcast_to(C, Y.shape)) if C.ndim == 1 else C
    if C.shape != Y.shape:
        raise V0liteError(f"train_costs must be (n_policies,) or {Y.shape}, got {C.shape}.")
    n = Y.shape[0]
    folds = int(cv)
    if isinstance(cv, bool) or folds != cv or folds < 2 or folds > n:
        raise V0liteError(f"cv must be an int in [2, n_train={n}], got {cv!r}.")
    fold = np.random.default_rng(random_state).permutation(n) % folds
    n_fit = n - int(np.bincount(fold).max())  # the smallest fitted part
    cands = sorted({int(min(int(k), n_fit)) for k in ks if int(k) >= 1})
    if not cands:
        raise V0liteError(f"ks must hold at least one int >= 1, got {list(ks)!r}.")
    P = {k: np.empty_like(Y) for k in cands}
    Cpred = np.empty_like(C)
    for f in range(folds):
        fit, out = fold != f, fold == f
        means = _knn_prefix_means(tr[out], tr[fit], Y[fit], cands)
        for k in cands:
            P[k][out] = means[min(k, int(fit.sum()))]
        Cpred[out] = C[fit].mean(axis=0)
    mean_costs = C.mean(axis=0)
    c_max = float(mean_costs.max())
    degenerate = float(np.ptp(mean_costs)) <= 1e-12 * max(1.0, abs(c_max)) or c_max <= 0
    strat, rows, scores = UtilityStrategy(), np.arange(n), []
    for k in cands:
        if degenerate:
            scores.append(float(Y[rows, strat.choose(P[k], Cpred, 0.0)].mean()))
        else:
            curve = _sweep(strat, P[k], Cpred, Y, C, n_knobs)
            scores.append(aiq(curve["cost"], curve["acc"], c_max))
    best = max(scores)
    k = cands[next(i for i, v in enumerate(scores) if v >= best - 1e-12)]
    return k, {"k": cands, "score": scores, "criterion": "acc" if degenerate else "aiq", "cv": folds}


def group_router_baseline(train_groups, train_outcomes, train_costs, test_groups) -> tuple[np.ndarray, np.ndarray]:
    """A router that knows only each prompt's group (e.g. its task): per model, the group's mean.

    It is the reference for how much of a router's frontier comes from recognising the task
    alone. A test group absent from train gets each model's mean over all train prompts.

    Parameters
    ----------
    train_groups : array-like of str (n_train,)
    train_outcomes : ndarray (n_train, n_policies)
    train_costs : ndarray (n_train, n_policies) or (n_policies,)
    test_groups : array-like of str (n_test,)

    Returns
    -------
    P, C : ndarray (n_test, n_policies)
        The group's mean outcome and mean cost of every model.

    Examples
    --------
    >>> Y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> P, C = group_router_baseline(["a", "b", "b"], Y, np.array([1.0, 2.0]), ["b", "z"])
    >>> P.tolist()
    [[0.5, 1.0], [0.6666666666666666, 0.6666666666666666]]
    """
    Y = np.asarray(train_outcomes, dtype=np.float64)
    if Y.ndim != 2:
        raise V0liteError(f"train_outcomes must be 2-D (n_train, n_policies), got shape {Y.shape}. "
                          "Fix: one row per train prompt, one column per policy.")
    C = np.asarray(train_costs, dtype=np.float64)
    C = np.array(np.broadcast_to(C, Y.shape)) if C.ndim == 1 else C
    g_tr = np.asarray(train_groups, dtype=object).astype(str)
    g_te = np.asarray(test_groups, dtype=object).astype(str)
    if C.shape != Y.shape or g_tr.shape != (Y.shape[0],):
        raise V0liteError(f"train_groups {g_tr.shape}, train_outcomes {Y.shape} and train_costs {C.shape} "
                          "must describe the same train prompts. Fix: one group label per train row, and "
                          "costs of shape (n_policies,) or like train_outcomes.")
    P = np.tile(Y.mean(axis=0), (g_te.shape[0], 1))
    Cp = np.tile(C.mean(axis=0), (g_te.shape[0], 1))
    for g in np.unique(g_tr):
        rows, dst = g_tr == g, g_te == g
        if dst.any():
            P[dst], Cp[dst] = Y[rows].mean(axis=0), C[rows].mean(axis=0)
    return P, Cp


def _within_group_auc(Y: np.ndarray, P: np.ndarray, groups: np.ndarray) -> float | None:
    """Mean over models of the size-weighted AUC of ``P`` inside each group (NaN groups skipped)."""
    from .metrics import within_policy_auc

    vals = []
    for j in range(Y.shape[1]):
        v = within_policy_auc(Y[:, j], np.clip(P[:, j], 0.0, 1.0), groups)
        if math.isfinite(v):
            vals.append(v)
    return float(np.mean(vals)) if vals else None


# --------------------------------------------------------------------------- end-to-end evaluation


def _pivot(frame: pl.DataFrame, policies: list[str], prices: dict[str, float] | None):
    """Complete-able prompt x policy tables: prompts (first-seen order), outcomes, costs (NaN = missing)."""
    aggs = [pl.col("score").mean().alias("score")]
    if prices is None:
        aggs.append(pl.col("cost").mean().alias("cost"))
    agg = frame.filter(pl.col("policy").is_in(policies)).group_by(["prompt", "policy"]).agg(aggs)
    prompts = frame["prompt"].unique(maintain_order=True)
    pidx = pl.DataFrame({"prompt": prompts, "_r": np.arange(prompts.len(), dtype=np.int64)})
    cidx = pl.DataFrame({"policy": policies, "_c": np.arange(len(policies), dtype=np.int64)})
    agg = agg.join(pidx, on="prompt").join(cidx, on="policy")
    r, c = agg["_r"].to_numpy(), agg["_c"].to_numpy()
    Y = np.full((prompts.len(), len(policies)), np.nan)
    Y[r, c] = agg["score"].to_numpy()
    if prices is None:
        C = np.full_like(Y, np.nan)
        C[r, c] = agg["cost"].to_numpy()
    else:
        C = np.tile(np.array([prices[p] for p in policies], dtype=np.float64), (Y.shape[0], 1))
        C[np.isnan(Y)] = np.nan
    return prompts.to_list(), Y, C


def _sweep(strategy, P, Cpred, Y, Ctrue, n_knobs: int) -> dict[str, list]:
    rows = np.arange(Y.shape[0])
    knobs, cost, acc, frac = [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)  # grid ends may touch infeasible knobs
        for kv in strategy.knob_grid(P, Cpred, n_knobs):
            idx = strategy.choose(P, Cpred, kv)
            knobs.append(float(kv))
            cost.append(float(Ctrue[rows, idx].mean()))
            acc.append(float(Y[rows, idx].mean()))
            frac.append(np.bincount(idx, minlength=Y.shape[1]) / Y.shape[0])
    return {"knob": knobs, "cost": cost, "acc": acc, "share": np.asarray(frac).tolist()}


def _hull_dict(costs, accs) -> dict[str, list]:
    hc, ha = non_decreasing_hull(costs, accs)
    return {"cost": hc.tolist(), "acc": ha.tolist()}


def _json_ready(obj):
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _cost_save(cost: float | None, reference: float) -> float | None:
    """``1 - cost / reference``; None when undefined; float noise below 1e-12 reads as 0."""
    if cost is None or reference <= 0:
        return None
    save = 1.0 - cost / reference
    return 0.0 if abs(save) < 1e-12 else save


def _first_task(frame: pl.DataFrame) -> dict[str, str]:
    """Prompt -> the first non-null task the log gives it."""
    sub = frame.select("prompt", "task").drop_nulls("task").unique(subset="prompt", keep="first", maintain_order=True)
    return dict(zip(sub["prompt"].to_list(), sub["task"].cast(pl.Utf8).to_list()))


def _default_value_model(random_state: int):
    from .estimator import V0Regressor

    return V0Regressor(random_state=random_state)


def _default_embedder():
    from .embed import Embedder

    return Embedder()


def route_eval(train_log, test_log, *, value_model=None, embedder=None, k_baseline: int = 32,
               strategy: str = "utility", plot=None, random_state: int = 0, prices=None,
               cost_model: str = "knn", k_cost: int = 16, n_knobs: int = 64,
               fit_value_model: bool = True, shrink=None, cv: int = 5,
               tuned_ks: Sequence[int] | None = TUNED_KS) -> dict[str, Any]:
    """Offline routing evaluation: router frontier vs single models, oracle and a kNN router.

    Parameters
    ----------
    train_log, test_log : path or DataFrame
        Outcome logs (``policy``, ``prompt``, ``score``; ``cost`` unless ``prices``).
    value_model : object with ``fit``/``predict``, optional
        Default :class:`v0lite.estimator.V0Regressor` with its default head. Fitted on the
        train log unless ``fit_value_model=False``.
    embedder : object with ``encode(texts)``, optional
        For the kNN baseline and the ``knn`` cost model; default :class:`v0lite.embed.Embedder`.
    k_baseline : int, default 32
        Neighbours of the plain kNN router baseline (RouterBench's setting).
    strategy : str, default "utility"
        The router's strategy; its ``knob_grid`` gives the sweep. The baseline always uses
        ``utility``.
    plot : path, optional
        Write :func:`plot_frontiers` there.
    random_state : int, default 0
    prices : dict, optional
        Policy -> cost per call, used for both logs instead of their ``cost`` columns. Logs
        without ``cost`` and no ``prices``: every call costs 1 (a :class:`V0liteWarning`;
        accuracy against the best single model and the oracle are still reported, AIQ is
        None because the cost axis is degenerate).
    cost_model : str, default "knn"
        The router's cost model (``fixed`` is used with ``prices`` or unit costs).
    k_cost : int, default 16
    n_knobs : int, default 64
    fit_value_model : bool, default True
    shrink : None, float or "cv", default None
        The router's shrinkage of predicted success toward a prior from the train log
        (:class:`v0lite.route.Router`); ``"cv"`` chooses it on prompt-grouped folds of the
        train log only (``cv`` extra fits of a clone of the value model).
    cv : int, default 5
        Folds of ``shrink="cv"`` and of the tuned kNN baseline.
    tuned_ks : sequence of int or None, default (8, 16, 32, ..., 2048)
        Candidate ``k`` of the tuned kNN router baseline, chosen by :func:`tune_knn_router` on
        the train log only (``cv`` folds, seeded by ``random_state``); None skips it.

    Returns
    -------
    dict
        JSON-ready (NaN as None): ``aiq``, ``max_acc``, ``best_single_acc``,
        ``best_single_model``, ``best_single_cost``, ``cost_at_best_single_acc``, ``cost_save``,
        ``oracle_acc``, ``oracle_cost``, ``baseline_knn_aiq``, ``baseline_knn_max_acc``,
        ``baseline_knn_tuned_aiq``, ``baseline_knn_tuned_k``, ``baseline_knn_tuned_max_acc``,
        ``baseline_knn_tuned_cv`` (every candidate's cross-validation score), and when both logs
        have a ``task`` column ``baseline_task_aiq``, ``baseline_task_max_acc``,
        ``baseline_task_cost_at_best_single_acc`` (:func:`group_router_baseline`: per task, each
        model's mean train outcome), ``within_task_auc`` and ``baseline_knn_tuned_within_task_auc``
        (mean over models of the AUC of predicted success inside each task: the prompt-level
        signal beyond the task; 0.5 = none), else None,
        ``random_mix_aiq``, ``c_max``, ``n_test``, ``n_test_incomplete``, ``n_train_complete``,
        ``n_train_incomplete``, ``n_policies``, ``policies``, ``policies_dropped``,
        ``cost_source``, ``strategy``, ``shrink``, ``prior_k``, ``curves`` and, for two policies, ``apgr``, ``cpt_50``,
        ``cpt_80``, ``baseline_knn_apgr``, ``baseline_knn_tuned_apgr``, ``weak_model``, ``strong_model``.
    """
    train = read_log(train_log)
    test = read_log(test_log)
    strat = get_strategy(strategy)
    train_pol = set(train["policy"].unique().to_list())
    test_pol = sorted(test["policy"].unique().to_list())
    policies = [p for p in test_pol if p in train_pol]
    dropped = [p for p in test_pol if p not in train_pol]
    if dropped:
        warnings.warn(f"test policies absent from the train log are left out of the pool: {dropped}",
                      V0liteWarning, stacklevel=2)
    if not policies:
        raise DataError("no policy is in both the train and the test log. Fix: evaluate on the same pool.")

    if prices is not None:
        prices = {str(k): float(v) for k, v in prices.items()}
        missing = [p for p in policies if p not in prices]
        if missing:
            raise DataError(f"prices lacks policies {missing}. Fix: give a price for every policy of the pool.")
        cost_source = "prices"
    elif "cost" in train.columns and "cost" in test.columns:
        cost_source = "log"
    else:
        warnings.warn("no 'cost' column in both logs and no prices: every call costs 1, AIQ is undefined.",
                      V0liteWarning, stacklevel=2)
        prices = {p: 1.0 for p in policies}
        cost_source = "unit"

    te_prompts, Y, Ctrue = _pivot(test, policies, prices if cost_source != "log" else None)
    complete = ~(np.isnan(Y).any(axis=1) | np.isnan(Ctrue).any(axis=1))
    n_incomplete = int((~complete).sum())
    if n_incomplete:
        warnings.warn(f"{n_incomplete} test prompts lack an outcome or cost for some policy and are dropped.",
                      V0liteWarning, stacklevel=2)
    if not complete.any():
        raise DataError("no test prompt has an outcome for every policy of the pool. Fix: use a complete test log.")
    te_prompts = [t for t, ok in zip(te_prompts, complete) if ok]
    Y, Ctrue = Y[complete], Ctrue[complete]

    if value_model is None:
        value_model = _default_value_model(random_state)
    if fit_value_model:
        X_tr, y_tr = split_xy(train)
        value_model.fit(X_tr, y_tr)
    embed_holder: dict[str, Any] = {"e": embedder}

    def embedder_lazy():
        if embed_holder["e"] is None:
            embed_holder["e"] = _default_embedder()
        return embed_holder["e"]

    class _LazyEmbedder:  # builds the default encoder only if some step needs embeddings
        def encode(self, texts):
            return embedder_lazy().encode(texts)

    router_cost_model = cost_model if cost_source == "log" else "fixed"
    router = Router(value_model, policies=policies, strategy=strat, cost_model=router_cost_model,
                    prices=prices if cost_source != "log" else None, embedder=_LazyEmbedder(),
                    k=k_cost, shrink=shrink, cv=cv, random_state=random_state)
    router.fit(train)
    P, Cpred = router.predict_matrix(te_prompts)
    curve = _sweep(strat, P, Cpred, Y, Ctrue, n_knobs)

    single = best_single(Y, Ctrue, policies)
    c_max = float(max(single["costs"]))
    degenerate = float(np.ptp(single["costs"])) <= 1e-12 * max(1.0, c_max)
    _, or_acc, or_cost = oracle(Y, Ctrue)

    # kNN baseline on the complete train prompts
    tr_prompts, Ytr, Ctr = _pivot(train, policies, prices if cost_source != "log" else None)
    tr_ok = ~(np.isnan(Ytr).any(axis=1) | np.isnan(Ctr).any(axis=1))
    base = tuned = tuned_k = tuned_cv = None
    if tr_ok.any():
        tr_prompts_ok = [t for t, ok in zip(tr_prompts, tr_ok) if ok]
        enc = embedder_lazy()
        e_tr, e_te = enc.encode(tr_prompts_ok), enc.encode(te_prompts)
        Pk, Ck = knn_router_baseline(e_tr, Ytr[tr_ok], Ctr[tr_ok], e_te, k=k_baseline, cost="mean")
        base = _sweep(UtilityStrategy(), Pk, Ck, Y, Ctrue, n_knobs)
        if tuned_ks is not None:
            if int(tr_ok.sum()) < max(2, int(cv)):
                warnings.warn(f"only {int(tr_ok.sum())} complete train prompts: the tuned kNN baseline is skipped.",
                              V0liteWarning, stacklevel=2)
            else:
                tuned_k, tuned_cv = tune_knn_router(e_tr, Ytr[tr_ok], Ctr[tr_ok], tuned_ks, cv=cv,
                                                    random_state=random_state, n_knobs=n_knobs)
                Pt, Cpt = knn_router_baseline(e_tr, Ytr[tr_ok], Ctr[tr_ok], e_te, k=tuned_k, cost="mean")
                tuned = _sweep(UtilityStrategy(), Pt, Cpt, Y, Ctrue, n_knobs)
    else:
        warnings.warn("no train prompt has every policy: the kNN baseline is skipped.", V0liteWarning, stacklevel=2)

    # what knowing the task alone gives, when both logs name it
    task_curve = within_task = tuned_within_task = None
    if "task" in train.columns and "task" in test.columns and tr_ok.any():
        task_of = _first_task(test)
        g_te = np.array([task_of.get(t) for t in te_prompts], dtype=object).astype(str)
        tr_task = _first_task(train)
        g_tr = np.array([tr_task.get(t) for t in tr_prompts_ok], dtype=object).astype(str)
        Pg, Cg = group_router_baseline(g_tr, Ytr[tr_ok], Ctr[tr_ok], g_te)
        task_curve = _sweep(UtilityStrategy(), Pg, Cg, Y, Ctrue, n_knobs)
        within_task = _within_group_auc(Y, P, g_te)
        if tuned is not None:
            tuned_within_task = _within_group_auc(Y, Pt, g_te)

    def _aiq(c):
        return None if degenerate or c is None else aiq(c["cost"], c["acc"], c_max)

    cab = cost_at_accuracy(curve, single["acc"])
    result: dict[str, Any] = {
        "strategy": strat.name,
        "shrink": router.shrink_,
        "prior_k": router.prior_k_,
        "cost_source": cost_source,
        "policies": policies,
        "policies_dropped": dropped,
        "n_policies": len(policies),
        "n_test": int(Y.shape[0]),
        "n_test_incomplete": n_incomplete,
        "n_train_complete": int(tr_ok.sum()),
        "n_train_incomplete": int((~tr_ok).sum()),
        "c_max": c_max,
        "aiq": _aiq(curve),
        "max_acc": float(max(curve["acc"])),
        "best_single_model": single["model"],
        "best_single_acc": single["acc"],
        "best_single_cost": single["cost"],
        "cost_at_best_single_acc": cab,
        "cost_save": _cost_save(cab, single["cost"]),
        "oracle_acc": or_acc,
        "oracle_cost": or_cost,
        "random_mix_aiq": None if degenerate else aiq(single["costs"], single["accs"], c_max),
        "baseline_knn_aiq": _aiq(base),
        "baseline_knn_max_acc": None if base is None else float(max(base["acc"])),
        "baseline_knn_cost_at_best_single_acc": None if base is None else cost_at_accuracy(base, single["acc"]),
        "baseline_knn_tuned_aiq": _aiq(tuned),
        "baseline_knn_tuned_k": tuned_k,
        "baseline_knn_tuned_max_acc": None if tuned is None else float(max(tuned["acc"])),
        "baseline_knn_tuned_cost_at_best_single_acc": (None if tuned is None
                                                       else cost_at_accuracy(tuned, single["acc"])),
        "baseline_knn_tuned_cv": tuned_cv,
        "baseline_task_aiq": _aiq(task_curve),
        "baseline_task_max_acc": None if task_curve is None else float(max(task_curve["acc"])),
        "baseline_task_cost_at_best_single_acc": (None if task_curve is None
                                                  else cost_at_accuracy(task_curve, single["acc"])),
        "within_task_auc": within_task,
        "baseline_knn_tuned_within_task_auc": tuned_within_task,
        "curves": {
            "router": curve,
            "router_hull": _hull_dict(curve["cost"], curve["acc"]),
            "baseline_knn": base,
            "baseline_knn_hull": None if base is None else _hull_dict(base["cost"], base["acc"]),
            "baseline_knn_tuned": tuned,
            "baseline_knn_tuned_hull": None if tuned is None else _hull_dict(tuned["cost"], tuned["acc"]),
            "baseline_task": task_curve,
            "single": {"policy": policies, "cost": single["costs"], "acc": single["accs"]},
            "random_mix": _hull_dict(single["costs"], single["accs"]),
            "oracle": {"cost": or_cost, "acc": or_acc},
        },
    }
    if len(policies) == 2:
        accs, costs = np.asarray(single["accs"]), np.asarray(single["costs"])
        s = int(np.lexsort((costs, accs))[-1])  # more accurate, dearer on ties
        w = 1 - s
        result.update({"strong_model": policies[s], "weak_model": policies[w]})
        for key, c in (("", curve), ("baseline_knn_", base), ("baseline_knn_tuned_", tuned)):
            if c is None:
                result[f"{key}apgr"] = None
                continue
            x = np.asarray(c["share"])[:, s]
            result[f"{key}apgr"] = apgr(x, c["acc"], accs[w], accs[s])
            if not key:
                result["cpt_50"] = cpt(x, c["acc"], accs[w], accs[s], 0.5)
                result["cpt_80"] = cpt(x, c["acc"], accs[w], accs[s], 0.8)
    result = _json_ready(result)
    if plot is not None:
        plot_frontiers(result, plot)
    return result


# --------------------------------------------------------------------------- plot


def plot_frontiers(result: Mapping[str, Any], path) -> str:
    """PNG of the router frontier, the kNN baselines (k fixed and k tuned), the task-mean router
    (when the logs name tasks), single models, random mixes and the oracle.

    Written atomically (temporary file, then rename). Returns the path as a string.
    """
    from ._extras import require

    require("matplotlib", "plot", "the frontier plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = result["curves"]
    fig = Figure(figsize=(7, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    r = curves["router"]
    ax.scatter(r["cost"], r["acc"], s=10, alpha=0.4, color="C0")
    h = curves["router_hull"]
    ax.plot(h["cost"], h["acc"], "-o", ms=3, color="C0", label=f"router ({result.get('strategy')})")
    if curves.get("baseline_knn_hull"):
        b = curves["baseline_knn_hull"]
        ax.plot(b["cost"], b["acc"], "-s", ms=3, color="C1", label="kNN router baseline")
    if curves.get("baseline_knn_tuned_hull"):
        b = curves["baseline_knn_tuned_hull"]
        ax.plot(b["cost"], b["acc"], "-^", ms=3, color="C2",
                label=f"kNN router, k={result.get('baseline_knn_tuned_k')} (CV on train)")
    if curves.get("baseline_task"):
        tc = curves["baseline_task"]
        hc, ha = non_decreasing_hull(tc["cost"], tc["acc"])
        ax.plot(hc, ha, ":", color="C4", label="task-mean router (knows the task label)")
    m = curves["random_mix"]
    ax.plot(m["cost"], m["acc"], "--", color="grey", label="random mix of models")
    s = curves["single"]
    ax.scatter(s["cost"], s["acc"], marker="D", color="k", zorder=3, label="single models")
    for name, c, a in zip(s["policy"], s["cost"], s["acc"]):
        ax.annotate(str(name), (c, a), textcoords="offset points", xytext=(4, 4), fontsize=7)
    o = curves["oracle"]
    ax.scatter([o["cost"]], [o["acc"]], marker="*", s=120, color="C3", zorder=3, label="oracle")
    ax.set_xlabel("mean cost per prompt")
    ax.set_ylabel("accuracy")
    title = "routing frontier"
    if result.get("aiq") is not None:
        title += f" (AIQ {result['aiq']:.3f}"
        if result.get("baseline_knn_aiq") is not None:
            title += f", kNN {result['baseline_knn_aiq']:.3f}"
        if result.get("baseline_knn_tuned_aiq") is not None:
            title += f", tuned kNN {result['baseline_knn_tuned_aiq']:.3f}"
        title += ")"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = os.fspath(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
