"""Tests of v0lite.routing: strategies, cost models, Router, and the ``route`` CLI command."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import warnings

import numpy as np
import polars as pl
import pytest

from v0lite.exceptions import DataError, NotFittedError, UnpricedPolicyWarning, V0liteError, V0liteWarning
from v0lite.routing import (
    COST_MODELS,
    STRATEGIES,
    BudgetStrategy,
    QualityTargetStrategy,
    Router,
    ThresholdStrategy,
    UtilityStrategy,
    get_cost_model,
    get_strategy,
)
from v0lite.routing._knn import _knn_mean, _knn_prefix_means
from v0lite.routing._strategies import _switch_points


def _p_of(policy: str, prompt: str) -> float:
    """Deterministic success probability of (policy, prompt) for the fake value model."""
    level = int(prompt.split()[-1]) / 10.0  # "q<i> level <d>" -> difficulty in [0, 1)
    skill = {"small": 0.3, "mid": 0.6, "big": 0.9}.get(policy, 0.5)
    return float(np.clip(1.0 - level + skill - 0.4, 0.0, 1.0))


class FakeValueModel:
    def __init__(self):
        self.calls = 0

    def fit(self, X, y):
        return self

    def predict(self, X):
        self.calls += 1
        pol, prm = X["policy"].to_list(), X["prompt"].to_list()
        return np.array([_p_of(a, b) for a, b in zip(pol, prm)])


class FakeEmbedder:
    """Embeds 'q<i> level <d>' as a 2-D point on the unit circle by difficulty."""

    def __init__(self):
        self.n_texts = 0

    def encode(self, texts):
        self.n_texts += len(texts)
        d = np.array([int(t.split()[-1]) for t in texts], dtype=np.float64)
        ang = d / 10.0 * np.pi / 2
        return np.stack([np.cos(ang), np.sin(ang)], axis=1).astype(np.float32)


def _brute_budget(P, C, budget):
    n, m = P.shape
    best, best_idx = -1.0, None
    for combo in itertools.product(range(m), repeat=n):
        idx = np.array(combo)
        if C[np.arange(n), idx].mean() <= budget + 1e-12:
            val = P[np.arange(n), idx].sum()
            if val > best + 1e-12:
                best, best_idx = val, idx
    return best, best_idx


# ------------------------------------------------------------------ strategies


def test_registry_and_unknown_name_lists_valid_names():
    assert set(STRATEGIES) == {"utility", "threshold", "budget", "quality-target"}
    for name in STRATEGIES:
        s = get_strategy(name)
        assert s.name == name and hasattr(s, "choose") and hasattr(s, "knob_grid")
    with pytest.raises(V0liteError) as err:
        get_strategy("greedy")
    for name in STRATEGIES:
        assert name in str(err.value)
    with pytest.raises(V0liteError, match="knn"):
        get_cost_model("nope")
    assert set(COST_MODELS) == {"knn", "mean", "fixed", "unit"}


P3 = np.array([[0.5, 0.7, 0.9], [0.8, 0.85, 0.9], [0.1, 0.2, 0.95]])
C3 = np.array([[0.1, 0.5, 1.0], [0.1, 0.5, 1.0], [0.1, 0.5, 1.0]])


def test_utility_strategy():
    u = UtilityStrategy()
    assert u.choose(P3, C3, 0.0).tolist() == [2, 2, 2]
    # lam = 0.3: row0 scores .47 .55 .6 -> 2; row1 .77 .7 .6 -> 0; row2 .07 .05 .65 -> 2
    assert u.choose(P3, C3, 0.3).tolist() == [2, 0, 2]
    assert u.choose(P3, C3, 100.0).tolist() == [0, 0, 0]
    with pytest.raises(V0liteError):
        u.choose(P3, C3, -1.0)
    # ties in utility go to the higher p, then the cheaper
    assert u.choose(np.array([[0.5, 0.5]]), np.array([[1.0, 0.2]]), 0.0).tolist() == [1]


def test_threshold_strategy():
    t = ThresholdStrategy()
    assert t.choose(P3, C3, 0.75).tolist() == [2, 0, 2]
    assert t.choose(P3, C3, 0.0).tolist() == [0, 0, 0]
    assert t.choose(P3, C3, 0.99).tolist() == [2, 2, 2]  # nobody reaches: max-p policy
    grid = t.knob_grid(P3, C3, 8)
    assert grid.min() <= P3.min() and grid.max() >= P3.max() and len(grid) <= 8


@pytest.mark.parametrize("budget", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0])
def test_budget_honoured_and_near_optimal(budget):
    rng = np.random.default_rng(0)
    P = rng.uniform(size=(6, 3))
    C = np.tile([0.1, 0.4, 1.0], (6, 1)) * rng.uniform(0.5, 1.5, size=(6, 3))
    b = BudgetStrategy()
    lo = C.min(axis=1).mean()
    if budget < lo:
        with pytest.warns(V0liteWarning):
            idx = b.choose(P, C, budget)
        assert (idx == C.argmin(axis=1)).all()
        return
    idx = b.choose(P, C, budget)
    rows = np.arange(6)
    assert C[rows, idx].mean() <= budget + 1e-9
    best, _ = _brute_budget(P, C, budget)
    # Lagrangian + greedy fill: within one prompt's gain of the integer optimum
    assert P[rows, idx].sum() >= best - P.max() - 1e-9


def test_budget_exact_on_hand_made_case():
    P = np.array([[0.2, 0.9], [0.6, 0.7], [0.5, 0.8]])
    C = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    b = BudgetStrategy()
    assert b.choose(P, C, 1 / 3).tolist() == [1, 0, 0]  # gain .7 best
    assert b.choose(P, C, 2 / 3).tolist() == [1, 0, 1]  # then gain .3
    assert b.choose(P, C, 1.0).tolist() == [1, 1, 1]
    # equal ratios everywhere (ties at the critical lam): the budget is filled exactly
    Pt = np.tile([0.2, 0.6], (10, 1))
    Ct = np.tile([0.0, 1.0], (10, 1))
    idx = b.choose(Pt, Ct, 0.3)
    assert idx.sum() == 3
    grid = b.knob_grid(P, C, 5)
    assert np.isclose(grid[0], 0.0) and np.isclose(grid[-1], 1.0)


def test_quality_target_strategy():
    P = np.array([[0.2, 0.9], [0.6, 0.7], [0.5, 0.8]])
    C = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    q = QualityTargetStrategy()
    rows = np.arange(3)
    for target in [0.3, 0.45, 0.55, 0.6, 0.7, 0.8]:
        idx = q.choose(P, C, target)
        assert P[rows, idx].mean() >= target - 1e-9
    assert q.choose(P, C, 0.3).tolist() == [0, 0, 0]
    assert q.choose(P, C, 0.55).tolist() == [1, 0, 0]  # one upgrade, the best ratio
    with pytest.warns(V0liteWarning):
        assert q.choose(P, C, 0.99).tolist() == [1, 1, 1]
    # ties: exactly as many upgrades as needed
    Pt = np.tile([0.2, 0.6], (10, 1))
    Ct = np.tile([0.0, 1.0], (10, 1))
    idx = q.choose(Pt, Ct, 0.32)  # needs 3 upgrades of +0.4 over 10 prompts
    assert idx.sum() == 3


def test_knob_grids_cover_the_range():
    rng = np.random.default_rng(1)
    P = rng.uniform(size=(40, 4))
    C = np.tile([0.01, 0.1, 0.5, 2.0], (40, 1))
    rows = np.arange(40)
    for name in STRATEGIES:
        s = get_strategy(name)
        grid = s.knob_grid(P, C, 16)
        assert 1 <= len(grid) <= 16
        costs = [C[rows, s.choose(P, C, g)].mean() for g in grid]
        assert np.isclose(min(costs), C.min(axis=1).mean())  # reaches the cheapest routing
        assert np.isclose(max(costs), C[rows, P.argmax(axis=1)].mean())  # and the best one


# ------------------------------------------------------------------ router


def _log(n=40, policies=("small", "mid", "big"), varying=True, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    base = {"small": 0.1, "mid": 0.4, "big": 1.0}
    for i in range(n):
        d = i % 10
        prompt = f"q{i} level {d}"
        for p in policies:
            cost = base[p] * (1.0 + d / 10.0) if varying else base[p]
            rows.append({"policy": p, "prompt": prompt, "score": float(rng.uniform() < _p_of(p, prompt)), "cost": cost})
    return pl.DataFrame(rows)


def test_router_predict_matrix_and_route():
    vm = FakeValueModel()
    r = Router(vm, embedder=FakeEmbedder(), k=4).fit(_log())
    assert r.policies_ == ["big", "mid", "small"]
    prompts = ["new level 5", "new level 9"]
    P, C = r.predict_matrix(prompts)
    assert P.shape == C.shape == (2, 3)
    assert np.allclose(P[0], [_p_of(p, prompts[0]) for p in r.policies_])
    # kNN cost: harder prompts (level 9) cost more for every policy
    assert (C[1] > C[0]).all()
    assert r.route(prompts).tolist() == ["big", "big"]
    assert r.route(prompts, lam=10.0).tolist() == ["small", "small"]
    assert r.route(prompts, knob=10.0).tolist() == ["small", "small"]
    with pytest.raises(V0liteError, match="lam"):
        r.route(prompts, tau=0.3)


def test_router_cost_models_and_errors():
    vm = FakeValueModel()
    emb = FakeEmbedder()
    r = Router(vm, cost_model="knn", embedder=emb, k=4).fit(_log(varying=False))
    assert emb.n_texts == 0  # constant costs: no embedding needed
    P, C = r.predict_matrix(["x level 3"])
    assert np.allclose(C, [[1.0, 0.4, 0.1]])
    r = Router(vm, cost_model="mean").fit(_log())
    assert np.allclose(r.predict_matrix(["x level 3"])[1][0], [1.45, 0.58, 0.145])
    r = Router(vm, cost_model="fixed", prices={"a": 2.0, "b": 1.0}).fit()
    assert r.policies_ == ["a", "b"]
    r = Router(vm, policies=["small", "big", "extra"], cost_model="mean", prices={"extra": 5.0}).fit(_log())
    assert np.allclose(r.predict_matrix(["x level 0"])[1][0], [0.145, 1.45, 5.0])
    with pytest.raises(DataError, match="extra"):
        Router(vm, policies=["small", "extra"], cost_model="mean").fit(_log())
    with pytest.raises(DataError, match="cost"):
        Router(vm, cost_model="knn").fit(_log().drop("cost"))
    with pytest.raises(DataError, match="missing"):
        Router(vm, policies=["a", "b"], cost_model="fixed", prices={"a": 1.0}).fit()
    with pytest.raises(NotFittedError):
        Router(vm).route(["q level 1"])
    with pytest.raises(V0liteError, match="quality-target"):
        Router(vm, strategy="cheapest").fit(_log())
    r = Router(vm, strategy="budget", cost_model="unit", policies=["small", "big"]).fit()
    with pytest.raises(V0liteError, match="budget"):
        r.route(["q level 1"])


def test_a_model_joining_a_unit_cost_pool_costs_one_whatever_its_logged_cost():
    """Probe: with cost_model="unit" a new model joined at its logged USD cost (5e-4) beside pool costs of 1,
    so the router sent it most prompts on 10 outcomes."""
    r = Router(FakeValueModel(), cost_model="unit", policies=["small", "big"]).fit()
    log = pl.DataFrame({"policy": ["new"] * 2, "prompt": ["q level 1", "q level 2"], "score": [1.0, 0.0]})
    joining, unpriced = r.join_costs(["new"], log=log.with_columns(pl.lit(5e-4).alias("cost")))
    assert joining == {"new": 1.0} and unpriced == []
    assert r.join_costs(["new"], {"new": 0.5}, log=log)[0] == {"new": 0.5}  # a price given still wins


def test_router_budget_route_honours_budget():
    log = _log(60)
    r = Router(FakeValueModel(), strategy="budget", embedder=FakeEmbedder(), k=4).fit(log)
    prompts = [f"t{i} level {i % 10}" for i in range(50)]
    P, C = r.predict_matrix(prompts)
    idx = r.choose(P, C, budget=0.5)
    assert C[np.arange(50), idx].mean() <= 0.5 + 1e-9
    assert C[np.arange(50), idx].mean() >= 0.45  # the budget is used


class NoiseValueModel:
    """Ignores the prompt: a seeded random guess per (policy, prompt); records what each fit saw."""

    def __init__(self, seed=0):
        self.seed = seed
        self.fitted_prompts = []

    def fit(self, X, y):
        self.fitted_prompts.append(set(X["prompt"].to_list()))
        return self

    def predict(self, X):
        keys = [hash((a, b, self.seed)) % 1000 for a, b in zip(X["policy"].to_list(), X["prompt"].to_list())]
        return np.array(keys, dtype=np.float64) / 1000.0


def test_knn_prefix_means_match_knn_mean():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 4)).astype(np.float32)
    q = rng.normal(size=(7, 4)).astype(np.float32)
    v = rng.uniform(size=50)
    got = _knn_prefix_means(q, train, v, [1, 5, 20, 50, 80])
    for k in (1, 5, 20, 50):
        assert np.allclose(got[k], _knn_mean(q, train, v[:, None], k)[:, 0])
    assert set(got) == {1, 5, 20, 50}  # 80 is capped at n_train


def test_router_shrink_fixed_weight_and_prior():
    log = _log(40)
    means = log.group_by("policy").agg(pl.col("score").mean())
    mean = dict(zip(means["policy"].to_list(), means["score"].to_list()))
    r = Router(FakeValueModel(), embedder=FakeEmbedder(), k=4, shrink=0.25).fit(log)
    assert r.shrink_ == 0.25 and r.prior_k_ is None
    P, _ = r.predict_matrix(["new level 5"])
    want = [0.75 * _p_of(p, "new level 5") + 0.25 * mean[p] for p in r.policies_]
    assert np.allclose(P[0], want)
    # local prior: the policy's mean outcome on the prior_k nearest train prompts (level-5 prompts here)
    r = Router(FakeValueModel(), embedder=FakeEmbedder(), k=4, shrink=1.0, prior_k=4).fit(log)
    P, _ = r.predict_matrix(["new level 5"])
    near = log.filter(pl.col("prompt").str.ends_with("level 5")).group_by("policy").agg(pl.col("score").mean())
    near = dict(zip(near["policy"].to_list(), near["score"].to_list()))
    assert np.allclose(P[0], [near[p] for p in r.policies_])
    # no shrink: P untouched
    r = Router(FakeValueModel(), embedder=FakeEmbedder(), k=4).fit(log)
    assert r.shrink_ == 0.0 and np.allclose(
        r.predict_matrix(["new level 5"])[0][0], [_p_of(p, "new level 5") for p in r.policies_]
    )


def test_router_shrink_cv_choice_is_out_of_fold():
    log = _log(60)
    noise = NoiseValueModel()
    r = Router(noise, embedder=FakeEmbedder(), k=4, shrink="cv", cv=3).fit(log)
    # a guessing value model is replaced by the prior almost entirely
    assert r.shrink_ >= 0.8
    sc = r.shrink_scores_
    assert len(sc["brier"]) == len(sc["prior_k"]) and len(sc["brier"][0]) == len(sc["shrink"])
    assert sc["prior_k"][-1] is None
    # a perfect value model keeps (most of) its own predictions
    r_true = Router(FakeValueModel(), embedder=FakeEmbedder(), k=4, shrink="cv", cv=3).fit(log)
    assert r_true.shrink_ < r.shrink_
    # the copies are refitted, never the router's own value model
    assert noise.fitted_prompts == []


def test_router_shrink_cv_folds_hold_out_whole_prompts(monkeypatch):
    import v0lite.routing._shrink as route_mod

    fits = []

    class Recorder(NoiseValueModel):
        def fit(self, X, y):
            fits.append(set(X["prompt"].to_list()))
            return self

    monkeypatch.setattr(route_mod, "_clone", lambda m: Recorder())
    log = _log(30)
    Router(NoiseValueModel(), embedder=FakeEmbedder(), k=4, shrink="cv", cv=3).fit(log)
    prompts = set(log["prompt"].to_list())
    assert len(fits) == 3
    held = [prompts - f for f in fits]
    assert all(h for h in held) and set().union(*held) == prompts
    assert sum(len(h) for h in held) == len(prompts)  # each prompt held out once


def test_router_shrink_errors():
    vm = FakeValueModel()
    for bad in ("yes", 1.5, -0.1):
        with pytest.raises(V0liteError, match="shrink"):
            Router(vm, embedder=FakeEmbedder(), shrink=bad).fit(_log())
    with pytest.raises(V0liteError, match="prior_k"):
        Router(vm, embedder=FakeEmbedder(), shrink=0.5, prior_k=0).fit(_log())
    with pytest.raises(DataError, match="score"):
        Router(vm, embedder=FakeEmbedder(), shrink=0.5).fit(_log().drop("score"))
    with pytest.raises(DataError, match="score"):
        Router(vm, cost_model="fixed", prices={"a": 1.0}, shrink=0.5).fit()
    with pytest.raises(V0liteError, match="cv"):
        Router(vm, embedder=FakeEmbedder(), shrink="cv", cv=1).fit(_log())


# ------------------------------------------------------------------ CLI


def test_route_cli(tmp_path, monkeypatch):
    from v0lite.commands import route as cmd

    monkeypatch.setattr(cmd, "_load_value_model", lambda d, *args: FakeValueModel())
    (tmp_path / "meta.json").write_text("{}")  # the CLI checks --model-dir holds a model before loading it
    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers(dest="command"))
    prompts = tmp_path / "prompts.jsonl"
    pl.DataFrame(
        {"prompt": [f"p{i} level {i}" for i in range(10)], "prompt_id": [str(i) for i in range(10)]}
    ).write_ndjson(prompts)
    out = tmp_path / "routed.csv"
    args = parser.parse_args(
        [
            "route",
            "--model-dir",
            str(tmp_path),
            str(prompts),
            "--pool",
            "small,big",
            "--strategy",
            "threshold",
            "--knob",
            "0.6",
            "--prices",
            json.dumps({"small": 0.1, "big": 1.0}),
            "--out",
            str(out),
        ]
    )
    assert args.func(args) == 0
    res = pl.read_csv(out)
    assert res.columns == ["prompt", "prompt_id", "policy", "p_success", "pred_cost"]
    expect = ["small" if _p_of("small", t) >= 0.6 else "big" for t in res["prompt"].to_list()]
    assert res["policy"].to_list() == expect
    assert set(res["pred_cost"].to_list()) <= {0.1, 1.0}
    args = parser.parse_args(
        [
            "route",
            "--model-dir",
            str(tmp_path),
            str(prompts),
            "--pool",
            "small,big",
            "--strategy",
            "utility",
            "--out",
            str(out),
        ]
    )
    assert args.func(args) == 0
    assert set(pl.read_csv(out)["policy"].to_list()) == {"big"}


# ------------------------------------------------------------------ sweep grid, length cost


def _brute_switches(P, C, grid):
    """Rows whose utility choice differs between consecutive lam values of a fine grid."""
    u = UtilityStrategy()
    prev = u.choose(P, C, grid[0])
    n = 0
    for g in grid[1:]:
        cur = u.choose(P, C, g)
        n += int((cur != prev).sum())
        prev = cur
    return n


def test_switch_points_are_every_change_of_choice():
    rng = np.random.default_rng(3)
    P = rng.uniform(size=(30, 5))
    C = np.tile([0.01, 0.1, 0.3, 1.0, 2.0], (30, 1)) * rng.uniform(0.8, 1.2, size=(30, 5))
    sp = np.sort(_switch_points(P, C))
    assert (sp >= 0).all()
    # stepping lam just past each switch point changes exactly one choice each time
    u = UtilityStrategy()
    assert _brute_switches(P, C, np.concatenate([[0.0], sp * (1 + 1e-9), [sp[-1] * 4]])) == len(sp)
    # the utility grid walks from the most likely routing to the cheapest
    grid = u.knob_grid(P, C, 12)
    assert grid[0] == 0.0 and len(grid) <= 12
    assert (u.choose(P, C, grid[-1]) == C.argmin(axis=1)).all()


def test_knn_cost_uses_prompt_length():
    vm = FakeValueModel()

    class Same:  # every prompt embeds to one point: only length can tell costs apart
        def encode(self, texts):
            return np.ones((len(texts), 2), np.float32)

    rows = []
    for i in range(40):
        prompt = "x" * (10 + 10 * i) + " level 1"
        rows += [
            {"policy": "a", "prompt": prompt, "score": 1.0, "cost": 0.001 * len(prompt)},
            {"policy": "b", "prompt": prompt, "score": 0.0, "cost": 0.5},
        ]
    r = Router(vm, cost_model="knn", embedder=Same(), k=4).fit(pl.DataFrame(rows))
    short, long_ = "y" * 20 + " level 1", "y" * 300 + " level 1"
    C = r.predict_matrix([short, long_])[1]
    assert np.allclose(C[:, 0], [0.001 * len(short), 0.001 * len(long_)], rtol=1e-6)
    assert np.allclose(C[:, 1], 0.5)


# --------------------------------------------------------------------------- scikit-learn contract, save/load


def _fitted_v0(log):
    from conftest import FakeEncoder

    from v0lite.estimator import V0Regressor

    return V0Regressor(head="knn", k=4, encoder=FakeEncoder()).fit(log.select("policy", "prompt", "score"))


PRICES3 = {"small": 0.1, "mid": 0.4, "big": 1.0}


def test_router_fit_leaves_params_alone_and_predict_is_route():
    emb = FakeEmbedder()
    r = Router(FakeValueModel(), embedder=emb, k=4, shrink="cv", cv=3)
    before = r.get_params(deep=False)
    r.fit(_log())
    after = r.get_params(deep=False)
    assert before.keys() == after.keys() and all(after[k] is before[k] for k in before)
    assert r.embedder_ is emb and r.shrink == "cv" and isinstance(r.shrink_, float)
    unpriced = Router(FakeValueModel(), cost_model="fixed", prices=PRICES3).fit()
    assert unpriced.embedder is None and unpriced.embedder_ is None  # nothing needed one
    prompts = ["new level 1", "new level 8"]
    assert r.predict(prompts, lam=0.5).tolist() == r.route(prompts, lam=0.5).tolist()


def test_router_clone_keeps_the_fitted_value_model():
    from sklearn.base import clone

    log = _log()
    vm = _fitted_v0(log)
    r = Router(vm, embedder=FakeEmbedder(), k=4).fit(log)
    c = clone(r)
    assert c.value_model is vm and not hasattr(c, "cost_model_")
    prompts = ["new level 2", "new level 7"]
    assert c.fit(log).route(prompts, lam=0.3).tolist() == r.route(prompts, lam=0.3).tolist()


def test_router_fit_rejects_an_unfitted_or_wrong_value_model():
    from conftest import FakeEncoder

    from v0lite.estimator import V0Regressor

    with pytest.raises(NotFittedError, match="value_model V0Regressor is not fitted"):
        Router(V0Regressor(encoder=FakeEncoder()), embedder=FakeEmbedder()).fit(_log())
    with pytest.raises(V0liteError, match="must have predict"):
        Router(object(), embedder=FakeEmbedder()).fit(_log())


@pytest.mark.parametrize("kw", [dict(k=4), dict(k=4, shrink=0.5, prior_k=4), dict(cost_model="fixed", prices=PRICES3)])
def test_router_save_load_round_trip(tmp_path, kw):
    log = _log()
    vm = _fitted_v0(log)
    r = Router(vm, embedder=FakeEmbedder(), **kw).fit(log)
    r.save(tmp_path / "router")
    back = Router.load(tmp_path / "router", embedder=FakeEmbedder())
    prompts = [f"new level {d}" for d in range(10)]
    P, C = r.predict_matrix(prompts)
    P2, C2 = back.predict_matrix(prompts)
    np.testing.assert_array_equal(P, P2)
    np.testing.assert_array_equal(C, C2)
    for lam in (0.0, 0.3, 3.0):
        assert back.route(prompts, lam=lam).tolist() == r.route(prompts, lam=lam).tolist()
    assert back.get_params(deep=False).keys() == r.get_params(deep=False).keys()
    assert (back.shrink_, back.prior_k_, back.policies_) == (r.shrink_, r.prior_k_, r.policies_)
    assert not list(tmp_path.glob(".router*"))  # no temporary folder left behind


def test_a_saved_router_is_readable_by_others_as_the_umask_allows(tmp_path):
    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    before = os.umask(0o022)
    try:
        r.save(tmp_path / "router")
    finally:
        os.umask(before)
    folder = tmp_path / "router"
    modes = {f: f.stat().st_mode & 0o777 for f in [folder, *folder.rglob("*")]}
    assert folder / "arrays.safetensors" in modes and folder / "value_model" / "history.safetensors" in modes
    wrong = {str(f): oct(m) for f, m in modes.items() if m != (0o755 if f.is_dir() else 0o644)}
    assert not wrong, wrong


def test_router_save_load_rejects_corruption_and_needs_an_unsaveable_value_model(tmp_path):
    from v0lite.exceptions import FormatVersionError

    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    r.save(tmp_path / "r")
    f = tmp_path / "r" / "arrays.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(FormatVersionError, match="checksum"):
        Router.load(tmp_path / "r", embedder=FakeEmbedder())
    with pytest.raises(FormatVersionError, match="no meta.json"):
        Router.load(tmp_path, embedder=FakeEmbedder())
    with pytest.raises(NotFittedError):
        Router(FakeValueModel()).save(tmp_path / "unfitted")
    r = Router(FakeValueModel(), embedder=FakeEmbedder(), k=4).fit(log)
    r.save(tmp_path / "fake")
    with pytest.raises(V0liteError, match="value_model=model"):
        Router.load(tmp_path / "fake")
    back = Router.load(tmp_path / "fake", value_model=FakeValueModel(), embedder=FakeEmbedder())
    assert back.route(["new level 3"]).tolist() == r.route(["new level 3"]).tolist()


# --------------------------------------------------------------------------- online: add_history


def test_router_add_history_new_model_joins_the_pool_and_is_routed_to(tmp_path):
    log = _log()
    vm = _fitted_v0(log)
    r = Router(vm, embedder=FakeEmbedder(), k=4).fit(log)
    prompts = [f"new level {d}" for d in range(10)]
    before = r.route(prompts, lam=0.0).tolist()
    # a new, cheap model that solves everything: once its outcomes arrive it wins at lam=0 on price ties
    rows = pl.DataFrame(
        {"policy": ["star"] * 20, "prompt": [f"q{i} level {i % 10}" for i in range(20)], "score": [1.0] * 20}
    )
    r.add_history(rows, prices={"star": 0.05})
    assert r.policies_[-1] == "star" and r.added_prices_ == {"star": 0.05}
    P, C = r.predict_matrix(prompts)
    assert P.shape == C.shape == (10, 4) and np.allclose(C[:, -1], 0.05)
    after = r.route(prompts, lam=1.0).tolist()
    assert set(after) == {"star"} and after != before
    # saved and loaded: the joined model and its price come back
    r.save(tmp_path / "router")
    back = Router.load(tmp_path / "router", embedder=FakeEmbedder())
    assert back.policies_ == r.policies_ and back.added_prices_ == r.added_prices_
    np.testing.assert_array_equal(back.predict_matrix(prompts)[1], C)


def test_router_set_prices_replaces_learned_costs_and_keeps_joined_columns():
    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    rows = pl.DataFrame({"policy": ["star"] * 4, "prompt": [f"q{i} level {i}" for i in range(4)], "score": [1.0] * 4})
    r.add_history(rows, prices={"star": 0.05})
    prompts = ["new level 2", "new level 7"]
    P0 = r.predict_matrix(prompts)[0]
    with pytest.raises(DataError, match=r"no price for 1 of the 4 pool models: \['star'\]"):
        r.set_prices({"big": 1.0, "mid": 0.5, "small": 0.1})
    assert r.added_prices_ == {"star": 0.05}  # a refused call changes nothing
    with pytest.raises(DataError, match=r"got one str \('star'\)\. Fix: join_costs\(\['star'\]\)"):
        r.join_costs("star")
    for bad in ("0.5", True):  # float() would read them as 0.5 and 1.0
        with pytest.raises(DataError, match=r"prices\['big'\] = .* is not a number"):
            r.set_prices({"big": bad, "mid": 0.5, "small": 0.1, "star": 0.2})
    assert r.set_prices({"big": 1.0, "mid": 0.5, "small": 0.1, "star": 0.2, "other": 9}) is r
    P, C = r.predict_matrix(prompts)
    np.testing.assert_array_equal(P, P0)  # only the cost side moves
    np.testing.assert_allclose(C, np.tile([1.0, 0.5, 0.1, 0.2], (2, 1)))
    assert r.policies_ == ["big", "mid", "small", "star"] and r.added_prices_ == {"star": 0.2}


def test_router_add_history_prices_from_cost_rows_or_warns_and_changes_nothing_on_error():
    log = _log()
    vm = _fitted_v0(log)
    r = Router(vm, embedder=FakeEmbedder(), k=4).fit(log)
    n0 = vm.n_history_
    rows = pl.DataFrame({"policy": ["c1", "c1"], "prompt": ["q1 level 1", "q2 level 2"], "score": [1.0, 0.0]})
    r.add_history(rows.with_columns(pl.lit(0.2).alias("cost")))
    assert r.added_prices_ == {"c1": pytest.approx(0.2)} and vm.n_history_ == n0 + 2
    with pytest.warns(V0liteWarning, match="no known cost"):
        r.add_history(rows.with_columns(pl.lit("c2").alias("policy")))
    assert "c2" not in r.policies_ and vm.n_history_ == n0 + 4  # its outcomes still reach the value model
    # a bad row: nothing changes, neither the pool nor the value model
    bad = rows.with_columns(pl.Series("score", [1.0, 7.0]), pl.lit("c3").alias("policy"))
    with pytest.raises(DataError, match="score"):
        r.add_history(bad, prices={"c3": 0.1})
    assert "c3" not in r.policies_ and vm.n_history_ == n0 + 4
    with pytest.raises(V0liteError, match="add_history"):
        Router(FakeValueModel(), embedder=FakeEmbedder(), k=4).fit(log).add_history(rows, prices={"c1": 1.0})


def test_router_join_costs_is_add_historys_rule_and_the_warning_names_every_unpriced_model():
    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    known = r.policies_[0]
    rows = pl.DataFrame({"policy": ["c1", "c2"], "prompt": ["q1 level 1", "q2 level 2"], "score": [1.0, 0.0]})
    joining, unpriced = r.join_costs(
        [known, "c1", "c2", "c3"], {"c3": 0.4}, log=rows.with_columns(pl.Series("cost", [0.2, None]))
    )
    assert joining == {"c1": pytest.approx(0.2), "c3": 0.4} and unpriced == ["c2"]  # the pool's own are skipped
    with pytest.warns(UnpricedPolicyWarning, match=r"prices=\{'c1': <cost per call>, 'c2': <cost per call>\}"):
        r.add_history(rows)
    assert r.policies_[-1] != "c2" and r.join_costs(["c1"]) == ({}, ["c1"])
    with pytest.raises(DataError, match="price"):
        r.join_costs(["c4"], {"c4": -1.0})


def test_router_fit_without_a_log_pools_the_priced_policies_it_has_history_for():
    """Issue: a fitted policy without a price vanished silently; a priced name without history (a typo, a model
    still to come) joined the pool, and route() failed later. Now the first is named in a warning and the second
    waits for its outcomes, joining through add_history at the router's price."""
    log = _log()
    vm = _fitted_v0(log)  # knows big, mid, small
    prices = {"big": 1.0, "mid": 0.4, "later": 0.05}
    with pytest.warns(V0liteWarning, match=r"\['small'\] have history in the value model but no price") as caught:
        r = Router(vm, cost_model="fixed", prices=prices).fit()
    assert "['later']" in str(caught[0].message) and "prices={'small': <cost per call>}" in str(caught[0].message)
    assert r.policies_ == ["big", "mid"]
    assert r.route(["new level 3"]).tolist() in (["big"], ["mid"])  # routes, no unknown-policy error
    rows = pl.DataFrame(
        {"policy": ["later"] * 3, "prompt": ["q1 level 1", "q2 level 2", "q3 level 3"], "score": [1.0] * 3}
    )
    r.add_history(rows)
    assert r.policies_ == ["big", "mid", "later"] and r.added_prices_ == {"later": 0.05}
    vm = _fitted_v0(log)  # the router's add_history grew the first one
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every fitted policy priced: no warning
        assert Router(vm, cost_model="fixed", prices=PRICES3).fit().policies_ == ["big", "mid", "small"]
        assert Router(vm, policies=["big", "mid"], cost_model="fixed", prices=PRICES3).fit().policies_ == ["big", "mid"]
    with pytest.raises(DataError, match=r"none of the 1 priced policies has history.*Fix: pass prices"):
        Router(vm, cost_model="fixed", prices={"typo": 1.0}).fit()


