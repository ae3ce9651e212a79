"""The embedding cache's shards on disk: read, checked, dropped when corrupt, written atomically.

:class:`ShardCache` is a part of :class:`v0lite.embed.Embedder` (its base class), kept apart to hold
the disk format in one place: a shard is ``shard-<sha256 of its bytes>.npz`` holding ``keys``
(raw 32-byte prompt digests) and ``vecs`` (float32 rows), so a shard is its own checksum. The
embedder supplies ``_shard_dir`` (None: no disk cache), ``_memory``, ``_loaded_shards``,
``_shard_keys``, ``_expected_dim``, ``_encoder()`` and ``_call_encoder()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np

from ._io import atomic_write_bytes, sweep_dead_temps, write_failure
from ._out_checks import folder_problem
from .exceptions import DataError, V0liteWarning

__all__ = ["ShardCache", "CacheWriteError", "CACHE_FORMAT", "shards_root", "near_encoder"]

CACHE_FORMAT = 1
# only files of exactly this name are ours: another file matching shard-*.npz is left alone, never deleted
_SHARD_NAME = re.compile(r"shard-[0-9a-f]{64}\.npz")


def shards_root(root: str | os.PathLike) -> Path:
    """The folder under cache root ``root`` that holds one folder of shards per encoder."""
    return Path(root) / "embeddings" / f"v{CACHE_FORMAT}"


def near_encoder(name: str, known: list[str]) -> str | None:
    """The encoder ``name`` was probably meant to be, when it does not load: one of the ``known`` names, or a
    folder beside where ``name`` points, spelled alike (``all-MiniLM-L6v2`` -> ``all-MiniLM-L6-v2``; ``enc_lcoal`` ->
    ``enc_local``); None when none is close."""
    import difflib

    from ._log_warnings import near_names

    known = list(known)
    parent, base = os.path.split(str(name).rstrip("/" + os.sep))
    with contextlib.suppress(OSError):  # a folder beside it (first 500 entries: a huge folder is no slower)
        with os.scandir(parent or ".") as entries:
            known += [os.path.join(parent, e.name) for e in itertools.islice(entries, 500) if e.is_dir()]
    near = near_names([name], known).get(name)  # the same but for case or width: the surest guess
    if near:
        return near
    # the last parts compared (a shared 'org/' would make any two hub names alike), among names of its shape
    by_base = {os.path.basename(k): k for k in reversed(known) if ("/" in k) == ("/" in str(name))}
    base = os.path.basename(str(name))
    close = difflib.get_close_matches(base, list(by_base), n=1, cutoff=0.8)
    if not close or re.sub(r"\d+", "#", close[0]) == re.sub(r"\d+", "#", base):
        return None  # names that differ only in digits are other sizes or versions (L6 / L12), not a typo
    return by_base[close[0]]


class CacheWriteError(DataError):
    """The disk refused an embedding-cache shard (full, over quota, read-only): ``head`` says what and where,
    ``fix`` what to do; :meth:`counted` adds how many prompts were cached before it (they are kept)."""

    def __init__(self, head: str, fix: str):
        super().__init__(f"{head}. Fix: {fix}")
        self.head, self.fix = head, fix

    def counted(self, cached: int, total: int) -> CacheWriteError:
        return CacheWriteError(
            f"{self.head}; {cached} of the {total} prompts to embed were cached before it and are kept", self.fix
        )

    def __reduce__(self):  # picklable (a Ray actor's error reaches the caller as itself)
        return (CacheWriteError, (self.head, self.fix))


class ShardCache:
    """The disk half of the embedding cache (a base class of :class:`v0lite.embed.Embedder`)."""

    def _read_shards(self) -> None:
        d = self._shard_dir
        if d is None or not d.exists():
            return
        found = []
        for f in sorted(d.glob("shard-*.npz")):
            if f.name in self._loaded_shards or not _SHARD_NAME.fullmatch(f.name):
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
                # numpy's own text for a non-.npz file advises unpickling it: never passed on
                why = "not a NumPy .npz file" if "pickle" in str(exc) else str(exc).splitlines()[0][:200]
                self._drop_shard(f, f"is not a v0lite shard ({why})")
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

    def _drop_shard(self, f: Path, why: str) -> None:
        try:
            f.unlink(missing_ok=True)
            done = "removed it"
        except OSError as exc:  # a read-only cache: skip the file, the good shards still serve
            self._loaded_shards.add(f.name)  # not read again (nor warned about again) by this process
            done = f"skipped it (cannot remove it: {exc.strerror or exc})"
        warnings.warn(f"embedding cache shard {f} {why}; {done}, its prompts will be re-embedded", V0liteWarning, 4)

    def _check_writable(self) -> None:
        """Before any prompt is encoded: the shards' folder can be written (else the work would be lost)."""
        d = self._shard_dir
        problem = None if d is None else folder_problem(d)
        if problem is None:
            return
        if self.cache_dir:  # the caller's own folder
            raise DataError(
                f"the embedding cache cache_dir={str(self.cache_dir)!r}: {problem}. Fix: pass a cache_dir you can "
                "write, or cache_dir=False to keep vectors in memory only."
            )
        env = os.environ.get("V0LITE_CACHE")
        raise DataError(
            f"{f'V0LITE_CACHE={env}' if env else 'the embedding cache ~/.cache/v0lite'}: {problem}. Fix: point "
            "V0LITE_CACHE at a folder you can write (it is created), e.g. export V0LITE_CACHE=/tmp/v0lite-cache."
        )

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
        # a shard's name is its contents' hash, never written again: atomic_path's sweep of its name never
        # meets a killed writer's temporary file, so every shard's are swept here (and the folder listed once)
        sweep_dead_temps(d, _SHARD_NAME.pattern)
        try:
            atomic_write_bytes(d / name, data, sweep=False)
        except OSError as exc:
            if write_failure(exc) is None:
                raise
            raise self._cache_write_error(d, exc) from exc
        self._loaded_shards.add(name)

    def _cache_write_error(self, d: Path, exc: OSError) -> CacheWriteError:
        """The disk refused a shard: where the cache is, in the caller's terms, its free space and the fix."""
        free = next((shutil.disk_usage(p).free for p in (d, *d.parents) if p.exists()), None)
        room = f", {free / 1e6:.1f} MB free" if free is not None else ""
        why = f"{os.strerror(exc.errno) if exc.errno else str(exc).rstrip('.')}{room}"  # the path is said below
        env = os.environ.get("V0LITE_CACHE")
        if self.cache_dir:  # the caller's own folder
            where = f"cache_dir={str(self.cache_dir)!r}"
            fix = "pass a cache_dir on a disk with room, or cache_dir=False to keep vectors in memory only"
        else:
            where = f"V0LITE_CACHE={env}" if env else "~/.cache/v0lite"
            fix = "point V0LITE_CACHE at a folder on a disk with room (export V0LITE_CACHE=/path/with/room)"
        return CacheWriteError(
            f"the embedding cache {where} cannot be written ({why}; shards in {d})",
            f"free space on that disk, or {fix}.",
        )
