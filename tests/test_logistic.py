"""The per-policy logistic / ridge heads: exact solutions, CV, cold queries, new policies, persistence."""

import numpy as np
import polars as pl
import pytest
from conftest import brier, split, topic_log

from v0lite.exceptions import V0liteError
from v0lite.heads.logistic import fit_glm


def test_fit_glm_matches_a_reference_solver():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(300, 6))
    w = rng.normal(size=6)
    y = (rng.random(300) < 1 / (1 + np.exp(-(Z @ w)))).astype(float)
    lam = 3.0
    W, b, _, _ = fit_glm(Z, np.arange(300), np.zeros(300, np.int64), y, np.zeros(300), 1, lam, max_iter=500, tol=1e-14)
    ref = LogisticRegression(C=1 / lam, tol=1e-10, max_iter=1000).fit(Z, y)
    np.testing.assert_allclose(W[0], ref.coef_[0], atol=1e-4)
    np.testing.assert_allclose(b[0], ref.intercept_[0], atol=1e-4)


def test_identity_link_is_ridge():
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(200, 5))
    y = Z @ rng.normal(size=5) * 0.1 + 0.5 + rng.normal(0, 0.05, 200)
    W, b, _, _ = fit_glm(
        Z, np.arange(200), np.zeros(200, np.int64), y, np.zeros(200), 1, 2.0, link="identity", max_iter=200, tol=1e-12
    )
    Zc = Z - Z.mean(0)
    ref = np.linalg.solve(Zc.T @ Zc + 2.0 * np.eye(5), Zc.T @ (y - y.mean()))
    np.testing.assert_allclose(W[0], ref, atol=1e-5)


@pytest.mark.parametrize("head", ["logistic", "ridge"])
def test_captures_a_per_policy_effect_and_round_trips(head, make_model, tmp_path, fake_encoder):
    from v0lite.estimator import V0Regressor

    hist, test = split(topic_log())
    model = make_model(head=head).fit(hist)
    assert brier(model, test) < brier(make_model(head="prior").fit(hist), test)
    assert brier(model, test) < brier(make_model(head="linear").fit(hist), test)
    assert len(model.head_.alpha_) == 3
    model.save(tmp_path / "m")
    again = V0Regressor.load(tmp_path / "m", encoder=fake_encoder)
    np.testing.assert_array_equal(again.predict(test), model.predict(test))


def test_new_policy_is_solved_in_context(make_model):
    hist, test = split(topic_log(policies=("a", "b", "c", "d")))
    model = make_model(head="logistic").fit(hist.filter(pl.col("policy") != "d"))
    coef = model.head_.coef_.copy()
    model.add_history(hist.filter(pl.col("policy") == "d"))
    np.testing.assert_array_equal(model.head_.coef_, coef)  # no fitted parameter moved
    q = test.filter(pl.col("policy") == "d")
    prior = make_model(head="prior").fit(hist)
    assert brier(model, q) < brier(prior, q)  # its weights came from its own history
    np.testing.assert_array_equal(model.predict(q), model.predict(q))  # cached, same answer


def test_cold_query_is_close_to_a_refit_without_its_prompt(make_model):
    log = topic_log(n_prompts=400)
    prompts = sorted(log["prompt"].unique().to_list())
    held = prompts[:8]
    q = log.filter(pl.col("prompt").is_in(held))
    params = {"alphas": [0.1]}
    full = make_model(head="logistic", head_params=params).fit(log)
    refit = make_model(head="logistic", head_params=params).fit(log.filter(~pl.col("prompt").is_in(held)))
    cold = full.predict(q, exclude_own_prompt=True)
    warm = full.predict(q)
    ref = refit.predict(q)
    # closer to the refit than the plain prediction (the refit also re-standardises: not exact)
    assert np.abs(cold - ref).mean() < 0.75 * np.abs(warm - ref).mean()


def test_bad_alphas_are_refused(make_model):
    with pytest.raises(V0liteError, match="alphas"):
        make_model(head="logistic", head_params={"alphas": [0.0]}).fit(topic_log(n_prompts=20))


@pytest.mark.parametrize("select", ["choice", "pairwise"])
def test_routing_selection_takes_the_best_alpha_by_its_score(select, make_model):
    from v0lite.heads._oof import choice_accuracy, pairwise_accuracy

    model = make_model(head="logistic", head_params={"select": select, "alphas": [1e-3, 0.1, 30.0]})
    model.fit(topic_log(n_prompts=120))
    head = model.head_
    assert len(head.cv_choice_) == 3 and np.all(head.alpha_ == head.alpha_[0])  # one alpha for every policy
    assert head.alpha_[0] == [1e-3, 0.1, 30.0][int(np.nanargmax(head.cv_choice_))]
    # the recorded curve is the score of the out-of-fold predictions at the chosen alpha
    score = choice_accuracy if select == "choice" else pairwise_accuracy
    idx = model.index_
    got = score(idx.score, head.oof_, idx.prompt_row, idx.policy, idx.step)
    assert got == pytest.approx(np.nanmax(head.cv_choice_))


def test_bad_select_is_refused(make_model):
    with pytest.raises(V0liteError, match="'pairwise'"):
        make_model(head="logistic", head_params={"select": "argmax"}).fit(topic_log(n_prompts=20))
