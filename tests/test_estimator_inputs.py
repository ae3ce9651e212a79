"""The estimator's inputs and parameters: tiny logs, zero-row queries, the query columns it reads, head
parameters checked at fit, and saved parameters that are the fitted ones."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.model_selection import GroupKFold

from tests.conftest import FakeEncoder, make_log
from tests.test_estimator import _FAST_HEADS, _xy
from v0lite.estimator import V0Regressor
from v0lite.exceptions import DataError, V0liteError, V0liteWarning


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


def test_an_unknown_policy_written_like_a_known_one_is_named(make_model, small_log):
    """'POL1', 'pol1 ' or a full-width 'pol１' for a history's 'pol1': the error asks whether it was meant,
    and under the fallback (which answers for it) a warning says so; a truly new name is left alone."""
    from v0lite.exceptions import UnknownPolicyError, V0liteWarning

    m = make_model().fit(small_log)
    for name in ("POL1", "pol1 ", "pol\uff11"):
        q = pl.DataFrame({"policy": [name], "prompt": ["x"]})
        with pytest.raises(UnknownPolicyError, match="Did you mean 'pol1'"):
            m.predict(q)
        with pytest.warns(V0liteWarning, match=r"differ from a known one only by case.*'pol1'"):
            m.set_params(fallback="global_mean").predict(q)
        m.set_params(fallback="error")
    with pytest.raises(UnknownPolicyError) as err:
        m.predict(pl.DataFrame({"policy": ["brand-new"], "prompt": ["x"]}))
    assert "Did you mean" not in str(err.value)


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


@pytest.mark.filterwarnings("ignore:.*policy names have leading or trailing spaces")
def test_suggest_prompts_takes_a_padded_name_the_model_holds(make_model, small_log):
    from v0lite.exceptions import ParameterError

    # every other row's policy padded: 'pol0 ' is a policy of its own, which the model holds
    even = pl.int_range(pl.len()) % 2 == 0
    log = small_log.with_columns(pl.when(even).then(pl.col("policy") + " ").otherwise(pl.col("policy")).alias("policy"))
    m = make_model().fit(log)
    prompts = small_log["prompt"].unique(maintain_order=True).to_list()[:6]
    assert "pol0 " in m.index_.policies
    assert len(m.suggest_prompts("pol0 ", prompts, 2)) == 2
    with pytest.raises(ParameterError, match=r"a padded name would name another policy than 'pol9'"):
        m.suggest_prompts("pol9 ", prompts, 2)  # a padded name it does not hold is still refused


def test_y_with_none_a_y_generator_and_row_dicts_say_what_and_how_to_fix(make_model, guarantees):
    X = pl.DataFrame({"policy": ["a", "b", "c"], "prompt": ["x", "y", "z"]})
    with pytest.raises(DataError, match=r"column 'score', row 1: value None means the row has no outcome"):
        make_model().fit(X, [1.0, None, 0.5])
    with pytest.raises(DataError, match=r"column 'score', row 1: value None"):
        make_model().fit(X, np.array([1.0, None, 0.5], dtype=object))
    with pytest.raises(DataError, match=r"y must be a list or array, not a generator .* Fix: pass list\(y\)"):
        make_model().fit(X, (v for v in [1.0, 0.0, 0.5]))
    rows = X.with_columns(score=pl.lit(1.0)).to_dicts()
    with pytest.raises(DataError, match=r"list of 3 row dicts: pl\.DataFrame\(rows\) makes them one frame"):
        make_model().fit(rows)
    guarantees.tick("bad-input cases tried", 4)


def test_a_known_name_written_another_way_is_warned_about_as_a_new_policy(make_model, small_log):
    """suggest_prompts and add_history read 'POL1' (or 'pol１') as a new policy: a warning names 'pol1'."""
    from v0lite.exceptions import V0liteWarning

    m = make_model().fit(small_log)
    prompts = small_log["prompt"].unique(maintain_order=True).to_list()[:6]
    said = r"'POL1' differs from the known 'pol1' only by case, spaces or Unicode width: it is read as a new policy"
    with pytest.warns(V0liteWarning, match=said + r"\. Fix: write the name as the history does"):
        m.suggest_prompts("POL1", prompts, 2)
    rows = pl.DataFrame({"policy": ["POL1", "pol\uff12", "pol0"], "prompt": ["x", "y", "z"], "score": [1.0, 0.0, 1.0]})
    with pytest.warns(V0liteWarning, match=said + r" \(1 more names like it: \['pol\uff12'\]\)"):
        m.add_history(rows)
    assert "POL1" in m.index_.policies  # still added as it was written: the name may be meant
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known name, a truly new one, or the new name again: no warning
        m.suggest_prompts("pol1", [f"a prompt pol1 never answered {i}" for i in range(6)], 2)
        m.suggest_prompts("brand-new", prompts, 2)
        m.add_history(rows.head(1))


def test_suggest_prompts_given_a_frame_says_which_column_to_pass(make_model, small_log):
    m = make_model().fit(small_log)
    with pytest.raises(DataError, match=r"prompts is a DataFrame .*; pass its 'prompt' column \(df\['prompt'\]\)"):
        m.suggest_prompts("pol1", small_log.head(6), 2)
    with pytest.raises(DataError, match=r"prompts is a DataFrame .*; pass its 'prompt' column"):
        m.suggest_prompts("pol1", small_log.head(6).to_pandas(), 2)


def test_add_history_without_a_step_files_rows_at_the_policys_latest_checkpoint(make_model):
    """Issue: rows added without a step were filed at step 0, before every checkpoint of a policy fitted at
    steps 0-2 (knn then read them as its oldest evidence, and a step-0 query read them). They now go to
    the policy's latest checkpoint, where a query without a step reads it; a new or static policy: step 0."""
    log = make_log(steps=True)
    rows = log.filter(pl.col("policy") == "pol1").head(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", V0liteWarning)
        model = make_model().fit(log).add_history(rows.drop("step"))
        at_latest = make_model().fit(log).add_history(rows.with_columns(step=pl.lit(2, pl.Int64)))
        queries = log.filter(pl.col("policy") == "pol1")
        for q in (queries, queries.drop("step")):
            assert np.array_equal(model.predict(q), at_latest.predict(q))
        model.add_history(rows.drop("step").with_columns(policy=pl.lit("newcomer")))
        static = make_model().fit(log.drop("step")).add_history(rows.drop("step"))
    added = model.index_.step[log.height : log.height + 3]
    assert added.tolist() == [2, 2, 2] and model.index_.step[-3:].tolist() == [0, 0, 0]  # newcomer: its one step
    assert static.n_history_ == log.height + 3 and set(static.index_.step.tolist()) == {0}
