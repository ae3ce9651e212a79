"""Unit tests of HistoryIndex: the step rule, own-row exclusion, immutability, approximate search."""

from __future__ import annotations

import numpy as np
import pytest

from v0lite import index as index_mod
from v0lite.exceptions import V0liteError
from v0lite.index import HistoryIndex, Queries


def _unit(rng, n, d=16):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _make(rng, n_prompts=40, n_rows=200, n_pol=2, n_steps=5, d=16):
    emb = _unit(rng, n_prompts, d)
    keys = [f"{i:064x}" for i in range(n_prompts)]
    policy = rng.integers(0, n_pol, n_rows).astype(np.int32)
    prow = rng.integers(0, n_prompts, n_rows)
    step = rng.integers(0, n_steps, n_rows)
    score = rng.random(n_rows)
    return HistoryIndex(emb, keys, [f"p{i}" for i in range(n_pol)], policy, prow, score, step)


def _brute(idx, code, q, t, prow, k, exclude):
    """Reference: the k most similar eligible rows by a full scan."""
    rows = np.flatnonzero((idx.policy == code) & (idx.step <= t))
    if exclude == "same_step":
        rows = rows[~((idx.prompt_row[rows] == prow) & (idx.step[rows] == t))]
    elif exclude == "any_step":
        rows = rows[idx.prompt_row[rows] != prow]
    sims = idx.emb[idx.prompt_row[rows]] @ q
    return rows[np.argsort(-sims, kind="stable")][:k], np.sort(sims)[::-1][:k]


@pytest.mark.parametrize("exclude", ["same_step", "any_step", "none"])
def test_step_rule_and_exclusion_match_brute_force(exclude):
    rng = np.random.default_rng(0)
    idx = _make(rng)
    k = 7
    for code in range(2):
        own = np.flatnonzero(idx.policy == code)[:30]
        q = idx.emb[idx.prompt_row[own]]
        t = idx.step[own]
        rows, sims = idx.search(code, q, t, idx.prompt_row[own], k, exclude)
        for i, r in enumerate(own):
            got = rows[i][rows[i] >= 0]
            assert (idx.step[got] <= t[i]).all(), "a row from a later step leaked"
            assert (idx.policy[got] == code).all()
            if exclude == "same_step":
                assert not ((idx.prompt_row[got] == idx.prompt_row[r]) & (idx.step[got] == t[i])).any()
                assert r not in got
            if exclude == "any_step":
                assert (idx.prompt_row[got] != idx.prompt_row[r]).all()
            ref_rows, ref_sims = _brute(idx, code, q[i], t[i], idx.prompt_row[r], k, exclude)
            assert len(got) == len(ref_rows)
            np.testing.assert_allclose(sims[i, : len(got)], ref_sims, atol=1e-5)
            assert (np.diff(sims[i, : len(got)]) <= 1e-6).all(), "hits are not best first"


def test_none_keeps_own_row():
    rng = np.random.default_rng(1)
    idx = _make(rng, n_pol=1)
    r = 5
    rows, sims = idx.search(0, idx.emb[idx.prompt_row[[r]]], idx.step[[r]], idx.prompt_row[[r]], 3, "none")
    assert np.isclose(sims[0, 0], 1.0, atol=1e-5)
    same, _ = idx.search(0, idx.emb[idx.prompt_row[[r]]], idx.step[[r]], idx.prompt_row[[r]], 200, "same_step")
    assert r not in same[0]


def test_padding_when_few_rows_are_eligible():
    emb = _unit(np.random.default_rng(2), 4)
    idx = HistoryIndex(
        emb,
        ["a", "b", "c", "d"],
        ["p"],
        np.zeros(4, np.int32),
        np.arange(4),
        np.array([1.0, 0.0, 1.0, 0.0]),
        np.array([0, 0, 1, 2]),
    )
    q = emb[[0, 0, 0]]
    rows, sims = idx.search(0, q, np.array([-1, 0, 5]), np.array([-1, -1, -1]), 5, "same_step")
    assert (rows[0] == -1).all() and (sims[0] == 0).all()  # nothing eligible before step 0
    assert sorted(rows[1][:2]) == [0, 1] and (rows[1][2:] == -1).all()
    assert (rows[2][:4] >= 0).all() and rows[2][4] == -1
    assert (sims[1][2:] == 0).all()


