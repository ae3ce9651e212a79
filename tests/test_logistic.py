"""The per-policy logistic / ridge heads: exact solutions, CV, cold queries, new policies, persistence."""

import numpy as np
import polars as pl
import pytest
from conftest import brier, make_log, split, thin_delta_log, topic_log

from v0lite.exceptions import V0liteError
from v0lite.heads.logistic import fit_glm


def test_fit_glm_matches_a_reference_solver():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(300, 6))
    w = rng.normal(size=6)
    y = (rng.random(300) < 1 / (1 + np.exp(-(Z @ w)))).astype(float)
    lam = 3.0
    args = (Z, np.arange(300), np.zeros(300, np.int64), y, np.zeros(300), 1, lam)
    W, b, _ = fit_glm(*args, max_iter=500, tol=1e-14, level_var=np.inf)  # a free intercept, as sklearn's
    ref = LogisticRegression(C=1 / lam, tol=1e-10, max_iter=1000).fit(Z, y)
    np.testing.assert_allclose(W[0], ref.coef_[0], atol=1e-4)
    np.testing.assert_allclose(b[0], ref.intercept_[0], atol=1e-4)
    # the default level prior N(0, LEVEL_VAR): the same solution as sklearn's on the intercept's column
    # scaled so that its L2 penalty is that prior (C = 1 / lam on every column)
    from v0lite.heads._deviation import LEVEL_VAR

    s = np.sqrt(lam * LEVEL_VAR)
    Wd, bd, _ = fit_glm(*args, max_iter=500, tol=1e-14)
    ref = LogisticRegression(C=1 / lam, tol=1e-10, max_iter=1000, fit_intercept=False).fit(np.c_[Z, np.full(300, s)], y)
    np.testing.assert_allclose(Wd[0], ref.coef_[0, :6], atol=1e-4)
    np.testing.assert_allclose(bd[0], ref.coef_[0, 6] * s, atol=1e-4)


def test_a_policy_whose_outcomes_are_all_one_gets_a_finite_level():
    """Separation: a policy with every outcome 1 had an unbounded intercept (p = 1 - 6e-8 at the iteration
    limit); its level prior keeps it where a Beta-smoothed mean would be (about 0.997 for 24 rows here)."""
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(24, 4))
    y = np.r_[np.ones(24), (rng.random(24) < 0.5).astype(float)]
    pol, pr = np.repeat([0, 1], 24), np.tile(np.arange(24), 2)
    off = np.r_[np.full(24, np.log(0.99 / 0.01)), np.zeros(24)]  # the offset of a mean of 1, clipped as offset_of does
    W, b, _ = fit_glm(Z, pr, pol, y, off, 2, 10.0, max_iter=200)
    p = 1 / (1 + np.exp(-(off[0] + b[0])))
    assert np.isfinite(b).all() and 0.99 < p < 0.9995, p


