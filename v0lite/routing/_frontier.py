"""Cost-accuracy frontiers of routers: hull, AIQ, cost_at_accuracy, best single, oracle, APGR/CPT.

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
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from ..exceptions import V0liteError, V0liteWarning

__all__ = [
    "non_decreasing_hull",
    "aiq",
    "cost_at_accuracy",
    "best_single",
    "oracle",
    "apgr",
    "cpt",
]


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
        Upper end of the cost axis: the largest mean cost of a single model in the pool. So one
        absurdly priced model stretches the axis and raises every router's AIQ (most of the axis is
        then at the router's top accuracy): compare AIQs only over the same pool and prices.

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
    return {
        "model": policies[j],
        "acc": float(accs[j]),
        "cost": float(cst[j]),
        "accs": accs.tolist(),
        "costs": cst.tolist(),
    }


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


def knob_choices(strategy, P, Cpred, n_knobs: int) -> tuple[list[float], np.ndarray]:
    """The strategy's knob grid and, per knob, each prompt's chosen policy ``(n_knobs, n_prompts)``.

    The one sweep every frontier, curve table and bootstrap is read from.
    """
    knobs, chosen = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)  # grid ends may touch infeasible knobs
        for kv in strategy.knob_grid(P, Cpred, n_knobs):
            knobs.append(float(kv))
            chosen.append(strategy.choose(P, Cpred, kv))
    return knobs, np.asarray(chosen, np.int64).reshape(len(knobs), P.shape[0])


def critical_lams(strategy, P, Cpred, knobs) -> list[float] | None:
    """Per knob, the utility ``lam`` routing these prompts one at a time as the knob routes them together.

    For a strategy whose knob binds the batch's mean (``budget``, ``quality-target``: those with
    ``critical_lam``); None for the others, whose rule is already per prompt.
    """
    if not hasattr(strategy, "critical_lam"):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)  # as knob_choices: grid ends may touch infeasible knobs
        return [float(strategy.critical_lam(P, Cpred, k)) for k in knobs]


def _sweep(strategy, P, Cpred, Y, Ctrue, n_knobs: int) -> dict[str, list]:
    knobs, idx = knob_choices(strategy, P, Cpred, n_knobs)
    rows = np.arange(Y.shape[0])
    share = [np.bincount(i, minlength=Y.shape[1]) / Y.shape[0] for i in idx]
    return {
        "knob": knobs,
        "cost": [float(c) for c in Ctrue[rows, idx].mean(axis=1)],
        "acc": [float(a) for a in Y[rows, idx].mean(axis=1)],
        "share": np.asarray(share).tolist(),
    }


def _hull_dict(costs, accs) -> dict[str, list]:
    hc, ha = non_decreasing_hull(costs, accs)
    return {"cost": hc.tolist(), "acc": ha.tolist()}