def test_router_add_history_warns_about_the_prices_it_ignores():
    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    rows = pl.DataFrame({"policy": ["big", "new"], "prompt": ["q1 level 1", "q2 level 2"], "score": [1.0, 0.0]})
    with pytest.warns(V0liteWarning, match="ignored prices entries") as caught:
        r.add_history(rows, prices={"big": 9.0, "new": 0.2, "ghost": 0.3})
    text = str(caught[0].message)
    assert "['big'] are already in the pool (their cost comes from the cost model)" in text
    assert "['ghost'] have no rows in this log (nothing to join)" in text and "'new'" not in text
    assert r.added_prices_ == {"new": 0.2} and r.predict_matrix(["q9 level 9"])[1][0, 0] != 9.0
    with pytest.warns(
        V0liteWarning, match=r"\['new'\] are already in the pool \(they joined at a price per call: 'new' at 0.2"
    ):
        r.add_history(rows.filter(pl.col("policy") == "new"), prices={"new": 0.5})
    assert r.added_prices_ == {"new": 0.2}
    with pytest.warns(V0liteWarning, match=r"\['other'\] do not join with join=False"):
        r.add_history(rows.with_columns(pl.lit("other").alias("policy")), prices={"other": 0.1}, join=False)
    assert "other" not in r.policies_
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # prices only for the policies that join: nothing to say
        r.add_history(rows.with_columns(pl.lit("fresh").alias("policy")), prices={"fresh": 0.1})
    assert r.added_prices_["fresh"] == 0.1


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("strategy", "nope"),
        ("cost_model", {"name": "nope", "meta": {}}),
        ("prior_columns", [99]),
        ("shrink", "half"),
        ("params", {"evil": 1}),
        ("policies", 7),
    ],
)
def test_router_load_is_total(tmp_path, guarantees, key, value):
    """Edited router meta.json values (checksums recomputed, as a deliberate edit would): a FormatVersionError
    with the fix, never a TypeError/KeyError traceback."""
    import json

    from v0lite.exceptions import FormatVersionError
    from v0lite.persist import _meta_digest

    log = _log()
    Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4, shrink=0.5, prior_k=4).fit(log).save(tmp_path / "r")
    mfile = tmp_path / "r" / "meta.json"
    meta = json.loads(mfile.read_text())
    if key == "strategy":
        meta["params"]["strategy"] = value
    else:
        meta[key] = value
    meta["meta_sha256"] = _meta_digest(meta)
    mfile.write_text(json.dumps(meta))
    with pytest.raises(FormatVersionError, match=r"meta.json: .*Fix: re-save the router"):
        Router.load(tmp_path / "r", embedder=FakeEmbedder())
    guarantees.tick("corruptions detected")


