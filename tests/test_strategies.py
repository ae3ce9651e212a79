"""The routing strategies at the edges of their promises: any cost unit, a huge ``lam``, a knob's type."""

import re
import warnings

import numpy as np
import pytest

from v0lite.exceptions import ParameterError, V0liteError, V0liteWarning
from v0lite.routing import BudgetStrategy, QualityTargetStrategy, UtilityStrategy, get_strategy


def _take(M, idx):
    return M[np.arange(M.shape[0]), idx]


@pytest.mark.parametrize("unit", [1.0, 1e-3, 1e-6, 1e-8, 1e-9, 1e-15])
def test_budget_holds_in_any_cost_unit(unit):
    """Probe AE: the tolerance was an absolute 1e-9, so a 1e-8 budget bought a 1.09e-8 call (9% over)."""
    P = np.array([[0.5, 0.9]])
    C = np.array([[1.0, 1.09]]) * unit
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # feasible: no warning
        assert BudgetStrategy().choose(P, C, unit).tolist() == [0]
    rng = np.random.default_rng(0)  # a batch: mean cost <= budget at every unit, the budget mostly used
    Pb, Cb = np.sort(rng.uniform(0.1, 0.9, (50, 4)), axis=1), np.sort(rng.uniform(1, 5, (50, 4)), axis=1) * unit
    lo, hi = _take(Cb, Cb.argmin(1)).mean(), _take(Cb, Pb.argmax(1)).mean()
    for budget in np.linspace(lo, hi, 7)[1:-1]:
        idx = BudgetStrategy().choose(Pb, Cb, budget)
        assert _take(Cb, idx).mean() <= budget * (1 + 1e-12)
        assert _take(Cb, idx).mean() > lo


@pytest.mark.parametrize("unit", [1.0, 1e-8])
def test_budget_below_the_cheapest_warns_in_any_cost_unit(unit):
    """The cheapest routing 5% over the budget is named, at 1e-8 as at 1 (it was skipped under 1e-9)."""
    P, C = np.array([[0.5, 0.9]]), np.array([[1.05, 2.0]]) * unit
    with pytest.warns(V0liteWarning, match="below the cheapest routing's mean cost"):
        assert BudgetStrategy().choose(P, C, unit).tolist() == [0]
    with pytest.warns(V0liteWarning, match="below the cheapest"):
        BudgetStrategy().critical_lam(P, C, unit)


