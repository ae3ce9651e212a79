"""The multidimensional IRT head: per-policy topic effects, exact out-of-fold answers, new policies, persistence."""

import numpy as np
import polars as pl
import pytest
from conftest import brier, split, thin_delta_log, topic_log

FAST = {"hidden": 32, "dim": 8, "max_epochs": 60, "patience": 8, "batch_size": 32, "lr": 5e-3, "n_folds": 3}


def _choice(model, df):
    """Mean true score of the argmax-p policy per prompt."""
    p = df.with_columns(pl.Series("p", model.predict(df)))
    best = p.sort("p", descending=True).group_by("prompt", maintain_order=True).first()
    return float(best["score"].mean())


def test_captures_per_policy_topic_effects_and_round_trips(make_model, tmp_path, fake_encoder):
    from v0lite.estimator import V0Regressor

    hist, test = split(topic_log(n_prompts=200))
    model = make_model(head="irt", head_params=FAST).fit(hist)
    prior = make_model(head="prior").fit(hist)
    assert brier(model, test) < brier(prior, test)
    assert _choice(model, test) > _choice(prior, test)  # it routes: the argmax policy changes with the topic
    assert len(model.head_.nets_) == 3 and all(e >= 1 for e in model.head_.epochs_)
    model.save(tmp_path / "m")
    again = V0Regressor.load(tmp_path / "m", encoder=fake_encoder)
    np.testing.assert_allclose(again.predict(test), model.predict(test), rtol=0, atol=1e-12)


def test_hidden_rows_are_answered_by_the_network_that_never_saw_the_prompt(make_model):
    log = topic_log(n_prompts=120)
    model = make_model(head="irt", head_params=FAST).fit(log)
    head = model.head_
    cold = model.predict(log, exclude_own_prompt=True)
    new = pl.DataFrame({"policy": ["a", "b"], "prompt": ["translate the text anew"] * 2})
    bag = model.predict(new)
    # wreck every network but one: only the rows of that network's fold keep their answers
    keep = 0
    for j, net in enumerate(head.nets_):
        if j != keep:
            net["theta"] = net["theta"] * 0.0
            net["bias"] = net["bias"] + 5.0
    fold = head.fold_of_prompt_[model.index_.prompt_row]
    from v0lite.embed import prompt_keys

    row_of = {
        (model.index_.policies[c], model.index_.keys[r]): i
        for i, (c, r) in enumerate(zip(model.index_.policy, model.index_.prompt_row))
    }
    pos = np.array([row_of[(p, k)] for p, k in zip(log["policy"].to_list(), prompt_keys(log["prompt"].to_list()))])
    mine = fold[pos] == head.net_folds_[keep]
    assert 0 < mine.sum() < len(mine)
    after = model.predict(log, exclude_own_prompt=True)
    np.testing.assert_allclose(after[mine], cold[mine])
    assert np.all(np.abs(after[~mine] - cold[~mine]) > 0)
    # a prompt never seen is answered by the whole bag, so it moves
    assert np.all(np.abs(model.predict(new) - bag) > 1e-3)


def test_new_policy_is_solved_in_context(make_model):
    hist, test = split(topic_log(n_prompts=200, policies=("a", "b", "c", "d")))
    model = make_model(head="irt", head_params=FAST).fit(hist.filter(pl.col("policy") != "d"))
    theta = [n["theta"].copy() for n in model.head_.nets_]
    model.add_history(hist.filter(pl.col("policy") == "d"))
    for n, t in zip(model.head_.nets_, theta):
        np.testing.assert_array_equal(n["theta"], t)  # no fitted parameter moved
    q = test.filter(pl.col("policy") == "d")
    prior = make_model(head="prior").fit(hist)
    assert brier(model, q) < brier(prior, q)  # its ability vector came from its own history
    np.testing.assert_array_equal(model.predict(q), model.predict(q))  # cached, same answer


@pytest.mark.parametrize(
    "params, match",
    [({"dim": 0}, "dim"), ({"n_folds": 1}, "n_folds"), ({"dropout": 1.0}, "dropout"), ({"lr": 0}, "lr")],
)
def test_bad_parameters_are_refused(make_model, params, match):
    from v0lite.exceptions import ParameterError

    with pytest.raises(ParameterError, match=match):  # a ValueError too, as every bad head parameter
        make_model(head="irt", head_params=params).fit(topic_log(n_prompts=20))


def test_a_one_prompt_log_is_refused_naming_what_it_needs_and_the_heads_that_fit_it(make_model):
    from v0lite.exceptions import DataError

    log = pl.DataFrame({"policy": ["a", "b"], "prompt": ["Only prompt"] * 2, "score": [1.0, 0.0]})
    with pytest.raises(DataError, match=r"at least 2 distinct prompts.*head='knn', 'prior', 'linear' or 'logistic'"):
        make_model(head="irt").fit(log)
    model = make_model(head="auto", head_params={"members": ["prior", "logistic", "irt"]}).fit(log)
    assert "irt" in model.head_.skipped_  # auto leaves it out there, as gbdt and the transformer


