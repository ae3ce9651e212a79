"""What the service says instead of staying silent: an upstream price it ignores (logged at start) and a
strategy's warning on a request (the ``warnings`` field of /v1/route, the x-v0lite-warning header of a chat)."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from tests.serve_util import serve_in_thread, stub_upstream, tiny_router, upstreams_for
from v0lite.serve import create_app


@pytest.fixture(scope="module")
def router():
    return tiny_router()  # fixed prices a 0.002, b 0.002, c 0.001


def test_an_upstream_price_of_a_pool_model_is_named_at_start(router, tmp_path, caplog):
    ups = upstreams_for("http://127.0.0.1:9", names=("a", "b", "c", "d"))
    ups["c"]["price"] = 1.0  # c is in the pool: the router prices it (0.001)
    ups["b"]["price"] = 0.002  # the router's own price: nothing is ignored
    ups["d"]["price"] = 0.5  # not in the pool: it prices d when d joins
    f = tmp_path / "ups.json"
    f.write_text(json.dumps(ups))
    with caplog.at_level(logging.WARNING, logger="v0lite.serve"):
        create_app(router, upstreams=str(f))
    lines = [r.getMessage() for r in caplog.records if "price" in r.getMessage()]
    assert len(lines) == 1, lines
    text = lines[0]
    assert f"--upstreams {f}" in text and "'c'" in text and '"price": 1' in text and "ignored" in text
    assert "Router.load(d).set_prices(prices).save(d2)" in text and "serve d2" in text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="v0lite.serve"):
        create_app(router, upstreams={**ups, "c": {**ups["c"], "price": 0.001}})
    assert "price" not in caplog.text


def test_an_infeasible_budget_target_or_tau_is_said_on_route_and_chat(router, tmp_path):
    with serve_in_thread(stub_upstream()) as up:
        app = create_app(router, upstreams=upstreams_for(up))
        with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=20) as c:
            prompt = "add the numbers case 901"
            ok = c.post("/v1/route", json={"prompt": prompt, "strategy": "budget", "knob": 0.002})
            assert ok.status_code == 200 and "warnings" not in ok.json()  # present only when the strategy warned
            r = c.post("/v1/route", json={"prompt": prompt, "strategy": "budget", "knob": 1e-9})
            assert r.status_code == 200
            body = r.json()
            assert body["model"] == "c"  # the cheapest routing, as the library returns
            assert len(body["warnings"]) == 1 and "budget 1e-09 is below the cheapest routing" in body["warnings"][0]
            many = c.post(
                "/v1/route", json={"prompts": [prompt, "sort the list case 902"], "strategy": "budget", "knob": 1e-9}
            ).json()
            assert "below the cheapest routing" in many["warnings"][0] and "warnings" not in many["results"][0]
            q = c.post("/v1/route", json={"prompt": prompt, "strategy": "quality-target", "knob": 1.0}).json()
            assert "above the best reachable" in q["warnings"][0]
            two = [prompt, "sort the list case 902"]
            t = c.post("/v1/route", json={"prompts": two, "strategy": "threshold", "knob": 1.0}).json()
            assert t["warnings"] == ["2 of 2 prompts: no model reaches tau 1; the most likely model was chosen."]
            t = c.post("/v1/route", json={"prompts": two, "strategy": "threshold", "knob": 0.0}).json()
            assert "warnings" not in t  # every prompt has a model at tau 0
            msg = [{"role": "user", "content": prompt}]
            chat = c.post("/v1/chat/completions", json={"model": "v0lite/budget/1e-9", "messages": msg})
            assert chat.status_code == 200 and chat.headers["x-v0lite-model"] == "c"
            assert "below the cheapest routing" in chat.headers["x-v0lite-warning"]
            plain = c.post("/v1/chat/completions", json={"model": "v0lite/budget/0.002", "messages": msg})
            assert plain.status_code == 200 and "x-v0lite-warning" not in plain.headers
