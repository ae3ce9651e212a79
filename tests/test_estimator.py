"""V0Regressor: the scikit-learn contract, fallbacks, add_history, and properties over random logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import sklearn.exceptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from tests.conftest import FakeEncoder, make_log
from v0lite.estimator import V0Regressor
from v0lite.exceptions import DataError, NotFittedError

HEADS = ["knn", "prior"]


def _xy(log):
    return log.drop("score"), log["score"].to_numpy()


# --- scikit-learn contract ---------------------------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
def test_fit_returns_self_and_predicts_in_unit_interval(make_model, small_log, head):
    m = make_model(head=head)
    X, y = _xy(small_log)
    assert m.fit(X, y) is m
    p = m.predict(X)
    assert p.shape == (X.height,) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert m.n_history_ == X.height and m.encoder_id_ == "fake-ngram-64"


def test_whole_log_without_y_equals_x_and_y(make_model, small_log):
    X, y = _xy(small_log)
    np.testing.assert_array_equal(make_model().fit(small_log).predict(X), make_model().fit(X, y).predict(X))


@pytest.mark.parametrize("head", HEADS)
def test_not_fitted_error_is_also_sklearns(make_model, small_log, head):
    m = make_model(head=head)
    X, y = _xy(small_log)
    for call in (lambda: m.predict(X), lambda: m.add_history(X, y), lambda: m.save("unused")):
        with pytest.raises(NotFittedError) as info:
            call()
        assert isinstance(info.value, sklearn.exceptions.NotFittedError)


@pytest.mark.parametrize("head", HEADS)
def test_get_set_params_and_clone(make_model, small_log, head):
    m = make_model(head=head, k=5)
    params = m.get_params()
    assert params["head"] == head and params["k"] == 5 and params["fallback"] == "error"
    assert m.set_params(k=7) is m and m.k == 7
    X, y = _xy(small_log)
    m.fit(X, y)
    c = clone(m)
    assert not hasattr(c, "head_")  # unfitted copy
    assert {k: v for k, v in c.get_params().items() if k != "encoder"} == {
        k: v for k, v in m.get_params().items() if k != "encoder"
    }
    np.testing.assert_array_equal(c.fit(X, y).predict(X), m.predict(X))


@pytest.mark.parametrize("head", HEADS)
def test_pipeline(make_model, small_log, head):
    X, y = _xy(small_log)
    pipe = Pipeline([("passthrough", FunctionTransformer()), ("v0", make_model(head=head))])
    p = pipe.fit(X, y).predict(X)
    np.testing.assert_array_equal(p, make_model(head=head).fit(X, y).predict(X))


@pytest.mark.parametrize("head", HEADS)
def test_group_kfold_cross_val_score(make_model, head):
    log = make_log(n_policies=3, n_prompts=16)
    X, y = log.drop("score").to_pandas(), log["score"].to_numpy()
    # grouping by prompt: the test fold's prompts are unseen, policies are all known
    scores = cross_val_score(make_model(head=head), X, y, groups=X["prompt"], cv=GroupKFold(n_splits=4))
    assert scores.shape == (4,) and np.isfinite(scores).all()


@pytest.mark.parametrize("head", HEADS)
def test_save_load_round_trip(tmp_path, make_model, small_log, head):
    X, y = _xy(small_log)
    m = make_model(head=head).fit(X, y)
    m.save(tmp_path / "m")
    back = V0Regressor.load(tmp_path / "m", encoder=FakeEncoder())
    np.testing.assert_array_equal(back.predict(X), m.predict(X))
    new = pl.DataFrame({"policy": ["pol1"], "prompt": ["a prompt never seen before"]})
    np.testing.assert_array_equal(back.predict(new), m.predict(new))


def test_v0regressor_load_classmethod(tmp_path, fake_minilm, small_log):
    """``V0Regressor.load(path)`` for a model fitted with the default (string-named) encoder."""
    X, y = _xy(small_log)
    m = V0Regressor(head="knn").fit(X, y)
    m.save(tmp_path / "m")
    back = V0Regressor.load(tmp_path / "m")
    assert isinstance(back, V0Regressor)
    np.testing.assert_array_equal(back.predict(X), m.predict(X))


def test_pandas_and_polars_inputs_agree(make_model, small_log):
    X, y = _xy(small_log)
    a = make_model().fit(X, y).predict(X)
    b = make_model().fit(X.to_pandas(), pd.Series(y)).predict(X.to_pandas())
    np.testing.assert_array_equal(a, b)


# --- fallbacks, history ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, "x", 1.5, True, None, 2**70])
def test_random_state_is_checked_before_any_work(make_model, small_log, fake_encoder, bad):
    """Issue: a negative, text or fractional seed raised numpy's error after the embedding, or later."""
    from v0lite.exceptions import ParameterError

    with pytest.raises(ParameterError, match=r"random_state must be an integer in \[0, 2\*\*31 - 16\], got"):
        make_model(random_state=bad).fit(small_log)
    assert fake_encoder.calls == 0  # nothing was embedded
    assert hasattr(make_model(random_state=np.int64(3)).fit(small_log), "head_")


