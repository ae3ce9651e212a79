"""The auto head: out-of-fold comparison of the simple predictors and gbdt, per-policy stacking."""

import numpy as np
import polars as pl
import pytest
from conftest import brier, difficulty_log, make_log, split, topic_log

from v0lite.exceptions import V0liteError
from v0lite.heads._oof import choice_accuracy, pairwise_accuracy

FAST = {
    "gbdt_params": {"n_estimators": 30},
    "transformer_params": {"max_epochs": 2, "d_model": 16, "n_layers": 1, "n_heads": 2, "proj_dim": 8},
}


def _choice(model, df):
    p = model.predict(df)
    codes = np.unique(df["prompt"].to_numpy(), return_inverse=True)[1]
    return choice_accuracy(df["score"].to_numpy(), p, codes, df["policy"].to_numpy())


def test_is_the_default_head():
    from v0lite import V0Regressor

    assert V0Regressor().head == "auto"


def test_captures_a_per_policy_effect(make_model):
    hist, test = split(topic_log(n_prompts=160))
    auto = make_model(head="auto", head_params={**FAST, "generalists_on_routing": True}).fit(hist)
    prior = make_model(head="prior").fit(hist)
    linear = make_model(head="linear").fit(hist)
    assert brier(auto, test) < brier(prior, test)
    assert brier(auto, test) < brier(linear, test)
    assert _choice(auto, test) > _choice(prior, test)
    rep = auto.head_.cv_report_
    assert {r["member"] for r in rep} == {"prior", "knn", "logistic", "linear", "gbdt", "transformer", "stack"}
    for r in rep:
        assert set(r) >= {"member", "cv_brier", "cv_auc", "cv_within_policy_auc", "cv_choice_acc", "cv_pairwise_acc"}
    # a routing log (every policy on every prompt) is judged by held-out pairwise accuracy
    assert auto.head_.criterion_ == "cv_pairwise_acc"
    chosen = next(r for r in rep if r["member"] == auto.head_.chosen_)
    best = max(r["cv_cluster_pairwise_acc"] for r in rep)
    assert chosen["cv_cluster_pairwise_acc"] > next(r for r in rep if r["member"] == "prior")["cv_cluster_pairwise_acc"]
    assert chosen["cv_cluster_pairwise_acc"] <= best


def test_routing_log_leaves_the_generalists_out_by_default(make_model, tmp_path, fake_encoder):
    from v0lite.estimator import V0Regressor

    hist, test = split(topic_log(n_prompts=160))
    auto = make_model(head="auto", head_params=FAST).fit(hist)
    rep = auto.head_.cv_report_
    assert {r["member"] for r in rep} == {"prior", "knn", "logistic", "linear", "stack"}
    assert set(auto.head_.skipped_) == {"gbdt", "transformer"}
    assert all("routing log" in why for why in auto.head_.skipped_.values())
    assert _choice(auto, test) > _choice(make_model(head="prior").fit(hist), test)
    auto.save(tmp_path / "m")
    assert V0Regressor.load(tmp_path / "m", encoder=fake_encoder).head_.skipped_ == auto.head_.skipped_
    # a log that is not a routing log (one policy per prompt) keeps them
    one = make_model(head="auto", head_params=FAST).fit(make_log(n_policies=1, n_prompts=400, steps=True, seed=3))
    assert "gbdt" in {r["member"] for r in one.head_.cv_report_} and "gbdt" not in one.head_.skipped_


def test_single_policy_log_is_judged_by_brier(make_model):
    log = make_log(n_policies=1, n_prompts=80, steps=True, seed=3)
    model = make_model(head="auto", head_params=FAST).fit(log)
    rep = model.head_.cv_report_
    assert model.head_.criterion_ == "cv_brier"
    assert model.head_.chosen_ == min(rep, key=lambda r: r["cv_brier"])["member"]
    assert all(r["cv_choice_acc"] is None and r["cv_pairwise_acc"] is None for r in rep)  # no choice to make