def test_router_save_never_deletes_what_it_did_not_write(tmp_path):
    from v0lite.exceptions import DataError

    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("mine")
    with pytest.raises(DataError, match=r"precious: holds files v0lite did not write \(thesis.txt\)"):
        r.save(tmp_path / "precious")
    assert (tmp_path / "precious" / "thesis.txt").read_text() == "mine"
    r.save(tmp_path / "router")
    r.save(tmp_path / "router")  # its own folder: replaced
    with pytest.raises(DataError, match="holds a v0lite-router folder, not a v0lite-model one"):
        r.value_model.save(tmp_path / "router")


# ------------------------------------------------------------------ probe: route input, prices, params


def _route_files(tmp_path):
    """A fitted prior model (the CLI's fake encoder), a cost log of pol0 and pol1 only, and prompts."""
    from conftest import make_log

    from v0lite.cli import main
    from v0lite.log import write_log

    log = make_log(3, 12)
    hist = write_log(log, tmp_path / "hist.jsonl")
    assert main(["fit", str(hist), "--model-dir", str(tmp_path / "m"), "--head", "prior", "-q"]) == 0
    costs = log.filter(pl.col("policy") != "pol2").with_columns(
        pl.col("policy").replace_strict({"pol0": 0.001, "pol1": 0.01}, return_dtype=pl.Float64).alias("cost")
    )
    cost_log = write_log(costs, tmp_path / "costs.jsonl")
    prompts = tmp_path / "prompts.csv"
    pl.DataFrame({"prompt": ["add the numbers 7", "sort the list 9"]}).write_csv(prompts)
    return tmp_path / "m", cost_log, prompts


