"""Routing strategies: pick one policy per prompt from success matrix ``P`` and cost matrix ``C``.

Each strategy has ``choose(P, C, knob)`` and ``knob_grid(P, C, n)`` (both matrices
``(n_prompts, n_policies)``):

================  ========  =====================================================================
name              knob      choice
================  ========  =====================================================================
utility           ``lam``   argmax ``p - lam * c`` (``lam >= 0``; RouterBench's willingness to pay)
threshold         ``tau``   cheapest policy with ``p >= tau``; if none, the most likely policy
budget            ``budget``  max ``sum p`` subject to mean cost ``<= budget`` (Lagrangian)
quality-target    ``target``  min mean cost subject to mean ``p >= target`` (Lagrangian)
================  ========  =====================================================================

Ties are broken the same way everywhere: higher ``p`` first, then lower cost, then the
policy listed first.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from typing import Any, Callable

import numpy as np

from .._registry import lookup
from ..exceptions import ParameterError, V0liteError, V0liteWarning

__all__ = [
    "Strategy",
    "STRATEGY_PROTOCOL",
    "STRATEGIES",
    "get_strategy",
    "UtilityStrategy",
    "ThresholdStrategy",
    "BudgetStrategy",
    "QualityTargetStrategy",
]

# success probabilities (and utilities p - lam c, in their unit) closer than this are ties; costs tie within
# _cost_tie(C), relative to the pool's prices: an absolute width tied every model at 1e-15 USD per token
_P_TIE = 1e-12
_BISECT_STEPS = 64

# --------------------------------------------------------------------------- helpers


def _check_matrices(P, C) -> tuple[np.ndarray, np.ndarray]:
    P = np.asarray(P, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    if P.ndim != 2 or P.shape != C.shape or P.shape[1] == 0:
        raise V0liteError(
            f"P and C must be two matrices of the same shape (n_prompts, n_policies >= 1); got "
            f"{P.shape} and {C.shape}. Fix: pass the output of Router.predict_matrix."
        )
    if not (np.isfinite(P).all() and np.isfinite(C).all()):
        raise V0liteError("P and C must be finite. Fix: check the value model and the cost model outputs.")
    return P, C


def _argmax_tiebreak(score: np.ndarray, C: np.ndarray, P: np.ndarray | None = None) -> np.ndarray:
    """Per row: argmax of ``score``; ties (within ``_P_TIE``) go to the higher ``P``, then the cheaper."""
    best = score.max(axis=1, keepdims=True)
    tied = score >= best - _P_TIE
    if P is not None:
        p_best = np.where(tied, P, -np.inf).max(axis=1, keepdims=True)
        tied &= P >= p_best - _P_TIE
    return np.where(tied, C, np.inf).argmin(axis=1)


def _max_p(P: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Most likely policy per row; ties to the cheaper."""
    return _argmax_tiebreak(P, C)


