"""The estimator's parameters as a model folder keeps them, and its seed check (kept out of estimator.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .embed import OBJECT_ENCODER, Embedder
from .exceptions import ParameterError

__all__ = ["SEED_MAX", "_check_seed", "_saved_params"]


def _saved_params(params: dict) -> dict:
    """``params`` as a model folder's meta.json holds them: JSON, without the run-time settings."""
    from ._io import to_jsonable

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


#: the largest seed: the heads add small offsets and hand it to 32-bit C ints (faiss's k-means)
SEED_MAX = 2**31 - 16


def _check_seed(random_state) -> None:
    """``random_state`` is an integer seed in [0, SEED_MAX], checked before any work."""
    ok = isinstance(random_state, (int, np.integer)) and not isinstance(random_state, (bool, np.bool_))
    if not ok or not 0 <= random_state <= SEED_MAX:
        raise ParameterError(
            f"random_state must be an integer in [0, 2**31 - 16], got {random_state!r}. "
            "Fix: pass a seed such as random_state=0."
        )


def keep_sklearn_config(src, new):
    """Copy what ``sklearn.base.clone`` carries besides the parameters onto ``new`` (a custom
    ``__sklearn_clone__`` must too): the metadata requests (``set_*_request``) and the output config."""
    import copy

    for attr in ("_metadata_request", "_sklearn_output_config"):
        if attr in src.__dict__:
            setattr(new, attr, copy.deepcopy(src.__dict__[attr]))
    return new
