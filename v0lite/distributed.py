"""Optional Ray paths: embed millions of prompts, or score a prompt pool, on a Ray cluster.

Ray is imported only inside these functions (``pip install 'v0lite[ray]'``). Nothing here changes
the single-machine path: :func:`embed_with_ray` writes ordinary embedding-cache shards (written by
:class:`v0lite.embed.Embedder` itself, in the actors), so a later ``V0Regressor.fit`` or
``Embedder.encode`` on any machine that sees the same ``cache_dir`` reads them unchanged.

When to use it: see ``docs/distributed.md`` (RL trainers already on Ray, millions of prompts,
more than one machine). On one machine with a few hundred thousand prompts, the plain
``Embedder`` is as fast and simpler.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .exceptions import DataError, V0liteError

__all__ = ["embed_with_ray", "predict_with_ray"]

_ROW = "_v0lite_row"
_OUT = "p_success"  # the score column, as `v0lite predict` writes it


def _ray():
    from ._extras import MissingExtraError

    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            f"the Ray path needs Ray Data, which is not installed ({exc}). "
            "Fix: pip install 'v0lite[ray]'  (or: pip install 'ray[data]')."
        ) from exc
    return ray


def _ensure_init(ray, address: str | None) -> None:
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)


def _map_kwargs(ray, num_actors: int, num_cpus_per_actor: float) -> dict:
    """Fixed-size actor pool: ``compute=ActorPoolStrategy(size=n)`` (Ray >= 2.51 deprecates
    ``concurrency=``); older Ray Data takes ``concurrency=n``."""
    import inspect

    kw: dict[str, Any] = {"num_cpus": num_cpus_per_actor}
    params = inspect.signature(ray.data.Dataset.map_batches).parameters
    major_minor = tuple(int(p) for p in ray.__version__.split(".")[:2])
    if "compute" in params and hasattr(ray.data, "ActorPoolStrategy") and major_minor >= (2, 51):
        kw["compute"] = ray.data.ActorPoolStrategy(size=num_actors)
    elif "concurrency" in params:
        kw["concurrency"] = num_actors
    else:  # Ray < 2.9
        kw["compute"] = ray.data.ActorPoolStrategy(size=num_actors)
    return kw


def _unique_prompts(log_or_prompts) -> list[str]:
    """The distinct prompts, in first-seen order, after the checks fit and predict make on a prompt column
    (text, not null, not blank), with the row numbers of the caller's list or log."""
    import polars as pl

    from .log import _string_column, as_frame

    if isinstance(log_or_prompts, (str, os.PathLike)) or not isinstance(log_or_prompts, Sequence):
        df = as_frame(log_or_prompts)
        if "prompt" not in df.columns:
            raise DataError(
                f"the log has no 'prompt' column (columns: {df.columns}). Fix: pass a log or a list of prompts."
            )
    else:
        from .embed import _check_decodable

        prompts = list(log_or_prompts)
        for i, t in enumerate(prompts):
            if not isinstance(t, str):
                raise DataError(f"prompt at row {i} is {type(t).__name__} ({t!r:.60}), not text. Fix: pass strings.")
            if not t.isascii():  # a lone surrogate: polars would refuse it unexplained, the tokenizer too
                _check_decodable(i, t)
        df = pl.DataFrame({"prompt": pl.Series(prompts, dtype=pl.String)})
    return list(dict.fromkeys(_string_column(df, "prompt", allow_empty=False).to_list()))


