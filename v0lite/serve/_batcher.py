"""Micro-batching: requests that arrive together share one embed + predict call.

The shape of Infinity's ``BatchHandler`` and text-embeddings-inference's queue: a request puts
its items on a bounded queue and awaits a future; one worker takes what is waiting (up to
``max_batch`` items, waiting at most ``wait_s`` for more once the first arrived), runs the
batch function once in the model thread and hands each request its slice. A full queue answers
at once (:class:`QueueFull`, HTTP 429) instead of letting latency grow without bound.

While the model thread is busy, new requests pile up and become the next batch: under load the
batch grows by itself, so a small ``wait_s`` costs an idle service little latency.

A request of more than ``max_batch`` items is split into ``max_batch``-sized chunks, queued one at a
time: each chunk goes to the back of the queue once the one before it is done, so requests that
arrived meanwhile run between two chunks (one large request cannot hold the model thread while
small ones wait). A request whose caller is gone (its task cancelled, or ``gone()`` true between two
chunks) queues no further chunk.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from typing import Any, Awaitable, Callable, Sequence

__all__ = ["MicroBatcher", "QueueFull", "CallerGone"]


class QueueFull(Exception):
    """The batcher's queue is full (the service is overloaded): answer 429."""


class CallerGone(Exception):
    """The caller went away (``gone()`` turned true) before all chunks of its request were computed."""


class MicroBatcher:
    """Batch ``fn(items) -> results`` (one result per item) over concurrent callers.

    Parameters
    ----------
    fn : callable
        Takes a list of items, returns a sequence of as many results. Runs in ``executor``.
    executor : concurrent.futures.Executor
        Where ``fn`` runs (the service's one model thread: embedding and prediction never run
        on the event loop).
    max_batch : int
        Most items per call of ``fn`` (a request with more items is split into chunks of this size,
        queued one after the other).
    wait_s : float
        Longest wait for more items once one arrived. Only while requests arrive together: after a
        batch of one request, a lone request that finds the queue empty runs at once (a client
        calling one at a time pays no wait).
    max_queue : int
        Most requests waiting; beyond it :meth:`submit` raises :class:`QueueFull`.
    on_batch : callable, optional
        ``on_batch(n_items, seconds)`` after each call (metrics).
    """

    def __init__(
        self, fn: Callable[[list], Sequence], executor: Executor, *, max_batch, wait_s, max_queue, on_batch=None
    ):
        self.fn, self.executor = fn, executor
        self.max_batch, self.wait_s, self.max_queue = int(max_batch), float(wait_s), int(max_queue)
        self.on_batch = on_batch
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._task = asyncio.get_running_loop().create_task(self._worker(), name="v0lite-batcher")

    async def stop(self) -> None:
        """Stop the worker; requests still queued fail with ``CancelledError``."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._queue is not None and not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.cancel()

    @property
    def pending(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    async def submit(self, items: list, gone: Callable[[], Awaitable[bool]] | None = None) -> list:
        """Results for ``items``, computed in a batch with whatever else is waiting.

        More than ``max_batch`` items go in chunks, each queued behind what waits once the one
        before it is done. ``gone`` (an async callable, e.g. ``Request.is_disconnected``) is asked
        before each chunk after the first: when it says true, no further chunk is queued and
        :class:`CallerGone` is raised. Cancelling the caller's task stops the chunks too.
        """
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        items = list(items)
        n = self.max_batch
        out: list = []
        for start in range(0, max(len(items), 1), n):
            if start and gone is not None and await gone():
                raise CallerGone(f"the caller left after {start} of {len(items)} items")
            fut = asyncio.get_running_loop().create_future()
            try:
                self._queue.put_nowait((items[start : start + n], fut))
            except asyncio.QueueFull:
                waiting = "1 request is" if self.max_queue == 1 else f"{self.max_queue} requests are"
                raise QueueFull(f"{waiting} already waiting") from None
            out.extend(await fut)
        return out

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        held = None
        last_requests = 1
        while True:
            first = held if held is not None else await queue.get()
            held = None
            batch, size = [first], len(first[0])
            alone = last_requests == 1 and queue.empty()
            deadline = loop.time() + (0.0 if alone else self.wait_s)
            while size < self.max_batch:
                try:
                    nxt = queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        nxt = await asyncio.wait_for(queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                if size + len(nxt[0]) > self.max_batch:
                    held = nxt  # it starts the next batch: a batch never exceeds max_batch unless one request does
                    break
                batch.append(nxt)
                size += len(nxt[0])
            last_requests = len(batch)
            live = [(items, fut) for items, fut in batch if not fut.cancelled()]
            if not live:
                continue
            flat: list[Any] = [x for items, _ in live for x in items]
            t0 = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.executor, self.fn, flat)
            except Exception as exc:  # every request of the batch gets the error (e.g. an unknown policy)
                if len(live) > 1:
                    # one request's bad item must not fail its neighbours: retry each request alone
                    for items, fut in live:
                        try:
                            res = await loop.run_in_executor(self.executor, self.fn, items)
                        except Exception as one:
                            _set(fut, exc=one)
                        else:
                            _set(fut, result=list(res))
                    continue
                _set(live[0][1], exc=exc)
                continue
            if self.on_batch is not None:
                self.on_batch(len(flat), time.perf_counter() - t0)
            i = 0
            for items, fut in live:
                _set(fut, result=list(results[i : i + len(items)]))
                i += len(items)


def _set(fut: asyncio.Future, *, result=None, exc=None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
