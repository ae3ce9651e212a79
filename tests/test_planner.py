import importlib.util
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from v0lite.exceptions import ParameterError, V0liteError, V0liteWarning
from v0lite.rl import Plan, RolloutPlanner, fuse_baseline


class FakeModel:
    """Predicts from a dict of true p (prompt -> p); records every call."""

    def __init__(self, truth, default=0.5):
        self.truth = dict(truth)
        self.default = default
        self.predict_calls = []
        self.added = []

    def predict(self, X):
        self.predict_calls.append(X)
        return np.array([self.truth.get(q, self.default) for q in X["prompt"].to_list()])

    def add_history(self, X, y):
        self.added.append((X, np.asarray(y)))
        return self


def _prompts(k):
    return [f"q{i}" for i in range(k)]


def test_plan_keeps_half_with_highest_p_mixed_and_allocates_budget():
    truth = {f"q{i}": p for i, p in enumerate([0.0, 1.0, 0.5, 0.4, 0.02, 0.97, 0.6, 0.3])}
    model = FakeModel(truth)
    planner = RolloutPlanner(model, budget_per_prompt=8, n_min=2, n_max=16)
    plan = planner.plan(_prompts(8), step=3)
    assert isinstance(plan, Plan)
    assert set(plan.kept_prompts) == {"q2", "q3", "q6", "q7"}
    assert plan.kept_prompts == sorted(plan.kept_prompts, key=lambda q: int(q[1:]))  # batch order
    assert plan.n_rollouts.sum() <= 8 * 4
    assert np.all((plan.n_rollouts >= 2) & (plan.n_rollouts <= 16))
    np.testing.assert_allclose(plan.baselines_prior, [truth[q] for q in plan.kept_prompts])
    X = model.predict_calls[0]
    assert X.columns[:3] == ["policy", "prompt", "step"] and set(X["step"].to_list()) == {3}


def test_strategies_and_unknown_strategy():
    truth = {f"q{i}": p for i, p in enumerate(np.linspace(0, 1, 10))}
    plan = RolloutPlanner(FakeModel(truth), strategy="target", keep_fraction=0.2).plan(_prompts(10), 0)
    assert set(plan.kept_prompts) <= {"q4", "q5"}
    a = RolloutPlanner(FakeModel(truth), strategy="random", random_state=1).plan(_prompts(10), 0)
    b = RolloutPlanner(FakeModel(truth), strategy="random", random_state=1).plan(_prompts(10), 0)
    assert a.kept_prompts == b.kept_prompts
    with pytest.raises(V0liteError, match="valid names"):
        RolloutPlanner(FakeModel(truth), strategy="best")
    with pytest.raises(V0liteError):
        RolloutPlanner(FakeModel(truth), keep_fraction=0)


def test_observe_adds_history_and_returns_fused_baselines():
    truth = {"a": 0.3, "b": 0.6}
    model = FakeModel(truth)
    planner = RolloutPlanner(model, keep_fraction=1.0, prior_strength=2.0)
    plan = planner.plan(["a", "b"], step=5)
    fused = planner.observe(plan.kept_prompts, 5, [2, 0], [4, 4])
    np.testing.assert_allclose(fused, fuse_baseline([0.3, 0.6], [0.5, 0.0], [4, 4], 2.0))
    X, y = model.added[-1]
    assert X["prompt"].to_list() == ["a", "b"] and X["step"].to_list() == [5, 5]
    np.testing.assert_allclose(y, [0.5, 0.0])
    assert X["n"].to_list() == [4, 4]
    assert planner.last_disagreement_.shape == (2,)


def test_observe_predicts_unplanned_prompts_before_adding():
    model = FakeModel({"z": 0.9})
    planner = RolloutPlanner(model, prior_strength=1.0)
    fused = planner.observe(["z"], 0, [0], [2])
    assert fused[0] == pytest.approx((0.9 + 0) / 3)
    assert len(model.predict_calls) == 1 and len(model.added) == 1
    with pytest.raises(V0liteError):
        planner.observe(["z"], 0, [3], [2])


