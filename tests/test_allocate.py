import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from v0lite.exceptions import ParameterError, V0liteError
from v0lite.rl import (
    SELECTORS,
    VALUES,
    BetaPosterior,
    PMixedSelector,
    RandomSelector,
    TargetSelector,
    allocate,
    beta_p_mixed,
    beta_params,
    disagreement_test,
    fit_prior_strength,
    fuse_baseline,
    get_selector,
    knapsack_value,
    p_mixed,
)


# ----------------------------------------------------------------------------- p_mixed
def test_p_mixed_values_and_broadcast():
    assert p_mixed(0.5, 2) == pytest.approx(0.5)
    assert p_mixed(0.3, 1) == 0.0
    assert p_mixed(0.3, 0) == 0.0
    out = p_mixed(np.array([0.0, 0.25, 1.0])[:, None], np.array([2, 8]))
    assert out.shape == (3, 2)
    assert out[0].tolist() == [0.0, 0.0] and out[2].tolist() == [0.0, 0.0]
    assert out[1, 1] == pytest.approx(1 - 0.25**8 - 0.75**8)


def test_p_mixed_increasing_in_n_and_symmetric():
    p = np.linspace(0.01, 0.99, 50)
    vals = p_mixed(p[:, None], np.arange(2, 20)[None, :])
    assert np.all(np.diff(vals, axis=1) >= -1e-12)
    np.testing.assert_allclose(p_mixed(p, 5), p_mixed(1 - p, 5))


@pytest.mark.parametrize(
    ("call", "got"),
    [
        (lambda: p_mixed([0.2, 1.5], 8), r"p\[1\] = 1\.5: p must hold probabilities in \[0, 1\]"),
        (lambda: p_mixed(np.array([[0.1], [np.nan]]), [2, 4]), r"p\[1, 0\] = nan: p must hold probabilities"),
        (lambda: p_mixed(0.5, [8, -1]), r"n\[1\] = -1\.0: n must hold group sizes: whole numbers >= 0"),
        (lambda: p_mixed(0.5, 2.5), r"n = 2\.5: n must hold group sizes"),
        (lambda: p_mixed(0.5, np.inf), r"n = inf: n must hold group sizes"),
        (lambda: p_mixed("0.5", 8), r"p must hold numbers \(probabilities in \[0, 1\]\), got 0\.5 \(dtype <U3\)"),
        (lambda: knapsack_value(-0.1, 8), r"p = -0\.1: p must hold probabilities"),
        (lambda: beta_p_mixed([1.0, -0.5], 1.0, 8), r"alpha\[1\] = -0\.5: alpha must hold Beta parameters >= 0"),
        (lambda: beta_p_mixed(1.0, np.nan, 8), r"beta = nan: beta must hold Beta parameters >= 0"),
        (lambda: beta_p_mixed(1.0, np.inf, 8), r"beta = inf: beta must hold Beta parameters >= 0"),
        (lambda: beta_p_mixed(1.0, 1.0, 0.5), r"n = 0\.5: n must hold group sizes"),
        (lambda: beta_params(1.2, 4.0), r"p = 1\.2: p must hold probabilities in \[0, 1\]"),
    ],
)
def test_p_mixed_and_beta_p_mixed_refuse_impossible_inputs_naming_them(call, got, guarantees):
    with pytest.raises(ParameterError, match=got + r".*Fix: "):  # not a silent 0 or a probability out of [0, 1]
        call()
    guarantees.tick("bad-input cases tried")


def test_p_mixed_keeps_its_edges_on_large_arrays():
    assert p_mixed([0.0, 1.0], 8).tolist() == [0.0, 0.0] and p_mixed(0.5, [0, 1]).tolist() == [0.0, 0.0]
    assert beta_p_mixed(0.0, 0.0, 8) >= 0 and beta_p_mixed(2.0, 2.0, np.int64(0)) == 0.0  # point masses, no group
    p = np.random.default_rng(0).random(200_000)
    out = p_mixed(p[:, None], np.arange(17)[None, :])  # 3.4M cells, broadcast: one array check
    assert out.shape == (200_000, 17) and (out[:, :2] == 0).all() and ((out >= 0) & (out <= 1)).all()


def test_knapsack_value_peaks_at_one_third():
    p = np.linspace(0, 1, 301)
    v = knapsack_value(p, 10_000)
    assert abs(p[np.argmax(v)] - 1 / 3) < 0.01
    assert knapsack_value(0.0, 8) == 0 and knapsack_value(1.0, 8) == 0


# ----------------------------------------------------------------------------- selectors
def test_selectors_registry_and_unknown_name():
    assert set(SELECTORS) == {"target", "p_mixed", "random"}
    with pytest.raises(V0liteError, match="valid names.*p_mixed"):
        get_selector("nope")
    assert isinstance(get_selector("p_mixed"), PMixedSelector)
    assert isinstance(get_selector("P-Mixed"), PMixedSelector)  # one spelling shown, both read