def test_auto_can_take_irt_as_a_member(make_model):
    hist, test = split(topic_log(n_prompts=160))
    model = make_model(head="auto", head_params={"members": ["prior", "logistic", "irt"], "n_folds": 3}).fit(hist)
    names = [r["member"] for r in model.head_.cv_report_]
    assert "irt" in names and "stack" in names
    assert np.all((model.predict(test) >= 0) & (model.predict(test) <= 1))


@pytest.mark.parametrize("steps", [False, True])
def test_a_hidden_rows_score_reaches_no_fitted_policys_prediction(make_model, steps):
    # probe I item 1: the policy's prior offset read the hidden row (0.45 -> 0.55 with three rows)
    preds = []
    for v in (0.0, 1.0):
        log, p = thin_delta_log(v, steps)
        model = make_model(head="irt", head_params=FAST).fit(log)
        q = {"policy": ["delta", "pol0"], "prompt": [p[0], p[0]]}
        cold = model.predict(pl.DataFrame(q), exclude_own_prompt=True)
        warm = model.predict(pl.DataFrame({**q, "step": [1, 0]})) if steps else cold  # same_step: its own step
        preds.append(np.r_[cold, warm])
    np.testing.assert_allclose(preds[0], preds[1], rtol=0, atol=1e-12)


def _added(make_model, v, log, p):
    model = make_model(head="irt", head_params=FAST).fit(log)
    model.add_history(
        pl.DataFrame({"policy": ["new"] * 4, "prompt": [p[0], p[1], p[2], p[3]], "score": [v, 1.0, 0.0, 1.0]})
    )
    return model


def test_an_added_policys_hidden_row_is_stepped_out_of_its_solve(make_model):
    # in context: one Newton step (OwnRows), not exact (design.md); before it the row was read in full
    from conftest import make_log

    log = make_log(n_policies=3, n_prompts=30)
    p = log["prompt"].unique(maintain_order=True).to_list()
    q = pl.DataFrame({"policy": ["new"], "prompt": [p[0]]})
    lo, hi = (_added(make_model, v, log, p).predict(q, exclude_own_prompt=True)[0] for v in (0.0, 1.0))
    plain_lo, plain_hi = (_added(make_model, v, log, p).predict(q)[0] for v in (0.0, 1.0))
    assert abs(hi - lo) < 0.1 * abs(plain_hi - plain_lo)


def test_hiding_own_rows_leaves_prompts_outside_the_history_bit_identical(make_model, monkeypatch):
    # every benchmark figure is a prediction for prompts outside the history: compared with the head
    # before the fix (no in-context OwnRows, the prior offset never recomputed)
    from conftest import make_log

    from v0lite.heads.irt import IRTHead

    log = make_log(n_policies=3, n_prompts=30)
    p = log["prompt"].unique(maintain_order=True).to_list()
    q = pl.DataFrame({"policy": ["pol0", "new"] * 2, "prompt": ["never seen a"] * 2 + ["never seen b"] * 2})
    now = [_added(make_model, 1.0, log, p).predict(q, exclude_own_prompt=e) for e in (False, True)]

    def boom(*a, **k):
        raise AssertionError("a prompt outside the history had its own rows hidden")

    monkeypatch.setattr(IRTHead, "_own_rows", staticmethod(lambda *a, **k: None))
    monkeypatch.setattr(IRTHead, "_hidden_offsets", boom)
    before = [_added(make_model, 1.0, log, p).predict(q, exclude_own_prompt=e) for e in (False, True)]
    for a, b in zip(now, before):
        np.testing.assert_array_equal(a, b)


def test_in_context_abilities_are_cached_once_per_eligible_cut(make_model):
    """Keyed by the query's raw step, queries at many steps past an added policy's last row solved and
    stored the same ability once per step."""
    hist, test = split(topic_log(n_prompts=120, policies=("a", "b", "c", "d")))
    model = make_model(head="irt", head_params=FAST).fit(hist.filter(pl.col("policy") != "d"))
    model.add_history(hist.filter(pl.col("policy") == "d"))  # all at step 0
    model.index_.__dict__.pop("_irt_context_cache", None)
    q = test.filter(pl.col("policy") == "d").head(30)
    got = model.predict(q.with_columns(step=pl.Series(np.arange(1, 31))))
    assert len(model.index_._irt_context_cache) == len(model.head_.nets_)  # one per network, not per step
    np.testing.assert_allclose(got, model.predict(q.with_columns(step=pl.lit(1))), rtol=0, atol=1e-12)