def test_auto_prior_strength_is_fitted_after_enough_groups():
    rng = np.random.default_rng(0)
    truth = {f"q{i}": p for i, p in enumerate(rng.uniform(0.1, 0.9, 200))}
    planner = RolloutPlanner(FakeModel(truth), keep_fraction=1.0, min_groups_for_fit=64)
    for step in range(3):
        plan = planner.plan(_prompts(200), step)
        s = rng.binomial(plan.n_rollouts, plan.baselines_prior)
        planner.observe(plan.kept_prompts, step, s, plan.n_rollouts)
    assert planner.prior_strength_ > 20  # the prior is exact here, so it earns a large weight


def test_empty_batch():
    plan = RolloutPlanner(FakeModel({})).plan([], 0)
    assert plan.kept_prompts == [] and plan.n_rollouts.size == 0


def test_grpo_example_runs_every_arm_on_one_budget(fake_encoder):
    path = Path(__file__).resolve().parents[1] / "examples" / "grpo_loop.py"
    spec = importlib.util.spec_from_file_location("grpo_loop_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(steps=4, batch=32, n_prompts=120, warm_fraction=0.5, encoder=fake_encoder)
    assert (out["prompts"], out["warm_prompts"]) == (120, 60)  # as many prompts as asked for, none capped
    assert {out[arm]["rollouts"] for arm in mod.ARMS} == {4 * 16 * 8}  # one budget: half of each batch, 8 each
    for arm in mod.ARMS:
        assert 0 <= out[arm]["mixed_groups_per_1000_rollouts"] <= 500
    big = mod._prompts(1000, seed=0)[0]
    assert len(big) == len(set(big)) == 1000  # --prompts above the old demo log's 240 is not cut to 240


def test_beta_uncertainty_moves_rollouts_off_unsure_low_predictions():
    # predictions of 0.1 are really always-0 prompts (bimodal truth), 0.5 ones are really 0.5
    rng = np.random.default_rng(0)
    prompts = _prompts(40)
    pred = {q: (0.1 if i % 2 else 0.5) for i, q in enumerate(prompts)}
    true = {q: (0.0 if i % 2 else 0.5) for i, q in enumerate(prompts)}
    plans = {}
    for unc in ("beta", None):
        planner = RolloutPlanner(FakeModel(pred), keep_fraction=1.0, uncertainty=unc, min_groups_for_fit=64)
        for step in range(4):  # observe 160 groups so the belief is fitted
            plan = planner.plan(prompts, step)
            n = plan.n_rollouts
            s = rng.binomial(n, [true[q] for q in plan.kept_prompts])
            planner.observe(plan.kept_prompts, step, s, n)
        plans[unc] = planner.plan(prompts, 4)
    low = lambda plan: sum(int(n) for q, n in zip(plan.kept_prompts, plan.n_rollouts) if pred[q] < 0.3)  # noqa: E731
    assert low(plans["beta"]) < low(plans[None])
    assert plans["beta"].n_rollouts.sum() <= 8 * 40
    with pytest.raises(V0liteError, match="uncertainty"):
        RolloutPlanner(FakeModel(pred), uncertainty="gaussian")


def test_observe_takes_given_priors_without_predicting_them():
    model = FakeModel({"a": 0.9, "b": 0.1})
    planner = RolloutPlanner(model, prior_strength=1.0)
    fused = planner.observe(["a", "b"], 3, [0, 2], [2, 2], prior=[0.5, np.nan])  # "b": not planned, predicted
    assert fused[0] == pytest.approx((0.5 + 0) / 3) and fused[1] == pytest.approx((0.1 + 2) / 3)
    assert len(model.predict_calls) == 1 and model.predict_calls[0]["prompt"].to_list() == ["b"]
    with pytest.raises(V0liteError, match="one per prompt"):
        planner.observe(["a"], 3, [1], [2], prior=[0.5, 0.5])


def test_warm_embeds_ahead_and_plan_then_skips_the_encoder(make_model, small_log, fake_encoder):
    model = make_model().fit(small_log)
    planner = RolloutPlanner(model, policy=small_log["policy"][0])
    new = [f"a brand new question number {i}?" for i in range(6)]
    before = fake_encoder.texts_seen
    assert planner.warm(new) is planner and fake_encoder.texts_seen == before + 6
    planner.plan(new, step=0)
    assert fake_encoder.texts_seen == before + 6  # plan() read the warmed embeddings
    RolloutPlanner(FakeModel({})).warm(new)  # a value model without warm: nothing to do


class _PredictOnly:
    def predict(self, X):
        return np.full(X.height, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget_per_prompt": 0}, r"budget_per_prompt must be an int >= 1.*got 0: every plan would be empty"),
        ({"budget_per_prompt": -3}, r"budget_per_prompt.*got -3"),
        ({"budget_per_prompt": 2.5}, r"budget_per_prompt.*got 2.5"),
        ({"n_min": 0, "n_max": 1, "budget_per_prompt": 1}, r"n_min=0, n_max=1 every plan would be empty.*n_max >= 2"),
        ({"n_min": 1, "n_max": 1}, r"n_min=1, n_max=1 every plan would be empty"),
        ({"prior_strength": "abc"}, r"prior_strength must be 'auto' or a number > 0.*'abc'.*Fix: prior_strength="),
        ({"prior_strength": -1}, r"prior_strength must be .*got -1"),
        ({"default_prior_strength": 0.0}, r"default_prior_strength must be a number > 0"),
        ({"alpha": 0}, r"alpha must be a number in \(0, 1\), got 0\. Fix: alpha=0.05"),
        ({"alpha": 1.5}, r"alpha must be .*got 1.5\. Fix"),
        ({"alpha": float("nan")}, r"alpha must be .*got nan\. Fix"),
        ({"min_groups_for_fit": -1}, r"min_groups_for_fit must be an int >= 1.*got -1\. Fix: min_groups_for_fit=64"),
        ({"n_min": 2.5}, r"n_min must be a whole number >= 0.*got 2.5\. Fix: n_min=2"),
        ({"n_max": 1}, r"n_max must be >= n_min.*n_min=2, n_max=1\. Fix: n_max >= 2"),
        ({"random_state": -1}, r"random_state must be an integer in \[0, 2\*\*31 - 16\], got -1\. Fix"),
        ({"random_state": "x"}, r"random_state must be an integer.*got 'x'\. Fix"),
        ({"policy": ""}, r"policy must be a non-empty name.*got ''.*Fix: policy="),
        ({"policy": None}, r"policy must be a non-empty name.*got None.*Fix: policy="),
        ({"policy": " name"}, r"got ' name': a padded name would name another policy than 'name'\. Fix: policy='name'"),
        ({"keep_fraction": "x"}, r"keep_fraction must be a number in \(0, 1\], got 'x'\. Fix: keep_fraction=0.5"),
    ],
)
def test_settings_that_cannot_plan_are_refused_when_built(kwargs, message, guarantees):
    with pytest.raises(ParameterError, match=message):
        RolloutPlanner(FakeModel({}), **kwargs)
    guarantees.tick("bad-input cases tried")


