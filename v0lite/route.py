"""Routing: send each prompt to one policy of a pool, from predicted success and cost.

A :class:`Router` asks a value model (anything with ``predict(X)``) for the success
probability of every prompt x policy pair, asks its cost model for the cost of every pair,
and lets a strategy pick one policy per prompt from the two matrices ``P`` and ``C``
(both ``(n_prompts, n_policies)``).

Strategies (``STRATEGIES``; each has ``choose(P, C, knob)`` and ``knob_grid(P, C, n)``):

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

Cost models (``COST_MODELS``): ``knn`` (per policy, a linear fit of cost on prompt length
plus the mean residual of the ``k`` nearest training prompts of that policy, by
prompt-embedding cosine similarity; a policy with at most ``k`` distinct prompts, or with
one constant cost, gets its mean cost), ``mean`` (the policy's mean cost),
``fixed`` (a ``prices`` dict, USD per call) and ``unit`` (every call costs 1).

Shrinkage (``Router(shrink=...)``): each predicted success is blended with a prior from the
router's own log, ``p' = (1 - a) * p + a * prior``, where the prior of (prompt, policy) is the
policy's mean outcome on the ``prior_k`` train prompts most similar to the prompt (``None``:
on all its train prompts). ``shrink="cv"`` chooses ``a`` and ``prior_k`` by the held-out Brier
score of out-of-fold predictions (value-model clones refitted on prompt-grouped folds of the
log), so nothing is tuned on the data routed later.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator

from .exceptions import DataError, NotFittedError, V0liteError, V0liteWarning
from .log import as_frame, validate_log

__all__ = [
    "Router",
    "STRATEGIES",
    "COST_MODELS",
    "get_strategy",
    "get_cost_model",
    "UtilityStrategy",
    "ThresholdStrategy",
    "BudgetStrategy",
    "QualityTargetStrategy",
    "KnnCost",
    "MeanCost",
    "FixedCost",
    "UnitCost",
    "TailEncoder",
]

_TIE = 1e-12  # scores or costs closer than this are ties
_BISECT_STEPS = 64
_KNN_BLOCK = 2048  # query rows per similarity block (bounds memory to block x n_train)


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
    """Per row: argmax of ``score``; ties (within ``_TIE``) go to the higher ``P``, then the cheaper."""
    best = score.max(axis=1, keepdims=True)
    tied = score >= best - _TIE
    if P is not None:
        p_best = np.where(tied, P, -np.inf).max(axis=1, keepdims=True)
        tied &= P >= p_best - _TIE
    return np.where(tied, C, np.inf).argmin(axis=1)


def _max_p(P: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Most likely policy per row; ties to the cheaper."""
    return _argmax_tiebreak(P, C)