def test_add_returns_new_index_and_leaves_old_untouched():
    rng = np.random.default_rng(3)
    idx = _make(rng)
    q = idx.emb[:3]
    before = idx.search(0, q, np.full(3, 10), np.full(3, -1), 5)
    n_rows, n_keys = idx.n_rows, len(idx.keys)
    new = idx.add(
        ["new" + "0" * 61], _unit(rng, 1), [3.0], ["p0", "p9"], ["new" + "0" * 61, idx.keys[0]], [1.0, 0.5], [0, 0]
    )
    assert new is not idx
    assert idx.n_rows == n_rows and len(idx.keys) == n_keys and idx.policies == ["p0", "p1"]
    assert new.n_rows == n_rows + 2 and len(new.keys) == n_keys + 1 and new.policies[-1] == "p9"
    after = idx.search(0, q, np.full(3, 10), np.full(3, -1), 5)
    np.testing.assert_array_equal(before[0], after[0])
    # the untouched policy's block is shared, the touched one rebuilt
    idx.block(1)
    new2 = idx.add([], np.zeros((0, idx.dim), np.float32), [], ["p0"], [idx.keys[1]], [0.0], [0])
    assert new2.block(1) is idx.block(1)
    assert new2.block(0) is not idx.block(0) and len(new2.block(0)) == len(idx.block(0)) + 1
    with pytest.raises(V0liteError):
        idx.add([], np.zeros((0, idx.dim), np.float32), [], ["p0"], ["missing"], [0.0], [0])


def test_unknown_exclude_mode_and_unknown_policy():
    idx = _make(np.random.default_rng(4))
    with pytest.raises(V0liteError, match="exclude"):
        idx.search(0, idx.emb[:1], np.array([0]), np.array([0]), 3, "bogus")
    q = Queries(np.array([-1, 0], np.int32), np.array([9, 9]), idx.emb[:2], np.array([-1, -1]))
    rows, _ = idx.search_queries(q, 4)
    assert (rows[0] == -1).all() and (rows[1] >= 0).all()


def test_memmap_and_float16_embeddings(tmp_path):
    rng = np.random.default_rng(5)
    ref = _make(rng)
    path = tmp_path / "emb.npy"
    np.save(path, ref.emb)
    mm = np.load(path, mmap_mode="r")
    args = (ref.keys, ref.policies, ref.policy, ref.prompt_row, ref.score, ref.step)
    a = HistoryIndex(mm, *args)
    assert isinstance(a.emb, np.memmap)  # not copied into RAM
    b = HistoryIndex(ref.emb.astype(np.float16), *args)
    assert b.emb.dtype == np.float16
    q = ref.emb[:5]
    r0, s0 = ref.search(0, q, np.full(5, 9), np.full(5, -1), 6)
    r1, s1 = a.search(0, q, np.full(5, 9), np.full(5, -1), 6)
    r2, s2 = b.search(0, q, np.full(5, 9), np.full(5, -1), 6)
    np.testing.assert_array_equal(r0, r1)
    np.testing.assert_allclose(s0, s2, atol=2e-3)


def _clustered(rng, n, d=32, centers=60):
    c = rng.standard_normal((centers, d)).astype(np.float32)
    x = c[rng.integers(0, centers, n)] + 0.5 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_approximate_index_recall_with_forced_threshold(monkeypatch):
    rng = np.random.default_rng(6)
    n, d, k = 6000, 32, 10
    emb = _clustered(rng, n + 200, d)
    steps = np.repeat(np.arange(10), n // 10)
    exact = HistoryIndex(
        emb, [str(i) for i in range(len(emb))], ["p"], np.zeros(n, np.int32), np.arange(n), rng.random(n), steps
    )
    qs = emb[n:]
    truth = {}
    for t in (9, 4, 1):
        truth[t] = exact.search(0, qs, np.full(len(qs), t), np.full(len(qs), -1), k)[0]
    monkeypatch.setattr(index_mod, "APPROX_THRESHOLD", 500)
    approx = HistoryIndex(exact.emb, exact.keys, ["p"], exact.policy, exact.prompt_row, exact.score, exact.step)
    assert approx.block(0).faiss_index(approx.emb) is not None
    for t in (9, 4, 1):
        cut = int((steps <= t).sum())
        assert cut > 500  # answered by the IVF index
        rows, _ = approx.search(0, qs, np.full(len(qs), t), np.full(len(qs), -1), k)
        assert (rows >= 0).all(), "IVF returned fewer than k hits"
        assert (steps[rows] <= t).all(), "IVF prefix selector let a later step through"
        recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(rows, truth[t])])
        assert recall >= 0.9, (t, recall)
    # a small prefix is searched exactly
    rows, _ = approx.search(0, qs, np.zeros(len(qs), np.int64), np.full(len(qs), -1), k)
    ref = exact.search(0, qs, np.zeros(len(qs), np.int64), np.full(len(qs), -1), k)[0]
    np.testing.assert_array_equal(rows, ref)