def test_a_padded_name_the_fitted_model_holds_is_that_policy(make_model, small_log):
    """A log may have held 'pol0 ' (fit warns); the planner takes the name the model holds exactly, as
    suggest_prompts does, and still refuses a padded name the model does not hold."""
    import warnings

    import polars as pl

    padded = small_log.with_columns(pl.col("policy") + " ")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_model(head="knn").fit(padded)
    name = padded["policy"][0]
    RolloutPlanner(model, policy=name)
    with pytest.raises(ParameterError, match="a padded name would name another policy"):
        RolloutPlanner(model, policy=" " + name.strip())


def test_value_model_without_add_history_is_refused_when_built(guarantees):
    with pytest.raises(ParameterError, match=r"_PredictOnly has no add_history\(\).*Fix: pass a v0lite.V0Regressor"):
        RolloutPlanner(_PredictOnly())
    with pytest.raises(ParameterError, match=r"no predict\(\) and no add_history\(\)"):
        RolloutPlanner(object())
    guarantees.tick("bad-input cases tried", 2)


def test_a_bare_string_is_not_read_as_its_characters(guarantees):
    planner = RolloutPlanner(FakeModel({}))
    with pytest.raises(ParameterError, match=r"got one str \('Compute7'\).*Fix: pass a list"):
        planner.plan("Compute7", 0)
    with pytest.raises(ParameterError, match="pass a list"):
        planner.observe("ab", 0, [1, 1], [2, 2])
    assert planner.plan(["Compute7"], 0).kept_prompts == ["Compute7"]
    guarantees.tick("bad-input cases tried", 2)