def test_target_and_pmixed_selection():
    p = np.array([0.05, 0.5, 0.95, 0.4, 0.7])
    assert set(TargetSelector().select(p, 2, random_state=0).tolist()) == {1, 3}
    assert set(TargetSelector(0.9).select(p, 1, random_state=0).tolist()) == {2}
    assert set(PMixedSelector(8).select(p, 3, random_state=0).tolist()) == {1, 3, 4}


def test_ties_broken_at_random_but_seeded():
    p = np.zeros(100)
    a = PMixedSelector().select(p, 10, random_state=1)
    b = PMixedSelector().select(p, 10, random_state=1)
    c = PMixedSelector().select(p, 10, random_state=2)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    assert a.tolist() != list(range(10))


def test_random_selector_seeded_and_distinct():
    a = RandomSelector().select(np.full(50, 0.5), 20, random_state=3)
    assert len(set(a.tolist())) == 20
    assert a.tolist() == RandomSelector().select(np.full(50, 0.5), 20, random_state=3).tolist()
    assert RandomSelector().select([0.1], 5, random_state=0).tolist() == [0]


def test_bad_p_rejected():
    with pytest.raises(V0liteError):
        TargetSelector().select([0.2, np.nan], 1)
    with pytest.raises(V0liteError):
        allocate([1.2], 4)


# ----------------------------------------------------------------------------- allocation
def _brute(p, budget, n_min, n_max, value):
    sizes = [0] + list(range(max(n_min, 1), n_max + 1))
    fn = VALUES[value]().value
    best = 0.0
    for combo in itertools.product(sizes, repeat=len(p)):
        if sum(combo) <= budget:
            best = max(best, float(fn(np.asarray(p), np.asarray(combo)).sum()))
    return best


def _total(p, n, value):
    return float(VALUES[value]().value(np.asarray(p), n).sum())


@settings(max_examples=120, deadline=None)
@given(
    p=st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=4),
    budget=st.integers(0, 22),
    n_min=st.integers(0, 3),
    n_max=st.integers(3, 6),
    value=st.sampled_from(["p_mixed", "knapsack"]),
)
def test_allocate_matches_brute_force(p, budget, n_min, n_max, value):
    best = _brute(p, budget, n_min, n_max, value)
    for method in ("dp", "auto"):
        n = allocate(p, budget, n_min, n_max, value, method=method)
        assert n.sum() <= budget
        assert np.all((n == 0) | ((n >= max(n_min, 1)) & (n <= n_max)))
        assert _total(p, n, value) == pytest.approx(best, abs=1e-9)
    n = allocate(p, budget, n_min, n_max, value, method="hull")
    assert n.sum() <= budget
    assert np.all((n == 0) | ((n >= max(n_min, 1)) & (n <= n_max)))
    # within one item's full value of the optimum
    assert _total(p, n, value) >= best - float(VALUES[value]().value(np.asarray(p), n_max).max()) - 1e-9


def test_allocate_prefers_mixed_prompts_and_skips_certain_ones():
    n = allocate([0.0, 1.0, 0.5, 0.1], budget=16, n_min=2, n_max=8)
    assert n[0] == 0 and n[1] == 0
    assert n.sum() <= 16 and n[2] >= 2 and n[3] >= 2


def test_allocate_edge_cases():
    assert allocate([], 10).tolist() == []
    assert allocate([0.5, 0.5], 0).tolist() == [0, 0]
    assert allocate([0.5, 0.5], 1000, n_max=16).tolist() == [16, 16]
    with pytest.raises(V0liteError, match="valid names"):
        allocate([0.5], 4, value="nope")
    with pytest.raises(V0liteError):
        allocate([0.5], -1)
    with pytest.raises(V0liteError, match="valid names"):
        allocate([0.5], 4, method="magic")
    # a callable value works too
    n = allocate([0.2, 0.6], 6, value=lambda p, k: p * np.minimum(k, 3))
    assert n.tolist() == [3, 3]


def test_allocate_exact_at_scale():
    rng = np.random.default_rng(0)
    p = rng.beta(0.7, 0.9, 1000)
    n = allocate(p, 8000, n_min=2, n_max=16)  # its speed is benchmarks' business, not an assert here
    assert n.sum() <= 8000
    assert _total(p, n, "p_mixed") >= _total(p, np.full(1000, 8), "p_mixed")


