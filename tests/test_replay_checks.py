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


def _with_score(log, row, value):
    return log.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(value).otherwise(pl.col("score")).alias("score")
    )


def _main(tmp_path, monkeypatch, log, *flags):
    """``v0lite alloc-sim`` through the CLI's main, its value model a ConstModel (no encoder, no refits)."""
    import v0lite.rl as rl_pkg
    from v0lite.cli import main

    real = rl_pkg.alloc_sim
    monkeypatch.setattr(rl_pkg, "alloc_sim", lambda data, *, head=None, encoder=None, **kw: _sim(data, **kw))
    path = tmp_path / "h.jsonl"
    log.write_ndjson(path)
    try:
        return main(["alloc-sim", str(path), "-q", "--fit-fraction", "0.25", *flags])
    finally:
        monkeypatch.setattr(rl_pkg, "alloc_sim", real)


def test_max_step_checks_the_kept_rows_only_and_names_the_users_row(tmp_path, monkeypatch, capsys):
    log = _log(n_steps=5)
    log = pl.concat([log.filter(pl.col("step") >= 3), log.filter(pl.col("step") < 3)])  # late steps first
    bad = _with_score(log, 30, 0.3)
    assert bad["step"][30] <= 2  # the 7th of the rows kept by max_step=2: the user's row is 30
    with pytest.raises(DataError, match=r"column 'score', row 30: value 0\.3 "):
        _sim(bad, model=ConstModel(may_fit=False), max_step=2)
    assert _main(tmp_path, monkeypatch, bad, "--max-step", "2") != 0
    assert "column 'score', row 30: value 0.3 " in capsys.readouterr().err
    # a row the replay ignores (step > max_step) need not be k/n: the library and the CLI accept it
    late = _with_score(log, 3, 0.3)
    assert late["step"][3] > 2
    assert _sim(late, max_step=2)["n_steps_evaluated"] == 2
    assert _main(tmp_path, monkeypatch, late, "--max-step", "2") == 0
    assert "replayed 2 steps" in capsys.readouterr().out
    # without --max-step the row is replayed, so it is refused
    with pytest.raises(DataError, match=r"row 3: value 0\.3 "):
        _sim(late)
    # every n is 1 among the kept rows only: still refused
    ones = log.with_columns(pl.when(pl.col("step") <= 2).then(1).otherwise(pl.col("n")).alias("n"))
    with pytest.raises(DataError, match=r"column 'n': every row has n=1"):
        _sim(ones, model=ConstModel(may_fit=False), max_step=2)


class PromptModel(ConstModel):
    """Predicts ``int(prompt[1:]) / 20``: each prompt its own value, so a misaligned row is seen."""

    def predict(self, X, *, exclude_own_prompt=False):
        return np.array([int(q[1:]) / 20 for q in X["prompt"].to_list()])


def test_per_group_rows_keep_their_own_prediction_score_and_n_on_a_shuffled_log():
    one = _log(n_prompts=6)
    # q0 at step 1 is a 0/8 and an 8/8 group, q1 at step 1 two 8/8 groups, q2 at step 1 a mixed and an 8/8 one
    at = (pl.col("step") == 1) & pl.col("prompt").is_in(["q0", "q1", "q2"])
    first = one.with_columns(
        pl.when(at & (pl.col("prompt") == "q0"))
        .then(0.0)
        .when(at & (pl.col("prompt") == "q1"))
        .then(1.0)
        .when(at)
        .then(0.5)
        .otherwise(pl.col("score"))
        .alias("score")
    )
    second = one.with_columns(pl.lit(1.0).alias("score"), pl.lit(4, dtype=pl.Int64).alias("n"))
    log = pl.concat([first, second]).sample(fraction=1.0, shuffle=True, seed=1)
    res = _sim(log, model=PromptModel(), return_predictions=True)
    pred = res["predictions"]
    assert pred.height == res["n_groups_evaluated"] == 2 * 6 * 3
    want = pred["prompt"].str.slice(1).cast(pl.Int64).to_numpy() / 20
    np.testing.assert_allclose(pred["warm"].to_numpy(), want)
    np.testing.assert_allclose(pred["cold"].to_numpy(), want)
    # every row is a group of the log (its own score and n), each exactly once
    cols = ["policy", "prompt", "step", "score", "n"]
    assert pred.select(cols).sort(cols).equals(log.filter(pl.col("step") >= 1).select(cols).sort(cols))
    assert pred["step"].is_sorted()

    def row(prompt, step):
        return pred.filter((pl.col("prompt") == prompt) & (pl.col("step") == step)).row(0, named=True)

    # zero-variance labels: 0/8 + 8/8 has zero variance in each group (the streak goes on; its merged 0.5 would
    # end it) and is hard, not solved every time; 8/8 + 8/8 is easy; a mixed group ends the streak
    assert row("q0", 1)["zv_score"] == 0.0 and row("q1", 1)["zv_score"] == 1.0 and row("q2", 1)["zv_score"] == 0.5
    assert (row("q0", 2)["zv_streak"], row("q0", 2)["zv_last_easy"]) == (1, False)
    assert (row("q1", 2)["zv_streak"], row("q1", 2)["zv_last_easy"]) == (1, True)
    assert row("q2", 2)["zv_streak"] == 0


@pytest.mark.parametrize("rollouts, default", [(8, 16), (4, 8)])
def test_n_max_fixes_name_the_default_as_a_number(rollouts, default):
    # the fix is a setting to paste: n_max=16, not 'n_max=2 x rollouts_per_prompt'
    model = ConstModel(may_fit=False)
    with pytest.raises(ParameterError, match=rf"Fix: n_max={default} \(the default\)\.$"):
        _sim(_log(), model=model, rollouts_per_prompt=rollouts, n_max=2.5)
    with pytest.raises(ParameterError, match=rf"\(default n_min=2, n_max={default}\), or a smaller n_min\.$"):
        _sim(_log(), model=model, rollouts_per_prompt=rollouts, n_min=default + 3, n_max=default + 2)
