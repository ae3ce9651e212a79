"""alloc_sim's checks and its per-group scoring (v0lite.rl._replay): a probe's defects, each pinned."""

import argparse

import numpy as np
import polars as pl
import pytest

from v0lite.commands import alloc as alloc_cmd
from v0lite.exceptions import DataError, ParameterError, V0liteError
from v0lite.rl import alloc_sim


class ConstModel:
    """Predicts one pass rate for every query; ``fit`` may be forbidden (to prove a check comes first)."""

    def __init__(self, value=0.5, may_fit=True):
        self.value = value
        self.may_fit = may_fit

    def fit(self, X, y):
        assert self.may_fit, "the value model was fitted before a parameter check"
        return self

    def add_history(self, X, y):
        return self

    def predict(self, X, *, exclude_own_prompt=False):
        return np.full(X.height, self.value)


def _log(n_prompts=12, n_steps=4, seed=0, n=8):
    rng = np.random.default_rng(seed)
    rows = [
        {"policy": "pol", "prompt": f"q{i}", "step": t, "n": n, "score": rng.binomial(n, 0.5) / n}
        for t in range(n_steps)
        for i in range(n_prompts)
    ]
    return pl.DataFrame(rows)


def _sim(log, model=None, **kw):
    kw.setdefault("first_epoch_folds", 0)
    kw.setdefault("fit_fraction", 0.25)
    return alloc_sim(log, value_model=model or ConstModel(), **kw)


def test_n_max_follows_rollouts_per_prompt_so_allocations_spend_uniforms_budget():
    res = _sim(_log(), rollouts_per_prompt=32)
    st = res["strategies"]
    budget = st["uniform"]["allocation_rollouts_spent"]
    assert budget == 32 * res["n_groups_evaluated"]
    # a cap of 16 (the old fixed n_max) could spend at most half of it
    for key in ("v0_warm", "v0_cold", "v0_posterior", "history"):
        assert st[key]["allocation_rollouts_spent"] == budget, key
    assert st["random"]["allocation_rollouts_spent"] is None  # no allocation
    with pytest.raises(ParameterError, match=r"n_max=16 is less than rollouts_per_prompt=32.*Fix: n_max=64"):
        _sim(_log(), model=ConstModel(may_fit=False), rollouts_per_prompt=32, n_max=16)


def test_default_n_max_is_16_at_the_default_8():
    a, b = _sim(_log()), _sim(_log(), n_max=16)
    for key in ("keep_half_mixed_share_warm", "effective_groups_per_1000_rollouts", "baseline_mse_g2_fused"):
        assert a[key] == b[key]


def test_two_groups_of_one_prompt_and_step_are_two_groups_not_one_mixed_visit(tmp_path, capsys):
    # every visit is an all-wrong and an all-correct group: no group is mixed (their merged mean 0.5 would be)
    one = _log(n_prompts=6).with_columns(pl.lit(0.0).alias("score"))
    log = pl.concat([one, one.with_columns(pl.lit(1.0).alias("score"))])
    res = _sim(log)
    assert res["n_groups_evaluated"] == 2 * res["n_visits_evaluated"] == 2 * 6 * 3
    for key, entry in res["strategies"].items():
        assert entry["mixed_groups_per_1000_rollouts"] == 0.0, key
    assert res["keep_half_mixed_share_warm"] == 0.0 and res["keep_half_mixed_share_oracle"] == 0.0
    # the table counts groups
    alloc_cmd_out = alloc_cmd.strategies_table(res)
    assert f"/ {2 * 6 * 3} groups of {6 * 3} (prompt, step) visits" in alloc_cmd_out


def _cli(tmp_path, log, *flags):
    path = tmp_path / "h.jsonl"
    log.write_ndjson(path)
    parser = argparse.ArgumentParser()
    alloc_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["alloc-sim", str(path), "--head", "prior", "-q", *flags])
    return args.func(args)


def test_scores_that_are_not_k_over_n_are_refused_naming_row_score_and_n(tmp_path):
    log = _log().with_columns(pl.when(pl.int_range(pl.len()) == 3).then(0.3).otherwise(pl.col("score")).alias("score"))
    with pytest.raises(
        DataError, match=r"column 'score', row 3: value 0\.3 .* n=8 .*Fix: give score = successes / n"
    ) as e:
        _sim(log, model=ConstModel(may_fit=False))
    assert "more row" not in str(e.value)  # one bad row: no "0 more rows alike"
    # without an 'n' column, in the CLI's terms: the flag that sets n
    with pytest.raises(DataError, match=r"row 3: value 0\.3 .*\(--rollouts-per-prompt 8: the log has no 'n' column\)"):
        _cli(tmp_path, log.drop("n"))
    # float round-off of k/n is no error
    ok = _log().with_columns(pl.col("score") * (1 + 1e-12))
    assert _sim(ok.with_columns(pl.col("score").clip(0, 1)))["n_groups_evaluated"] > 0


def test_a_log_where_every_n_is_1_is_refused(tmp_path):
    log = _log(n=1)
    with pytest.raises(DataError, match=r"column 'n': every row has n=1.*Fix: give one row per group"):
        _sim(log, model=ConstModel(may_fit=False))
    with pytest.raises(DataError, match=r"column 'n': every row has n=1"):
        _cli(tmp_path, log)


@pytest.mark.parametrize("bad", [np.nan, 7.0, -0.5])
def test_predictions_out_of_range_are_refused_not_replaced(bad):
    with pytest.raises(V0liteError, match=rf"returned {bad!r} for prompt 'q\d+' at step \d.*out of \[0, 1\] or NaN"):
        _sim(_log(), model=ConstModel(bad))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"n_min": 5, "n_max": 3}, r"n_max must be >= n_min.*Fix:"),
        ({"first_epoch_folds": -1}, r"first_epoch_folds must be 0 .* or an int >= 2.*Fix: first_epoch_folds=5"),
        ({"first_epoch_folds": 1}, r"first_epoch_folds must be"),
        ({"max_step": "3"}, r"max_step must be a whole number .*got '3'\. Fix:"),
        ({"fit_fraction": "0.5"}, r"fit_fraction must be in \(0, 1\), got '0\.5'\. Fix:"),
        ({"group_sizes": (0,)}, r"group_sizes\[0\] must be an int >= 1.*Fix:"),
        ({"prior_strength": -1}, r"prior_strength must be 'auto' or a number > 0.*Fix:"),
        ({"n_max": 2.5}, r"n_max must be a whole number >= 0.*Fix:"),
    ],
)
def test_parameters_are_checked_before_any_work(kw, match):
    with pytest.raises(ParameterError, match=match):
        alloc_sim(_log(), value_model=ConstModel(may_fit=False), **kw)


def test_max_step_keeping_one_step_says_raise_max_step():
    with pytest.raises(DataError, match=r"max_step=0 keeps one distinct step.*Fix: raise max_step or pass a log") as e:
        _sim(_log(), model=ConstModel(may_fit=False), max_step=0)
    assert "fit_fraction" not in str(e.value)