def test_allocate_auto_equals_dp_on_medium_instances():
    rng = np.random.default_rng(1)
    for _ in range(5):
        p = rng.uniform(0, 1, 60)
        budget = int(rng.integers(50, 600))
        a = allocate(p, budget, 2, 16, method="auto")
        d = allocate(p, budget, 2, 16, method="dp")
        assert _total(p, a, "p_mixed") == pytest.approx(_total(p, d, "p_mixed"), abs=1e-9)


# ----------------------------------------------------------------------------- posterior / fusion
def test_beta_posterior_prior_decay_and_counts():
    post = BetaPosterior(prior_strength=4.0, decay=0.5)
    assert post.mean(["x"], [0.3], step=0).tolist() == [0.3]  # cold = V0 prior
    post.update(["x", "y"], [4, 0], [4, 4], step=0)
    s, n = post.counts(["x", "y", "z"], step=2)
    np.testing.assert_allclose(s, [1.0, 0.0, 0.0])
    np.testing.assert_allclose(n, [1.0, 1.0, 0.0])
    m = post.mean(["x", "y", "z"], [0.5, 0.5, 0.2], step=2)
    np.testing.assert_allclose(m, [(2 + 1) / 5, 2 / 5, 0.2])
    post.update(["x"], [0], [2], step=3)  # decays to step 3 then adds
    s, n = post.counts(["x"], step=3)
    np.testing.assert_allclose([s[0], n[0]], [0.5, 2.5])
    a, b = post.params(["x"], [0.5], step=3)
    np.testing.assert_allclose([a[0], b[0]], [2.5, 4.0])


def test_beta_posterior_validation():
    with pytest.raises(V0liteError):
        BetaPosterior(decay=0)
    with pytest.raises(V0liteError):
        BetaPosterior().update(["x"], [5], [4])


def test_fuse_baseline_limits():
    prior = np.array([0.2, 0.8])
    mean = np.array([1.0, 0.0])
    np.testing.assert_allclose(fuse_baseline(prior, mean, 4, 0.0), mean)
    np.testing.assert_allclose(fuse_baseline(prior, mean, 4, 1e9), prior, atol=1e-6)
    np.testing.assert_allclose(fuse_baseline(prior, mean, 0, 0.0), prior)
    np.testing.assert_allclose(fuse_baseline(prior, mean, 4, 4.0), (prior + mean) / 2)


def test_fit_prior_strength_tracks_prior_quality():
    rng = np.random.default_rng(0)
    true = rng.beta(1, 1, 3000)
    s = rng.binomial(8, true)
    good = fit_prior_strength(true, s, np.full(true.size, 8))
    noisy = fit_prior_strength(np.clip(true + rng.normal(0, 0.3, true.size), 0, 1), s, np.full(true.size, 8))
    assert good > 50 > noisy


def test_fused_beats_group_mean_with_good_prior():
    rng = np.random.default_rng(0)
    true = rng.beta(2, 2, 5000)
    prior = np.clip(true + rng.normal(0, 0.05, true.size), 0, 1)
    s = rng.binomial(2, true)
    a = fit_prior_strength(prior, s, np.full(true.size, 2))
    fused = fuse_baseline(prior, s / 2, 2, a)
    assert np.mean((fused - true) ** 2) < np.mean((s / 2 - true) ** 2)


def test_disagreement_test():
    flags, pv = disagreement_test([0.02, 0.5, 0.98, 0.5], [8, 4, 0, 0], [8, 8, 8, 0], return_pvalue=True)
    assert flags.tolist() == [True, False, True, False]
    assert pv[1] == pytest.approx(1.0) and pv[3] == 1.0
    assert np.all((pv >= 0) & (pv <= 1))
    with pytest.raises(V0liteError):
        disagreement_test([0.5], [1], [2], alpha=1.5)


# ----------------------------------------------------------------------------- Beta beliefs
def test_beta_p_mixed_matches_monte_carlo_and_limits():
    from v0lite.rl import beta_p_mixed
    from v0lite.rl._allocate import _beta_knapsack_value

    rng = np.random.default_rng(0)
    for a, b, n in ((0.3, 2.0, 8), (2.0, 2.0, 4), (5.0, 0.7, 16)):
        x = rng.beta(a, b, 400_000)
        assert beta_p_mixed(a, b, n) == pytest.approx(p_mixed(x, n).mean(), abs=3e-3)
        assert float(_beta_knapsack_value(np.array(a), np.array(b), np.array(n))) == pytest.approx(
            knapsack_value(x, n).mean(), abs=1e-3
        )
    # a very concentrated belief is the point estimate; n <= 1 is never mixed
    assert beta_p_mixed(3e6, 7e6, 8) == pytest.approx(p_mixed(0.3, 8), abs=1e-5)
    assert beta_p_mixed(1.0, 1.0, 1) == 0.0
    # an unsure belief around 0.1 is much less likely mixed than the point 0.1
    assert beta_p_mixed(0.2, 1.8, 8) < 0.6 * p_mixed(0.1, 8)
    # degenerate parameters stay finite and in [0, 1]
    out = beta_p_mixed(np.array([0.0, 2.0]), np.array([3.0, 0.0]), 8)
    assert np.all(np.isfinite(out)) and np.all((out >= 0) & (out < 1e-4))


