"""The utility ``lam`` equivalent to a budget or a quality target (``critical_lam``)."""

import warnings

import numpy as np
import pytest

from v0lite.exceptions import V0liteWarning
from v0lite.routing import BudgetStrategy, QualityTargetStrategy, UtilityStrategy


def _batch(seed=0, n=200, m=4):
    rng = np.random.default_rng(seed)
    P = rng.uniform(0.1, 0.95, size=(n, m))
    C = np.sort(rng.uniform(0.001, 0.02, size=(n, m)), axis=1)
    P = np.sort(P, axis=1)  # dearer models more likely, as in a real pool
    return P, C


def _take(M, idx):
    return M[np.arange(M.shape[0]), idx]


@pytest.mark.parametrize("frac", [0.2, 0.5, 0.8])
def test_budget_lam_meets_budget_and_tracks_the_batch_routing(frac):
    P, C = _batch()
    lo, hi = _take(C, C.argmin(axis=1)).mean(), _take(C, P.argmax(axis=1)).mean()
    budget = lo + frac * (hi - lo)
    s = BudgetStrategy()
    lam = s.critical_lam(P, C, budget)
    assert lam > 0
    per_prompt = UtilityStrategy().choose(P, C, lam)
    assert _take(C, per_prompt).mean() <= budget + 1e-12  # the utility rule keeps the budget on this batch
    batch = s.choose(P, C, budget)
    # and is the batch routing up to the prompts the greedy fill splits at the critical lam
    assert (per_prompt != batch).mean() < 0.05
    assert _take(P, batch).mean() - _take(P, per_prompt).mean() < 0.01
    # a slightly smaller lam overspends: lam is the critical value, not any feasible one
    assert _take(C, UtilityStrategy().choose(P, C, lam * 0.99)).mean() > budget


@pytest.mark.parametrize("frac", [0.2, 0.5, 0.8])
def test_quality_target_lam_meets_target(frac):
    P, C = _batch(1)
    lo, hi = _take(P, C.argmin(axis=1)).mean(), P.max(axis=1).mean()
    target = lo + frac * (hi - lo)
    s = QualityTargetStrategy()
    lam = s.critical_lam(P, C, target)
    assert lam > 0
    per_prompt = UtilityStrategy().choose(P, C, lam)
    assert _take(P, per_prompt).mean() >= target - 1e-12
    assert _take(P, UtilityStrategy().choose(P, C, lam * 1.01)).mean() < target  # the largest such lam
    assert (per_prompt != s.choose(P, C, target)).mean() < 0.05


def test_critical_lam_ends():
    P, C = _batch(2)
    cheapest = C.argmin(axis=1)
    best_cost = _take(C, P.argmax(axis=1)).mean()
    assert BudgetStrategy().critical_lam(P, C, best_cost * 2) == 0.0  # the most likely routing fits
    lam = BudgetStrategy().critical_lam(P, C, _take(C, cheapest).mean())
    assert np.isfinite(lam)
    assert (UtilityStrategy().choose(P, C, lam) == cheapest).all()
    with pytest.warns(V0liteWarning, match="below the cheapest"):
        lam = BudgetStrategy().critical_lam(P, C, 1e-9)
    assert (UtilityStrategy().choose(P, C, lam) == cheapest).all()
    lam = QualityTargetStrategy().critical_lam(P, C, 0.0)
    assert np.isfinite(lam) and (UtilityStrategy().choose(P, C, lam) == cheapest).all()
    with pytest.warns(V0liteWarning, match="above the best"):
        assert QualityTargetStrategy().critical_lam(P, C, 1.0) == 0.0


def test_choose_is_unchanged_and_warns_at_the_caller():
    P = np.array([[0.2, 0.9], [0.6, 0.7]])
    C = np.array([[0.0, 1.0], [0.0, 1.0]])
    assert BudgetStrategy().choose(P, C, 0.5).tolist() == [1, 0]
    assert QualityTargetStrategy().choose(P, C, 0.75).tolist() == [1, 0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BudgetStrategy().choose(P, C + 1.0, 0.5)
    assert caught and caught[0].filename == __file__
