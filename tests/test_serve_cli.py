"""``v0lite serve`` through the CLI: checks before start, and the faults a process meets (kill -9, SIGTERM).

Servers run as subprocesses of the real CLI (the fake encoder stands in for MiniLM), on 127.0.0.1
and a free port, killed by a watchdog after at most 90 s whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.conftest import make_log
from tests.serve_util import (
    ROOT,
    CliServer,
    save_cli_router,
    serve_in_thread,
    start_in_flight,
    stub_upstream,
    upstreams_for,
)
from v0lite.cli import main
from v0lite.serve import SqliteStore


@pytest.fixture
def saved(tmp_path, monkeypatch):
    """(router folder, env for the subprocess) with the embedding cache under tmp_path."""
    env = {"V0LITE_CACHE": str(tmp_path / "cache")}
    monkeypatch.setenv("V0LITE_CACHE", env["V0LITE_CACHE"])
    save_cli_router(tmp_path / "router", env)
    return tmp_path / "router", env


def test_help_is_fast_and_imports_no_server_library(tmp_path):
    code = (
        "import sys, v0lite.cli\n"
        "rc = v0lite.cli.main(['serve', '--help'])\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'httpx', 'prometheus_client', 'torch', 'polars') "
        "if m in sys.modules), rc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    for flag in (
        "--router",
        "--upstreams",
        "--api-keys",
        "--data-dir",
        "--host",
        "--port",
        "--pool",
        "--quiet",
        "--max-body-bytes",
        "--max-prompt-chars",
        "--refresh-seconds",
        "--max-batch",
        "--batch-wait-ms",
        "--max-queue",
        "--max-route-prompts",
        "--cors-origin",
        "--knob",
    ):
        assert flag in out.stdout, flag
    assert out.stdout.strip().splitlines()[-1] == "[] 0"
    text = " ".join(out.stdout.split())  # argparse wraps the help lines
    assert "larger bodies get 413 (default 1000000)" in text
    assert "more get 413 (default 4096)" in text and "capped at 10 s (default 60)" in text


def test_refuses_before_starting(saved, tmp_path, capsys, guarantees):
    router, _ = saved
    # a non-loopback address without keys: refused before anything loads, with the fix
    assert main(["serve", "--router", str(router), "--host", "0.0.0.0"]) == 1
    err = capsys.readouterr().err
    assert "--host 0.0.0.0" in err and "Fix: pass --api-keys PATH" in err and "--host 127.0.0.1" in err
    # a pool model without an upstream is named; --pool narrows
    ups = tmp_path / "ups.json"
    ups.write_text(json.dumps(upstreams_for("http://127.0.0.1:9", names=("a", "b"))))
    assert main(["serve", "--router", str(router), "--upstreams", str(ups), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "models ['c'] of the pool have no upstream" in err and "--pool a,b" in err
    assert main(["serve", "--router", str(tmp_path / "nope")]) == 1
    assert "--router" in capsys.readouterr().err
    assert main(["serve", "--router", str(router), "--refresh-seconds", "0"]) == 1
    assert "Fix: pass --refresh-seconds 1" in capsys.readouterr().err
    assert main(["serve", "--router", str(router), "--port", "70000"]) == 1
    assert "--port 70000" in capsys.readouterr().err
    # a port another process holds: said in flag terms, and no store is created (uvicorn said only "Errno 98")
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        store = tmp_path / "store"
        assert main(["serve", "--router", str(router), "--port", str(port), "--data-dir", str(store)]) == 1
    err = capsys.readouterr().err
    assert f"--port {port}: cannot listen on 127.0.0.1:{port}" in err and "Fix: pass another --port" in err
    assert not store.exists()
    guarantees.tick("bad-input cases tried", 6)


def test_a_router_whose_strategy_needs_a_knob_is_refused_without_knob(tmp_path, monkeypatch, capsys, guarantees):
    """route-eval --strategy budget --save-router R: `serve --router R` says to pass --knob; a bad one is named."""
    env = {"V0LITE_CACHE": str(tmp_path / "cache")}
    monkeypatch.setenv("V0LITE_CACHE", env["V0LITE_CACHE"])
    save_cli_router(tmp_path / "router", env, strategy="budget")
    router = str(tmp_path / "router")
    assert main(["serve", "--router", router]) == 1
    err = capsys.readouterr().err
    assert "strategy 'budget' needs its knob 'budget'" in err and "Fix: pass --knob VALUE >= 0" in err, err
    assert main(["serve", "--router", router, "--knob", "-1"]) == 1
    err = capsys.readouterr().err
    assert "knob -1.0" in err and "Fix: pass --knob VALUE >= 0" in err and "knob=" not in err, err
    for typed, said in (
        ("nan", "nan is not a finite number; "),
        ("1e400", "1e400 is not a finite number (it reads as inf)"),
    ):
        assert main(["serve", "--router", router, "--knob", typed]) == 2  # refused as typed, by the parser
        err = capsys.readouterr().err
        assert f"argument --knob: {said}" in err and "knob inf" not in err, err
    guarantees.tick("bad-input cases tried", 4)


def test_kill9_loses_no_acknowledged_outcome_and_restart_replays(saved, tmp_path, guarantees):
    router, env = saved
    data = tmp_path / "outcomes"
    args = ["--router", str(router), "--data-dir", str(data), "--quiet", "--refresh-seconds", "0.2"]
    acked: list[dict] = []
    stop = threading.Event()
    with CliServer(args, env) as srv:

        def feed():
            with httpx.Client(base_url=srv.url, timeout=10) as c:
                i = 0
                while not stop.is_set():
                    rows = [
                        {"policy": "c", "prompt": f"sort the list fb {i} {j}", "score": (j % 3) / 2} for j in range(7)
                    ]
                    try:
                        r = c.post("/v1/feedback", json={"outcomes": rows})
                    except httpx.HTTPError:
                        return  # the server died mid-request: that batch was never acknowledged
                    if r.status_code == 200:
                        acked.extend(rows)
                    i += 1

        t = threading.Thread(target=feed)
        t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 140 and time.monotonic() < deadline:
            time.sleep(0.01)
        srv.kill()  # SIGKILL while the feeder is still posting
        stop.set()
        t.join(20)
        assert srv.proc.returncode == -9
    guarantees.tick("faults injected")
    assert len(acked) >= 140
    store = SqliteStore(data)
    stored = [(r["policy"], r["prompt"], r["score"]) for _, r in store.read_since(0)]
    store.close()
    assert {(r["policy"], r["prompt"], r["score"]) for r in acked} <= set(stored)  # every acknowledged row
    assert len(stored) % 7 == 0  # and never part of a batch
    with CliServer(args, env) as again:  # restart = replay the whole store into the model
        st = httpx.get(again.url + "/v1/stats", timeout=10).json()
        assert st["feedback_rows"] == st["applied_rows"] == len(stored)
        assert st["history_rows"] == 120 + len(stored)


def _sigterm_with_a_chat_in_flight(saved, tmp_path, *, delay_s, extra=(), check=None):
    """Start ``v0lite serve``, send one chat its upstream answers after ``delay_s``, SIGTERM the server once
    the call reached the upstream; ``check(srv)`` runs while the server object is still open. Returns
    the chat's response."""
    router, env = saved
    upstream = stub_upstream(delay_s=delay_s)
    with serve_in_thread(upstream) as up:
        ups = tmp_path / "ups.json"
        ups.write_text(json.dumps(upstreams_for(up)))
        with CliServer(["--router", str(router), "--upstreams", str(ups), "--quiet", *extra], env) as srv:
            result = {}

            def call():
                result["r"] = httpx.post(
                    srv.url + "/v1/chat/completions",
                    json={"model": "v0lite", "messages": [{"role": "user", "content": "sort the list case 970"}]},
                    timeout=20,
                )

            t = start_in_flight(call, upstream)
            srv.terminate()
            t.join(20)
            # a clean stop: uvicorn re-raises the SIGTERM it drained on, the convention for a signalled exit
            assert srv.proc.wait(20) in (0, -15)
            if check is not None:
                check(srv)
            return result["r"]


