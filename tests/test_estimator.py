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
from v0lite.exceptions import DataError, NotFittedError, V0liteError

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
    """kNN and prior heads learn nothing at fit, so add_history == refit on the union."""
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


# --- issue 27: run-time settings are not saved; encoders are known by their files -------------------------


def _edit_meta(folder, edit):
    import json

    from v0lite.persist import _meta_digest

    meta = json.loads((folder / "meta.json").read_text())
    edit(meta)
    meta["meta_sha256"] = _meta_digest(meta)
    (folder / "meta.json").write_text(json.dumps(meta))


def test_cache_dir_is_not_saved_and_an_old_folders_is_ignored(tmp_path, small_log, monkeypatch, guarantees):
    import json

    guarantees.tick("bad-input cases tried")
    m = V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=tmp_path / "fit-cache", show_progress_bar=True)
    m.fit(small_log).save(tmp_path / "m")
    params = json.loads((tmp_path / "m" / "meta.json").read_text())["params"]
    assert "cache_dir" not in params and "show_progress_bar" not in params
    # a folder written before this rule (or edited) names a cache: loading ignores it
    elsewhere = tmp_path / "not-yours"
    _edit_meta(tmp_path / "m", lambda meta: meta["params"].update(cache_dir=str(elsewhere)))
    monkeypatch.setenv("V0LITE_CACHE", str(tmp_path / "env-cache"))
    back = V0Regressor.load(tmp_path / "m", encoder=FakeEncoder())
    assert back.cache_dir is None and back.show_progress_bar is False
    back.predict(pl.DataFrame({"policy": ["pol0"], "prompt": ["a brand new prompt"]}))
    assert not elsewhere.exists() and list((tmp_path / "env-cache").rglob("shard-*.npz"))
    mine = V0Regressor.load(tmp_path / "m", encoder=FakeEncoder(), cache_dir=tmp_path / "mine")
    mine.predict(pl.DataFrame({"policy": ["pol0"], "prompt": ["another new prompt"]}))
    assert list((tmp_path / "mine").rglob("shard-*.npz"))


def _encoder_folder(path, weights=b"weights v1"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(weights)
    return path


def test_a_relative_encoder_path_is_saved_resolved(tmp_path, small_log, fake_minilm, monkeypatch, guarantees):
    import json

    guarantees.tick("bad-input cases tried")
    _encoder_folder(tmp_path / "work" / "enc")
    monkeypatch.chdir(tmp_path / "work")
    m = V0Regressor(head="knn", encoder="enc").fit(small_log)
    m.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "meta.json").read_text())["params"]["encoder"] == str(tmp_path / "work" / "enc")
    q = pl.DataFrame({"policy": ["pol0"], "prompt": ["a new prompt"]})
    expected = m.predict(q)
    monkeypatch.chdir(tmp_path)  # another working folder: "enc" names nothing here
    np.testing.assert_array_equal(V0Regressor.load(tmp_path / "m").predict(q), expected)


def test_an_encoder_folder_changed_after_fit_is_refused(tmp_path, small_log, fake_minilm, guarantees):
    """Fine-tuned into the same folder: new prompts would get the new encoder's vectors beside the history's
    old ones. Predicting refuses, naming the fix; the CLI names --encoder, which predict has."""
    from v0lite.cli import main
    from v0lite.exceptions import V0liteError

    guarantees.tick("faults injected")
    enc = _encoder_folder(tmp_path / "enc")
    V0Regressor(head="knn", encoder=str(enc)).fit(small_log).save(tmp_path / "m")
    _encoder_folder(enc, b"weights v2, fine-tuned")
    q = pl.DataFrame({"policy": ["pol0"], "prompt": ["a new prompt"]})
    with pytest.raises(V0liteError, match=r"not the one this model was fitted with.*Fix: refit"):
        V0Regressor.load(tmp_path / "m").predict(q)
    q.write_ndjson(tmp_path / "q.jsonl")
    args = [
        "predict",
        str(tmp_path / "q.jsonl"),
        "--model-dir",
        str(tmp_path / "m"),
        "--out",
        str(tmp_path / "o.jsonl"),
    ]
    assert main(args) == 1
    # the original encoder, moved elsewhere: the same files, so predict accepts it with --encoder
    _encoder_folder(tmp_path / "backup", b"weights v1")
    assert main([*args, "--encoder", str(tmp_path / "backup"), "-q"]) == 0


