"""Faults the service meets at its edges: compressed and broken upstream streams, bodies that are valid
JSON but not text, unknown paths, names stored but not yet applied, the replay's order, and upstream
answers (whose fault, Retry-After). The outcome store's faults are in test_serve_store_faults.py.
Servers bind 127.0.0.1 on a free port (tests/serve_util.py)."""

from __future__ import annotations

import json
import logging
import time

import httpx
import openai
import pytest

from tests.serve_util import serve_in_thread, stub_upstream, tiny_router, upstreams_for
from v0lite.serve import Limits, create_app

USER = [{"role": "user", "content": "sort the list case 950"}]


def _chat(base, **body):
    return httpx.post(base + "/v1/chat/completions", json={"model": "v0lite", "messages": USER, **body}, timeout=20)


def _metrics(base) -> dict:
    lines = [x.rsplit(" ", 1) for x in httpx.get(base + "/metrics").text.splitlines() if x and x[0] != "#"]
    return {k: float(v) for k, v in lines}


# --------------------------------------------------------------------------- upstream streams


@pytest.mark.parametrize("gzip_when", ["allowed", "always"])
def test_a_compressing_upstream_streams_clean_text(gzip_when, guarantees):
    """The stream reaches the client decoded: v0lite asks for identity, and decodes an upstream that zips anyway."""
    upstream = stub_upstream(gzip_when=gzip_when)
    with serve_in_thread(upstream) as up:
        with serve_in_thread(create_app(tiny_router(), upstreams=upstreams_for(up))) as base:
            client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
            stream = client.chat.completions.create(model="v0lite", stream=True, messages=USER)
            assert "".join(c.choices[0].delta.content or "" for c in stream) == "echo: sort the list case 950"
            with httpx.stream(
                "POST",
                base + "/v1/chat/completions",
                json={"model": "v0lite", "stream": True, "messages": USER},
                timeout=20,
            ) as r:
                body = r.read()
            assert body.startswith(b"data: {") and body.endswith(b"data: [DONE]\n\n")
            assert "content-encoding" not in r.headers
            # a whole answer is decoded by the client either way
            assert _chat(base).json()["choices"][0]["message"]["content"] == "echo: sort the list case 950"
    streamed = [e for e in upstream.state.encodings if "gzip" not in e]
    assert streamed, upstream.state.encodings  # the streamed calls asked for no compression
    guarantees.tick("faults injected")


def test_a_stream_broken_midway_ends_with_an_error_event_and_is_counted(caplog, guarantees):
    upstream = stub_upstream(cut={"up-b"})
    with serve_in_thread(upstream) as up:
        with serve_in_thread(create_app(tiny_router(), upstreams=upstreams_for(up))) as base:
            with caplog.at_level(logging.WARNING, logger="v0lite.serve"):
                with httpx.stream(
                    "POST",
                    base + "/v1/chat/completions",
                    json={"model": "v0lite", "stream": True, "messages": USER},
                    timeout=20,
                ) as r:
                    body = r.read().decode()
                events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")]
                assert events[0]["choices"][0]["delta"]["content"] == "echo:"  # what came, passed through
                err = events[-1]["error"]
                assert err["type"] == "server_error" and err["code"] == "stream_cut" and "retry" in err["fix"]
                # the official SDK raises on it, as on OpenAI's own error events
                client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
                with pytest.raises(openai.APIError, match="broke off the stream"):
                    for _ in client.chat.completions.create(model="v0lite", stream=True, messages=USER):
                        pass
                m = _metrics(base)
            assert m['v0lite_upstream_errors_total{model="b",reason="stream_cut"}'] == 2
            assert m['v0lite_requests_total{endpoint="/v1/chat/completions",status="502"}'] == 2
            assert 'v0lite_requests_total{endpoint="/v1/chat/completions",status="200"}' not in m
    lines = [r for r in caplog.records if "broke off a stream" in r.getMessage()]
    assert len(lines) == 2 and all(r.exc_info is None for r in lines)  # one line each, no traceback
    guarantees.tick("faults injected")


