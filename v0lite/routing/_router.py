"""Router: send each prompt to one policy of a pool, from predicted success and cost.

A :class:`Router` asks a value model (anything with ``predict(X)``) for the success
probability of every prompt x policy pair, asks its cost model for the cost of every pair,
and lets a strategy (:mod:`._strategies`) pick one policy per prompt from the two matrices.

Shrinkage (``Router(shrink=...)``) toward a prior from the router's own log is in :mod:`._shrink`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator

from .._threads import WriterLockMixin, pin_of, pinned, publish_lock, unpin, writer_lock
from ..exceptions import (
    DataError,
    NotFittedError,
    ParameterError,
    UnpricedPolicyWarning,
    V0liteError,
    V0liteWarning,
)
from ..log import as_frame, validate_log
from ._costs import _check_prices, get_cost_model
from ._knn import _normalise
from ._pool import _history_policies, default_pool, ignored_prices, warn_unused_prices
from ._shrink import fit_shrink, prior_matrix
from ._strategies import get_strategy

__all__ = ["Router"]


def _as_prompts(prompts) -> list[str]:
    at = "prompt"  # a frame's prompts are named by column and row, as a log's are
    if isinstance(prompts, str):
        raise DataError("prompts must be a list of texts, got one string. Fix: wrap it in a list.")
    if isinstance(prompts, (pl.DataFrame, pl.LazyFrame)) or type(prompts).__name__ == "DataFrame":
        frame = as_frame(prompts)
        if "prompt" not in frame.columns:
            raise DataError(f"no 'prompt' column (columns present: {frame.columns}). Fix: add a 'prompt' column.")
        prompts, at = frame["prompt"], "column 'prompt', row"
    out = list(prompts.to_list() if hasattr(prompts, "to_list") else prompts)
    for i, t in enumerate(out):
        if not isinstance(t, str) or not t.strip():
            raise DataError(f"{at} {i}: {t!r} is not a non-empty text. Fix: give every prompt as a non-empty string.")
    return out


def _own_predict(vm) -> bool:
    """Whether ``vm`` predicts with V0Regressor's own predict (not overridden, not patched): see Router._pool."""
    from ..estimator import V0Regressor

    return getattr(getattr(vm, "predict", None), "__func__", None) is V0Regressor.predict