def test_sigterm_drains_requests_in_flight(saved, tmp_path):
    def stopped(srv):
        assert "Traceback" not in srv.proc.stderr.read()
        with pytest.raises(httpx.ConnectError):  # and it no longer accepts new ones
            httpx.get(srv.url + "/healthz", timeout=2)

    r = _sigterm_with_a_chat_in_flight(saved, tmp_path, delay_s=1.5, check=stopped)  # the answer 1.5 s away
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"].startswith("echo: sort")
    assert r.headers["x-v0lite-model"] == "b"


@pytest.mark.parametrize(
    "flag,value,said",
    [
        ("--drain-seconds", "nan", "--drain-seconds nan: must be a finite number >= 0"),
        ("--drain-seconds", "-1", "--drain-seconds -1.0: must be a finite number >= 0"),
        ("--upstream-timeout", "0", "--upstream-timeout 0.0: must be a finite number > 0"),
        ("--startup-wait", "-1", "Fix: pass --startup-wait 60"),
        ("--startup-wait", "inf", "--startup-wait inf: must be a finite number >= 0"),
        (
            "--refresh-seconds",
            "0",
            "must be a finite number >= 0.01 and <= 86,400 (the delay before feedback reaches routing). Fix: "
            "pass --refresh-seconds 1 (any number >= 0.01 and <= 86,400)",
        ),
        ("--refresh-seconds", "1e-300", "--refresh-seconds 1e-300: must be a finite number >= 0.01 and <= 86,400"),
        ("--batch-wait-ms", "1e308", "--batch-wait-ms 1e+308: must be a finite number >= 0 and <= 60,000"),
        ("--drain-seconds", "1e20", "--drain-seconds 1e+20: must be a finite number >= 0 and <= 86,400"),
        ("--startup-wait", "1e9", "--startup-wait 1000000000.0: must be a finite number >= 0 and <= 86,400"),
        ("--upstream-timeout", "1e9", "--upstream-timeout 1000000000.0: must be a finite number > 0 and <= 86,400"),
        ("--max-body-bytes", "0", "--max-body-bytes 0: must be an integer >= 1. Fix: pass --max-body-bytes VALUE"),
        (  # had no upper bound: a body is read whole into memory
            "--max-body-bytes",
            "99999999999999999999",
            "--max-body-bytes 99999999999999999999: must be <= 1,073,741,824 (1 GiB; a request body is read whole "
            "into memory). Fix: pass --max-body-bytes VALUE in 1..1073741824",
        ),
        ("--batch-wait-ms", "-2", "--batch-wait-ms -2.0: must be a finite number >= 0"),
        ("--max-route-prompts", "0", "--max-route-prompts 0: must be an integer >= 1. Fix: pass --max-route-prompts"),
    ],
)
def test_every_limit_flag_is_checked_in_flag_terms(saved, capsys, guarantees, flag, value, said):
    router, _ = saved
    assert main(["serve", "--router", str(router), flag, value]) == 1
    err = capsys.readouterr().err
    assert said in err, err
    python_names = ("drain_seconds", "upstream_timeout_s", "startup_wait_s", "refresh_seconds", "max_body_bytes")
    python_names += ("max_route_prompts",)
    assert not any(n in err for n in python_names + ("batch_wait_ms",)) and "Fix: pass --" in err, err
    guarantees.tick("bad-input cases tried")


