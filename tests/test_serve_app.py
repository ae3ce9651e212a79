"""The HTTP API through a real server (uvicorn on loopback) and httpx: routing, prediction, feedback,
bad input, limits, auth, metrics, concurrency. Chat completions and the openai SDK: test_serve_clients.py."""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time

import httpx
import pytest

from tests.serve_util import serve_in_thread, stub_upstream, tiny_router, upstreams_for
from v0lite.exceptions import DataError
from v0lite.serve import Limits, create_app
from v0lite.serve._auth import KeyChecker

KEY = "k" * 8 + "-test-key-0123456789"


@pytest.fixture(scope="module")
def router():
    return tiny_router()


@pytest.fixture
def server(router, tmp_path):
    """A started service with a store (refresh every 0.3 s); yields (client, app)."""

    def start(**kw):
        kw.setdefault("data_dir", tmp_path / "store")
        kw.setdefault("limits", Limits(refresh_seconds=0.3))
        app = create_app(tiny_router() if kw.pop("fresh", False) else router, **kw)
        cm = serve_in_thread(app)
        base = cm.__enter__()
        started.append(cm)
        return httpx.Client(base_url=base, timeout=20), app

    started = []
    yield start
    for cm in started:
        cm.__exit__(None, None, None)


def test_route_predict_stats_models(server):
    c, _ = server()
    r = c.post("/v1/route", json={"prompt": "add the numbers case 901"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "a" and set(body["p"]) == {"a", "b", "c"} and body["strategy"] == "utility"
    assert body["cost"] == {"a": 0.002, "b": 0.002, "c": 0.001} and body["knob"] == 0.0
    assert body["p"]["a"] > body["p"]["b"]
    many = c.post("/v1/route", json={"prompts": ["sort the list case 902", "prove the lemma case 903"]}).json()
    assert [x["model"] for x in many["results"]] == ["b", "a"]
    # another operating point: the cheapest model with p >= 0.3 is c (cheaper than a and b)
    th = c.post("/v1/route", json={"prompt": "add the numbers case 901", "strategy": "threshold", "knob": 0.3}).json()
    assert th["model"] == "c" and th["strategy"] == "threshold" and th["knob"] == 0.3
    narrowed = c.post("/v1/route", json={"prompt": "add the numbers case 901", "pool": ["b", "c"]}).json()
    assert set(narrowed["p"]) == {"b", "c"} and narrowed["model"] == "c"
    pr = c.post("/v1/predict", json={"prompt": "sort the list case 902", "policy": "b"}).json()
    assert set(pr["p"]) == {"b"} and pr["p"]["b"] > 0.6
    pr = c.post("/v1/predict", json={"prompts": ["sort the list case 902", "x"]}).json()
    assert len(pr["results"]) == 2 and set(pr["results"][0]["p"]) == {"a", "b", "c"}
    st = c.get("/v1/stats").json()
    assert st["feedback_rows"] == 0 and st["pool"] == ["a", "b", "c"] and st["history_rows"] == 120
    ids = [m["id"] for m in c.get("/v1/models").json()["data"]]
    assert ids[0] == "v0lite" and {"a", "b", "c"} <= set(ids)
    assert c.get("/healthz").json() == {"status": "ok"} and c.get("/readyz").status_code == 200


ROW = {"policy": "a", "prompt": "p", "score": 1}
BAD = [
    ("/v1/route", {"prompt": 3}, 422, "prompt", "non-empty JSON string"),
    ("/v1/route", {}, 422, "prompt", "exactly one of"),
    ("/v1/route", {"prompt": "a", "prompts": ["b"]}, 422, "prompt", "exactly one of"),
    ("/v1/route", {"prompts": []}, 422, "prompts", "non-empty JSON list"),
    ("/v1/route", {"prompts": ["ok", "  "]}, 422, "prompts[1]", "blank"),
    ("/v1/route", {"prompt": "x", "strategy": "fastest"}, 422, "strategy", "valid names"),
    ("/v1/route", {"prompt": "x", "strategy": "budget"}, 422, "knob", '"knob": <value>'),
    ("/v1/route", {"prompt": "x", "knob": -1.0}, 422, "knob", 'send "knob"'),
    ("/v1/route", {"prompt": "x", "knob": "high"}, 422, "knob", "finite JSON number"),
    ("/v1/route", {"prompt": "x", "pool": ["a", "zeta"]}, 422, "pool[1]", "use one of"),
    ("/v1/route", {"prompt": "x", "temperature": 1}, 422, "temperature", "remove"),
    ("/v1/predict", {"prompt": "x", "policy": "ghost"}, 422, "policy", "a policy with history"),
    ("/v1/predict", {"prompt": "x", "policy": "a", "policies": ["b"]}, 422, "policy", "not both"),
    ("/v1/feedback", {"outcomes": []}, 422, "outcomes", "non-empty JSON list"),
    ("/v1/feedback", {"outcomes": [{"policy": "a", "prompt": "p"}]}, 422, "outcomes[0].score", "add"),
    ("/v1/feedback", {"outcomes": [{"policy": "a", "prompt": "p", "score": 1.5}]}, 422, "outcomes[0].score", "[0, 1]"),
    ("/v1/feedback", {"outcomes": [{"policy": "a", "prompt": "p", "score": "1"}]}, 422, "outcomes[0].score", "number"),
    ("/v1/feedback", {"outcomes": [{"policy": "a", "prompt": "p", "score": 1, "n": 0}]}, 422, "outcomes[0].n", ">= 1"),
    ("/v1/feedback", {"outcomes": [{"policy": " ", "prompt": "p", "score": 1}]}, 422, "outcomes[0].policy", "blank"),
    ("/v1/feedback", [1, 2], 422, "body", "JSON object"),
    # beyond the log's 64 bits: named by the field (the library would say "column 'step', row 0")
    ("/v1/feedback", {"outcomes": [{**ROW, "step": 2**70}]}, 422, "outcomes[0].step", "<= 9223372036854775807"),
    ("/v1/feedback", {"outcomes": [ROW, {**ROW, "n": 2**64}]}, 422, "outcomes[1].n", "<= 9223372036854775807"),
    # names are stored for good: no control characters, at most 256 characters
    ("/v1/feedback", {"outcomes": [ROW], "new_policies": ["e\nvil"]}, 422, "new_policies[0]", "control"),
    ("/v1/feedback", {"outcomes": [ROW], "new_policies": ["x" * 257]}, 422, "new_policies[0]", "256"),
    ("/v1/feedback", {"outcomes": [{**ROW, "policy": "a\x00"}]}, 422, "outcomes[0].policy", "control"),
]


@pytest.mark.parametrize("path,body,status,param,fix", BAD)
def test_bad_input_names_field_value_and_fix(server, guarantees, path, body, status, param, fix):
    c, _ = server()
    r = c.post(path, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == param, err
    assert fix in err["message"] and "Fix:" in err["message"], err
    assert err["fix"] and err["fix"] in err["message"], err  # the one shape: the fix as a field too
    guarantees.tick("bad-input cases tried")


def test_malformed_json_and_wrong_method(server, guarantees):
    c, _ = server()
    r = c.post("/v1/route", content=b'{"prompt": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = c.post("/v1/chat/completions", content=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    guarantees.tick("bad-input cases tried", 2)


def test_one_bad_row_stores_no_row(server, guarantees):
    c, _ = server()
    good = [{"policy": "a", "prompt": f"add the numbers case {i}", "score": 1.0} for i in range(5)]
    bad = json.dumps({"outcomes": [*good, {"policy": "a", "prompt": "p", "score": float("nan")}]})  # NaN literal
    r = c.post("/v1/feedback", content=bad, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "outcomes[5].score"
    assert c.get("/v1/stats").json()["feedback_rows"] == 0
    ok = c.post("/v1/feedback", json={"outcomes": good})
    assert ok.status_code == 200 and ok.json()["stored"] == 5
    assert c.get("/v1/stats").json()["feedback_rows"] == 5
    guarantees.tick("bad-input cases tried")


def test_limits_answer_413(server, guarantees):
    c, _ = server(limits=Limits(max_body_bytes=2_000, max_prompt_chars=100, refresh_seconds=0.3))
    r = c.post("/v1/route", json={"prompts": ["x" * 50] * 100})
    assert r.status_code == 413 and "--max-body-bytes" in r.json()["error"]["message"]
    r = c.post("/v1/route", json={"prompt": "y" * 101})
    assert r.status_code == 413 and r.json()["error"]["param"] == "prompt" and "100" in r.json()["error"]["message"]
    assert "--max-prompt-chars" in r.json()["error"]["message"] and "--max-prompt-chars" in r.json()["error"]["fix"]
    r = c.post("/v1/feedback", json={"outcomes": [{"policy": "a", "prompt": "z" * 101, "score": 1}]})
    assert r.status_code == 413 and r.json()["error"]["param"] == "outcomes[0].prompt"

    def chunked():  # no content-length: counted while read
        for _ in range(10):
            yield b" " * 300

    r = c.post("/v1/route", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert c.get("/v1/stats").json()["feedback_rows"] == 0
    guarantees.tick("bad-input cases tried", 4)


def test_api_keys(server, tmp_path, guarantees):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# comment\n{KEY}\n\n{'z' * 20}\n")
    c, _ = server(api_keys=str(keys))
    assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
    for path in ("/v1/stats", "/v1/models", "/metrics"):
        r = c.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in r.json()["error"]["message"]
    assert c.post("/v1/route", json={"prompt": "x"}, headers={"Authorization": "Bearer " + KEY[:-1]}).status_code == 401
    assert c.post("/v1/route", json={"prompt": "x"}, headers={"Authorization": KEY}).status_code == 401
    ok = {"Authorization": f"Bearer {KEY}"}
    assert c.post("/v1/route", json={"prompt": "x"}, headers=ok).status_code == 200
    assert c.get("/v1/stats", headers={"Authorization": f"Bearer {'z' * 20}"}).status_code == 200
    guarantees.tick("bad-input cases tried", 5)


def test_keys_compared_in_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    checker = KeyChecker(["first-key-0123456789", "second-key-0123456789", "third-key-0123456789"])
    assert checker.check("Bearer first-key-0123456789")
    assert len(calls) == 3  # a match on the first key still compares all of them: no early exit
    calls.clear()
    assert not checker.check("Bearer nope") and len(calls) == 3
    assert not checker.check(None) and not checker.check("Basic first-key-0123456789")


def test_bad_key_file(tmp_path):
    f = tmp_path / "k"
    f.write_text("short\n")
    with pytest.raises(DataError, match="line 1: a key must be at least 16") as e:
        create_app(tiny_router(), api_keys=str(f))
    assert "short" not in str(e.value)  # the key itself is never printed
    f.write_text("# only a comment\n")
    with pytest.raises(DataError, match="holds no key"):
        create_app(tiny_router(), api_keys=str(f))


def test_cors_only_when_asked(server):
    c, _ = server()
    r = c.options("/v1/route", headers={"Origin": "https://x.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers
    c2, _ = server(cors_origins=["https://x.example"], data_dir=None)
    r = c2.options("/v1/route", headers={"Origin": "https://x.example", "Access-Control-Request-Method": "POST"})
    assert r.headers.get("access-control-allow-origin") == "https://x.example"


def test_feedback_changes_routing_within_the_delay(server):
    c, app = server(fresh=True)
    prompt = "sort the list case 950"
    assert c.post("/v1/route", json={"prompt": prompt}).json()["model"] == "b"
    # production says: on sorting, b fails and a succeeds
    outcomes = [{"policy": "b", "prompt": f"sort the list case {900 + i}", "score": 0.0} for i in range(40)]
    outcomes += [{"policy": "a", "prompt": f"sort the list case {900 + i}", "score": 1.0} for i in range(40)]
    t0 = time.monotonic()
    r = c.post("/v1/feedback", json={"outcomes": outcomes})
    ans = r.json()
    assert r.status_code == 200 and ans["queued_rows"] == 80 and ans["applied_within_s"] >= 0.3, ans
    while c.post("/v1/route", json={"prompt": prompt}).json()["model"] != "a":
        assert time.monotonic() - t0 < ans["applied_within_s"] + 2.0, "feedback did not change routing in time"
        time.sleep(0.05)
    st = c.get("/v1/stats").json()
    assert st["feedback_rows"] == st["applied_rows"] == 80 and st["history_rows"] == 200


def test_new_upstream_model_joins_after_outcomes(server, caplog):
    with serve_in_thread(stub_upstream()) as up:
        ups = upstreams_for(up, names=("a", "b", "c", "d"))
        ups["d"]["price"] = 0.0005
        c, _ = server(upstreams=ups, fresh=True)
        prompt = "translate the text case 960"
        assert c.get("/v1/stats").json()["pool"] == ["a", "b", "c"]
        point = {"prompt": prompt, "strategy": "threshold", "knob": 0.55}  # the cheapest model with p >= 0.55
        assert c.post("/v1/route", json=point).json()["model"] == "b"
        # before its first outcome, d is named as waiting for it, not as an unknown name
        for path, body, where in (
            ("/v1/route", {"prompt": prompt, "pool": ["a", "d"]}, "pool[1]"),
            ("/v1/predict", {"prompt": prompt, "policy": "d"}, "policy"),
            ("/v1/predict", {"prompt": prompt, "policies": ["b", "d"]}, "policies[1]"),
        ):
            err = c.post(path, json=body).json()["error"]
            assert err["param"] == where and err["value"] == "d" and err["fix"] == "POST its outcomes to /v1/feedback."
            said = "in the upstreams file (price 0.0005) but no outcomes yet: it joins the pool with its first outcome"
            assert said in err["message"], err
        rows = [{"policy": "d", "prompt": f"translate the text case {900 + i}", "score": 1.0} for i in range(12)]
        assert c.post("/v1/feedback", json={"outcomes": rows}).status_code == 200
        deadline = time.monotonic() + 5
        while "d" not in c.get("/v1/stats").json()["pool"]:
            assert time.monotonic() < deadline, "d never joined the pool"
            time.sleep(0.05)
        st = c.get("/v1/stats").json()
        assert st["joined"] == ["d"]
        r = c.post("/v1/route", json=point).json()
        assert r["model"] == "d" and r["cost"]["d"] == 0.0005 and r["p"]["d"] >= 0.55
        chat = c.post(
            "/v1/chat/completions",
            json={"model": "v0lite/threshold/0.55", "messages": [{"role": "user", "content": prompt}]},
        )
        assert chat.status_code == 200 and chat.headers["x-v0lite-model"] == "d" and chat.json()["model"] == "d"
        # later feedback of pool models: the upstreams' prices are not offered again (no warning each refresh)
        more = [{"policy": p, "prompt": f"translate the text case {950 + i}", "score": 1.0} for i, p in enumerate("ad")]
        n = c.post("/v1/feedback", json={"outcomes": more}).json()["ids"][1]
        while c.get("/v1/stats").json()["applied_rows"] < n:
            assert time.monotonic() < deadline + 10, "the feedback was never applied"
            time.sleep(0.05)
        assert "ignored prices" not in caplog.text


def test_a_model_left_out_of_the_pool_learns_from_feedback_but_is_not_routed_to(server):
    """docs/serve.md: until a new model pays, name only the others in --pool; its outcomes still reach the model."""
    with serve_in_thread(stub_upstream()) as up:
        ups = upstreams_for(up, names=("a", "b", "c", "d"))
        ups["d"]["price"] = 0.0005
        c, _ = server(upstreams=ups, pool=["a", "b", "c"], fresh=True)
        prompt = "translate the text case 960"
        point = {"prompt": prompt, "strategy": "threshold", "knob": 0.55}
        rows = [{"policy": "d", "prompt": f"translate the text case {900 + i}", "score": 1.0} for i in range(12)]
        assert c.post("/v1/feedback", json={"outcomes": rows}).status_code == 200
        deadline = time.monotonic() + 5
        while c.get("/v1/stats").json()["applied_rows"] < 12:
            assert time.monotonic() < deadline, "d's outcomes never reached the value model"
            time.sleep(0.05)
        st = c.get("/v1/stats").json()
        assert st["pool"] == ["a", "b", "c"] and st["joined"] == ["d"]
        # the value model knows d (the same point would pick it, as in the test above) ...
        assert c.post("/v1/predict", json={"prompt": prompt, "policy": "d"}).json()["p"]["d"] >= 0.55
        # ... but routing keeps to the pool
        r = c.post("/v1/route", json=point).json()
        assert r["model"] == "b" and "d" not in r["p"]


def test_routing_and_feedback_run_concurrently(server):
    c, app = server(fresh=True, limits=Limits(refresh_seconds=0.05))
    base = str(c.base_url)
    errors, routed, acked = [], [], []
    stop = time.monotonic() + 3.0

    def feed(k):
        with httpx.Client(base_url=base, timeout=20) as cl:
            i = 0
            while time.monotonic() < stop:
                rows = [{"policy": "c", "prompt": f"feedback {k} {i} {j}", "score": 0.5} for j in range(20)]
                r = cl.post("/v1/feedback", json={"outcomes": rows})
                (acked if r.status_code == 200 else errors).append(r.status_code)
                i += 1

    async def route_many():
        async with httpx.AsyncClient(base_url=base, timeout=20) as ac:
            while time.monotonic() < stop:
                rs = await asyncio.gather(
                    *(ac.post("/v1/route", json={"prompt": f"add the numbers case {i}"}) for i in range(16))
                )
                for r in rs:
                    (routed if r.status_code == 200 else errors).append(r.status_code)

    threads = [threading.Thread(target=feed, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    asyncio.run(route_many())
    for t in threads:
        t.join(30)
    assert not errors and len(routed) > 16 and len(acked) > 2
    deadline = time.monotonic() + 5
    while (st := c.get("/v1/stats").json())["applied_rows"] < 20 * len(acked):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert st["feedback_rows"] == st["applied_rows"] == 20 * len(acked)
    assert st["history_rows"] == 120 + 20 * len(acked)


def test_micro_batching_and_metrics(server):
    c, _ = server()
    base = str(c.base_url)

    async def burst():
        async with httpx.AsyncClient(base_url=base, timeout=20) as ac:
            return await asyncio.gather(
                *(ac.post("/v1/route", json={"prompt": f"prove the lemma case {i % 8}"}) for i in range(48))
            )

    def scrape():
        text = c.get("/metrics").text
        lines = [line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")]
        return text, {k: float(v) for k, v in lines}

    assert all(r.status_code == 200 for r in asyncio.run(burst()))
    text, metric = scrape()
    assert metric["v0lite_batch_items_sum"] == 48
    assert metric["v0lite_batch_items_count"] < 48  # concurrent requests shared embed + predict calls
    assert metric['v0lite_requests_total{endpoint="/v1/route",status="200"}'] == 48
    # 8 distinct prompts (cases 1 and 5 of each topic are in the router's log): counted once per batch
    first_misses = metric["v0lite_embedding_cache_misses_total"]
    assert metric["v0lite_embedding_cache_hits_total"] >= 2 and first_misses >= 1
    assert sum(v for k, v in metric.items() if k.startswith("v0lite_routes_total")) == 48
    assert all(r.status_code == 200 for r in asyncio.run(burst()))
    _, metric = scrape()
    assert metric["v0lite_embedding_cache_misses_total"] == first_misses  # repeated prompts: all cache hits
    assert 'v0lite_request_seconds_bucket{endpoint="/v1/route"' in text


def test_create_app_checks_everything_first(router, tmp_path, guarantees):
    with pytest.raises(DataError, match=r"models \['c'\] of the pool have no upstream.*pool='a,b'"):
        create_app(router, upstreams=upstreams_for("http://127.0.0.1:9", names=("a", "b")))
    app = create_app(router, upstreams=upstreams_for("http://127.0.0.1:9", names=("a", "b")), pool=["a", "b"])
    assert app.state.v0lite.allowed() == ["a", "b"]
    with pytest.raises(DataError, match="zeta"):
        create_app(router, pool=["a", "zeta"])
    with pytest.raises(DataError, match="environment variable NO_SUCH_KEY_VAR is not set"):
        create_app(router, upstreams=upstreams_for("http://127.0.0.1:9", api_key_env="NO_SUCH_KEY_VAR"))
    with pytest.raises(DataError, match="base_url 'ftp://x' is not an http"):
        create_app(router, upstreams={"a": {"base_url": "ftp://x", "model": "m"}})
    with pytest.raises(DataError, match="unknown field 'key'"):
        create_app(router, upstreams={"a": {"base_url": "http://h/v1", "key": "sk-secret"}})
    f = tmp_path / "ups.json"
    f.write_text("{not json")
    with pytest.raises(DataError, match="is not valid JSON"):
        create_app(router, upstreams=str(f))
    with pytest.raises(DataError, match="refresh_seconds=1"):
        create_app(router, limits=Limits(refresh_seconds=0))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(DataError, match="did not write"):
        create_app(router, data_dir=tmp_path / "busy")
    with pytest.raises(DataError, match="holds no saved router"):
        create_app(str(tmp_path / "busy"))
    guarantees.tick("bad-input cases tried", 9)


def test_store_replayed_at_start(router, tmp_path):
    from v0lite.serve import SqliteStore

    s = SqliteStore(tmp_path / "store")
    s.append([{"policy": "b", "prompt": f"sort the list case {900 + i}", "score": 0.0} for i in range(40)])
    s.append([{"policy": "a", "prompt": f"sort the list case {900 + i}", "score": 1.0, "step": 2} for i in range(40)])
    s.close()
    app = create_app(tiny_router(), data_dir=tmp_path / "store")
    with serve_in_thread(app) as base:
        st = httpx.get(base + "/v1/stats").json()
        assert st["feedback_rows"] == st["applied_rows"] == 80 and st["history_rows"] == 200
        assert httpx.post(base + "/v1/route", json={"prompt": "sort the list case 950"}).json()["model"] == "a"
    assert json.dumps(st)  # plain JSON


def test_a_batch_behind_others_is_told_it_waits_for_them(server):
    """applied_within_s counts the rows queued before the batch, not the refresh delay alone."""
    c, _ = server(fresh=True, limits=Limits(refresh_seconds=5.0))  # nothing applied between the two posts
    big = [{"policy": "a", "prompt": f"add the numbers case {3000 + i}", "score": 1.0} for i in range(300)]
    first = c.post("/v1/feedback", json={"outcomes": big}).json()
    small = c.post("/v1/feedback", json={"outcomes": big[:1]}).json()
    assert first["queued_rows"] == 300 and small["queued_rows"] == 301
    assert small["applied_within_s"] >= first["applied_within_s"] > 5.0


def test_feedback_names_are_checked_and_new_models_declared(server, guarantees):
    c, _ = server()
    row = {"prompt": "sort the list case 990", "score": 1.0}
    for name, param, text in (
        ("b ", "outcomes[1].policy", 'send "b"'),  # a padded name would be another model
        ("v0lite", "outcomes[1].policy", "the service's own model name"),
        ("bb", "outcomes[1].policy", '"new_policies": ["bb"]'),  # a typo: unknown and undeclared
    ):  # behind a good row: the refusal names the bad row and the good one is not stored either
        r = c.post("/v1/feedback", json={"outcomes": [{"policy": "a", **row}, {"policy": name, **row}]})
        err = r.json()["error"]
        assert r.status_code == 422 and err["param"] == param and err["value"] == name, err
        assert text in err["message"], err
        guarantees.tick("bad-input cases tried")
    r = c.post("/v1/feedback", json={"outcomes": [{"policy": "a", **row}], "new_policies": ["v0lite/x"]})
    assert r.status_code == 422 and r.json()["error"]["param"] == "new_policies[0]"
    assert c.get("/v1/stats").json()["feedback_rows"] == 0  # nothing of the refused batches was stored
    # declared: stored, and the answer says it cannot join the pool without a price, and how to give one
    r = c.post("/v1/feedback", json={"outcomes": [{"policy": "e", **row}], "new_policies": ["e"]})
    assert r.status_code == 200, r.text
    (info,) = r.json()["new_policies"]
    assert info["policy"] == "e" and info["joins_pool"] is False and '"price"' in info["fix"]
    t0 = time.monotonic()
    while (st := c.get("/v1/stats").json())["applied_rows"] < st["feedback_rows"]:
        assert time.monotonic() - t0 < 10, st
        time.sleep(0.05)
    # once applied, routing to it is refused with the same reason and fix (not only "use one of [...]")
    r = c.post("/v1/route", json={"prompt": row["prompt"], "pool": ["a", "e"]})
    err = r.json()["error"]
    assert r.status_code == 422 and err["param"] == "pool[1]" and err["value"] == "e", err
    assert "no price" in err["message"] and err["fix"] == info["fix"], err
    # a known model's feedback says nothing about new models
    assert "new_policies" not in c.post("/v1/feedback", json={"outcomes": [{"policy": "a", **row}]}).json()


def test_feedback_names_a_known_model_written_another_way_and_a_declared_model_without_rows(server, guarantees):
    """Probe V: 'B' for the history's 'b' was taken silently as a new model, and a declared name no row
    used was ignored silently."""
    c, _ = server()
    row = {"prompt": "sort the list case 991", "score": 1.0}
    r = c.post("/v1/feedback", json={"outcomes": [{"policy": "B", **row}]})
    err = r.json()["error"]
    assert r.status_code == 422 and err["param"] == "outcomes[0].policy" and "Did you mean 'b'?" in err["message"]
    guarantees.tick("bad-input cases tried")
    r = c.post("/v1/feedback", json={"outcomes": [{"policy": "B", **row}], "new_policies": ["B"]})
    assert r.status_code == 200, r.text
    (info,) = r.json()["new_policies"]
    assert info["policy"] == "B" and info["note"].startswith("'B' differs from the known 'b' only by case"), info
    body = {"outcomes": [{"policy": "a", **row}], "new_policies": ["ghost", "A"]}
    ghost, a = c.post("/v1/feedback", json=body).json()["new_policies"]
    assert ghost["policy"] == "ghost" and ghost["joins_pool"] is False and ghost["cost"] is None
    assert ghost["note"].startswith("no row of outcomes names it, so nothing was stored for it and it is not known")
    assert "Did you mean 'a'?" in a["note"] and "Did you mean" not in ghost["note"]


def test_bodies_are_read_as_json_whatever_the_content_type(server, guarantees):
    c, _ = server()
    plain = {"content-type": "text/plain"}
    r = c.post("/v1/route", content=json.dumps({"prompt": "add the numbers case 901"}), headers=plain)
    assert r.status_code == 200 and r.json()["model"] == "a"
    for path in ("/v1/route", "/v1/predict", "/v1/feedback", "/v1/chat/completions"):
        r = c.post(path, content=b"", headers={"content-type": "application/json"})
        err = r.json()["error"]
        assert r.status_code == 400 and err["param"] == "body" and "the body is empty" in err["message"], err
        assert err["value"] == "" and "JSON object" in err["fix"], err
        r = c.post(path, content=b"null", headers={"content-type": "application/json"})
        assert r.status_code == 422 and "got a JSON null" in r.json()["error"]["message"], r.text
        r = c.post(path, content=b'{"outcomes": [{"policy": "a",', headers={"content-type": "application/json"})
        err = r.json()["error"]
        assert r.status_code == 400 and err["param"] == "body" and "line 1 column" in err["message"], err
        guarantees.tick("bad-input cases tried", 2)
    # the value is the JSON the client sent, not Python's repr of it
    r = c.post("/v1/feedback", json={"outcomes": [{"policy": "a", "prompt": "p", "score": "high"}]})
    err = r.json()["error"]
    assert err["value"] == "high" and '(got "high")' in err["message"], err


def test_requests_wait_for_the_replay_while_health_answers(router, tmp_path):
    """The port opens before the store is replayed: /healthz 200, /readyz 503, a route waits for the replay."""
    from v0lite.serve import SqliteStore

    class SlowStore(SqliteStore):
        def read_since(self, after_id, limit=100_000):
            time.sleep(1.0)  # a long replay
            return super().read_since(after_id, limit)

    s = SqliteStore(tmp_path / "store")
    s.append([{"policy": "b", "prompt": f"sort the list case {900 + i}", "score": 0.0} for i in range(40)])
    s.append([{"policy": "a", "prompt": f"sort the list case {900 + i}", "score": 1.0} for i in range(40)])
    s.close()
    app = create_app(tiny_router(), store=SlowStore(tmp_path / "store"), limits=Limits(refresh_seconds=30))
    with serve_in_thread(app, wait_ready=False) as base:
        assert httpx.get(base + "/healthz").status_code == 200
        ready = httpx.get(base + "/readyz")
        assert ready.status_code == 503 and ready.json()["replaying"] is True
        r = httpx.post(base + "/v1/route", json={"prompt": "sort the list case 950"}, timeout=20)
        assert r.status_code == 200 and r.json()["model"] == "a"  # answered with the replayed outcomes
        assert httpx.get(base + "/readyz").status_code == 200


def test_the_delay_estimate_learns_the_apply_rates(router):
    """A small pass teaches the fixed cost, a large one the cost per row; neither inflates the other."""
    state = create_app(router).state.v0lite
    base = state.applied_within(1)
    state._measure(0.5, 1)  # one row, half a second: all of it fixed cost
    assert state.apply_fixed_s == 0.5 and state.sec_per_row is None
    state._measure(3.0, 1000)  # 3 ms a row
    assert state.sec_per_row == pytest.approx(0.003)
    assert state.applied_within(1000) == pytest.approx(1.0 + 0.5 + 3.0)  # refresh + fixed + rows
    assert state.applied_within(1) < state.applied_within(1000) and base < state.applied_within(1)
    state._measure(0.3, 1000)  # a faster pass: the memory decays, not forgotten at once
    assert state.sec_per_row == pytest.approx(0.0024)


def test_the_encoder_runs_at_start_even_when_the_warm_up_prompt_is_cached(tmp_path):
    """Ready means the encoder is loaded: a cached probe never reaches it, so the start runs it itself."""
    from tests.conftest import FakeEncoder

    enc = FakeEncoder()
    router = tiny_router(encoder=enc)
    with serve_in_thread(create_app(router)):
        pass
    before = enc.calls  # the probe prompt is now in the embedder's memory
    with serve_in_thread(create_app(router)):
        assert enc.calls > before


def test_a_row_the_library_refuses_is_named_by_its_field():
    """Rows past the request model (a client of create_app's state, or a check the model lacks) are still
    named outcomes[i].<field>, the row found by checking rows one by one."""
    from types import SimpleNamespace

    from v0lite.serve._models import ApiError
    from v0lite.serve._requests import check_outcome_rows
    from v0lite.serve._state import ServeState

    state = SimpleNamespace(check_rows=lambda rows: ServeState.check_rows(None, rows))
    good = {"policy": "a", "prompt": "p", "score": 1.0}
    with pytest.raises(ApiError) as e:
        check_outcome_rows(state, [good, good, {**good, "step": 2**70}])
    assert e.value.param == "outcomes[2].step" and e.value.value == 2**70 and "row" not in e.value.fix
    check_outcome_rows(state, [good, {**good, "step": 3, "n": 2}])  # fine rows pass


# --------------------------------------------------------------------------- probe R/Q fixes


def test_an_internal_error_answers_500_with_request_id_and_logs_one_traceback(router, guarantees):
    import logging

    class Records(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.records = []

        def emit(self, record):
            self.records.append(record)

    app = create_app(router)

    def broken(*_):
        raise RuntimeError("a bug")

    app.state.v0lite.stats = broken
    seen = Records()
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "v0lite.serve")]
    with serve_in_thread(app) as base:
        for lg in loggers:
            lg.addHandler(seen)
        try:
            r = httpx.get(base + "/v1/stats", headers={"x-request-id": "trace-500"}, timeout=20)
            r2 = httpx.get(base + "/v1/stats", timeout=20)
        finally:
            for lg in loggers:
                lg.removeHandler(seen)
        metrics = httpx.get(base + "/metrics").text
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error", r.text
    assert "RuntimeError" in r.json()["error"]["message"]
    assert r.headers["x-request-id"] == "trace-500" and r2.headers["x-request-id"].startswith("req_")
    tracebacks = [x for x in seen.records if x.exc_info]
    assert len(tracebacks) == 2, [x.getMessage() for x in seen.records]  # one per request
    assert "trace-500" in tracebacks[0].getMessage()
    assert 'v0lite_requests_total{endpoint="/v1/stats",status="500"} 2.0' in metrics
    guarantees.tick("faults injected")