def _cheapest(P: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Cheapest policy per row; ties to the more likely, then the first."""
    best = C.min(axis=1, keepdims=True)
    return np.where(C <= best + _cost_tie(C), P, -np.inf).argmax(axis=1)


def _lagrangian(P: np.ndarray, C: np.ndarray, lam: float) -> np.ndarray:
    """argmax ``p - lam * c`` per row (``lam = inf``: the cheapest).

    A row where ``lam * c`` overflows is routed as with ``lam = inf`` (its cheapest policy): every
    overflowed score is ``-inf``, a tie the tie-break would hand to the most likely, dearest policy.
    """
    if math.isinf(lam):
        return _cheapest(P, C)
    with np.errstate(over="ignore"):  # handled: an overflowed row goes to its cheapest policy
        score = P - lam * C
    idx = _argmax_tiebreak(score, C, P)
    over = ~np.isfinite(score).all(axis=1)
    return np.where(over, _cheapest(P, C), idx) if over.any() else idx


def _take(M: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return M[np.arange(M.shape[0]), idx]


def _scale(M: np.ndarray) -> float:
    """The largest magnitude in ``M`` (0 for an empty one): the unit tolerances of its values are relative to."""
    return float(np.abs(M).max()) if M.size else 0.0


def _sum_tol(total: float, M: np.ndarray, terms: int | None = None) -> float:
    """Slack when a sum of ``terms`` of ``M``'s entries (default: one per row) is compared with ``total``.

    Relative to ``total``, so a budget holds in any cost unit (an absolute 1e-9 let a 1e-8 budget
    buy a 1.09e-8 call), plus the rounding of a sum of ``terms`` entries (``total`` may be 0).
    """
    terms = M.shape[0] if terms is None else terms
    return 1e-9 * abs(total) + 4.0 * terms * np.finfo(np.float64).eps * _scale(M)


def _cost_tie(C: np.ndarray) -> float:
    """Width within which two costs of the pool ``C`` tie: their rounding, relative to the pool's prices.

    The slack of a one-term sum: the same in any cost unit, so prices in USD per token (1e-15 and
    below) route as prices per million tokens do.
    """
    return _sum_tol(0.0, C, 1)


def _slope_tie(C: np.ndarray) -> float:
    """Width within which two switch points ``dp / dc`` tie: ``_P_TIE`` of success over the pool's cost scale.

    Utilities at ``lam`` values closer than this differ by at most ``_P_TIE`` on any cost of the pool
    (an absolute width tied every switch point of a pool priced at 1e15).
    """
    scale = _scale(C)
    return _P_TIE / scale if scale > 0 else _P_TIE


def _switch_points(P: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Every ``lam`` at which a row's utility choice changes, as ``lam`` grows from 0.

    Per row the choice walks the upper-left convex hull of the ``(c, p)`` points, from the
    most likely policy to the cheapest; the switch points are the hull's slopes ``dp / dc``.
    Vectorised over rows: at most ``n_policies`` passes.
    """
    n, m = P.shape
    rows = np.arange(n)
    cur = _max_p(P, C)
    active = np.ones(n, dtype=bool)
    out = []
    c_tie, s_tie = _cost_tie(C), _slope_tie(C)
    for _ in range(m):
        pc, cc = P[rows, cur][:, None], C[rows, cur][:, None]
        dc = cc - C
        ok = (dc > c_tie) & active[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(ok, (pc - P) / np.where(ok, dc, 1.0), np.inf)
        smin = slope.min(axis=1)
        has = np.isfinite(smin)
        if not has.any():
            break
        nxt = np.where(slope <= smin[:, None] + s_tie, C, np.inf).argmin(axis=1)
        out.append(np.maximum(smin[has], 0.0))
        cur = np.where(has, nxt, cur)
        active &= has
    return np.concatenate(out) if out else np.zeros(0)


def _lam_cheapest(P: np.ndarray, C: np.ndarray) -> float:
    """A finite ``lam`` past every row's last switch point: its utility routing is the cheapest one."""
    bp = _switch_points(P, C)
    return float(bp.max() * 2.0 + _slope_tie(C)) if bp.size else 0.0


def _grow_until(feasible: Callable[[float], bool]) -> float:
    """Smallest power of two ``lam >= 1`` with ``feasible(lam)``; ``inf`` if none up to 2**1000."""
    lam = 1.0
    for _ in range(1000):
        if feasible(lam):
            return lam
        lam *= 2.0
    return math.inf


def _bisect(feasible: Callable[[float], bool], lo: float, hi: float, *, feasible_hi: bool) -> tuple[float, float]:
    """Shrink ``[lo, hi]`` keeping ``feasible(hi) == feasible_hi`` and ``feasible(lo) != feasible_hi``."""
    if math.isinf(hi):
        hi = np.finfo(np.float64).max
    for _ in range(_BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if feasible(mid) == feasible_hi:
            hi = mid
        else:
            lo = mid
    return lo, hi


def _greedy_prefix(gain: np.ndarray, spend: np.ndarray, allowance: float, tol: float) -> np.ndarray:
    """Boolean mask of items taken greedily (given order) while total ``spend <= allowance``.

    Items are taken in the given order; an item that does not fit is skipped and later,
    smaller ones may still be taken. ``gain`` is unused except to skip items with no gain.
    """
    take = np.zeros(len(spend), dtype=bool)
    useful = gain > 0
    csum = np.cumsum(np.where(useful, spend, 0.0))
    prefix = (csum <= allowance + tol) & useful
    # the prefix is exact up to the first item that does not fit
    stop = int(np.argmin(csum <= allowance + tol)) if (csum > allowance + tol).any() else len(spend)
    take[:stop] = prefix[:stop]
    left = allowance - float(np.where(take, spend, 0.0).sum())
    for i in range(stop, len(spend)):  # only the tail after the first misfit
        if useful[i] and spend[i] <= left + tol:
            take[i] = True
            left -= spend[i]
    return take


def _apart(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` as text, with the fewest significant digits (6, as ``:g``, or more) that tell them apart.

    A refused knob printed as equal to the limit it missed ("budget 0.0001 is below ... 0.0001")
    reads as a bug; equal numbers print alike.
    """
    for digits in range(6, 18):
        sa, sb = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if sa != sb:
            break
    return sa, sb


def _float_knob(name: str, value: Any, valid: tuple[float, float] = (-math.inf, math.inf)) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise V0liteError(
            f"knob {name!r} must be a number, got {value!r}. Fix: pass {name}=<value>, a number."
        ) from exc
    if math.isnan(out):  # the fix as name=<value>: the CLI shows it as --knob VALUE
        raise V0liteError(f"knob {name!r} is NaN. Fix: pass {name}=<value>, a number.")
    lo, hi = valid
    if not lo <= out <= hi:
        where = f">= {lo:g}" if hi == math.inf else f"in [{lo:g}, {hi:g}]"
        shown = f"{out:g}" if float(f"{out:g}") == out else repr(out)  # 7, not 7.0; 1.0000001, not 1
        raise ParameterError(f"knob {name!r} must be {where}, got {shown}. Fix: pass {name}=<value> {where}.")
    return out


# --------------------------------------------------------------------------- strategies


class Strategy:
    """Base class of the routing strategies, and the way to add your own.

    A strategy picks one policy per prompt from the success matrix ``P`` and the cost matrix
    ``C`` (both ``(n_prompts, n_policies)``) given one number, its knob. Subclass it (or write
    any class with the same two methods: the router only calls them) and pass an instance as
    ``Router(strategy=...)`` or ``route_eval(strategy=...)``:

    * ``choose(P, C, knob) -> ndarray of int`` -- the chosen column of each row;
    * ``knob_grid(P, C, n) -> ndarray`` -- about ``n`` knob values spanning the cost-quality
      trade-off (swept by :func:`v0lite.routing.route_eval`);

    and the class attributes ``name``, ``knob_name`` (the keyword of ``Router.route``) and
    ``default_knob`` (None: the knob must be given).

    Examples
    --------
    >>> class Cheapest(Strategy):
    ...     name, knob_name, default_knob = "cheapest", "unused", 0.0
    ...     def choose(self, P, C, knob):
    ...         return np.asarray(C).argmin(axis=1)
    ...     def knob_grid(self, P, C, n=64):
    ...         return np.zeros(1)
    >>> get_strategy(Cheapest()).choose([[0.9, 0.1]], [[2.0, 1.0]], 0.0).tolist()
    [1]
    """

    name: str = ""
    knob_name: str = ""
    default_knob: float | None = None
    knob_range: tuple[float, float] = (-math.inf, math.inf)  # values outside are a ParameterError

    def check_knob(self, knob) -> float:
        """``knob`` as a float, or a ``ParameterError`` naming the valid range (a bool or a str is refused)."""
        if isinstance(knob, (bool, np.bool_, str, bytes)):  # float() reads True as 1 and "0.5" as 0.5: as prices
            raise ParameterError(
                f"knob {self.knob_name!r} must be a number, got the {type(knob).__name__} {knob!r}. "
                f"Fix: pass {self.knob_name}=<value> as an int or a float."
            )
        return _float_knob(self.knob_name, knob, self.knob_range)

    def choose(self, P, C, knob) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def knob_grid(self, P, C, n: int = 64) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class UtilityStrategy(Strategy):
    """Pick argmax ``p - lam * c`` per prompt (``lam >= 0``: success worth ``1/lam`` cost units).

    Examples
    --------
    >>> P = np.array([[0.5, 0.9]]); C = np.array([[0.1, 1.0]])
    >>> UtilityStrategy().choose(P, C, 0.0), UtilityStrategy().choose(P, C, 1.0)
    (array([1]), array([0]))
    """

    name = "utility"
    knob_name = "lam"
    knob_range = (0.0, math.inf)
    default_knob = 0.0

    def choose(self, P, C, knob) -> np.ndarray:
        P, C = _check_matrices(P, C)
        lam = self.check_knob(knob)
        return _lagrangian(P, C, lam)

    def knob_grid(self, P, C, n: int = 64) -> np.ndarray:
        """``n`` values of ``lam`` from 0 (most likely policy) past the last switch (cheapest).

        Interior values are quantiles of the switch points: the values of ``lam`` at which
        some prompt's choice actually changes (the slopes of each row's upper-left convex
        hull of ``(c, p)``), so every step of the sweep moves about the same number of
        prompts, over the whole range.
        """
        P, C = _check_matrices(P, C)
        bp = _switch_points(P, C)
        if bp.size == 0 or n < 2:
            return np.zeros(1)
        inner = np.quantile(bp, np.linspace(0.0, 1.0, max(n - 2, 1)))
        return np.unique(np.concatenate([[0.0], inner, [bp.max() * 2.0 + _slope_tie(C)]]))


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # .../v0lite/


def _warn_caller(message: str) -> None:
    """A :class:`V0liteWarning` at the first line outside v0lite that led here: the user's call, whether it is
    ``strategy.choose``, ``Router.choose``, ``Router.route`` or ``Router.predict`` (a fixed stacklevel names
    the user's line for one of them only, and a line of ``_router.py`` for the others)."""
    frame, level = sys._getframe(1), 2  # stacklevel 2: the function that called this one
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, V0liteWarning, stacklevel=level)


class ThresholdStrategy(Strategy):
    """Pick the cheapest policy with ``p >= tau``; if none reaches ``tau``, the most likely one (with a
    :class:`V0liteWarning` counting those prompts, once per call).

    Examples
    --------
    >>> P = np.array([[0.5, 0.7, 0.9]]); C = np.array([[0.1, 0.5, 1.0]])
    >>> ThresholdStrategy().choose(P, C, 0.6), ThresholdStrategy().choose(P, C, 0.95)
    (array([1]), array([2]))
    """

    name = "threshold"
    knob_name = "tau"
    knob_range = (0.0, 1.0)
    default_knob = 0.5

    def choose(self, P, C, knob) -> np.ndarray:
        P, C = _check_matrices(P, C)
        tau = self.check_knob(knob)
        ok = P >= tau
        cheap_ok = np.where(ok, C, np.inf).min(axis=1, keepdims=True)
        pick_ok = np.where(ok & (C <= cheap_ok + _cost_tie(C)), P, -np.inf).argmax(axis=1)
        reached = ok.any(axis=1)
        missed = int((~reached).sum())
        if missed:  # said, as budget and quality-target say theirs: a silent fallback looks like a routing
            _warn_caller(
                f"{missed} of {len(reached)} prompts: no model reaches tau {tau:g}; the most likely model was chosen."
            )
        return np.where(reached, pick_ok, _max_p(P, C))

    def knob_grid(self, P, C, n: int = 64) -> np.ndarray:
        """``n`` values of ``tau``: quantiles of ``P`` from its minimum (cheapest) to its maximum."""
        P, C = _check_matrices(P, C)
        return np.unique(np.quantile(P.ravel(), np.linspace(0.0, 1.0, max(n, 1))))


class BudgetStrategy(Strategy):
    """Maximise total predicted success subject to mean cost per prompt ``<= budget``.

    Solved through the Lagrangian ``argmax p - lam * c``: bisection on ``lam`` finds the
    critical value, then the prompts whose choice flips at it are upgraded greedily (best
    ``dp / dc`` first) while the budget allows, so the budget is used as fully as the
    discrete choices permit and never exceeded (optimal for the LP relaxation up to the one
    prompt it would split). An infeasible budget (below the cheapest routing) returns the
    cheapest routing with a :class:`V0liteWarning`.

    Examples
    --------
    >>> P = np.array([[0.2, 0.9], [0.6, 0.7]]); C = np.array([[0.0, 1.0], [0.0, 1.0]])
    >>> BudgetStrategy().choose(P, C, 0.5)  # one expensive call: spend it where it gains most
    array([1, 0])
    """

    name = "budget"
    knob_name = "budget"
    knob_range = (0.0, math.inf)
    default_knob = None

    def choose(self, P, C, knob) -> np.ndarray:
        return self._solve(P, C, knob, fill=True)[0]

    def critical_lam(self, P, C, knob) -> float:
        """The utility ``lam`` whose routing (argmax ``p - lam * c``) keeps mean cost ``<= budget`` on this batch.

        The smallest such ``lam`` found by the same bisection as :meth:`choose` (before its greedy
        fill), so ``UtilityStrategy().choose(P, C, lam)`` spends at most ``budget`` per prompt on
        these prompts. Unlike ``budget``, ``lam`` is a per-prompt rule: it routes one request at a
        time the way this batch was routed. 0 when the most likely routing fits; past the last
        switch point (the cheapest routing) when the budget is at or below the cheapest routing's
        mean cost (with a :class:`V0liteWarning` when below).
        """
        return self._solve(P, C, knob, fill=False)[1]

    def _solve(self, P, C, knob, *, fill: bool) -> tuple[np.ndarray, float]:
        """``(routing, lam)``: the routing (greedily filled up to the budget when ``fill``) and the critical ``lam``."""
        P, C = _check_matrices(P, C)
        budget = self.check_knob(knob)
        n = P.shape[0]
        total = budget * n
        tol = _sum_tol(total, C)

        def cost(idx):
            return float(_take(C, idx).sum())

        best = _lagrangian(P, C, 0.0)
        if cost(best) <= total + tol:
            return best, 0.0
        cheap = _cheapest(P, C)
        if cost(cheap) > total + tol:
            shown, limit = _apart(budget, cost(cheap) / n)
            _warn_caller(
                f"budget {shown} is below the cheapest routing's mean cost {limit}; returning the cheapest routing."
            )
            return cheap, _lam_cheapest(P, C)

        def feasible(lam):
            return cost(_lagrangian(P, C, lam)) <= total + tol

        hi = _grow_until(feasible)
        lo, hi = _bisect(feasible, 0.0, hi, feasible_hi=True)
        idx_hi = _lagrangian(P, C, hi) if feasible(hi) else cheap
        lam = float(hi) if feasible(hi) else _lam_cheapest(P, C)
        if not fill:
            return idx_hi, lam
        idx_lo = _lagrangian(P, C, lo)
        rows = np.flatnonzero(idx_lo != idx_hi)
        if rows.size == 0:
            return idx_hi, lam
        gain = P[rows, idx_lo[rows]] - P[rows, idx_hi[rows]]
        spend = C[rows, idx_lo[rows]] - C[rows, idx_hi[rows]]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(spend > 0, gain / spend, np.inf)
        order = np.argsort(-ratio, kind="stable")
        take = _greedy_prefix(gain[order], np.maximum(spend[order], 0.0), total - cost(idx_hi), tol)
        out = idx_hi.copy()
        up = rows[order][take]
        out[up] = idx_lo[up]
        return out, lam

    def knob_grid(self, P, C, n: int = 64) -> np.ndarray:
        """``n`` budgets evenly spaced from the cheapest routing's mean cost to the best one's."""
        P, C = _check_matrices(P, C)
        lo = float(_take(C, _cheapest(P, C)).mean())
        hi = float(_take(C, _max_p(P, C)).mean())
        return np.unique(np.linspace(lo, max(lo, hi), max(n, 1)))


class QualityTargetStrategy(Strategy):
    """Minimise mean cost subject to mean predicted success ``>= target``.

    The mirror of :class:`BudgetStrategy`: bisection on the Lagrangian ``lam``, then the
    prompts whose choice flips at the critical ``lam`` are downgraded greedily (most cost
    saved per success lost first) while the target still holds. An unreachable target
    returns the most likely routing with a :class:`V0liteWarning`.

    Examples
    --------
    >>> P = np.array([[0.2, 0.9], [0.6, 0.7]]); C = np.array([[0.0, 1.0], [0.0, 1.0]])
    >>> QualityTargetStrategy().choose(P, C, 0.75)
    array([1, 0])
    """

    name = "quality-target"
    knob_name = "target"
    knob_range = (0.0, 1.0)
    default_knob = None

    def choose(self, P, C, knob) -> np.ndarray:
        return self._solve(P, C, knob, fill=True)[0]

    def critical_lam(self, P, C, knob) -> float:
        """The utility ``lam`` whose routing (argmax ``p - lam * c``) keeps mean ``p >= target`` on this batch.

        The largest such ``lam`` found by the same bisection as :meth:`choose` (before its greedy
        downgrades), so ``UtilityStrategy().choose(P, C, lam)`` meets ``target`` on these prompts.
        Unlike ``target``, ``lam`` is a per-prompt rule: it routes one request at a time the way
        this batch was routed. Past the last switch point (the cheapest routing) when the cheapest
        routing meets the target; 0 (the most likely routing) when the target is out of reach
        (with a :class:`V0liteWarning`).
        """
        return self._solve(P, C, knob, fill=False)[1]

    def _solve(self, P, C, knob, *, fill: bool) -> tuple[np.ndarray, float]:
        """``(routing, lam)``: the routing (downgraded greedily to the target when ``fill``), the critical ``lam``."""
        P, C = _check_matrices(P, C)
        target = self.check_knob(knob)
        n = P.shape[0]
        need = target * n
        tol = _sum_tol(need, P)

        def quality(idx):
            return float(_take(P, idx).sum())

        cheap = _cheapest(P, C)
        if quality(cheap) >= need - tol:
            return cheap, _lam_cheapest(P, C)
        best = _lagrangian(P, C, 0.0)
        if quality(best) < need - tol:
            shown, limit = _apart(target, quality(best) / n)
            _warn_caller(
                f"target {shown} is above the best reachable mean success {limit}; returning the most likely routing."
            )
            return best, 0.0

        def infeasible(lam):
            return quality(_lagrangian(P, C, lam)) < need - tol

        hi = _grow_until(infeasible)
        lo, hi = _bisect(infeasible, 0.0, hi, feasible_hi=True)
        idx_lo = _lagrangian(P, C, lo)  # meets the target
        if not fill:
            return idx_lo, float(lo)
        idx_hi = _lagrangian(P, C, hi) if infeasible(hi) else cheap
        rows = np.flatnonzero(idx_lo != idx_hi)
        if rows.size == 0:
            return idx_lo, float(lo)
        loss = P[rows, idx_lo[rows]] - P[rows, idx_hi[rows]]
        saving = C[rows, idx_lo[rows]] - C[rows, idx_hi[rows]]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(loss > 0, saving / loss, np.inf)
        order = np.argsort(-ratio, kind="stable")
        take = _greedy_prefix(saving[order], np.maximum(loss[order], 0.0), quality(idx_lo) - need, tol)
        out = idx_lo.copy()
        down = rows[order][take]
        out[down] = idx_hi[down]
        return out, float(lo)

    def knob_grid(self, P, C, n: int = 64) -> np.ndarray:
        """``n`` targets evenly spaced from the cheapest routing's mean ``p`` to the best one's."""
        P, C = _check_matrices(P, C)
        lo = float(_take(P, _cheapest(P, C)).mean())
        hi = float(_take(P, _max_p(P, C)).mean())
        return np.unique(np.linspace(lo, max(lo, hi), max(n, 1)))


STRATEGIES: dict[str, type[Strategy]] = {
    UtilityStrategy.name: UtilityStrategy,
    ThresholdStrategy.name: ThresholdStrategy,
    BudgetStrategy.name: BudgetStrategy,
    QualityTargetStrategy.name: QualityTargetStrategy,
}


#: what an object needs to be used as a strategy without subclassing :class:`Strategy`
STRATEGY_PROTOCOL = ("choose", "knob_grid")


def get_strategy(name) -> Strategy:
    """Return a strategy instance by name (``-``/``_`` alike); an object with ``choose`` and
    ``knob_grid`` passes through.

    Raises
    ------
    ParameterError
        For an unknown name; the message lists the valid names.

    Examples
    --------
    >>> get_strategy("threshold").knob_name
    'tau'
    >>> get_strategy("quality_target").name
    'quality-target'
    """
    entry = lookup(STRATEGIES, name, "routing strategy", STRATEGY_PROTOCOL)
    return entry() if isinstance(entry, type) and isinstance(name, str) else entry
