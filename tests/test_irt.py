"""The multidimensional IRT head: per-policy topic effects, exact out-of-fold answers, new policies, persistence."""

import numpy as np
import polars as pl
import pytest
from conftest import brier, split, topic_log

from v0lite.exceptions import V0liteError

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
    with pytest.raises(V0liteError, match=match):
        make_model(head="irt", head_params=params).fit(topic_log(n_prompts=20))


def test_auto_can_take_irt_as_a_member(make_model):
    hist, test = split(topic_log(n_prompts=160))
    model = make_model(head="auto", head_params={"members": ["prior", "logistic", "irt"], "n_folds": 3}).fit(hist)
    names = [r["member"] for r in model.head_.cv_report_]
    assert "irt" in names and "stack" in names
    assert np.all((model.predict(test) >= 0) & (model.predict(test) <= 1))
