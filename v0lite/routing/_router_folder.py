"""The router folder: a fitted :class:`Router` saved without pickle, in the model folder's style.

Layout::

    meta.json            format "v0lite-router" + version, parameters, pool, strategy, shrink,
                         cost-model meta, sha256 of every file (checked on load)
    arrays.safetensors   the cost model's arrays and the shrinkage prior's (numeric only)
    value_model/         the value model's own folder (when it has ``save``), e.g. a V0Regressor

Written to a temporary folder and renamed into place (:func:`v0lite.persist.write_folder`).
"""

from __future__ import annotations

from pathlib import Path

from .._io import load_arrays, save_arrays, to_jsonable
from ..exceptions import FormatVersionError, V0liteError
from ..persist import ROUTER_FORMAT, read_folder, write_folder
from ._costs import COST_MODELS, get_cost_model
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


def load_router(cls, path, *, value_model=None, embedder=None):
    """Read a router folder written by :func:`save_router` (checksums verified).

    Loading is total: whatever the folder holds, the result is a router or a ``FormatVersionError``
    (or the ``V0liteError`` asking for a value model that was not saved), never another exception.
    """
    path = Path(path)
    try:
        return _load_router(cls, path, value_model=value_model, embedder=embedder)
    except (FormatVersionError, _NoValueModel):
        raise
    except Exception as exc:  # the meta's values are trusted below: anything they break is a corrupt folder
        raise FormatVersionError(
            f"{path}: the router cannot be loaded ({type(exc).__name__}: {str(exc)[:200]}). "
            "Fix: re-save the router (v0lite route-eval ... --save-router) with this v0lite."
        ) from exc


def _load_router(cls, path: Path, *, value_model, embedder):
    meta = read_folder(
        path,
        format_name=ROUTER_FORMAT,
        format_version=ROUTER_FORMAT_VERSION,
        required=("arrays.safetensors",),
        what="v0lite router",
        fix="re-save the router",
    )
    if value_model is None:
        if not meta["value_model"]["saved"]:
            raise _NoValueModel(
                f"{path}: the router's value model ({meta['value_model']['class']}) has no save(), so "
                "it is not in the folder. Fix: pass it again, Router.load(path, value_model=model)."
            )
        from ..estimator import V0Regressor

        value_model = V0Regressor.load(path / "value_model")
    a = load_arrays(path / "arrays.safetensors")
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
        raise FormatVersionError(f"{path}: arrays.safetensors lacks {exc}. Fix: re-save the router.") from exc
    if meta["shrink_scores"] is not None:
        router.shrink_scores_ = meta["shrink_scores"]
    return router
