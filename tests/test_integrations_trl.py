"""TRL 1.16 adapter: a real GRPO run on CPU, no downloads, with and without the planner.

The policy is a randomly initialised 2-layer Llama built from a config, the tokenizer a WordLevel
vocabulary trained on the prompts; only the value model is a stub (sure pass / sure fail / coin
flip by the prompt's first word).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import trl
from datasets import Dataset

from tests._tiny_lm import tiny_llama, tiny_tokenizer
from v0lite import RolloutPlanner
from v0lite.exceptions import V0liteWarning
from v0lite.rl.integrations import (
    FixedSizeSelector,
    PlannedGRPOTrainer,
    PlannedRepeatSampler,
)

PROMPTS = [f"easy sum {i}" for i in range(2)] + [f"hard proof {i}" for i in range(2)]
PROMPTS += [f"fair task {i}" for i in range(8)]
SURE = {q for q in PROMPTS if not q.startswith("fair")}
GENERATIONS = 2


class StubValue:
    """Sure pass / sure fail / coin flip by the prompt's first word; logs predict and add_history in order."""

    def __init__(self):
        self.history = []
        self.events = []

    def predict(self, X):
        self.events.append(("predict", sorted(set(X["step"].to_list())), X.height))
        first = [q.split()[0] for q in X["prompt"].to_list()]
        return np.array([{"easy": 0.99, "hard": 0.01}.get(w, 0.5) for w in first])

    def add_history(self, X, y):
        self.events.append(("add_history", sorted(set(X["step"].to_list())), X.height))
        self.history.append((X["prompt"].to_list(), X["step"].to_list(), X["n"].to_list(), np.asarray(y)))
        return self


def _tokenizer():
    return tiny_tokenizer(PROMPTS + ["yes no"], chat=False)


def _model(tok):
    return tiny_llama(tok, max_positions=64)


def _run(tmp_path, planner=None, steps=3, prompts=PROMPTS, **config):
    """Train ``steps`` GRPO steps; return [(prompt, reward)] for every completion scored in training."""
    scored = []

    def reward(prompts, completions, **kwargs):
        r = [float(len(c) % 2) for c in completions]  # any deterministic toy reward
        scored.extend(zip(prompts, r))
        return r

    tok = _tokenizer()
    args = trl.GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=GENERATIONS,
        max_completion_length=4,
        max_steps=steps,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        seed=0,
        disable_tqdm=True,
        **config,
    )
    kw = {
        "model": _model(tok),
        "reward_funcs": reward,
        "args": args,
        "processing_class": tok,
        "train_dataset": Dataset.from_dict({"prompt": list(prompts)}),
    }
    trainer = trl.GRPOTrainer(**kw) if planner is None else PlannedGRPOTrainer(**kw, planner=planner)
    trainer.train()
    return trainer, scored


def test_planner_changes_what_grpo_rolls_out_and_learns_the_outcomes(tmp_path):
    _, stock = _run(tmp_path / "stock")
    stock_prompts = {q for q, _ in stock}
    assert stock_prompts & SURE, "control: stock GRPO should roll out some sure prompts with this seed"

    stub = StubValue()
    trainer, planned = _run(tmp_path / "planned", RolloutPlanner(stub))
    planned_prompts = [q for q, _ in planned]
    assert len(planned_prompts) == len(stock) == 3 * 4  # same rollout budget: 3 steps x 2 prompts x 2
    assert not SURE & set(planned_prompts), "a sure-pass / sure-fail prompt was rolled out"
    # TRL's fixed group size is kept: each prompt's completions come in runs of num_generations
    runs = [planned_prompts[i : i + GENERATIONS] for i in range(0, len(planned_prompts), GENERATIONS)]
    assert all(len(set(r)) == 1 for r in runs)
    # every group reached the planner, at the step it was planned for, with TRL's rewards
    fed = [(q, st, n, y) for qs, sts, ns, ys in stub.history for q, st, n, y in zip(qs, sts, ns, ys)]
    assert [q for q, *_ in fed] == [r[0] for r in runs]
    assert [st for _, st, _, _ in fed] == [0, 0, 1, 1, 2, 2]
    groups = [planned[i : i + GENERATIONS] for i in range(0, len(planned), GENERATIONS)]
    for (_, _, n, y), group in zip(fed, groups):
        assert n == GENERATIONS and y == pytest.approx(np.mean([r > 0.5 for _, r in group]))
    sel = trainer.selector_
    assert (sel.n_chosen_, sel.n_observed_, sel.n_filled_) == (6, 6, 0)
    # one predict per planned chunk, none for the observed prompts (observe reuses the planned priors)
    predicts = [e for e in stub.events if e[0] == "predict"]
    assert len(predicts) == sel.step_ and all(n == 4 for _, _, n in predicts)
    # lag k = 2 with dataloader_num_workers=0 (TRL's default, set in the recipe): accelerate's dataloader
    # draws one batch ahead, so step t + 1 is planned before step t's outcomes come, step t + 2 after
    order = [(kind, steps[0]) for kind, steps, _ in stub.events]
    assert order.index(("predict", 1)) < order.index(("add_history", 0)) < order.index(("predict", 2))