def test_round_trip_and_new_policy(make_model, tmp_path, fake_encoder):
    from v0lite.estimator import V0Regressor

    hist, test = split(topic_log(n_prompts=80, policies=("a", "b", "c", "d")))
    model = make_model(head="auto", head_params=FAST).fit(hist.filter(pl.col("policy") != "d"))
    p = model.predict(test.filter(pl.col("policy") != "d"))
    model.save(tmp_path / "m")
    again = V0Regressor.load(tmp_path / "m", encoder=fake_encoder)
    np.testing.assert_array_equal(again.predict(test.filter(pl.col("policy") != "d")), p)
    assert again.head_.cv_report_ == model.head_.cv_report_
    assert model.head_.criterion_reason_ and again.head_.criterion_reason_ == model.head_.criterion_reason_
    again.add_history(hist.filter(pl.col("policy") == "d"))
    q = test.filter(pl.col("policy") == "d")
    pd_ = again.predict(q)
    assert np.isfinite(pd_).all() and ((pd_ >= 0) & (pd_ <= 1)).all()
    assert brier(again, q) < brier(make_model(head="prior").fit(hist), q)


def test_two_policies_with_checkpoints(make_model):
    """V0-style log (two policies, steps): runs and reports; choice accuracy is defined per (prompt, step)."""
    log = make_log(n_policies=2, n_prompts=60, steps=True, seed=2)
    model = make_model(head="auto", head_params=FAST).fit(log)
    assert model.head_.chosen_ in {r["member"] for r in model.head_.cv_report_}
    p = model.predict(log.head(10))
    assert np.isfinite(p).all()


def test_members_are_validated(make_model):
    with pytest.raises(V0liteError, match="members"):
        make_model(head="auto", head_params={"members": ["gbdt", "mlp"]}).fit(make_log())


def test_fit_prints_the_cv_report(tmp_path, fake_minilm, capsys):
    from v0lite.cli import main
    from v0lite.log import write_log

    path = tmp_path / "h.jsonl"
    write_log(topic_log(n_prompts=40), path)
    assert main(["fit", str(path), "--model-dir", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "chosen:" in out and "cv_brier" in out and "logistic" in out
    # a routing log: the deciding column and the rule are printed
    assert "cv_cluster_pairwise_acc" in out and "criterion: a routing log" in out and "two standard errors" in out
    assert "read as added later" not in out  # every policy has all its rows
    # a model known from a few rows: the report names it and its row count
    log = topic_log(n_prompts=40, policies=("a", "b", "c", "d"))
    few = log.filter(pl.col("policy") != "d").vstack(log.filter(pl.col("policy") == "d").head(6))
    write_log(few, path)
    assert main(["fit", str(path), "--model-dir", str(tmp_path / "m2")]) == 0
    out = capsys.readouterr().out
    assert "read as added later" in out and "d (6 rows)" in out
    # a served head without logistic reads a thin d through the kept logistic member, as add_history would
    from v0lite.commands.core import _thin_report
    from v0lite.estimator import V0Regressor

    m = V0Regressor(head="auto", head_params={"members": ["prior", "linear"]}, cache_dir=False).fit(few)
    assert m.head_.pool_member_ == "logistic" and _thin_report(m) == "d (6 rows)"
    q = few.filter(pl.col("policy") == "d").select("policy", "prompt")
    kept = m.head_.heads_["logistic"]
    np.testing.assert_allclose(m.predict(q), kept.predict(m.index_, m._queries(q)), rtol=0, atol=0)


def test_choice_accuracy_takes_the_argmax_policy():
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.5])
    p = np.array([0.9, 0.1, 0.8, 0.2, 0.7])
    prompt = np.array([0, 0, 1, 1, 2])  # prompt 2 has one policy only: left out
    pol = np.array([0, 1, 0, 1, 0])
    assert choice_accuracy(y, p, prompt, pol) == 0.5


def test_choice_accuracy_groups_by_prompt_and_step_as_a_loop_does():
    rng = np.random.default_rng(3)
    n = 400
    prompt, step = rng.integers(0, 7, n), rng.integers(0, 40, n) * 10  # more steps than prompts
    pol, y, p = rng.integers(0, 3, n), rng.random(n), rng.permutation(n) / n  # p has no ties
    want = []
    for key in sorted(set(zip(prompt.tolist(), step.tolist()))):
        sel = np.flatnonzero((prompt == key[0]) & (step == key[1]))
        if len(set(pol[sel].tolist())) >= 2:
            want.append(y[sel[np.argmax(p[sel])]])
    got = choice_accuracy(y, p, prompt, pol, step, per_prompt=True)
    np.testing.assert_allclose(got, want)