def _cheapest(P: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Cheapest policy per row; ties to the more likely, then the first."""
    best = C.min(axis=1, keepdims=True)
    return np.where(C <= best + _TIE, P, -np.inf).argmax(axis=1)


def _lagrangian(P: np.ndarray, C: np.ndarray, lam: float) -> np.ndarray:
    """argmax ``p - lam * c`` per row (``lam = inf``: the cheapest)."""
    if math.isinf(lam):
        return _cheapest(P, C)
    return _argmax_tiebreak(P - lam * C, C, P)


def _take(M: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return M[np.arange(M.shape[0]), idx]


def _breakpoints(P: np.ndarray, C: np.ndarray, max_rows: int = 4096) -> np.ndarray:
    """Values of ``lam`` at which some row's utility choice can change (``dp / dc`` over pairs).

    At most ``max_rows`` evenly spaced rows are used, so the cost stays O(max_rows * m^2).
    """
    n = P.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, max_rows)).astype(np.int64)) if n else np.zeros(0, np.int64)
    dP = P[rows, :, None] - P[rows, None, :]
    dC = C[rows, :, None] - C[rows, None, :]
    ok = (dC > _TIE) & (dP > _TIE)
    return dP[ok] / dC[ok]


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
    for _ in range(m):
        pc, cc = P[rows, cur][:, None], C[rows, cur][:, None]
        dc = cc - C
        ok = (dc > _TIE) & active[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(ok, (pc - P) / np.where(ok, dc, 1.0), np.inf)
        smin = slope.min(axis=1)
        has = np.isfinite(smin)
        if not has.any():
            break
        nxt = np.where(slope <= smin[:, None] + _TIE, C, np.inf).argmin(axis=1)
        out.append(np.maximum(smin[has], 0.0))
        cur = np.where(has, nxt, cur)
        active &= has
    return np.concatenate(out) if out else np.zeros(0)


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


def _float_knob(name: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise V0liteError(f"knob {name!r} must be a number, got {value!r}. Fix: pass a float.") from exc
    if math.isnan(out):
        raise V0liteError(f"knob {name!r} is NaN. Fix: pass a number.")
    return out


# --------------------------------------------------------------------------- strategies


class _Strategy:
    """Common face of the routing strategies: ``choose(P, C, knob)`` and ``knob_grid(P, C, n)``."""

    name: str = ""
    knob_name: str = ""
    default_knob: float | None = None

    def choose(self, P, C, knob) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def knob_grid(self, P, C, n: int = 64) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class UtilityStrategy(_Strategy):
    """Pick argmax ``p - lam * c`` per prompt (``lam >= 0``: success worth ``1/lam`` cost units).

    Examples
    --------
    >>> P = np.array([[0.5, 0.9]]); C = np.array([[0.1, 1.0]])
    >>> UtilityStrategy().choose(P, C, 0.0), UtilityStrategy().choose(P, C, 1.0)
    (array([1]), array([0]))
    """

    name = "utility"
    knob_name = "lam"
    default_knob = 0.0

    def choose(self, P, C, knob) -> np.ndarray:
        P, C = _check_matrices(P, C)
        lam = _float_knob(self.knob_name, knob)
        if lam < 0:
            raise V0liteError(f"utility knob lam must be >= 0, got {lam}. Fix: pass lam >= 0 (0 = best quality).")
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
        return np.unique(np.concatenate([[0.0], inner, [bp.max() * 2.0 + _TIE]]))


class ThresholdStrategy(_Strategy):
    """Pick the cheapest policy with ``p >= tau``; if none reaches ``tau``, the most likely one.

    Examples
    --------
    >>> P = np.array([[0.5, 0.7, 0.9]]); C = np.array([[0.1, 0.5, 1.0]])
    >>> ThresholdStrategy().choose(P, C, 0.6), ThresholdStrategy().choose(P, C, 0.95)
    (array([1]), array([2]))
    """

    name = "threshold"
    knob_name = "tau"
    default_knob = 0.5

    def choose(self, P, C, knob) -> np.ndarray:
        P, C = _check_matrices(P, C)
        tau = _float_knob(self.knob_name, knob)
        ok = P >= tau
        cheap_ok = np.where(ok, C, np.inf).min(axis=1, keepdims=True)
        pick_ok = np.where(ok & (C <= cheap_ok + _TIE), P, -np.inf).argmax(axis=1)
        return np.where(ok.any(axis=1), pick_ok, _max_p(P, C))

    def knob_grid(self, P, C, n: int = 64) -> np.ndarray:
        """``n`` values of ``tau``: quantiles of ``P`` from its minimum (cheapest) to its maximum."""
        P, C = _check_matrices(P, C)
        return np.unique(np.quantile(P.ravel(), np.linspace(0.0, 1.0, max(n, 1))))


class BudgetStrategy(_Strategy):
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
    default_knob = None

    def choose(self, P, C, knob) -> np.ndarray:
        P, C = _check_matrices(P, C)
        budget = _float_knob(self.knob_name, knob)
        n = P.shape[0]
        total = budget * n
        tol = 1e-9 * max(1.0, abs(total))

        def cost(idx):
            return float(_take(C, idx).sum())

        best = _lagrangian(P, C, 0.0)
        if cost(best) <= total + tol:
            return best
        cheap = _cheapest(P, C)
        if cost(cheap) > total + tol:
            warnings.warn(
                f"budget {budget:g} is below the cheapest routing's mean cost {cost(cheap) / n:g}; "
                "returning the cheapest routing.",
                V0liteWarning,
                stacklevel=2,
            )
            return cheap

        def feasible(lam):
            return cost(_lagrangian(P, C, lam)) <= total + tol

        hi = _grow_until(feasible)
        lo, hi = _bisect(feasible, 0.0, hi, feasible_hi=True)
        idx_hi = _lagrangian(P, C, hi) if feasible(hi) else cheap
        idx_lo = _lagrangian(P, C, lo)
        rows = np.flatnonzero(idx_lo != idx_hi)
        if rows.size == 0:
            return idx_hi
        gain = P[rows, idx_lo[rows]] - P[rows, idx_hi[rows]]
        spend = C[rows, idx_lo[rows]] - C[rows, idx_hi[rows]]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(spend > 0, gain / spend, np.inf)
        order = np.argsort(-ratio, kind="stable")
        take = _greedy_prefix(gain[order], np.maximum(spend[order], 0.0), total - cost(idx_hi), tol)
        out = idx_hi.copy()
        up = rows[order][take]
        out[up] = idx_lo[up]
        return out

    def knob_grid(self, P, C, n: int = 64) -> np.ndarray:
        """``n`` budgets evenly spaced from the cheapest routing's mean cost to the best one's."""
        P, C = _check_matrices(P, C)
        lo = float(_take(C, _cheapest(P, C)).mean())
        hi = float(_take(C, _max_p(P, C)).mean())
        return np.unique(np.linspace(lo, max(lo, hi), max(n, 1)))


class QualityTargetStrategy(_Strategy):
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
    default_knob = None

    def choose(self, P, C, knob) -> np.ndarray:
        P, C = _check_matrices(P, C)
        target = _float_knob(self.knob_name, knob)
        n = P.shape[0]
        need = target * n
        tol = 1e-9 * max(1.0, abs(need))

        def quality(idx):
            return float(_take(P, idx).sum())

        cheap = _cheapest(P, C)
        if quality(cheap) >= need - tol:
            return cheap
        best = _lagrangian(P, C, 0.0)
        if quality(best) < need - tol:
            warnings.warn(
                f"target {target:g} is above the best reachable mean success {quality(best) / n:g}; "
                "returning the most likely routing.",
                V0liteWarning,
                stacklevel=2,
            )
            return best

        def infeasible(lam):
            return quality(_lagrangian(P, C, lam)) < need - tol

        hi = _grow_until(infeasible)
        lo, hi = _bisect(infeasible, 0.0, hi, feasible_hi=True)
        idx_lo = _lagrangian(P, C, lo)  # meets the target
        idx_hi = _lagrangian(P, C, hi) if infeasible(hi) else cheap
        rows = np.flatnonzero(idx_lo != idx_hi)
        if rows.size == 0:
            return idx_lo
        loss = P[rows, idx_lo[rows]] - P[rows, idx_hi[rows]]
        saving = C[rows, idx_lo[rows]] - C[rows, idx_hi[rows]]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(loss > 0, saving / loss, np.inf)
        order = np.argsort(-ratio, kind="stable")
        take = _greedy_prefix(saving[order], np.maximum(loss[order], 0.0), quality(idx_lo) - need, tol)
        out = idx_lo.copy()
        down = rows[order][take]
        out[down] = idx_hi[down]
        return out

    def knob_grid(self, P, C, n: int = 64) -> np.ndarray:
        """``n`` targets evenly spaced from the cheapest routing's mean ``p`` to the best one's."""
        P, C = _check_matrices(P, C)
        lo = float(_take(P, _cheapest(P, C)).mean())
        hi = float(_take(P, _max_p(P, C)).mean())
        return np.unique(np.linspace(lo, max(lo, hi), max(n, 1)))


STRATEGIES: dict[str, type[_Strategy]] = {
    UtilityStrategy.name: UtilityStrategy,
    ThresholdStrategy.name: ThresholdStrategy,
    BudgetStrategy.name: BudgetStrategy,
    QualityTargetStrategy.name: QualityTargetStrategy,
}


def get_strategy(name: str | _Strategy) -> _Strategy:
    """Return a strategy instance by name (an instance passes through).

    Raises
    ------
    V0liteError
        For an unknown name; the message lists the valid names.

    Examples
    --------
    >>> get_strategy("threshold").knob_name
    'tau'
    """
    if isinstance(name, _Strategy):
        return name
    cls = STRATEGIES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise V0liteError(f"unknown routing strategy {name!r}. Fix: use one of {sorted(STRATEGIES)}.")
    return cls()


# --------------------------------------------------------------------------- cost models


def _check_prices(prices: Mapping[str, float] | None) -> dict[str, float]:
    if prices is None:
        return {}
    if not isinstance(prices, Mapping):
        raise DataError(f"prices must be a dict policy -> cost per call, got {type(prices).__name__}.")
    out = {}
    for k, v in prices.items():
        try:
            f = float(v)
        except (TypeError, ValueError) as exc:
            raise DataError(f"prices[{k!r}] = {v!r} is not a number. Fix: give a cost >= 0 per call.") from exc
        if not math.isfinite(f) or f < 0:
            raise DataError(f"prices[{k!r}] = {v!r} is not a finite cost >= 0. Fix: give a cost >= 0 per call.")
        out[str(k)] = f
    return out


class _CostModel:
    """Common face of the cost models: ``fit(policies, costs, prices, embed)`` then ``predict(prompts, embed)``.

    ``costs`` is a polars frame with one row per (policy, prompt) and a ``cost`` column (or
    None); ``embed`` maps a list of texts to L2-normalised rows.
    """

    name = ""
    needs_costs = True

    def _policy_means(self, policies, costs, prices) -> np.ndarray:
        means = {}
        if costs is not None:
            agg = costs.group_by("policy").agg(pl.col("cost").mean())
            means = dict(zip(agg["policy"].to_list(), agg["cost"].to_list()))
        out = np.empty(len(policies))
        for j, p in enumerate(policies):
            if p in means:
                out[j] = means[p]
            elif p in prices:
                out[j] = prices[p]
            else:
                raise DataError(
                    f"policy {p!r} has no cost in the log and no entry in prices. Fix: add 'cost' rows "
                    f"for {p!r} or pass prices={{{p!r}: <USD per call>}}."
                )
        return out

    def fit(self, policies, costs, prices, embed):  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, prompts: Sequence[str], embed) -> np.ndarray:
        return np.tile(self.mean_, (len(prompts), 1))


class MeanCost(_CostModel):
    """Each policy's mean cost per call in the log (``prices`` for policies absent from it)."""

    name = "mean"

    def fit(self, policies, costs, prices, embed):
        self.mean_ = self._policy_means(policies, costs, prices)
        return self


class FixedCost(_CostModel):
    """The user's ``prices`` (policy -> cost per call); every policy must have one."""

    name = "fixed"
    needs_costs = False

    def fit(self, policies, costs, prices, embed):
        missing = [p for p in policies if p not in prices]
        if missing:
            raise DataError(f"cost_model='fixed' needs a price for every policy; missing {missing}. Fix: add them to prices.")
        self.mean_ = np.array([prices[p] for p in policies], dtype=np.float64)
        return self


class UnitCost(_CostModel):
    """Every call costs 1 (for logs without costs: strategies then trade success only)."""

    name = "unit"
    needs_costs = False

    def fit(self, policies, costs, prices, embed):
        self.mean_ = np.ones(len(policies))
        return self


class KnnCost(_CostModel):
    """Per policy: a linear fit of cost on prompt length, plus the mean residual of the ``k``
    nearest training prompts (cosine similarity of the prompt embeddings).

    Priced APIs charge per token, so length explains most of a call's cost; the neighbours
    add what length misses (e.g. tasks with long answers). Predictions are floored at the
    policy's smallest observed cost. A policy with one constant cost, or with at most ``k``
    distinct prompts, gets its mean cost; policies absent from the log use ``prices``.
    """

    name = "knn"

    def __init__(self, k: int = 16):
        self.k = k

    def fit(self, policies, costs, prices, embed):
        self.mean_ = self._policy_means(policies, costs, prices)
        self.knn_ = {}  # column -> (row indices into the train embedding, residuals, coef, floor)
        self.train_emb_ = None
        if costs is None:
            return self
        per = costs.group_by(["policy", "prompt"], maintain_order=True).agg(pl.col("cost").mean())
        texts: list[str] = []
        pos: dict[str, int] = {}
        for j, p in enumerate(policies):
            sub = per.filter(pl.col("policy") == p)
            c = sub["cost"].to_numpy().astype(np.float64)
            if sub.height <= self.k or np.ptp(c) <= _TIE:
                continue
            prompts = sub["prompt"].to_list()
            coef = _length_fit(_lengths(prompts), c)
            rows = []
            for t in prompts:
                if t not in pos:
                    pos[t] = len(texts)
                    texts.append(t)
                rows.append(pos[t])
            resid = c - _length_design(_lengths(prompts)) @ coef
            self.knn_[j] = (np.asarray(rows, dtype=np.int64), resid, coef, float(c.min()))
        if self.knn_:
            self.train_emb_ = embed(texts)
        return self

    def predict(self, prompts: Sequence[str], embed) -> np.ndarray:
        out = super().predict(prompts, embed)
        if not self.knn_ or len(prompts) == 0:
            return out
        q = embed(list(prompts))
        X = _length_design(_lengths(prompts))
        for j, (rows, resid, coef, floor) in self.knn_.items():
            knn = _knn_mean(q, self.train_emb_[rows], resid[:, None], self.k)[:, 0]
            out[:, j] = np.maximum(X @ coef + knn, floor)
        return out


def _lengths(prompts: Sequence[str]) -> np.ndarray:
    return np.fromiter((len(t) for t in prompts), np.float64, len(prompts))


def _length_design(lengths: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(lengths), lengths / 1000.0], axis=1)