def test_duplicate_prompts_in_one_batch_keep_separate_groups(tmp_path):
    stub = StubValue()
    prompts = ["fair twin", "fair twin", "easy a", "easy b"]  # the band keeps both copies of "fair twin"
    trainer, scored = _run(tmp_path, RolloutPlanner(stub), steps=1, prompts=prompts)
    assert [q for q, _ in scored] == ["fair twin"] * 4
    (texts, steps, n, y) = stub.history[0]
    assert texts == ["fair twin", "fair twin"] and n == [GENERATIONS, GENERATIONS] and steps == [0, 0]
    groups = [scored[:2], scored[2:]]
    assert list(y) == pytest.approx([np.mean([r > 0.5 for _, r in g]) for g in groups])


def test_streaming_dataset_is_refused(tmp_path):
    tok = _tokenizer()
    args = trl.GRPOConfig(
        output_dir=str(tmp_path),
        num_generations=2,
        per_device_train_batch_size=2,
        max_steps=1,
        report_to=[],
        use_cpu=True,
    )
    stream = Dataset.from_dict({"prompt": PROMPTS}).to_iterable_dataset()
    with pytest.raises(ValueError, match="map-style train_dataset.*streaming=False"):
        PlannedGRPOTrainer(
            model=_model(tok),
            reward_funcs=lambda completions, **k: [0.0] * len(completions),
            args=args,
            processing_class=tok,
            train_dataset=stream,
            planner=RolloutPlanner(StubValue()),
        )


def _selector(**kw):
    return FixedSizeSelector(RolloutPlanner(StubValue()), **kw)


def test_repeat_sampler_keeps_trl_layout():
    rows = [{"prompt": q} for q in PROMPTS]
    sampler = PlannedRepeatSampler(rows, _selector(), mini_repeat_count=3, batch_size=2, repeat_count=2, oversample=2.0)
    out = list(sampler)
    assert len(out) == len(sampler) == (12 // 4) * 2 * 3 * 2
    for c in range(0, len(out), 12):  # one chunk: 2 prompts x 3 generations, the whole chunk twice
        chunk = out[c : c + 12]
        assert chunk[:6] == chunk[6:] and chunk[0:3] == [chunk[0]] * 3 and chunk[3:6] == [chunk[3]] * 3
        assert chunk[0] != chunk[3]
    assert not SURE & {PROMPTS[i] for i in out}


@pytest.mark.filterwarnings("ignore:.*no outcome came back")  # sampler only: nothing is fed back, on purpose
def test_repeat_sampler_reads_conversational_prompts_and_new_epochs_reshuffle():
    rows = [{"prompt": [{"role": "system", "content": "hi"}, {"role": "user", "content": q}]} for q in PROMPTS]
    sampler = PlannedRepeatSampler(rows, _selector(), mini_repeat_count=1, batch_size=2, messages="last_user")
    first, second = list(sampler), list(sampler)
    assert sampler.text(0) == PROMPTS[0]
    assert first != second and not SURE & {PROMPTS[i] for i in first + second}
    sel = _selector()
    out = list(PlannedRepeatSampler(rows, sel, mini_repeat_count=1, batch_size=2, messages="last_user", shuffle=False))
    # candidates in dataset order: 0-3 (all sure: two are kept as the nearest the band), 4-7, 8-11
    assert set(out[:2]) <= {0, 1, 2, 3} and set(out[2:4]) <= {4, 5, 6, 7} and set(out[4:]) <= {8, 9, 10, 11}
    assert sel.n_filled_ == 2


def test_bad_input_says_what_to_fix(guarantees):
    with pytest.raises(ValueError, match="map-style"):
        PlannedRepeatSampler(iter([]), _selector(), 2, 1)
    with pytest.raises(ValueError, match="'prompt' column"):
        list(PlannedRepeatSampler([{"text": "a"}, {"text": "b"}], _selector(), 2, 1))
    with pytest.raises(TypeError, match="prompt_text"):
        list(PlannedRepeatSampler([{"prompt": 3}, {"prompt": 4}], _selector(), 2, 1))
    with pytest.raises(ValueError, match="mode"):
        _selector(mode="best")
    with pytest.raises(ValueError, match="group_size"):
        _selector(group_size=1)
    guarantees.tick("bad-input cases tried", 5)


def _config(tmp_path, **kw):
    return trl.GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=GENERATIONS,
        max_completion_length=4,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
        **kw,
    )


