"""The evaluation's building blocks: the cost-accuracy hull, AIQ against its definition, APGR and CPT,
the oracle and best single model, and the kNN and group router baselines."""

from __future__ import annotations

import numpy as np
import pytest

from v0lite.exceptions import V0liteError
from v0lite.routing import (
    aiq,
    apgr,
    best_single,
    cost_at_accuracy,
    cpt,
    group_router_baseline,
    knn_router_baseline,
    non_decreasing_hull,
    oracle,
    tune_knn_router,
)

# ------------------------------------------------------------------ hull and AIQ


def test_hull_drops_points_below_and_after_the_top():
    hc, ha = non_decreasing_hull([1, 2, 3, 4, 0.5], [0.5, 0.6, 0.9, 0.8, 0.2])
    assert hc.tolist() == [0.5, 1.0, 3.0] and ha.tolist() == [0.2, 0.5, 0.9]
    # duplicate cost keeps the better point; a cheap best point is the whole hull
    hc, ha = non_decreasing_hull([1, 1, 2], [0.3, 0.9, 0.5])
    assert hc.tolist() == [1.0] and ha.tolist() == [0.9]


def test_aiq_hand_computed():
    # hull (1, .5) -> (3, .9); (2, .6) lies below the chord, (4, .8) after the top;
    # flat extension (3, .9) -> (5, .9). Area = 2 * .7 + 2 * .9 = 3.2; / c_max 5
    assert aiq([1, 2, 3, 4], [0.5, 0.6, 0.9, 0.8], c_max=5.0) == pytest.approx(0.64)
    # a curve reaching past c_max is cut at c_max by interpolation: (1,.5)->(2,.7), area .6 / 2
    assert aiq([1, 3], [0.5, 0.9], c_max=2.0) == pytest.approx(0.3)
    # a single point: flat extension only
    assert aiq([2.0], [0.5], c_max=4.0) == pytest.approx(0.25)
    assert aiq([5.0], [0.5], c_max=4.0) == 0.0
    with pytest.raises(V0liteError):
        aiq([1.0], [0.5], c_max=0.0)


def _aiq_by_definition(costs, accs, c_max, n_grid=40001):
    """RouterBench's AIQ from its definition, numerically: at every cost the best random mix of two
    points at or below it (the upper concave envelope, made non-decreasing, flat after the last
    point), integrated from the cheapest point to c_max and divided by c_max."""
    c, a = np.asarray(costs, float), np.asarray(accs, float)
    x = np.linspace(c.min(), c_max, n_grid)
    env = np.full_like(x, -np.inf)
    for i in range(c.size):
        for j in range(c.size):
            if c[i] <= c[j]:
                inside = (x >= c[i]) & (x <= c[j])
                t = 0.0 if c[j] == c[i] else (x[inside] - c[i]) / (c[j] - c[i])
                env[inside] = np.maximum(env[inside], a[i] + t * (a[j] - a[i]))
    env[x > c.max()] = -np.inf
    f = np.maximum.accumulate(env)  # non-decreasing; flat after the last point
    return float(np.sum(np.diff(x) * (f[1:] + f[:-1]) * 0.5)) / c_max


def test_aiq_matches_the_definition_on_random_curves():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n = int(rng.integers(1, 12))
        costs = rng.uniform(0.1, 1.0, n)
        accs = np.clip(0.4 + 0.5 * np.sqrt(costs) + rng.normal(0, 0.08, n), 0, 1)
        c_max = float(costs.max() * rng.choice([0.8, 1.0, 1.5]))
        if costs.min() >= c_max:
            continue
        assert aiq(costs, accs, c_max) == pytest.approx(_aiq_by_definition(costs, accs, c_max), abs=2e-4), trial


def test_cost_at_accuracy_uses_hull_interpolation():
    curve = {"cost": [1, 2, 3, 4], "acc": [0.5, 0.6, 0.9, 0.8]}
    assert cost_at_accuracy(curve, 0.7) == pytest.approx(2.0)  # on the hull, not the raw point (2, .6)
    assert cost_at_accuracy(curve, 0.4) == pytest.approx(1.0)
    assert cost_at_accuracy(curve, 0.9) == pytest.approx(3.0)
    assert cost_at_accuracy(curve, 0.91) is None


def test_apgr_cpt_toy_two_model_case():
    frac, acc = [0.0, 0.5, 1.0], [0.5, 0.8, 0.9]
    assert apgr(frac, acc, 0.5, 0.9) == pytest.approx(0.625)
    assert cpt(frac, acc, 0.5, 0.9, 0.5) == pytest.approx(1 / 3)
    assert cpt(frac, acc, 0.5, 0.9, 0.8) == pytest.approx(0.6)
    # a random router (the straight line) recovers half the gap; end points are added
    assert apgr([0.25, 0.75], [0.6, 0.8], 0.5, 0.9) == pytest.approx(0.5)
    assert cpt([0.5], [0.55], 0.5, 0.9, 0.5) == pytest.approx(0.5 + 0.5 * (0.2 - 0.05) / 0.35)
    assert apgr(frac, acc, 0.7, 0.7) is None and cpt(frac, acc, 0.7, 0.7, 0.5) is None
    assert cpt([0.0, 1.0], [0.5, 0.7], 0.5, 0.7, 1.01) is None