def _length_fit(lengths: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Least-squares ``cost ~ a + b * length`` with ``b >= 0`` (a flat fit when the slope is negative)."""
    X = _length_design(lengths)
    if np.ptp(lengths) > 0:
        coef = np.linalg.lstsq(X, cost, rcond=None)[0]
        if coef[1] >= 0:
            return coef
    return np.array([cost.mean(), 0.0])


COST_MODELS: dict[str, type[_CostModel]] = {
    KnnCost.name: KnnCost,
    MeanCost.name: MeanCost,
    FixedCost.name: FixedCost,
    UnitCost.name: UnitCost,
}


def get_cost_model(name: str, *, k: int = 16) -> _CostModel:
    """Return an unfitted cost model by name; an unknown name raises listing the valid ones."""
    cls = COST_MODELS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise V0liteError(f"unknown cost model {name!r}. Fix: use one of {sorted(COST_MODELS)}.")
    return cls(k=k) if cls is KnnCost else cls()


def _normalise(emb) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2:
        raise V0liteError(f"embeddings must be a 2-D array, got shape {emb.shape}.")
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.maximum(norm, 1e-12)


def _knn_mean(q: np.ndarray, train: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``values`` (n_train, d) over each query's ``k`` most similar train rows."""
    k = int(min(max(k, 1), train.shape[0]))
    out = np.empty((q.shape[0], values.shape[1]), dtype=np.float64)
    for s in range(0, q.shape[0], _KNN_BLOCK):
        sims = q[s : s + _KNN_BLOCK] @ train.T
        if k < train.shape[0]:
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(train.shape[0]), sims.shape)
        out[s : s + _KNN_BLOCK] = values[top].mean(axis=1)
    return out