def test_trainer_checks_its_dataset_before_the_model_loads(tmp_path, guarantees):
    """No prompt column, or too few prompts for one step, fail in the constructor, not in train()."""
    cases = [
        (Dataset.from_dict({"question": PROMPTS}), r"has no 'prompt' column"),
        (Dataset.from_dict({"prompt": PROMPTS[:3]}), r"the dataset has 3 prompts, fewer than the 4 candidates"),
    ]
    for data, message in cases:
        with pytest.raises(ValueError, match=message):  # the model path does not exist: it was never loaded
            PlannedGRPOTrainer(
                model=str(tmp_path / "no-such-model"),
                reward_funcs=lambda completions, **k: [0.0] * len(completions),
                args=_config(tmp_path, max_steps=1),
                processing_class=_tokenizer(),
                train_dataset=data,
                planner=RolloutPlanner(StubValue()),
            )
    guarantees.tick("bad-input cases tried", len(cases))
    tok = _tokenizer()
    with pytest.warns(V0liteWarning, match=r"oversample=1.0 draws no more candidates than the 2 prompts.*selected"):
        PlannedGRPOTrainer(
            model=_model(tok),
            reward_funcs=lambda completions, **k: [0.0] * len(completions),
            args=_config(tmp_path, max_steps=1),
            processing_class=tok,
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            planner=RolloutPlanner(StubValue()),
            oversample=1.0,
        )


def test_rewards_that_are_always_none_warn_that_nothing_is_learned(tmp_path):
    stub = StubValue()
    tok = _tokenizer()
    trainer = PlannedGRPOTrainer(
        model=_model(tok),
        reward_funcs=lambda completions, **k: [None] * len(completions),
        args=_config(tmp_path, max_steps=2),  # two generation batches scored, no outcome: warned
        processing_class=tok,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        planner=RolloutPlanner(stub),
    )
    with pytest.warns(
        V0liteWarning, match=r"2 generation batches scored and no outcome came back.*reward functions return a num"
    ):
        trainer.train()
    assert stub.history == [] and trainer.selector_.n_observed_ == 0


def test_a_planner_setting_the_trainer_does_not_use_is_warned_at_the_users_line(tmp_path):
    tok = _tokenizer()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PlannedGRPOTrainer(
            model=_model(tok),
            reward_funcs=lambda completions, **k: [1.0] * len(completions),
            args=_config(tmp_path),
            processing_class=tok,
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            planner=RolloutPlanner(StubValue(), keep_fraction=0.25),
        )
    (w,) = [w for w in caught if "RolloutPlanner(keep_fraction=0.25) is not used" in str(w.message)]
    assert w.filename == __file__, w.filename  # the user's line, not one inside the adapter