def _assert_same_hits_up_to_ties(rows_a, sims_a, rows_b, atol=1e-6):
    """Equal hit lists, except rows tied at the k-th similarity, which either search may return.

    Rows of one prompt have equal similarities; which of them fills the last places depends on
    the search path (faiss batching, BLAS), so only the rows strictly above the cut must agree.
    """
    for ra, sa, rb in zip(rows_a, sims_a, rows_b):
        assert (ra >= 0).sum() == (rb >= 0).sum()
        above = sa > sa[ra >= 0].min() + atol if (ra >= 0).any() else np.zeros(len(ra), bool)
        assert set(ra[above]) == set(rb[above])


@pytest.mark.parametrize("shuffled", [False, True])
@pytest.mark.parametrize("exclude", ["same_step", "any_step", "none"])
def test_policies_with_the_same_layout_share_one_search(exclude, shuffled):
    # a routing log: every policy scored on the same (prompt, step) rows, in the same order or
    # (shuffled) each policy's rows in its own order, as a log concatenated from per-model files is
    rng = np.random.default_rng(7)
    n_prompts, n_rows, n_pol = 30, 90, 3
    emb = _unit(rng, n_prompts)
    prow1 = rng.integers(0, n_prompts, n_rows)
    step1 = rng.integers(0, 3, n_rows)
    policy = np.repeat(np.arange(n_pol), n_rows).astype(np.int32)
    orders = [rng.permutation(n_rows) if shuffled else np.arange(n_rows) for _ in range(n_pol)]
    prow = np.concatenate([prow1[o] for o in orders])
    step = np.concatenate([step1[o] for o in orders])
    idx = HistoryIndex(
        emb,
        [f"{i:064x}" for i in range(n_prompts)],
        [f"p{i}" for i in range(n_pol)],
        policy,
        prow,
        rng.random(n_rows * n_pol),
        step,
    )
    assert idx.block(0).layout() == idx.block(2).layout()
    qp = rng.integers(0, n_prompts, 12)
    q = Queries(
        np.repeat(np.arange(n_pol), 12).astype(np.int32),
        np.tile(rng.integers(0, 3, 12), n_pol),
        emb[np.tile(qp, n_pol)],
        np.tile(qp, n_pol),
    )
    rows, sims = idx.search_queries(q, 5, exclude)
    for code in range(n_pol):
        sel = q.policy == code
        r, s = idx.search(code, q.emb[sel], q.step[sel], q.prompt_row[sel], 5, exclude)
        np.testing.assert_allclose(sims[sel], s, atol=1e-6)
        _assert_same_hits_up_to_ties(rows[sel], sims[sel], r)
        assert (idx.policy[rows[sel][rows[sel] >= 0]] == code).all()  # each policy's own rows


def test_distinct_queries_is_exact():
    from v0lite.index import _distinct_queries

    rng = np.random.default_rng(3)
    emb = _unit(rng, 6)
    pick = rng.integers(0, 6, 200)
    step = rng.integers(0, 3, 200)
    first, inv = _distinct_queries(emb[pick], step, pick)
    assert len(first) == len(set(zip(pick.tolist(), step.tolist())))
    np.testing.assert_array_equal(emb[pick][first][inv], emb[pick])
    np.testing.assert_array_equal(step[first][inv], step)
    # equal embeddings under different labels stay apart
    first, inv = _distinct_queries(np.repeat(emb[:1], 4, 0), np.array([0, 1, 0, 1]))
    assert len(first) == 2 and inv[0] == inv[2] != inv[1] == inv[3]


def _pop_index(means, counts, seed=0):
    rng = np.random.default_rng(seed)
    pol, score = [], []
    for code, (m, c) in enumerate(zip(means, counts)):
        pol += [code] * c
        score += (rng.uniform(size=c) < m).astype(float).tolist()
    n = len(score)
    emb = _unit(rng, n)
    return HistoryIndex(
        emb,
        [str(i) for i in range(n)],
        [f"p{i}" for i in range(len(means))],
        pol,
        np.arange(n),
        score,
        np.zeros(n, np.int64),
    )


