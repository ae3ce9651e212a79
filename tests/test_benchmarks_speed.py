"""benchmarks/speed.py: --quick never writes; target evaluated; left-out recall queries said; warnings counted.

benchmarks/_speed_baselines.py: the brute-force baseline finds the exact neighbours of the step prefix, the
scikit-learn one a cosine kNN mean per policy; the 1M-row baseline is bounded and the text says so.
"""

import warnings

import numpy as np

import benchmarks._speed_baselines as sb
import benchmarks.speed as speed


def test_quick_implies_no_write_but_not_in_workers():
    args = speed.parse_args(["--quick"])
    assert args.no_write and args.sizes == "10000,100000"
    assert not speed.parse_args([]).no_write
    assert speed.parse_args(["--worker", "--quick"]).sizes == "10000,100000,1000000"


def test_cold_target_is_evaluated():
    assert speed.cold_target_text(0.97) == "(target >= 90%: met)"
    assert speed.cold_target_text(0.85) == "(target >= 90%: NOT met)"


def test_empty_prefix_queries_are_said():
    rows = [
        {"n": 10000, "recall_queries": 300, "recall_mixed_empty_prefix": 31, "recall_latest_empty_prefix": 0},
        {"n": 100000, "recall_queries": 300, "recall_mixed_empty_prefix": 28, "recall_latest_empty_prefix": 0},
    ]
    text = speed.empty_prefix_text(rows)
    assert "left out of recall (random steps / latest step): 31 / 0 of 300 at 10,000 rows, 28 / 0 of 300" in text
    assert speed.empty_prefix_text([{"n": 5}]) == ""  # rows from before the count existed


def test_real_prompts_counts_warnings_without_silencing_the_process(monkeypatch, capsys):
    def fake(n, seed):
        warnings.warn("near-duplicate prompts", UserWarning, stacklevel=1)
        warnings.warn("again", UserWarning, stacklevel=1)
        return ["a"] * n, "fake"

    monkeypatch.setattr(speed, "_real_prompts", fake)
    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        assert speed.real_prompts(2) == (["a", "a"], "fake")
        warnings.warn("later, elsewhere", RuntimeWarning, stacklevel=1)  # not ignored by real_prompts
    assert [str(w.message) for w in outside] == ["later, elsewhere"]
    assert "2 x UserWarning" in capsys.readouterr().out


def test_real_prompts_without_the_data_folder_are_generated(monkeypatch):
    """No ../shared/data (a clean clone): the recall prompts come from make_demo_log, as many as asked."""
    monkeypatch.setenv("V0LITE_DATA", "/nonexistent-v0lite-data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the data folder's absence is warned about
        prompts, src = speed._real_prompts(500, seed=1)
    assert src == "generated (make_demo_log)" and len(set(prompts)) == 500


# -- benchmarks/_speed_baselines.py: the same-run baselines -----------------------------------
def _history(seed=0, n=60, dim=8, n_pol=2, n_steps=4):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb, rng.integers(0, n_pol, n).astype(np.int32), rng.integers(1, n_steps, n), rng.random(n)


def _queries(seed=1, m=25, dim=8, n_pol=2, n_steps=4):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((m, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q, rng.integers(0, n_pol, m).astype(np.int32), rng.integers(0, n_steps + 1, m)


def test_brute_knn_finds_the_exact_neighbours_of_the_step_prefix(monkeypatch):
    from v0lite.index import HistoryIndex, Queries

    emb, pol, step, score = _history()
    q, qpol, qstep = _queries()
    k = 5
    rows, sims = sb.brute_knn(emb, pol, step, q, qpol, qstep, k)
    # a loop over queries: the rows of the query's policy with step <= its step, sorted by dot product
    for i in range(len(q)):
        elig = np.flatnonzero((pol == qpol[i]) & (step <= qstep[i]))
        want = elig[np.argsort(-(emb[elig] @ q[i]), kind="stable")[:k]]
        assert rows[i, : len(want)].tolist() == want.tolist()
        assert (rows[i, len(want) :] == -1).all() and np.isneginf(sims[i, len(want) :]).all()
        np.testing.assert_allclose(sims[i, : len(want)], emb[want] @ q[i], rtol=1e-5)
    assert (rows == -1).all(1).any() and (rows >= 0).all(1).any()  # the case has empty and full prefixes
    # v0lite's exact search over the same prefix returns the same neighbours
    idx = HistoryIndex(emb, [""] * len(emb), ["p0", "p1"], pol, np.arange(len(emb)), score, step)
    got, _ = idx.search_queries(Queries(qpol, qstep, q, np.full(len(q), -1)), k, "none")
    assert (got == rows).all()
    # chunking rows and queries (merging partial top-k) changes nothing
    monkeypatch.setattr(sb, "ROW_CHUNK", 7)
    monkeypatch.setattr(sb, "QUERY_CHUNK", 3)
    chunked, _ = sb.brute_knn(emb, pol, step, q, qpol, qstep, k)
    assert (chunked == rows).all()


def test_brute_knn_predict_is_the_plain_mean_of_the_neighbours():
    emb, pol, step, score = _history()
    q, qpol, qstep = _queries()
    rows, _ = sb.brute_knn(emb, pol, step, q, qpol, qstep, 4)
    pred = sb.brute_knn_predict(emb, pol, step, score, q, qpol, qstep, 4)
    for i in range(len(q)):
        r = rows[i][rows[i] >= 0]
        assert np.isnan(pred[i]) if len(r) == 0 else np.isclose(pred[i], score[r].mean())
    assert sb.knn_mean(np.array([1.0, 0.0, 0.5]), np.array([[0, 1], [2, -1], [-1, -1]])).tolist()[:2] == [0.5, 0.5]


def test_sklearn_baseline_is_a_cosine_knn_mean_per_policy_without_step_rule():
    emb, pol, _, score = _history()
    q, qpol, _ = _queries()
    pred = sb.sklearn_knn_predictor(emb, pol, score, 3)(q, qpol)
    for i in range(len(q)):
        mine = np.flatnonzero(pol == qpol[i])
        assert np.isclose(pred[i], score[mine[np.argsort(-(emb[mine] @ q[i]))[:3]]].mean())
    assert np.isnan(sb.sklearn_knn_predictor(emb, pol, score, 3)(q[:1], np.array([7]))).all()  # unknown policy


def test_baseline_is_bounded_at_big_histories_and_the_text_says_so():
    assert sb.baseline_queries(100_000, 2000) == 2000
    assert sb.baseline_queries(1_000_000, 2000) == 200
    assert sb.rate_ratio(3000.0, 1000.0) == "3.00x"
    rows = [{"n": 10_000, "queries": 2000, "baseline_queries": 2000}]
    text = sb.brute_text(rows, 32)
    assert "numpy brute force" in text and "top-32" in text and "first queries only" not in text
    rows.append({"n": 1_000_000, "queries": 2000, "baseline_queries": 200})
    assert (
        "on the first queries only where 2,000 would take minutes (first 200 at 1,000,000 rows; fewer"
        in sb.brute_text(rows, 32)
    )
    assert "KNeighborsRegressor(n_neighbors=16, algorithm='brute', metric='cosine')" in sb.sklearn_text(16)
    assert "no step rule" in sb.sklearn_text(16)


def test_median_time_returns_the_median_and_the_last_result():
    calls = []
    t, out = sb.median_time(lambda: calls.append(1) or len(calls), 3)
    assert out == 3 and t >= 0
