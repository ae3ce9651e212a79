"""Tests of v0lite.routing: strategies, cost models, Router, and the ``route`` CLI command."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from v0lite.exceptions import DataError, NotFittedError, V0liteError, V0liteWarning
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


@pytest.mark.parametrize("strategy, knob", [("threshold", 0.999), ("budget", 0.0), ("quality-target", 0.9999)])
def test_a_strategys_fallback_warning_names_the_users_line(strategy, knob):
    """The threshold warning (stacklevel 2) named the line of _router.py that called the strategy when the user
    called Router.route; budget's and quality-target's (stacklevel 3) did too: one frame count cannot fit every
    public path to choose. Each path now warns at the line that called it, here this file."""
    import warnings

    r = Router(FakeValueModel(), embedder=FakeEmbedder(), k=4, strategy=strategy).fit(_log())
    prompts = ["new level 5", "new level 9"]
    P, C = r.predict_matrix(prompts)
    calls = {
        "route": lambda: r.route(prompts, knob=knob),
        "predict": lambda: r.predict(prompts, knob=knob),
        "choose": lambda: r.choose(P, C, knob=knob),
        "strategy": lambda: r.strategy_.choose(P, C, knob),
    }
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        said = [(w.filename, w.category) for w in caught]
        assert said == [(__file__, V0liteWarning)], (name, [(w.filename, w.lineno, str(w.message)) for w in caught])


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
