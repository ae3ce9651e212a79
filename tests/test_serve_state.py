"""The service's state without a server: what a refresh builds before it swaps the router in."""

from __future__ import annotations

import asyncio

import pytest

from tests.serve_util import tiny_router
from v0lite import index as index_mod
from v0lite.serve import Limits, create_app
from v0lite.serve._store import SqliteStore


@pytest.fixture
def builds(monkeypatch):
    """Records each lazy build of a policy's block and of its faiss IVF index (threshold: 30 rows)."""
    monkeypatch.setattr(index_mod, "APPROX_THRESHOLD", 30)  # tiny_router's policies have 40 rows each
    seen = []
    block, ivf = index_mod.HistoryIndex.block, index_mod._Block.faiss_index

    def spy_block(self, code):
        if code not in self._blocks:
            seen.append(("block", self.policies[code]))
        return block(self, code)

    def spy_ivf(self, emb):
        if self._faiss is None and len(self) > index_mod.APPROX_THRESHOLD:
            seen.append(("ivf", len(self)))
        return ivf(self, emb)

    monkeypatch.setattr(index_mod.HistoryIndex, "block", spy_block)
    monkeypatch.setattr(index_mod._Block, "faiss_index", spy_ivf)
    return seen


def test_a_refresh_builds_the_touched_policies_search_before_the_swap(tmp_path, builds):
    """Issue: a refresh that added rows to a policy over APPROX_THRESHOLD rows left its IVF index to be
    trained by the first /v1/route after the swap (~1 s at 50,000 rows, at every refresh)."""
    store = SqliteStore(tmp_path / "store")
    state = create_app(tiny_router(), store=store, limits=Limits(refresh_seconds=30)).state.v0lite
    prompt = "add the numbers case 901"

    def requests_build_nothing():
        builds.clear()
        state._matrix([prompt, "a prompt never seen before"])  # what /v1/route runs on the model thread
        state._predict([("a", prompt), ("b", prompt)])  # and /v1/predict
        assert builds == [], "a request after the refresh built a block or an IVF index"

    async def passes():
        store.append([{"policy": "a", "prompt": f"sort the list case {900 + i}", "score": 1.0} for i in range(5)])
        assert await state.refresh() == 5  # the replay: its router is built before readiness lets routes in
        assert ("ivf", 45) in builds  # policy a: 40 + 5 rows, over the threshold
        requests_build_nothing()
        state._ready.set()
        store.append([{"policy": p, "prompt": f"prove it {950 + i}", "score": 0.0} for p in "ab" for i in range(3)])
        assert await state.refresh() == 6  # a live pass: built before the swap
        assert {("ivf", 48), ("ivf", 43)} <= set(builds)  # the touched policies a and b
        requests_build_nothing()

    try:
        asyncio.run(passes())
        assert state.router.value_model.index_.n_rows == 3 * 40 + 5 + 6
    finally:
        state.executor.shutdown()
        store.close()


def test_stats_is_one_snapshot_of_the_router_and_its_applied_rows(tmp_path):
    """Issue (a flaky CI run: history_rows 60 short of 120 + applied_rows): /v1/stats read the router, then the
    store's count in a thread, then applied_rows; a refresh that swapped the router meanwhile gave the router
    from before the swap and the count from after. Here the swap lands during the store's count."""
    import httpx

    from tests.serve_util import serve_in_thread

    app = create_app(tiny_router(), data_dir=tmp_path / "store", limits=Limits(refresh_seconds=0.3))
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=20) as c:
        state = app.state.v0lite
        rows = [{"policy": "a", "prompt": f"add the numbers case {i}", "score": 1.0} for i in range(3)]
        grown = state._apply(state.router, rows, warm=False)  # what the next refresh swaps in
        count = state.store.count

        def count_while_a_refresh_swaps():
            state.router, state.applied_rows = grown, state.applied_rows + len(rows)
            return count()

        state.store.count = count_while_a_refresh_swaps
        st = c.get("/v1/stats").json()
        assert st["applied_rows"] == 3 and st["history_rows"] == 120 + 3, st
