"""Tests of v0lite.metrics against scikit-learn / scipy and hand computations."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

import v0lite.metrics as M
from v0lite.exceptions import DataError


def _rates(rng, n, levels=11):
    return rng.integers(0, levels, n) / (levels - 1)


@pytest.mark.parametrize("seed", range(8))
def test_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    y = _rates(rng, n)
    # coarse predictions -> many ties
    p = np.round(rng.random(n), int(rng.integers(1, 3)))
    labels = y >= 0.5
    if labels.all() or (~labels).all():
        assert math.isnan(M.auc(y, p))
    else:
        assert M.auc(y, p) == pytest.approx(roc_auc_score(labels, p), abs=1e-12)


def test_auc_continuous_and_edge_cases():
    rng = np.random.default_rng(42)
    y = rng.random(1000)
    p = np.clip(y + rng.normal(0, 0.3, 1000), 0, 1)
    assert M.auc(y, p) == pytest.approx(roc_auc_score(y >= 0.5, p))
    assert M.auc([1, 0], [0.9, 0.1]) == 1.0
    assert M.auc([1, 0], [0.1, 0.9]) == 0.0
    assert M.auc([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert M.auc([0.5, 0.49], [0.2, 0.1]) == 1.0  # 0.5 is positive
    assert math.isnan(M.auc([1, 1, 0.7], [0.1, 0.2, 0.3]))
    assert math.isnan(M.auc([0.0], [0.3]))


def test_within_policy_auc_weighting_and_skipping():
    # group a (4 rows): perfect; group b (2 rows): inverted; group c: one class only
    y = np.array([0, 0, 1, 1, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.8, 0.9, 0.9, 0.1, 0.3, 0.4, 0.5])
    g = np.array(["a"] * 4 + ["b"] * 2 + ["c"] * 3)
    expected = (1.0 * 4 + 0.0 * 2) / 6
    assert M.within_policy_auc(y, p, g) == pytest.approx(expected)
    # a per-group loop with sklearn agrees
    vals, ws = [], []
    for k in np.unique(g):
        m = g == k
        if len(set(y[m] >= 0.5)) == 2:
            vals.append(roc_auc_score(y[m] >= 0.5, p[m]))
            ws.append(m.sum())
    assert M.within_policy_auc(y, p, g) == pytest.approx(np.average(vals, weights=ws))
    # no usable group -> nan
    assert math.isnan(M.within_policy_auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], ["a", "a", "b", "b"]))


@pytest.mark.parametrize("seed", range(4))
def test_within_policy_auc_random_vs_loop(seed):
    rng = np.random.default_rng(seed)
    n = 600
    y = _rates(rng, n)
    p = np.round(rng.random(n), 2)
    pol = rng.choice(["x", "y", "z"], n)
    step = rng.choice([16, 64, 256], n)
    vals, ws = [], []
    for a in np.unique(pol):
        for s in np.unique(step):
            m = (pol == a) & (step == s)
            lab = y[m] >= 0.5
            if m.any() and 0 < lab.sum() < m.sum():
                vals.append(roc_auc_score(lab, p[m]))
                ws.append(m.sum())
    got = M.within_policy_auc(y, p, [pol, step])
    assert got == pytest.approx(np.average(vals, weights=ws), abs=1e-12)
    # list-of-arrays == tuple of arrays == pre-combined labels
    combined = np.array([f"{a}|{s}" for a, s in zip(pol, step)])
    assert M.within_policy_auc(y, p, (pol, step)) == pytest.approx(got)
    assert M.within_policy_auc(y, p, combined) == pytest.approx(got)


def test_gauc_pools_policies_per_step():
    y = np.array([0, 1, 0, 1, 0, 1, 1, 0])
    p = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.1, 0.6, 0.4])
    steps = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    s1 = roc_auc_score(y[:4], p[:4])
    s2 = roc_auc_score(y[4:], p[4:])
    assert M.gauc(y, p, steps) == pytest.approx((4 * s1 + 4 * s2) / 8)


def test_brier_logloss():
    y = np.array([1.0, 0.0, 0.5, 0.3])
    p = np.array([0.9, 0.2, 0.5, 0.0])
    assert M.brier(y, p) == pytest.approx(np.mean((p - y) ** 2))
    eps = 1e-6
    pc = np.clip(p, eps, 1 - eps)
    ref = -np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))
    assert M.log_loss(y, p) == pytest.approx(ref)
    assert math.isfinite(M.log_loss([1.0], [0.0]))
    with pytest.raises(DataError, match="eps"):
        M.log_loss(y, p, eps=0)


def test_ece_hand_computed():
    # bins of width 0.25: [0,.25): p .1,.2 (y 0,1) -> |.15-.5|=.35, n=2
    #                     [.5,.75): p .6 (y 1)     -> .4, n=1
    #                     [.75,1]:  p .8, 1.0 (y 1, 1) -> |.9-1|=.1, n=2
    y = [0, 1, 1, 1, 1]
    p = [0.1, 0.2, 0.6, 0.8, 1.0]
    expected = (2 * 0.35 + 1 * 0.4 + 2 * 0.1) / 5
    assert M.ece(y, p, n_bins=4) == pytest.approx(expected)
    assert M.ece([0.3, 0.3], [0.3, 0.3]) == pytest.approx(0.0)
    assert M.ece([1.0], [1.0], n_bins=10) == 0.0  # p = 1 goes in the last bin
    # a value just under an edge is binned by the edge (int(p * n_bins) rounded 0.8999999999999999 up to bin 9)
    assert M.ece([1.0, 0.0], [0.8999999999999999, 0.85]) == pytest.approx(abs((0.8999999999999999 + 0.85) / 2 - 0.5))
    assert M.ece([1.0, 0.0], [0.29, 0.2999], n_bins=100) == pytest.approx(abs((0.29 + 0.2999) / 2 - 0.5))
    with pytest.raises(DataError, match="n_bins"):
        M.ece(y, p, n_bins=0)


def test_spearman_vs_scipy():
    rng = np.random.default_rng(3)
    y = _rates(rng, 300)
    p = np.round(rng.random(300), 1)
    assert M.spearman(y, p) == pytest.approx(spearmanr(y, p).statistic)
    assert math.isnan(M.spearman([0.2, 0.2, 0.2], [0.1, 0.2, 0.3]))


def test_evaluate_predictions_keys_and_types():
    rng = np.random.default_rng(0)
    n = 200
    y = _rates(rng, n)
    p = rng.random(n)
    pol = rng.choice(["a", "b"], n)
    step = rng.choice([0, 1], n)
    m = M.evaluate_predictions(y, p, policy=pol, step=step)
    assert set(m) == {"n", "auc", "within_policy_auc", "gauc", "brier", "log_loss", "ece", "spearman"}
    assert m["n"] == n and type(m["n"]) is int
    assert all(type(v) is float for k, v in m.items() if k != "n")
    assert m["within_policy_auc"] == pytest.approx(M.within_policy_auc(y, p, [pol, step]))
    assert m["gauc"] == pytest.approx(M.gauc(y, p, step))
    m2 = M.evaluate_predictions(y, p, policy=pol)
    assert "gauc" not in m2
    assert m2["within_policy_auc"] == pytest.approx(M.within_policy_auc(y, p, pol))
    m3 = M.evaluate_predictions(y, p)
    assert m3["within_policy_auc"] == m3["auc"]
    m4 = M.evaluate_predictions([1, 1], [0.5, 0.6])
    assert math.isnan(m4["auc"])  # nan stays nan


def test_errors():
    with pytest.raises(DataError, match="rows") as e:
        M.auc([0, 1, 1], [0.1, 0.2])
    assert "Fix" in str(e.value)
    with pytest.raises(DataError, match="'p', row 1"):
        M.brier([0, 1], [0.1, 1.2])
    with pytest.raises(DataError, match="'p', row 0"):
        M.brier([0], [float("nan")])
    with pytest.raises(DataError, match="'y', row 2"):
        M.auc([0, 1, -1], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="empty"):
        M.auc([], [])
    with pytest.raises(DataError, match="groups"):
        M.within_policy_auc([0, 1], [0.1, 0.2], ["a"])
    with pytest.raises(DataError, match="policy"):
        M.evaluate_predictions([0, 1], [0.1, 0.2], policy=["a", "b", "c"])
    with pytest.raises(DataError, match="numeric"):
        M.auc(["x", "y"], [0.1, 0.2])


def test_accepts_polars_and_pandas():
    import pandas as pd
    import polars as pl

    y = [0.0, 1.0, 0.0, 1.0]
    p = [0.1, 0.9, 0.8, 0.2]
    g = ["a", "a", "b", "b"]
    ref = M.within_policy_auc(y, p, g)
    assert M.within_policy_auc(pl.Series(y), pl.Series(p), pl.Series(g)) == ref
    assert M.within_policy_auc(pd.Series(y), pd.Series(p), pd.Series(g)) == ref


def test_doctests():
    res = doctest.testmod(M)
    assert res.failed == 0 and res.attempted > 0


# --- scikit-learn scorers ---------------------------------------------------------------------------------


def test_choice_accuracy_by_hand():
    # q1: top-ranked a (y 1, best) -> hit; q2: top-ranked c (y 0, b has 1) -> miss;
    # q3: all tied (no choice) and q4: one row -> skipped
    y = [1, 0, 0, 1, 0.5, 0.5, 1]
    p = [0.9, 0.2, 0.8, 0.3, 0.1, 0.9, 0.5]
    prompts = ["q1", "q1", "q2", "q2", "q3", "q3", "q4"]
    assert M.choice_accuracy(y, p, prompts) == 0.5
    # a tie in p goes to the row listed first
    assert M.choice_accuracy([0, 1], [0.5, 0.5], ["q", "q"]) == 0.0
    assert M.choice_accuracy([1, 0], [0.5, 0.5], ["q", "q"]) == 1.0
    assert math.isnan(M.choice_accuracy([1, 1], [0.2, 0.3], ["q", "q"]))
    with pytest.raises(DataError, match="'prompts' has 1 rows"):
        M.choice_accuracy([1, 0], [0.5, 0.5], ["q"])


def _cv_setup():
    from conftest import FakeEncoder, make_log
    from sklearn.model_selection import GroupKFold

    from v0lite import V0Regressor

    log = make_log(3, 24, seed=3)
    X, y = log.select("policy", "prompt"), log["score"].to_numpy()
    model = V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False)
    return model, X, y, GroupKFold(3), log["prompt"].to_numpy()


def test_scorers_in_cross_val_score_match_the_metrics_per_fold():
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    model, X, y, cv, groups = _cv_setup()
    for scorer, fn in (
        (M.neg_brier_scorer, lambda yt, p, Xt: -M.brier(yt, p)),
        (M.within_policy_auc_scorer, lambda yt, p, Xt: M.within_policy_auc(yt, p, Xt["policy"])),
        (M.choice_accuracy_scorer, lambda yt, p, Xt: M.choice_accuracy(yt, p, Xt["prompt"])),
    ):
        got = cross_val_score(model, X, y, scoring=scorer, cv=cv, groups=groups, error_score="raise")
        want = []
        for tr, te in cv.split(X, y, groups):
            m = clone(model).fit(X[tr], y[tr])
            want.append(fn(y[te], m.predict(X[te]), X[te]))
        assert np.all(np.isfinite(got)) and got == pytest.approx(want)
    # sklearn's neg_mean_squared_error is the negated Brier score against the rate
    mse = cross_val_score(model, X, y, scoring="neg_mean_squared_error", cv=cv, groups=groups)
    assert mse == pytest.approx(cross_val_score(model, X, y, scoring=M.neg_brier_scorer, cv=cv, groups=groups))


def test_scorers_in_grid_search_multi_metric():
    from sklearn.model_selection import GridSearchCV

    model, X, y, cv, groups = _cv_setup()
    gs = GridSearchCV(model, {"k": [2, 8]}, scoring=M.SCORERS, refit="neg_brier", cv=cv, error_score="raise")
    gs.fit(X, y, groups=groups)
    for name in M.SCORERS:
        scores = gs.cv_results_[f"mean_test_{name}"]
        assert scores.shape == (2,) and np.all(np.isfinite(scores))
    assert gs.best_params_["k"] == [2, 8][int(np.argmax(gs.cv_results_["mean_test_neg_brier"]))]


def test_scorer_needs_the_column_it_reads():
    import polars as pl

    class Half:
        def predict(self, X):
            return np.full(len(X), 0.5)

    X = pl.DataFrame({"prompt": ["a", "b"]})
    assert M.neg_brier_scorer(Half(), X, [1.0, 0.0]) == pytest.approx(-0.25)
    with pytest.raises(DataError, match="reads column 'policy' of X, which has none.*Fix"):
        M.within_policy_auc_scorer(Half(), X, [1.0, 0.0])


# --------------------------------------------------------------------------- paired bootstrap


def test_paired_bootstrap_contains_estimate_and_is_seeded():
    from v0lite.metrics import paired_bootstrap

    rng = np.random.default_rng(0)
    y = (rng.uniform(size=300) < 0.5).astype(float)
    good = np.clip(y * 0.6 + rng.uniform(size=300) * 0.4, 0, 1)
    bad = rng.uniform(size=300)
    groups = np.repeat(np.arange(100), 3)  # 100 prompts, 3 rows each

    def fn(p, rows):
        return M.auc(y[rows], p[rows])

    r = paired_bootstrap(fn, good, bad, groups=groups, n_boot=300, random_state=1)
    assert r["estimate"] == pytest.approx(M.auc(y, good) - M.auc(y, bad))
    assert r["ci_low"] <= r["estimate"] <= r["ci_high"] and r["ci_low"] > 0
    assert r["n_groups"] == 100 and r["n_boot"] == 300
    assert paired_bootstrap(fn, good, bad, groups=groups, n_boot=300, random_state=1) == r
    assert paired_bootstrap(fn, good, bad, groups=groups, n_boot=300, random_state=2) != r
    # a mapping of references: same resamples, so each entry equals its own pairwise call
    many = paired_bootstrap(fn, good, {"bad": bad, "self": good}, groups=groups, n_boot=300, random_state=1)
    assert many["bad"] == r
    assert many["self"]["ci_low"] == many["self"]["ci_high"] == 0.0


def test_paired_bootstrap_resamples_whole_groups_and_checks_input():
    from v0lite.metrics import paired_bootstrap

    seen = []

    def fn(p, rows):
        seen.append(np.sort(rows))
        return float(p[rows].mean())

    a = np.arange(6, dtype=float)
    paired_bootstrap(fn, a, np.zeros(6), groups=["x", "x", "y", "y", "z", "z"], n_boot=20)
    assert len(seen) == 2 + 2 * 20  # the two full-data calls, then a and b for each of the 20 resamples
    for rows in seen[2:]:
        counts = np.bincount(rows, minlength=6)
        assert (counts[0::2] == counts[1::2]).all() and counts.sum() == 6  # both rows of a group, 3 groups
    with pytest.raises(DataError, match="n_boot"):
        paired_bootstrap(fn, a, a, n_boot=0)
    with pytest.raises(DataError, match="at least one row"):
        paired_bootstrap(fn, np.zeros(0), np.zeros(0))


def test_paired_bootstrap_names_both_lengths_when_rows_and_predictions_disagree():
    """Issue: ``n_rows=5`` or 5 ``groups`` beside 3 predictions gave a bare IndexError from metric_fn."""
    from v0lite.metrics import paired_bootstrap

    def fn(p, rows):
        return float(p[rows].mean())

    three = np.ones(3)
    with pytest.raises(DataError, match=r"a has 3 rows but n_rows gives 5\. Fix: leave n_rows out or set it to 3"):
        paired_bootstrap(fn, three, np.zeros(3), n_rows=5, n_boot=5)
    with pytest.raises(DataError, match=r"a has 3 rows but groups gives 5\. Fix: pass one group label per row"):
        paired_bootstrap(fn, three, np.zeros(3), groups=[1, 2, 3, 4, 5], n_boot=5)
    with pytest.raises(DataError, match=r"b\['short'\] has 2 rows but groups gives 3"):
        paired_bootstrap(fn, three, {"ok": np.zeros(3), "short": np.zeros(2)}, groups=[1, 2, 3], n_boot=5)

    class Tables:  # no len(): n_rows says how many rows, as the routing comparisons pass it
        def __getitem__(self, rows):
            return np.ones(3)[rows]

    assert paired_bootstrap(fn, Tables(), Tables(), n_rows=3, n_boot=5)["estimate"] == 0.0


def test_within_groups_reports_what_within_policy_auc_skips():
    """Issue: within_policy_auc silently skipped one-class groups; within_groups says which, how big and why,
    from the same grouping (so its counts always match the AUC's)."""
    y = [0, 1, 1, 1, 0, 0, 1, 0, 1]
    p = [0.2, 0.8, 0.5, 0.5, 0.3, 0.1, 0.4, 0.6, 0.9]
    g = ["a", "a", "c", "c", "d", "d", "a", "b", "b"]
    r = M.within_groups(y, p, g)
    assert r == {
        "used": 2,
        "skipped": 2,
        "rows_used": 5,
        "skipped_groups": [{"row": 2, "rows": 2, "why": "all succeed"}, {"row": 4, "rows": 2, "why": "all fail"}],
    }
    keep = [i for i in range(9) if g[i] in ("a", "b")]
    pick = [[v[i] for i in keep] for v in (y, p, g)]
    assert M.within_policy_auc(y, p, g) == pytest.approx(M.within_policy_auc(*pick))  # the skipped add nothing
    none = M.within_groups([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], (["a", "a", "b", "b"], [0, 0, 0, 0]))
    assert (none["used"], none["skipped"], none["rows_used"]) == (0, 2, 0)
    assert math.isnan(M.within_policy_auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], ["a", "a", "b", "b"]))