def test_predict_encoder_hint_names_a_flag_predict_has(tmp_path, small_log, fake_minilm, capsys, monkeypatch):
    from v0lite.cli import main

    enc = _encoder_folder(tmp_path / "enc")
    V0Regressor(head="knn", encoder=str(enc)).fit(small_log).save(tmp_path / "m")
    _encoder_folder(enc, b"weights v2")
    pl.DataFrame({"policy": ["pol0"], "prompt": ["new"]}).write_ndjson(tmp_path / "q.jsonl")
    main(["predict", str(tmp_path / "q.jsonl"), "--model-dir", str(tmp_path / "m"), "--out", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err
    assert "Fix:" in err and "--encoder PATH" in err and "encoder=" not in err


@pytest.mark.parametrize(
    "y, kind",
    [
        (lambda y: [str(v) for v in y], "text"),
        (lambda y: np.array([str(v) for v in y]), "text"),
        (lambda y: pl.Series([str(v) for v in y]), "text"),
        (lambda y: pd.Series([str(v) for v in y]), "text"),
        (lambda y: [bool(v > 0.5) for v in y], "booleans"),
        (lambda y: np.asarray(y) > 0.5, "booleans"),
        (lambda y: pl.Series(y > 0.5), "booleans"),
    ],
)
def test_y_as_text_or_booleans_is_refused_as_files_are(make_model, small_log, guarantees, y, kind):
    from v0lite.exceptions import DataError

    guarantees.tick("bad-input cases tried")
    X, yy = _xy(small_log)
    with pytest.raises(DataError, match=rf"y must be numeric, found {kind}.*Fix"):
        make_model().fit(X, y(yy))


def test_an_encoder_returning_nan_during_fit_names_the_log_row(small_log, guarantees):
    from v0lite.exceptions import V0liteError

    class NaNOn(FakeEncoder):
        model_id = "nan-on-sort"

        def encode(self, texts):
            out = super().encode(texts)
            out[["sort the list case 6" == t for t in texts]] = np.nan
            return out

    guarantees.tick("bad-input cases tried")
    rows = small_log["prompt"].to_list()
    with pytest.raises(
        V0liteError, match=rf"column 'prompt', row {rows.index('sort the list case 6')}: encoder 'nan-on-sort'"
    ):
        V0Regressor(head="knn", encoder=NaNOn(), cache_dir=False).fit(small_log)


def test_an_encoder_of_another_size_at_predict_is_an_error_naming_the_row(tmp_path, small_log, guarantees):
    """Loaded with an encoder object whose vectors are not the history's size: an error, not a crash."""
    from v0lite.exceptions import V0liteError

    class Short(FakeEncoder):
        def encode(self, texts):
            return super().encode(texts)[:, :32]

    guarantees.tick("bad-input cases tried")
    V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False).fit(small_log).save(tmp_path / "m")
    back = V0Regressor.load(tmp_path / "m", encoder=Short(), cache_dir=False)
    q = pl.DataFrame({"policy": ["pol0", "pol1"], "prompt": ["sort the list case 1", "a new prompt"]})
    with pytest.raises(
        V0liteError, match=r"column 'prompt', row 1: encoder 'fake-ngram-64' returned 32-d vectors.*64-d"
    ):
        back.predict(q)


def test_device_reaches_the_embedder_and_is_not_saved(make_model, small_log, tmp_path):
    from v0lite.estimator import V0Regressor

    model = make_model(device="cpu").fit(small_log)
    assert model._get_embedder().device == "cpu"
    model.save(tmp_path / "m")
    meta = (tmp_path / "m" / "meta.json").read_text()
    assert '"device"' not in meta  # the machine's setting, not the model's
    again = V0Regressor.load(tmp_path / "m", encoder=model.encoder, device="cpu")
    assert again.device == "cpu" and again._get_embedder().device == "cpu"
    assert V0Regressor.load(tmp_path / "m", encoder=model.encoder).device is None


# --- tiny logs, parameters, query columns (probe E) ----------------------------------------------------------


@pytest.mark.parametrize("head", ["gbdt", "transformer", "ensemble"])
def test_a_learned_head_on_one_prompt_says_what_the_log_needs(make_model, head, guarantees):
    guarantees.tick("bad-input cases tried", 2)
    one_row = pl.DataFrame({"policy": ["a"], "prompt": ["What is 2+2?"], "score": [1.0]})
    one_prompt = pl.DataFrame({"policy": ["a", "b", "c"], "prompt": ["What is 2+2?"] * 3, "score": [1.0, 0.0, 1.0]})
    for log in (one_row, one_prompt):
        with pytest.raises(DataError, match=rf"head '{head}': the history has 1 distinct prompt.*Fix:.*head='knn'"):
            make_model(head=head, head_params=_FAST_HEADS[head]).fit(log)


def test_auto_on_a_one_row_log_fits_what_it_can(make_model):
    m = make_model(head="auto").fit(pl.DataFrame({"policy": ["a"], "prompt": ["What is 2+2?"], "score": [1.0]}))
    assert set(m.head_.skipped_) == {"gbdt", "transformer"}
    assert m.predict(pl.DataFrame({"policy": ["a"], "prompt": ["What is 3+3?"]}))[0] == pytest.approx(1.0)


def test_the_unknown_policy_error_names_the_policy_of_the_row_it_cites(make_model, small_log):
    m = make_model().fit(small_log)
    q = pl.DataFrame({"policy": ["pol0", "yolo", "abc"], "prompt": ["x", "y", "z"]})
    with pytest.raises(V0liteError, match=r"row 1: policy 'yolo' has no history \(2 unknown"):
        m.predict(q)


def test_numpy_scalar_hyperparameters_save_as_json_numbers(make_model, small_log, tmp_path, fake_encoder):
    from sklearn.model_selection import GridSearchCV

    from v0lite.metrics import neg_brier_scorer

    X, y = _xy(small_log)
    gs = GridSearchCV(make_model(head="knn"), {"k": np.array([2, 4])}, cv=GroupKFold(2), scoring=neg_brier_scorer)
    best = gs.fit(X, y, groups=X["prompt"].to_numpy()).best_estimator_
    assert isinstance(best.k, np.integer)
    models = {
        "gs": best,
        "k": make_model(head="knn", k=np.int64(5)).fit(small_log),
        "hp": make_model(head="knn", head_params={"temperature": np.float32(0.25), "alpha": np.float64(2)}),
    }
    models["hp"].fit(small_log)
    for name, m in models.items():
        m.save(tmp_path / name)
        back = V0Regressor.load(tmp_path / name, encoder=fake_encoder)
        np.testing.assert_array_equal(back.predict(X), m.predict(X))
        assert type(back.head_.params["k"]) is int and type(back.head_.params["temperature"]) is float


@pytest.mark.parametrize("k", [True, np.bool_(True), "cv", 0])
def test_k_is_a_positive_integer_and_cv_goes_through_head_params(make_model, small_log, k, guarantees):
    guarantees.tick("bad-input cases tried")
    hint = r".*head_params=\{'k': 'cv'\}" if k == "cv" and isinstance(k, str) else ""
    with pytest.raises(V0liteError, match=rf"k must be a positive integer, got .*Fix: pass e.g. k=32{hint}"):
        make_model(head="knn", k=k).fit(small_log)
    assert make_model(head="knn", head_params={"k": "cv"}).fit(small_log).head_.k_ >= 1


@pytest.mark.parametrize(
    "head, params, pattern",
    [
        ("knn", {"temperature": 0.0}, r"head_params\['temperature'\] of the 'knn' head must be a number > 0, got 0.0"),
        ("knn", {"alpha": -1.0}, r"head_params\['alpha'\] of the 'knn' head must be a number > 0, got -1.0"),
        ("knn", {"k": 2.5}, r"head_params\['k'\] of the 'knn' head must be a positive integer or 'cv'"),
        ("knn", {"foo": 1}, r"the 'knn' head has no parameter 'foo'. Fix: use only its parameters \['k', "),
        ("linear", {"alpha": float("nan")}, r"head_params\['alpha'\] = nan holds a non-finite number"),
        ("linear", {"alpha": 0}, r"head_params\['alpha'\] of the 'linear' head must be a number > 0"),
        ("gbdt", {"learning_rate": float("inf")}, r"head_params\['learning_rate'\] = inf holds a non-finite"),
        ("prior", {"k": 3}, r"the 'prior' head has no parameter 'k'. Fix: use only its parameters \[\]"),
        ("knn", [("k", 3)], r"head_params must be a dict of parameter names"),
        ("gbdt", {"learning_rate": 0}, r"\['learning_rate'\] of the 'gbdt' head must be a number > 0, got 0"),
        ("gbdt", {"num_leaves": 1}, r"\['num_leaves'\] of the 'gbdt' head must be an integer >= 2, got 1"),
        ("gbdt", {"min_child_samples": -1}, r"\['min_child_samples'\] of the 'gbdt' head must be an integer >= 0"),
        ("gbdt", {"max_rows": 0}, r"\['max_rows'\] of the 'gbdt' head must be an integer >= 1, got 0"),
        ("gbdt", {"n_estimators": 2.5}, r"\['n_estimators'\] of the 'gbdt' head must be an integer >= 1, got 2.5"),
        ("gbdt", {"n_folds": 1}, r"\['n_folds'\] of the 'gbdt' head must be an integer >= 2, got 1"),
        ("gbdt", {"k": 0}, r"\['k'\] of the 'gbdt' head must be an integer >= 1, got 0"),
        ("gbdt", {"pca_components": -1}, r"\['pca_components'\] of the 'gbdt' head must be an integer >= 0"),
        ("logistic", {"alphas": []}, r"\['alphas'\] of the 'logistic' head must be a non-empty list of numbers > 0"),
        ("logistic", {"n_folds": 0}, r"\['n_folds'\] of the 'logistic' head must be an integer >= 2, got 0"),
        ("ridge", {"alphas": [0.1, -1.0]}, r"\['alphas'\] of the 'ridge' head must be a non-empty list"),
        ("ridge", {"select": "auc"}, r"\['select'\] of the 'ridge' head must be 'loss', 'choice' or 'pairwise'"),
    ],
)
def test_head_params_are_checked_at_fit(make_model, small_log, head, params, pattern, guarantees):
    from v0lite.exceptions import ParameterError

    guarantees.tick("bad-input cases tried")
    with pytest.raises(ParameterError, match=pattern):
        make_model(head=head, head_params=params).fit(small_log)


def test_a_nan_from_a_head_is_an_error_not_the_history_mean(make_model, small_log, monkeypatch):
    m = make_model(head="knn").fit(small_log)
    monkeypatch.setattr(
        type(m.head_), "predict", lambda self, index, queries, exclude="same_step": np.full(len(queries), np.nan)
    )
    with pytest.raises(V0liteError, match=r"row 0: the 'knn' head predicted NaN for policy 'pol0' \(1 such rows\)"):
        m.predict(pl.DataFrame({"policy": ["pol0"], "prompt": ["x"]}))
    # what stays documented: a policy with no eligible row yet (steps), and fallback="global_mean"
    steps = make_model(head="knn").fit(make_log(steps=True).with_columns(pl.col("step") + 5))
    monkeypatch.undo()
    assert steps.predict(pl.DataFrame({"policy": ["pol0"], "prompt": ["x"], "step": [0]}))[0] == pytest.approx(
        make_log()["score"].mean()
    )


def test_rows_weigh_alike_whatever_n(make_model):
    """What README's column table says of n: validated and saved, read by no head (no weighting)."""
    x, y = "What is 17 * 23?", "Prove Fermat's last theorem."
    agg = pl.DataFrame({"policy": ["p", "p"], "prompt": [x, y], "score": [0.75, 0.0], "n": [8, 1]})
    m = make_model(head="prior").fit(agg)
    assert m.predict(pl.DataFrame({"policy": ["p"], "prompt": ["z"]}))[0] == pytest.approx(0.375)  # not 6/9
    assert m.index_.n.tolist() == [8, 1] or sorted(m.index_.n.tolist()) == [1, 8]


def test_warm_refuses_a_lone_surrogate_before_the_encoder(make_model, small_log, guarantees):
    """Issue: warm(["\\ud800"]) reached the tokenizer (a raw TypeError); predict names it."""
    guarantees.tick("bad-input cases tried")
    m = make_model().fit(small_log)
    with pytest.raises(DataError, match=r"prompts, row 1: .* lone UTF-16 surrogate.*Fix"):
        m.warm(["fine", "bad \ud800 text"])


@pytest.mark.parametrize("bad", ["hi there", ["ok", ""], ["ok", None], 5])
def test_warm_checks_its_prompts_as_predict_does(make_model, small_log, bad, guarantees):
    guarantees.tick("bad-input cases tried")
    m = make_model().fit(small_log)
    m._get_embedder().model.fail_after = 0  # nothing may reach the encoder
    with pytest.raises(DataError, match=r"prompts(, row 1: .* is not a non-empty text| must be a list)"):
        m.warm(bad)


def test_predict_checks_only_the_columns_it_reads(make_model, small_log, guarantees):
    guarantees.tick("bad-input cases tried", 4)
    m = make_model().fit(small_log)
    q = small_log.drop("score").head(2)
    p = m.predict(q)
    extra = q.with_columns(score=pl.lit(-1.0), n=pl.lit(0), cost=pl.lit(-1.0))
    np.testing.assert_array_equal(m.predict(extra), p)
    np.testing.assert_array_equal(m.predict(q.to_pandas().assign(note=pd.Series([1, "x"], dtype=object))), p)
    with pytest.raises(DataError, match=r"column 'step', row 1: value 1.5 is not an integer"):
        m.predict(q.with_columns(step=pl.Series([0.0, 1.5])))


def test_fit_with_a_score_column_and_y_is_refused(make_model, small_log, guarantees):
    guarantees.tick("bad-input cases tried")
    with pytest.raises(DataError, match=r"X has a 'score' column and y was given too.*Fix: pass one of them"):
        make_model().fit(small_log, np.zeros(small_log.height))


def test_a_model_saved_with_an_encoder_object_asks_for_it_back(make_model, small_log, tmp_path, guarantees):
    guarantees.tick("bad-input cases tried")
    m = make_model().fit(small_log)
    m.save(tmp_path / "m")
    back = V0Regressor.load(tmp_path / "m")  # no encoder=: history prompts still predict
    q = small_log.drop("score").head(3)
    np.testing.assert_array_equal(back.predict(q), m.predict(q))
    with pytest.raises(V0liteError, match=r"custom encoder object \('fake-ngram-64'\).*encoder=<the object>"):
        back.predict(pl.DataFrame({"policy": ["pol0"], "prompt": ["a prompt it never embedded"]}))
    np.testing.assert_array_equal(V0Regressor.load(tmp_path / "m", encoder=FakeEncoder()).predict(q), m.predict(q))


# --- the fitted encoder, zero-row queries, saved parameters, int policy names ----------------------


class _OtherEncoder(FakeEncoder):
    model_id = "other-encoder"

    def encode(self, texts):
        return super().encode([t[::-1] for t in texts])


def test_an_encoder_other_than_the_fitted_one_is_refused(tmp_path, small_log, guarantees):
    """load(path, encoder=<another>) or set_params(encoder=<another>) after fit: new prompts would be embedded
    by another encoder than the history's. Refused, naming both ids; the fitted encoder (or one with its id)
    still works."""
    guarantees.tick("bad-input cases tried", 3)
    q = pl.DataFrame({"policy": ["pol0"], "prompt": ["a prompt never seen"]})
    m = V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False).fit(small_log)
    want = m.predict(q)
    m.save(tmp_path / "m")
    other = V0Regressor.load(tmp_path / "m", encoder=_OtherEncoder(), cache_dir=False)
    with pytest.raises(V0liteError, match=r"'other-encoder' is not the one .*'fake-ngram-64'.*Fix: refit"):
        other.predict(q)
    with pytest.raises(V0liteError, match="other-encoder"):
        other.warm(["another new prompt"])
    same = V0Regressor.load(tmp_path / "m", encoder=FakeEncoder(), cache_dir=False)  # an equivalent encoder
    np.testing.assert_allclose(same.predict(q), want)
    with pytest.raises(V0liteError, match="custom encoder object"):  # saved with an object: asks for it back
        V0Regressor.load(tmp_path / "m", cache_dir=False).predict(q)
    m.set_params(encoder=_OtherEncoder())
    with pytest.raises(V0liteError, match="'other-encoder' is not the one"):
        m.predict(q)


