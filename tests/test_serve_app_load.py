"""The service under load, through HTTP: a full queue (429), large requests split into chunks (a
small request is not held up; a client that left stops its chunks), and the per-request limits on
prompts and prompt x policy pairs. Servers bind 127.0.0.1 on a free port (tests/serve_util.py)."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from tests.serve_util import serve_in_thread, tiny_router
from v0lite.serve import Limits, create_app


@pytest.fixture(scope="module")
def router():
    return tiny_router()


def test_full_queue_answers_429(router, tmp_path):
    app = create_app(router, limits=Limits(max_queue=1, max_batch=1, batch_wait_ms=0))
    state = app.state.v0lite
    gate = threading.Event()
    slow = state._matrix

    def held(prompts):
        gate.wait(10)
        return slow(prompts)

    with serve_in_thread(app) as base:
        state.batchers["route"].fn = held

        async def burst():
            async with httpx.AsyncClient(base_url=base, timeout=20) as ac:
                tasks = [asyncio.create_task(ac.post("/v1/route", json={"prompt": f"p {i}"})) for i in range(6)]
                await asyncio.sleep(0.5)
                gate.set()
                return await asyncio.gather(*tasks)

        answers = asyncio.run(burst())
        codes = sorted(r.status_code for r in answers)
        assert set(codes) == {200, 429}, codes  # the queue bound answers at once; what was accepted completes
        busy = next(r for r in answers if r.status_code == 429)
        assert busy.headers["retry-after"] == "1"  # clients that honour it back off on their own
        err = busy.json()["error"]
        assert (
            err["type"] == "rate_limit_error" and "retry" in err["message"] and "1 request is already" in err["message"]
        )


def _recording(app, delay_s):
    """Record each micro-batch of /v1/route (its prompts), each taking at least ``delay_s``."""
    state, calls = app.state.v0lite, []
    inner = state._matrix

    def matrix(prompts):
        calls.append(list(prompts))
        time.sleep(delay_s)
        return inner(prompts)

    state._matrix = matrix  # the batcher takes it at start
    return calls


def test_a_large_route_request_does_not_hold_up_a_small_one(router, guarantees):
    """A small request that arrives while a large one runs is served after the chunk in progress, not after
    all 50: measured by the order of the micro-batches, whatever the machine's speed. The large request's
    second chunk holds until the small request waits in the batcher's queue."""
    app = create_app(router, limits=Limits(max_batch=8, batch_wait_ms=0))
    state, calls = app.state.v0lite, []
    inner = state._matrix

    def matrix(prompts):
        calls.append(list(prompts))
        if len(calls) == 2:  # the large request's second chunk: it runs until the small request is queued
            deadline = time.monotonic() + 30
            while state.batchers["route"].pending < 1 and time.monotonic() < deadline:
                time.sleep(0.005)
        return inner(prompts)

    state._matrix = matrix  # the batcher takes it at start
    big = [f"sort the list case {i}" for i in range(400)]  # 50 chunks of 8
    with serve_in_thread(app) as base:
        out = {}

        def send_big():
            out["big"] = httpx.post(base + "/v1/route", json={"prompts": big}, timeout=60)

        t = threading.Thread(target=send_big)
        t.start()
        deadline = time.monotonic() + 30
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        r = httpx.post(base + "/v1/route", json={"prompt": "add the numbers case 77"}, timeout=60)
        t.join(60)
        assert r.status_code == 200 and out["big"].status_code == 200
        results = out["big"].json()["results"]
        assert len(results) == 400 and [x["model"] for x in results[:2]] == ["b", "b"]
        at = next(i for i, c in enumerate(calls) if "add the numbers case 77" in c)
        # the small request ran right after the chunk in progress when it came (the second), alone
        assert at == 2 and calls[at] == ["add the numbers case 77"], [len(c) for c in calls[:4]]
        assert [len(c) for c in calls if c != calls[at]] == [8] * 50
    guarantees.tick("faults injected")


def test_a_large_route_request_stops_when_its_client_is_gone(router, guarantees):
    app = create_app(router, limits=Limits(max_batch=8, batch_wait_ms=0))
    calls = _recording(app, 0.05)
    big = [f"prove the lemma case {i}" for i in range(400)]  # 50 chunks: 2.5 s of model time
    with serve_in_thread(app) as base:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(base + "/v1/route", json={"prompts": big}, timeout=0.3)
        time.sleep(0.6)
        seen = len(calls)
        time.sleep(0.5)
        assert len(calls) == seen and seen < 25, seen  # stopped soon after the client left, not 50 chunks
        metrics = httpx.get(base + "/metrics").text
        assert 'v0lite_requests_total{endpoint="/v1/route",status="499"} 1.0' in metrics
    guarantees.tick("faults injected")


def test_too_many_prompts_in_one_request_answer_413_naming_the_limit(router, guarantees):
    app = create_app(router, limits=Limits(max_route_prompts=10))
    with serve_in_thread(app) as base:
        for path in ("/v1/route", "/v1/predict"):
            r = httpx.post(base + path, json={"prompts": ["x"] * 11}, timeout=20)
            err = r.json()["error"]
            assert r.status_code == 413 and err["param"] == "prompts", r.text
            assert "10" in err["message"] and "--max-route-prompts" in err["message"] and err["fix"]
            assert err["type"] == "invalid_request_error" and err["code"] == "too_many_prompts"
            assert httpx.post(base + path, json={"prompts": ["x"] * 10}, timeout=20).status_code == 200
    guarantees.tick("bad-input cases tried", 2)


def test_predict_computes_each_policy_once_and_caps_prompts_times_policies(router, guarantees):
    """A policy named 20,000 times is one value (computed once); prompts x distinct policies is bounded."""
    app = create_app(router, limits=Limits(max_route_prompts=4), pool=["a"])
    with serve_in_thread(app) as base:
        r = httpx.post(base + "/v1/predict", json={"prompt": "x", "policies": ["b", "a"] * 10_000 + ["b"]}, timeout=20)
        assert r.status_code == 200 and list(r.json()["p"]) == ["b", "a"], r.text  # the order given, once each
        metrics = httpx.get(base + "/metrics").text
        assert "v0lite_batch_items_sum 2.0" in metrics, metrics  # 2 values computed, not 20,001
        # 3 prompts x 2 policies = 6 values > 4 (--max-route-prompts) x 1 (the pool's size): 413 naming both
        r = httpx.post(base + "/v1/predict", json={"prompts": ["x", "y", "z"], "policies": ["a", "b", "a"]}, timeout=20)
        err = r.json()["error"]
        assert r.status_code == 413 and err["code"] == "too_many_prompts" and err["param"] == "policies", r.text
        assert "3 prompts x 2 distinct policies" in err["message"] and "--max-route-prompts" in err["message"]
        assert "send at most 2 prompts" in err["fix"]
        ok = httpx.post(base + "/v1/predict", json={"prompts": ["x", "y"], "policies": ["a", "b"]}, timeout=20)
        assert ok.status_code == 200, ok.text
    guarantees.tick("bad-input cases tried", 2)