def test_route_cli_prompts_with_a_header_only_stop_before_writing(tmp_path, capsys, fake_minilm, guarantees):
    """Probe 1: a header-only PROMPTS ended in a TypeError traceback after --out was written."""
    from v0lite.cli import main

    model, _, _ = _route_files(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("prompt\n")
    out = tmp_path / "c.csv"
    argv = ["route", str(empty), "--model-dir", str(model), "--pool", "pol0,pol1", "--out", str(out), "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"PROMPTS {empty}: has no rows" in err and "Fix:" in err and "Traceback" not in err
    assert not out.exists()
    guarantees.tick("bad-input cases tried")


def test_route_cli_prices_with_cost_log_never_drop_a_price_silently(tmp_path, capsys, fake_minilm, guarantees):
    """Probe 2: --prices beside --cost-log was ignored for the logged models; a model missing from the cost
    log got a Python fix (prices={...}) instead of the flag."""
    from v0lite.cli import main

    model, cost_log, prompts = _route_files(tmp_path)
    out = tmp_path / "c.csv"
    base = ["route", str(prompts), "--model-dir", str(model), "--cost-log", str(cost_log), "--out", str(out), "-q"]
    all3 = json.dumps({"pol0": 0.5, "pol1": 0.6, "pol2": 0.7})
    assert main([*base, "--prices", all3]) == 1  # the pool is the priced models, two of them in the cost log
    err = capsys.readouterr().err
    assert "--prices gives a price for ['pol0', 'pol1']" in err and "pass one of --prices / --cost-log" in err
    assert main([*base, "--pool", "pol0,pol1,pol2"]) == 1
    err = capsys.readouterr().err
    assert "has no cost for the pool models ['pol2']" in err and "--prices '{\"pol2\": 0.001}'" in err
    assert "prices={" not in err
    assert not out.exists()
    assert main([*base, "--pool", "pol0,pol1,pol2", "--prices", '{"pol2": 0.7}']) == 0  # the documented use
    routed = pl.read_csv(out)  # each model at its cost: pol0, pol1 learned from the log, pol2 at its --prices
    price = {"pol0": 0.001, "pol1": 0.01, "pol2": 0.7}
    assert routed["pred_cost"].to_list() == pytest.approx([price[p] for p in routed["policy"].to_list()])
    assert main(["route", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "with --cost-log, only the pool models it has no cost for" in help_text
    guarantees.tick("bad-input cases tried", 2)


def test_route_cli_prices_inline_json_not_an_object(tmp_path, capsys, fake_minilm):
    """Probe 7b: --prices [1,2] said 'does not exist'."""
    from v0lite.cli import main

    model, _, prompts = _route_files(tmp_path)
    argv = ["route", str(prompts), "--model-dir", str(model), "--out", str(tmp_path / "c.csv"), "--prices", "[1,2]"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "inline JSON must be an object" in err and "got a list" in err and "does not exist" not in err


def test_router_policies_given_as_one_str_is_an_error():
    """Probe 5: policies="large" became the pool ['l', 'a', 'r', 'g', 'e']."""
    with pytest.raises(DataError, match=r"got one str \('large'\)\. Fix: Router\(\.\.\., policies=\['large'\]\)"):
        Router(FakeValueModel(), policies="large", cost_model="unit").fit()


def test_router_set_prices_updates_the_params_so_save_load_and_refit_keep_them(tmp_path):
    """Probe 6: after set_prices, cost_model still said 'knn' (a refit went back to learned costs) and a
    loaded router had cost_model='fixed' without its prices (a refit failed)."""
    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    new = {"big": 2.0, "mid": 0.5, "small": 0.05}
    r.set_prices(new)
    assert r.get_params()["cost_model"] == "fixed" and r.get_params()["prices"] == new
    prompts = ["new level 2", "new level 7"]
    want = np.tile([new[p] for p in r.policies_], (2, 1))
    np.testing.assert_allclose(r.fit(log).predict_matrix(prompts)[1], want)  # a refit keeps the prices
    r.save(tmp_path / "router")
    back = Router.load(tmp_path / "router", embedder=FakeEmbedder())
    assert back.get_params()["cost_model"] == "fixed" and back.get_params()["prices"] == new
    np.testing.assert_allclose(back.fit(log).predict_matrix(prompts)[1], want)
    assert back.route(prompts, lam=0.0).tolist() == r.route(prompts, lam=0.0).tolist()


def test_router_strategy_set_after_fit_says_to_fit_again():
    """Probe 7d: set_params(strategy='budget') without a refit blamed strategy 'utility'."""
    r = Router(FakeValueModel(), cost_model="fixed", prices=PRICES3).fit()
    r.set_params(strategy="budget")
    with pytest.raises(V0liteError, match=r"strategy='budget' was set after fit.*'utility'\. Fix: call fit\(log\)"):
        r.route(["new level 3"], budget=0.5)
    assert r.fit().route(["new level 3"], budget=0.5).tolist()[0] in PRICES3  # refitted: budget routes
    r.set_params(k=8)  # a parameter other than the strategy: routing goes on
    r.route(["new level 3"], budget=0.5)
