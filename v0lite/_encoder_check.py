"""Whether a fitted model's encoder is still the one it was fitted with, said in the user's terms.

Kept out of :mod:`v0lite.estimator` (its size): :meth:`V0Regressor._check_encoder` calls :func:`check_encoder`.
How an encoder is named, known and loaded is :mod:`v0lite._encoder_load`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ._encoder_load import DEFAULT_ENCODER, _resolve_model, packaged_fingerprint
from .exceptions import EncoderMismatchError, ParameterError


def check_encoder_name(encoder) -> None:
    """An empty encoder name is a mistake (an unset variable), never a request for the default."""
    if isinstance(encoder, str) and not encoder.strip():
        raise ParameterError(
            f"encoder={encoder!r} names no encoder. Fix: pass a sentence-transformers name or folder, or leave "
            "encoder out for the default (all-MiniLM-L6-v2)."
        )


def folder_dim(path: str | os.PathLike) -> int | None:
    """The output size a sentence-transformers folder declares (its last Dense or Pooling config), or None.

    Read from the folder's small JSON files: loading the encoder to learn its size would cost seconds.
    """
    dim = None
    try:
        modules = json.loads((Path(path) / "modules.json").read_text())
        for mod in modules:
            cfg_file = Path(path) / str(mod.get("path", "")) / "config.json"
            if not mod.get("path") or not cfg_file.is_file():
                continue
            cfg = json.loads(cfg_file.read_text())
            # a Dense layer's output; a Pooling layer's size (its key differs across sentence-transformers versions)
            for key in ("out_features", "embedding_dimension", "word_embedding_dimension"):
                if isinstance(cfg.get(key), int):
                    dim = cfg[key]
                    break
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return int(dim) if isinstance(dim, int) else None


def _dim(dim: int | None) -> str:
    return f" ({dim} dims)" if dim else ""


def check_encoder(model, emb) -> None:
    """Raise :class:`EncoderMismatchError` when ``emb`` (the embedder of fitted ``model``) is not its encoder.

    A fitted model embeds with the encoder it was fitted with: another one's vectors would not match
    the history's (``load(path, encoder=<another>)``, ``set_params(encoder=<another>)`` after fit).
    """
    fitted = getattr(model, "encoder_id_", None)
    if fitted is None:
        return
    name = emb.model
    obj = name if not isinstance(name, (str, os.PathLike)) else None
    saved = getattr(model, "_fitted_encoder_path", None)  # the folder it was fitted with, when one
    gone = (
        obj is None
        and name is not None
        and fitted.startswith("local:")
        and not os.path.isdir(name)
        and (os.path.isabs(name) or (saved is not None and str(Path(name).resolve()) == saved))
    )
    if gone:
        # the folder is gone: resolving it would take the path for a hub name and report "another encoder"
        if saved is None or Path(saved) == Path(name).resolve():
            raise EncoderMismatchError(
                f"the encoder folder {str(name)!r} this model was fitted with is not there (moved or deleted). "
                "Fix: pass its new location (encoder=<path>)."
            )
        raise EncoderMismatchError(
            f"the encoder folder {str(name)!r} is not there. Fix: pass the folder this model was fitted with"
            f"{f' (it was {saved!r})' if saved else ''}, at its current location (encoder=<path>)."
        )
    mid = emb.model_id
    if mid == DEFAULT_ENCODER and fitted.startswith("local:") and fitted == f"local:{packaged_fingerprint()}":
        return  # fitted with a copy of the packaged folder before such a copy took the default's id
    # an object without an id of its own is known by its class only: then it must be the fitted object
    other_object = mid == fitted and getattr(model, "_fit_encoder", model.encoder) is not model.encoder
    if mid == fitted and not other_object:
        return
    legacy = obj is not None and getattr(obj, "model_id", None) is None and fitted == type(obj).__name__
    if mid != fitted and legacy:
        return  # saved before encoder objects had derived ids (a SentenceTransformer): its class was its id
    fitted_dim = model.index_.dim if hasattr(model, "index_") else None
    what, was = repr(mid), repr(fitted)
    if saved is not None and fitted.startswith("local:"):  # a folder is named by its path, not its fingerprint
        was = f"folder {saved!r}{_dim(fitted_dim)}"
    fix = "encoder=<path> or the encoder object" if obj is not None else "encoder=<path>"
    fix = f"pass the one it was fitted with ({fix})"
    fit_obj = not isinstance(getattr(model, "_fit_encoder", None), (str, os.PathLike, type(None)))
    if "/" in fitted and ":" not in fitted and not fit_obj:  # a hub name ('org/name'), saved with the model
        fix = f"leave encoder out to use the one it was fitted with ({fitted!r})"
    if obj is None and mid.startswith("local:"):
        path = _resolve_model(str(name))[1]
        what = f"folder {path!r}{_dim(folder_dim(path))}"
        same = saved is not None and Path(saved).resolve() == Path(path).resolve()
        why = (
            "the folder's files changed since"
            if same
            else "another encoder"
            if not fitted.startswith("local:")
            else "they are two different folders"
            if saved is not None and os.path.isdir(saved)
            else "its files differ from those of the folder it was fitted with"
            + (" (no longer there)" if saved is not None else "")
        )
    elif other_object:
        why = "another object, and neither has a model_id to tell them apart"
    else:
        why = "another encoder"
    aside = " (an encoder object is known by its model_id attribute)" if obj is not None else ""
    raise EncoderMismatchError(
        f"the encoder {what} is not the one this model was fitted with ({was}): {why}, so its vectors "
        f"would not match the history's{aside}. Fix: refit the model with this encoder, or {fix}."
    )
