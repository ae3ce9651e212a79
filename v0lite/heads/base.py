"""The head protocol and the registry of heads (imported lazily by name)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from .._registry import canonical, lookup
from ..exceptions import V0liteError

__all__ = ["BaseHead", "HEADS", "HEAD_PROTOCOL", "get_head_class", "make_head"]

# name -> "module:Class"; modules are imported only when a head is asked for.
HEADS = {
    "prior": "v0lite.heads.prior:PriorHead",
    "knn": "v0lite.heads.knn:KNNHead",
    "linear": "v0lite.heads.linear:LinearHead",
    "logistic": "v0lite.heads.logistic:LogisticHead",
    "ridge": "v0lite.heads.logistic:RidgeHead",
    "irt": "v0lite.heads.irt:IRTHead",
    "auto": "v0lite.heads.auto:AutoHead",
    "gbdt": "v0lite.heads.gbdt:GBDTHead",
    "transformer": "v0lite.heads.transformer:TransformerHead",
    "ensemble": "v0lite.heads.ensemble:EnsembleHead",
    "neural": "v0lite.heads.neural:NeuralHead",
}


class BaseHead:
    """A head: ``fit(index)`` learns how to read histories, ``predict(index, queries)`` reads them.

    A head never learns a particular policy: everything policy-specific comes from the
    :class:`~v0lite.index.HistoryIndex` at predict time, so a policy added with
    ``add_history`` is served without retraining.
    """

    name = "base"

    def __init__(self, **params):
        self.params = dict(params)

    def fit(self, index, *, random_state: int = 0, show_progress_bar: bool = False) -> "BaseHead":
        return self

    def predict(self, index, queries, *, exclude: str = "same_step") -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def save(self, path: Path) -> dict:
        """Write learned state under ``path``; return JSON-able metadata."""
        return {"params": self.params}

    @classmethod
    def load(cls, path: Path, meta: dict) -> "BaseHead":
        return cls(**meta.get("params", {}))


#: what a head must have to be used without registering it (``V0Regressor(head=MyHead)``)
HEAD_PROTOCOL = ("fit", "predict", "save", "load")


def get_head_class(name):
    """The head class registered under ``name``; a class with :data:`HEAD_PROTOCOL`'s methods passes through.

    Raises
    ------
    ParameterError
        For an unknown name; the message lists the valid names.
    """
    entry = lookup(HEADS, name, "head", HEAD_PROTOCOL)
    if not isinstance(entry, str):
        return entry
    name = canonical(HEADS, name, "head")
    module, cls = entry.split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise V0liteError(f"head {name!r} is not available in this build ({exc}).") from exc
    return getattr(mod, cls)


def make_head(name: str, **params) -> BaseHead:
    """Instantiate the head registered under ``name`` with ``params``."""
    return get_head_class(name)(**params)
