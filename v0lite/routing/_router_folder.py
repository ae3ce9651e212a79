"""The router folder: a fitted :class:`Router` saved without pickle, in the model folder's style.

Layout::

    meta.json            format "v0lite-router" + version, parameters, pool, strategy, shrink,
                         cost-model meta, sha256 of every file (checked on load)
    arrays.safetensors   the cost model's arrays and the shrinkage prior's (numeric only)
    value_model/         the value model's own folder (when it has ``save``), e.g. a V0Regressor

Written to a temporary folder and renamed into place (:func:`v0lite.persist.write_folder`).
"""

from __future__ import annotations

import math
from pathlib import Path

from .._io import load_arrays, save_arrays, to_jsonable
from ..exceptions import DataError, FormatVersionError, V0liteError
from ..persist import ROUTER_FIX, ROUTER_FORMAT, _int, check_saved_params, read_folder, write_folder
from ._costs import COST_MODELS, _check_prices, get_cost_model
from ._strategies import STRATEGIES, get_strategy

__all__ = ["save_router", "load_router", "ROUTER_FORMAT", "ROUTER_FORMAT_VERSION"]

ROUTER_FORMAT_VERSION = 1


class _NoValueModel(V0liteError):
    """The router's value model was not saved with it (it has no ``save``): the caller must pass it."""


def _object_id(v):
    return getattr(v, "model_id", type(v).__name__)


def save_router(router, path) -> Path:
    """Write fitted ``router`` to folder ``path`` atomically."""
    for kind, obj, table in (
        ("strategy", router.strategy_, STRATEGIES),
        ("cost model", router.cost_model_, COST_MODELS),
    ):
        if getattr(obj, "name", None) not in table or not isinstance(obj, table[obj.name]):
            raise V0liteError(
                f"a router with a custom {kind} ({type(obj).__name__}) cannot be saved: load could not "
                f"rebuild it from its name. Fix: use a {kind} of {sorted(table)} to save the router."
            )
    cost_meta, arrays = router.cost_model_.get_state()
    arrays = {f"cost.{k}": v for k, v in arrays.items()}
    prior = router._prior
    if prior:
        arrays["prior.emb"] = prior["emb"]
        for j in prior["rows"]:
            arrays[f"prior.{j}.rows"], arrays[f"prior.{j}.y"] = prior["rows"][j], prior["y"][j]
    params = router.get_params(deep=False)
    params.pop("value_model")
    params["strategy"] = router.strategy_.name
    params["cost_model"] = router.cost_model_.name
    vm = router.value_model
    meta = {
        "params": to_jsonable(params, default=_object_id),
        "policies": list(router.policies_),
        "cost_model": {"name": router.cost_model_.name, "meta": to_jsonable(cost_meta)},
        "added_prices": [[k, float(v)] for k, v in getattr(router, "added_prices_", {}).items()],
        "shrink": router.shrink_,
        "prior_k": router.prior_k_,
        "prior_columns": sorted(int(j) for j in prior.get("rows", {})),
        "shrink_scores": to_jsonable(getattr(router, "shrink_scores_", None)),
        "value_model": {"class": type(vm).__name__, "saved": callable(getattr(vm, "save", None))},
    }

    def fill(tmp: Path) -> None:
        save_arrays(tmp / "arrays.safetensors", arrays)
        if meta["value_model"]["saved"]:
            vm.save(tmp / "value_model")

    return write_folder(path, fill, meta, format_name=ROUTER_FORMAT, format_version=ROUTER_FORMAT_VERSION)