def test_oracle_and_best_single():
    Y = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 0], [0, 0, 1]], dtype=float)
    C = np.tile([0.5, 0.2, 1.0], (4, 1))
    idx, acc, cost = oracle(Y, C)
    assert idx.tolist() == [1, 1, 1, 2]  # cheapest correct, else cheapest
    assert acc == pytest.approx(0.75) and cost == pytest.approx((0.2 * 3 + 1.0) / 4)
    b = best_single(Y, C, ["a", "b", "c"])
    assert b["model"] == "b" and b["acc"] == pytest.approx(0.5) and b["cost"] == pytest.approx(0.2)


def test_knn_router_baseline():
    tr = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    Y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    costs = np.array([[1.0, 2.0], [3.0, 2.0], [1.0, 4.0], [1.0, 4.0]])
    te = np.array([[1, 0.05], [0.05, 1]], dtype=np.float32)
    P, C = knn_router_baseline(tr, Y, costs, te, k=2)
    assert P.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert np.allclose(C, [[1.5, 3.0], [1.5, 3.0]])
    P, C = knn_router_baseline(tr, Y, costs, te, k=2, cost="knn")
    assert np.allclose(C, [[2.0, 2.0], [1.0, 4.0]])
    P, _ = knn_router_baseline(tr, Y, costs, te, k=100)  # k capped at n_train
    assert np.allclose(P, 0.5)


def _clustered(n_per: int, seed: int, spread: float):
    """Two prompt clusters; model 0 (cheap) succeeds in cluster 0 only, model 1 (dear) always."""
    rng = np.random.default_rng(seed)
    centers = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    lab = np.repeat([0, 1], n_per)
    E = centers[lab] + spread * rng.normal(size=(lab.size, 3))
    Y = np.stack(
        [
            (rng.uniform(size=lab.size) < np.where(lab == 0, 0.9, 0.1)).astype(float),
            (rng.uniform(size=lab.size) < 0.95).astype(float),
        ],
        axis=1,
    )
    return E.astype(np.float32), Y


def test_group_router_baseline_means_per_group_and_fallback():
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    C = np.array([[1.0, 4.0], [3.0, 2.0], [1.0, 2.0], [1.0, 4.0]])
    P, Cp = group_router_baseline(["a", "b", "b", "a"], Y, C, ["b", "a", "new"])
    np.testing.assert_allclose(P, [[0.5, 1.0], [0.5, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(Cp, [[2.0, 2.0], [1.0, 4.0], [1.5, 3.0]])
    with pytest.raises(V0liteError, match="same train prompts"):
        group_router_baseline(["a"], Y, C, ["a"])


def test_tune_knn_router_prefers_a_small_k_on_local_structure():
    E, Y = _clustered(60, seed=0, spread=0.05)
    k, scores = tune_knn_router(E, Y, np.array([0.1, 1.0]), ks=(4, 16, 200), cv=4)
    assert scores["criterion"] == "aiq" and scores["cv"] == 4
    assert scores["k"] == [4, 16, 90]  # 200 capped at the fitted folds' size (120 - 30)
    assert k in (4, 16) and scores["score"][scores["k"].index(k)] > scores["score"][-1]
    # deterministic for a seed; k and scores are plain Python values
    assert tune_knn_router(E, Y, np.array([0.1, 1.0]), ks=(4, 16, 200), cv=4) == (k, scores)
    # equal costs: scored by the accuracy of the most likely model
    k2, s2 = tune_knn_router(E, Y, np.ones((120, 2)), ks=(4, 200), cv=4)
    assert s2["criterion"] == "acc" and k2 == 4 and all(0 <= v <= 1 for v in s2["score"])


def test_tune_knn_router_ties_go_to_the_smaller_k_and_errors():
    E = np.ones((20, 2), dtype=np.float32)
    Y = np.tile([1.0, 0.0], (20, 1))  # every k predicts the same
    k, scores = tune_knn_router(E, Y, np.array([1.0, 2.0]), ks=(8, 2, 4), cv=2)
    assert k == 2 and scores["k"] == [2, 4, 8]
    with pytest.raises(V0liteError, match="cv"):
        tune_knn_router(E, Y, np.array([1.0, 2.0]), cv=1)
    with pytest.raises(V0liteError, match="train_outcomes"):
        tune_knn_router(E, Y[:5], np.array([1.0, 2.0]))
    with pytest.raises(V0liteError, match="train_costs"):
        tune_knn_router(E, Y, np.ones((20, 3)))
    with pytest.raises(V0liteError, match="ks"):
        tune_knn_router(E, Y, np.array([1.0, 2.0]), ks=(0,))


def test_tuned_knn_scores_by_aiq_in_any_cost_unit():
    """The tuned kNN baseline called a pool 'degenerate' (one cost: score by accuracy) when its prices spread
    less than an absolute 1e-12: prices of 1e-15 per call were scored by accuracy, at 1 by AIQ."""
    from v0lite.routing._baselines import tune_knn_router

    rng = np.random.default_rng(0)
    E = rng.normal(size=(60, 4))
    Y = (rng.uniform(size=(60, 2)) < 0.5).astype(float)
    at_one = tune_knn_router(E, Y, np.array([1.0, 2.0]), ks=(4, 8), cv=3)
    tiny = tune_knn_router(E, Y, np.array([1.0, 2.0]) * 1e-15, ks=(4, 8), cv=3)
    assert at_one[1]["criterion"] == tiny[1]["criterion"] == "aiq" and at_one[0] == tiny[0]