def test_drain_seconds_is_ray_apps_own_check_said_in_flag_terms(tmp_path, monkeypatch, capsys):
    """The CLI kept its own copy of ray_app's --drain-seconds check (two rules to keep alike): it now runs the
    library's, for one process too, and says its refusal with the flag (here a stricter rule stands in)."""
    from v0lite.exceptions import DataError
    from v0lite.serve import _ray

    seen = []

    def stricter(value):
        seen.append(value)
        raise DataError(f"drain_seconds={value!r}: must be <= 4 (a stricter rule). Fix: pass drain_seconds=3.")

    monkeypatch.setattr(_ray, "check_drain_seconds", stricter)
    assert main(["serve", "--router", str(tmp_path / "r"), "--drain-seconds", "5"]) == 1  # checked before the router
    err = capsys.readouterr().err
    assert seen == [5.0] and "drain_seconds" not in err, err
    assert "--drain-seconds 5.0: must be <= 4 (a stricter rule). Fix: pass --drain-seconds 3." in err, err


def test_a_request_cut_by_the_drain_time_gets_the_error_object(saved, tmp_path, guarantees):
    # the answer is 8 s away, the drain time 0.5 s
    r = _sigterm_with_a_chat_in_flight(saved, tmp_path, delay_s=8.0, extra=("--drain-seconds", "0.5"))
    err = r.json()["error"]
    assert (
        r.status_code == 503
        and err["type"] == "server_error"
        and err["code"] == "unavailable"
        and "drain" in err["message"]
    ), r.text
    assert "retry" in err["fix"]
    guarantees.tick("faults injected")


