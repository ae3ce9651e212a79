"""Adapter warnings for runs that would go on silently wrong: chat text the history never saw, reward scales."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch
from verl.protocol import DataProto

from tests.conftest import FakeEncoder
from v0lite import RolloutPlanner, V0Regressor
from v0lite.exceptions import V0liteWarning
from v0lite.rl.integrations import OpenRLHFPlanner, VerlSampler
from v0lite.rl.integrations._verl import INDEX_KEY
from v0lite.rl.integrations._verl_dataset import _Sampler

SYSTEM = "You are a careful assistant. Think step by step and box the final answer."
TOPICS = ["add the numbers", "prove the lemma", "sort the list", "translate the text"]
HISTORY = [f"{TOPICS[i % 4]} case {i}" for i in range(16)]


@pytest.fixture(scope="module")
def plain_history_model():
    """A V0Regressor whose history was logged from the user's text alone (no chat template)."""
    score = [[0.95, 0.05, 0.5, 0.5][i % 4] for i in range(len(HISTORY))]
    frame = pl.DataFrame({"policy": ["pol"] * len(HISTORY), "prompt": HISTORY, "score": score})
    return V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False).fit(frame)


def _chat(q):
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]


def _said(make):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make()
    return [str(w.message) for w in caught if issubclass(w.category, V0liteWarning)]


def test_chat_prompts_the_history_knows_by_their_user_text_warn_to_read_that_text(plain_history_model):
    planner = RolloutPlanner(plain_history_model, policy="pol")
    rows = [{"prompt": _chat(q)} for q in HISTORY]
    (said,) = _said(lambda: VerlSampler(rows, planner, batch_size=2, shuffle=False))
    assert "none of the first 4 training prompts, read with messages='all'" in said
    assert "4 of them are when read with messages='user'" in said and said.endswith("Fix: messages='user'.")
    assert _said(lambda: VerlSampler(rows, planner, batch_size=2, messages="user")) == []
    # prompts new to the history under every reading say nothing either way: not warned
    new = [{"prompt": _chat(f"a new task {i}")} for i in range(8)]
    assert _said(lambda: VerlSampler(new, planner, batch_size=2)) == []
    # the caller's own prompt_text is the caller's reading: not second-guessed
    assert _said(lambda: VerlSampler(rows, planner, batch_size=2, prompt_text=lambda v: v[-1]["content"])) == []
    # verl's data.custom_cls names its own setting
    (said,) = _said(lambda: _Sampler(rows, planner, batch_size=2))
    assert said.endswith("Fix: data.v0lite.messages='user'.")


def test_trl_sampler_warns_once_for_chat_prompts_read_with_the_wrong_messages(plain_history_model):
    from v0lite.rl.integrations import FixedSizeSelector, PlannedRepeatSampler

    selector = FixedSizeSelector(RolloutPlanner(plain_history_model, policy="pol"))
    rows = [{"prompt": _chat(q)} for q in HISTORY]
    (said,) = _said(lambda: PlannedRepeatSampler(rows, selector, mini_repeat_count=2, batch_size=2))
    assert said.endswith("Fix: messages='user'.")
    # PlannedGRPOTrainer builds its sampler again at train(): the same selector is not warned twice
    assert _said(lambda: PlannedRepeatSampler(rows, selector, mini_repeat_count=2, batch_size=2)) == []


class Half:
    def predict(self, X):
        return np.full(X.height, 0.5)

    def add_history(self, X, y):
        return self


def _scored_batch(sampler, scores):
    """A finished verl batch for the first planned step: two groups of two rollouts, with these scores."""
    kept = list(sampler._plan(len(sampler.planned_)))
    info = np.array([{INDEX_KEY: kept[0]}] * 2 + [{INDEX_KEY: kept[1]}] * 2, dtype=object)
    return DataProto.from_single_dict(
        {
            "token_level_scores": torch.tensor([[s] for s in scores], dtype=torch.float32),
            "uid": np.array(["a", "a", "b", "b"], dtype=object),
            "extra_info": info,
        }
    )


def test_rewards_outside_0_1_with_the_default_success_threshold_warn_once():
    rows = [{"prompt": f"q{i}"} for i in range(16)]
    sampler = VerlSampler(rows, RolloutPlanner(Half()), batch_size=2)
    (said,) = _said(lambda: sampler.update(_scored_batch(sampler, [3.0, 7.0, 0.0, 10.0])))
    assert "a reward of 3 is outside [0, 1]" in said and "from 0 to 10" in said
    assert "Fix: set success_threshold to the reward above which a rollout succeeds" in said
    assert _said(lambda: sampler.update(_scored_batch(sampler, [3.0, 7.0, 0.0, 10.0]))) == []  # once per run
    # 0/1 rewards, or a threshold the caller chose, say nothing
    for kw, scores in [({}, [1.0, 0.0, 1.0, 1.0]), ({"success_threshold": 5.0}, [3.0, 7.0, 0.0, 10.0])]:
        fresh = VerlSampler(rows, RolloutPlanner(Half()), batch_size=2, **kw)
        assert _said(lambda fresh=fresh, scores=scores: fresh.update(_scored_batch(fresh, scores))) == []
    planned = _Sampler(rows, RolloutPlanner(Half()), batch_size=2)
    (said,) = _said(lambda: planned.update(_scored_batch(planned, [-1.0, 1.0, 1.0, -1.0])))
    assert "Fix: set data.v0lite.success_threshold to" in said and "0.0 for -1/1 rewards" in said


def test_openrlhf_scores_outside_0_1_warn_once():
    glue = OpenRLHFPlanner(RolloutPlanner(Half()), n_samples_per_prompt=2)
    hook = glue.filter_hook()

    def group(q, scores):
        return [SimpleNamespace(prompts=[q], scores=[s]) for s in scores]

    (said,) = _said(lambda: hook.apply(group("q", [0.0, 8.0])))
    assert "a reward of 8 is outside [0, 1]" in said and "success_threshold" in said
    assert _said(lambda: hook.apply(group("r", [0.0, 8.0]))) == []
