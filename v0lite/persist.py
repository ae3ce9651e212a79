"""The model-folder format: save and load without pickle, so loading never runs code from the files.

Layout of a model folder::

    meta.json              format name + version, parameters, policies, head metadata, sha256 of every file
    history.safetensors    embeddings and outcome rows (numeric arrays only)
    head/                  the head's own files (LightGBM text, safetensors, JSON)

The folder is written beside the target under a temporary name and renamed into place, so a
crash leaves either the old model or the new one. Every file's checksum is verified on load.

This module knows the folder, not the estimator: :meth:`v0lite.estimator.V0Regressor.save`
and ``load`` own their state and call :func:`save_model_folder` / :func:`read_model_folder`.
:func:`write_folder` / :func:`read_folder` are the format-agnostic part (checksums, version
check, atomic rename), also used by the router's folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ._io import atomic_write_json, load_arrays, save_arrays, sha256_file
from .exceptions import FormatVersionError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "save_model_folder", "read_model_folder", "write_folder", "read_folder"]

FORMAT_NAME = "v0lite-model"
FORMAT_VERSION = 1


def _meta_digest(meta: dict) -> str:
    """sha256 of meta.json's content (minus this digest), so a flipped byte in meta.json is caught too."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def write_folder(path, fill: Callable[[Path], None], meta: dict, *, format_name: str, format_version: int) -> Path:
    """Write a checksummed folder atomically.

    ``fill(tmp)`` writes the folder's files into the temporary folder ``tmp`` (and may add
    entries to ``meta``); then ``meta.json`` gets the format name and version, the v0lite
    version, the sha256 of every file and its own digest, and the folder is renamed into place
    (an existing one is replaced; a failed save changes nothing).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        fill(tmp)
        files = {str(f.relative_to(tmp)): sha256_file(f) for f in sorted(tmp.rglob("*")) if f.is_file()}
        from ._version import __version__

        meta = {
            "format": format_name,
            "format_version": format_version,
            "v0lite_version": __version__,
            **meta,
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
            if old is not None:  # put the old folder back: a failed save changes nothing
                os.replace(old, path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def read_folder(
    path,
    *,
    format_name: str,
    format_version: int,
    required: tuple[str, ...] = (),
    what: str = "v0lite model",
    fix: str = "re-save the model",
) -> dict:
    """``meta.json`` of a folder written by :func:`write_folder`, after checking format, version and checksums.

    Raises
    ------
    FormatVersionError
        Missing or corrupt ``meta.json``, another format, a newer version, or a file whose
        checksum does not match.
    """
    path = Path(path)
    mfile = path / "meta.json"
    if not mfile.exists():
        raise FormatVersionError(
            f"{path}: no meta.json, not a {what} folder. Fix: pass the folder given to save"
            f"{'/fit --model-dir' if format_name == FORMAT_NAME else ''}."
        )
    try:
        meta = json.loads(mfile.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatVersionError(f"{mfile}: corrupt JSON ({exc}). Fix: {fix}.") from exc
    if not isinstance(meta, dict) or meta.get("format") != format_name:
        raise FormatVersionError(
            f"{mfile}: not a {what} (format={meta.get('format') if isinstance(meta, dict) else None!r})."
        )
    ver = meta.get("format_version")
    if not isinstance(ver, int) or ver > format_version or ver < 1:
        raise FormatVersionError(
            f"{mfile}: format version {ver!r} is not supported by this v0lite (reads 1..{format_version}). "
            f"Fix: upgrade v0lite, or {fix} with this version."
        )
    if meta.get("meta_sha256") != _meta_digest(meta):
        raise FormatVersionError(f"{mfile}: corrupt (its content does not match its checksum). Fix: {fix}.")
    if not isinstance(meta.get("files"), dict) or not all(r in meta["files"] for r in required):
        raise FormatVersionError(f"{mfile}: corrupt (no file checksums). Fix: {fix}.")
    for rel, digest in meta["files"].items():
        f = path / rel
        if not f.exists() or sha256_file(f) != digest:
            raise FormatVersionError(f"{f}: missing or corrupt (checksum mismatch). Fix: {fix}.")
    return meta


def save_model_folder(path, *, arrays: dict, texts: list | None, head, meta: dict) -> Path:
    """Write a model folder: ``arrays`` to ``history.safetensors``, ``texts`` (or none) to
    ``texts.json``, the head's files under ``head/`` (``head.save(folder) -> head meta``) and
    ``meta`` (JSON-ready: params, encoder id, policies) into ``meta.json``."""
    meta = dict(meta)

    def fill(tmp: Path) -> None:
        save_arrays(tmp / "history.safetensors", arrays)
        if texts is not None:  # kept only for heads that re-encode text
            (tmp / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        (tmp / "head").mkdir()
        meta["head"] = {"name": head.name, "meta": head.save(tmp / "head")}

    return write_folder(path, fill, meta, format_name=FORMAT_NAME, format_version=FORMAT_VERSION)


def read_model_folder(path) -> tuple[dict, dict, list | None]:
    """``(meta, arrays, texts)`` of a model folder, checksums verified; the head stays on disk under ``head/``."""
    path = Path(path)
    meta = read_folder(path, format_name=FORMAT_NAME, format_version=FORMAT_VERSION, required=("history.safetensors",))
    arrays = load_arrays(path / "history.safetensors")
    texts = json.loads((path / "texts.json").read_text("utf-8")) if (path / "texts.json").exists() else None
    return meta, arrays, texts