def test_fallback_prior_is_rejected_not_silently_the_global_mean(make_model, small_log, tmp_path):
    from v0lite.exceptions import ParameterError

    with pytest.raises(ParameterError, match=r"unknown fallback 'prior'; valid names: \['error', 'global_mean'\]"):
        make_model(fallback="prior").fit(small_log)
    # a folder saved when 'prior' was an alias of the global mean still loads, with that meaning
    m = make_model(fallback="global_mean").fit(small_log)
    m.save(tmp_path / "m")
    import json

    from v0lite.persist import _meta_digest

    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    meta["params"]["fallback"] = "prior"
    meta["meta_sha256"] = _meta_digest(meta)
    (tmp_path / "m" / "meta.json").write_text(json.dumps(meta))
    assert V0Regressor.load(tmp_path / "m", encoder=m.encoder).fallback == "global_mean"


def test_unknown_policy_error_names_policy_and_fix(make_model, small_log):
    m = make_model().fit(small_log)
    from v0lite.exceptions import DataError, UnknownPolicyError

    with pytest.raises(
        UnknownPolicyError, match=r"row 1: policy 'newbie' has no history.*fallback='global_mean'"
    ) as info:
        m.predict(pl.DataFrame({"policy": ["pol0", "newbie"], "prompt": ["x", "y"]}))
    # its own class (the CLI names QUERIES by it), still bad input for a caller catching DataError
    assert isinstance(info.value, DataError)


def test_fallback_global_mean(make_model, small_log):
    m = make_model(fallback="global_mean").fit(small_log)
    p = m.predict(pl.DataFrame({"policy": ["newbie", "pol0"], "prompt": ["add the numbers case 1", "y"]}))
    assert p[0] == pytest.approx(small_log["score"].mean())
    assert 0 <= p[1] <= 1


def test_add_history_serves_a_new_policy_without_refit(make_model, small_log):
    m = make_model().fit(small_log)
    head_params = dict(m.head_.params)
    new = pl.DataFrame(
        {
            "policy": ["newbie"] * 3,
            "prompt": ["add the numbers case 0", "sort the list case 2", "fresh"],
            "score": [1.0, 1.0, 1.0],
        }
    )
    assert m.add_history(new) is m
    assert m.n_history_ == small_log.height + 3 and "newbie" in m.index_.policies
    p = m.predict(pl.DataFrame({"policy": ["newbie"], "prompt": ["add the numbers case 4"]}))
    assert p[0] > 0.9 and m.head_.params == head_params


def test_add_history_of_the_same_rows_twice_counts_them_twice(make_model, small_log):
    # documented: appended, never matched against the history (duplicate rows are observations)
    m = make_model(head="prior").fit(small_log)
    rows = pl.DataFrame({"policy": ["newbie"] * 2, "prompt": ["a", "b"], "score": [1.0, 0.0]})
    once = m.add_history(rows).n_history_
    assert m.add_history(rows).n_history_ == once + 2 == small_log.height + 4
    assert (m.index_.policy == m.index_.policies.index("newbie")).sum() == 4


def test_a_policy_added_with_few_outcomes_is_shrunk_toward_the_pool(make_model):
    rng = np.random.default_rng(3)
    rows = [
        {"policy": f"pol{p}", "prompt": f"task {j}", "score": float(rng.uniform() < 0.45 + 0.05 * p)}
        for p in range(4)
        for j in range(60)
    ]
    m = make_model(head="prior").fit(pl.DataFrame(rows))
    lucky = pl.DataFrame({"policy": ["lucky"] * 4, "prompt": [f"task {j}" for j in range(4)], "score": [1.0] * 4})
    m.add_history(lucky)
    p = m.predict(pl.DataFrame({"policy": ["lucky", "pol3"], "prompt": ["task 9", "task 9"]}))
    pol3 = np.mean([r["score"] for r in rows if r["policy"] == "pol3"])
    # four straight successes do not make it the best policy by far; a long history keeps its mean
    assert 0.5 < p[0] < 0.8
    assert p[1] == pytest.approx(pol3, abs=0.02)


