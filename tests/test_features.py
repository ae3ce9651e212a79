"""Context features obey the step rule and the exclusion modes."""

import numpy as np
import polars as pl
import pytest
from conftest import make_log

from v0lite.features import compute_features, fit_pca


@pytest.fixture
def model(make_model):
    return make_model(head="prior").fit(make_log(n_policies=3, n_prompts=24, steps=True))


def _queries(model, frame):
    return model._queries(frame)


def test_shapes_and_names(model):
    q = _queries(model, make_log(n_policies=3, n_prompts=24, steps=True).drop("score"))
    X, names = compute_features(model.index_, q, pca=fit_pca(model.index_.emb, 4))
    assert X.shape == (len(q), len(names))
    assert len(set(names)) == len(names)
    assert X.dtype == np.float32
    assert {"prior", "own_prompt_n", "xp_same_resid", "ridge_resid", "pca3"} <= set(names)


def test_own_prompt_history_respects_exclusion(model):
    log = make_log(n_policies=3, n_prompts=24, steps=True)
    q = _queries(model, log.drop("score"))
    X, names = compute_features(model.index_, q, "same_step")
    # every (policy, prompt) occurs once in this log, at one step: with its own row hidden nothing is left
    assert (X[:, names.index("own_prompt_n")] == 0).all()
    Xa, _ = compute_features(model.index_, q, "any_step")
    assert (Xa[:, names.index("xp_same_n")] == 0).all()
    Xn, _ = compute_features(model.index_, q, "none")
    assert (Xn[:, names.index("own_prompt_n")] >= 1).all()


def test_own_prompt_sees_only_earlier_steps(make_model):
    log = pl.DataFrame(
        {
            "policy": ["a"] * 4 + ["b"] * 2,
            "prompt": ["p1", "p1", "p1", "p2", "p1", "p2"],
            "score": [0.0, 1.0, 1.0, 0.5, 0.5, 0.5],
            "step": [0, 1, 2, 0, 0, 0],
        }
    )
    model = make_model(head="prior").fit(log)
    q = model._queries(pl.DataFrame({"policy": ["a", "a"], "prompt": ["p1", "p1"], "step": [1, 5]}))
    X, names = compute_features(model.index_, q, "same_step")
    n, mean, last = (X[:, names.index(c)] for c in ("own_prompt_n", "own_prompt_mean", "own_prompt_last"))
    assert n.tolist() == [1, 3]  # step 1: only step 0 (own step-1 row hidden); step 5: all three
    assert mean[0] == 0.0 and last[0] == 0.0
    assert last[1] == 1.0
    assert X[0, names.index("xp_same_n")] == pytest.approx(np.log1p(1))  # policy b's row on p1


def test_unknown_prompt_has_no_same_prompt_evidence(model):
    q = _queries(model, pl.DataFrame({"policy": ["pol0"], "prompt": ["a prompt never seen"]}))
    X, names = compute_features(model.index_, q)
    assert X[0, names.index("own_prompt_n")] == 0
    assert X[0, names.index("xp_same_n")] == 0
    assert np.isfinite(X[0, names.index("xp_nn_resid_t0.05")])


def test_cold_ridge_feature_equals_a_refit_without_the_prompt(model):
    """With exclude="any_step" the pooled ridge reads as if the query's prompt was never fitted."""
    from v0lite.features import _cache

    idx = model.index_
    c = _cache(idx)
    q = _queries(model, make_log(n_policies=3, n_prompts=24, steps=True).head(4).drop("score"))
    loo = c.ridge_predict(q.emb, q.prompt_row, hide_own_prompt=True)
    for i in range(len(q)):
        keep = np.flatnonzero(idx.prompt_row != q.prompt_row[i])
        X = idx.emb[idx.prompt_row[keep]].astype(np.float64)
        w = np.linalg.solve(X.T @ X + 0.03 * idx.n_rows * np.eye(X.shape[1]), X.T @ c.resid[keep])
        # the Gram matrix is summed in float32 (features.weighted_gram): agreement to ~1e-7, not 1e-12
        assert loo[i] == pytest.approx(float(q.emb[i] @ w), abs=1e-6)


def test_unique_queries_is_exact_even_when_embeddings_collide():
    from v0lite.features import _unique_queries

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((5, 8)).astype(np.float32)
    e = emb[[0, 1, 0, 2, 1, 0]]
    rows = np.array([3, 4, 3, 5, 4, 7])  # row 5 repeats embedding 0 under another prompt row
    first, inv = _unique_queries(e, rows)
    np.testing.assert_array_equal(e[first][inv], e)
    np.testing.assert_array_equal(rows[first][inv], rows)
    assert len(first) == 4