@pytest.mark.parametrize(("bad", "shown"), [(5, "5"), (None, "None"), ("", "''"), ("  ", "'  '"), (b"q", "b'q'")])
def test_a_prompt_that_is_not_a_text_is_refused_by_position_in_every_entry_point(bad, shown, guarantees):
    model = FakeModel({})
    model.warm = lambda texts: pytest.fail("warm reached the value model")
    planner = RolloutPlanner(model)
    got = rf"prompts, row 1: {re.escape(shown)} is not a non-empty text\. Fix: pass prompt texts only"
    with pytest.raises(V0liteError, match=got):  # not polars' TypeError from building the frame
        planner.plan(["a", bad], 0)
    with pytest.raises(V0liteError, match=got):
        planner.observe(["a", bad], 0, [1, 1], [2, 2])
    with pytest.raises(V0liteError, match=got):
        planner.warm(["a", bad])
    assert model.predict_calls == [] and model.added == [] and planner.last_plan_ is None  # nothing half-done
    guarantees.tick("bad-input cases tried", 3)


def test_observe_takes_counts_not_rates(guarantees):
    model = FakeModel({"a": 0.5, "b": 0.5})
    planner = RolloutPlanner(model, keep_fraction=1.0)
    plan = planner.plan(["a", "b"], 0)
    n = plan.n_rollouts
    with pytest.raises(ParameterError, match=r"successes must hold whole numbers.*got 0.5.*round\(success_rate \* n\)"):
        planner.observe(plan.kept_prompts, 0, np.full(n.size, 0.5), n)
    with pytest.raises(ParameterError, match=r"n must hold whole numbers.*got 1.5"):
        planner.observe(plan.kept_prompts, 0, np.ones(n.size), np.full(n.size, 1.5))
    with pytest.raises(V0liteError, match=r"successes\[1\] = -1 "):  # a negative count is no count
        planner.observe(["a", "b"], 5, successes=[1, -1], n=[8, 8])
    with pytest.raises(V0liteError, match=r"below 2\*\*63.*n\[0\] = 9\.22337e\+18"):  # int64 would wrap it around
        planner.observe(["a"], 5, successes=[1], n=[2**63])
    assert model.added == []  # nothing recorded
    planner.observe(plan.kept_prompts, 0, np.ones(n.size), n.astype(float))  # 1.0, 8.0: whole numbers are counts
    assert len(model.added) == 1
    guarantees.tick("bad-input cases tried", 4)


@pytest.mark.parametrize("value", [5.0, -0.2, np.nan])
def test_a_prediction_outside_0_1_is_an_error_naming_the_value_model(value, guarantees):
    planner = RolloutPlanner(FakeModel({}, default=value))
    got = r"value_model.predict \(FakeModel\) returned (5.0|-0.2|nan) for prompt 0 .* out of \[0, 1\] or NaN"
    with pytest.raises(V0liteError, match=got):
        planner.plan(["a", "b"], 0)
    guarantees.tick("bad-input cases tried")