def test_another_object_without_model_id_is_refused_after_fit(small_log):
    class NoId:
        def __init__(self, salt):
            self.salt = salt

        def encode(self, texts):
            return FakeEncoder().encode([self.salt + t for t in texts])

    q = pl.DataFrame({"policy": ["pol0"], "prompt": ["a prompt never seen"]})
    enc = NoId("a")
    m = V0Regressor(head="knn", encoder=enc, cache_dir=False).fit(small_log)
    want = m.predict(q)
    m.set_params(encoder=NoId("b"))
    with pytest.raises(V0liteError, match="another object, and neither has a model_id"):
        m.predict(q)
    m.set_params(encoder=enc)
    np.testing.assert_array_equal(m.predict(q), want)


def test_unknown_policy_error_hints_at_cross_validation_folds(make_model, small_log):
    from v0lite.exceptions import UnknownPolicyError

    m = make_model().fit(small_log)
    with pytest.raises(UnknownPolicyError, match="in cross-validation, a training fold held none of its rows"):
        m.predict(pl.DataFrame({"policy": ["ghost"], "prompt": ["x"]}))
    assert "GroupKFold" in V0Regressor.__doc__ and "Cross-validation" in V0Regressor.__doc__


@pytest.mark.parametrize(
    "empty",
    [
        pl.DataFrame({"policy": [], "prompt": []}),
        pl.DataFrame(schema={"policy": pl.String, "prompt": pl.String, "step": pl.Int64}),
        pd.DataFrame({"policy": [], "prompt": []}),
        {"policy": [], "prompt": []},
    ],
    ids=["polars", "polars-typed", "pandas", "dict"],
)
def test_predict_on_zero_rows_is_an_empty_array(make_model, small_log, empty):
    m = make_model().fit(small_log)
    out = m.predict(empty)
    assert isinstance(out, np.ndarray) and out.shape == (0,) and out.dtype == np.float64
    with pytest.raises(DataError, match="column 'prompt'"):  # the columns are still required
        m.predict({"policy": []})