def test_a_stream_cut_by_the_drain_time_ends_with_an_error_event(saved, tmp_path, guarantees):
    router, env = saved
    upstream = stub_upstream(stream_faults={"up-b": "slow"})
    with serve_in_thread(upstream) as up:
        ups = tmp_path / "ups.json"
        ups.write_text(json.dumps(upstreams_for(up)))
        args = ["--router", str(router), "--upstreams", str(ups), "--quiet", "--drain-seconds", "0.5"]
        with CliServer(args, env) as srv:
            body = {"model": "b", "stream": True, "messages": [{"role": "user", "content": "sort the list case 970"}]}
            with httpx.stream("POST", srv.url + "/v1/chat/completions", json=body, timeout=20) as r:
                lines = r.iter_lines()
                assert next(lines).startswith("data: {")  # the first event came; the rest is 8 s away
                srv.terminate()  # SIGTERM, drain time 0.5 s
                rest = [x for x in lines if x]
            assert srv.proc.wait(20) in (0, -15)
            log = srv.proc.stderr.read()
    err = json.loads(rest[-1].removeprefix("data: "))["error"]
    assert err["type"] == "server_error" and err["code"] == "draining" and "retry" in err["fix"], rest
    assert "Traceback" not in log and "CancelledError" not in log, log
    guarantees.tick("faults injected")


def test_the_key_file_takes_a_bom_and_refuses_non_ascii_keys(tmp_path, guarantees):
    from v0lite.exceptions import DataError
    from v0lite.serve._auth import read_api_keys

    f = tmp_path / "keys.txt"
    key = "k" * 8 + "-test-key-0123456789"
    f.write_bytes(("\ufeff" + key + "\n").encode("utf-8"))  # a BOM, as Notepad writes it
    assert read_api_keys(f) == [key]
    f.write_text(f"{key}\nclé-secrète-0123456789\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: the key holds non-ASCII characters") as e:
        read_api_keys(f)
    assert "clé" not in str(e.value) and "Fix:" in str(e.value)
    guarantees.tick("bad-input cases tried", 2)