def test_planning_without_outcomes_warns_once_with_the_fix():
    planner = RolloutPlanner(FakeModel({f"q{i}": 0.5 for i in range(4)}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for step in range(3):  # the lag of the trainers' loops: no warning yet
            planner.plan(_prompts(4), step)
        planner.plan([], 3)  # an empty batch plans nothing and does not count
    with pytest.warns(V0liteWarning, match=r"3 steps planned and no outcome came back.*planner.observe\("):
        planner.plan(_prompts(4), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        planner.plan(_prompts(4), 4)  # once
        fed = RolloutPlanner(FakeModel({}))
        for step in range(6):
            plan = fed.plan(_prompts(4), step)
            if step < 2:
                fed.observe(plan.kept_prompts, step, np.ones(len(plan.kept_prompts)), plan.n_rollouts)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch", "300"], "--batch 300 is more than the 240 prompts"),
        (["--batch", "1"], "--batch must be an even number >= 2"),
        (["--batch", "3"], "--batch must be an even number >= 2"),
        (["--prompts", "-5"], "--prompts must be >= 2"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--warm-fraction", "0"], "--warm-fraction must be in (0, 1]"),
    ],
)
def test_grpo_example_refuses_bad_flags_with_a_usage_error(flags, message):
    path = Path(__file__).resolve().parents[1] / "examples" / "grpo_loop.py"
    out = subprocess.run([sys.executable, str(path), *flags], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize("step", [1.5, "3", None, True, np.float64(2.0)])
def test_step_must_be_an_integer_in_plan_and_observe(step, guarantees):
    planner = RolloutPlanner(FakeModel({}), budget_per_prompt=4)
    with pytest.raises(ParameterError, match=r"step must be an integer.*Fix: pass the trainer's global step"):
        planner.plan(["a", "b"], step)
    with pytest.raises(ParameterError, match=r"step must be an integer"):
        planner.observe(["a"], step, successes=[1], n=[2])
    assert planner.plan(["a", "b"], np.int64(3)).kept_prompts is not None  # numpy ints are whole numbers
    guarantees.tick("bad-input cases tried", 2)


def test_warm_and_observe_check_their_inputs(guarantees):
    """Issue: planner.warm("hello") warmed five one-letter prompts and warm(None) was a raw TypeError;
    observe(prior=[1.5]) gave a baseline outside the rewards' range and prior=[inf] an infinite one."""
    model = FakeModel({})
    planner = RolloutPlanner(model, budget_per_prompt=4)
    with pytest.raises(ParameterError, match=r"got one str \('hello'\).*Fix: pass a list"):
        planner.warm("hello")
    with pytest.raises(ParameterError, match=r"prompts must be a sequence of prompts, got NoneType"):
        planner.warm(None)
    for bad in (1.5, -5.0, np.inf):
        with pytest.raises(ParameterError, match=r"prior\[0\] = .* is not a probability in \[0, 1\]"):
            planner.observe(["a"], 0, successes=[1], n=[2], prior=[bad])
    with pytest.raises(ParameterError, match="prior must be numbers"):
        planner.observe(["a"], 0, successes=[1], n=[2], prior=["high"])
    assert planner.observe(["a"], 0, successes=[1], n=[2], prior=[np.nan]).shape == (1,)  # NaN: predicted now
    guarantees.tick("bad-input cases tried", 6)


def test_observe_errors_name_the_prompt_and_the_counts(guarantees):
    """Issue: a bad count said only "need n >= 1 and 0 <= successes <= n for every prompt"."""
    planner = RolloutPlanner(FakeModel({}), budget_per_prompt=4)
    with pytest.raises(V0liteError, match=r"prompt 2 \('c'\) has successes\[2\] = 9 and n\[2\] = 8\. Fix"):
        planner.observe(["a", "b", "c"], 5, successes=[1, 2, 9], n=[8, 8, 8])
    with pytest.raises(V0liteError, match=r"prompt 1 \('b'\) has successes\[1\] = 0 and n\[1\] = 0"):
        planner.observe(["a", "b", "c"], 5, successes=[0, 0, 0], n=[8, 0, 8])
    with pytest.raises(V0liteError, match=r"same length, got 3, 2 and 3\. Fix"):
        planner.observe(["a", "b", "c"], 5, successes=[0, 0], n=[8, 8, 8])
    guarantees.tick("bad-input cases tried", 3)


def test_a_policy_with_no_history_is_refused_when_built_before_anything_is_embedded(
    make_model, small_log, fake_encoder, guarantees
):
    import polars as pl

    from v0lite.exceptions import UnknownPolicyError

    model = make_model().fit(small_log)
    known = sorted(set(small_log["policy"].to_list()))
    before = fake_encoder.texts_seen
    with pytest.raises(UnknownPolicyError) as caught:
        RolloutPlanner(model, policy="qwen-grpo")
    said = str(caught.value)
    assert said.startswith("policy='qwen-grpo': policy 'qwen-grpo' has no history")
    assert all(repr(p) in said for p in known) and f"knows {len(known)} policies" in said
    assert f"Fix: set policy to the name the trained policy has in the outcome log (e.g. policy={known[0]!r})" in said
    assert "add_history" in said and "fallback='global_mean'" in said
    assert fake_encoder.texts_seen == before  # nothing was embedded to find it out
    guarantees.tick("bad-input cases tried")
    model.fallback = "global_mean"  # a model that predicts unknown policies keeps planning for them
    plan = RolloutPlanner(model, policy="qwen-grpo", keep_fraction=1.0).plan(["a new question?", "another one?"], 0)
    assert np.all((plan.baselines_prior >= 0) & (plan.baselines_prior <= 1))
    model.fallback = "error"
    model.add_history(small_log.head(2).with_columns(policy=pl.lit("qwen-grpo")))  # history added: now known
    RolloutPlanner(model, policy="qwen-grpo")


def test_a_budget_no_group_size_can_spend_is_refused_when_built(guarantees):
    with pytest.raises(ParameterError, match=r"budget_per_prompt=32 is more than n_max=16.*Fix: n_max=32"):
        RolloutPlanner(FakeModel({}), budget_per_prompt=32, n_max=16)
    guarantees.tick("bad-input cases tried")
    truth = {f"q{i}": p for i, p in enumerate(np.linspace(0.2, 0.8, 8))}
    plan = RolloutPlanner(FakeModel(truth), budget_per_prompt=16, n_max=16, keep_fraction=1.0).plan(_prompts(8), 0)
    assert int(plan.n_rollouts.sum()) == 16 * 8  # at most n_max per prompt: the whole budget is spent


def test_the_auto_prior_strength_is_fitted_on_the_latest_window_only(monkeypatch):
    """Issue: observe fitted the prior strength on every group ever observed (504 ms at 200k groups),
    while plan's beliefs read the latest _EB_WINDOW only: the policy and the value model drift."""
    from v0lite.rl import _planner
    from v0lite.rl._beliefs import fit_prior_strength

    monkeypatch.setattr(_planner, "_EB_WINDOW", 300)
    rng = np.random.default_rng(0)
    planner = RolloutPlanner(FakeModel({}), min_groups_for_fit=64)
    n = np.full(100, 8)
    for step in range(8):  # old groups: all-or-nothing, far more spread than the prior says
        planner.observe(_prompts(100), step, 8 * rng.integers(0, 2, 100), n, prior=np.full(100, 0.5))
    recent = []
    for step in range(8, 11):  # the latest 300 groups: drawn from the prior itself
        prior = rng.uniform(0.1, 0.9, 100)
        s = rng.binomial(8, prior)
        planner.observe(_prompts(100), step, s, n, prior=prior)
        recent.append((prior, s))
    planner.observe(["q0"], 11, [4], [8], prior=[0.5])  # fitted on the groups before this call
    prior, s = (np.concatenate(x) for x in zip(*recent))
    assert planner.prior_strength_ == pytest.approx(fit_prior_strength(prior, s, np.full(300, 8)))
    assert planner.prior_strength_ > 20  # the old groups (strength ~0.1) no longer pull it down
    assert sum(a.size for a in planner._hist_prior) <= 300 + 100  # older observe calls are forgotten


def test_counts_and_steps_beyond_int64_are_refused_by_name(guarantees):
    """Issue: n=1e20 wrapped to -2**63 (a RuntimeWarning, then a log-file error about column 'n' with
    the wrong value) and step=2**63 failed as column 'step' ("or drop the column")."""
    model = FakeModel({})
    planner = RolloutPlanner(model, budget_per_prompt=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(V0liteError, match=r"prompt 0 \('p'\) has n\[0\] = 1e\+20\. Fix: pass the rollouts"):
            planner.observe(["p"], 7, [1], [1e20])
    for step in (2**63, -(2**63) - 1, np.uint64(2**63)):
        with pytest.raises(ParameterError, match=re.escape(f"step={step!r} is outside the 64-bit") + ".*Fix: pass"):
            planner.plan(["a", "b"], step)
        with pytest.raises(ParameterError, match=r"is outside the 64-bit integers"):
            planner.observe(["a"], step, [1], [2])
    assert model.added == [] and model.predict_calls == []  # nothing reached the value model
    planner.observe(["p"], 2**63 - 1, [1], [2**62])  # the largest step, a count int64 holds
    assert model.added[0][0]["step"].to_list() == [2**63 - 1] and model.added[0][0]["n"].to_list() == [2**62]
    guarantees.tick("bad-input cases tried", 7)


def test_an_add_history_that_fails_leaves_the_planner_as_it_was():
    """A refused add_history left the group in the planner's strength fit and its planned prior gone,
    so the caller's retry counted the group twice in the prior strength."""

    class Refusing(FakeModel):
        fail = True

        def add_history(self, X, y):
            if self.fail:
                raise OSError("disk full")
            return super().add_history(X, y)

    model = Refusing({"q0": 0.3})
    planner = RolloutPlanner(model, budget_per_prompt=4)
    planner.plan(["q0"], 2)
    before = ([a.copy() for a in planner._hist_prior], dict(planner._priors))
    with pytest.raises(OSError):
        planner.observe(["q0"], 2, [1], [4])
    assert [a.tolist() for a in planner._hist_prior] == [a.tolist() for a in before[0]]
    assert planner._priors == before[1]  # the retry still reads the prior it was planned with
    assert not hasattr(planner, "last_disagreement_") or planner.last_disagreement_ is None
    model.fail = False
    planner.observe(["q0"], 2, [1], [4])
    assert [a.tolist() for a in planner._hist_prior] == [[0.3]] and len(model.added) == 1


def test_a_bad_text_is_named_by_the_callers_argument():
    from v0lite.exceptions import DataError
    from v0lite.rl._common import _prompt_list

    with pytest.raises(DataError, match=r"^texts, row 1: None is not a non-empty text"):
        _prompt_list(["a", None], "texts")


def test_observe_takes_one_step_per_prompt_in_one_add_history():
    model = FakeModel({"q0": 0.2, "q1": 0.7})
    planner = RolloutPlanner(model, budget_per_prompt=4)
    planner.plan(["q0"], 3)
    planned_calls = len(model.predict_calls)
    planner.observe(["q0", "q1", "q2"], [3, 4, 5], [1, 2, 3], [4, 4, 4])
    ((X, y),) = model.added
    assert X["step"].to_list() == [3, 4, 5] and X["step"].dtype.is_integer()
    np.testing.assert_allclose(y, [0.25, 0.5, 0.75])
    # q0 keeps its planned prior; q1 and q2 are predicted at their own steps before anything is added
    assert [c["step"].to_list() for c in model.predict_calls[planned_calls:]] == [[4], [5]]
    assert planner._hist_prior[0].tolist() == [0.2, 0.7, 0.5] and planner._priors == {}
    for bad, msg in [([3, 4], r"step holds 2 steps for 3 prompts"), ([3, 4.5, 5], r"step\[1\]: step must be an int")]:
        with pytest.raises(ParameterError, match=msg):
            planner.observe(["q0", "q1", "q2"], bad, [1, 1, 1], [4, 4, 4])
    assert len(model.added) == 1


def test_a_zero_dimensional_step_array_is_one_step():
    """np.array(3) was taken for a sequence of steps (len() of an unsized object: a raw TypeError)."""
    model = FakeModel({})
    RolloutPlanner(model, budget_per_prompt=4).observe(["q0", "q1"], np.array(3), [1, 2], [4, 4])
    assert model.added[0][0]["step"].to_list() == [3, 3]