@pytest.mark.parametrize("fault", ["partial", "nodone"])
def test_a_stream_cut_mid_event_or_without_done_ends_with_a_parsable_error_event(fault, guarantees):
    """The error event is never glued onto a half-sent event: the SDK raises APIError, not JSONDecodeError."""
    upstream = stub_upstream(stream_faults={"up-b": fault})
    with serve_in_thread(upstream) as up:
        with serve_in_thread(create_app(tiny_router(), upstreams=upstreams_for(up))) as base:
            client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
            got = []
            with pytest.raises(openai.APIError) as e:
                for c in client.chat.completions.create(model="b", stream=True, messages=USER):
                    got.append(c.choices[0].delta.content)
            assert got == ["echo:"] and e.value.code == "stream_cut", e.value
            with httpx.stream(
                "POST", base + "/v1/chat/completions", json={"model": "b", "stream": True, "messages": USER}, timeout=20
            ) as r:
                body = r.read().decode()
            assert "chat.comp\n" not in body and body.endswith("\n\n")
            events = [json.loads(x.removeprefix("data: ")) for x in body.split("\n\n") if x]  # every event whole
            assert events[-1]["error"]["code"] == "stream_cut" and len(events) == 2
            m = _metrics(base)
    assert m['v0lite_upstream_errors_total{model="b",reason="stream_cut"}'] == 2
    guarantees.tick("faults injected")


def test_a_streamed_call_answered_with_json_is_an_upstream_failure(guarantees):
    """A 2xx answer that is no event stream is not passed on as an empty 200: the next-best model answers."""
    upstream = stub_upstream(stream_faults={"up-a": "json", "up-b": "json", "up-c": "json"})
    with serve_in_thread(upstream) as up:
        ups = upstreams_for(up)
        with serve_in_thread(create_app(tiny_router(), upstreams=ups)) as base:
            r = httpx.post(
                base + "/v1/chat/completions", json={"model": "b", "stream": True, "messages": USER}, timeout=20
            )
            err = r.json()["error"]
            assert r.status_code == 502 and "not an event stream" in err["message"] and err["param"] == "model"
            m = _metrics(base)
    assert m['v0lite_upstream_errors_total{model="b",reason="not_a_stream"}'] == 1
    good = stub_upstream(stream_faults={"up-a": "json", "up-b": "json"})  # the routed model fails: c answers
    with serve_in_thread(good) as up:
        with serve_in_thread(create_app(tiny_router(), upstreams=upstreams_for(up))) as base:
            client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
            chunks = [
                c.choices[0].delta.content
                for c in client.chat.completions.create(model="v0lite/utility/0", stream=True, messages=USER)
            ]
            assert "".join(chunks).startswith("echo:")
    assert [m for m, _ in good.state.calls][-1] == "up-c"
    guarantees.tick("faults injected")


def test_upstream_failure_reasons_are_told_apart(guarantees):
    upstream = stub_upstream(bad_json={"up-b"}, delay_s=0.0)
    with serve_in_thread(upstream) as up:
        ups = upstreams_for(up)
        ups["c"] = {"base_url": "http://127.0.0.1:9/v1", "model": "m"}  # refused
        slow = stub_upstream(delay_s=3.0)
        with serve_in_thread(slow) as slow_up:
            ups["a"] = {"base_url": f"{slow_up}/v1", "model": "m"}  # times out
            app = create_app(tiny_router(), upstreams=ups, limits=Limits(upstream_timeout_s=0.5))
            with serve_in_thread(app) as base:
                for model in ("b", "c", "a"):
                    r = httpx.post(base + "/v1/chat/completions", json={"model": model, "messages": USER}, timeout=20)
                    assert r.status_code == 502, r.text
                m = _metrics(base)
    assert m['v0lite_upstream_errors_total{model="b",reason="bad_json"}'] == 1
    assert m['v0lite_upstream_errors_total{model="c",reason="no_answer"}'] == 1
    assert m['v0lite_upstream_errors_total{model="a",reason="timeout"}'] == 1
    assert not any('reason="200"' in k for k in m)
    guarantees.tick("faults injected", 3)