def test_knn_grid_estimates_match_the_knn_head():
    from v0lite.heads._oof import _knn_grid_estimates
    from v0lite.heads.knn import knn_estimate

    rng = np.random.default_rng(0)
    sims = np.sort(rng.uniform(0, 1, (20, 16)), axis=1)[:, ::-1].astype(np.float32)
    valid = rng.random((20, 16)) > 0.2
    resid = rng.normal(0, 0.3, (20, 16))
    prior = rng.uniform(0, 1, 20)
    grid = [(4, 0.05), (16, 0.05), (8, 1.0)]
    got = _knn_grid_estimates(resid, sims, valid, prior, grid)
    for c, (k, t) in enumerate(grid):
        ref = np.clip(knn_estimate(resid[:, :k], sims[:, :k], valid[:, :k], prior, temperature=t), 0, 1)
        np.testing.assert_allclose(got[c], ref, atol=1e-12)


def test_tiny_log_falls_back_to_the_prior(make_model):
    log = pl.DataFrame({"policy": ["a", "b", "a", "b"], "prompt": ["x", "x", "y", "y"], "score": [1.0, 0.0, 0.5, 0.5]})
    model = make_model(head="auto", head_params=FAST).fit(log)
    assert model.head_.chosen_ == "prior" and model.head_.criterion_ == "too little history"
    np.testing.assert_allclose(model.predict(log), make_model(head="prior").fit(log).predict(log))


def test_stacker_weights_are_non_negative_and_still_fit():
    """A member whose logit is anti-correlated with the residual gets weight 0, not a negative one."""
    from v0lite.heads.auto import _sigmoid, fit_stacker

    rng = np.random.default_rng(0)
    n = 2000
    truth = rng.normal(0, 1.5, n)
    e = rng.normal(0, 1.0, n)
    good, noisy = truth + e, truth + 2 * e  # unconstrained: 2 * good - noisy cancels the shared noise
    y = (rng.random(n) < _sigmoid(truth)).astype(float)
    L = np.column_stack([good, noisy])
    pol = np.zeros(n, np.int64)
    W, wg = fit_stacker(L, y, pol, 1, nonneg=False)
    assert wg[1] < 0  # the case the constraint is for
    W, wg = fit_stacker(L, y, pol, 1)
    assert (wg[:-1] >= 0).all() and wg[0] > 0.5
    W2, _ = fit_stacker(L, y, pol, 1, l2_policy=20.0)
    assert (W2[:, :-1] >= 0).all()


def test_pairwise_accuracy_by_hand():
    # prompt a: pairs (0,1) and (0,2) differ, both ordered right; (1,2) tie in y, left out.
    # prompt b: (0,2) differs and is ordered wrong, (1,2) right, (0,1) tie in y -> 3 right of 4
    y = [1, 0, 0, 1, 1, 0]
    p = [0.9, 0.1, 0.5, 0.2, 0.8, 0.3]
    prompt, pol = ["a", "a", "a", "b", "b", "b"], [0, 1, 2, 0, 1, 2]
    assert pairwise_accuracy(y, p, prompt, pol) == 0.75
    # a tie in p counts half; graded outcomes weight a pair by its gap
    assert pairwise_accuracy([1, 0], [0.5, 0.5], ["q", "q"], [0, 1]) == 0.5
    got = pairwise_accuracy([1.0, 0.0, 0.6, 0.4], [0.9, 0.1, 0.1, 0.9], ["a", "a", "b", "b"], [0, 1, 0, 1])
    assert got == pytest.approx(1.0 / 1.2)
    assert np.isnan(pairwise_accuracy([1, 1], [0.2, 0.3], ["q", "q"], [0, 1]))  # no pair differs