def test_failed_add_history_leaves_the_model_exactly_as_before(make_model, small_log, monkeypatch, guarantees):
    import v0lite.index as index_mod

    m = make_model().fit(small_log)
    probe = pl.DataFrame({"policy": ["pol0", "pol2"], "prompt": ["brand new prompt", "sort the list case 3"]})
    before = m.predict(probe)
    index_before, n_before = m.index_, m.n_history_
    real_init = index_mod.HistoryIndex.__init__

    def boom(self, *a, **k):  # the new index is half-built when this fires
        real_init(self, *a, **k)
        raise RuntimeError("injected fault in add_history")

    monkeypatch.setattr(index_mod.HistoryIndex, "__init__", boom)
    new = pl.DataFrame({"policy": ["pol0", "zz"], "prompt": ["brand new prompt", "other"], "score": [1.0, 0.0]})
    guarantees.tick("faults injected")
    with pytest.raises(RuntimeError, match="injected"):
        m.add_history(new)
    monkeypatch.undo()
    assert m.index_ is index_before and m.n_history_ == n_before
    np.testing.assert_array_equal(m.predict(probe), before)
    # an encoder fault midway too
    m._get_embedder().model.fail_after = 0
    guarantees.tick("faults injected")
    with pytest.raises(RuntimeError, match="injected"):
        m.add_history(pl.DataFrame({"policy": ["pol1"], "prompt": ["needs embedding"], "score": [1.0]}))
    m._get_embedder().model.fail_after = None
    np.testing.assert_array_equal(m.predict(probe), before)


def test_add_history_then_predict_equals_fit_on_everything_for_knn(make_model):
    """kNN and prior heads learn nothing at fit, so add_history == refit on the union: exactly on this small
    log (one exact search); on a bigger one faiss's float sums differ between the two indexes by ~1e-7
    (probe M, the demo log: 1.1e-7), as for the batch shape (docs/guarantees.md)."""
    log = make_log(seed=1)
    a, b = log.head(20), log.tail(log.height - 20)
    grown = make_model().fit(a).add_history(b)
    full = make_model().fit(log)
    X = log.drop("score")
    np.testing.assert_allclose(grown.predict(X), full.predict(X), atol=1e-12)


def test_step_rule_query_before_any_history_gets_global_mean(make_model):
    log = make_log(steps=True)
    m = make_model().fit(log.with_columns(pl.col("step") + 5))
    p = m.predict(pl.DataFrame({"policy": ["pol0"], "prompt": ["x"], "step": [0]}))
    assert p[0] == pytest.approx(log["score"].mean())


def test_exclude_own_prompt_changes_a_seen_prompt_only(make_model, small_log):
    m = make_model().fit(small_log)
    X = small_log.drop("score").head(4)
    assert np.isfinite(m.predict(X, exclude_own_prompt=True)).all()


# --- properties over random small logs -----------------------------------------------------------------

_PROMPTS = [f"{w} problem {i}" for w in ("add", "prove", "sort", "draw") for i in range(4)]


@st.composite
def _logs(draw):
    n = draw(st.integers(1, 25))
    pol = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    pr = draw(st.lists(st.sampled_from(_PROMPTS), min_size=n, max_size=n))
    sc = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(0, 1), min_size=n, max_size=n))
    cols = {"policy": pol, "prompt": pr, "score": sc}
    if draw(st.booleans()):
        cols["step"] = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    return pl.DataFrame(cols)


