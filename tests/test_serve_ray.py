"""The service on Ray Serve: 2 replicas over one outcome store, on a local Ray instance.

An outcome posted through one request (to whichever replica Ray's proxy picks) reaches both
replicas' routing within the refresh delay. Ray's HTTP proxy binds 127.0.0.1 on a free port; the
requests and the wait are bounded; Ray is shut down whatever the test did. The replicas use the
fake encoder through a Ray worker setup hook (``fake_minilm_in_worker``).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.serve_util import ROOT, free_port, save_cli_router, tiny_router
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
    with pytest.raises(DataError, match="each replica must open its own connection"):
        ray_app(tmp_path / "missing", store=object())
    with pytest.raises(DataError, match="api_keys="):
        run_ray(tmp_path / "missing", host="0.0.0.0")
    assert not ray.is_initialized()
    guarantees.tick("bad-input cases tried", 5)


def test_cli_replicas_refuses_before_ray_starts(tmp_path, capsys, guarantees):
    import ray

    from v0lite.cli import main

    assert main(["serve", "--router", str(tmp_path / "nope"), "--replicas", "-1"]) == 1
    assert "--replicas -1" in capsys.readouterr().err
    assert main(["serve", "--router", str(tmp_path / "nope"), "--replicas", "2"]) == 1
    assert "--router" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    save_cli_router(tmp_path / "router", {"V0LITE_CACHE": str(tmp_path / "cache")})
    args = ["serve", "--router", str(tmp_path / "router"), "--replicas", "2", "--data-dir", str(tmp_path / "full")]
    assert main(args) == 1
    assert "--data-dir" in capsys.readouterr().err and (tmp_path / "full" / "notes.txt").read_text() == "mine"
    assert not ray.is_initialized()
    guarantees.tick("bad-input cases tried", 3)


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


@pytest.mark.slow
def test_cli_replicas_serves_on_ray_and_stops_on_sigterm(tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    monkeypatch.setenv("V0LITE_CACHE", cache)
    save_cli_router(tmp_path / "router", {"V0LITE_CACHE": cache})
    port = free_port()
    args = ["serve", "--router", str(tmp_path / "router"), "--data-dir", str(tmp_path / "store"), "--replicas", "2"]
    args += ["--refresh-seconds", str(REFRESH_S), "--host", "127.0.0.1", "--port", str(port)]
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
        deadline, ready, seen = time.monotonic() + 150, False, set()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            while not ready:
                assert proc.poll() is None, f"v0lite serve --replicas exited ({proc.returncode}): {_text(err)}"
                assert time.monotonic() < deadline, "the Ray Serve application did not come up in 150 s"
                try:
                    ready = c.get("/readyz").status_code == 200
                except httpx.HTTPError:
                    pass
                time.sleep(0.0 if ready else 0.5)
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
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        err.close()


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
    assert main([*base, "--port", "0", "--replicas", "1"]) == 0
    err = capsys.readouterr().err
    given = calls[0]["port"]
    assert 0 < given < 65536 and calls[0]["blocking"] and calls[0]["num_replicas"] == 1
    assert "1 Ray Serve replica, store none" in err and f"http://127.0.0.1:{given}" in err, err
    guarantees.tick("bad-input cases tried", 2)


@pytest.fixture
def stub_ray(monkeypatch):
    """run_ray over stand-ins for Ray and Ray Serve (nothing starts), with the caller's own SIGTERM handler set.

    Yields ``(events, set_ray_running, callers_handler)``: ``events`` lists what happened, in order.
    """
    import types

    from v0lite.serve import _ray

    events, running = [], {"ray": False}

    def callers_handler(signum, frame):  # the caller's own: a SIGTERM that reaches it is recorded, not fatal
        events.append("caller's handler ran")

    def run(app, name, route_prefix):
        events.append(("handler during run", signal.getsignal(signal.SIGTERM)))
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
        start=lambda http_options: None, run=run, shutdown=shutdown, delete=lambda name: events.append("delete")
    )
    fake_ray = types.SimpleNamespace(
        is_initialized=lambda: running["ray"],
        init=lambda **kw: events.append("ray.init"),
        shutdown=lambda: events.append("ray.shutdown"),
    )
    monkeypatch.setattr(_ray, "_serve", lambda: fake_serve)
    monkeypatch.setattr(_ray, "ray_app", lambda router, **kw: "app")
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    before = signal.signal(signal.SIGTERM, callers_handler)
    try:
        yield events, lambda: running.update(ray=True), callers_handler
    finally:
        signal.signal(signal.SIGTERM, before)


def test_blocking_run_ray_puts_sigterm_back_and_ignores_it_while_stopping(stub_ray):
    """Review: a resent SIGTERM cut serve.shutdown()/ray.shutdown() short; the handler is the caller's after."""
    events, _, callers_handler = stub_ray
    assert run_ray("router", port=8000, blocking=True) is None
    during_run, during_shutdown = events[1], events[2]
    assert events[0] == "ray.init" and during_run[1] not in (callers_handler, signal.SIG_DFL)  # run_ray's own
    with pytest.raises(KeyboardInterrupt):  # which stops the run as Ctrl-C does
        during_run[1](signal.SIGTERM, None)
    assert during_shutdown == ("handler during shutdown", signal.SIG_IGN)
    assert events[3:] == ["serve.shutdown", "ray.shutdown"], events  # neither interrupted nor skipped
    assert signal.getsignal(signal.SIGTERM) is callers_handler


def test_blocking_run_ray_on_the_callers_ray_leaves_sigterm_alone(stub_ray):
    """Review: on the caller's Ray, the finally replaced Ray's (C++) SIGTERM handler with SIG_DFL for good."""
    events, ray_running, callers_handler = stub_ray
    ray_running()
    assert run_ray("router", port=8000, blocking=True) is None
    assert events == [("handler during run", callers_handler), "delete"], events  # Ray neither started nor stopped
    assert signal.getsignal(signal.SIGTERM) is callers_handler