def test_population_shrinks_a_thin_policy_and_keeps_a_thick_one():
    idx = _pop_index([0.5, 0.6, 0.7, 0.8, 1.0], [2000, 2000, 2000, 2000, 10])
    mu, tau2, sigma2 = idx.population()
    assert mu == pytest.approx(0.65, abs=0.02)  # the 10-row policy is left out of the estimate
    assert tau2 == pytest.approx(np.var([0.5, 0.6, 0.7, 0.8], ddof=1), abs=0.006)
    assert 0.15 < sigma2 < 0.25
    out = idx.shrink_to_population(np.array([10.0, 2000.0]), np.array([1.0, 0.8]))
    assert mu < out[0] < 0.9  # 10 straight successes: pulled well toward the population
    assert out[1] == pytest.approx(0.8, abs=0.003)
    assert idx.population() is idx.population()  # cached


def test_population_needs_three_policies_and_floors_tau():
    two = _pop_index([0.2, 0.9], [500, 500])
    assert two.population() is None
    np.testing.assert_array_equal(two.shrink_to_population(np.array([3.0]), np.array([1.0])), [1.0])
    alike = _pop_index([0.5, 0.5, 0.5], [3000, 3000, 3000])
    assert alike.population()[1] == pytest.approx(index_mod._POP_MIN_TAU2)


def test_queries_texts_is_a_declared_field_that_subset_keeps():
    import dataclasses

    from v0lite.index import Queries

    assert "texts" in {f.name for f in dataclasses.fields(Queries)}
    q = Queries(
        np.array([0, 1, 0]),
        np.zeros(3, np.int64),
        np.eye(3, dtype=np.float32),
        np.array([0, 1, 2]),
        texts=["a", "b", "c"],
    )
    assert q.subset(np.array([True, False, True])).texts == ["a", "c"]
    assert q.subset([2, 1]).texts == ["c", "b"]
    assert Queries(q.policy, q.step, q.emb, q.prompt_row).subset([0]).texts is None


@pytest.mark.parametrize("exclude", ["same_step", "any_step", "none"])
def test_numpy_search_finds_the_rows_faiss_finds(exclude):
    # prediction searches exact prefixes with top_inner_products; a prompt's rows at several steps
    # tie, and the rows kept at the k-th place must be faiss's
    from v0lite.index import Queries

    rng = np.random.default_rng(6)
    idx = _make(rng, n_prompts=30, n_rows=400, n_pol=3, n_steps=6)
    q = Queries(
        rng.integers(0, 3, 120).astype(np.int32),
        rng.integers(0, 6, 120),
        np.vstack([idx.emb[rng.integers(0, 30, 60)], _unit(rng, 60)]),
        np.concatenate([rng.integers(0, 30, 60), np.full(60, -1)]),
    )
    for k in (1, 5, 12):
        rows, sims = idx.search_queries(q, k, exclude)
        rows_np, sims_np = idx.search_queries(q, k, exclude, search="numpy")
        np.testing.assert_array_equal(rows_np, rows)
        np.testing.assert_allclose(sims_np, sims, rtol=0, atol=1e-6)


def test_max_dup_step_counts_the_largest_prompt_step_group():
    # computed from runs of the sorted block, not a sort: checked against np.unique on random blocks
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        prow, step = rng.integers(0, int(rng.integers(1, 8)), n), rng.integers(0, int(rng.integers(1, 4)), n)
        b = index_mod._Block(np.arange(n), step, prow, rng.random(n))
        ref = np.unique(np.stack([prow, step], 1), axis=0, return_counts=True)[1].max()
        assert b.max_dup_step() == ref


def _near_ties(rng, n, d=384):
    """Rows near a few directions (near-tied similarities), every 7th a copy of row 3 (exact ties)."""
    x = _unit(rng, 12, d)[rng.integers(0, 12, n)] + 1e-3 * _unit(rng, n, d)
    x[::7] = x[3]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("chunk", [4_000_000, 3 * 600])  # 3 rows a block: a batch's last block may hold one row
