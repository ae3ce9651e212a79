"""The micro-batcher alone: shared calls, the size bound, a bad request failing alone, the queue bound."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from v0lite.serve._batcher import MicroBatcher, QueueFull


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