_FIX = f"Fix: {ROUTER_FIX} with this v0lite."


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# Router's parameters as meta.json stores them: name -> (check, what it must be); the embedder is saved as
# its object's id and never read back (the caller passes it to load)
_PARAMS = {
    "policies": (lambda v: v is None or (isinstance(v, list) and all(isinstance(p, str) for p in v)), "names or null"),
    "strategy": (lambda v: v in STRATEGIES, f"one of {sorted(STRATEGIES)}"),
    "cost_model": (lambda v: v in COST_MODELS, f"one of {sorted(COST_MODELS)}"),
    "prices": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    "embedder": (lambda v: True, ""),
    "k": (lambda v: _int(v) and 1 <= v < 2**31, "an integer in [1, 2^31)"),
    "shrink": (lambda v: v is None or v == "cv" or (_number(v) and 0 <= v <= 1), "null, 'cv' or a number in [0, 1]"),
    "prior_k": (lambda v: v is None or (_int(v) and v >= 1), "null or an integer >= 1"),
    "cv": (lambda v: _int(v) and 2 <= v < 2**31, "an integer >= 2"),
    "random_state": (lambda v: v is None or (_int(v) and -(2**63) <= v < 2**64), "an integer or null"),
}


def check_router_meta(meta: dict, arrays: dict, path, value_model=None) -> None:
    """Check every value of a router folder that routing will use, before it uses any.

    ``value_model`` is the one loaded from the folder (None when the caller passes its own): the
    pool must be policies it has history for, unless its ``fallback`` predicts unseen ones.

    Raises
    ------
    FormatVersionError
        A parameter of the wrong type or range (``shrink`` outside [0, 1], ``prior_k`` < 1, ``k``),
        a pool that is not distinct names or does not match the value model's, ``added_prices``
        that are not the pool's last policies at finite costs >= 0, or arrays of the wrong shape,
        type or range (per-policy arrays not as long as the pool, row indices beyond the stored
        prompts, prior scores outside [0, 1], negative or non-finite costs, embeddings of two widths),
        each named with its value and the fix.
    """
    import numpy as np

    mfile = Path(path) / "meta.json"

    def bad(what: str) -> FormatVersionError:
        return FormatVersionError(f"{mfile}: {what}. {_FIX}")

    check_saved_params(meta, _PARAMS, bad)
    params = meta["params"]
    try:
        _check_prices(params.get("prices"))
    except DataError as exc:  # the router's fix, not the one _check_prices gives a caller passing prices
        raise bad(f"parameter 'prices': {str(exc).partition(' Fix:')[0].rstrip('.')}") from exc
    policies = meta.get("policies")
    if not isinstance(policies, list) or not policies or not all(isinstance(p, str) for p in policies):
        raise bad("'policies' is not a non-empty list of names")
    if len(set(policies)) != len(policies):
        raise bad("'policies' names a policy twice")
    vm = meta.get("value_model")
    if not isinstance(vm, dict) or not isinstance(vm.get("class"), str) or not isinstance(vm.get("saved"), bool):
        raise bad("'value_model' is not an object with its class and whether it was saved")
    added = meta.get("added_prices", [])
    if not isinstance(added, list) or not all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and _number(e[1]) and e[1] >= 0 for e in added
    ):
        raise bad("'added_prices' is not a list of [policy, cost per call >= 0] pairs")
    n_fit = len(policies) - len(added)
    if n_fit < 1 or [e[0] for e in added] != policies[n_fit:]:
        raise bad(f"'added_prices' names {[e[0] for e in added]}, not the last policies of the pool {policies}")
    shrink, prior_k = meta.get("shrink"), meta.get("prior_k")
    if not (_number(shrink) and 0 <= shrink <= 1):
        raise bad(f"'shrink' is {shrink!r}, not a weight in [0, 1]")
    if not (prior_k is None or (_int(prior_k) and prior_k >= 1)):
        raise bad(f"'prior_k' is {prior_k!r}, not null or an integer >= 1")
    cols = meta.get("prior_columns")
    if not isinstance(cols, list) or not all(_int(j) and 0 <= j < n_fit for j in cols) or len(set(cols)) != len(cols):
        raise bad(f"'prior_columns' is {str(cols)[:60]!r}, not distinct columns of the {n_fit} fitted policies")
    if not (meta.get("shrink_scores") is None or isinstance(meta.get("shrink_scores"), dict)):
        raise bad("'shrink_scores' is not an object or null")
    cost = meta.get("cost_model")
    if (
        not isinstance(cost, dict)
        or cost.get("name") != params.get("cost_model")
        or not isinstance(cost.get("meta"), dict)
    ):
        raise bad(f"'cost_model' is not an object naming the cost model {params.get('cost_model')!r} and its meta")

    def array(key, ndim, kinds, n=None, lo=None, hi=None):
        a = arrays.get(key)
        if a is None:
            raise bad(f"arrays.safetensors lacks {key!r}")
        if a.ndim != ndim or a.dtype.kind not in kinds or (n is not None and len(a) != n) or (ndim == 2 and not a.size):
            raise bad(f"{key!r} has shape {a.shape} and type {a.dtype}, not {ndim}-d {kinds} of length {n or 'any'}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise bad(f"{key!r} holds non-finite values")
        if a.size and ((lo is not None and a.min() < lo) or (hi is not None and a.max() > hi)):
            raise bad(f"{key!r} holds values outside [{lo}, {hi}] ({a.min()!r}..{a.max()!r})")
        return a

    array("cost.mean", 1, "f", n_fit, lo=0)
    widths = {}
    floor = cost["meta"].get("floor", {})
    if cost["name"] == "knn":
        if not isinstance(floor, dict) or not all(
            k.isdigit() and int(k) < n_fit and _number(v) and v >= 0 for k, v in floor.items()
        ):
            raise bad("the knn cost model's 'floor' is not fitted columns -> a cost >= 0")
        if floor:
            emb = array("cost.train_emb", 2, "f")
            widths["cost.train_emb"] = emb.shape[1]
        for j in floor:
            rows = array(f"cost.knn.{j}.rows", 1, "iu", lo=0, hi=len(emb) - 1)
            array(f"cost.knn.{j}.resid", 1, "f", len(rows))
            array(f"cost.knn.{j}.coef", 1, "f", 2)
    if cols:
        emb = array("prior.emb", 2, "f")
        widths["prior.emb"] = emb.shape[1]
        for j in cols:
            rows = array(f"prior.{j}.rows", 1, "iu", lo=0, hi=len(emb) - 1)
            if not len(rows):
                raise bad(f"'prior.{j}.rows' is empty")
            array(f"prior.{j}.y", 1, "f", len(rows), lo=0, hi=1)
    if len(set(widths.values())) > 1:
        raise bad(f"the stored prompt embeddings have two widths ({widths}); one embedder made them all")
    known = getattr(getattr(value_model, "index_", None), "policies", None)
    if known is not None and getattr(value_model, "fallback", "error") == "error":
        unknown = [p for p in policies if p not in set(known)]
        if unknown:
            raise bad(f"the pool's policies {unknown[:4]} have no history in value_model/ (it knows {list(known)[:4]})")


def _smoke_route(router, stored) -> None:
    """Route one prompt through the loaded router's costs, prior and strategy, with a stored prompt embedding
    (``stored``, or None) in place of the embedder's (no encoder is loaded): a router that cannot route fails
    here, at load."""
    import numpy as np

    class _Stored:  # the first stored prompt's vector, for any text
        def encode(self, texts):
            return np.repeat(stored[:1] if stored is not None else np.ones((1, 1)), len(texts), axis=0)

    own, width, router.embedder_ = router.embedder_, router._emb_width, _Stored()
    try:
        P, C = router._combine(["smoke"], np.full(router.n_policies_, 0.5))
    finally:
        router.embedder_, router._emb_width = own, width
    m = router.n_policies_
    if P.shape != (1, m) or C.shape != (1, m) or not (np.isfinite(P).all() and np.isfinite(C).all()):
        raise ValueError(f"a test route gave P {P.shape}, C {C.shape}, or non-finite values")
    if P.min() < 0 or P.max() > 1 or C.min() < 0:
        raise ValueError(f"a test route gave success {P.tolist()} outside [0, 1] or costs {C.tolist()} below 0")
    knob = getattr(router.strategy_, "default_knob", None)
    if knob is not None:
        import warnings

        from ..exceptions import V0liteWarning

        with warnings.catch_warnings():  # a smoke test of the strategy: its knob's warnings are not the user's
            warnings.simplefilter("ignore", V0liteWarning)
            router.strategy_.choose(P, C, knob)


def load_router(cls, path, *, value_model=None, embedder=None, encoder=None):
    """Read a router folder written by :func:`save_router` (checksums verified).

    Loading is total: whatever the folder holds, the result is a router or a ``FormatVersionError``
    (or the ``V0liteError`` asking for a value model that was not saved), never another exception.
    """
    path = Path(path)
    try:
        return _load_router(cls, path, value_model=value_model, embedder=embedder, encoder=encoder)
    except (FormatVersionError, _NoValueModel):
        raise
    except Exception as exc:  # the meta's values are trusted below: anything they break is a corrupt folder
        raise FormatVersionError(
            f"{path}: the router cannot be loaded ({type(exc).__name__}: {str(exc)[:200]}). " + _FIX
        ) from exc


def _load_router(cls, path: Path, *, value_model, embedder, encoder=None):
    meta = read_folder(
        path,
        format_name=ROUTER_FORMAT,
        format_version=ROUTER_FORMAT_VERSION,
        required=("arrays.safetensors",),
        what="v0lite router",
        fix=ROUTER_FIX,
    )
    if value_model is None:
        if not meta["value_model"]["saved"]:
            raise _NoValueModel(
                f"{path}: the router's value model ({meta['value_model']['class']}) has no save(), so "
                "it is not in the folder. Fix: pass it again, Router.load(path, value_model=model)."
            )
        from ..estimator import V0Regressor

        try:
            value_model = loaded = V0Regressor.load(path / "value_model", encoder=encoder)
        except FormatVersionError as exc:  # the model's fix (refit it) would leave the router's folder as it is
            what, _, fix = str(exc).partition("Fix:")
            again = "upgrade v0lite, or " if "upgrade v0lite" in fix else ""
            raise FormatVersionError(f"{what}Fix: {again}{ROUTER_FIX} with this v0lite.") from exc
    else:
        loaded = None
    a = load_arrays(path / "arrays.safetensors")
    check_router_meta(meta, a, path, loaded)  # every value, before any is used: loading is total
    params = dict(meta["params"])
    params["embedder"] = embedder
    router = cls(value_model, **params)
    router.embedder_ = embedder
    router.strategy_ = get_strategy(params["strategy"])
    cost = meta["cost_model"]
    router.cost_model_ = get_cost_model(cost["name"], k=params["k"]).set_state(
        cost["meta"], {k[len("cost.") :]: v for k, v in a.items() if k.startswith("cost.")}
    )
    router.policies_ = list(meta["policies"])
    router.n_policies_ = len(router.policies_)
    router.added_prices_ = {str(k): float(v) for k, v in meta.get("added_prices", [])}
    router.shrink_, router.prior_k_ = float(meta["shrink"]), meta["prior_k"]
    cols = meta["prior_columns"]
    try:
        router._prior = (
            {
                "emb": a["prior.emb"],
                "rows": {j: a[f"prior.{j}.rows"] for j in cols},
                "y": {j: a[f"prior.{j}.y"] for j in cols},
            }
            if cols
            else {}
        )
    except KeyError as exc:
        raise FormatVersionError(f"{path}: arrays.safetensors lacks {exc}. {_FIX}") from exc
    if meta["shrink_scores"] is not None:
        router.shrink_scores_ = meta["shrink_scores"]
    stored = a.get("prior.emb", a.get("cost.train_emb"))
    router._emb_width = None if stored is None else stored.shape[1]  # the embedder must give this width
    _smoke_route(router, stored)
    return router