def test_pairwise_accuracy_matches_a_loop_over_prompts_steps_and_pairs():
    rng = np.random.default_rng(4)
    n = 300
    prompt, step = rng.integers(0, 9, n), rng.integers(0, 3, n)
    pol, y, p = rng.integers(0, 4, n), rng.integers(0, 3, n) / 2, rng.integers(0, 5, n) / 4  # ties in both
    num = den = 0.0
    for key in set(zip(prompt.tolist(), step.tolist())):
        sel = (prompt == key[0]) & (step == key[1])
        cells = {c: (y[sel & (pol == c)].mean(), p[sel & (pol == c)].mean()) for c in set(pol[sel].tolist())}
        for i in cells:
            for j in cells:
                if i < j and cells[i][0] != cells[j][0]:
                    (yi, pi), (yj, pj) = cells[i], cells[j]
                    w = abs(yi - yj)
                    den += w
                    num += w * (0.5 if pi == pj else float((pi > pj) == (yi > yj)))
    assert pairwise_accuracy(y, p, prompt, pol, step) == pytest.approx(num / den)


def test_routing_log_tunes_the_logistic_member_by_pairwise_accuracy(make_model, monkeypatch):
    from v0lite.heads.logistic import LogisticHead

    seen = []
    fit = LogisticHead.fit

    def spy(self, *a, **k):
        seen.append(self.params["select"])
        return fit(self, *a, **k)

    monkeypatch.setattr(LogisticHead, "fit", spy)
    make_model(head="auto", head_params=FAST).fit(topic_log(n_prompts=120))
    # a routing log: the competing member by pairwise accuracy (a kept pool member, if any, by loss)
    assert seen[0] == "pairwise" and seen[1:] in ([], ["loss"])
    seen.clear()
    make_model(head="auto", head_params=FAST).fit(make_log(n_policies=1, n_prompts=80, steps=True, seed=3))
    assert seen == ["loss"]  # a log with one policy per prompt


def test_a_learned_winner_on_a_small_log_serves_the_ensemble(make_model, tmp_path, fake_encoder):
    """Only learned candidates: whichever wins, the gbdt + transformer ensemble fitted on every row is served."""
    from v0lite.estimator import V0Regressor

    log = make_log(n_policies=1, n_prompts=500, steps=True, seed=5)
    hist, test = log.head(400), log.tail(100)
    auto = make_model(head="auto", head_params={**FAST, "members": ["gbdt", "transformer"]}).fit(hist)
    assert auto.head_.chosen_ == "ensemble" and auto.head_.members_ == ["ensemble"]
    assert auto.head_.served_from_ in {"gbdt", "transformer", "stack"}
    assert [r["member"] for r in auto.head_.cv_report_ if r["chosen"]] == ["ensemble"]
    ens = make_model(head="ensemble", head_params=FAST).fit(hist)  # the same head, fitted directly
    np.testing.assert_allclose(auto.predict(test), ens.predict(test), atol=1e-6)
    auto.save(tmp_path / "m")
    again = V0Regressor.load(tmp_path / "m", encoder=fake_encoder)
    np.testing.assert_array_equal(again.predict(test), auto.predict(test))
    assert again.head_.served_from_ == auto.head_.served_from_
    # on a routing log (generalists let in) a learned winner is served as itself
    hp = {**FAST, "members": ["gbdt", "transformer"], "generalists_on_routing": True}
    routed = make_model(head="auto", head_params=hp).fit(topic_log(n_prompts=160))
    assert routed.head_.served_from_ is None and routed.head_.chosen_ in {"gbdt", "transformer", "stack"}
    # a simple winner is served as itself
    simple = make_model(head="auto", head_params={**FAST, "members": ["prior", "logistic"]}).fit(hist)
    assert simple.head_.served_from_ is None and simple.head_.chosen_ in {"prior", "logistic", "stack"}


def test_predict_keeps_the_callers_lower_thread_count(make_model, monkeypatch):
    # auto caps threads at max(n_jobs, 2) while predicting, but a caller's single thread stays single
    import torch

    from v0lite.heads.auto import AutoHead

    log = make_log(n_policies=2, n_prompts=30, steps=True, seed=2)
    model = make_model(head="auto", head_params=FAST).fit(log)
    seen = []
    inner = AutoHead.member_predictions

    def spy(self, *a, **kw):
        seen.append(torch.get_num_threads())
        return inner(self, *a, **kw)

    monkeypatch.setattr(AutoHead, "member_predictions", spy)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        model.predict(log)
        torch.set_num_threads(2)
        model.predict(log)
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 2]