def _knn_prefix_means(q: np.ndarray, train: np.ndarray, values: np.ndarray, ks: Sequence[int]) -> dict[int, np.ndarray]:
    """Per query, the mean of ``values`` (n_train,) or (n_train, m) over its ``k`` most similar train rows, for each ``k``.

    One similarity pass and one partial sort serve every ``k`` (each capped at ``n_train``).
    """
    n = train.shape[0]
    ks = sorted({int(min(max(k, 1), n)) for k in ks})
    kmax = ks[-1]
    out = {k: np.empty((q.shape[0], *values.shape[1:]), dtype=np.float64) for k in ks}
    for s in range(0, q.shape[0], _KNN_BLOCK):
        sims = q[s : s + _KNN_BLOCK] @ train.T
        if kmax < n:
            top = np.argpartition(-sims, kmax - 1, axis=1)[:, :kmax]
        else:
            top = np.broadcast_to(np.arange(n), sims.shape)
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        csum = np.cumsum(values[np.take_along_axis(top, order, axis=1)], axis=1)
        for k in ks:
            out[k][s : s + _KNN_BLOCK] = csum[:, k - 1] / k
    return out


def _clone(model):
    """An unfitted copy of a value model: ``sklearn.base.clone`` when it has ``get_params``, else a deep copy."""
    if hasattr(model, "get_params"):
        from sklearn.base import clone

        return clone(model)
    import copy

    return copy.deepcopy(model)