def test_top_inner_products_answers_a_query_alone_as_in_any_batch(chunk):
    # BLAS rounds q @ x.T by the block's shape (gemv for one row, small-matrix kernels): only the
    # exact per-pair values may pick and rank neighbours, bit for bit the same in every batch
    from v0lite.index import top_inner_products

    rng = np.random.default_rng(21)
    x = _near_ties(rng, 600)
    q = _near_ties(rng, 120)
    for i in range(3):
        D1, I1 = top_inner_products(q[i : i + 1], x, 12, chunk=chunk)
        for m in (2, 3, 17, 100):
            for pos in sorted({0, 1, m // 2, m - 1}):
                D, I = top_inner_products(np.insert(q[3 : 3 + m - 1], pos, q[i], 0), x, 12, chunk=chunk)
                np.testing.assert_array_equal(D[pos], D1[0])
                np.testing.assert_array_equal(I[pos], I1[0])


@pytest.mark.parametrize("search", ["faiss", "numpy"])
def test_search_queries_answers_a_query_alone_as_in_a_big_batch(search):
    # faiss switches from its per-pair loop to BLAS at nx * d >= 128,000 (334 queries of 384 dims):
    # "numpy" answers bit for bit alike; "faiss" is kept for speed, its sims alike up to round-off
    rng = np.random.default_rng(23)
    emb = _near_ties(rng, 300)
    n = 600
    idx = HistoryIndex(
        emb,
        [f"{i:064x}" for i in range(300)],
        ["p"],
        np.zeros(n, np.int32),
        rng.integers(0, 300, n),
        rng.random(n),
        np.zeros(n),
    )
    m = 400
    q = Queries(np.zeros(m, np.int32), np.zeros(m, np.int64), _near_ties(rng, m), np.full(m, -1))
    rows, sims = idx.search_queries(q, 20, search=search)
    for i in (0, 199, 399):
        r1, s1 = idx.search_queries(q.subset([i]), 20, search=search)
        if search == "numpy":
            np.testing.assert_array_equal(r1[0], rows[i])
            np.testing.assert_array_equal(s1[0], sims[i])
        else:
            np.testing.assert_allclose(s1[0], sims[i], rtol=0, atol=1e-6)


def test_a_gbdt_row_is_predicted_alone_as_in_any_batch(make_model):
    # `v0lite serve` micro-batches concurrent requests: a prediction must not depend on its batch.
    # gbdt reads cross-policy neighbours with top_inner_products (features.py), numpy mode
    import polars as pl
    from conftest import make_log

    base = make_log(4, 40, steps=True, seed=3)  # "add the numbers case i", ...: near-identical prompts
    # the probe's case: (pol2, "add the numbers case 16", step 1) = row 96 moved 0.648 -> 0.652
    model = make_model(head="gbdt", head_params={"n_estimators": 20}).fit(base)
    new = pl.DataFrame(
        {"policy": ["pol2"] * 400, "prompt": [f"add the numbers case {i}" for i in range(400)], "step": [1] * 400}
    )
    rows = pl.concat([base.drop("score"), new])
    full = model.predict(rows)
    # rows alone, every 4th and the probe's (the PCA projection too: a BLAS product of one row moved 441 of 640
    # projections by 9e-8, and 1 in 4 rows still catches it: 8 s for all 640 one by one)
    some = sorted({*range(0, len(rows), 4), 16, 96, 170, 300, len(rows) - 1})
    alone_all = dict(zip(some, (model.predict(rows[i : i + 1])[0] for i in some)))
    assert [alone_all[i] for i in some] == full[some].tolist(), [i for i in some if alone_all[i] != full[i]][:10]
    for i in (16, 96, 170, 300, len(rows) - 1):
        alone = alone_all[i]
        for size, pos in ((2, 1), (25, 0), (25, 24)):
            others = rows[[j for j in range(size + 1) if j != i][: size - 1]]
            batch = pl.concat([others[:pos], rows[i : i + 1], others[pos:]])
            assert model.predict(batch)[pos] == alone


@pytest.mark.parametrize("hide", ["same_step", "any_step"])
def test_hidden_prior_reads_the_history_mean_without_the_query_own_rows(hide):
    # policy p1's only rows are prompt 0's: hidden, it has nothing eligible left, so its prior is the
    # history's mean without those rows (not with them, which would read the query's own outcome)
    emb = _unit(np.random.default_rng(3), 3)
    policy, prow = [0, 0, 1, 1], [1, 2, 0, 0]
    score, step = [0.2, 0.4, 1.0, 1.0], [0, 0, 0, 0]
    idx = HistoryIndex(emb, ["a", "b", "c"], ["p0", "p1"], policy, prow, score, step)
    q = Queries(np.array([1, 0, -1], np.int32), np.zeros(3, np.int64), emb[[0, 1, 0]], np.array([0, 1, 0]))
    prior = index_mod.hidden_prior(idx, q, hide)
    assert np.isnan(index_mod.policy_prior(idx, q, hide=hide)[0])
    assert prior[0] == pytest.approx(0.3)  # (0.2 + 0.4) / 2, p1's two 1.0 rows hidden
    assert prior[1] == pytest.approx(index_mod.policy_prior(idx, q, hide=hide)[1])  # p0 has eligible rows
    assert prior[2] == pytest.approx(0.65)  # an unknown policy: the whole history's mean, nothing to hide