def test_identity_link_is_ridge():
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(200, 5))
    y = Z @ rng.normal(size=5) * 0.1 + 0.5 + rng.normal(0, 0.05, 200)
    W, b, _ = fit_glm(
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
    from v0lite.exceptions import ParameterError
    from v0lite.heads.logistic import LogisticHead, RidgeHead

    with pytest.raises(ParameterError, match="alphas"):
        make_model(head="logistic", head_params={"alphas": [0.0]}).fit(topic_log(n_prompts=20))
    # the head used directly (no estimator check before it) refuses them as a ParameterError too
    for params, match in [({"alphas": []}, "alphas"), ({"n_folds": 0}, "n_folds"), ({"n_folds": 2.5}, "n_folds")]:
        for cls in (LogisticHead, RidgeHead):
            with pytest.raises(ParameterError, match=match):
                cls(**params)._validate()


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


def test_exact_rows_is_the_solve_without_the_rows():
    from v0lite.heads._deviation import ExactRows

    rng = np.random.default_rng(0)
    n, d = 40, 5
    pr = rng.integers(0, 12, n)
    E = rng.normal(size=(12, d))
    X = np.column_stack([E[pr], np.ones(n)])
    st = rng.integers(0, 3, n)
    y = rng.random(n)
    pen = np.r_[np.full(d, 2.0), 0.0]

    def solve(keep):  # offsets: each step group's mean over the kept rows
        o = np.array([y[keep & (st == s)].mean() for s in st])
        Xk = X[keep]
        return np.linalg.solve(Xk.T @ Xk + np.diag(pen), Xk.T @ (y - o)[keep]), o

    full = np.ones(n, bool)
    beta, o = solve(full)
    ex = ExactRows(X, y, o, st, pr, st, X.T @ X + np.diag(pen), X.T @ (y - o))
    for k in range(12):
        S = ex.hidden(k, 0, "any_step")
        if not len(S):
            continue
        keep = full.copy()
        keep[S] = False
        b2, o2 = solve(keep)
        delta = np.array([(o2[st == s][0] - o[st == s][0]) if (keep & (st == s)).any() else 0.0 for s in range(3)])
        assert ex.linear(np.r_[E[k], 1.0], S, delta) == pytest.approx(np.r_[E[k], 1.0] @ b2, abs=1e-10)


@pytest.mark.parametrize("steps", [False, True])
def test_ridge_never_reads_a_hidden_rows_score_even_for_a_policy_with_few_rows(make_model, steps):
    # probe I item 1: the thin policy's own score came back exactly (0.0 / 1.0) under exclude_own_prompt
    # one penalty: the one chosen by CV is read from the policy's rows, the hidden one included (design.md)
    preds = []
    for v in (0.0, 1.0):
        log, p = thin_delta_log(v, steps)
        model = make_model(head="ridge", head_params={"alphas": [0.3]}).fit(log)
        q = {"policy": ["delta", "pol0"], "prompt": [p[0], p[0]]}
        cold = model.predict(pl.DataFrame(q), exclude_own_prompt=True)
        warm = model.predict(pl.DataFrame({**q, "step": [1, 0]})) if steps else cold  # same_step: its own step
        preds.append(np.r_[cold, warm])
    np.testing.assert_allclose(preds[0], preds[1], atol=1e-9)


@pytest.mark.parametrize("steps", [False, True])
@pytest.mark.parametrize("pool_prior", [True, False])  # False: the isotropic pull (fit_glm)
def test_ridge_added_policy_never_reads_a_hidden_rows_score(make_model, steps, pool_prior):
    # (the population's spread, which shrinks every policy's prior, reads every row: design.md)
    from conftest import make_log

    log = make_log(n_policies=3, n_prompts=30, steps=steps)
    p = log["prompt"].unique(maintain_order=True).to_list()
    preds = []
    for v in (0.0, 1.0):
        model = make_model(head="ridge", head_params={"pool_prior": pool_prior}).fit(log)
        new = {"policy": ["new"] * 4, "prompt": [p[0], p[0], p[1], p[2]], "score": [v, 1.0, 0.0, 1.0]}
        q = {"policy": ["new"] * 2, "prompt": [p[0], p[0]]}
        if steps:
            new["step"], q["step"] = [4, 5, 4, 5], [4, 5]
        model.add_history(pl.DataFrame(new))
        cold = model.predict(pl.DataFrame(q), exclude_own_prompt=True)  # every row of p[0] hidden
        warm = model.predict(pl.DataFrame(q))[:1] if steps else []  # same_step at step 4: its row is v's
        preds.append(np.r_[cold, warm])
    np.testing.assert_allclose(preds[0], preds[1], atol=1e-9)


def test_hiding_own_rows_exactly_leaves_prompts_outside_the_history_bit_identical(make_model, monkeypatch):
    # every benchmark figure is a prediction for prompts outside the history: the exact hiding must
    # not touch them. Compared with the head as it was before it (no exact hiding at all).
    log, p = thin_delta_log(1.0, steps=True)
    model = make_model(head="ridge").fit(log)
    model.add_history(
        pl.DataFrame({"policy": ["new"] * 2, "prompt": [p[0], p[1]], "score": [1.0, 0.0], "step": [3, 3]})
    )
    pols = ["pol0", "delta", "new"]
    q = pl.DataFrame({"policy": pols * 2, "prompt": ["never seen a"] * 3 + ["never seen b"] * 3, "step": [3, 2, 3] * 2})
    own = pl.DataFrame({"policy": ["delta", "new"], "prompt": [p[0], p[0]], "step": [1, 3]})
    now = [model.predict(f, exclude_own_prompt=e) for f in (q, q.drop("step"), own) for e in (False, True)]
    from v0lite.heads import _exact_rows, logistic

    for module in (logistic, _exact_rows):  # the head before the fix: no exact hiding
        monkeypatch.setattr(module, "hide_exactly", lambda *a, **k: None)
    model = make_model(head="ridge").fit(log)
    model.add_history(
        pl.DataFrame({"policy": ["new"] * 2, "prompt": [p[0], p[1]], "score": [1.0, 0.0], "step": [3, 3]})
    )
    before = [model.predict(f, exclude_own_prompt=e) for f in (q, q.drop("step"), own) for e in (False, True)]
    for a, b in zip(now[:4], before[:4]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(now[5], before[5])  # the fix does act on prompts of the history


def test_an_added_policys_level_prior_ends_at_the_fitted_policies_own():
    """At a fitted policy's size (t = 1) an added policy's level has the fitted ones' prior: N(0, LEVEL_VAR) under
    the logit, free under the identity link (the ridge's fitted intercept is unpenalised); below, it widens with t."""
    from v0lite.heads._deviation import LEVEL_VAR, _deviation_prior

    P = np.eye(3)
    assert _deviation_prior(P, 0.5, 2.0, 1.0)[1] == LEVEL_VAR
    assert _deviation_prior(P, 0.5, 2.0, 1.0, "identity")[1] >= 1e12
    widths = [_deviation_prior(P, 0.5, 2.0, t)[1] for t in (0.0, 0.5, 0.9, 0.99)]
    assert widths == sorted(widths) and widths[0] == 0.5 and widths[-1] == LEVEL_VAR


@pytest.mark.parametrize("head", ["logistic", "ridge"])
def test_a_fitted_policy_queried_before_its_first_step_is_answered_as_an_unseen_one(make_model, head):
    # probe E2 item 9: its weights, fitted on its step-3 rows, answered its step-0 queries (a flip of those
    # scores moved them by 0.65 here, 0.75 for the ridge); now the pool answers, as for a name it never saw
    from conftest import difficulty_log

    moved = []
    for flip in (False, True):
        log = difficulty_log(n_prompts=80).with_columns(step=pl.when(pl.col("policy") == "a").then(3).otherwise(0))
        if flip:
            log = log.with_columns(score=pl.when(pl.col("policy") == "a").then(1 - pl.col("score")).otherwise("score"))
        model = make_model(head=head, fallback="global_mean").fit(log)
        q = pl.DataFrame({"policy": "a", "prompt": sorted(set(log["prompt"]))[:20], "step": 0})
        got = model.predict(q)
        np.testing.assert_array_equal(got, model.predict(q.with_columns(policy=pl.lit("never seen"))))
        later = model.predict(q.with_columns(step=pl.lit(3)))  # from step 3 on, its own fitted weights
        assert np.abs(later - got).max() > 0.05
        moved.append(got)
    # what is left moves an unseen policy's answer alike: the pool's level, fitted on every row (0.12 / 0.15)
    assert np.abs(moved[0] - moved[1]).max() < 0.25


def test_in_context_solves_are_cached_once_per_eligible_cut(make_model):
    # probe E2 item 8: keyed by the query's raw step, 200 steps past an added policy's last row held 200
    # identical solves (238 MB at dim 384)
    from conftest import difficulty_log

    model = make_model(head="logistic").fit(difficulty_log(n_prompts=60))
    prompts = sorted(set(difficulty_log(n_prompts=60)["prompt"]))
    new = difficulty_log(n_prompts=60, seed=1).filter(pl.col("policy") == "b").head(40)
    model.add_history(new.with_columns(policy=pl.lit("new"), step=pl.Series(np.arange(40) // 10)))  # steps 0..3
    model.index_.__dict__.pop("_glm_context_cache", None)
    q = pl.DataFrame({"policy": "new", "prompt": [prompts[i % 60] for i in range(50)], "step": np.arange(4, 54)})
    got = model.predict(q)
    assert len(model.index_._glm_context_cache) == 1
    np.testing.assert_array_equal(got, model.predict(q.with_columns(step=pl.lit(4))))
    assert len(model.index_._glm_context_cache) == 1
    # a query between its steps reads the rows up to its last step at or before the query's: steps 1 and 2
    model.predict(q.head(3).with_columns(step=pl.Series([1, 2, 2])))
    assert len(model.index_._glm_context_cache) == 3


def _two_visits():
    """Every policy answers every prompt at steps 0 and 1, the second time with the opposite score."""
    log = make_log(3, 30, seed=4)
    return pl.concat([log.with_columns(step=pl.lit(0)), log.with_columns(step=pl.lit(1), score=1 - pl.col("score"))])


@pytest.mark.parametrize(
    "case, exclude_own_prompt, tol",
    [("steps", False, 0.02), ("static", True, 0.02), ("two visits", True, 0.003)],
)
def test_a_hidden_rows_prediction_is_the_refit_without_it(make_model, case, exclude_own_prompt, tol):
    # probe FL: the Gram-diagonal leverage reached 1.76 > 1, so the own-row correction was clamped and
    # pushed rows of the history to p = 1e-13 or 1 - 1e-13, often against their score (0.27 from the refit)
    log = _two_visits() if case == "two visits" else make_log(3, 40, steps=case == "steps", seed=3)
    params = {"alphas": [0.01]}
    full = make_model(head="logistic", head_params=params).fit(log)
    p = full.predict(log, exclude_own_prompt=exclude_own_prompt)
    assert ((p > 1e-3) & (p < 1 - 1e-3)).all()
    for i in range(0, log.height // 2, 10):
        row = log[i]
        own = (pl.col("policy") == row["policy"][0]) & (pl.col("prompt") == row["prompt"][0])
        if not exclude_own_prompt:
            own = own & (pl.col("step") == row["step"][0])
        ref = make_model(head="logistic", head_params=params).fit(log.filter(~own)).predict(row)[0]
        assert abs(p[i] - ref) < tol, (i, p[i], ref)


def test_a_hidden_rows_prediction_at_a_weak_penalty_is_its_solve_without_them(make_model):
    # NewtonRows steps from fit_glm's solution, which stops at a tolerance: the gradient left there, amplified by
    # H^-1 / (1 - s_h lev) at alpha 1e-3, put hidden answers up to 0.16 from the refit on the same design and
    # penalty (mean 0.019); with it, 0.022 (mean 0.004). A refit through the API also moves the design (0.3 off)
    from v0lite.episodes import subindex
    from v0lite.heads._deviation import _sigmoid, offset_of
    from v0lite.heads.logistic import group_means
    from v0lite.index import policy_prior

    log = make_log(3, 40, seed=3)
    m = make_model(head="logistic", head_params={"alphas": [1e-3]}).fit(log)
    head, index = m.head_, m.index_
    q = m._queries(log.drop("score"))
    p = m.predict(log, exclude_own_prompt=True)
    Z = head.design_.transform(index.emb)
    errs = []
    for i in range(0, len(q), 3):
        own = (index.policy == q.policy[i]) & (index.prompt_row == q.prompt_row[i])
        keep = np.flatnonzero(~own)
        pol = index.policy[keep].astype(np.int64)
        lam = head.alpha_ * np.maximum(np.bincount(pol, None, 3), 1)
        off = offset_of(group_means(index, keep)[keep], "logit")
        W, b, _ = fit_glm(Z, index.prompt_row[keep], pol, index.score[keep], off, 3, lam, max_iter=500, tol=1e-13)
        k, prior = q.policy[i], policy_prior(subindex(index, keep), q.subset(np.array([i])))[0]
        errs.append(abs(p[i] - _sigmoid(Z[q.prompt_row[i]] @ W[k] + b[k] + offset_of(prior, "logit"))))
    assert max(errs) < 0.04 and np.mean(errs) < 0.008, (max(errs), np.mean(errs))


@pytest.mark.parametrize("visits, exclude", [(1, "same_step"), (2, "any_step"), (2, "same_step")])
def test_newton_rows_under_the_identity_link_is_the_exact_solve(make_model, visits, exclude):
    # under the identity link one Newton step is the exact solve without the rows (ExactRows, the ridge head's,
    # pinned above), but only when it starts from where the solver stopped: without fit_glm's leftover gradient
    # it was up to 2.7 off on such logs (a weak penalty on more dimensions than rows)
    log = _visits(make_log(3, 16, steps=True, seed=visits), visits, seed=visits)
    log = log.filter(pl.Series(np.random.default_rng(visits).random(log.height) >= 0.2))
    m = make_model(head="ridge", head_params={"alphas": [1e-3]}).fit(log)
    head, index = m.head_, m.index_
    q = m._queries(log.drop("score"))
    from v0lite.index import policy_prior

    out, off = np.zeros(len(q)), policy_prior(index, q, hide=exclude)  # the identity link's offset: the prior
    for code in range(head.n_fitted_):
        qi = np.flatnonzero(q.policy == code)
        z = head.design_.transform(q.emb[qi])
        out[qi] = z @ head.coef_[code] + head.intercept_[code]
        head._hide_fitted(index, q, code, qi, z, exclude, out)
    np.testing.assert_allclose(out + off, head.decision(index, q, exclude=exclude), rtol=0, atol=1e-8)


@pytest.mark.parametrize("pool_items", [False, True])
def test_a_fitted_policy_whose_only_rows_are_hidden_gets_the_level_of_no_rows(make_model, pool_items):
    # nothing of the policy is left: its solve is the penalty's centre (0) and its prior the unseen level, which
    # the hidden rows do not move. Without fit_glm's leftover gradient the step missed 0 by 0.002 in p here (where
    # 1 - s_h lev = 1.2e-4); as 1 - s_h lev nears rounding the step is noise, so no row left answers 0 exactly
    from v0lite.heads._deviation import _sigmoid, offset_of
    from v0lite.heads.logistic import _unseen_level

    base = make_log(3, 40, steps=True, seed=3)
    got = []
    for seed in (0, 1):
        # 12 answers to one prompt: not thin (a quarter of the others' 40 rows), so its fitted solve answers
        score = np.random.default_rng(seed).random(12).round(2)
        solo = pl.DataFrame({"policy": "solo", "prompt": base["prompt"][0], "score": score, "step": [0, 1, 2] * 4})
        log = pl.concat([base, solo])
        m = make_model(head="logistic", head_params={"alphas": [1e-3], "pool_items": pool_items}).fit(log)
        assert not m.head_._is_thin(m.index_.policies.index("solo"))
        p = m.predict(solo, exclude_own_prompt=True)
        want = _sigmoid(offset_of(_unseen_level(m.index_), "logit"))
        np.testing.assert_allclose(p, want, rtol=0, atol=1e-9)
        got.append(p)
    np.testing.assert_array_equal(got[0], got[1])


def test_a_model_saved_without_the_cells_counts_hides_rows_the_same(make_model):
    # loo_step_ had 3 columns before the counts and score sums were kept: they are recounted from the history
    log = make_log(3, 30, steps=True, seed=5)
    model = make_model(head="logistic").fit(log)
    now = [model.predict(log, exclude_own_prompt=e) for e in (False, True)]
    model.head_.loo_step_ = model.head_.loo_step_[:, :3]
    del model.head_._newton_cache
    np.testing.assert_allclose([model.predict(log, exclude_own_prompt=e) for e in (False, True)], now, atol=1e-12)


def _visits(log, k, seed):
    """``log`` answered ``k`` times (steps 3 apart when it has steps), each visit's scores moved by noise."""
    rng = np.random.default_rng(seed)
    parts = []
    for v in range(k):
        part = log.with_columns(score=pl.Series(np.clip(log["score"] + rng.normal(0, 0.3, log.height), 0, 1).round(2)))
        parts.append(part.with_columns(step=pl.col("step") + 3 * v) if "step" in log.columns else part)
    return pl.concat(parts)


@pytest.mark.parametrize(
    "steps, visits, exclude",
    [(True, 1, "same_step"), (False, 2, "any_step"), (True, 2, "any_step"), (True, 3, "same_step")],
)
def test_ridge_hidden_rows_prediction_is_the_exact_solve_without_them(make_model, steps, visits, exclude):
    # a fitted policy's query under the step rule is its ridge solve without its own rows (the same design and
    # penalty, each step's offset the mean of the rows left) plus its prior without them, to 1e-9. A weak
    # penalty on more dimensions than rows: where fit_glm's tolerance leaves a gradient that one Newton step
    # from its solution (NewtonRows) amplifies (2.7 off on such logs), so this pins the exact downdate
    from v0lite.heads.logistic import group_means
    from v0lite.index import policy_prior

    log = _visits(make_log(3, 16, steps=steps, seed=visits), visits, seed=visits)
    log = log.filter(pl.Series(np.random.default_rng(visits).random(log.height) >= 0.2))  # not every prompt each
    m = make_model(head="ridge", head_params={"alphas": [1e-3]}).fit(log)
    head, index = m.head_, m.index_
    q = m._queries(log.drop("score"))
    got = head.decision(index, q, exclude=exclude)
    for i in range(0, len(q), 3):
        code, pr = q.policy[i], q.prompt_row[i]
        own = (index.policy == code) & (index.prompt_row == pr)
        if exclude == "same_step":
            own &= index.step == q.step[i]
        keep = np.flatnonzero((index.policy == code) & ~own)
        X = np.column_stack([head.design_.transform(index.emb[index.prompt_row[keep]]), np.ones(len(keep))])
        pen = np.r_[np.full(X.shape[1] - 1, head.lam_[code]), 0.0]  # the intercept is not penalised
        beta = np.linalg.solve(X.T @ X + np.diag(pen), X.T @ (index.score[keep] - group_means(index, keep)[keep]))
        ref = np.r_[head.design_.transform(q.emb[i : i + 1])[0], 1.0] @ beta
        ref += policy_prior(index, q.subset(np.array([i])), hide=exclude)[0]
        assert got[i] == pytest.approx(ref, abs=1e-9), (i, got[i], ref)


def test_a_model_folder_saved_with_the_gram_diagonal_still_loads(make_model, tmp_path, fake_encoder, monkeypatch):
    # folders saved before NewtonRows hold "hdiag" (the Gram-diagonal leverage's); no longer fitted nor saved,
    # it is ignored on load: the same predictions, hidden rows included
    from v0lite import _io
    from v0lite.estimator import V0Regressor

    log = make_log(3, 20, steps=True, seed=6)
    model = make_model(head="logistic").fit(log)
    model.save(tmp_path / "now")
    assert "hdiag" not in _io.load_arrays(tmp_path / "now" / "head" / "logistic.safetensors")
    save = _io.save_arrays
    monkeypatch.setattr(_io, "save_arrays", lambda path, arrays: save(path, {**arrays, "hdiag": np.ones((3, 64))}))
    model.save(tmp_path / "old")
    monkeypatch.undo()
    assert "hdiag" in _io.load_arrays(tmp_path / "old" / "head" / "logistic.safetensors")
    for folder in ("old", "now"):
        again = V0Regressor.load(tmp_path / folder, encoder=fake_encoder)
        for e in (False, True):
            got, want = again.predict(log, exclude_own_prompt=e), model.predict(log, exclude_own_prompt=e)
            np.testing.assert_array_equal(got, want)