def _as_prompts(prompts) -> list[str]:
    if isinstance(prompts, str):
        raise DataError("prompts must be a list of texts, got one string. Fix: wrap it in a list.")
    if isinstance(prompts, (pl.DataFrame, pl.LazyFrame)) or type(prompts).__name__ == "DataFrame":
        frame = as_frame(prompts)
        if "prompt" not in frame.columns:
            raise DataError(f"no 'prompt' column (columns present: {frame.columns}). Fix: add a 'prompt' column.")
        prompts = frame["prompt"]
    out = list(prompts.to_list() if hasattr(prompts, "to_list") else prompts)
    for i, t in enumerate(out):
        if not isinstance(t, str) or not t.strip():
            raise DataError(f"prompt {i}: {t!r} is not a non-empty text. Fix: give every prompt as a non-empty string.")
    return out


# --------------------------------------------------------------------------- long-prompt encoder


class TailEncoder:
    """Sentence encoder that embeds the *end* of long prompts (where the question usually is).

    Sentence encoders truncate their input (all-MiniLM-L6-v2: 256 word pieces, about 1,000
    characters). Few-shot prompts start with the same exemplars, so a truncated embedding of
    every such prompt is the same vector and nearest-neighbour evidence is blind to the actual
    question. This encoder keeps the last ``max_chars`` characters of a longer prompt (cut at
    a whitespace when one is near) and embeds those; shorter prompts are embedded whole.

    Parameters
    ----------
    model : str, optional
        Sentence-transformers name or path (default: the offline all-MiniLM-L6-v2).
    max_chars : int, default 1000
        Characters kept from the end of a longer prompt.
    device : str, optional

    Attributes
    ----------
    model_id : str
        ``"<encoder id>|tail<max_chars>"`` (a separate embedding cache).

    Examples
    --------
    >>> TailEncoder(max_chars=10).clip("intro " * 5 + "the question?")
    'question?'
    """

    def __init__(self, model: str | None = None, max_chars: int = 1000, device: str | None = None):
        if int(max_chars) < 1:
            raise V0liteError(f"max_chars must be >= 1, got {max_chars!r}.")
        self.model = model
        self.max_chars = int(max_chars)
        self.device = device

    @property
    def model_id(self) -> str:
        from .embed import _resolve_model

        return f"{_resolve_model(self.model)[0]}|tail{self.max_chars}"

    def clip(self, text: str) -> str:
        """The part of ``text`` that is embedded."""
        if len(text) <= self.max_chars:
            return text
        tail = text[-self.max_chars:]
        cut = tail.find(" ", 0, max(1, self.max_chars // 10))
        cut2 = tail.find("\n", 0, max(1, self.max_chars // 10))
        cut = min(c for c in (cut, cut2, len(tail)) if c >= 0)
        out = tail[cut + 1:] if cut < len(tail) - 1 else tail
        return out if out.strip() else tail

    def encode(self, texts: Sequence[str], **kw) -> np.ndarray:
        """L2-normalised embeddings of the clipped texts (through the plain encoder's disk cache)."""
        from .embed import Embedder

        if getattr(self, "_inner", None) is None:
            self._inner = Embedder(self.model, device=self.device)
        return np.asarray(self._inner.encode([self.clip(t) for t in texts]), dtype=np.float32)


# --------------------------------------------------------------------------- router


class Router(BaseEstimator):
    """Route each prompt to one policy of a pool from predicted success and predicted cost.

    Parameters
    ----------
    value_model : object with ``predict(X)``
        Gives success probabilities in [0, 1] for a frame ``X`` with ``policy`` and ``prompt``
        (e.g. a fitted :class:`v0lite.estimator.V0Regressor`). Used as is (not fitted here).
    policies : list of str, optional
        The pool, in column order of ``P``/``C``. Default: every policy in the log (sorted),
        or the keys of ``prices`` when fitting without a log.
    strategy : str, default "utility"
        A name in :data:`STRATEGIES`.
    cost_model : str, default "knn"
        A name in :data:`COST_MODELS`.
    prices : dict, optional
        Policy -> cost per call. Required by ``cost_model="fixed"``; for ``knn``/``mean`` it
        prices policies that have no cost rows in the log.
    embedder : object with ``encode(texts)``, optional
        For the ``knn`` cost model; default :class:`v0lite.embed.Embedder` (built lazily, only
        if some policy's cost varies).
    k : int, default 16
        Neighbours of the ``knn`` cost model.
    shrink : None, float in [0, 1] or "cv", default None
        Blend each predicted success with a prior from the log's ``score`` column:
        ``p' = (1 - shrink) * p + shrink * prior``. ``"cv"`` chooses the weight and
        ``prior_k`` on the log (see ``cv``). None: the value model's ``p`` as is.
    prior_k : int or None, default None
        The prior of (prompt, policy) is the policy's mean outcome on the ``prior_k`` most
        similar train prompts (prompt-embedding cosine); None: on all its train prompts. Used
        with a numeric ``shrink``; ``shrink="cv"`` searches (16, 32, 64, 128, 256, 512, None).
    cv : int, default 5
        Prompt-grouped folds of ``shrink="cv"``: a clone of the value model is refitted on the
        log without each fold (``cv`` extra fits) and predicts the fold; the weight and
        ``prior_k`` with the lowest out-of-fold Brier score are kept.
    random_state : int, default 0
        Seeds the folds of ``shrink="cv"``; the strategies themselves are deterministic.

    Attributes
    ----------
    policies_ : list of str
        The pool, in column order.
    strategy_ : strategy instance
    cost_model_ : fitted cost model
    shrink_ : float
        The blend weight in use (0 when ``shrink`` is None).
    prior_k_ : int or None
        The prior's neighbours in use.
    shrink_scores_ : dict
        ``shrink="cv"`` only: ``{"shrink": [...], "prior_k": [...], "brier": [[...]]}`` (rows
        by ``prior_k``, columns by weight), the out-of-fold Brier score of every candidate.

    Examples
    --------
    >>> class Fake:
    ...     def predict(self, X):
    ...         return np.where(X["policy"].to_numpy() == "big", 0.9, 0.6)
    >>> r = Router(Fake(), cost_model="fixed", prices={"big": 1.0, "small": 0.1}).fit()
    >>> r.route(["a", "b"], lam=0.0).tolist(), r.route(["a", "b"], lam=1.0).tolist()
    (['big', 'big'], ['small', 'small'])
    """

    def __init__(self, value_model, *, policies=None, strategy="utility", cost_model="knn", prices=None,
                 embedder=None, k=16, shrink=None, prior_k=None, cv=5, random_state=0):
        self.value_model = value_model
        self.policies = policies
        self.strategy = strategy
        self.cost_model = cost_model
        self.prices = prices
        self.embedder = embedder
        self.k = k
        self.shrink = shrink
        self.prior_k = prior_k
        self.cv = cv
        self.random_state = random_state

    # -- fitting
    def fit(self, log=None, y=None):
        """Learn the cost model (and the pool) from an outcome log's ``cost`` column.

        Parameters
        ----------
        log : path or DataFrame, optional
            Outcome log with ``policy``, ``prompt`` and ``cost`` (``score`` only with ``shrink``).
            May be omitted for ``cost_model="fixed"`` or ``"unit"`` without ``shrink``.
        y : ignored

        Returns
        -------
        self
        """
        self.strategy_ = get_strategy(self.strategy)
        model = get_cost_model(self.cost_model, k=self.k)
        prices = _check_prices(self.prices)
        frame = validate_log(log, require_score=False) if log is not None else None
        if self.policies is not None:
            policies = [str(p) for p in self.policies]
        elif frame is not None:
            policies = sorted(frame["policy"].unique().to_list())
        elif prices:
            policies = sorted(prices)
        else:
            raise DataError("no pool: pass policies=[...], a log, or prices. Fix: name the policies to route between.")
        if not policies or len(set(policies)) != len(policies):
            raise DataError(f"policies must be non-empty and distinct, got {policies}.")
        costs = None
        if model.needs_costs:
            if frame is None or "cost" not in frame.columns:
                if not all(p in prices for p in policies):
                    raise DataError(
                        f"cost_model={self.cost_model!r} learns from the log's 'cost' column, but "
                        f"{'no log was given' if frame is None else 'the log has none'}. Fix: add a 'cost' "
                        "column, pass prices with cost_model='fixed', or use cost_model='unit'."
                    )
            else:
                costs = frame.select("policy", "prompt", "cost").filter(pl.col("policy").is_in(policies))
        self.cost_model_ = model.fit(policies, costs, prices, self._embed)
        self.policies_ = policies
        self.n_policies_ = len(policies)
        self._fit_shrink(frame, policies)
        return self

    # -- shrinkage toward a prior from the log
    def _fit_shrink(self, frame, policies):
        self.shrink_, self.prior_k_, self._prior = 0.0, None, {}
        self.__dict__.pop("shrink_scores_", None)
        if self.shrink is None:
            return
        cv_mode = isinstance(self.shrink, str)
        if cv_mode and self.shrink != "cv":
            raise V0liteError(f"shrink must be None, a weight in [0, 1] or 'cv', got {self.shrink!r}.")
        if not cv_mode:
            a = _float_knob("shrink", self.shrink)
            if not 0.0 <= a <= 1.0:
                raise V0liteError(f"shrink must be in [0, 1], got {a}. Fix: pass a weight in [0, 1], 'cv' or None.")
        if self.prior_k is not None and (isinstance(self.prior_k, bool) or int(self.prior_k) != self.prior_k
                                         or int(self.prior_k) < 1):
            raise V0liteError(f"prior_k must be None or an int >= 1, got {self.prior_k!r}.")
        if frame is None or "score" not in frame.columns:
            raise DataError("shrink needs the log's 'score' column (the prior is each policy's outcomes). "
                            "Fix: pass an outcome log with 'score' to fit, or shrink=None.")
        per = (frame.filter(pl.col("policy").is_in(policies))
               .group_by(["policy", "prompt"], maintain_order=True).agg(pl.col("score").mean()))
        if per.height == 0:
            raise DataError("the log has no outcome of the pool's policies. Fix: log outcomes of the pool.")
        texts = per["prompt"].unique(maintain_order=True).to_list()
        row = dict(zip(texts, range(len(texts))))
        emb = self._embed(texts)
        pr_rows = np.fromiter((row[t] for t in per["prompt"].to_list()), np.int64, per.height)
        col = {p: j for j, p in enumerate(policies)}
        pol_idx = np.fromiter((col[p] for p in per["policy"].to_list()), np.int64, per.height)
        y = per["score"].to_numpy().astype(np.float64)
        self._prior = {"emb": emb, "rows": {j: pr_rows[pol_idx == j] for j in np.unique(pol_idx)},
                       "y": {j: y[pol_idx == j] for j in np.unique(pol_idx)}}
        if not cv_mode:
            self.shrink_, self.prior_k_ = a, None if self.prior_k is None else int(self.prior_k)
            return
        self._choose_shrink(frame, per, pr_rows, pol_idx, y, emb, len(texts))

    def _choose_shrink(self, frame, per, pr_rows, pol_idx, y, emb, n_prompts):
        """Out-of-fold Brier of every (weight, prior_k); keep the best (ties: the smaller weight)."""
        folds = int(self.cv)
        if folds < 2 or folds > n_prompts:
            raise V0liteError(f"cv must be an int in [2, n_prompts={n_prompts}], got {self.cv!r}.")
        all_prompts = frame["prompt"].unique(maintain_order=True).to_list()
        fold_all = dict(zip(all_prompts, np.random.default_rng(self.random_state).permutation(len(all_prompts)) % folds))
        fold_of = np.fromiter((fold_all[t] for t in per["prompt"].unique(maintain_order=True).to_list()),
                              np.int64, n_prompts)
        ks = [16, 32, 64, 128, 256, 512] if self.prior_k is None else [int(self.prior_k)]
        grid_k: list[int | None] = [*ks, None]
        weights = np.linspace(0.0, 1.0, 11)
        p_oof = np.full(per.height, np.nan)
        prior_oof = {k: np.full(per.height, np.nan) for k in grid_k}
        row_fold = fold_of[pr_rows]
        frame_fold = np.fromiter((fold_all[t] for t in frame["prompt"].to_list()), np.int64, frame.height)
        for f in range(folds):
            part = frame.filter(pl.Series(frame_fold != f))  # a held-out prompt is cold for every policy
            X, yy = part.drop("score"), part["score"].to_numpy().astype(np.float64)
            seen = set(part["policy"].unique().to_list())
            ask = np.flatnonzero((row_fold == f) & np.isin(pol_idx, [j for j, p in enumerate(self.policies_)
                                                                      if p in seen]))
            if ask.size == 0:
                continue
            model = _clone(self.value_model).fit(X, yy)
            q = per[ask].select("policy", "prompt")
            p_oof[ask] = np.clip(np.asarray(model.predict(q), dtype=np.float64).reshape(-1), 0.0, 1.0)
            for j in np.unique(pol_idx[ask]):
                src = (pol_idx == j) & (row_fold != f)
                dst = ask[pol_idx[ask] == j]
                if not src.any():  # no outcome of j outside the fold: no prior to blend
                    continue
                prior_oof[None][dst] = y[src].mean()
                if ks:
                    means = _knn_prefix_means(emb[pr_rows[dst]], emb[pr_rows[src]], y[src], ks)
                    n_src = int(src.sum())
                    for k in ks:
                        prior_oof[k][dst] = means[min(k, n_src)]
        ok = np.isfinite(p_oof) & np.isfinite(prior_oof[None])
        if not ok.any():
            raise DataError("shrink='cv' found no prompt to predict out of fold. Fix: log more prompts per policy.")
        brier = np.array([[float(np.mean(((1 - a) * p_oof[ok] + a * prior_oof[k][ok] - y[ok]) ** 2))
                           for a in weights] for k in grid_k])
        best = brier.min()
        ki, ai = min(zip(*np.nonzero(brier <= best + 1e-12)), key=lambda t: (t[1], t[0]))
        self.shrink_, self.prior_k_ = float(weights[ai]), grid_k[ki] if ai > 0 else None
        self.shrink_scores_ = {"shrink": weights.tolist(), "prior_k": grid_k, "brier": brier.tolist()}

    def _prior_matrix(self, prompts: list[str], P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The prior of every prompt x policy pair, and a mask of the policies that have one."""
        prior = P.copy()
        has = np.zeros(P.shape[1], dtype=bool)
        q = None
        for j, rows in self._prior["rows"].items():
            yj = self._prior["y"][j]
            has[j] = True
            if self.prior_k_ is None or self.prior_k_ >= rows.size:
                prior[:, j] = yj.mean()
                continue
            if q is None:
                q = self._embed(prompts)
            prior[:, j] = _knn_mean(q, self._prior["emb"][rows], yj[:, None], self.prior_k_)[:, 0]
        return prior, has

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.embedder is None:
            from .embed import Embedder

            self.embedder = Embedder()
        return _normalise(self.embedder.encode(list(texts)))

    def _check_fitted(self):
        if not hasattr(self, "cost_model_"):
            raise NotFittedError("this Router is not fitted yet. Fix: call fit(log) first.")

    # -- prediction
    def predict_matrix(self, prompts) -> tuple[np.ndarray, np.ndarray]:
        """Success probabilities and predicted costs of every prompt x policy pair.

        Parameters
        ----------
        prompts : sequence of str, or a frame with a ``prompt`` column

        Returns
        -------
        P, C : ndarray of shape (n_prompts, n_policies)
            ``P`` from ``value_model.predict`` (clipped to [0, 1]; blended with the prior when
            ``shrink_ > 0``); ``C`` from the cost model.
        """
        self._check_fitted()
        prompts = _as_prompts(prompts)
        n, m = len(prompts), self.n_policies_
        if n == 0:
            return np.zeros((0, m)), np.zeros((0, m))
        X = pl.DataFrame({
            "policy": np.tile(np.asarray(self.policies_, dtype=object), n).tolist(),
            "prompt": np.repeat(np.asarray(prompts, dtype=object), m).tolist(),
        })
        p = np.asarray(self.value_model.predict(X), dtype=np.float64).reshape(-1)
        if p.shape[0] != n * m or not np.isfinite(p).all():
            raise V0liteError(
                f"value_model.predict returned {p.shape[0]} values (finite: {bool(np.isfinite(p).all())}) "
                f"for {n * m} rows. Fix: the value model must return one finite probability per row."
            )
        C = self.cost_model_.predict(prompts, self._embed)
        P = np.clip(p.reshape(n, m), 0.0, 1.0)
        if getattr(self, "shrink_", 0.0) > 0.0 and self._prior:
            prior, has = self._prior_matrix(prompts, P)
            P[:, has] = (1.0 - self.shrink_) * P[:, has] + self.shrink_ * prior[:, has]
        return P, C

    def _knob(self, knob: dict) -> float:
        s = self.strategy_
        names = {"knob", s.knob_name}
        unknown = sorted(set(knob) - names)
        if unknown or len(knob) > 1:
            raise V0liteError(
                f"strategy {s.name!r} takes one knob, {s.knob_name!r} (or 'knob'); got {sorted(knob)}. "
                f"Fix: pass e.g. {s.knob_name}=<value>."
            )
        if not knob:
            if s.default_knob is None:
                raise V0liteError(f"strategy {s.name!r} needs its knob {s.knob_name!r}. Fix: pass {s.knob_name}=<value>.")
            return s.default_knob
        return next(iter(knob.values()))

    def choose(self, P, C, **knob) -> np.ndarray:
        """Column indices chosen by the strategy for matrices ``P`` and ``C`` (one per row)."""
        self._check_fitted()
        return self.strategy_.choose(P, C, self._knob(knob))

    def route(self, prompts, **knob) -> np.ndarray:
        """Chosen policy name per prompt.

        Parameters
        ----------
        prompts : sequence of str, or a frame with a ``prompt`` column
        **knob
            The strategy's knob by name (``lam``, ``tau``, ``budget``, ``target``) or as
            ``knob=``; ``utility`` defaults to ``lam=0`` and ``threshold`` to ``tau=0.5``.

        Returns
        -------
        ndarray of str, shape (n_prompts,)
        """
        P, C = self.predict_matrix(prompts)
        idx = self.choose(P, C, **knob)
        return np.asarray(self.policies_, dtype=object)[idx]