def test_fit_shows_progress_when_asked(make_model, capsys, monkeypatch):
    """Issue: `v0lite fit` with the default head showed nothing for 47 s: auto's fit dropped show_progress_bar."""
    from v0lite import _progress

    monkeypatch.setattr(_progress, "DELAY_S", 0.0)
    log = make_log(n_policies=1, n_prompts=80, steps=True, seed=3)
    make_model(head="auto", head_params=FAST, show_progress_bar=True).fit(log)
    assert "fit: auto head (comparing its members out of fold): done in" in capsys.readouterr().err
    make_model(head="auto", head_params=FAST).fit(log)
    assert "fit: auto head" not in capsys.readouterr().err


def _unknown(log, n=12):
    prompts = log["prompt"].unique(maintain_order=True).to_list()[:n]  # every topic
    return pl.DataFrame({"policy": ["never-seen"] * len(prompts), "prompt": prompts})


def test_a_served_head_without_logistic_keeps_the_pool_prior_for_an_unknown_policy(make_model, tmp_path, fake_encoder):
    """The probe's defect: auto served linear (or a stack that weighed logistic 0, dropped at serving), so
    an unknown policy got the flat mean of all history. The logistic member is kept for it (issue 29)."""
    from v0lite.estimator import V0Regressor
    from v0lite.heads.auto import AutoHead

    log = difficulty_log(n_prompts=60)  # 4 policies sharing a difficulty: the pool prior ranks prompts
    model = make_model(head="auto", fallback="global_mean").fit(log)
    head = model.head_
    assert "logistic" not in head.members_  # the case of the probe
    assert [r["member"] for r in head.cv_report_ if r["chosen"]] == [head.chosen_]
    q = _unknown(log)
    p = model.predict(q)
    assert p.std() > 0.05  # it reads the prompt, not one constant (before: the mean of all history)
    assert head.pool_member_ == "logistic"
    qu = model._queries(q)
    qu.policy = np.full(len(qu), len(model.index_.policies), np.int32)
    np.testing.assert_array_equal(p, head.heads_["logistic"].predict_unseen(model.index_, qu))
    # the kept member is the logistic head fitted on every row, its penalties each policy's loss choice
    alone = make_model(head="logistic", fallback="global_mean", head_params={"select": "loss"}).fit(log)
    np.testing.assert_allclose(p, alone.predict(q), rtol=0, atol=1e-12)
    # the fitted policies' predictions are the served head's alone: the path without the member
    fitted = model.predict(log)
    model.save(tmp_path / "m")
    (tmp_path / "h").mkdir()
    meta = head.save(tmp_path / "h")
    old = {k: v for k, v in meta.items() if k != "pool_member"}  # a model saved before the member existed
    before = AutoHead.load(tmp_path / "h", old)
    assert "logistic" not in before.heads_ and np.isnan(before.predict_unseen(model.index_, qu)).all()
    np.testing.assert_array_equal(before.predict(model.index_, model._queries(log)), fitted)
    # save and load keep it
    again = V0Regressor.load(tmp_path / "m", encoder=fake_encoder)
    assert again.head_.pool_member_ == "logistic" and again.head_.members_ == head.members_
    np.testing.assert_array_equal(again.predict(q), p)
    np.testing.assert_array_equal(again.predict(log), fitted)


def test_a_policy_added_later_is_read_by_the_kept_logistic_member(make_model):
    log = difficulty_log(n_prompts=60)
    model = make_model(head="auto", head_params={"members": ["prior", "linear"]}).fit(log)
    head = model.head_
    # a stack that weighed prior 0 serves linear alone; the fit table marks only what is served
    assert head.chosen_ == "stack" and head.members_ == ["linear"]
    rep = {r["member"]: r for r in head.cv_report_}
    assert rep["prior"]["weight"] == 0.0 and not rep["prior"]["chosen"]
    assert rep["linear"]["chosen"] and rep["stack"]["chosen"]
    fitted_q = log.head(40)
    fitted = model.predict(fitted_q)
    new = difficulty_log(n_prompts=60, policies=("a", "b", "c", "d", "e")).filter(pl.col("policy") == "e")
    model.add_history(new.head(20))
    q = new.tail(30)
    p = model.predict(q)
    want = head.heads_["logistic"].predict(model.index_, model._queries(q))
    np.testing.assert_array_equal(p, want)  # as a served logistic head reads it: the pool's base and its rows
    both = model.predict(pl.concat([fitted_q, q]))  # a mixed batch changes neither part
    np.testing.assert_array_equal(both[: len(fitted_q)], fitted)
    np.testing.assert_array_equal(both[len(fitted_q) :], p)