_ENC = FakeEncoder()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    log=_logs(),
    head=st.sampled_from(HEADS),
    perm_seed=st.integers(0, 2**16),
    queries=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(_PROMPTS + ["unseen prompt"])),
        min_size=1,
        max_size=8,
    ),
)
def test_predictions_are_finite_one_per_row_order_preserving_and_history_order_free(
    guarantees, log, head, perm_seed, queries
):
    guarantees.tick("property examples run")
    known = set(log["policy"].to_list())
    Q = pl.DataFrame({"policy": [q[0] for q in queries], "prompt": [q[1] for q in queries]})
    if "step" in log.columns:
        Q = Q.with_columns(pl.Series("step", np.arange(len(Q)) % 4))
    m = V0Regressor(head=head, encoder=_ENC, cache_dir=False, k=4, fallback="global_mean").fit(log)
    p = m.predict(Q)
    assert p.shape == (len(Q),) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    # order-preserving: predicting a permuted batch permutes the predictions
    qperm = np.random.default_rng(perm_seed).permutation(len(Q))
    np.testing.assert_allclose(m.predict(Q[qperm]), p[qperm], atol=1e-12)
    # row by row equals batched
    np.testing.assert_allclose([m.predict(Q[i : i + 1])[0] for i in range(len(Q))], p, atol=1e-12)
    # the history's row order does not matter, duplicates and ties included (fit puts the rows in one order)
    hperm = np.random.default_rng(perm_seed + 1).permutation(log.height)
    p2 = V0Regressor(head=head, encoder=_ENC, cache_dir=False, k=4, fallback="global_mean").fit(log[hperm]).predict(Q)
    np.testing.assert_allclose(p2, p, atol=1e-9)
    unknown = ~Q["policy"].is_in(list(known)).to_numpy()
    np.testing.assert_allclose(p[unknown], log["score"].mean(), atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(log=_logs(), perm_seed=st.integers(0, 2**16))
def test_knn_is_history_order_free_when_keys_are_unique(guarantees, log, perm_seed):
    guarantees.tick("property examples run")
    key = ["policy", "prompt"] + (["step"] if "step" in log.columns else [])
    log = log.unique(subset=key, keep="first", maintain_order=True)
    Q = log.drop("score")
    hperm = np.random.default_rng(perm_seed).permutation(log.height)
    for k in (2, 50):  # fewer neighbours than rows (ties broken by the rows' one order) and more
        m1 = V0Regressor(head="knn", encoder=_ENC, cache_dir=False, k=k).fit(log)
        m2 = V0Regressor(head="knn", encoder=_ENC, cache_dir=False, k=k).fit(log[hperm])
        np.testing.assert_allclose(m2.predict(Q), m1.predict(Q), atol=1e-9)


_FAST_HEADS = {
    "prior": None,
    "knn": None,
    "linear": None,
    "logistic": None,
    "ridge": None,
    "irt": {"max_epochs": 5, "dim": 8, "hidden": 32},
    "gbdt": {"n_estimators": 30},
    "transformer": {"max_epochs": 2, "d_model": 16, "n_layers": 1, "n_heads": 2, "proj_dim": 8},
    "ensemble": {
        "gbdt_params": {"n_estimators": 30},
        "transformer_params": {"max_epochs": 2, "d_model": 16, "n_layers": 1, "n_heads": 2, "proj_dim": 8},
    },
    "auto": {"gbdt_params": {"n_estimators": 30}},
}


@pytest.mark.parametrize("head", list(_FAST_HEADS))
def test_every_cpu_head_is_history_order_free(head, guarantees):
    """Predictions do not depend on the order of the fit log's rows nor of add_history's (new policies and more
    outcomes of known ones): every head, its folds and its subsamples see the rows in one order."""
    log = make_log(n_policies=4, n_prompts=40, steps=True, seed=1)
    prompts = sorted(log["prompt"].unique().to_list())
    held = set(prompts[::5])
    hist, Q = log.filter(~pl.col("prompt").is_in(held)), log.filter(pl.col("prompt").is_in(held))

    def model():
        return V0Regressor(head=head, head_params=_FAST_HEADS[head], encoder=_ENC, cache_dir=False, random_state=0)

    rng = np.random.default_rng(7)
    p = model().fit(hist).predict(Q)
    np.testing.assert_allclose(model().fit(hist[rng.permutation(hist.height)]).predict(Q), p, atol=1e-9)
    base = hist.filter(pl.col("policy") != "pol3")
    more = pl.concat([hist.filter(pl.col("policy") == "pol3"), Q.filter(pl.col("policy") == "pol0")])
    fitted = model().fit(base)
    a = fitted.add_history(more).predict(Q)
    b = model().fit(base).add_history(more[rng.permutation(more.height)]).predict(Q)
    np.testing.assert_allclose(b, a, atol=1e-9)
    guarantees.tick("property examples run", 2)


def test_data_errors_are_value_errors_for_sklearn():
    assert issubclass(DataError, ValueError)


def test_the_docstring_examples_run_as_written():
    import doctest

    import v0lite.estimator as E

    res = doctest.testmod(E, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted >= 5