def test_quality_target_holds_at_any_scale_of_p():
    """The same tolerance on the target's side: a 1e-10 target is not met by a 5e-11 model."""
    P, C = np.array([[5e-11, 0.9]]), np.array([[0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        idx = QualityTargetStrategy().choose(P, C, 1e-10)
    assert idx.tolist() == [1] and _take(P, idx).mean() >= 1e-10
    assert QualityTargetStrategy().choose(P, C, 5e-11).tolist() == [0]  # met exactly: the cheap one


def test_utility_huge_lam_routes_the_cheapest_without_a_numpy_warning():
    """Probe AE: p - lam * c overflowed to -inf for every model at lam 1e308, all tied, and the tie-break
    picked the most likely (dearest) model, with numpy's overflow warning."""
    P, C = np.array([[0.5, 0.9], [0.9, 0.5]]), np.array([[2.0, 3.0], [3.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from numpy
        for lam in (1e300, 1e308, float(np.finfo(np.float64).max), float("inf")):
            assert UtilityStrategy().choose(P, C, lam).tolist() == [0, 1], lam


def test_utility_choices_never_get_dearer_as_lam_grows():
    """Every row's chosen cost is non-increasing over a sweep of lam from 0 to 1e308 and inf, at costs
    whose products overflow (cents per call) and at zero prices (which never overflow)."""
    rng = np.random.default_rng(1)
    P = rng.uniform(0.0, 1.0, (300, 5))
    C = rng.uniform(1.0, 9.0, (300, 5))
    C[::7, 0] = 0.0  # a free model in some rows: lam * 0 stays 0
    lams = [0.0, *np.logspace(-3, 308, 400), float(np.finfo(np.float64).max), float("inf")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        costs = np.stack([_take(C, UtilityStrategy().choose(P, C, lam)) for lam in lams])
    assert (np.diff(costs, axis=0) <= 0).all()
    assert (costs[-2] == C.min(axis=1)).all()  # the largest finite lam routes as lam = inf


@pytest.mark.parametrize("name", ["utility", "threshold", "budget", "quality-target"])
@pytest.mark.parametrize("knob", [True, False, np.True_, "1", "0.5", b"1"])
def test_knob_refuses_a_bool_or_a_str(name, knob):
    """Probe AE: True read as 1 and "1" as 1.0 (prices of those types are refused: knobs now too)."""
    s = get_strategy(name)
    P, C = np.array([[0.5, 0.9]]), np.array([[1.0, 2.0]])
    with pytest.raises(ParameterError, match=rf"knob '{s.knob_name}' must be a number, got the .*Fix: pass"):
        s.choose(P, C, knob)
    assert s.check_knob(np.float64(0.5)) == 0.5 and s.check_knob(1) == 1.0  # numbers of any kind pass


def test_knob_nan_fix_names_the_knob():
    """The fix names the knob (lam=<value>), which the CLI turns into --knob VALUE."""
    with pytest.raises(V0liteError, match=r"knob 'lam' is NaN\. Fix: pass lam=<value>, a number\."):
        UtilityStrategy().choose([[0.5]], [[1.0]], float("nan"))


def _pool(seed=0, n=60):
    """A pool with ties: two models at one price (one of them less likely), a free one, equal p across prices."""
    rng = np.random.default_rng(seed)
    P = rng.uniform(0.1, 0.95, (n, 5))
    C = np.tile([0.3, 1.0, 1.0, 2.5, 0.0], (n, 1)) * rng.uniform(0.9, 1.1, (n, 1))
    C[::3, 2] = C[::3, 1] * (1 + 1e-15)  # the same price, computed another way: a tie, not a cheaper model
    P[::4, 3] = P[::4, 0]  # as likely as a cheaper model
    return P, C


@pytest.mark.parametrize("scale", [1e-15, 1e15])
def test_prices_in_any_unit_route_exactly_as_at_scale_1(scale):
    """Ties (equal prices, equal slopes) were an absolute 1e-12 wide: at 1e-15 USD per token every model
    tied with the cheapest (threshold and lam=inf routed the most likely one), and at 1e15 every switch
    point of the utility sweep tied. The width is now relative to the pool's cost scale."""
    P, C = _pool()
    Cs = C * scale
    for name, knob_at in (
        ("utility", lambda s, k: k / s),
        ("threshold", lambda s, k: k),
        ("budget", lambda s, k: k * s),
        ("quality-target", lambda s, k: k),
    ):
        s = get_strategy(name)
        grid = s.knob_grid(P, C, 16)
        np.testing.assert_allclose(s.knob_grid(P, Cs, 16), knob_at(scale, grid), rtol=1e-9, err_msg=name)
        for knob in (*grid, *(() if name != "utility" else (float("inf"),))):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", V0liteWarning)  # a budget at the cheapest routing may warn
                want, got = s.choose(P, C, knob), s.choose(P, Cs, knob_at(scale, knob))
            assert got.tolist() == want.tolist(), (name, knob)
    for s in (BudgetStrategy(), QualityTargetStrategy()):
        knob = s.knob_grid(P, C, 5)[2]
        lam = s.critical_lam(P, C, knob)
        assert s.critical_lam(P, Cs, knob * scale if s.name == "budget" else knob) == pytest.approx(lam / scale)
    assert _take(C, get_strategy("threshold").choose(P, C, 0.0)).tolist() == C.min(axis=1).tolist()  # ties: cheap


def test_threshold_says_when_no_model_reaches_tau_once_per_call():
    """A tau no model reaches fell back to the most likely model without a word (budget and target warn)."""
    P, C = np.array([[0.5, 0.7], [0.2, 0.9], [0.3, 0.4]]), np.array([[1.0, 2.0]] * 3)
    with pytest.warns(V0liteWarning) as caught:
        idx = get_strategy("threshold").choose(P, C, 0.8)
    assert idx.tolist() == [1, 1, 1]  # the most likely where none reaches tau, the cheapest that does otherwise
    texts = [str(w.message) for w in caught if issubclass(w.category, V0liteWarning)]
    assert texts == ["2 of 3 prompts: no model reaches tau 0.8; the most likely model was chosen."]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every prompt has a model at tau: no warning
        assert get_strategy("threshold").choose(P, C, 0.4).tolist() == [0, 1, 1]


@pytest.mark.parametrize("name", ["budget", "quality-target"])
def test_a_refused_knob_and_its_limit_print_as_different_numbers(name):
    """Printed with :g, a knob 1e-7 (relative) past the limit looked equal to it ("0.0001 is below ... 0.0001")."""
    P, C = np.array([[0.5, 0.9]]), np.array([[1e-4, 2e-4]])
    limit = 1e-4 if name == "budget" else 0.9
    knob = limit * (1 - 1e-7) if name == "budget" else limit * (1 + 1e-7)
    with pytest.warns(V0liteWarning) as caught:
        get_strategy(name).choose(P, C, knob)
    text = str(caught[0].message)
    m = re.search(r"(?:budget|target) (\S+) is (?:below|above) .* (\S+);", text)
    shown, at = float(m.group(1)), float(m.group(2))
    assert shown < at if name == "budget" else shown > at, text  # the printed numbers keep the refusal's order
    assert shown == pytest.approx(knob, rel=1e-6) and at == pytest.approx(limit, rel=1e-6)
    with pytest.warns(V0liteWarning, match=r"budget 1e-09 is below the cheapest routing's mean cost 0\.0001;"):
        BudgetStrategy().choose(P, C, 1e-9)  # numbers :g tells apart print as before