def test_fit_on_zero_rows_is_still_an_error(make_model):
    with pytest.raises(DataError, match="no rows"):
        make_model().fit(pl.DataFrame({"policy": [], "prompt": [], "score": []}))


def test_save_after_set_params_keeps_the_fitted_params(tmp_path, make_model, small_log):
    """set_params after fit changes the head only at the next fit: save writes the fitted params (and warns),
    so the loaded model's params and repr say what it is; a prediction setting (fallback) is saved as set."""
    from v0lite.exceptions import V0liteWarning

    m = V0Regressor(head="knn", k=8, encoder=FakeEncoder(), cache_dir=False).fit(small_log)
    q = small_log.head(5)
    want = m.predict(q)
    m.set_params(head="prior", k=3, fallback="global_mean")
    with pytest.warns(V0liteWarning, match=r"head='prior' \(fitted: 'knn'\).*k=3 \(fitted: 8\).*not saved"):
        m.save(tmp_path / "m")
    back = V0Regressor.load(tmp_path / "m", encoder=FakeEncoder(), cache_dir=False)
    params = back.get_params()
    assert (params["head"], params["k"], params["fallback"]) == ("knn", 8, "global_mean")
    assert "prior" not in repr(back) and type(back.head_).__name__ == type(m.head_).__name__
    np.testing.assert_array_equal(back.predict(q), want)
    import warnings

    with warnings.catch_warnings():  # unchanged params: no warning, the same folder
        warnings.simplefilter("error")
        back.save(tmp_path / "again")