def test_an_empty_prompt_text_or_a_bad_success_threshold_is_refused_before_the_model_loads(tmp_path, guarantees):
    from v0lite.exceptions import DataError, ParameterError

    def build(data, **kw):
        return PlannedGRPOTrainer(
            model=str(tmp_path / "no-such-model"),  # never loaded: the error comes first
            reward_funcs=lambda completions, **k: [0.0] * len(completions),
            args=_config(tmp_path, max_steps=1),
            processing_class=_tokenizer(),
            train_dataset=data,
            planner=RolloutPlanner(StubValue()),
            **kw,
        )

    chat = [[{"role": "user", "content": q}] for q in PROMPTS]
    system_only = Dataset.from_dict({"prompt": [[{"role": "system", "content": "Be brief."}]] + chat[1:]})
    with pytest.raises(DataError, match=r"dataset row 0: the prompt's text for the value model is empty.*messages='u"):
        build(system_only, messages="user")
    for bad in [float("nan"), "0.5"]:
        with pytest.raises(ParameterError, match=r"success_threshold must be a number.*Fix: success_threshold=0.5"):
            build(Dataset.from_dict({"prompt": PROMPTS}), success_threshold=bad)
    guarantees.tick("bad-input cases tried", 3)
    rows = [{"prompt": m} for m in chat]
    rows[7] = {"prompt": [{"role": "system", "content": "Be brief."}]}  # a later row: found when its chunk is planned
    sampler = PlannedRepeatSampler(rows, _selector(), 1, 2, messages="user", shuffle=False)
    with pytest.raises(DataError, match=r"dataset row 7: .* is empty .*Fix: messages='all'"):
        list(sampler)
    with pytest.raises(DataError, match=r"dataset row 0: .*your prompt_text callable returned it"):
        PlannedRepeatSampler([{"prompt": ""}] + rows[1:], _selector(), 1, 2, prompt_text=str)


def test_a_policy_with_no_history_is_refused_before_the_model_loads(tmp_path, make_model, small_log, guarantees):
    from v0lite.exceptions import UnknownPolicyError

    planner = RolloutPlanner(make_model().fit(small_log), policy=small_log["policy"][0])
    planner.policy = "qwen-grpo"
    with pytest.raises(UnknownPolicyError, match=r"policy 'qwen-grpo' has no history .*knows 3 policies"):
        PlannedGRPOTrainer(
            model=str(tmp_path / "no-such-model"),
            reward_funcs=lambda completions, **k: [0.0] * len(completions),
            args=_config(tmp_path, max_steps=1),
            processing_class=_tokenizer(),
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            planner=planner,
        )
    guarantees.tick("bad-input cases tried")


def test_step_scale_counts_optimizer_steps_from_the_trainers_args(tmp_path, guarantees):
    """A generation batch lasts num_iterations x steps_per_generation / gradient_accumulation_steps optimizer steps."""
    from v0lite.exceptions import ParameterError

    stub = StubValue()
    trainer, _ = _run(tmp_path / "a", RolloutPlanner(stub), steps=4, gradient_accumulation_steps=2, num_iterations=2)
    # steps_per_generation defaults to gradient_accumulation_steps: a batch is 2 x 2 / 2 = 2 optimizer steps
    assert trainer.selector_.step_scale == 2 and trainer.state.global_step == 4
    assert [h[1][0] for h in stub.history] == [0, 2]  # the optimizer steps the batches were rolled out at
    with pytest.raises(ParameterError, match=r"a batch is 1/2 optimizer steps.*Fix: make num_iterations x"):
        PlannedGRPOTrainer(
            model=str(tmp_path / "no-such-model"),  # refused before the model loads
            reward_funcs=lambda completions, **k: [0.0] * len(completions),
            args=_config(tmp_path, max_steps=1, gradient_accumulation_steps=2, steps_per_generation=1),
            processing_class=_tokenizer(),
            train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
            planner=RolloutPlanner(StubValue()),
        )
    guarantees.tick("bad-input cases tried", 1)


def test_rewards_outside_0_1_with_the_default_threshold_warn_naming_success_threshold(tmp_path):
    tok = _tokenizer()
    trainer = PlannedGRPOTrainer(
        model=_model(tok),
        reward_funcs=lambda completions, **k: [3.0] * len(completions),  # e.g. a 0-10 score
        args=_config(tmp_path, max_steps=1),
        processing_class=tok,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        planner=RolloutPlanner(StubValue()),
    )
    with pytest.warns(V0liteWarning, match=r"a reward of 3 is outside \[0, 1\].*Fix: set success_threshold to"):
        trainer.train()
