"""Every head fits, predicts in [0, 1], round-trips through save/load and serves new policies."""

import numpy as np
import polars as pl
import pytest

from tests.conftest import make_log
from v0lite.exceptions import V0liteError
from v0lite.heads import HEADS, make_head
from v0lite.heads.ensemble import fit_soft_logistic

FAST = {"transformer": {"max_epochs": 2, "d_model": 16, "n_layers": 1, "n_heads": 2, "proj_dim": 8},
        "gbdt": {"n_estimators": 30}}


def _params(head):
    if head == "ensemble":
        return {"transformer_params": FAST["transformer"], "gbdt_params": FAST["gbdt"]}
    return FAST.get(head, {})


@pytest.fixture(scope="module")
def logs():
    log = make_log(n_policies=4, n_prompts=40, steps=True, seed=1)
    prompts = sorted(log["prompt"].unique().to_list())
    test = set(prompts[::5])
    return log.filter(~pl.col("prompt").is_in(test)), log.filter(pl.col("prompt").is_in(test))


@pytest.mark.parametrize("head", ["prior", "knn", "linear", "gbdt", "transformer", "ensemble"])
def test_fit_predict_save_load(head, logs, make_model, tmp_path, fake_encoder):
    from v0lite.persist import load_model

    hist, queries = logs
    model = make_model(head=head, head_params=_params(head)).fit(hist)
    p = model.predict(queries)
    assert p.shape == (queries.height,) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m", encoder=fake_encoder)
    np.testing.assert_array_equal(again.predict(queries), p)


@pytest.mark.parametrize("head", ["gbdt", "transformer"])
def test_learned_heads_are_deterministic(head, logs, make_model):
    hist, queries = logs
    a = make_model(head=head, head_params=_params(head), random_state=3).fit(hist).predict(queries)
    b = make_model(head=head, head_params=_params(head), random_state=3).fit(hist).predict(queries)
    np.testing.assert_array_equal(a, b)


def test_new_policy_without_retraining(logs, make_model):
    hist, queries = logs
    model = make_model(head="gbdt", head_params=_params("gbdt")).fit(hist.filter(pl.col("policy") != "pol3"))
    booster = model.head_.booster_.model_to_string()
    new = hist.filter(pl.col("policy") == "pol3")
    model.add_history(new)
    assert model.head_.booster_.model_to_string() == booster  # no parameter changed
    p = model.predict(queries.filter(pl.col("policy") == "pol3"))
    assert np.isfinite(p).all()


def test_unknown_head_lists_valid_names():
    with pytest.raises(V0liteError, match="Valid heads"):
        make_head("nope")
    assert {"prior", "knn", "gbdt", "transformer", "ensemble", "neural", "linear"} <= set(HEADS)


def test_soft_logistic_recovers_calibration():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4000, 1))
    y = 1 / (1 + np.exp(-(2.0 * z[:, 0] - 0.5)))
    w, b = fit_soft_logistic(z, y, l2=0.0)
    assert w[0] == pytest.approx(2.0, abs=0.05) and b == pytest.approx(-0.5, abs=0.05)