def test_no_pool_member_is_kept_below_three_policies_or_when_the_served_logistic_reads_them(make_model):
    two = make_model(head="auto", head_params={"members": ["prior", "linear"]}).fit(
        difficulty_log(n_prompts=40, policies=("a", "b"))
    )
    assert two.head_.pool_member_ is None and "logistic" not in two.head_.heads_
    # one policy per prompt: the served member's penalties are already each policy's loss choice
    one = make_model(head="auto", head_params={"members": ["logistic"]}).fit(
        make_log(n_policies=4, n_prompts=40, steps=True, seed=3).with_columns(
            prompt=pl.col("prompt") + " by " + pl.col("policy")
        )
    )
    assert one.head_.members_ == ["logistic"] and one.head_.heads_["logistic"].params["select"] == "loss"
    assert one.head_.pool_member_ is None and set(one.head_.heads_) == {"logistic"}


def test_a_served_logistic_chosen_for_routing_keeps_a_loss_chosen_pool_member(make_model, tmp_path, fake_encoder):
    """On a routing log the served logistic member takes one penalty for every policy by pairwise accuracy
    (here the strongest, 3.0); a new model is predicted, not compared, so the pool's base comes from the
    penalties each policy's own held-out loss chooses, kept under "pool" (issue 29)."""
    from v0lite.estimator import V0Regressor

    log = difficulty_log(n_prompts=60)
    model = make_model(head="auto", fallback="global_mean", head_params={"members": ["logistic"]}).fit(log)
    head = model.head_
    served = head.heads_["logistic"]
    assert head.members_ == ["logistic"] and served.params["select"] == "pairwise"
    assert head.pool_member_ == "pool" and "pool" not in head.members_
    kept = head.heads_["pool"]
    loss_choice = np.asarray(served.params["alphas"])[np.argmin(served.cv_loss_, axis=0)]
    assert not np.array_equal(served.alpha_, loss_choice)  # the case: the two choices differ
    np.testing.assert_array_equal(kept.alpha_, loss_choice)
    alone = make_model(head="logistic", fallback="global_mean", head_params={"select": "loss"}).fit(log)
    q = _unknown(log)
    p = model.predict(q)
    np.testing.assert_allclose(p, alone.predict(q), rtol=0, atol=1e-12)  # an unknown policy: the kept head
    fitted = model.predict(log)
    served_alone = make_model(head="logistic", head_params={"select": "pairwise"}).fit(log)
    np.testing.assert_allclose(fitted, served_alone.predict(log), rtol=0, atol=1e-12)  # fitted: the served one
    new = difficulty_log(n_prompts=60, policies=("a", "b", "c", "d", "e")).filter(pl.col("policy") == "e")
    model.add_history(new.head(20))
    alone.add_history(new.head(20))
    np.testing.assert_allclose(model.predict(new.tail(30)), alone.predict(new.tail(30)), rtol=0, atol=1e-12)
    model.save(tmp_path / "m")
    again = V0Regressor.load(tmp_path / "m", encoder=fake_encoder)
    assert again.head_.pool_member_ == "pool" and again.head_.members_ == ["logistic"]
    np.testing.assert_array_equal(again.predict(new.tail(30)), model.predict(new.tail(30)))
    np.testing.assert_array_equal(again.predict(log), model.predict(log))
    # with a fitted policy's rows an added policy is compared with the fitted ones: the served member reads it
    served_alone.add_history(new.head(20))
    for m in (model, again, served_alone):
        m.add_history(new.tail(40))  # 60 rows of e, as many as each fitted policy
    p_full = model.predict(new)
    np.testing.assert_allclose(p_full, served_alone.predict(new), rtol=0, atol=1e-12)
    assert np.abs(p_full - alone.predict(new)).max() > 1e-6  # not the kept head's own reading
    np.testing.assert_array_equal(again.predict(new), p_full)
    for h in (model.head_.heads_["pool"], model.head_.heads_["logistic"], served_alone.head_):
        h.params["pool_prior"] = False  # the solve of before issue 29: the same reading
    np.testing.assert_allclose(model.predict(new), served_alone.predict(new), rtol=0, atol=1e-12)


