"""Cost models: the predicted cost of every prompt x policy pair.

``knn`` (per policy, a linear fit of cost on prompt length plus the mean residual of the ``k``
nearest training prompts of that policy, by prompt-embedding cosine similarity; a policy with
at most ``k`` distinct prompts, or with one constant cost, gets its mean cost), ``mean`` (the
policy's mean cost), ``fixed`` (a ``prices`` dict, USD per call) and ``unit`` (every call costs 1).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import polars as pl

from .._registry import lookup
from ..exceptions import DataError, ParameterError
from ._knn import _knn_mean
from ._strategies import _cost_tie

__all__ = [
    "CostModel",
    "COST_MODEL_PROTOCOL",
    "COST_MODELS",
    "get_cost_model",
    "KnnCost",
    "MeanCost",
    "FixedCost",
    "UnitCost",
]


def _check_prices(prices: Mapping[str, float] | None) -> dict[str, float]:
    if prices is None:
        return {}
    if not isinstance(prices, Mapping):
        raise DataError(f"prices must be a dict policy -> cost per call, got {type(prices).__name__}.")
    out = {}
    for k, v in prices.items():
        if isinstance(v, (bool, np.bool_, str, bytes)):  # float() would read True as 1 and "0.5" as 0.5
            raise DataError(f"prices[{k!r}] = {v!r} is not a number. Fix: give a cost >= 0 per call, as a number.")
        try:
            f = float(v)
        except (TypeError, ValueError) as exc:
            raise DataError(f"prices[{k!r}] = {v!r} is not a number. Fix: give a cost >= 0 per call.") from exc
        if not math.isfinite(f) or f < 0:
            raise DataError(f"prices[{k!r}] = {v!r} is not a finite cost >= 0. Fix: give a cost >= 0 per call.")
        out[str(k)] = f
    return out


class CostModel:
    """Base class of the cost models, and the way to add your own.

    Subclass it (or write any class with ``fit`` and ``predict``; the router only calls these)
    and pass an instance as ``Router(cost_model=...)``; the router fits a copy, never your object:

    * ``fit(policies, costs, prices, embed) -> self`` -- ``costs`` is a polars frame with one row
      per (policy, prompt) and a ``cost`` column (None when the log has none), ``prices`` a dict
      policy -> cost per call, ``embed`` maps a list of texts to L2-normalised rows;
    * ``predict(prompts, embed) -> ndarray (n_prompts, n_policies)``;
    * optional: ``needs_costs`` (default True: fit wants the log's ``cost`` column), ``name``,
      and ``get_state``/``set_state`` for :meth:`Router.save` (this base class saves ``mean_``).

    Examples
    --------
    >>> class Flat(CostModel):
    ...     name, needs_costs = "flat", False
    ...     def fit(self, policies, costs, prices, embed):
    ...         self.mean_ = np.full(len(policies), 2.0)
    ...         return self
    >>> Flat().fit(["a", "b"], None, {}, None).predict(["x"], None).tolist()
    [[2.0, 2.0]]
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

    def get_state(self) -> tuple[dict, dict]:
        """The fitted state as (JSON-ready meta, numeric arrays), for the router folder."""
        return {}, {"mean": np.asarray(self.mean_, dtype=np.float64)}

    def set_state(self, meta: dict, arrays: dict):
        """Restore what :meth:`get_state` returned; returns self."""
        self.mean_ = arrays["mean"]
        return self


class MeanCost(CostModel):
    """Each policy's mean cost per call in the log (``prices`` for policies absent from it)."""

    name = "mean"

    def fit(self, policies, costs, prices, embed):
        self.mean_ = self._policy_means(policies, costs, prices)
        return self


class FixedCost(CostModel):
    """The user's ``prices`` (policy -> cost per call); every policy must have one."""

    name = "fixed"
    needs_costs = False

    def fit(self, policies, costs, prices, embed):
        missing = [p for p in policies if p not in prices]
        if missing:
            raise DataError(
                f"cost_model='fixed' needs a price for every policy; missing {missing}. Fix: add them to prices."
            )
        self.mean_ = np.array([prices[p] for p in policies], dtype=np.float64)
        return self


class UnitCost(CostModel):
    """Every call costs 1 (for logs without costs: strategies then trade success only)."""

    name = "unit"
    needs_costs = False

    def fit(self, policies, costs, prices, embed):
        self.mean_ = np.ones(len(policies))
        return self


class KnnCost(CostModel):
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
            if sub.height <= self.k or np.ptp(c) <= _cost_tie(c[None, :]):  # constant up to rounding, any unit
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

    def get_state(self) -> tuple[dict, dict]:
        meta, arrays = super().get_state()
        meta["floor"] = {str(j): floor for j, (_, _, _, floor) in self.knn_.items()}
        if self.train_emb_ is not None:
            arrays["train_emb"] = self.train_emb_
        for j, (rows, resid, coef, _) in self.knn_.items():
            arrays[f"knn.{j}.rows"], arrays[f"knn.{j}.resid"], arrays[f"knn.{j}.coef"] = rows, resid, coef
        return meta, arrays

    def set_state(self, meta: dict, arrays: dict):
        super().set_state(meta, arrays)
        self.train_emb_ = arrays.get("train_emb")
        self.knn_ = {
            int(j): (arrays[f"knn.{j}.rows"], arrays[f"knn.{j}.resid"], arrays[f"knn.{j}.coef"], float(f))
            for j, f in meta["floor"].items()
        }
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


COST_MODELS: dict[str, type[CostModel]] = {
    KnnCost.name: KnnCost,
    MeanCost.name: MeanCost,
    FixedCost.name: FixedCost,
    UnitCost.name: UnitCost,
}


#: what an object needs to be used as a cost model without subclassing :class:`CostModel`
COST_MODEL_PROTOCOL = ("fit", "predict")


def get_cost_model(name, *, k: int = 16) -> CostModel:
    """Return an unfitted cost model by name (a copy of an object with ``fit``/``predict``).

    Raises
    ------
    ParameterError
        For an unknown name (the message lists the valid names), or a ``knn`` ``k`` that is not an int >= 1.
    """
    entry = lookup(COST_MODELS, name, "cost model", COST_MODEL_PROTOCOL)
    if entry is KnnCost and (isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1):
        raise ParameterError(
            f"k (the knn cost model's neighbours) must be an int >= 1, got {k!r}. Fix: pass e.g. k=16."
        )
    if not isinstance(name, str):
        import copy

        return copy.deepcopy(entry)  # fitting must not change the user's object (a Router parameter)
    return entry(k=k) if entry is KnnCost else entry()
