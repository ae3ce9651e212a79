"""Resuming a trainer from a checkpoint: the plan follows the trainer's steps, and nothing is warned falsely.

verl 0.9.1 does not restore the dataloader's state from a checkpoint at an epoch boundary, so a
planned dataset restarts at step 0 while verl goes on; its rollouts carry the trainer step they
came from (``max_global_steps``, the rollout weights' version). TRL re-plans the batches it skips
on ``train(resume_from_checkpoint=...)`` without rolling them out.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import trl
from datasets import Dataset
from verl.protocol import DataProto

from tests._tiny_lm import tiny_llama, tiny_tokenizer
from v0lite import RolloutPlanner
from v0lite.exceptions import V0liteWarning
from v0lite.rl.integrations import PlannedGRPOTrainer, VerlSampler
from v0lite.rl.integrations._verl import INDEX_KEY, VERSION_KEY

PROMPTS = [f"fair task {i}" for i in range(16)]


class Log:
    """Predicts 0.5; records the value-model steps predicted and added to the history."""

    def __init__(self):
        self.predicted, self.added = [], []

    def predict(self, X):
        self.predicted.append(sorted(set(X["step"].to_list())))
        return np.full(X.height, 0.5)

    def add_history(self, X, y):
        self.added.append(sorted(set(X["step"].to_list())))
        return self


def _said(run):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = run()
    return out, [str(w.message) for w in caught if issubclass(w.category, V0liteWarning)]


def _step(sampler, it, version):
    """One verl step: read a planned batch of 2 prompts, roll each out twice, feed back with its version."""
    kept = [next(it), next(it)]
    batch = DataProto.from_single_dict(
        {
            "token_level_scores": torch.tensor([[1.0], [0.0], [1.0], [1.0]]),
            "uid": np.array(["a", "a", "b", "b"], dtype=object),
            "extra_info": np.array([{INDEX_KEY: kept[0]}] * 2 + [{INDEX_KEY: kept[1]}] * 2, dtype=object),
            VERSION_KEY: np.array([version] * 4, dtype=object),
        }
    )
    return _said(lambda: sampler.update(batch))[1]


def test_verl_resumed_without_the_plans_state_follows_verls_steps():
    def fresh(log):
        return VerlSampler([{"prompt": q} for q in PROMPTS], RolloutPlanner(log), batch_size=2, step_offset=10)

    unbroken = Log()
    sampler = fresh(unbroken)
    for versions in ([0, 1, 2, 3], [4, 5]):  # 4 steps per epoch; rollouts of step t come from weights version t
        it = iter(sampler)
        assert [_step(sampler, it, v) for v in versions] == [[]] * len(versions)
    assert unbroken.added == [[10 + t] for t in range(6)] and sampler._epoch == 1

    # a checkpoint at global_steps 4 (an epoch boundary): verl skips data.pt, the plan restarts at step 0
    resumed = Log()
    sampler = fresh(resumed)
    it = iter(sampler)
    (said,) = _step(sampler, it, 4)
    assert "came from verl's trainer step 4 (global_steps 5) but the plan was at step 0" in said
    assert "recorded at value-model step 14 (this batch was chosen with predictions at step 10)" in said
    assert _step(sampler, it, 5) == []  # in step from now on: said once
    assert resumed.added == [[14], [15]] and resumed.predicted == [[10], [15]]
    assert (
        sampler.selector_.step_ == 6 and sampler._epoch == 1
    )  # verl's epoch, as unbroken: the next one is reshuffled alike
    # batches without a version (another trainer, a server that reports none) are not checked
    plain = fresh(Log())
    it = iter(plain)
    assert _step(plain, it, None) == [] and plain.selector_.step_ == 1


def _trainer(tmp_path, log, **config):
    tok = tiny_tokenizer(PROMPTS + ["yes no"], chat=False)
    args = trl.GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=4,
        max_steps=4,
        report_to=[],
        use_cpu=True,
        save_strategy="steps",
        save_steps=2,
        seed=0,
        disable_tqdm=True,
        logging_steps=100,
        **config,
    )
    return PlannedGRPOTrainer(
        model=tiny_llama(tok, max_positions=64),
        reward_funcs=lambda completions, **k: [float(len(c) % 2) for c in completions],
        args=args,
        processing_class=tok,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        planner=RolloutPlanner(log),
    )


@pytest.mark.filterwarnings("ignore::UserWarning")  # transformers' notes on resuming a tiny model
def test_trl_resume_replans_the_skipped_batches_without_a_false_no_outcome_warning(tmp_path):
    unbroken = Log()
    _said(_trainer(tmp_path, unbroken).train)
    assert unbroken.added == [[0], [1], [2], [3]]
    resumed = Log()
    trainer = _trainer(tmp_path, resumed)
    _, said = _said(lambda: trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2")))
    assert said == []  # the two skipped batches are planned, never rolled out: no "no outcome came back"
    assert resumed.predicted == [[0], [1], [2], [3]] and resumed.added == [[2], [3]]  # the unbroken run's steps
