"""The micro-batcher alone: shared calls, the size bound, a bad request failing alone, the queue bound."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from v0lite.serve._batcher import CallerGone, MicroBatcher, QueueFull


def run_with(fn, coro_fn, **kw):
    async def main():
        with ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(fn, ex, **{"max_batch": 8, "wait_s": 0.01, "max_queue": 100, **kw})
            b.start()
            try:
                return await coro_fn(b)
            finally:
                await b.stop()

    return asyncio.run(main())


def test_concurrent_requests_share_calls_and_keep_their_order():
    calls = []

    def fn(items):
        calls.append(list(items))
        return [x * 10 for x in items]

    async def go(b):
        return await asyncio.gather(*(b.submit([i, i + 100]) for i in range(12)))

    out = run_with(fn, go)
    assert out == [[i * 10, (i + 100) * 10] for i in range(12)]
    assert len(calls) < 12 and all(len(c) <= 8 for c in calls)  # batched, never over max_batch
    assert sorted(x for c in calls for x in c) == sorted([i for i in range(12)] + [i + 100 for i in range(12)])


def test_a_bad_request_fails_alone(guarantees):
    def fn(items):
        if "bad" in items:
            raise ValueError("bad item")
        return [x.upper() for x in items]

    async def go(b):
        return await asyncio.gather(b.submit(["a"]), b.submit(["bad"]), b.submit(["c"]), return_exceptions=True)

    a, bad, c = run_with(fn, go)
    assert a == ["A"] and c == ["C"] and isinstance(bad, ValueError)
    guarantees.tick("faults injected")


def test_full_queue_raises_at_once():
    gate = threading.Event()

    def fn(items):
        gate.wait(5)
        return items

    async def go(b):
        first = asyncio.ensure_future(b.submit([1]))
        await asyncio.sleep(0.05)  # the worker holds item 1 in the model thread
        second = asyncio.ensure_future(b.submit([2]))  # waits in the queue (size 1)
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await b.submit([3])
        gate.set()
        return await first, await second

    assert run_with(fn, go, max_queue=1, max_batch=1) == ([1], [2])


def test_a_large_request_is_split_and_a_small_one_runs_between_its_chunks(guarantees):
    """40 items at max_batch 4: ten chunks queued one at a time; a request sent while the first chunk runs
    is in the very next call, not behind the other nine chunks."""
    calls, first = [], threading.Event()

    def fn(items):
        calls.append(list(items))
        first.wait(5)  # the first chunk holds the model thread until the small request is queued
        return [x * 10 for x in items]

    async def go(b):
        big = asyncio.ensure_future(b.submit(list(range(40))))
        while not calls:
            await asyncio.sleep(0.005)
        small = asyncio.ensure_future(b.submit([1000]))
        await asyncio.sleep(0.02)
        first.set()
        return await big, await small

    big, small = run_with(fn, go, max_batch=4)
    assert big == [x * 10 for x in range(40)] and small == [10000]  # the chunks' results reassembled, in order
    assert all(len(c) <= 4 for c in calls) and len(calls) >= 10
    at = next(i for i, c in enumerate(calls) if 1000 in c)
    assert at <= 1, calls  # one chunk of the big request ran before it (the one already running), no more
    guarantees.tick("faults injected")


def test_a_cancelled_large_request_queues_no_more_chunks():
    calls, gate = [], threading.Event()

    def fn(items):
        calls.append(list(items))
        gate.wait(5)
        return items

    async def go(b):
        big = asyncio.ensure_future(b.submit(list(range(40))))
        while not calls:
            await asyncio.sleep(0.005)
        big.cancel()  # the client is gone (its task cancelled) while the first chunk runs
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await big
        await asyncio.sleep(0.1)  # time for any further chunk to run, were one queued
        return calls

    assert run_with(fn, go, max_batch=4) == [[0, 1, 2, 3]]  # the first chunk only


def test_a_large_request_stops_when_its_caller_is_gone():
    calls = []

    def fn(items):
        calls.append(list(items))
        return items

    async def go(b):
        async def gone():  # the client disconnects once two chunks ran
            return len(calls) >= 2

        with pytest.raises(CallerGone):
            await b.submit(list(range(40)), gone)
        return len(calls)

    assert run_with(fn, go, max_batch=4) == 2
