"""The estimator's parameters: one check each (run by ``fit``, ``predict``, ``save`` and ``load``), and how a
model folder keeps them (kept out of estimator.py).

Light at import (no numpy, no embedder): :mod:`v0lite.persist` reads its checks of a folder's values here,
so that ``load`` refuses exactly what ``fit`` refuses.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

from .exceptions import ParameterError

__all__ = [
    "FALLBACKS",
    "SEED_MAX",
    "BATCH_SIZE_MAX",
    "seed_ok",
    "batch_size_ok",
    "check_fit_params",
    "check_embed_settings",
    "check_fallback",
    "check_encoder_value",
    "saved_head_problem",
    "_check_seed",
    "_saved_params",
]

FALLBACKS = ("error", "global_mean")
#: the largest seed: the heads add small offsets and hand it to 32-bit C ints (faiss's k-means)
SEED_MAX = 2**31 - 16
#: the largest encoder batch a model folder may hold (a larger one is a typo, not a batch)
BATCH_SIZE_MAX = 2**20


def _is_int(v) -> bool:
    """An integer, numpy's too (``GridSearchCV``'s grids hand out numpy scalars), but not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def seed_ok(v) -> bool:
    """Whether ``v`` is a seed ``fit`` takes: an integer in [0, SEED_MAX]."""
    return _is_int(v) and 0 <= v <= SEED_MAX


def batch_size_ok(v) -> bool:
    """Whether ``v`` is an encoder batch size ``fit`` takes: an integer in [1, BATCH_SIZE_MAX]."""
    return _is_int(v) and 1 <= v <= BATCH_SIZE_MAX


def _check_seed(random_state) -> None:
    """``random_state`` is an integer seed in [0, SEED_MAX], checked before any work."""
    if not seed_ok(random_state):
        raise ParameterError(
            f"random_state must be an integer in [0, 2**31 - 16], got {random_state!r}. "
            "Fix: pass a seed such as random_state=0."
        )


def check_fallback(fallback) -> None:
    """``fallback`` is one of :data:`FALLBACKS` (read by ``predict``; ``fit`` and ``save`` check it too)."""
    from ._registry import unknown_name

    if not (isinstance(fallback, str) and fallback in FALLBACKS):
        raise ParameterError(
            f"{unknown_name('fallback', fallback, FALLBACKS)} Fix: pass one of them, e.g. fallback='global_mean' "
            "(on a fitted model, with set_params)."
        )


def check_encoder_value(encoder) -> None:
    """``encoder`` is None, a name or folder, or an object with ``encode`` (also ``load``'s ``encoder=``)."""
    from ._encoder_check import check_encoder_name

    check_encoder_name(encoder)
    if encoder is None or isinstance(encoder, (str, os.PathLike)) or callable(getattr(encoder, "encode", None)):
        return
    raise ParameterError(
        f"encoder must be a sentence-transformers name or folder, or an object with an encode(list[str]) method, "
        f"got {type(encoder).__name__} {encoder!r:.60}. Fix: pass e.g. encoder='sentence-transformers/all-MiniLM-"
        "L6-v2' or your encoder object, or leave encoder out for the default (all-MiniLM-L6-v2)."
    )


def check_embed_settings(est) -> None:
    """The embedder's settings of ``est``: ``cache_dir``, ``batch_size``, ``device`` and ``show_progress_bar``, checked
    before an embedder is built or updated with them (``fit``, and ``predict`` after ``set_params``)."""
    import numpy as np

    cache_dir = est.cache_dir
    if not (cache_dir is None or cache_dir is False or isinstance(cache_dir, (str, os.PathLike))):
        raise ParameterError(
            f"cache_dir must be a folder path, None (the default cache: $V0LITE_CACHE or ~/.cache/v0lite) or False "
            f"(no disk cache), got {cache_dir!r:.60}. Fix: pass e.g. cache_dir='/tmp/v0lite-cache' or cache_dir=False."
        )
    if not batch_size_ok(est.batch_size):
        raise ParameterError(
            f"batch_size must be an integer in [1, 2**20], got {est.batch_size!r:.60}. Fix: pass e.g. batch_size=64 "
            "(on a fitted model, with set_params)."
        )
    device = est.device
    if not (device is None or isinstance(device, str) or hasattr(device, "type")):  # a torch.device has .type
        raise ParameterError(
            f"device must be a torch device name such as 'cpu' or 'cuda:0' (or None: torch's choice), got "
            f"{device!r:.60}. Fix: pass e.g. device='cpu'."
        )
    if not isinstance(est.show_progress_bar, (bool, np.bool_)):
        raise ParameterError(
            f"show_progress_bar must be True or False, got {est.show_progress_bar!r:.60}. "
            "Fix: pass show_progress_bar=True or show_progress_bar=False."
        )


def check_fit_params(est) -> None:
    """Every parameter of ``est`` (a ``V0Regressor``), before ``fit`` does any work."""
    import numpy as np

    from .heads._params import check_head_params
    from .heads.base import get_head_class

    check_encoder_value(est.encoder)
    get_head_class(est.head)  # raises with the valid names
    check_fallback(est.fallback)
    k = est.k
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        cv = " (k chosen by cross-validation: head_params={'k': 'cv'})" if k == "cv" else ""
        raise ParameterError(f"k must be a positive integer, got {k!r}. Fix: pass e.g. k=32{cv}.")
    _check_seed(est.random_state)
    check_head_params(est.head, est.head_params)
    check_embed_settings(est)


def saved_head_problem(params: dict, entry: str) -> str | None:
    """Why a model folder's ``params.head`` is not the head its ``head`` entry holds, or None.

    A missing one is refused (the estimator would read it as "auto"); a name that is not a registered head
    is left to loading the head, which names the valid ones.
    """
    from ._registry import normalise
    from .heads.base import HEADS

    if "head" not in params:
        return "'params' lacks 'head' (the head the model was fitted with)"
    names = {normalise(k): k for k in HEADS}
    given = params["head"]
    fitted, held = names.get(normalise(given)), names.get(normalise(entry))
    if fitted is not None and held is not None and fitted != held:
        return f"parameter 'head' is {given!r}, but the saved head is {entry!r}"
    return None


def _saved_params(params: dict) -> dict:
    """``params`` as a model folder's meta.json holds them: JSON, without the run-time settings."""
    from ._io import to_jsonable
    from .embed import OBJECT_ENCODER, Embedder

    # an encoder object is saved as its id, marked as an object's; the user passes the object again on load
    out = to_jsonable(
        {k: v for k, v in params.items() if k not in ("device", "cache_dir", "show_progress_bar")},
        default=lambda v: OBJECT_ENCODER + Embedder(v, cache_dir=False).model_id,
    )
    # run-time settings are the loading process's business: the cache ($V0LITE_CACHE or load's
    # cache_dir), progress bars and the encoder's device are never saved into a model folder
    enc = params.get("encoder")
    if isinstance(enc, (str, os.PathLike)) and os.path.isdir(enc):
        out["encoder"] = str(Path(enc).resolve())  # a relative path means nothing elsewhere
    return out


def keep_sklearn_config(src, new):
    """Copy what ``sklearn.base.clone`` carries besides the parameters onto ``new`` (a custom
    ``__sklearn_clone__`` must too): the metadata requests (``set_*_request``) and the output config."""
    import copy

    for attr in ("_metadata_request", "_sklearn_output_config"):
        if attr in src.__dict__:
            setattr(new, attr, copy.deepcopy(src.__dict__[attr]))
    return new
