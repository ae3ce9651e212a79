"""Helpers of the serve tests: a tiny router, bounded loopback servers, an OpenAI-compatible upstream stub.

Every server here binds 127.0.0.1 on a free port, serves at most ``max_seconds`` (a watchdog
asks it to exit), and is stopped by the context manager that started it, whatever the test did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.conftest import FakeEncoder, topic_log

ROOT = Path(__file__).resolve().parents[1]
PRICES = {"a": 0.002, "b": 0.002, "c": 0.001}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_router(encoder=None, policies=("a", "b", "c"), head="knn", strategy="utility"):
    """A router over a topic log (a strong on add/prove, b on sort/translate), fixed prices, fast head."""
    from v0lite.estimator import V0Regressor
    from v0lite.routing import Router

    log = topic_log(n_prompts=40, policies=policies)
    vm = V0Regressor(head=head, encoder=encoder or FakeEncoder(), cache_dir=False, k=8).fit(log)
    return Router(vm, cost_model="fixed", prices={p: PRICES[p] for p in policies}, strategy=strategy).fit()


@contextlib.contextmanager
def serve_in_thread(app, *, max_seconds: float = 60.0, wait_ready: bool = True):
    """Run ``app`` with uvicorn in a thread on 127.0.0.1:<free port>; yields the base URL (once ready)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    watchdog = threading.Timer(max_seconds, lambda: setattr(server, "should_exit", True))
    watchdog.daemon = True
    watchdog.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        base = f"http://127.0.0.1:{port}"
        # a v0lite app replays its store after the port opens: ready when /readyz says so (a stub has none: 404)
        while wait_ready and httpx.get(base + "/readyz", timeout=5).status_code == 503:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not become ready")
            time.sleep(0.02)
        yield base
    finally:
        watchdog.cancel()
        server.should_exit = True
        thread.join(15)


