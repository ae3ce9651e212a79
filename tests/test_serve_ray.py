"""The service on Ray Serve: 2 replicas over one outcome store, on a local Ray instance.

An outcome posted through one request (to whichever replica Ray's proxy picks) reaches both
replicas' routing within the refresh delay. Ray's HTTP proxy binds 127.0.0.1 on a free port; the
requests and the wait are bounded; Ray is shut down whatever the test did. The replicas use the
fake encoder through a Ray worker setup hook (``fake_minilm_in_worker``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.serve_util import (
    ROOT,
    free_port,
    save_cli_router,
    serve_in_thread,
    start_in_flight,
    stub_upstream,
    tiny_router,
    upstreams_for,
)
from v0lite.exceptions import DataError
from v0lite.serve import Limits, SqliteStore, ray_app, run_ray
from v0lite.serve._ray import REPLICA_HEADER

REFRESH_S = 0.5
SLACK_S = 3.0  # the refresh itself, a request through the proxy, two cores shared with Ray's own processes


def fake_minilm_in_worker():
    """Ray worker setup hook: the default encoder is the fake one in every replica (as the CLI tests do)."""
    import v0lite.embed as embed
    from tests.conftest import FakeEncoder

    enc = FakeEncoder()
    embed._load_sentence_transformer = lambda path, device, **kw: enc


@pytest.fixture(params=["data_dir", "store factory"])
def ray_service(request, tmp_path, monkeypatch):
    """The service on a local Ray: 2 replicas, one SQLite store; yields (httpx client, store folder).

    The store comes as ``data_dir`` (one machine) or as ``store``, a function each replica calls
    (the cluster form: each replica opens its own connection to the one database).
    """
    import ray
    from ray import serve

    cache = str(tmp_path / "cache")
    monkeypatch.setenv("V0LITE_CACHE", cache)
    save_cli_router(tmp_path / "router", {"V0LITE_CACHE": cache})
    ray.init(**ray_init_kwargs(cache))
    if request.param == "store factory":
        SqliteStore(tmp_path / "store").close()  # made once here, as a database would be; the replicas open it
    try:
        port = free_port()
        monkeypatch.chdir(tmp_path)  # relative paths are the driver's: the replicas get them absolute
        run_ray(
            "router",
            host="127.0.0.1",
            port=port,
            **(
                {"data_dir": "store"}
                if request.param == "data_dir"
                else {"store": functools.partial(SqliteStore, str(tmp_path / "store"))}
            ),
            limits=Limits(refresh_seconds=REFRESH_S),
            num_replicas=2,
            ray_actor_options={"num_cpus": 0.5},
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client, tmp_path / "store"
    finally:
        serve.shutdown()
        ray.shutdown()


def _route(c, prompt):
    r = c.post("/v1/route", json={"prompt": prompt})
    assert r.status_code == 200, r.text
    return r.headers[REPLICA_HEADER], r.json()["model"]


@pytest.mark.slow
def test_feedback_to_one_replica_reaches_both_within_the_delay(ray_service):
    c, store = ray_service
    prompt = "sort the list case 950"
    # both replicas answer, and both route the sorting prompt to b
    seen = {}
    for _ in range(60):
        replica, model = _route(c, prompt)
        seen.setdefault(replica, set()).add(model)
        if len(seen) == 2:
            break
    assert len(seen) == 2, f"Ray's proxy reached only {sorted(seen)} in 60 requests"
    assert all(models == {"b"} for models in seen.values()), seen
    # production says: on sorting, b fails and a succeeds -- one request, to one replica
    outcomes = [{"policy": "b", "prompt": f"sort the list case {900 + i}", "score": 0.0} for i in range(40)]
    outcomes += [{"policy": "a", "prompt": f"sort the list case {900 + i}", "score": 1.0} for i in range(40)]
    t0 = time.monotonic()
    r = c.post("/v1/feedback", json={"outcomes": outcomes})
    assert r.status_code == 200 and r.json()["stored"] == 80, r.text
    assert r.json()["queued_rows"] == 80 and r.json()["applied_within_s"] >= REFRESH_S, r.text
    stored_by = r.headers[REPLICA_HEADER]
    first_a = {}
    for _ in range(400):
        replica, model = _route(c, prompt)
        assert replica in seen, f"a third replica {replica} answered"
        if model == "a":
            first_a.setdefault(replica, time.monotonic() - t0)
        else:
            assert replica not in first_a, f"{replica} routed with the feedback, then without it"
        if len(first_a) == 2:
            break
        assert time.monotonic() - t0 < REFRESH_S + SLACK_S, (
            f"after {time.monotonic() - t0:.1f} s only {sorted(first_a)} route with the feedback "
            f"(stored by {stored_by}; refresh every {REFRESH_S} s)"
        )
        time.sleep(0.02)
    assert set(first_a) == set(seen), first_a
    assert max(first_a.values()) < REFRESH_S + SLACK_S
    # each replica counts the rows from the one store and has applied all of them
    stats = {}
    for _ in range(60):
        r = c.get("/v1/stats")
        stats[r.headers[REPLICA_HEADER]] = r.json()
        if len(stats) == 2:
            break
    assert set(stats) == set(seen)
    for st in stats.values():
        assert st["feedback_rows"] == st["applied_rows"] == 80 and st["history_rows"] == 200, st
    mine = SqliteStore(store)  # the one store, read from outside: the batch once, not once per replica
    assert mine.count() == 80
    mine.close()


def test_ray_app_checks_its_inputs_before_ray_starts(tmp_path, guarantees):
    import ray

    with pytest.raises(DataError, match=r"Router.save\(DIR\)"):
        ray_app(tiny_router())
    with pytest.raises(DataError, match="does not exist"):
        ray_app(tmp_path / "missing")
    with pytest.raises(DataError, match="num_replicas=0"):
        ray_app(tmp_path / "missing", num_replicas=0)
    with pytest.raises(DataError, match=r"drain_seconds=-1: must be a finite number >= 0 and <= 86,400"):
        ray_app(tmp_path / "missing", drain_seconds=-1)
    with pytest.raises(DataError, match="each replica must open its own connection"):
        ray_app(tmp_path / "missing", store=object())
    with pytest.raises(DataError, match="api_keys="):
        run_ray(tmp_path / "missing", host="0.0.0.0")
    assert not ray.is_initialized()
    guarantees.tick("bad-input cases tried", 6)


def test_cli_replicas_refuses_before_ray_starts(tmp_path, capsys, guarantees):
    import ray

    from v0lite.cli import main

    assert main(["serve", "--router", str(tmp_path / "nope"), "--replicas", "-1"]) == 1
    assert "--replicas -1" in capsys.readouterr().err
    # 0 is no "one process" spelling (the docs say: leave it out); it was taken silently as one process
    assert main(["serve", "--router", str(tmp_path / "nope"), "--replicas", "0"]) == 1
    assert "--replicas 0: must be >= 1 (leave it out for one process)" in capsys.readouterr().err
    assert main(["serve", "--router", str(tmp_path / "nope"), "--replicas", "2"]) == 1
    assert "--router" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    save_cli_router(tmp_path / "router", {"V0LITE_CACHE": str(tmp_path / "cache")})
    args = ["serve", "--router", str(tmp_path / "router"), "--replicas", "2", "--data-dir", str(tmp_path / "full")]
    assert main(args) == 1
    assert "--data-dir" in capsys.readouterr().err and (tmp_path / "full" / "notes.txt").read_text() == "mine"
    assert not ray.is_initialized()
    guarantees.tick("bad-input cases tried", 4)


def test_cli_replicas_refused_config_prints_no_url_and_names_the_path_as_typed(tmp_path, monkeypatch, capsys):
    """Probe J2: the start-up line came before ray_app's checks, announcing a URL that never served, and the
    upstreams file was named by its absolute path (the replicas' copy), not as typed."""
    import ray

    from v0lite.cli import main

    monkeypatch.setenv("V0LITE_CACHE", str(tmp_path / "cache"))
    save_cli_router(tmp_path / "router", {"V0LITE_CACHE": str(tmp_path / "cache")})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ups.json").write_text('{"a": ')
    assert main(["serve", "--router", "router", "--upstreams", "ups.json", "--port", "0", "--replicas", "1"]) == 1
    err = capsys.readouterr().err
    assert "--upstreams ups.json: is not valid JSON" in err and str(tmp_path) not in err, err
    assert "Ray Serve replica" not in err and "http://" not in err, err
    assert not ray.is_initialized()


def test_ray_app_gives_the_drain_time_to_ray_serve(tmp_path, monkeypatch):
    """--drain-seconds reached no replica: Ray Serve's own 20 s graceful shutdown applied whatever was asked."""
    from ray import serve

    seen = []
    real = serve.deployment
    monkeypatch.setattr(serve, "deployment", lambda cls, **kw: seen.append(kw) or real(cls, **kw))
    monkeypatch.setenv("V0LITE_CACHE", str(tmp_path / "cache"))
    save_cli_router(tmp_path / "router", {"V0LITE_CACHE": str(tmp_path / "cache")})
    ray_app(tmp_path / "router", num_replicas=1, drain_seconds=7)
    ray_app(tmp_path / "router", num_replicas=1)
    assert seen[0]["graceful_shutdown_timeout_s"] == 7.0
    assert "graceful_shutdown_timeout_s" not in seen[1]  # left out: Ray Serve's default


# `v0lite serve --replicas 2` in a fresh interpreter: the CLI starts Ray itself (run_ray's ray.init, so Ray's
# own SIGTERM handler is installed where the real command installs it), with the test's settings added: a
# local Ray of 2 CPUs whose workers use the fake encoder
_LAUNCH = (
    "import sys, ray\n"
    "from tests.test_serve_ray import fake_minilm_in_worker, ray_init_kwargs\n"
    "fake_minilm_in_worker()\n"
    "real_init = ray.init\n"
    "ray.init = lambda *a, **kw: real_init(*a, **{**kw, **ray_init_kwargs(sys.argv[1])})\n"
    "from v0lite.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def ray_init_kwargs(cache: str) -> dict:
    """The test's local Ray: 2 CPUs, loopback only, no dashboard; every worker runs ``fake_minilm_in_worker``."""
    return dict(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        runtime_env={
            "worker_process_setup_hook": f"{__name__}.fake_minilm_in_worker",
            "env_vars": {"V0LITE_CACHE": cache, "PYTHONPATH": str(ROOT)},
        },
    )


@contextlib.contextmanager
def cli_on_ray(tmp_path, monkeypatch, flags):
    """``v0lite serve --router R --host 127.0.0.1 --port P *flags`` on the test's local Ray, in a subprocess;
    yields ``(proc, stderr file, httpx client)`` once /readyz answers 200 (at most 150 s). Killed with its
    Ray processes (one session) whatever happened."""
    cache = str(tmp_path / "cache")
    monkeypatch.setenv("V0LITE_CACHE", cache)
    save_cli_router(tmp_path / "router", {"V0LITE_CACHE": cache})
    port = free_port()
    args = ["serve", "--router", str(tmp_path / "router"), "--host", "127.0.0.1", "--port", str(port), *flags]
    err = open(tmp_path / "stderr.txt", "w+")  # a file, not a pipe: nothing blocks on a full pipe
    proc = subprocess.Popen(
        [sys.executable, "-c", _LAUNCH, cache, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "V0LITE_CACHE": cache},
        stdout=subprocess.DEVNULL,
        stderr=err,
        start_new_session=True,  # Ray's processes share the session: the last resort kills them all
    )
    try:
        deadline, ready = time.monotonic() + 150, False
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            while not ready:
                assert proc.poll() is None, f"v0lite serve --replicas exited ({proc.returncode}): {_text(err)}"
                assert time.monotonic() < deadline, "the Ray Serve application did not come up in 150 s"
                try:
                    ready = c.get("/readyz").status_code == 200
                except httpx.HTTPError:
                    pass
                time.sleep(0.0 if ready else 0.5)
            yield proc, err, c
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        err.close()


@pytest.mark.slow
def test_cli_replicas_serves_on_ray_and_stops_on_sigterm(tmp_path, monkeypatch):
    flags = ["--data-dir", str(tmp_path / "store"), "--replicas", "2", "--refresh-seconds", str(REFRESH_S)]
    with cli_on_ray(tmp_path, monkeypatch, flags) as (proc, err, c):
        deadline, seen = time.monotonic() + 150, set()
        rows = [{"policy": "b", "prompt": "sort the list case 990", "score": 0.0}]
        assert c.post("/v1/feedback", json={"outcomes": rows}).status_code == 200
        # the proxy answers once one replica is up; the second may still be starting
        for _ in range(400):
            r = c.post("/v1/route", json={"prompt": "add the numbers case 991"})
            assert r.status_code == 200 and r.json()["model"] == "a", r.text
            seen.add(r.headers[REPLICA_HEADER])
            if len(seen) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(seen) == 2, f"one replica answered every request: {seen}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, _text(err)  # not -6: Ray's handler would abort with no drain, Ray left running
        assert "SIGTERM received" not in _text(err)
        assert "2 Ray Serve replicas" in _text(err)
    store = SqliteStore(tmp_path / "store")
    assert store.count() == 1
    store.close()


@pytest.mark.slow
def test_cli_replicas_sigterm_lets_a_chat_in_flight_finish_and_quiet_is_quiet(tmp_path, monkeypatch):
    """Probe J2: SIGTERM cut off the requests in flight (serve.shutdown() took the proxy down with the
    replicas), --drain-seconds never reached Ray, and --quiet still printed Ray's INFO lines."""
    upstream = stub_upstream(delay_s=3.0)  # the chat's answer is 3 s away when SIGTERM comes
    with serve_in_thread(upstream, max_seconds=170) as up:
        (tmp_path / "ups.json").write_text(json.dumps(upstreams_for(up)))
        flags = ["--upstreams", str(tmp_path / "ups.json"), "--replicas", "1", "--drain-seconds", "10", "--quiet"]
        with cli_on_ray(tmp_path, monkeypatch, flags) as (proc, err, c):
            result = {}
            body = {"model": "v0lite", "messages": [{"role": "user", "content": "sort the list case 970"}]}

            def call():
                try:
                    result["r"] = c.post("/v1/chat/completions", json=body)
                except httpx.HTTPError as exc:  # the proxy went down with the chat in flight
                    result["r"] = exc

            chat = start_in_flight(call, upstream, timeout=20)
            proc.send_signal(signal.SIGTERM)
            chat.join(30)
            assert proc.wait(60) == 0, _text(err)
            log = _text(err)
    r = result["r"]
    assert isinstance(r, httpx.Response), f"the chat in flight was cut off: {r!r}; stderr: {log}"
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"].startswith("echo: sort"), r.text
    assert not [line for line in log.splitlines() if " INFO " in line or line.startswith("INFO")], log
    assert "Ray Serve replica" not in log, log  # --quiet: no start-up line either


def _text(f) -> str:
    f.seek(0)
    return f.read()[-3000:]


def test_cli_replicas_checks_port_and_extra_before_the_start_up_line(tmp_path, monkeypatch, capsys, guarantees):
    import socket

    import ray

    from v0lite import serve as serve_pkg
    from v0lite.cli import main
    from v0lite.exceptions import V0liteError
    from v0lite.serve import _ray

    save_cli_router(tmp_path / "router", {"V0LITE_CACHE": str(tmp_path / "cache")})
    base = ["serve", "--router", str(tmp_path / "router"), "--host", "127.0.0.1"]
    with socket.socket() as held:  # a taken port: refused in flag terms, before Ray starts, as without --replicas
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        assert main([*base, "--port", str(port), "--replicas", "1"]) == 1
    assert f"--port {port}: cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert not ray.is_initialized()

    def no_extra():
        raise V0liteError("v0lite serve on Ray Serve needs ray. Fix: pip install 'v0lite[ray]'.")

    monkeypatch.setattr(_ray, "_serve", no_extra)
    assert main([*base, "--port", "0", "--replicas", "1"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'v0lite[ray]'" in err and "Ray Serve replica" not in err  # no start-up line first
    monkeypatch.undo()

    calls = []
    monkeypatch.setattr(_ray, "_serve", lambda: None)
    monkeypatch.setattr(serve_pkg, "run_ray", lambda router, **kw: calls.append(kw))
    assert main([*base, "--port", "0", "--replicas", "1", "--drain-seconds", "7"]) == 0
    assert "Ray Serve replica" not in capsys.readouterr().err  # not before run_ray's checks passed
    given = calls[0]["port"]
    assert 0 < given < 65536 and calls[0]["blocking"] and calls[0]["num_replicas"] == 1
    assert calls[0]["drain_seconds"] == 7.0 and calls[0]["quiet"] is False  # both reach Ray Serve
    calls[0]["on_checked"]()  # run_ray calls it once ray_app's checks passed
    err = capsys.readouterr().err
    assert "1 Ray Serve replica, store none" in err and f"http://127.0.0.1:{given}" in err, err
    guarantees.tick("bad-input cases tried", 2)


@pytest.fixture
def stub_ray(monkeypatch):
    """run_ray over stand-ins for Ray and Ray Serve (nothing starts), with the caller's own SIGTERM handler set.

    Yields ``(events, set_ray_running, callers_handler, calls)``: ``events`` lists what happened, in order;
    ``calls`` the keyword arguments ``ray.init``, ``serve.start`` and ``serve.run`` got.
    """
    import types

    from v0lite.serve import _ray

    events, running, calls = [], {"ray": False}, []

    def callers_handler(signum, frame):  # the caller's own: a SIGTERM that reaches it is recorded, not fatal
        events.append("caller's handler ran")

    def run(app, name, route_prefix, **kw):
        events.append(("handler during run", signal.getsignal(signal.SIGTERM)))
        calls.append(("serve.run", kw))
        raise KeyboardInterrupt  # Ctrl-C while the replicas start

    def shutdown():
        events.append(("handler during shutdown", signal.getsignal(signal.SIGTERM)))
        try:  # a second SIGTERM while the replicas drain (systemd, Kubernetes resend it)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
        except KeyboardInterrupt:
            events.append("shutdown interrupted")
        events.append("serve.shutdown")

    fake_serve = types.SimpleNamespace(
        start=lambda http_options, **kw: calls.append(("serve.start", kw)),
        run=run,
        shutdown=shutdown,
        delete=lambda name: events.append("delete"),
    )
    fake_ray = types.SimpleNamespace(
        is_initialized=lambda: running["ray"],
        init=lambda **kw: events.append("ray.init") or calls.append(("ray.init", kw)),
        shutdown=lambda: events.append("ray.shutdown"),
    )
    monkeypatch.setattr(_ray, "_serve", lambda: fake_serve)
    monkeypatch.setattr(_ray, "ray_app", lambda router, **kw: "app")
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    before = signal.signal(signal.SIGTERM, callers_handler)
    try:
        yield events, lambda: running.update(ray=True), callers_handler, calls
    finally:
        signal.signal(signal.SIGTERM, before)


def test_blocking_run_ray_puts_sigterm_back_and_ignores_it_while_stopping(stub_ray):
    """Review: a resent SIGTERM cut serve.shutdown()/ray.shutdown() short; the handler is the caller's after."""
    events, _, callers_handler, _ = stub_ray
    assert run_ray("router", port=8000, blocking=True) is None
    during_run, during_shutdown = events[1], events[3]
    assert events[0] == "ray.init" and during_run[1] not in (callers_handler, signal.SIG_DFL)  # run_ray's own
    with pytest.raises(KeyboardInterrupt):  # which stops the run as Ctrl-C does
        during_run[1](signal.SIGTERM, None)
    assert during_shutdown == ("handler during shutdown", signal.SIG_IGN)
    # the application deleted first (its replicas drain behind a live proxy), then Ray Serve and Ray stopped:
    # serve.shutdown() alone took the proxy down with the replicas, cutting off the requests in flight
    assert events[2] == "delete" and events[4:] == ["serve.shutdown", "ray.shutdown"], events  # neither skipped
    assert signal.getsignal(signal.SIGTERM) is callers_handler


def test_blocking_run_ray_on_the_callers_ray_leaves_sigterm_alone(stub_ray):
    """Review: on the caller's Ray, the finally replaced Ray's (C++) SIGTERM handler with SIG_DFL for good."""
    events, ray_running, callers_handler, _ = stub_ray
    ray_running()
    assert run_ray("router", port=8000, blocking=True) is None
    assert events == [("handler during run", callers_handler), "delete"], events  # Ray neither started nor stopped
    assert signal.getsignal(signal.SIGTERM) is callers_handler


def test_quiet_run_ray_asks_ray_and_ray_serve_for_warnings_only(stub_ray):
    """Probe J2: --quiet with --replicas still printed Ray's INFO lines ("Started a local Ray instance", ...)."""
    import logging

    _, _, _, calls = stub_ray
    checked = []
    serve_logger = logging.getLogger("ray.serve")
    level = serve_logger.level
    try:
        run_ray("router", port=8000, blocking=True, quiet=True, on_checked=lambda: checked.append(1))
        assert serve_logger.level == logging.WARNING
    finally:
        serve_logger.setLevel(level)
    got = dict(calls)
    assert got["ray.init"]["logging_level"] == logging.WARNING
    assert got["serve.start"]["logging_config"] == got["serve.run"]["logging_config"] == {"log_level": "WARNING"}
    assert checked == [1]
    calls.clear()
    run_ray("router", port=8000, blocking=True)  # not quiet: Ray's own logging, as before
    assert "logging_level" not in dict(calls)["ray.init"] and not dict(calls)["serve.run"]
