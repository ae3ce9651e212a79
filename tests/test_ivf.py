"""The IVF index of a big block after HistoryIndex.add: a function of the block's rows alone (a grown index
searches as a fresh one on the same rows), and the exact-search vectors reused where unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_index import _clustered
from v0lite import index as index_mod
from v0lite.index import HistoryIndex

T = 300  # APPROX_THRESHOLD in these tests: a 1,000-row block is searched through its IVF above step 0
K = 10


@pytest.fixture
def trains(monkeypatch):
    """Lengths of the k-means training sets, one per IVF trained (threshold lowered to T)."""
    import faiss

    monkeypatch.setattr(index_mod, "APPROX_THRESHOLD", T)
    seen = []
    train = faiss.IndexIVFScalarQuantizer.train

    def spy(self, x):
        seen.append(len(x))
        return train(self, x)

    monkeypatch.setattr(faiss.IndexIVFScalarQuantizer, "train", spy)
    return seen


def _history(static: bool, n=1000, n_prompts=2000, seed=0):
    """One policy's n rows on the first 1,500 prompts (steps 0-4, or all 0); the rest are fresh queries."""
    rng = np.random.default_rng(seed)
    emb = _clustered(rng, n_prompts)
    step = np.zeros(n, np.int64) if static else np.repeat(np.arange(5), n // 5)
    return HistoryIndex(
        emb, [f"{i:064x}" for i in range(n_prompts)], ["p"], np.zeros(n, np.int32), rng.integers(0, 1500, n),
        rng.random(n), step,
    )  # fmt: skip


def _add(idx, prompt_rows, step):
    m = len(prompt_rows)
    no_emb = np.zeros((0, idx.dim), np.float32)
    keys = [idx.keys[r] for r in prompt_rows]
    return idx.add([], no_emb, [], ["p"] * m, keys, np.linspace(0, 1, m), np.broadcast_to(step, m))


def _fresh(idx):
    """The same rows in a new index: its blocks and IVF are built from scratch."""
    return HistoryIndex(idx.emb, idx.keys, idx.policies, idx.policy, idx.prompt_row, idx.score, idx.step)


def _recall(idx, t):
    """Share of the k hits at step t whose similarity reaches the exact k-th one (ties count as found)."""
    q = idx.emb[1500:1600]
    rows, sims = idx.search(0, q, np.full(len(q), t), np.full(len(q), -1), K, "none")
    assert (rows >= 0).all() and (idx.step[rows] <= t).all(), "a later step's row leaked into the prefix"
    eligible = np.flatnonzero(idx.step <= t)
    kth = -np.sort(-(q @ idx.emb[idx.prompt_row[eligible]].T), axis=1)[:, K - 1 : K]
    return float(np.mean(sims >= kth - 1e-3))


def _finds_itself(idx, rows):
    """Each of ``rows``' prompts, searched at its row's step, finds a row of itself first: ids map to positions."""
    p, t = idx.prompt_row[rows], idx.step[rows]
    hits, sims = idx.search(0, idx.emb[p], t, p, K, "none")
    assert (idx.step[hits[:, 0]] <= t).all()
    np.testing.assert_array_equal(idx.prompt_row[hits[:, 0]], p)
    assert (sims[:, 0] > 0.999).all()


def _searched(idx, t=99):
    idx.search(0, idx.emb[1500:1510], np.full(10, t), np.full(10, -1), K)
    return idx


@pytest.mark.parametrize("static", [False, True])
def test_a_grown_block_searches_as_a_fresh_index_on_its_rows(trains, static):
    """Grown by adds (searched in between or not), the index finds what a fresh index (a saved and
    loaded copy, a restarted service) finds: the neighbours never depend on the order of adds and searches."""
    old = _searched(_history(static))
    grown = _searched(_add(old, np.arange(1000, 1100), 4))
    grown = _add(_add(grown, np.arange(1100, 1150), 4), np.arange(1150, 1200), 5 if not static else 0)
    q = grown.emb[1500:1600]
    for t in (0, 3, 4, 99):
        steps, none = np.full(len(q), t), np.full(len(q), -1)
        got, ref = grown.search(0, q, steps, none, K), _fresh(grown).search(0, q, steps, none, K)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
    assert _recall(grown, 99) >= 0.9
    _finds_itself(grown, np.arange(grown.n_rows - 100, grown.n_rows))
    assert trains and all(n > 0 for n in trains)  # each index over T rows was trained: no stale one reused


def test_exact_prefixes_stay_exact_and_keep_their_vectors(trains):
    old = _searched(_history(False), t=0)  # step 0: 200 rows, searched exactly
    _searched(old)
    x = old.block(0).exact_vectors(old.emb)
    grown = _add(old, np.arange(40), 4)  # after the first T positions: their vectors are reused
    q, none = grown.emb[1500:1600], np.full(100, -1)
    got = grown.search(0, q, np.zeros(100, np.int64), none, K)  # 200 rows <= T: exact, as in a fresh index
    ref = _fresh(grown).search(0, q, np.zeros(100, np.int64), none, K)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    assert grown.block(0).exact_vectors(grown.emb) is x
    early = _add(old, np.arange(40), 0)  # inside them: gathered again
    got = early.search(0, q, np.zeros(100, np.int64), none, K)
    np.testing.assert_array_equal(got[0], _fresh(early).search(0, q, np.zeros(100, np.int64), none, K)[0])
    assert early.block(0).exact_vectors(early.emb) is not x


def test_a_block_grown_at_its_end_extends_its_index_without_training(trains):
    """RL's add (a later step) within the same power of two adds the rows to a copy of the old index, with no
    k-means; it searches as a fresh index; the old index, still searched by the old model, is not touched."""
    old = _searched(_history(False, n=1100), t=4)  # 1,100 rows: trained on the first 1,024
    before = old.search(0, old.emb[1500:1600], np.full(100, 99), np.full(100, -1), K)
    assert len(trains) == 1
    grown = _searched(_add(old, np.arange(1000, 1050), 5))
    grown = _searched(_add(_add(grown, np.arange(1050, 1060), 6), np.arange(1060, 1061), 7))  # two adds, one search
    assert len(trains) == 1, "a block grown at its end was trained again"
    assert grown.block(0).faiss_index(grown.emb).ntotal == 1161
    q, none = grown.emb[1500:1600], np.full(100, -1)
    for t in (0, 4, 5, 7):
        steps = np.full(len(q), t)
        got, ref = grown.search(0, q, steps, none, K), _fresh(grown).search(0, q, steps, none, K)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
    after = old.search(0, old.emb[1500:1600], np.full(100, 99), np.full(100, -1), K)
    np.testing.assert_array_equal(before[0], after[0])
    assert old.block(0).faiss_index(old.emb).ntotal == 1100
    _finds_itself(grown, np.arange(1100, 1161))


@pytest.mark.parametrize("case", ["among the old rows", "past a power of two"])
def test_a_block_grown_otherwise_is_built_again(trains, case):
    """Rows added among the old ones (an earlier step) move old positions; a block past a power of two
    trains on more rows: both build a fresh index, as a fresh model would."""
    among = case == "among the old rows"
    old = _searched(_history(False, n=1100 if among else 1000))  # 1,100 + 40 rows stay under 2,048
    n0 = len(trains)
    grown = _searched(_add(old, np.arange(1000, 1040), 2 if among else 9))
    assert len(trains) == n0 + 1
    q, none = grown.emb[1500:1600], np.full(100, -1)
    got, ref = grown.search(0, q, np.full(100, 99), none, K), _fresh(grown).search(0, q, np.full(100, 99), none, K)
    np.testing.assert_array_equal(got[0], ref[0])