def _fit_out(main, capsys, log, path):
    from v0lite.log import write_log

    write_log(log, path)
    assert main(["fit", str(path), "--model-dir", str(path.with_suffix(".m"))]) == 0
    return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("criterion:"))


def test_fit_says_why_the_brier_score_decides(tmp_path, fake_minilm, capsys, make_model):
    """Each reason the comparison falls back to cv_brier is named as itself, never as 'not a routing log'
    when it is one (the gbdt line then says 'a routing log' too)."""
    from v0lite.cli import main

    log = make_log(n_policies=4, n_prompts=40)
    same = log.with_columns(score=pl.lit(1.0))  # a routing log on which no two policies differ
    line = _fit_out(main, capsys, same, tmp_path / "same.jsonl")
    assert line == (
        "criterion: the lowest cv_brier (a routing log, but pairwise accuracy is undefined: every score is equal)"
    )
    # the same prompts answered at unaligned steps: no (prompt, step) pair has two policies
    steps = log.filter(pl.col("policy").is_in(["pol0", "pol1"])).with_columns(
        step=pl.when(pl.col("policy") == "pol0").then(0).otherwise(1)
    )
    line = _fit_out(main, capsys, steps, tmp_path / "steps.jsonl")
    assert "not a routing log: most (prompt, step) pairs were answered by one policy" in line
    assert "the same prompts at different steps" in line
    # over 32 policies a routing log is judged by the Brier score too, and says so
    many = make_log(n_policies=33, n_prompts=12)
    m = make_model(head="auto", head_params={"members": ["prior", "linear"]}).fit(many)
    assert m.head_.criterion_ == "cv_brier"
    assert m.head_.criterion_reason_ == "more than 32 policies (33): not judged as a routing log"
    one = make_model(head="auto", head_params={"members": ["prior", "linear"]}).fit(make_log(n_policies=1))
    assert one.head_.criterion_reason_ == "not a routing log: it has one policy"


def test_a_thin_policy_under_a_pool_member_is_read_as_one_added_later(make_model):
    """A policy fitted from a few rows is read as a policy added later: by the kept loss-chosen head, its
    rows the new model's few outcomes (as add_history would read them), on a routing log too."""
    log = difficulty_log(n_prompts=60)
    thin = difficulty_log(n_prompts=60, policies=("a", "b", "c", "d", "t")).filter(pl.col("policy") == "t").head(8)
    model = make_model(head="auto", head_params={"members": ["logistic"]}).fit(pl.concat([log, thin]))
    head = model.head_
    assert head.pool_member_ == "pool" and head.heads_["pool"].thin_.sum() == 1
    q = difficulty_log(n_prompts=60, policies=("a", "b", "c", "d", "t")).filter(pl.col("policy") == "t").tail(30)
    np.testing.assert_array_equal(model.predict(q), head.heads_["pool"].predict(model.index_, model._queries(q)))


def test_a_pool_members_cached_solve_follows_the_served_heads_setting(make_model):
    """The kept head's in-context solves are cached per index: switching the served head's pool_prior alone must
    not return the solve cached under the other setting."""
    log = difficulty_log(n_prompts=60)
    new = difficulty_log(n_prompts=60, policies=("a", "b", "c", "d", "e")).filter(pl.col("policy") == "e")
    model = make_model(head="auto", head_params={"members": ["logistic"]}).fit(log)
    model.add_history(new)  # as many rows as a fitted policy: the served head's solve
    on = model.predict(new)
    model.head_.heads_["logistic"].params["pool_prior"] = False
    off = model.predict(new)
    fresh = make_model(head="auto", head_params={"members": ["logistic"]}).fit(log)
    fresh.add_history(new)
    fresh.head_.heads_["logistic"].params["pool_prior"] = False
    np.testing.assert_array_equal(off, fresh.predict(new))
    assert np.abs(on - off).max() > 1e-6