# --------------------------------------------------------------------------- bodies, paths, error shape


@pytest.mark.parametrize(
    "path,raw,param",
    [
        ("/v1/route", '{"prompt": "bad \\ud800 x"}', "prompt"),
        ("/v1/predict", '{"prompts": ["ok", "bad \\udfff"]}', "prompts[1]"),
        (
            "/v1/feedback",
            '{"outcomes": [{"policy": "a", "prompt": "bad \\ud800 x", "score": 1}]}',
            "outcomes[0].prompt",
        ),
        (
            "/v1/chat/completions",
            '{"model": "v0lite", "messages": [{"role": "user", "content": "x \\ud800"}]}',
            "messages[0].content",
        ),
    ],
)
def test_a_lone_surrogate_is_a_422_naming_the_field(path, raw, param, guarantees):
    with serve_in_thread(create_app(tiny_router())) as base:
        r = httpx.post(base + path, content=raw.encode(), headers={"content-type": "application/json"}, timeout=20)
        err = r.json()["error"]
        assert r.status_code == 422 and err["param"] == param and "surrogate" in err["message"], r.text
        assert "\\ud" in err["value"] and err["fix"]
    guarantees.tick("bad-input cases tried")


def test_unknown_paths_and_wrong_methods_answer_the_error_object(guarantees):
    with serve_in_thread(create_app(tiny_router(), upstreams=upstreams_for("http://127.0.0.1:9"))) as base:
        r = httpx.get(base + "/v1/nope")
        err = r.json()["error"]
        assert r.status_code == 404 and err["code"] == "not_found" and "/v1/route" in err["fix"], r.text
        r = httpx.get(base + "/v1/route")
        err = r.json()["error"]
        assert r.status_code == 405 and err["param"] == "method" and err["value"] == "GET", r.text
        assert "POST" in err["fix"] and r.headers["allow"] == "POST"
        r = _chat(base, model="gpt-nope")
        err = r.json()["error"]
        assert r.status_code == 404 and err["code"] == "model_not_found" and err["type"] == "invalid_request_error"
        r = httpx.post(base + "/v1/route", json={"prompt": 3})
        assert r.json()["error"]["code"] == "invalid_value" and r.json()["error"]["param"] == "prompt"
    guarantees.tick("bad-input cases tried", 4)


# --------------------------------------------------------------------------- feedback names, replay order


def test_a_declared_model_is_known_until_its_rows_are_applied(tmp_path, guarantees):
    app = create_app(tiny_router(), data_dir=tmp_path / "s", limits=Limits(refresh_seconds=30))  # nothing applied
    row = {"prompt": "sort the list case 990", "score": 1.0}
    with serve_in_thread(app) as base:
        r = httpx.post(base + "/v1/feedback", json={"outcomes": [{"policy": "e", **row}], "new_policies": ["e"]})
        assert r.status_code == 200, r.text
        r = httpx.post(base + "/v1/feedback", json={"outcomes": [{"policy": "e", **row}]})  # acknowledged: known
        assert r.status_code == 200, r.text
        app.state.v0lite.store.append([{"policy": "f", **row}])  # another process's acknowledged batch
        assert httpx.post(base + "/v1/feedback", json={"outcomes": [{"policy": "f", **row}]}).status_code == 200
        r = httpx.post(base + "/v1/feedback", json={"outcomes": [{"policy": "ee", **row}]})
        assert r.status_code == 422 and r.json()["error"]["param"] == "outcomes[0].policy"  # a typo still is one
    guarantees.tick("bad-input cases tried")