def _v0lite_cause(exc: BaseException) -> V0liteError | None:
    """The v0lite error an actor raised, out of Ray's wrappers (RayTaskError, Ray Data's user-code error)."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        # Ray's wrapper may subclass the cause's class too (as_instanceof_cause): only a v0lite class is the one
        if isinstance(e, V0liteError) and type(e).__module__.startswith("v0lite"):
            return e
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return None


def _run(fn):
    """``fn()`` (a Ray Data execution); a V0liteError raised in an actor comes back as itself."""
    try:
        return fn()
    except Exception as exc:
        cause = _v0lite_cause(exc)
        if cause is None:
            raise
        raise cause.with_traceback(None) from None


def _blocks(n: int, num_actors: int, batch_size: int) -> int:
    return max(1, min(n // max(batch_size, 1) + 1, max(4 * num_actors, n // 4096 + 1)))


def _dataset(ray, frame, nblocks: int):
    """The rows as ``nblocks`` blocks, split here on the driver.

    Not ``from_pandas(frame).repartition(n)``: the repartition runs as Ray tasks (1 CPU each) in the
    same streaming execution as the actor pool, and when the pool holds every CPU (1 actor x 1 CPU
    on a 1-CPU cluster, or 1 x 0.5 there: 0.5 left, less than a task needs) those tasks never start
    and the call hangs with no output. Blocks made here need no CPU while the pool runs.
    """
    bounds = np.linspace(0, len(frame), nblocks + 1).astype(int)
    parts = [frame.iloc[a:b].reset_index(drop=True) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    ds = ray.data.from_pandas(parts)
    # an actor's error as itself (a v0lite error with its fix), not as Ray Data's UserCodeException that
    # drops it: set on this dataset's own context, so the caller's other pipelines are untouched
    ds.context.raise_original_map_exception = True
    return ds


def _check_cpus(ray, fn: str, num_actors: int, num_cpus_per_actor: float) -> None:
    """Refuse up front an actor that no node can hold: Ray would wait for it forever, silently.

    A pool larger than the cluster (2 actors x 1 CPU on 1 CPU) is fine: Ray Data runs with the
    actors that fit. One actor larger than every node never starts, and the call would hang.
    """
    total = float(ray.cluster_resources().get("CPU", 0.0))
    nodes = [n for n in ray.nodes() if n.get("Alive", n.get("alive", True))]
    largest = max((float(n.get("Resources", {}).get("CPU", 0.0)) for n in nodes), default=total)
    if num_cpus_per_actor <= largest + 1e-9:
        return
    where = f"{total:g} CPU(s)" if len(nodes) <= 1 else f"{total:g} CPU(s), at most {largest:g} on one node"
    if largest >= 1:
        fix = f"num_actors={int(total)}, num_cpus_per_actor=1 (at most {largest:g}; 0.5 lets two share a core)"
    elif largest > 0:
        fix = f"num_actors=1, num_cpus_per_actor={largest:g}"
    else:
        fix = "a cluster with CPUs (this one has none)"
    raise V0liteError(
        f"{fn}: the Ray cluster has {where}, but this call asks for num_actors x num_cpus_per_actor = "
        f"{num_actors} x {num_cpus_per_actor:g} = {num_actors * num_cpus_per_actor:g} CPUs, and not even one "
        f"actor of {num_cpus_per_actor:g} CPUs fits on a node, so the pool would never start and the call "
        "would wait forever (the rows are split on the driver: no read task needs a CPU beside the pool). "
        f"Fix: pass {fix}, or give Ray more CPUs (ray.init(num_cpus={int(np.ceil(num_cpus_per_actor))}) on "
        "one machine; on a cluster, add larger nodes first)."
    )


class _EmbedActor:
    """One encoder per actor; each batch is embedded and written as cache shards by an Embedder."""

    def __init__(self, model, cache_dir, batch_size, chunk_size, threads, long_text="head_tail", window_chars=1000):
        from .embed import Embedder

        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:  # a user's own encoder object needs no torch
            pass
        self.embedder = Embedder(
            model,
            cache_dir=cache_dir,
            batch_size=batch_size,
            chunk_size=chunk_size,
            long_text=long_text,  # the driver's: its keys say how each long text's vector is made
            window_chars=window_chars,
        )
        self.embedder._encoder()  # load the model once, now

    def __call__(self, batch: dict) -> dict:
        keys = [str(k) for k in batch["key"]]
        texts = [str(t) for t in batch["prompt"]]
        self.embedder._compute(keys, texts)  # writes shard(s) in the shared cache format
        self.embedder._memory.clear()  # the shards hold them; keep the actor's memory flat
        return {"n": np.array([len(keys)], np.int64)}


def embed_with_ray(
    log_or_prompts,
    *,
    model=None,
    batch_size: int = 64,
    num_actors: int = 2,
    num_cpus_per_actor: float = 0.5,
    cache_dir=None,
    out=None,
    chunk_size: int = 2048,
    address: str | None = None,
    long_text: str = "head_tail",
    window_chars: int = 1000,
) -> dict:
    """Embed the unique prompts of a log with a Ray Data actor pool, into the embedding cache.

    Parameters
    ----------
    log_or_prompts : list of str, DataFrame with a ``prompt`` column, or a log path
    model : str or object, optional
        Encoder, as for :class:`v0lite.embed.Embedder` (default: all-MiniLM-L6-v2). A custom
        encoder object must be picklable (Ray ships it to the actors).
    batch_size : int, default 64
        Encoder batch size inside an actor.
    num_actors : int, default 2
        Actors in the pool; each loads the encoder once.
    num_cpus_per_actor : float, default 0.5
        Ray CPUs reserved per actor (fractions allowed); torch uses ``max(1, round(.))`` threads.
    cache_dir : str or Path, optional
        Cache root, as for ``Embedder`` (default ``$V0LITE_CACHE`` or ``~/.cache/v0lite``). On a
        multi-node cluster it must be a shared filesystem path visible to every node.
    out : str or Path, optional
        Alias of ``cache_dir`` (where the shards go); give one of the two.
    chunk_size : int, default 2048
        Prompts per actor call and per shard file.
    address : str, optional
        Ray cluster address for ``ray.init`` when Ray is not initialised yet (default: local).
    long_text, window_chars
        As for :class:`v0lite.embed.Embedder`: how texts longer than ``window_chars`` are embedded,
        and so under which cache key; give the values the later ``Embedder`` or model will use.

    Returns
    -------
    dict with ``unique`` (distinct prompts), ``cached`` (already in the cache, skipped),
    ``embedded`` (computed now) and ``shard_dir``.

    Examples
    --------
    >>> from v0lite.distributed import embed_with_ray             # doctest: +SKIP
    >>> embed_with_ray("log.parquet", num_actors=8, cache_dir="/shared/v0cache")  # doctest: +SKIP
    {'unique': 1200000, 'cached': 0, 'embedded': 1200000, 'shard_dir': '...'}
    """
    from .embed import Embedder

    ray = _ray()
    if out is not None and cache_dir is not None and Path(out) != Path(cache_dir):
        raise V0liteError("give the cache location once: cache_dir or out, not two different paths.")
    cache_dir = cache_dir if cache_dir is not None else out
    if cache_dir is False:
        raise V0liteError("embed_with_ray writes cache shards; cache_dir=False has nowhere to write them.")
    if num_actors < 1 or num_cpus_per_actor <= 0:
        raise V0liteError(
            f"num_actors must be >= 1 and num_cpus_per_actor > 0, got {num_actors}, {num_cpus_per_actor}."
        )
    prompts = _unique_prompts(log_or_prompts)
    local = Embedder(model, cache_dir=cache_dir, long_text=long_text, window_chars=window_chars)
    keys = local._cache_keys(prompts)  # the keys Embedder.encode reads: a long text's own under head_tail
    local._read_shards()
    todo = [i for i, k in enumerate(keys) if k not in local._memory]
    result = {
        "unique": len(prompts),
        "cached": len(prompts) - len(todo),
        "embedded": 0,
        "shard_dir": str(local._shard_dir),
    }
    if not todo:
        return result
    import pandas as pd

    from ._encoder_load import check_hub_name

    check_hub_name(model)  # here, at once: each actor would wait out the hub client's retries, then die raw
    _ensure_init(ray, address)
    frame = pd.DataFrame({"key": [keys[i] for i in todo], "prompt": [prompts[i] for i in todo]})
    nblocks = _blocks(len(todo), num_actors, chunk_size)
    num_actors = min(num_actors, nblocks)
    _check_cpus(ray, "embed_with_ray", num_actors, num_cpus_per_actor)
    ds = _dataset(ray, frame, nblocks)
    threads = max(1, int(round(num_cpus_per_actor)))
    done = ds.map_batches(
        _EmbedActor,
        batch_size=chunk_size,
        batch_format="numpy",
        fn_constructor_kwargs={
            "model": model,
            "cache_dir": str(Path(cache_dir)) if cache_dir else None,
            "batch_size": batch_size,
            "chunk_size": chunk_size,
            "threads": threads,
            "long_text": long_text,
            "window_chars": window_chars,
        },
        **_map_kwargs(ray, num_actors, num_cpus_per_actor),
    )
    result["embedded"] = int(sum(int(r["n"]) for r in _run(done.take_all)))
    return result


class _PredictActor:
    """Loads a saved model once; predicts one batch of query rows per call."""

    def __init__(self, model_dir, encoder, cache_dir, threads, exclude_own_prompt):
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass
        from .estimator import V0Regressor

        self.model = V0Regressor.load(model_dir, encoder=encoder)
        if cache_dir is not None:
            self.model.cache_dir = cache_dir
        self.exclude_own_prompt = exclude_own_prompt

    def __call__(self, batch):
        import polars as pl

        df = pl.from_pandas(batch)
        cols = [c for c in ("policy", "prompt", "step") if c in df.columns]
        p = self.model.predict(df.select(cols), exclude_own_prompt=self.exclude_own_prompt)
        return batch[[_ROW]].assign(**{_OUT: p})


def predict_with_ray(
    model_dir,
    queries,
    out=None,
    *,
    num_actors: int = 2,
    num_cpus_per_actor: float = 0.5,
    batch_size: int = 4096,
    encoder=None,
    cache_dir=None,
    exclude_own_prompt: bool = False,
    address: str | None = None,
    force: bool = False,
):
    """Score a prompt pool with a saved model, in a Ray Data actor pool (one model per actor).

    Parameters
    ----------
    model_dir : str or Path
        A folder written by ``V0Regressor.save`` (readable from every node).
    queries : DataFrame or path
        Columns ``policy``, ``prompt`` and optionally ``step`` (other columns are carried along).
    out : str or Path, optional
        Write the queries plus a ``p_success`` column here (.parquet, .csv or .jsonl), atomically,
        as ``v0lite predict`` writes them; checked before any Ray work as ``v0lite predict`` checks
        ``--out`` (suffix, stream, folder, FIFO, trailing '/', parent, permissions, name length, an
        existing non-empty file).
    num_actors, num_cpus_per_actor : see :func:`embed_with_ray`
    batch_size : int, default 4096
        Query rows per actor call.
    encoder : object, optional
        The encoder object, when the model was fitted with a custom encoder (must be picklable).
    cache_dir : str or Path, optional
        Embedding cache the actors read (and fill) for prompts the model has not seen; run
        :func:`embed_with_ray` first to embed a huge pool in parallel.
    exclude_own_prompt : bool, default False
        As in ``V0Regressor.predict``.
    force : bool, default False
        Replace an existing non-empty ``out`` (without it, it is refused before any work, as
        ``v0lite predict`` refuses it without ``--force``).

    Returns
    -------
    polars.DataFrame: the queries in their original order with a ``p_success`` column (an input
    column of that name is replaced).
    """
    import polars as pl

    from .log import as_frame, validate_log, write_log

    ray = _ray()
    _check_out(out, force)
    df = as_frame(queries)
    cols = [c for c in ("policy", "prompt", "step") if c in df.columns]
    # the checks V0Regressor.predict makes, here on the driver: rows of the caller's frame, no actor started
    checked = validate_log(df.select(cols), require_score=False, allow_empty=True)
    if not (Path(model_dir) / "meta.json").exists():
        raise V0liteError(
            f"{model_dir}: not a saved v0lite model (no meta.json). Fix: pass the folder given to save()."
        )
    _check_policies(model_dir, checked["policy"])
    if num_actors < 1 or num_cpus_per_actor <= 0:
        raise V0liteError(
            f"num_actors must be >= 1 and num_cpus_per_actor > 0, got {num_actors}, {num_cpus_per_actor}."
        )
    if df.height == 0:
        res = df.with_columns(pl.Series(_OUT, [], dtype=pl.Float64))
    else:
        _ensure_init(ray, address)
        frame = checked.with_row_index(_ROW).to_pandas()
        nblocks = _blocks(df.height, num_actors, batch_size)
        num_actors = min(num_actors, nblocks)
        _check_cpus(ray, "predict_with_ray", num_actors, num_cpus_per_actor)
        ds = _dataset(ray, frame, nblocks)
        threads = max(1, int(round(num_cpus_per_actor)))
        scored = ds.map_batches(
            _PredictActor,
            batch_size=batch_size,
            batch_format="pandas",
            fn_constructor_kwargs={
                "model_dir": str(Path(model_dir).resolve()),
                "encoder": encoder,
                "cache_dir": str(cache_dir) if cache_dir else None,
                "threads": threads,
                "exclude_own_prompt": exclude_own_prompt,
            },
            **_map_kwargs(ray, num_actors, num_cpus_per_actor),
        )
        parts = _run(scored.to_pandas)
        order = np.argsort(parts[_ROW].to_numpy(), kind="stable")
        if len(order) != df.height:
            raise V0liteError(f"Ray returned {len(order)} predictions for {df.height} queries.")
        res = df.with_columns(pl.Series(_OUT, parts[_OUT].to_numpy()[order], dtype=pl.Float64))
    if out is not None:
        write_log(res, out)
    return res


def _check_out(out, force: bool) -> None:
    """``out`` refused before any Ray work, as ``v0lite predict`` refuses ``--out`` (one helper, below the
    ``commands`` layer): a suffix ``write_log`` cannot write, a stream, a folder, a trailing '/', a FIFO, a name
    too long, a link into a missing folder, a parent that is a file or cannot be written, or an existing
    non-empty file without ``force``; each in the library's terms (``out=``, ``force=True``)."""
    from ._out_checks import check_no_replace, check_output
    from .log import WRITE_SUFFIXES

    check_output(out, "out=", WRITE_SUFFIXES)
    check_no_replace({"out=": out}, force, "force=True")


