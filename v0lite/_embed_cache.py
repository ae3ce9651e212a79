"""The embedding cache's shards on disk: read, checked, dropped when corrupt, written atomically.

:class:`ShardCache` is a part of :class:`v0lite.embed.Embedder` (its base class), kept apart to hold
the disk format in one place: a shard is ``shard-<sha256 of its bytes>.npz`` holding ``keys``
(raw 32-byte prompt digests) and ``vecs`` (float32 rows), so a shard is its own checksum. The
embedder supplies ``_shard_dir`` (None: no disk cache), ``_memory``, ``_loaded_shards``,
``_shard_keys``, ``_expected_dim``, ``_encoder()`` and ``_call_encoder()``.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import numpy as np

from ._io import atomic_write_bytes
from .exceptions import V0liteWarning

__all__ = ["ShardCache"]


class ShardCache:
    """The disk half of the embedding cache (a base class of :class:`v0lite.embed.Embedder`)."""

    def _read_shards(self) -> None:
        d = self._shard_dir
        if d is None or not d.exists():
            return
        found = []
        for f in sorted(d.glob("shard-*.npz")):
            if f.name in self._loaded_shards:
                continue
            try:
                data = f.read_bytes()
            except FileNotFoundError:  # another process compacted it away
                continue
            if hashlib.sha256(data).hexdigest() != f.stem[len("shard-") :]:
                self._drop_shard(f, "is corrupt (checksum mismatch)")
                continue
            try:
                with np.load(io.BytesIO(data), allow_pickle=False) as z:
                    keys, vecs = z["keys"], z["vecs"]
                if keys.ndim < 1 or vecs.ndim != 2 or len(keys) != len(vecs) or vecs.dtype.kind != "f":
                    raise ValueError(f"keys {keys.shape} / vecs {vecs.shape} do not match")
            except Exception as exc:  # a shard is never trusted: unreadable = corrupt
                self._drop_shard(f, f"is unreadable ({exc})")
                continue
            if not np.isfinite(vecs).all():
                self._drop_shard(f, "holds non-finite vectors (NaN or inf)")
                continue
            found.append((f, keys, vecs))
        dim = self._cache_dim(found)
        for f, keys, vecs in found:
            if vecs.shape[1] != dim:
                self._drop_shard(f, f"holds {vecs.shape[1]}-d vectors, the encoder's are {dim}-d")
                continue
            if keys.dtype.kind == "S":  # early shards: "S32" strips trailing zero bytes; pad them back
                hexes = [bytes(k).ljust(32, b"\0").hex() for k in keys]
            else:
                hexes = [k.tobytes().hex() for k in keys]
            for k, v in zip(hexes, vecs):
                self._memory.setdefault(k, v)
            self._loaded_shards.add(f.name)
            self._shard_keys[f] = hexes

    def _cache_dim(self, found) -> int | None:
        """The encoder's dimension: a fitted model's, else that of the vectors already read, else the one
        size these shards share; shards of several sizes are settled by the encoder itself (one probe)."""
        if self._expected_dim is not None:
            return self._expected_dim
        if self._memory:
            return next(iter(self._memory.values())).shape[0]
        dims = {vecs.shape[1] for _, _, vecs in found}
        if len(dims) <= 1:
            return dims.pop() if dims else None
        probe = np.asarray(self._call_encoder(self._encoder(), ["dimension probe"]), np.float32)
        return int(probe.shape[-1])

    def _forget_cached(self, dim: int) -> None:
        """The encoder's output shows the cached vectors of size ``dim`` are not its own: drop them."""
        for f, hexes in list(self._shard_keys.items()):
            if len(hexes) and self._memory.get(hexes[0], np.empty(0)).shape[0] == dim:
                self._drop_shard(f, f"holds {dim}-d vectors, the encoder's are not")
                for k in hexes:
                    self._memory.pop(k, None)
                del self._shard_keys[f]
        for k in [k for k, v in self._memory.items() if v.shape[0] == dim]:
            del self._memory[k]

    @staticmethod
    def _drop_shard(f: Path, why: str) -> None:
        warnings.warn(
            f"embedding cache shard {f} {why}; removing it, its prompts will be re-embedded",
            V0liteWarning,
            stacklevel=4,
        )
        f.unlink(missing_ok=True)

    def _write_shard(self, keys: list[str], vecs: np.ndarray) -> None:
        d = self._shard_dir
        if d is None:
            return
        buf = io.BytesIO()
        # raw uint8 digests: numpy's "S" dtype would strip a digest's trailing zero bytes
        raw = np.frombuffer(b"".join(bytes.fromhex(k) for k in keys), np.uint8).reshape(-1, 32)
        np.savez(buf, keys=raw, vecs=vecs.astype(np.float32))
        data = buf.getvalue()
        name = f"shard-{hashlib.sha256(data).hexdigest()}.npz"
        atomic_write_bytes(d / name, data)
        self._loaded_shards.add(name)