def test_live_and_replayed_pools_are_equal(tmp_path):
    """The probe's scenario: rows without step, a new model's rows with step, another's without; pools must match."""
    ups = upstreams_for("http://127.0.0.1:9", names=("a", "b", "c", "newA", "newB"))
    ups["newA"]["price"], ups["newB"]["price"] = 0.0005, 0.0007
    batches = [
        {"outcomes": [{"policy": "a", "prompt": "add the numbers case 980", "score": 1.0}]},
        {
            "new_policies": ["newA"],
            "outcomes": [
                {"policy": "newA", "prompt": f"sort the list case {900 + i}", "score": 1.0, "step": 1}
                for i in range(10)
            ],
        },
        {
            "new_policies": ["newB"],
            "outcomes": [
                {"policy": "newB", "prompt": f"sort the list case {900 + i}", "score": 1.0} for i in range(10)
            ],
        },
    ]
    lim = Limits(refresh_seconds=0.05)
    with serve_in_thread(create_app(tiny_router(), upstreams=ups, data_dir=tmp_path / "s", limits=lim)) as base:
        total = 0
        for b in batches:  # each batch applied in a pass of its own, as a live server does
            total = httpx.post(base + "/v1/feedback", json=b).json()["ids"][1]
            deadline = time.monotonic() + 10
            while httpx.get(base + "/v1/stats").json()["applied_rows"] < total:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        live = httpx.get(base + "/v1/stats").json()["pool"]
    with serve_in_thread(create_app(tiny_router(), upstreams=ups, data_dir=tmp_path / "s", limits=lim)) as base:
        replayed = httpx.get(base + "/v1/stats").json()["pool"]
    assert live == ["a", "b", "c", "newA", "newB"] and replayed == live


# --------------------------------------------------------------------------- upstream answers: whose fault


def test_an_upstream_answer_with_nan_or_infinity_falls_back_and_is_counted(guarantees):
    """Python's json reads -Infinity; it is not JSON: a bad_json failure (next model), never a 500."""
    upstream = stub_upstream(nan={"up-b"})
    with serve_in_thread(upstream) as up:
        with serve_in_thread(create_app(tiny_router(), upstreams=upstreams_for(up))) as base:
            r = _chat(base)  # sorting: b is best, then the next best answers
            assert r.status_code == 200 and r.headers["x-v0lite-model"] != "b", r.text
            r = _chat(base, model="b")  # b named: no other model to try
            assert r.status_code == 502 and "-Infinity" in r.json()["error"]["message"], r.text
            m = _metrics(base)
    assert m['v0lite_upstream_errors_total{model="b",reason="bad_json"}'] == 2
    assert not any('status="500"' in k for k in m)
    guarantees.tick("faults injected")


REFUSALS = {
    400: {"message": "Invalid value for tool_choice", "type": "invalid_request_error", "param": "tool_choice"},
    413: {"message": "Request too large", "type": "invalid_request_error", "param": None},
    422: {"message": "messages: too long for the context", "type": "invalid_request_error", "param": "messages"},
}


@pytest.mark.parametrize("status", sorted(REFUSALS))
def test_an_upstream_refusal_that_is_the_requests_fault_is_passed_through(status, guarantees):
    err = {**REFUSALS[status], "code": "invalid_value"}
    upstream = stub_upstream(answers={"up-b": (status, {"error": err}, {})})
    with serve_in_thread(upstream) as up:
        with serve_in_thread(create_app(tiny_router(), upstreams=upstreams_for(up))) as base:
            client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
            with pytest.raises(openai.APIStatusError) as e:
                client.chat.completions.create(model="v0lite", messages=USER)
            assert e.value.status_code == status and e.value.body == err  # the upstream's own error object
            assert [m for m, _ in upstream.state.calls] == ["up-b"]  # no fallback: another model would refuse too
            assert _metrics(base)[f'v0lite_upstream_errors_total{{model="b",reason="{status}"}}'] == 1
    guarantees.tick("faults injected")


