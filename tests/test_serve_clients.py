"""Real clients: the official openai SDK (sync, async, streaming) and httpx against the service, which
forwards to an OpenAI-compatible upstream stub started by the test. Both bind 127.0.0.1 on free ports."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tests.serve_util import serve_in_thread, stub_upstream, tiny_router, upstreams_for
from v0lite.exceptions import DataError
from v0lite.serve import Limits, create_app

UPSTREAM_KEY = "sk-upstream-secret-0123456789"


@pytest.fixture(scope="module")
def stack():
    """(service URL, upstream app): upstream a and b answer, c needs its key, all on loopback."""
    import os

    os.environ["V0LITE_TEST_UPSTREAM_KEY"] = UPSTREAM_KEY
    upstream = stub_upstream(fail={"up-a-broken"})
    with serve_in_thread(upstream) as up:
        ups = upstreams_for(up)
        ups["c"]["api_key_env"] = "V0LITE_TEST_UPSTREAM_KEY"
        app = create_app(tiny_router(), upstreams=ups, limits=Limits(refresh_seconds=0.3))
        with serve_in_thread(app) as base:
            yield base, upstream
    os.environ.pop("V0LITE_TEST_UPSTREAM_KEY", None)


def test_openai_sync_routes_and_names_the_model(stack):
    base, upstream = stack
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
    ids = [m.id for m in client.models.list()]
    assert "v0lite" in ids and {"a", "b", "c"} <= set(ids)
    raw = client.chat.completions.with_raw_response.create(
        model="v0lite", messages=[{"role": "user", "content": "add the numbers case 931"}]
    )
    out = raw.parse()
    assert raw.headers["x-v0lite-model"] == "a" and out.model == "a"
    assert out.choices[0].message.content == "echo: add the numbers case 931"
    assert upstream.state.calls[-1] == ("up-a", None)  # forwarded with the upstream's model name, no key for a
    # the last user message decides, whatever came before; text parts of a content list count
    out = client.chat.completions.create(
        model="v0lite",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "add the numbers case 1"},
            {"role": "assistant", "content": "2"},
            {"role": "user", "content": [{"type": "text", "text": "sort the list case 932"}]},
        ],
    )
    assert out.model == "b"


def test_openai_operating_point_bypass_and_key(stack):
    base, upstream = stack
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
    msgs = [{"role": "user", "content": "add the numbers case 933"}]
    assert client.chat.completions.create(model="v0lite/threshold/0.3", messages=msgs).model == "c"
    assert upstream.state.calls[-1] == ("up-c", f"Bearer {UPSTREAM_KEY}")  # c's key, from the environment
    assert client.chat.completions.create(model="b", messages=msgs).model == "b"  # a pool name bypasses routing
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-nope", messages=msgs)
    assert "gpt-nope" in str(e.value) and "v0lite/<strategy>/<knob>" in str(e.value)
    with pytest.raises(openai.UnprocessableEntityError, match="knob 'high' is not a finite number"):
        client.chat.completions.create(model="v0lite/threshold/high", messages=msgs)
    with pytest.raises(openai.UnprocessableEntityError, match="role.*user"):
        client.chat.completions.create(model="v0lite", messages=[{"role": "system", "content": "x"}])


@pytest.mark.parametrize(
    "model,fix",
    [
        ("v0lite/bogus/1", "v0lite/<strategy>/<knob> with a strategy of"),
        ("v0lite/", "v0lite/<strategy>/<knob> with a strategy of"),
        ("v0lite/threshold/1.5", "v0lite/threshold/<tau> with tau in [0, 1]"),
        ("v0lite/budget", "v0lite/budget/<budget>"),
        ("v0lite/utility/inf", "a finite knob"),
        ("v0lite/threshold/0.7/x", "v0lite/utility/0.5"),
    ],
)
def test_a_bad_routing_model_name_is_named_as_the_model(stack, guarantees, model, fix):
    """The strategy and knob of a chat request live in its "model": errors point there, not at "strategy"/"knob"."""
    base, _ = stack
    r = httpx.post(
        base + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "add the numbers case 940"}]},
        timeout=20,
    )
    err = r.json()["error"]
    assert r.status_code == 422 and err["param"] == "model" and err["value"] == model, err
    assert fix in err["fix"] and '"knob"' not in err["message"] and '"strategy"' not in err["message"], err
    guarantees.tick("bad-input cases tried")


def test_a_blank_user_message_is_named_by_its_index(stack):
    base, _ = stack
    msgs = [{"role": "user", "content": "hi"}, {"role": "user", "content": "  "}, {"role": "assistant", "content": "x"}]
    r = httpx.post(base + "/v1/chat/completions", json={"model": "v0lite", "messages": msgs}, timeout=20)
    assert r.status_code == 422 and r.json()["error"]["param"] == "messages[1].content", r.text


def test_openai_async_concurrent(stack):
    base, _ = stack

    async def run():
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
        prompts = [f"{t} case {940 + i}" for i, t in enumerate(["add the numbers", "sort the list"] * 8)]
        outs = await asyncio.gather(
            *(
                client.chat.completions.create(model="v0lite", messages=[{"role": "user", "content": p}])
                for p in prompts
            )
        )
        await client.close()
        return prompts, outs

    prompts, outs = asyncio.run(run())
    assert [o.model for o in outs] == ["a", "b"] * 8
    assert [o.choices[0].message.content for o in outs] == [f"echo: {p}" for p in prompts]


def test_openai_streaming_passes_sse_through(stack):
    base, _ = stack
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
    stream = client.chat.completions.create(
        model="v0lite", stream=True, messages=[{"role": "user", "content": "sort the list case 950"}]
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "echo: sort the list case 950"
    # byte for byte: the upstream's own SSE lines, ending with [DONE]
    with httpx.stream(
        "POST",
        base + "/v1/chat/completions",
        json={"model": "v0lite", "stream": True, "messages": [{"role": "user", "content": "sort the list case 950"}]},
        timeout=20,
    ) as r:
        assert r.headers["x-v0lite-model"] == "b" and r.headers["content-type"].startswith("text/event-stream")
        body = r.read().decode()
    assert body.endswith("data: [DONE]\n\n") and '"model": "up-b"' in body


def test_upstream_failure_falls_back_once_then_502(tmp_path, guarantees):
    upstream = stub_upstream(fail={"up-a", "up-c"})
    with serve_in_thread(upstream) as up:
        app = create_app(tiny_router(), upstreams=upstreams_for(up))
        with serve_in_thread(app) as base:
            client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
            # a is best on adding and fails; the next best (c) fails too: 502 after exactly two tries
            n = len(upstream.state.calls)
            with pytest.raises(openai.APIStatusError) as e:
                client.chat.completions.create(
                    model="v0lite", messages=[{"role": "user", "content": "add the numbers"}]
                )
            assert e.value.status_code == 502
            msg = e.value.body["message"]
            assert "answered 500" in msg and "is down second line" in msg and "\n" not in msg
            assert msg.startswith("upstream 'a' (routed) answered 500: ") and "; then 'c' answered 500: " in msg, msg
            assert ". Fix: retry later" in msg  # the reason ends its sentence before the fix
            assert [m for m, _ in upstream.state.calls[n:]] == ["up-a", "up-c"]
            # b is best on sorting and fine
            out = client.chat.completions.create(
                model="v0lite", messages=[{"role": "user", "content": "sort the list"}]
            )
            assert out.model == "b"
            metrics = httpx.get(base + "/metrics").text
            assert 'v0lite_upstream_errors_total{model="a",reason="500"} 1.0' in metrics
    guarantees.tick("faults injected", 2)


def test_no_upstream_answers_502_and_keys_never_leak(tmp_path, monkeypatch, caplog, guarantees):
    secret = "sk-never-show-me-0123456789"
    monkeypatch.setenv("V0LITE_TEST_SECRET", secret)
    dead = {"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": "V0LITE_TEST_SECRET"}
    app = create_app(tiny_router(), upstreams={"a": dead, "b": dead, "c": dead}, limits=Limits(upstream_timeout_s=2))
    assert secret not in repr(app.state.v0lite.upstreams)
    with serve_in_thread(app) as base:
        r = httpx.post(
            base + "/v1/chat/completions",
            json={"model": "v0lite", "messages": [{"role": "user", "content": "add the numbers"}]},
            timeout=20,
        )
        assert r.status_code == 502 and "no answer" in r.json()["error"]["message"]
        assert secret not in r.text and secret not in httpx.get(base + "/v1/stats").text
    assert secret not in caplog.text
    guarantees.tick("faults injected")


def test_chat_without_upstreams_says_how(tmp_path):
    app = create_app(tiny_router())
    with serve_in_thread(app) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model="v0lite", messages=[{"role": "user", "content": "hi"}])
        assert e.value.status_code == 503 and "--upstreams" in str(e.value)
        assert httpx.post(base + "/v1/route", json={"prompt": "hi"}).status_code == 200  # routing still works


def test_stream_falls_back_before_the_first_byte(guarantees):
    upstream = stub_upstream(fail={"up-a"})
    with serve_in_thread(upstream) as up:
        app = create_app(tiny_router(), upstreams=upstreams_for(up))
        with serve_in_thread(app) as base:
            client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
            raw = client.chat.completions.with_raw_response.create(
                model="v0lite", stream=True, messages=[{"role": "user", "content": "add the numbers case 990"}]
            )
            assert raw.headers["x-v0lite-model"] == "c"  # a failed, before any byte was sent: the next best
            text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse())
            assert text == "echo: add the numbers case 990"
            assert [m for m, _ in upstream.state.calls] == ["up-a", "up-c"]
    guarantees.tick("faults injected")


def test_every_answer_has_a_request_id_the_sdk_reads(stack):
    base, _ = stack
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
    out = client.chat.completions.create(model="v0lite", messages=[{"role": "user", "content": "add the numbers"}])
    assert out._request_id and out._request_id.startswith("req_")
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "hi"}])
    assert e.value.request_id and e.value.request_id != out._request_id  # errors carry one too, one per request
    r = httpx.get(base + "/v1/models", headers={"x-request-id": "trace-42.a:b"})
    assert r.headers["x-request-id"] == "trace-42.a:b"  # a sane client id is echoed
    r = httpx.get(base + "/v1/models", headers={"x-request-id": "x" * 200})
    assert r.headers["x-request-id"].startswith("req_")  # anything else is replaced


@pytest.mark.parametrize("stream,status", [(None, 200), (False, 200), ("yes", 422), (1, 422)])
def test_stream_is_a_strict_boolean_or_null(stack, guarantees, stream, status):
    base, upstream = stack
    body = {"model": "v0lite", "stream": stream, "messages": [{"role": "user", "content": "add the numbers"}]}
    r = httpx.post(base + "/v1/chat/completions", json=body, timeout=20)
    assert r.status_code == status, r.text
    if status == 200:
        assert r.json()["choices"][0]["message"]["content"] == "echo: add the numbers"
    else:
        err = r.json()["error"]
        assert err["param"] == "stream" and "true or false" in err["fix"], err
    guarantees.tick("bad-input cases tried")


def test_an_image_only_message_says_only_text_is_routed(stack):
    base, upstream = stack
    image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    msgs = [{"role": "user", "content": image}]
    r = httpx.post(base + "/v1/chat/completions", json={"model": "v0lite", "messages": msgs}, timeout=20)
    err = r.json()["error"]
    assert r.status_code == 422 and err["param"] == "messages[0].content", r.text
    assert "only text parts are routed" in err["message"] and "image" in err["message"] and '"model"' in err["fix"]
    # as the fix says: a pool model's name sends it as it is, without routing
    r = httpx.post(base + "/v1/chat/completions", json={"model": "b", "messages": msgs}, timeout=20)
    assert r.status_code == 200 and r.headers["x-v0lite-model"] == "b"


def test_a_router_whose_strategy_needs_a_knob_serves_with_the_servers_knob(guarantees):
    """A budget router: refused without a knob (the fix names it), served with one, through model "v0lite"."""
    budget = tiny_router(strategy="budget")
    needs = r"needs its knob 'budget' \(`v0lite serve --knob VALUE`\).*Fix: pass knob=<value> >= 0"
    with pytest.raises(DataError, match=needs):
        create_app(budget)
    with pytest.raises(DataError, match=r"knob -1.*must be >= 0.*Fix: pass knob=<value> >= 0"):
        create_app(budget, knob=-1)
    with pytest.raises(DataError, match="finite"):
        create_app(budget, knob=float("inf"))
    upstream = stub_upstream()
    with serve_in_thread(upstream) as up:
        app = create_app(budget, knob=0.0025, upstreams=upstreams_for(up))
        with serve_in_thread(app) as base:
            r = httpx.post(base + "/v1/route", json={"prompt": "add the numbers case 901"}, timeout=20).json()
            assert r["strategy"] == "budget" and r["knob"] == 0.0025 and r["model"] == "a", r
            # a request's own knob or strategy still wins
            r = httpx.post(base + "/v1/route", json={"prompt": "add the numbers case 901", "knob": 0.01}, timeout=20)
            assert r.json()["knob"] == 0.01
            r = httpx.post(base + "/v1/route", json={"prompt": "x", "strategy": "utility"}, timeout=20)
            assert r.json()["knob"] == 0.0
            client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
            ids = [m.id for m in client.models.list()]
            assert ids[:2] == ["v0lite", "v0lite/budget/0.0025"], ids
            msgs = [{"role": "user", "content": "add the numbers case 931"}]
            assert client.chat.completions.create(model="v0lite", messages=msgs).model == "a"
            assert httpx.get(base + "/v1/stats", timeout=20).json()["knob"] == 0.0025
    # a strategy with a default knob: --knob overrides it
    app = create_app(tiny_router(), knob=1000.0)
    with serve_in_thread(app) as base:
        r = httpx.post(base + "/v1/route", json={"prompt": "add the numbers case 901"}, timeout=20).json()
        assert r["knob"] == 1000.0 and r["model"] == "c", r  # the cheapest, at lam = 1000
    guarantees.tick("bad-input cases tried", 3)
