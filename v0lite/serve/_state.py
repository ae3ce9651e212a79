"""The service's state behind the app: the current router, the outcome store, the refresh loop.

One :class:`ServeState` per app (a Ray Serve replica builds its own from the same arguments).
Routing reads ``self.router`` once per micro-batch; the refresh loop builds the next router in
a worker thread (a shallow copy whose value model gets the new rows through
:meth:`v0lite.routing.Router.add_history`) and swaps the reference, so routing never waits for
feedback and never sees a half-applied batch. The store is the truth: a restart (or another
replica) replays it from the first row.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import shlex
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import DataError, UnpricedPolicyWarning

__all__ = ["Limits", "ServeState", "check_value_model_encoder", "load_router"]

log = logging.getLogger("v0lite.serve")
_PROBE = "v0lite serve: warm-up prompt"


# why a model with outcomes is not routable, and the fix, as feedback answers and /v1/route's 422 say it
_NO_PRICE = (
    "no price: its outcomes reach the value model only",
    'add "{p}" to the upstreams file with "price": <USD per call> (and "base_url" for chat completions), '
    "then restart the server.",
)
_NOT_IN_POOL = (
    "not in the server's --pool: its outcomes reach the value model only",
    "restart with it in --pool once `v0lite route-eval --new-model` says it pays.",
)


MAX_BODY_CAP = 1 << 30  # --max-body-bytes' upper bound (1 GiB)


@dataclass(frozen=True)
class Limits:
    """The service's limits (every one a ``v0lite serve`` flag)."""

    max_body_bytes: int = 1_000_000
    max_prompt_chars: int = 32_000
    refresh_seconds: float = 1.0
    max_batch: int = 64
    batch_wait_ms: float = 2.0
    max_queue: int = 1024
    max_route_prompts: int = 4096
    upstream_timeout_s: float = 60.0
    startup_wait_s: float = 60.0

    def check(self) -> "Limits":
        """Raise ``DataError`` naming the first bad limit (its Python name: the CLI says its flag)."""
        for name in ("max_body_bytes", "max_prompt_chars", "max_batch", "max_queue", "max_route_prompts"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise DataError(f"{name} {v!r}: must be an integer >= 1. Fix: pass {name}=<value> >= 1.")
        if self.max_body_bytes > MAX_BODY_CAP:  # a body is held whole in memory: a cap past any real request
            raise DataError(
                f"max_body_bytes {self.max_body_bytes!r}: must be <= {MAX_BODY_CAP:,} (1 GiB; a request body is "
                f"read whole into memory). Fix: pass max_body_bytes=<value> in 1..{MAX_BODY_CAP} (default 1000000)."
            )
        day = 86_400  # larger finite values hang requests (a wait) or burn a core (a refresh every 1e-300 s)
        for name, rule, low, high, why, example in (
            ("refresh_seconds", ">=", 0.01, day, " (the delay before feedback reaches routing)", "1"),
            ("upstream_timeout_s", ">", 0, day, " (with 0 every upstream call would time out)", "60"),
            ("batch_wait_ms", ">=", 0, 60_000, " (every micro-batch may wait this long)", "2"),
            ("startup_wait_s", ">=", 0, day, "", "60"),
        ):
            v = getattr(self, name)
            ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
            if not ok or not (v > low if rule == ">" else v >= low) or v > high:
                allowed = f"{rule} {low:g} and <= {high:,}"
                raise DataError(
                    f"{name} {v!r}: must be a finite number {allowed}{why}. Fix: pass {name}={example} "
                    f"(any number {allowed})."
                )
        return self


def load_router(path, *, flag: str = "--router", encoder=None):
    """A router folder saved by ``route-eval --save-router`` or :meth:`Router.save`, ready to serve.

    ``encoder``: the value model's encoder, when the folder it was fitted with has moved (checked by
    its files' fingerprint, as ``V0Regressor.load(path, encoder=...)`` does).
    """
    from ..routing import Router

    d = Path(path)
    cmd = f"v0lite route-eval TRAIN TEST --save-router {shlex.quote(str(path))}"
    fix = f"Fix: save one first with `{cmd}` or Router.save(path)."
    if not d.is_dir():
        raise DataError(f"{flag} {path}: {'is a file' if d.exists() else 'does not exist'}. {fix}")
    if not (d / "meta.json").exists():
        raise DataError(f"{flag} {path}: holds no saved router (no meta.json). {fix}")
    return Router.load(d, encoder=encoder)  # with the pool's check against the saved value model


def check_value_model_encoder(router) -> None:
    """Refuse at start-up a value model whose encoder is not the one it was fitted with (moved, changed):
    raised by the lifespan's first prediction, it would be a traceback, and every request would fail."""
    vm = router.value_model
    if hasattr(vm, "_check_encoder") and hasattr(vm, "_get_embedder"):
        vm._check_encoder(vm._get_embedder())


def _share_embedder(router) -> None:
    """The cost model and the prior read prompts with the value model's embedder (one cache, one encoder)."""
    vm = router.value_model
    if getattr(router, "embedder_", None) is None and hasattr(vm, "_get_embedder"):
        router.embedder_ = vm._get_embedder()


def _frames(rows: list[dict]):
    """The rows as outcome-log frames, in store order: one per run of consecutive rows with the same
    optional fields (step, n) present.

    Store order, not grouped by columns: a pass then applies its rows in the order the live passes
    did, whatever rows a pass holds, so every process reading the same store ends with the same
    model (the same pool order, as new models join in the order their rows come).
    """
    import polars as pl

    runs: list[tuple[tuple, list[dict]]] = []
    for r in rows:
        key = (r.get("step") is not None, r.get("n") is not None)
        if not runs or runs[-1][0] != key:
            runs.append((key, []))
        runs[-1][1].append(r)
    for (has_step, has_n), part in runs:
        cols = ["policy", "prompt", "score"] + ["step"] * has_step + ["n"] * has_n
        yield pl.DataFrame({c: [r[c] for r in part] for c in cols})


@contextlib.contextmanager
def _one_search_thread():
    """faiss searches of a micro-batch on the model thread alone, not on an OpenMP team.

    A batch's search is small: OpenMP's team start and spin-wait cost more than they save, most
    of all when the cores are busy (routerdc-7model's 53k-row index, one prompt, 2 loaded cores:
    15 ms with the default team, 5 ms with one thread; 32 prompts: 29 vs 23 ms). The setting is
    per calling thread and restored after, so the encoder (run before, in ``_embed_first``) keeps
    its threads.
    """
    faiss = sys.modules.get("faiss")
    if faiss is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class ServeState:
    """Everything a request needs, created by :func:`v0lite.serve.create_app` (see its parameters)."""

    def __init__(self, router, *, store, upstreams, pool, limits: Limits, metrics, knob=None):
        _share_embedder(router)
        self.router = router
        self.knob = knob  # the knob a bare "v0lite" routes with (None: the strategy's default)
        self.initial_policies = list(router.policies_)
        self.store = store
        self.upstreams = dict(upstreams or {})
        self.pool_filter = None if pool is None else list(pool)
        self.limits = limits
        self.metrics = metrics
        self.prices = {n: u.price for n, u in self.upstreams.items() if u.price is not None}
        self.last_id = 0
        self.applied_rows = 0
        self.started = False
        self.last_refresh = None
        self.refresh_error: str | None = None
        self.store_error: str | None = None  # the store is unreadable: no retry soon will help
        self.write_error: str | None = None  # the last feedback commit failed (until one works, or a check passes)
        # a lasting fault of the volume (full, read-only, failing) is re-checked by the refresh loop, with backoff
        self._write_probe, self._write_failures, self._probes, self._probe_at = False, 0, 0, 0.0
        # names of acknowledged rows not yet applied (this process's batches): known to feedback at once
        self.pending_names: dict[str, int] = {}
        self.unpriced: set[str] = set()
        # measured apply times (embedding included): per row from large passes, the fixed part from small ones
        self.sec_per_row: float | None = None
        self.apply_fixed_s = 0.0
        self._ready = asyncio.Event()  # set once the store is replayed (binds to the serving loop on first wait)
        # one model thread: embedding + prediction of the micro-batches, off the event loop
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="v0lite-model")
        self._task = None
        self.batchers = {}
        self.stopping = False  # a SIGTERM (or Ctrl-C) reached the server: it drains and stops
        self._chained: dict = {}  # signal -> (the server's handler, ours before it)

    # -- pool
    def not_routable(self, name: str) -> tuple[str, str] | None:
        """``(why, fix)`` when the value model knows ``name`` but routing may not choose it; None otherwise."""
        if name in self.unpriced:
            return _NO_PRICE[0], _NO_PRICE[1].format(p=name)
        if self.pool_filter is not None and name not in self.pool_filter and name in self.known_policies():
            return _NOT_IN_POOL
        return self.no_outcomes_yet(name)

    def no_outcomes_yet(self, name: str) -> tuple[str, str] | None:
        """``(why, fix)`` for a model of the upstreams file the value model does not know yet; None otherwise."""
        if name not in self.upstreams or name in self.known_policies():
            return None
        if name in self.pending_names:  # acknowledged here, applied by the next refresh pass
            return "its first outcomes are stored and reach the value model at the next refresh", "retry in a second."
        price = self.prices.get(name)
        if price is None:
            return (
                "in the upstreams file (no price) but no outcomes yet: its outcomes will reach the value model only",
                'POST its outcomes to /v1/feedback; to let it join the pool, give it "price": <USD per call> in the '
                "upstreams file and restart the server.",
            )
        said = f"in the upstreams file (price {price:g}) but no outcomes yet"
        if self.pool_filter is not None and name not in self.pool_filter:
            return f"{said}, and not in the server's --pool", _NOT_IN_POOL[1]
        return f"{said}: it joins the pool with its first outcome", "POST its outcomes to /v1/feedback."

    def allowed(self, router=None) -> list[str]:
        """The pool routing may choose from now: the router's (grown by feedback), narrowed by ``pool``."""
        router = router or self.router
        return [p for p in router.policies_ if self.pool_filter is None or p in self.pool_filter]

    def known_policies(self) -> list[str]:
        index = getattr(self.router.value_model, "index_", None)
        return list(index.policies) if index is not None else list(self.router.policies_)

    def stored_not_applied(self, name: str) -> bool:
        """Whether ``name`` has rows in the store that the refresh has not applied yet (acknowledged by this
        process, or found in the store: another process's batch)."""
        if name in self.pending_names:
            return True
        has = getattr(self.store, "has_policy", None)
        return bool(has is not None and has(name, self.last_id))

    def note_stored(self, names, last_id: int) -> None:
        for p in names:
            self.pending_names[p] = max(last_id, self.pending_names.get(p, 0))

    # -- lifecycle
    async def start(self) -> None:
        from ._batcher import MicroBatcher

        lim = self.limits

        def on_batch(n, _):
            self.metrics.batch_size.observe(n)

        for name, fn in (("route", self._matrix), ("predict", self._predict)):
            b = MicroBatcher(
                fn,
                self.executor,
                max_batch=lim.max_batch,
                wait_s=lim.batch_wait_ms / 1000.0,
                max_queue=lim.max_queue,
                on_batch=on_batch,
            )
            b.start()
            self.batchers[name] = b
        # load the encoder (and the embedding cache) now, not on the first new prompt: readiness means ready.
        # The probe alone may be served from the cache, so the encoder is also run once on its own
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self.router.predict_matrix, [_PROBE])
        vm = self.router.value_model
        if hasattr(vm, "_get_embedder"):
            await loop.run_in_executor(self.executor, lambda: vm._get_embedder().warm_up())
        if self.store is not None:
            # restart = replay: the whole store before any request is served. It runs as the refresh
            # loop's first pass, so the port is open meanwhile: /healthz answers, /readyz says 503, and
            # other requests wait for it (a long replay must not look like a dead process)
            self._task = asyncio.get_running_loop().create_task(self._refresh_loop(), name="v0lite-refresh")
            self._hear_stop()
        else:
            self._ready.set()
        self.started = True

    def _hear_stop(self) -> None:
        """Run ahead of the server's own SIGTERM/SIGINT handlers (uvicorn's graceful stop): ``stopping`` turns true.

        The server drains without telling the app, so requests waiting for the replay would wait out
        the whole drain time (Kubernetes then kills the process): the replay cannot finish in a drain,
        so they are answered at once. Only a handler the server set is chained (the default one ends
        the process anyway), from the main thread only (the only one that may set handlers).
        """
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            before = signal.getsignal(sig)
            if not callable(before):
                continue

            def handler(signum, frame, before=before):
                self.stopping = True  # one assignment: safe in a signal handler
                before(signum, frame)

            signal.signal(sig, handler)
            self._chained[sig] = (before, handler)

    @property
    def ready(self) -> bool:
        """Whether the store is replayed and the last refresh succeeded (``/readyz``)."""
        return self.started and self._ready.is_set() and self.store_problem() is None

    def store_problem(self) -> str | None:
        """What ``/readyz`` and ``/v1/stats`` say as ``refresh_error``: a failed refresh, or a failed commit."""
        return self.refresh_error or self.write_error

    def commit_failed(self, text: str | None, *, recheck: bool = False) -> None:
        """A feedback commit found the store unreadable (``text``), or worked again (None): logged once.

        ``recheck``: the cause is one the volume recovers from (full, read-only, failing): the refresh
        loop re-checks whether the store takes writes again, so readiness does not wait for a client's
        batch (behind a load balancer none comes while ``/readyz`` says 503). A damaged file is not
        re-checked: it needs a restore and a restart.
        """
        if text is not None and text != self.write_error:
            log.error("v0lite serve: feedback could not be stored (/readyz answers 503 until writes work): %s", text)
        elif text is None and self.write_error is not None:
            log.warning("v0lite serve: feedback is stored again")
        if text is not None:
            self._write_failures += 1
            self._write_probe, self._probes = recheck, 0
            self._probe_at = time.monotonic() + self.limits.refresh_seconds
        self.write_error = text

    async def _recheck_writes(self) -> None:
        """While a lasting write fault holds readiness, ask the store (with backoff) whether writes work again."""
        check = getattr(self.store, "check_writes", None)
        if self.write_error is None or not self._write_probe or check is None or time.monotonic() < self._probe_at:
            return
        seen = self._write_failures
        try:
            why = await asyncio.to_thread(check)
        except Exception as exc:  # noqa: BLE001 - a probe that fails says "not yet", it must not stop the refresh
            why = f"{type(exc).__name__}: {exc}"
        self._probes += 1
        if why is None and seen == self._write_failures and self.write_error is not None:  # no new failure meanwhile
            log.warning("v0lite serve: the outcome store takes writes again (checked without a batch)")
            self.write_error = None
            return
        # 2, 4, ... 32 refresh periods, at most a minute: a volume that stays full is not probed 1/s forever
        wait = min(self.limits.refresh_seconds * 2 ** min(self._probes, 5), 60.0)
        self._probe_at = time.monotonic() + max(wait, self.limits.refresh_seconds)
        log.debug("v0lite serve: the outcome store does not take writes yet: %s", why)

    async def wait_ready(self) -> None:
        """Return once the store is replayed; 503 (retry later) if that takes over ``startup_wait_s``."""
        from ._models import ApiError

        if self._ready.is_set():
            return
        deadline = time.monotonic() + self.limits.startup_wait_s
        while not self._ready.is_set():
            if self.store_error is not None:  # the replay cannot finish: say why now, not after the wait
                raise ApiError(503, self.store_error, code="store_unreadable")
            if self.stopping:  # nor can it finish inside the drain time: say so now, not when it runs out
                raise ApiError(
                    503,
                    f"the server is stopping before the replay of its outcome store finished ({self.applied_rows:,} "
                    "rows applied so far), so it cannot answer this request.",
                    code="draining",
                    fix="retry the request (on another replica, or once the server is back).",
                )
            left = deadline - time.monotonic()
            if left <= 0:
                why = f" (its last pass failed: {self.refresh_error})" if self.refresh_error else ""
                raise ApiError(
                    503,
                    f"the server is still replaying its outcome store ({self.applied_rows:,} rows applied so far)"
                    f"{why}. Fix: retry when GET /readyz answers 200.",
                )
            try:
                await asyncio.wait_for(self._ready.wait(), min(left, 0.2))  # woken early by a store error too
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        import signal

        self.started = False
        for sig, (before, ours) in self._chained.items():
            if signal.getsignal(sig) is ours:  # the server's own handler back (uvicorn then restores its originals)
                signal.signal(sig, before)
        self._chained = {}
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for b in self.batchers.values():
            await b.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self.store is not None:
            self.store.close()

    # -- refresh: the store's new rows reach the router
    async def _refresh_loop(self) -> None:
        from ._store import StoreUnreadable

        first, failures = True, 0
        while True:
            if not first:
                # after failures, back off (up to a minute): a damaged store is not read 1/s forever
                delay = self.limits.refresh_seconds * (2 ** min(failures, 10)) if failures else 0
                await asyncio.sleep(max(self.limits.refresh_seconds, min(delay, 60.0)))
            first = False
            try:
                await self.refresh()
                self._ready.set()
                if failures:
                    log.warning("v0lite serve: refresh works again after %d failed passes", failures)
                failures, self.store_error = 0, None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving with the last good router; readyz reports it
                failures += 1
                text = str(exc) if isinstance(exc, StoreUnreadable) else f"{type(exc).__name__}: {exc}"
                if isinstance(exc, StoreUnreadable):
                    self.store_error = text
                if text != self.refresh_error:  # each new error once, not once a pass
                    log.error("v0lite serve: refresh failed (retried with backoff, logged once): %s", text)
                self.refresh_error = text
            await self._recheck_writes()

    async def refresh(self) -> int:
        """Apply every stored row newer than the last applied one; returns how many."""
        total = 0
        while True:
            # the replay at start goes in chunks, so that /readyz's applied_rows shows its progress
            chunk = 50_000 if self._ready.is_set() else 5_000
            rows = await asyncio.to_thread(self.store.read_since, self.last_id, chunk)
            if not rows:
                break
            t0 = time.perf_counter()
            # a live pass warms the new router before the swap; the replay only its last one (below)
            live = self._ready.is_set()
            new = await asyncio.to_thread(self._apply, self.router, [r for _, r in rows], warm=live)
            self.router, self.last_id = new, rows[-1][0]  # one reference swap: routing sees all or nothing
            self._measure(time.perf_counter() - t0, len(rows))
            self.applied_rows += len(rows)
            self.metrics.applied_rows.set(self.applied_rows)
            total += len(rows)
            self.pending_names = {p: i for p, i in self.pending_names.items() if i > self.last_id}
        if total and not self._ready.is_set():  # the replay's router, before readiness lets routes in
            await asyncio.to_thread(self._warm, self.router)
        self.last_refresh, self.refresh_error = time.time(), None
        self.metrics.applied_rows.set(self.applied_rows)
        return total

    def _measure(self, seconds: float, n_rows: int) -> None:
        """Remember how long applying ``n_rows`` took: the slower of this pass and a decaying memory (errs long).

        A pass of 100 rows or more measures the time per row (embedding new prompts is most of
        it); a smaller one the fixed part (copying the router, the index update), which would
        inflate a per-row rate.
        """
        if n_rows >= 100:
            rate = seconds / n_rows
            self.sec_per_row = rate if self.sec_per_row is None else max(rate, 0.8 * self.sec_per_row)
        else:
            self.apply_fixed_s = max(seconds, 0.8 * self.apply_fixed_s)

    def applied_within(self, queued: int) -> float:
        """Seconds until ``queued`` stored rows (a new batch and those before it) reach routing: an estimate.

        The refresh delay, plus the fixed part of a pass and the rows' apply time at the measured
        rates; before a large pass is measured, 10 ms a row (MiniLM on 2 loaded cores).
        """
        rate = self.sec_per_row if self.sec_per_row is not None else 0.01
        est = self.limits.refresh_seconds + self.apply_fixed_s + queued * rate
        return math.ceil(10 * est) / 10  # rounded up: it errs long

    def joining(self, policies: list[str]) -> list[dict]:
        """What feedback does with models new to the value model: whether and at what cost they join the pool."""
        costs, unpriced = self.router.join_costs(policies, self.prices)
        out = []
        for p in policies:
            item = {"policy": p, "joins_pool": p in costs, "cost": costs.get(p)}
            if p in unpriced:
                item["why"], item["fix"] = _NO_PRICE[0], _NO_PRICE[1].format(p=p)
            elif self.pool_filter is not None and p not in self.pool_filter:
                item["joins_pool"] = False
                item["why"], item["fix"] = _NOT_IN_POOL
            elif self.upstreams and p not in self.upstreams:
                item["note"] = "/v1/route may choose it; chat completions cannot reach it without an upstream."
            out.append(item)
        return out

    def check_rows(self, rows: list[dict]) -> None:
        """Raise the library's ``DataError`` for rows ``add_history`` would reject (before they are stored)."""
        from ..log import validate_log

        for frame in _frames(rows):
            validate_log(frame)

    def _apply(self, router, rows: list[dict], *, warm: bool = True):
        """The next router: a copy of ``router`` with ``rows`` added (``warm``: and its lazy parts built)."""
        new = copy.copy(router)
        new.value_model = copy.copy(router.value_model)  # add_history swaps the copy's index, not the live one
        names = list(dict.fromkeys(r["policy"] for r in rows))
        # the upstreams' prices of this batch's models that may join (add_history warns about any other entry)
        prices = {p: self.prices[p] for p in names if p in self.prices and p not in new.policies_}
        _, unpriced = new.join_costs(names, prices)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for frame in _frames(rows):
                fp = set(frame["policy"].to_list())
                new.add_history(frame, prices={p: c for p, c in prices.items() if p in fp and p not in new.policies_})
            if warm:  # its warnings are logged once below, as add_history's are
                self._warm(new, names)
        fresh = [p for p in unpriced if p not in self.unpriced]
        if fresh:  # in the service's terms: the library's warning says prices={...}
            self.unpriced.update(fresh)
            log.warning(
                "v0lite serve: models %s have outcomes but no price, so they reach the value model only. Fix: add "
                'each to the upstreams file (--upstreams) with "price": <USD per call>, then restart.',
                fresh,
            )
        for w in caught:
            text = str(w.message)
            if not issubclass(w.category, UnpricedPolicyWarning) and text not in self.unpriced:
                self.unpriced.add(text)
                log.warning("v0lite serve: %s", text)
        return new

    def _warm(self, router, names=()) -> None:
        """Build what the first requests to ``router`` would otherwise build, on this (refresh) thread.

        ``add_history`` drops the search structures of every policy it adds rows to; they are rebuilt
        at the first search, and a policy over ``v0lite.index.APPROX_THRESHOLD`` rows trains a faiss
        IVF index then (about 1 s at 50,000 rows). Predicting the warm-up prompt runs that search now,
        before the swap: the route after it does not wait (``/v1/route`` stalled ~1 s per refresh).
        ``names``: policies of the batch outside the pool, which ``/v1/predict`` may still ask about.
        """
        import polars as pl

        vm = router.value_model
        known = getattr(getattr(vm, "index_", None), "policy_to_code", {})
        rest = [p for p in names if p not in router.policies_ and p in known]
        with _one_search_thread():  # a background build: the other cores stay with the routes meanwhile
            router.predict_matrix([_PROBE])  # every pool policy, as a route asks
            if rest:
                vm.predict(pl.DataFrame({"policy": rest, "prompt": [_PROBE] * len(rest)}))

    # -- micro-batch functions (run in the model thread)
    def _count_cache(self, router, texts: list[str]) -> None:
        vm = router.value_model
        if getattr(vm, "index_", None) is None or not hasattr(vm, "_n_cached"):
            return
        hits = vm._n_cached(texts)  # memory only: disk shards load into it when read
        self.metrics.cache_hits.inc(hits)
        self.metrics.cache_misses.inc(len(texts) - hits)

    def _embed_first(self, router, texts: list[str]) -> None:
        """Embed new prompts before the search (with the encoder's threads); the search then finds them cached."""
        vm = router.value_model
        if hasattr(vm, "_get_embedder") and getattr(vm, "index_", None) is not None:
            known = vm.index_.key_to_row
            from ..embed import prompt_keys

            new = [t for t, k in zip(texts, prompt_keys(texts)) if k not in known]
            if new:
                vm._get_embedder().encode(new)

    def _matrix(self, prompts: list[str]) -> list:
        router = self.router  # one router for the whole batch
        uniq = list(dict.fromkeys(prompts))
        self._count_cache(router, uniq)
        self._embed_first(router, uniq)
        with _one_search_thread():
            P, C = router.predict_matrix(uniq)
        pos = {t: i for i, t in enumerate(uniq)}
        return [(router, P[pos[t]], C[pos[t]]) for t in prompts]

    def _predict(self, pairs: list[tuple[str, str]]) -> list:
        import polars as pl

        router = self.router
        uniq = list(dict.fromkeys(t for _, t in pairs))
        self._count_cache(router, uniq)
        self._embed_first(router, uniq)
        X = pl.DataFrame({"policy": [p for p, _ in pairs], "prompt": [t for _, t in pairs]})
        with _one_search_thread():
            values = router.value_model.predict(X)
        return [float(v) for v in values]

    # -- stats
    def feedback_count(self) -> int:
        """Rows in the store (a read of the database: run it off the event loop)."""
        return self.store.count() if self.store is not None else 0

    def stats(self, feedback_rows: int) -> dict:
        """``/v1/stats``; ``feedback_rows``: :meth:`feedback_count`. Run on the event loop, where the refresh
        assigns the router and its row count together: read from a thread (around the store's count), the
        router could be the one before a swap and ``applied_rows`` the one after (history_rows 60 short)."""
        vm = self.router.value_model
        return {
            "feedback_rows": feedback_rows,
            "applied_rows": self.applied_rows,
            "pool": self.allowed(),
            "joined": [p for p in self.router.policies_ if p not in self.initial_policies],
            "upstreams": sorted(self.upstreams),
            "history_rows": int(getattr(vm, "n_history_", 0)),
            "strategy": getattr(self.router.strategy_, "name", type(self.router.strategy_).__name__),
            "knob": self.knob if self.knob is not None else getattr(self.router.strategy_, "default_knob", None),
            "refresh_seconds": self.limits.refresh_seconds,
            "last_refresh_age_s": None if self.last_refresh is None else round(time.time() - self.last_refresh, 3),
            "refresh_error": self.store_problem(),
            "queued": {k: b.pending for k, b in self.batchers.items()},
        }