@pytest.mark.parametrize("exclude", ["same_step", "any_step"])
def test_features_do_not_depend_on_the_batch(model, exclude):
    # prompt-level work runs once per distinct prompt: a batch full of repeats must give each row
    # exactly what it gets alone
    log = make_log(n_policies=3, n_prompts=24, steps=True).drop("score")
    q = _queries(model, log)
    X, _ = compute_features(model.index_, q, exclude)
    sub = _queries(model, log[[0, 5, 9]])
    Xs, _ = compute_features(model.index_, sub, exclude)
    np.testing.assert_allclose(Xs, X[[0, 5, 9]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [1, 8, 33, 200])
def test_top_inner_products_equals_faiss_flat_search(k):
    import faiss

    from v0lite.index import top_inner_products

    rng = np.random.default_rng(4)
    x = rng.standard_normal((200, 24)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.standard_normal((300, 24)).astype(np.float32)
    index = faiss.IndexFlatIP(24)
    index.add(x)
    D, I = index.search(q, k)  # 300 queries of 24 dims: faiss's per-pair loop
    got_D, got_I = top_inner_products(q, x, k, chunk=5_000)  # several blocks of queries
    np.testing.assert_allclose(got_D, D, rtol=0, atol=1e-5)
    # numpy's values differ by round-off: only neighbours within it of each other may trade places
    swapped = got_I != I
    assert swapped.mean() < 0.001
    exact = np.einsum("ij,ikj->ik", q.astype(np.float64), x[got_I].astype(np.float64))
    ref = np.einsum("ij,ikj->ik", q.astype(np.float64), x[I].astype(np.float64))
    assert np.abs(exact - ref)[swapped].max(initial=0) < 1e-6


@pytest.mark.parametrize("k", [1, 8, 33, 99])  # faiss keeps a heap below k = 100, a reservoir from there
def test_top_inner_products_breaks_ties_as_faiss(k):
    # a prompt's rows at several steps share one vector: equal similarities, often cut at the k-th place
    import faiss

    from v0lite.index import top_inner_products

    rng = np.random.default_rng(5)
    base = rng.standard_normal((300, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    x = base[rng.integers(0, 300, 3000)]
    q = base[rng.integers(0, 300, 64)]
    D, I = faiss.knn(q, x, k, metric=faiss.METRIC_INNER_PRODUCT)
    got_D, got_I = top_inner_products(q, x, k)
    assert ((q @ x.T >= got_D[:, -1:]).sum(1) > k).sum() >= 5  # rows whose k-th place cuts a tie
    np.testing.assert_array_equal(got_I, I)
    np.testing.assert_allclose(got_D, D, rtol=0, atol=1e-5)


def test_compute_features_search_modes_agree(model):
    q = _queries(model, make_log(n_policies=3, n_prompts=24, steps=True).drop("score"))
    X, _ = compute_features(model.index_, q, pca=fit_pca(model.index_.emb, 4))
    Xn, _ = compute_features(model.index_, q, pca=fit_pca(model.index_.emb, 4), search="numpy")
    np.testing.assert_allclose(Xn, X, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="search must be 'faiss' or 'numpy'"):
        compute_features(model.index_, q, search="blas")


def test_weighted_gram_matches_the_float64_product():
    from v0lite.features import weighted_gram

    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 24)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    w = rng.integers(0, 9, 500).astype(np.float64)
    ref = x.astype(np.float64).T @ (x.astype(np.float64) * w[:, None])
    np.testing.assert_allclose(weighted_gram(x, w), ref, atol=1e-5 * np.abs(ref).max())


def test_fit_pca_gives_the_svd_components_with_fixed_signs():
    from v0lite.features import fit_pca

    rng = np.random.default_rng(4)
    x = (rng.standard_normal((300, 16)) * np.linspace(3, 0.2, 16)).astype(np.float32)
    mean, comps = fit_pca(x, 4)
    _, _, vt = np.linalg.svd(x.astype(np.float64) - x.mean(0), full_matrices=False)
    for c, v in zip(comps, vt[:4]):
        assert abs(abs(float(c @ v)) - 1.0) < 1e-5  # the same direction
        assert c[np.abs(c).argmax()] > 0  # the sign rule: largest entry positive
    np.testing.assert_allclose(mean, x.mean(0), atol=1e-6)
    assert fit_pca(x[:3], 8)[1].shape == (8, 16)  # fewer rows than components: zero-padded


def _without_prompt(idx, prompt_row):
    from v0lite.index import HistoryIndex

    keep = np.flatnonzero(idx.prompt_row != prompt_row)
    return HistoryIndex(idx.emb, idx.keys, idx.policies, idx.policy[keep], idx.prompt_row[keep], idx.score[keep],
                        idx.step[keep])  # fmt: skip


def test_a_cold_querys_policy_profile_hides_its_prompts_rows(make_model):
    """exclude_own_prompt: prior, policy mean, spread and count read as if the prompt had no rows (two
    policies: with three or more, the pool's spread that shrinks a policy's mean keeps every row)."""
    log = make_log(n_policies=2, n_prompts=24, steps=True)
    model = make_model(head="prior").fit(log)
    idx = model.index_
    q = _queries(model, log.drop("score")[::5])
    X, names = compute_features(idx, q, "any_step")
    for i in range(len(q)):
        Xr, _ = compute_features(_without_prompt(idx, q.prompt_row[i]), q.subset([i]), "any_step")
        for name in ("prior", "policy_mean", "policy_std", "policy_log_n"):
            assert X[i, names.index(name)] == pytest.approx(Xr[0, names.index(name)], abs=1e-6), name


def test_a_prompt_outside_the_history_gets_the_same_features_and_prior_either_way(model):
    """Hiding a query's own rows changes nothing for a prompt the history has not seen: bit for bit."""
    from v0lite.index import policy_prior

    idx = model.index_
    q = _queries(model, pl.DataFrame({"policy": ["pol0", "pol1", "pol2"], "prompt": ["new a", "new b", "new c"]}))
    a, names = compute_features(idx, q, "any_step")
    b, _ = compute_features(idx, q, "same_step")
    np.testing.assert_array_equal(a, b)
    for hide in ("same_step", "any_step"):
        np.testing.assert_array_equal(policy_prior(idx, q, hide=hide), policy_prior(idx, q))
