"""A feedback batch is stored all or none: a bad row behind good ones is named ``outcomes[i]...`` and
none of the batch's rows reaches the store (docs/guarantees.md, the serving section)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.serve_util import serve_in_thread, tiny_router
from v0lite.exceptions import DataError
from v0lite.serve import Limits, SqliteStore, create_app


@pytest.fixture
def service(tmp_path):
    """A started service with a store; yields (client, app)."""
    app = create_app(tiny_router(), data_dir=tmp_path / "store", limits=Limits(refresh_seconds=0.3))
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=20) as client:
        yield client, app


def _good(n):
    return [{"policy": "a", "prompt": f"add the numbers case {i}", "score": 1.0} for i in range(n)]


@pytest.mark.parametrize(
    "bad, param, text",
    [
        ({"policy": "a", "prompt": " \t", "score": 1.0}, "outcomes[3].prompt", "is blank"),
        ({"policy": "zz", "prompt": "sort the list", "score": 0.0}, "outcomes[3].policy", '"new_policies": ["zz"]'),
    ],
    ids=["blank-prompt", "unknown-policy"],
)
def test_good_rows_before_a_refused_row_are_not_stored(service, guarantees, bad, param, text):
    c, _ = service
    r = c.post("/v1/feedback", json={"outcomes": [*_good(3), bad]})
    err = r.json()["error"]
    assert r.status_code == 422 and err["param"] == param and text in err["message"], err
    assert c.get("/v1/stats").json()["feedback_rows"] == 0  # not the three good rows either
    ok = c.post("/v1/feedback", json={"outcomes": _good(3)})  # the store still takes the good rows alone
    assert ok.status_code == 200 and c.get("/v1/stats").json()["feedback_rows"] == 3
    guarantees.tick("bad-input cases tried")


def test_good_rows_before_a_row_the_library_refuses_are_not_stored(service, guarantees):
    c, app = service
    state = app.state.v0lite
    real = state.check_rows

    def stricter(rows):
        # stands in for a rule of the outcome log that the request model does not repeat
        real(rows)
        if any((r.get("step") or 0) > 10 for r in rows):
            raise DataError("column 'step': value over 10. Fix: send a smaller step.", column="step")

    state.check_rows = stricter
    r = c.post("/v1/feedback", json={"outcomes": [*_good(3), {**_good(1)[0], "step": 11}]})
    err = r.json()["error"]
    assert r.status_code == 422 and err["param"] == "outcomes[3].step" and err["value"] == 11, err
    assert c.get("/v1/stats").json()["feedback_rows"] == 0
    guarantees.tick("bad-input cases tried")


def test_feedback_without_a_step_is_filed_at_the_models_latest_checkpoint(tmp_path):
    """An outcome from production without a step comes from the checkpoint being served: the model's latest
    (before, step 0, older than every checkpoint of a model with steps)."""
    import polars as pl

    from tests.conftest import FakeEncoder, topic_log
    from v0lite.estimator import V0Regressor
    from v0lite.routing import Router

    log = topic_log(n_prompts=40).with_columns(step=(pl.int_range(pl.len()) % 3).cast(pl.Int64))
    vm = V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False, k=8).fit(log)
    router = Router(vm, cost_model="fixed", prices={"a": 1.0, "b": 2.0, "c": 3.0}).fit()
    app = create_app(router, data_dir=tmp_path / "store", limits=Limits(refresh_seconds=0.3))
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=20) as c:
        r = c.post("/v1/feedback", json={"outcomes": _good(2)})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 20
        while c.get("/v1/stats").json().get("applied_rows", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        index = app.state.v0lite.router.value_model.index_
        assert index.step[-2:].tolist() == [2, 2]


def test_the_store_lock_wait_is_within_the_promised_10_s(tmp_path):
    # docs/guarantees.md: "no request waits more than 10 s for the store's lock"
    store = SqliteStore(tmp_path / "store")
    try:
        assert store.busy_wait_s <= 10
    finally:
        store.close()
