"""Save and load models without pickle: loading a model never runs code from its files.

Layout of a model folder::

    meta.json              format name + version, parameters, policies, head metadata, sha256 of every file
    history.safetensors    embeddings and outcome rows (numeric arrays only)
    head/                  the head's own files (LightGBM text, safetensors, JSON)

The folder is written beside the target under a temporary name and renamed into place, so a
crash leaves either the old model or the new one. Every file's checksum is verified on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ._io import atomic_write_json, sha256_file
from .exceptions import FormatVersionError

__all__ = ["save_model", "load_model", "FORMAT_NAME", "FORMAT_VERSION", "save_arrays", "load_arrays"]

FORMAT_NAME = "v0lite-model"
FORMAT_VERSION = 1


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write numeric arrays to a safetensors file (contiguous copies)."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read a safetensors file into numpy arrays."""
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError type
        raise FormatVersionError(f"{path}: not a readable safetensors file ({exc}). Fix: re-save the model.") from exc


def _meta_digest(meta: dict) -> str:
    """sha256 of meta.json's content (minus this digest), so a flipped byte in meta.json is caught too."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _json_params(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if v is None or isinstance(v, (bool, int, float, str)):
            out[k] = v
        elif isinstance(v, dict):
            out[k] = json.loads(json.dumps(v, default=str))
        else:  # an encoder object: keep its id; the user passes the object again on load
            out[k] = getattr(v, "model_id", type(v).__name__)
    return out


def save_model(model, path) -> Path:
    """Write a fitted ``V0Regressor`` to folder ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        idx = model.index_
        keys = np.frombuffer(b"".join(bytes.fromhex(k) for k in idx.keys), np.uint8).reshape(-1, 32)
        save_arrays(tmp / "history.safetensors", {
            "emb": idx.emb, "keys": keys, "lengths": idx.lengths, "policy": idx.policy,
            "prompt_row": idx.prompt_row, "score": idx.score, "step": idx.step, "n": idx.n,
        })
        if getattr(idx, "texts", None) is not None:  # kept only for heads that re-encode text
            (tmp / "texts.json").write_text(json.dumps(idx.texts, ensure_ascii=False), encoding="utf-8")
        (tmp / "head").mkdir()
        head_meta = model.head_.save(tmp / "head")
        files = {str(f.relative_to(tmp)): sha256_file(f) for f in sorted(tmp.rglob("*")) if f.is_file()}
        from . import __version__

        meta = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "v0lite_version": __version__,
            "params": _json_params(model.get_params()), "encoder_id": model.encoder_id_,
            "policies": idx.policies, "head": {"name": model.head_.name, "meta": head_meta},
            "files": files,
        }
        meta["meta_sha256"] = _meta_digest(meta)
        atomic_write_json(tmp / "meta.json", meta)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:  # put the old model back: a failed save changes nothing
                os.replace(old, path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _read_meta(path: Path) -> dict:
    mfile = path / "meta.json"
    if not mfile.exists():
        raise FormatVersionError(f"{path}: no meta.json, not a v0lite model folder. Fix: pass the folder given to save/fit --model-dir.")
    try:
        meta = json.loads(mfile.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatVersionError(f"{mfile}: corrupt JSON ({exc}). Fix: re-save the model.") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise FormatVersionError(f"{mfile}: not a v0lite model (format={meta.get('format') if isinstance(meta, dict) else None!r}).")
    ver = meta.get("format_version")
    if not isinstance(ver, int) or ver > FORMAT_VERSION or ver < 1:
        raise FormatVersionError(
            f"{mfile}: format version {ver!r} is not supported by this v0lite (reads 1..{FORMAT_VERSION}). "
            "Fix: upgrade v0lite, or re-save the model with this version.")
    if meta.get("meta_sha256") != _meta_digest(meta):
        raise FormatVersionError(f"{mfile}: corrupt (its content does not match its checksum). Fix: re-save the model.")
    if not isinstance(meta.get("files"), dict) or "history.safetensors" not in meta["files"]:
        raise FormatVersionError(f"{mfile}: corrupt (no file checksums). Fix: re-save the model.")
    for rel, digest in meta.get("files", {}).items():
        f = path / rel
        if not f.exists() or sha256_file(f) != digest:
            raise FormatVersionError(f"{f}: missing or corrupt (checksum mismatch). Fix: re-save the model.")
    return meta


def load_model(path, cls=None, *, encoder=None):
    """Load a model folder written by :func:`save_model`.

    Parameters
    ----------
    path : str or Path
    cls : type, optional
        The estimator class (default ``V0Regressor``).
    encoder : object, optional
        The encoder object, when the model was fitted with a custom encoder object.
    """
    from .heads.base import get_head_class
    from .index import HistoryIndex

    if cls is None:
        from .estimator import V0Regressor as cls
    path = Path(path)
    meta = _read_meta(path)
    a = load_arrays(path / "history.safetensors")
    params = dict(meta["params"])
    if encoder is not None:
        params["encoder"] = encoder
    model = cls(**params)
    keys = [bytes(r).hex() for r in a["keys"]]
    model.index_ = HistoryIndex(a["emb"], keys, meta["policies"], a["policy"], a["prompt_row"], a["score"],
                                a["step"], a["n"], a["lengths"])
    if (path / "texts.json").exists():
        model.index_.texts = json.loads((path / "texts.json").read_text("utf-8"))
    head_cls = get_head_class(meta["head"]["name"])
    model.head_ = head_cls.load(path / "head", meta["head"]["meta"])
    model.encoder_id_ = meta["encoder_id"]
    model.n_history_ = model.index_.n_rows
    return model