def stub_upstream(
    *,
    fail: set | None = None,
    delay_s: float = 0.0,
    expect_key: str | None = None,
    gzip_when: str | None = None,
    cut: set | None = None,
    bad_json: set | None = None,
    stream_faults: dict | None = None,
    answers: dict | None = None,
    nan: set | None = None,
    raw: dict | None = None,
):
    """An OpenAI-compatible chat-completions stub: it answers ``echo: <last user text>`` and records calls.

    ``fail``: upstream model names that answer 500. ``expect_key``: answer 401 without that bearer key.
    ``gzip_when``: ``"allowed"`` (gzip the answer when the request's Accept-Encoding allows it, as
    real servers behind a proxy do) or ``"always"``. ``cut``: models whose stream breaks after its
    first event. ``bad_json``: models answering 200 with a body that is not JSON.
    ``stream_faults``: model -> how its 200 answer to a streamed call goes wrong: ``"partial"`` (cut in the
    middle of its second event), ``"nodone"`` (ends cleanly without ``data: [DONE]``), ``"json"`` (a JSON
    chat completion, not an event stream), ``"slow"`` (its first event, then 8 s before the end).
    ``app.state.calls`` lists (model, authorization header) per call; ``app.state.encodings`` the
    Accept-Encoding headers. ``answers``: model -> ``(status, JSON body, headers)`` it answers instead
    (e.g. a 400 error object, a 429 with Retry-After). ``nan``: models whose 200 answer holds
    ``"logprob": -Infinity`` (Python's JSON, not strict JSON). ``raw``: model -> ``(status, body bytes)`` it
    answers as they are (``application/json``), e.g. a number that overflows (``1e400``).
    """
    import gzip

    from fastapi.responses import Response

    app = FastAPI()
    app.state.calls, app.state.encodings = [], []
    fail, cut, bad_json = set(fail or ()), set(cut or ()), set(bad_json or ())

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        auth = request.headers.get("authorization")
        app.state.calls.append((body["model"], auth))
        if expect_key is not None and auth != f"Bearer {expect_key}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        if body["model"] in (raw or {}):
            status, data = raw[body["model"]]
            return Response(data, status_code=status, media_type="application/json")
        if body["model"] in (answers or {}):
            status, obj, headers = answers[body["model"]]
            return JSONResponse(obj, status_code=status, headers=headers)
        if body["model"] in (nan or ()):
            logprobs = {"content": [{"token": "a", "logprob": float("-inf"), "bytes": [97], "top_logprobs": []}]}
            choice = {"index": 0, "message": {"role": "assistant", "content": "a"}, "logprobs": logprobs}
            data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "choices": [choice]})
            return Response(data.encode(), media_type="application/json")
        if body["model"] in fail:
            return JSONResponse({"error": {"message": f"{body['model']} is down\nsecond line"}}, status_code=500)
        if delay_s:
            await asyncio.sleep(delay_s)
        app.state.encodings.append(request.headers.get("accept-encoding", ""))
        if body["model"] in bad_json:
            return Response(b'{"id": "x", "choices": [', media_type="application/json")
        text = "echo: " + str(body["messages"][-1]["content"])
        zipped = gzip_when == "always" or (
            gzip_when == "allowed" and "gzip" in request.headers.get("accept-encoding", "")
        )
        fault = (stream_faults or {}).get(body["model"]) if body.get("stream") else None
        if fault == "json":
            return JSONResponse({"id": "x", "object": "chat.completion", "choices": []})
        if fault in ("partial", "nodone", "slow"):

            async def broken():
                chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
                yield f"data: {json.dumps({**chunk, 'choices': [{'index': 0, 'delta': {'content': 'echo:'}}]})}\n\n"
                if fault == "partial":
                    yield 'data: {"id": "c1", "object": "chat.comp'
                    raise RuntimeError("the upstream broke mid-event")
                if fault == "slow":
                    await asyncio.sleep(8.0)
                    yield "data: [DONE]\n\n"

            return StreamingResponse(broken(), media_type="text/event-stream")
        if body.get("stream"):

            async def events():
                for i, piece in enumerate(text.split(" ")):
                    if i == 1 and body["model"] in cut:
                        raise RuntimeError("the upstream broke mid-stream")
                    chunk = {
                        "id": "c1",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "delta": {"content": (" " if i else "") + piece}, "finish_reason": None}
                        ],
                    }
                    yield f"data: {json.dumps(chunk)}\n\n"
                yield "data: [DONE]\n\n"

            if zipped:
                data = gzip.compress("".join([e async for e in events()]).encode())
                return Response(data, media_type="text/event-stream", headers={"content-encoding": "gzip"})
            return StreamingResponse(events(), media_type="text/event-stream")
        answer = {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        if zipped:
            data = gzip.compress(json.dumps(answer).encode())
            return Response(data, media_type="application/json", headers={"content-encoding": "gzip"})
        return answer

    return app


def upstreams_for(base_url: str, names=("a", "b", "c"), **extra) -> dict:
    return {n: {"base_url": f"{base_url}/v1", "model": f"up-{n}", **extra} for n in names}


# --------------------------------------------------------------------------- subprocess servers (the CLI)

# The CLI in a fresh interpreter, with the fake encoder standing in for MiniLM (as the fake_minilm fixture does).
_LAUNCH = (
    "import sys, v0lite.embed as e\n"
    "from tests.conftest import FakeEncoder\n"
    "enc = FakeEncoder()\n"
    "e._load_sentence_transformer = lambda path, device, **kw: enc\n"
    "from v0lite.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def save_cli_router(path, monkeypatch_env: dict, strategy: str = "utility") -> None:
    """Save a tiny router whose value model uses the default encoder id (the fake one, patched)."""
    import v0lite.embed as embed

    enc = FakeEncoder()
    old = embed._load_sentence_transformer
    embed._load_sentence_transformer = lambda p, device, **kw: enc
    try:
        from v0lite.estimator import V0Regressor
        from v0lite.routing import Router

        log = topic_log(n_prompts=40)
        vm = V0Regressor(head="knn", k=8, cache_dir=monkeypatch_env["V0LITE_CACHE"]).fit(log)
        Router(vm, cost_model="fixed", prices=PRICES, strategy=strategy).fit().save(path)
    finally:
        embed._load_sentence_transformer = old


class CliServer:
    """``v0lite serve ...`` in a subprocess on a free loopback port; killed at exit whatever happened."""

    def __init__(self, args: list[str], env: dict, *, max_seconds: float = 90.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["serve", *args, "--host", "127.0.0.1", "--port", str(self.port)]
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.max_seconds = max_seconds
        self.proc = None

    def start(self, *, wait: bool = True) -> "CliServer":
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._timer = threading.Timer(self.max_seconds, self.kill)
        self._timer.daemon = True
        self._timer.start()
        if wait:
            deadline = time.monotonic() + 60
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited ({self.proc.returncode}): {self.proc.stderr.read()[-2000:]}")
                try:
                    if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError("the server did not become ready in 60 s")
                time.sleep(0.1)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self._timer.cancel()
        self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


def start_in_flight(call, upstream, timeout: float = 10.0):
    """Start ``call`` in a thread and return the thread once its request reached ``upstream`` (a stub: its
    ``state.calls`` grows), so a stop sent next finds the request in flight; fails the test after ``timeout``."""
    import threading
    import time

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + timeout
    while not upstream.state.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert upstream.state.calls, "the request never reached the upstream"
    return thread