@pytest.mark.parametrize("char", ["\x7f", "\x01", "\x1b", "\t"])
def test_the_key_file_refuses_control_characters_and_skips_comments(saved, tmp_path, capsys, char, guarantees):
    """Probe J2: a key holding DEL or a control character was accepted at start, yet could never authenticate
    (the HTTP server answers such an Authorization header 400 before the app sees it)."""
    from v0lite.exceptions import DataError
    from v0lite.serve._auth import read_api_keys

    key = "k" * 8 + "-test-key-0123456789"
    f = tmp_path / "keys.txt"
    f.write_text(f"# the team's keys\n{key}\n  # an indented comment\n", encoding="utf-8")
    assert read_api_keys(f) == [key]  # lines starting with # are comments
    bad = key[:10] + char + key[10:]
    f.write_text(f"# the team's keys\n{key}\n{bad}\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"line 3: the key holds a control character \(U\+{ord(char):04X}\)") as e:
        read_api_keys(f)
    assert key[:10] not in str(e.value) and "Fix: use printable ASCII" in str(e.value)  # the key is never printed
    # and through the CLI: refused at start, in flag terms
    assert main(["serve", "--router", str(saved[0]), "--api-keys", str(f), "--port", "0"]) == 1
    assert f"--api-keys {f}: line 3: the key holds a control character" in capsys.readouterr().err
    guarantees.tick("bad-input cases tried")


def test_path_flags_are_checked_in_flag_terms_before_anything(tmp_path, monkeypatch, capsys, guarantees):
    """``-`` for --upstreams, --api-keys or --data-dir is refused as a stream (never a folder named '-'),
    a missing file "does not exist", a folder under a file is named as such, before the router loads."""
    monkeypatch.chdir(tmp_path)
    for flag in ("--upstreams", "--api-keys", "--data-dir"):
        assert main(["serve", "--router", "r", flag, "-"]) == 1
        err = capsys.readouterr().err
        assert f"{flag} -: v0lite reads and writes files and folders, not standard input" in err, err
    for flag in ("--upstreams", "--api-keys"):
        assert main(["serve", "--router", "r", flag, "nope.json"]) == 1
        err = capsys.readouterr().err
        assert f"{flag} nope.json: does not exist. Fix:" in err, err
    (tmp_path / "ups").mkdir()
    assert main(["serve", "--router", "r", "--upstreams", "ups"]) == 1
    assert "Fix: pass the JSON file of upstreams inside it" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["ups"]  # no '-' folder made

    from v0lite.exceptions import DataError
    from v0lite.serve._store import check_store_dir

    (tmp_path / "q.jsonl").write_text("{}\n")
    with pytest.raises(DataError, match="q.jsonl is a file, not a folder"):
        check_store_dir(tmp_path / "q.jsonl" / "store")
    guarantees.tick("bad-input cases tried", 9)


def test_the_upstreams_file_takes_a_bom_and_names_utf16(tmp_path):
    from v0lite.exceptions import DataError
    from v0lite.serve._upstream import read_upstreams

    spec = '{"a": {"base_url": "http://127.0.0.1:8001/v1", "model": "up-a"}}'
    f = tmp_path / "ups.json"
    f.write_bytes(b"\xef\xbb\xbf" + spec.encode())
    assert read_upstreams(f)["a"].model == "up-a"
    f.write_bytes(spec.encode("utf-16"))
    with pytest.raises(DataError, match=r"--upstreams .*ups.json: the file is UTF-16-encoded.*Fix: re-encode"):
        read_upstreams(f)


@pytest.mark.parametrize(
    "host,keys,ok",
    [
        ("127.0.0.1", False, True),
        ("localhost", False, True),
        ("::1", False, True),
        ("127.0.0.2", False, True),
        ("0.0.0.0", False, False),
        ("192.168.1.5", False, False),
        ("::", False, False),
        ("my-host", False, False),
        ("0.0.0.0", True, True),
    ],
)
def test_check_bind(host, keys, ok):
    from v0lite.exceptions import DataError
    from v0lite.serve._app import check_bind

    if ok:
        check_bind(host, keys)
    else:
        with pytest.raises(DataError, match="Fix: pass api_keys=<path>"):
            check_bind(host, keys)


# The CLI with an encoder that takes 30 ms a prompt on batches (the replay's new prompts): a replay of seconds
_SLOW_LAUNCH = (
    "import sys, time, v0lite.embed as e\n"
    "from tests.conftest import FakeEncoder\n"
    "class Slow(FakeEncoder):\n"
    "    def encode(self, texts):\n"
    "        if len(texts) > 2:\n"
    "            time.sleep(0.03 * len(texts))\n"
    "        return super().encode(texts)\n"
    "enc = Slow()\n"
    "e._load_sentence_transformer = lambda path, device, **kw: enc\n"
    "from v0lite.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_sigterm_during_the_replay_answers_the_waiting_requests_at_once(saved, tmp_path, monkeypatch, guarantees):
    """Requests waiting for the start-up replay get 503 draining when SIGTERM comes, not after --drain-seconds."""
    import contextlib

    import tests.serve_util as serve_util

    router, env = saved
    store = SqliteStore(tmp_path / "s")
    store.append([{"policy": "a", "prompt": f"replay prompt case {i}", "score": 1.0} for i in range(300)])
    store.close()
    monkeypatch.setattr(serve_util, "_LAUNCH", _SLOW_LAUNCH)
    args = ["--router", str(router), "--data-dir", str(tmp_path / "s"), "--quiet", "--drain-seconds", "20"]
    srv = CliServer([*args, "--startup-wait", "60"], env)
    with contextlib.ExitStack() as stack:
        srv.start(wait=False)  # not ready until the replay ends (entering CliServer waits for ready)
        stack.callback(srv.__exit__, None, None, None)
        deadline = time.monotonic() + 60
        while True:  # the port is open and the replay runs
            assert srv.proc.poll() is None and time.monotonic() < deadline, "the server never began its replay"
            try:
                if httpx.get(srv.url + "/readyz", timeout=1).json().get("replaying"):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        answers = {}

        def send(i):
            row = {"policy": "a", "prompt": f"add the numbers case {i}", "score": 1.0}
            answers[i] = httpx.post(srv.url + "/v1/feedback", json={"outcomes": [row]}, timeout=40)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        assert not answers  # they wait for the replay
        t0 = time.monotonic()
        srv.terminate()
        for t in threads:
            t.join(40)
        took = time.monotonic() - t0
        for r in answers.values():
            err = r.json()["error"]
            assert r.status_code == 503 and err["code"] == "draining" and "replay" in err["message"], r.text
            assert "retry" in err["fix"]
        assert len(answers) == 2 and took < 5, took  # at once, not after the 20 s drain
        assert srv.proc.wait(30) in (0, -15)
    guarantees.tick("faults injected")


def test_a_model_folder_as_router_gets_routes_message_and_fix(tmp_path, make_model, capsys, guarantees):
    """`serve --router MODEL_DIR` said only "not a v0lite router (format='v0lite-model')", with no fix; it now
    says what route says (one check): a model folder, and how to save a router."""
    model_dir = tmp_path / "m"
    make_model().fit(make_log()).save(model_dir)
    assert main(["serve", "--router", str(model_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"v0lite serve: error: --router {model_dir}: is a model folder (written by `v0lite fit`)")
    assert "Fix: save a router with `v0lite route-eval TRAIN TEST --save-router DIR`" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    guarantees.tick("bad-input cases tried")