class Router(WriterLockMixin, BaseEstimator):
    """Route each prompt to one policy of a pool from predicted success and predicted cost.

    Parameters
    ----------
    value_model : object with ``predict(X)``
        Gives success probabilities in [0, 1] for a frame ``X`` with ``policy`` and ``prompt``
        (e.g. a fitted :class:`v0lite.estimator.V0Regressor`). Used as is (not fitted here).
    policies : list of str, optional
        The pool, in column order of ``P``/``C``. Default: every policy in the log (sorted),
        or, fitting without a log, the keys of ``prices`` the value model has history for
        (when it says which: a ``V0Regressor``). There, a fitted policy without a price stays
        out of the pool with a :class:`V0liteWarning` naming it (pass ``policies`` to choose
        the pool without one); a priced policy without history does not join at fit: its price
        is kept for :meth:`add_history`, where its outcomes let it join.
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
    embedder_ : object with ``encode(texts)`` or None
        The embedder in use: ``embedder``, or a default :class:`v0lite.embed.Embedder` built on
        first need (``fit`` never changes the ``embedder`` parameter).
    strategy_ : strategy instance
    cost_model_ : fitted cost model
    shrink_ : float
        The blend weight in use (0 when ``shrink`` is None).
    prior_k_ : int or None
        The prior's neighbours in use.
    added_prices_ : dict
        Policies that joined the pool after ``fit`` through :meth:`add_history`, with their cost
        per call (their columns come last in ``policies_``; the cost model prices the others).
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

    def __init__(
        self,
        value_model,
        *,
        policies=None,
        strategy="utility",
        cost_model="knn",
        prices=None,
        embedder=None,
        k=16,
        shrink=None,
        prior_k=None,
        cv=5,
        random_state=0,
    ):
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

    def __sklearn_clone__(self):
        """An unfitted copy that keeps the same (fitted) value model.

        The router uses its value model as is and never fits it, so ``sklearn.base.clone``
        copying it unfitted would only make ``route`` fail later; the other parameters are
        cloned as usual.
        """
        from sklearn.base import clone

        from .._model_params import keep_sklearn_config

        params = self.get_params(deep=False)
        value_model = params.pop("value_model")
        return keep_sklearn_config(
            self, type(self)(value_model, **{k: clone(v, safe=False) for k, v in params.items()})
        )

    def _check_value_model(self):
        vm = self.value_model
        if not callable(getattr(vm, "predict", None)):
            raise V0liteError(
                f"value_model must have predict(X), got {type(vm).__name__}. "
                "Fix: pass a fitted V0Regressor or any object with predict(X) -> probabilities."
            )
        if hasattr(vm, "get_params") and hasattr(vm, "fit"):  # a scikit-learn style estimator: fitted?
            from sklearn.exceptions import NotFittedError as SkNotFitted
            from sklearn.utils.validation import check_is_fitted

            try:
                check_is_fitted(vm)
            except SkNotFitted as exc:
                raise NotFittedError(
                    f"value_model {type(vm).__name__} is not fitted; the Router uses it as is. "
                    "Fix: fit the value model first, e.g. V0Regressor().fit(log)."
                ) from exc
            except TypeError:  # not an estimator after all: nothing to check
                pass

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
        self._check_value_model()
        self.embedder_ = self.embedder
        self._emb_width = None  # set by the first embedding: a refit may use another embedder
        self.strategy_ = get_strategy(self.strategy)
        model = get_cost_model(self.cost_model, k=self.k)
        prices = _check_prices(self.prices)
        frame = validate_log(log, require_score=False) if log is not None else None
        if isinstance(self.policies, str):  # would be read as its characters
            raise DataError(
                f"policies must be a list of names, got one str ({self.policies[:40]!r}). "
                f"Fix: Router(..., policies=[{self.policies[:40]!r}])."
            )
        if self.policies is not None:
            policies = [str(p) for p in self.policies]
        elif frame is not None:
            policies = sorted(frame["policy"].unique().to_list())
        elif prices:
            policies = default_pool(self.value_model, prices)
        else:
            raise DataError("no pool: pass policies=[...], a log, or prices. Fix: name the policies to route between.")
        if not policies or len(set(policies)) != len(policies):
            raise DataError(f"policies must be non-empty and distinct, got {policies}.")
        costs = None
        if getattr(model, "needs_costs", True):
            if frame is None or "cost" not in frame.columns:
                if not all(p in prices for p in policies):
                    raise DataError(
                        f"cost_model={self.cost_model!r} learns from the log's 'cost' column, but "
                        f"{'no log was given' if frame is None else 'the log has none'}. Fix: add a 'cost' "
                        "column, pass prices with cost_model='fixed', or use cost_model='unit'."
                    )
            else:
                costs = frame.select("policy", "prompt", "cost").filter(pl.col("policy").is_in(policies))
        # before the work: a typo is said, not dropped (_also_known: route_eval's logged models outside the pool)
        warn_unused_prices(prices, policies, self.value_model, also_known=getattr(self, "_also_known", ()))
        cost_model = model.fit(policies, costs, prices, self._embed)
        with publish_lock(self):  # the pool, its costs and its joined prices together (see _pool)
            self.cost_model_, self.policies_, self.n_policies_ = cost_model, policies, len(policies)
            self.added_prices_ = {}
        fit_shrink(self, frame, policies)
        self._set_after_fit = set()
        return self

    # -- online: outcomes and models that arrive after fit
    def join_costs(self, policies, prices=None, *, log=None) -> tuple[dict, list]:
        """The cost per call at which each of ``policies`` would join the pool, and those with none.

        The order :meth:`add_history` uses: ``prices``, else the router's ``prices``, else the
        1 for ``cost_model="unit"`` (the pool's unit: a logged USD cost would not be comparable), else the
        mean of the policy's ``cost`` in ``log`` (a checked outcome frame). Policies already in the pool are
        skipped.

        Returns
        -------
        joining : dict
            Policy -> cost per call.
        unpriced : list
            Policies without a known cost (they would reach the value model only).
        """
        self._check_fitted()
        prices = _check_prices(prices)
        if isinstance(policies, str):  # would be read as its characters
            raise DataError(
                f"policies must be a list of names, got one str ({policies[:40]!r}). "
                f"Fix: join_costs([{policies[:40]!r}])."
            )
        known = _check_prices(self.prices)
        logged: dict = {}  # each policy's mean logged cost, one pass over the log
        if log is not None and "cost" in log.columns:
            logged = dict(log.group_by("policy").agg(pl.col("cost").drop_nulls().mean()).iter_rows())
        joining: dict[str, float] = {}
        unpriced = []
        for p in dict.fromkeys(policies):
            if p in self.policies_:
                continue
            if p in prices:
                joining[p] = prices[p]
            elif p in known:
                joining[p] = known[p]
            elif getattr(self.cost_model_, "name", None) == "unit":  # the pool's unit: a logged USD cost is not
                joining[p] = 1.0
            elif logged.get(p) is not None:
                joining[p] = float(logged[p])
            else:
                unpriced.append(p)
        return joining, unpriced

    def add_history(self, log, y=None, *, prices=None, join=True) -> "Router":
        """Add outcomes to the value model (no refit); a new model may join the pool.

        The rows go to ``value_model.add_history`` (a :class:`v0lite.V0Regressor` grows its
        context; no learned parameter changes). With ``join=True``, a policy of ``log`` that is
        not in the pool joins it when its cost per call is known: from ``prices``, else the
        router's ``prices``, else the mean of its rows' ``cost`` in ``log`` (``cost_model="unit"``:
        1). Its column comes last; the cost model is not refitted (the new policy's cost is
        that constant). A policy without a known cost is added to the value model only, with a
        :class:`V0liteWarning` naming it.

        Everything is checked before anything changes: if this call fails, the router and its
        value model are as before.

        Parameters
        ----------
        log : path or DataFrame
            Outcome rows: ``policy``, ``prompt``, ``score`` (or ``y``), optionally ``step``, ``n``,
            ``cost``.
        y : array-like, optional
            Success rates, when ``log`` has no ``score`` column.
        prices : dict, optional
            Policy -> cost per call of policies joining the pool. An entry for a policy already in
            the pool (its cost comes from the cost model, or the price it joined at), for one
            without rows in ``log``, or any entry with ``join=False`` is ignored, with a
            :class:`V0liteWarning` naming it.
        join : bool, default True
            Let new policies join the pool.

        Returns
        -------
        self
        """
        self._check_fitted()
        if not callable(getattr(self.value_model, "add_history", None)):
            raise V0liteError(
                f"value_model {type(self.value_model).__name__} has no add_history(X, y), so outcomes cannot "
                "reach it. Fix: use a V0Regressor, or add an add_history method to your value model."
            )
        if not isinstance(join, (bool, np.bool_)):  # "no" would read as True, None as False
            raise ParameterError(f"join must be True or False, got {join!r}. Fix: pass join=True or join=False.")
        from ..estimator import _with_y  # the one check of a separate y (length, numbers)

        frame = validate_log(_with_y(log, y))
        seen = frame["policy"].unique(maintain_order=True).to_list()
        with writer_lock(self):  # writers one at a time: each joins the pool the last one published
            new = [p for p in seen if p not in self.policies_]
            joining, unpriced = self.join_costs(new if join else [], prices, log=frame)
            ignored = ignored_prices(self, _check_prices(prices), seen, join)
            cols = [c for c in ("policy", "prompt", "score", "step", "n") if c in frame.columns]
            data, vm = frame.select(cols), self.value_model
            with pinned(self, (lambda: (vm.index_, vm.head_)) if _own_predict(vm) else None):  # see _pool
                vm.add_history(data.drop("score"), data["score"].to_numpy())
                with publish_lock(self):  # pool, prices, the value model's index (pinned until now): before or after
                    if joining:
                        self.added_prices_ = {**getattr(self, "added_prices_", {}), **joining}
                        self.policies_ = [*self.policies_, *joining]
                        self.n_policies_ = len(self.policies_)
                    unpin(self)
        import warnings

        if ignored:
            warnings.warn(
                f"add_history ignored prices entries: {'; '.join(ignored)}. Fix: pass prices only for the policies "
                "of these rows that join the pool (a pool policy's cost changes by fitting the router again).",
                V0liteWarning,
                stacklevel=2,
            )
        if unpriced:
            wanted = ", ".join(f"{p!r}: <cost per call>" for p in unpriced)
            warnings.warn(
                f"policies {unpriced} have outcomes but no known cost per call, so they did not join the pool. "
                f"Fix: pass prices={{{wanted}}} or log a 'cost' column.",
                UnpricedPolicyWarning,
                stacklevel=2,
            )
        return self

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if getattr(self, "embedder_", None) is None:
            from ..embed import Embedder

            self.embedder_ = Embedder()
        out = _normalise(self.embedder_.encode(list(texts)))
        width = getattr(self, "_emb_width", None)
        if out.ndim == 2 and len(out) and width is not None and out.shape[1] != width:
            raise V0liteError(
                f"the router's embedder gives {out.shape[1]}-wide vectors, but the router was fitted with {width}-wide "
                "ones (its cost model's and prior's prompts). Fix: pass the embedder it was fitted with "
                "(Router.load(path, embedder=...)), or fit the router again with this one."
            )
        if out.ndim == 2 and len(out):
            self._emb_width = out.shape[1]
        return out

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
        return self._predict_matrix(_as_prompts(prompts), self._pool())

    def _pool(self) -> tuple[list, dict, object, tuple | None]:
        """The pool, the prices of its joined policies, the cost model and the value model's (index, head) (None
        unless :func:`_own_predict`), read once per call (route, predict_matrix).

        :meth:`add_history`, :meth:`set_prices` and :meth:`fit` assign these under :func:`publish_lock`
        and they are read here under it, so a call running while a policy joins or the prices change
        answers for the router before or after, never a mix (old prices for some columns, new for others;
        the value model's new index with the old pool: add_history pins its old one, ``_threads.pinned``).
        """
        vm, own = self.value_model, _own_predict(self.value_model)
        with publish_lock(self):
            policies, added, cost_model = self.policies_, getattr(self, "added_prices_", {}), self.cost_model_
            state = (pin_of(self) or (vm.index_, vm.head_)) if own else None
        return policies, {p: added[p] for p in policies if p in added}, cost_model, state

    def _predict_matrix(self, prompts: list[str], pool: tuple) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_matrix` of checked ``prompts`` for the pool snapshot ``pool`` (:meth:`_pool`)."""
        n, m = len(prompts), len(pool[0])
        if n == 0:
            return np.zeros((0, m)), np.zeros((0, m))
        X = pl.DataFrame(
            {
                "policy": np.tile(np.asarray(pool[0], dtype=object), n).tolist(),
                "prompt": np.repeat(np.asarray(prompts, dtype=object), m).tolist(),
            }
        )
        vm, state = self.value_model, pool[3]
        p = np.asarray(vm.predict(X) if state is None else vm._predict_on(X, *state), dtype=np.float64).reshape(-1)
        if p.shape[0] != n * m or not np.isfinite(p).all():
            raise V0liteError(
                f"value_model.predict returned {p.shape[0]} values (finite: {bool(np.isfinite(p).all())}) "
                f"for {n * m} rows. Fix: the value model must return one finite probability per row."
            )
        return self._combine(prompts, p, pool)

    def _combine(self, prompts: list[str], p: np.ndarray, pool=None) -> tuple[np.ndarray, np.ndarray]:
        """``P`` and ``C`` of ``prompts`` from the value model's flat predictions ``p`` (prompt-major):
        costs, added prices, clipping and shrinkage; for the pool snapshot ``pool`` (default: read now)."""
        policies, added, cost_model = (self._pool() if pool is None else pool)[:3]
        n, m = len(prompts), len(policies)
        C = cost_model.predict(prompts, self._embed)
        if added:  # policies that joined after fit: a constant cost per call each
            C = np.hstack([C, np.tile(np.fromiter(added.values(), np.float64, len(added)), (n, 1))])
        P = np.clip(p.reshape(n, m), 0.0, 1.0)
        if getattr(self, "shrink_", 0.0) > 0.0 and self._prior:
            prior, has = prior_matrix(self, prompts, P)
            P[:, has] = (1.0 - self.shrink_) * P[:, has] + self.shrink_ * prior[:, has]
        return P, C

    def _knob(self, knob: dict) -> float:
        s = self.strategy_
        # a duck-typed strategy may lack the attributes of the Strategy base class
        name, knob_name = getattr(s, "name", type(s).__name__), getattr(s, "knob_name", "knob")
        default_knob = getattr(s, "default_knob", None)
        names = {"knob", knob_name}
        unknown = sorted(set(knob) - names)
        if unknown or len(knob) > 1:
            raise V0liteError(
                f"strategy {name!r} takes one knob, {knob_name!r} (or 'knob'); got {sorted(knob)}. "
                f"Fix: pass e.g. {knob_name}=<value>."
            )
        if not knob:
            if default_knob is None:
                raise V0liteError(f"strategy {name!r} needs its knob {knob_name!r}. Fix: pass {knob_name}=<value>.")
            return default_knob
        return next(iter(knob.values()))

    def choose(self, P, C, **knob) -> np.ndarray:
        """Column indices chosen by the strategy for matrices ``P`` and ``C`` (one per row)."""
        self._check_fitted()
        self._check_strategy_fitted()
        return self.strategy_.choose(P, C, self._knob(knob))

    def set_params(self, **params) -> "Router":
        """Set parameters (scikit-learn); on a fitted router they take effect at the next :meth:`fit`."""
        super().set_params(**params)
        if hasattr(self, "cost_model_"):
            self._set_after_fit = {*getattr(self, "_set_after_fit", ()), *params}
        return self

    def _check_strategy_fitted(self) -> None:
        """``set_params(strategy=...)`` after fit takes effect at the next fit: say so, never route silently."""
        if "strategy" not in getattr(self, "_set_after_fit", ()):
            return
        s = self.strategy
        try:
            wanted = get_strategy(s).name
        except V0liteError:
            wanted = s
        used = getattr(self.strategy_, "name", None)
        if wanted != used:
            raise V0liteError(
                f"strategy={getattr(s, 'name', s)!r} was set after fit; the fitted router still routes with "
                f"{used!r}. Fix: call set_strategy({wanted!r}) to route with it (no refit needed), or "
                f"set_params(strategy={used!r}) to keep the fitted one."
            )

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
        self._check_fitted()
        pool = self._pool()  # one pool for P, C and the names: a policy may join meanwhile
        P, C = self._predict_matrix(_as_prompts(prompts), pool)
        idx = self.choose(P, C, **knob)
        return np.asarray(pool[0], dtype=object)[idx]

    def predict(self, prompts, **knob) -> np.ndarray:
        """Same as :meth:`route` (the scikit-learn name)."""
        return self.route(prompts, **knob)

    def set_prices(self, prices) -> "Router":
        """Price every pool model at a fixed cost per call, in place of the costs the router learned.

        The strategy, the pool and the value model are kept; only the cost side changes, as with a
        router fitted with ``cost_model="fixed"`` at these prices. Models that joined after ``fit``
        (:meth:`add_history`) keep their own columns, last, at their new price. The parameters
        follow (``cost_model="fixed"``, ``prices`` these prices), so a saved and loaded router, and a
        later :meth:`fit`, route at them too.

        Parameters
        ----------
        prices : dict
            Policy -> cost per call (>= 0) for every model in ``policies_``. A name the value model has
            history for but the pool lacks (added with ``add_history(..., join=False)``, or left out
            at fit for want of a price) joins the pool at its price, its column last. Other names are
            checked like the rest and kept in ``prices`` (a :class:`V0liteWarning` names them, with the
            known name meant by a misspelt one): a model of that name joins at it through :meth:`add_history`.

        Returns
        -------
        self
        """
        self._check_fitted()
        prices = _check_prices(prices)
        with writer_lock(self):  # not amid an add_history: the pool checked is the pool priced
            missing = [p for p in self.policies_ if p not in prices]
            if missing:
                raise DataError(
                    f"prices has no price for {len(missing)} of the {len(self.policies_)} pool models: {missing}. "
                    "Fix: give every pool model a cost per call."
                )
            held = _history_policies(self.value_model) or set()
            joining = [p for p in prices if p not in self.policies_ and p in held]  # as add_history would join it
            added = [*getattr(self, "added_prices_", {}), *joining]
            fitted = [p for p in self.policies_ if p not in added]
            cost_model = get_cost_model("fixed").fit(fitted, None, prices, self._embed)
            with publish_lock(self):  # both cost sides at once: a route never reads new costs beside old prices
                self.cost_model_, self.added_prices_ = cost_model, {p: prices[p] for p in added}
                self.cost_model, self.prices = "fixed", dict(prices)
                self.policies_ = [*self.policies_, *joining]
                self.n_policies_ = len(self.policies_)
        warn_unused_prices(prices, self.policies_, self.value_model)
        return self

    def set_strategy(self, strategy) -> "Router":
        """Route with another strategy, keeping all else that was fitted (pool, costs, prior, value model).

        A strategy learns nothing at :meth:`fit` (it picks from ``P`` and ``C`` alone), so this routes as
        ``set_params(strategy=strategy)`` and a refit would, without the log: a loaded router can change it.
        The parameter follows, so a saved and loaded router, and a later :meth:`fit`, route with it too.

        Parameters
        ----------
        strategy : str or strategy object
            A name in :data:`STRATEGIES`, or an object with ``choose`` and ``knob_grid``.

        Returns
        -------
        self
        """
        self._check_fitted()
        fitted = get_strategy(strategy)  # as fit makes it: an unknown name is refused with the valid ones
        self.strategy, self.strategy_ = strategy, fitted
        self._set_after_fit = {*getattr(self, "_set_after_fit", ())} - {"strategy"}  # no longer pending a refit
        return self

    # -- persistence
    def save(self, path) -> None:
        """Save the fitted router to folder ``path`` without pickle (see :mod:`._router_folder`).

        The value model is saved inside (``value_model/``, its own model folder) when it has
        ``save(path)``; the embedder is not saved (pass it again to :meth:`load`).
        """
        self._check_fitted()
        from ._router_folder import save_router

        save_router(self, path)

    @classmethod
    def load(cls, path, *, value_model=None, embedder=None, encoder=None) -> "Router":
        """Load a router saved with :meth:`save`; loading runs no code from the files.

        Parameters
        ----------
        path : str or Path
        value_model : object with ``predict(X)``, optional
            Required when the saved router's value model could not be saved; otherwise the
            saved one (a :class:`v0lite.estimator.V0Regressor`) is loaded.
        embedder : object with ``encode(texts)``, optional
            The embedder to use (default: :class:`v0lite.embed.Embedder`, built on first need).
        encoder : str, optional
            The saved value model's encoder folder, when the folder it was fitted with has moved
            (``V0Regressor.load(..., encoder=)``: checked by its files' fingerprint).
        """
        from ._router_folder import load_router

        return load_router(cls, path, value_model=value_model, embedder=embedder, encoder=encoder)