@pytest.mark.parametrize("status", [401, 403, 404])
def test_an_upstream_refusing_the_gateway_falls_back_then_502(status, guarantees):
    bad = (status, {"error": {"message": "no such model or key", "type": "invalid_request_error"}}, {})
    upstream = stub_upstream(answers={"up-b": bad})
    with serve_in_thread(upstream) as up:
        with serve_in_thread(create_app(tiny_router(), upstreams=upstreams_for(up))) as base:
            assert _chat(base).status_code == 200  # the next best answered
            r = _chat(base, model="b")
            assert r.status_code == 502 and r.json()["error"]["type"] == "server_error", r.text
    assert [m for m, _ in upstream.state.calls][:2] == ["up-b", upstream.state.calls[1][0]]
    assert upstream.state.calls[1][0] != "up-b"
    guarantees.tick("faults injected")


def test_rate_limited_upstreams_answer_429_with_retry_after(guarantees):
    limited = {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}
    upstream = stub_upstream(
        answers={
            "up-a": (429, limited, {"retry-after": "7"}),
            "up-b": (429, limited, {"retry-after": "3"}),
            "up-c": (429, limited, {"retry-after": "12"}),
        }
    )
    with serve_in_thread(upstream) as up:
        with serve_in_thread(create_app(tiny_router(), upstreams=upstreams_for(up))) as base:
            client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)
            with pytest.raises(openai.RateLimitError) as e:
                client.chat.completions.create(model="v0lite", messages=USER)
            tried = [m for m, _ in upstream.state.calls]
            assert len(tried) == 2
            want = str(max(int({"up-a": 7, "up-b": 3, "up-c": 12}[m]) for m in tried))
            assert e.value.response.headers["retry-after"] == want
            assert e.value.body["type"] == "rate_limit_error" and e.value.body["code"] == "rate_limit_exceeded"
            r = _chat(base, model="a")
            assert r.status_code == 429 and r.headers["retry-after"] == "7", r.text
    guarantees.tick("faults injected")


def test_every_error_type_is_openais():
    """Our finer names go in "code"; "type" is one of OpenAI's."""
    import re
    from pathlib import Path

    from v0lite.serve._models import TYPES, ApiError

    src = "".join(p.read_text() for p in Path("v0lite/serve").glob("*.py"))
    assert set(re.findall(r'kind="(\w+)"', src)) <= set(TYPES)
    for status in (400, 401, 403, 404, 405, 413, 422, 429, 499, 500, 502, 503):
        assert ApiError(status, "x").kind in TYPES
    with pytest.raises(ValueError):
        ApiError(503, "x", kind="unavailable")


# --------------------------------------------------------------------------- numbers, Retry-After, long names

OVERFLOW = b'{"id": "x", "object": "chat.completion", "choices": [], "usage": {"total_tokens": 1e400}}'


def test_an_upstream_number_that_overflows_falls_back_and_a_refusal_holding_one_is_still_passed(guarantees):
    """1e400 is JSON syntax but no double: a 2xx answer holding it is bad_json (next model); a 400 holding it
    keeps the upstream's status, with a made-up error object (as for a body that is no OpenAI error)."""
    refusal = b'{"error": {"message": "bad tool_choice", "type": "invalid_request_error", "x": -1e400}}'
    surrogate = b'{"id": "x", "object": "chat.completion", "choices": [], "note": "\\ud800"}'
    upstream = stub_upstream(
        raw={"up-b": (200, OVERFLOW), "up-c": (422, refusal), "up-a": (200, surrogate)},
        answers={"up-d": (400, {"detail": "no"}, {})},
    )
    with serve_in_thread(upstream) as up:
        ups = upstreams_for(up, names=("a", "b", "c", "d"))
        with serve_in_thread(create_app(tiny_router(), upstreams=ups, pool=["a", "b", "c"])) as base:
            r = _chat(base)  # sorting: b first (1e400), then the next best (a lone surrogate, or c's 422)
            assert r.status_code in (422, 502) and r.headers["x-request-id"], r.text
            r = _chat(base, model="b")
            assert r.status_code == 502 and "1e400, which overflows a double" in r.json()["error"]["message"], r.text
            r = _chat(base, model="a")
            assert r.status_code == 502 and "lone surrogate" in r.json()["error"]["message"], r.text
            r = _chat(base, model="c")
            err = r.json()["error"]
            assert r.status_code == 422 and err["code"] == "upstream_refused" and "bad tool_choice" in err["message"]
            assert r.headers["x-v0lite-model"] == "c" and err["param"] is None
            r = _chat(base, model="d")  # a 400 body that is no OpenAI error object: the same made-up object
            assert r.status_code == 400 and r.json()["error"]["code"] == "upstream_refused", r.text
            m = _metrics(base)
    assert m['v0lite_upstream_errors_total{model="b",reason="bad_json"}'] == 2
    assert m['v0lite_upstream_errors_total{model="a",reason="bad_json"}'] >= 1
    assert not any('status="500"' in k for k in m)
    guarantees.tick("faults injected", 3)