def _check_policies(model_dir, policies) -> None:
    """A query policy the saved model has no history of, refused on the driver as ``V0Regressor.predict``
    refuses it (its fallback is 'error'), with the row of the caller's frame. ``meta.json`` is read as
    ``V0Regressor.load`` reads it (:func:`v0lite.persist.read_folder`), so a damaged model is refused here
    too, with the load's message, and an interrupted save is recovered once, before the actors load it."""
    from ._log_warnings import unknown_policy_error
    from .persist import FORMAT_NAME, FORMAT_VERSION, read_folder

    meta = read_folder(
        model_dir, format_name=FORMAT_NAME, format_version=FORMAT_VERSION, required=("history.safetensors",)
    )
    params = meta.get("params")
    if not isinstance(params, dict) or params.get("fallback", "error") != "error":
        return  # a bad value is the load's to refuse (check_model_meta), in the actors, with its own message
    known = meta.get("policies")
    if not isinstance(known, list) or not all(isinstance(k, str) for k in known):
        return
    unknown = ~policies.is_in(known)
    if unknown.any():
        raise unknown_policy_error(
            policies,
            unknown.to_numpy(),
            known,
            "drop those rows, or add some of their outcomes to the model (V0Regressor.load(model_dir).add_history"
            "(X, y), then save it), or save it with fallback='global_mean'.",
            where=f" in the model at {model_dir}",
        )