def test_suggest_prompts_takes_an_int_policy_name_as_its_text(make_model, small_log):
    from v0lite.exceptions import ParameterError

    codes = {"pol0": 0, "pol1": 1, "pol2": 2}
    log = small_log.with_columns(pl.col("policy").replace_strict(codes, return_dtype=pl.Int64))
    m = make_model().fit(log)
    prompts = small_log["prompt"].unique(maintain_order=True).to_list()[:6]
    assert m.suggest_prompts(0, prompts, 2) == m.suggest_prompts("0", prompts, 2)
    assert m.suggest_prompts(np.int64(1), prompts, 2) == m.suggest_prompts("1", prompts, 2)
    with pytest.raises(ParameterError, match="policy must be a non-empty name"):
        m.suggest_prompts(True, prompts, 2)


def test_a_model_saved_when_a_sentence_transformer_was_known_by_its_class_still_predicts(
    tmp_path, small_log, stand_in_sentence_transformer
):
    """Before encoder objects had derived ids, a SentenceTransformer object's id was its class name: such a
    folder, loaded with the object, predicts new prompts (it was refused as 'another encoder')."""
    import json

    from tests.conftest import FakeEncoder
    from v0lite.persist import _meta_digest

    SentenceTransformer = stand_in_sentence_transformer
    st = SentenceTransformer("org/model-a")
    m = V0Regressor(head="knn", encoder=st, cache_dir=False).fit(small_log)
    assert m.encoder_id_ == "org/model-a"
    m.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    meta["encoder_id"] = "SentenceTransformer"  # as the version before wrote it
    meta["meta_sha256"] = _meta_digest(meta)
    (tmp_path / "m" / "meta.json").write_text(json.dumps(meta))
    q = pl.DataFrame({"policy": ["pol0"], "prompt": ["a prompt never seen"]})
    old = V0Regressor.load(tmp_path / "m", encoder=st)
    np.testing.assert_array_equal(old.predict(q), m.predict(q))

    class Other:  # another class without model_id is still another encoder
        def encode(self, texts, **_):
            return FakeEncoder().encode(texts)

    with pytest.raises(V0liteError, match="not the one this model was fitted with"):
        V0Regressor.load(tmp_path / "m", encoder=Other()).predict(q)