def _http_date(seconds_from_now: float) -> str:
    from email.utils import formatdate

    return formatdate(time.time() + seconds_from_now, usegmt=True)


def test_retry_after_values_are_read_as_seconds_and_invalid_ones_ignored():
    from v0lite.serve._chat import _retry_after, retry_after_seconds

    for bad in ("inf", "1e400", "nan", "-5", "abc", "1.5", "5, 7", "", " ", "+3", "0x10", "٣"):
        assert retry_after_seconds(bad) is None, bad
    assert retry_after_seconds("7") == 7 and retry_after_seconds(" 0 ") == 0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # past: retry now
    assert 995 <= retry_after_seconds(_http_date(1000)) <= 1000
    assert 995 <= int(_retry_after(["30", _http_date(1000), "abc"])) <= 1000  # a later date beats a number
    assert _retry_after([_http_date(1000), "2000", _http_date(5)]) == "2000"
    assert 1995 <= int(_retry_after([_http_date(2000), _http_date(1000)])) <= 2000  # dates only: the largest
    assert _retry_after(["inf", "nan", "-5", "5, 7"]) is None and _retry_after([]) is None


@pytest.mark.parametrize(
    "values,want",
    [
        ({"up-a": "inf", "up-b": "1e400", "up-c": "nan"}, None),  # was a 500
        ({"up-a": "-5", "up-b": "1.5", "up-c": "5, 7"}, None),  # was passed on as sent
        ({"up-a": "5", "up-b": "date", "up-c": "5"}, "1000"),  # a number always won
    ],
)
def test_rate_limited_upstreams_with_odd_retry_after_answer_429_with_valid_seconds(values, want, guarantees):
    limited = {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}
    answers = {m: (429, limited, {"retry-after": _http_date(1000) if v == "date" else v}) for m, v in values.items()}
    upstream = stub_upstream(answers=answers)
    with serve_in_thread(upstream) as up:
        with serve_in_thread(create_app(tiny_router(), upstreams=upstreams_for(up))) as base:
            r = _chat(base)  # sorting: b first, then the next best
            assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded", r.text
            if want is None:
                assert "retry-after" not in r.headers and "retry later" in r.json()["error"]["fix"]
            else:
                assert 995 <= int(r.headers["retry-after"]) <= int(want), r.headers
    guarantees.tick("faults injected")


def test_a_long_unknown_model_name_is_shortened_in_the_message():
    upstream = stub_upstream()
    with serve_in_thread(upstream) as up:
        with serve_in_thread(create_app(tiny_router(), upstreams=upstreams_for(up))) as base:
            r = _chat(base, model="m" * 5000)
    err = r.json()["error"]
    assert r.status_code == 404 and err["code"] == "model_not_found"
    assert len(err["message"]) < 400 and "m" * 77 + "..." in err["message"] and len(err["value"]) == 80