def test_allocate_with_concentration():
    from v0lite.rl import beta_p_mixed, beta_params

    # 0.1 and 0.9 are mirror images under p_mixed, so several allocations tie: assert the objective,
    # the budget and the group sizes, never which of the tied allocations comes back
    p = np.array([0.5, 0.1, 0.03, 0.9, 0.6])
    point = allocate(p, 40, 2, 16)
    unsure = allocate(p, 40, 2, 16, concentration=1.0)
    for n in (point, unsure):
        assert n.sum() <= 40 and np.all((n == 0) | ((n >= 2) & (n <= 16)))
    assert p_mixed(p, point).sum() == pytest.approx(p_mixed(p, allocate(p, 40, 2, 16, method="dp")).sum(), abs=1e-12)
    # an unsure belief moves rollouts from the prompts predicted near 0 or 1 toward the middle ones
    middle, extreme = [0, 4], [1, 2, 3]
    assert unsure[middle].sum() > point[middle].sum() and unsure[extreme].sum() < point[extreme].sum()
    # a huge concentration is the point allocation: the same p_mixed value (up to float noise)
    huge = allocate(p, 40, 2, 16, concentration=1e9)
    assert huge.sum() <= 40
    assert p_mixed(p, huge).sum() == pytest.approx(p_mixed(p, point).sum(), abs=1e-6)
    # the exact DP agrees with the expected value it maximises (per-prompt concentration)
    c = np.array([2.0, 0.5, 8.0, 3.0, 1.0])
    for method in ("dp", "auto"):
        n = allocate(p, 30, 2, 12, concentration=c, method=method)
        a, b = beta_params(p, c)
        got = beta_p_mixed(a, b, n).sum()
        best = (
            max(
                beta_p_mixed(a, b, np.array(combo)).sum()
                for combo in itertools.product([0] + list(range(2, 13)), repeat=5)
                if sum(combo) <= 30
            )
            if method == "dp"
            else got
        )
        assert got == pytest.approx(best, abs=1e-9)
    with pytest.raises(V0liteError, match="concentration"):
        allocate(p, 10, concentration=0.0)
    with pytest.raises(V0liteError, match="one value per prompt"):
        allocate(p, 10, concentration=[1.0, 2.0])
    with pytest.raises(V0liteError, match="callable"):
        allocate(p, 10, value=lambda q, k: q * k, concentration=2.0)
    assert allocate(p, 40, 2, 16, "knapsack", concentration=c).sum() <= 40


def test_pmixed_selector_with_concentration():
    p = np.array([0.08, 0.3, 0.92, 0.5])
    assert set(PMixedSelector(8).select(p, 2, random_state=0).tolist()) == {1, 3}
    c = np.array([100.0, 0.5, 100.0, 0.5])  # the two middle predictions are very unsure
    assert set(PMixedSelector(8, concentration=c).select(p, 2, random_state=0).tolist()) == {0, 2}
    sel = PMixedSelector(8)
    np.testing.assert_allclose(sel.score(p, 1e9), sel.score(p), atol=1e-5)


@pytest.mark.parametrize("budget", [7.9, True, "8", float("nan"), float("inf"), None, -1])
def test_allocate_refuses_a_budget_that_is_no_whole_count_with_a_fix(budget):
    with pytest.raises(ParameterError, match=r"budget must be an int >= 0 \(total rollouts to split\), got .*Fix: "):
        allocate([0.5, 0.3, 0.9, 0.02], budget, n_min=2, n_max=8)


def test_allocate_takes_a_whole_float_budget_and_refuses_bad_sizes_and_probabilities():
    assert allocate([0.5, 0.3], 8.0, n_min=2, n_max=8).sum() == 8
    with pytest.raises(ParameterError, match=r"n_max must be a whole number >= 0 .*got 2\.5\. Fix: n_max=16"):
        allocate([0.5, 0.3], 8, n_min=2, n_max=2.5)
    with pytest.raises(ParameterError, match=r"n_max must be >= n_min.*Fix:"):
        allocate([0.5, 0.3], 8, n_min=5, n_max=3)
    with pytest.raises(ParameterError, match=r"p must hold numbers .*Fix: pass the predicted pass rates as floats"):
        allocate("0.5", 8)
    with pytest.raises(ParameterError, match=r"p must hold numbers"):
        allocate(["0.5", "0.2"], 8)
