"""verl 0.9.1 adapter: VerlSampler + VerlFeedbackDataset against verl's own dataset, collate and DataProto.

The dataloader is built with the arguments ``RayPPOTrainer._create_dataloader`` uses; the step
loop repeats what ``RayPPOTrainer.fit`` does to a batch before ``on_batch_end`` (uid, interleaved
repeat, token-level scores). Only the value model is a stub.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torchdata.stateful_dataloader import StatefulDataLoader
from verl.protocol import DataProto
from verl.trainer.ppo.utils import create_rl_sampler
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

from v0lite import RolloutPlanner
from v0lite.rl.integrations import VerlFeedbackDataset, VerlSampler, verl_hooks
from v0lite.rl.integrations._verl import INDEX_KEY

PROMPTS = [f"easy sum {i}" for i in range(2)] + [f"hard proof {i}" for i in range(2)]
PROMPTS += [f"fair task {i}" for i in range(12)]
SURE = {q for q in PROMPTS if not q.startswith("fair")}


class StubValue:
    """Sure pass / sure fail / coin flip by the prompt's first word; records add_history."""

    def __init__(self):
        self.history = []

    def predict(self, X):
        first = [q.split()[0] for q in X["prompt"].to_list()]
        return np.array([{"easy": 0.99, "hard": 0.01}.get(w, 0.5) for w in first])

    def add_history(self, X, y):
        self.history.append((X["prompt"].to_list(), X["step"].to_list(), X["n"].to_list(), np.asarray(y)))
        return self


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(PROMPTS + ["user system"], trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    fast.chat_template = "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
    return fast


@pytest.fixture(scope="module")
def verl_files(tmp_path_factory):
    """A parquet file in verl's format (chat messages in ``prompt``) and a data config for it."""
    root = tmp_path_factory.mktemp("verl")
    pd.DataFrame(
        {
            "data_source": ["toy"] * len(PROMPTS),
            "prompt": [[{"role": "system", "content": "be brief"}, {"role": "user", "content": q}] for q in PROMPTS],
            "reward_model": [{"style": "rule", "ground_truth": "1"}] * len(PROMPTS),
            "extra_info": [{"index": i} for i in range(len(PROMPTS))],
        }
    ).to_parquet(root / "train.parquet")
    cfg = OmegaConf.create(
        {
            "prompt_key": "prompt",
            "max_prompt_length": 64,
            "cache_dir": str(root / "cache"),
            "filter_overlong_prompts": True,
            "truncation": "error",
            "train_batch_size": 4,
            "seed": 3,
        }
    )
    return str(root / "train.parquet"), cfg


@pytest.fixture(scope="module")
def verl_dataset(verl_files):
    """verl's RLHFDataset over that file."""
    path, cfg = verl_files
    return RLHFDataset(data_files=path, tokenizer=_tokenizer(), config=cfg)


def _dataloader(dataset, sampler, batch_size, num_workers=0):
    # The arguments RayPPOTrainer._create_dataloader passes (num_workers from data.dataloader_num_workers).
    return StatefulDataLoader(
        dataset=dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        drop_last=True,
        collate_fn=collate_fn,
        sampler=sampler,
    )


def _finished_batch(batch_dict, rollout_n, rng):
    """What RayPPOTrainer.fit holds at on_batch_end: uid per prompt, rollouts interleaved, scores."""
    batch = DataProto.from_single_dict(batch_dict)
    batch.non_tensor_batch["uid"] = np.array([f"u{rng.integers(1 << 30)}" for _ in range(len(batch))], dtype=object)
    batch = batch.repeat(repeat_times=rollout_n, interleave=True)
    scores = torch.zeros(len(batch), 5)
    scores[:, -1] = torch.as_tensor(rng.random(len(batch)) < 0.5, dtype=torch.float32)  # rule reward at last token
    batch.batch["token_level_scores"] = scores
    return batch


def _user_text(row):
    return next(m["content"] for m in row["prompt"] if m["role"] == "user")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_sampler_keeps_band_and_feeds_each_group_back(verl_dataset, num_workers):
    stub = StubValue()
    sampler = VerlSampler(verl_dataset, RolloutPlanner(stub), batch_size=4, oversample=2.0, messages="user")
    train = VerlFeedbackDataset(verl_dataset, sampler)
    loader = _dataloader(train, sampler, 4, num_workers)  # workers read rows; the sampler stays here
    assert len(loader) == len(PROMPTS) // 8  # 8 candidates per step of 4
    rng = np.random.default_rng(0)
    rolled, expected = [], {}
    for _epoch in range(2):
        for batch_dict in loader:
            rows = [_user_text({"prompt": m}) for m in batch_dict["raw_prompt"]]
            rolled.append(rows)
            batch = _finished_batch(batch_dict, rollout_n=3, rng=rng)
            perm = rng.permutation(len(batch))  # balance_batch may reorder rows; groups follow uid
            batch.reorder(torch.as_tensor(perm))
            s = batch.batch["token_level_scores"].sum(-1).numpy()
            for info, v in zip(batch.non_tensor_batch["extra_info"], s):
                key = (len(rolled) - 1, info[INDEX_KEY])
                expected[key] = expected.get(key, 0) + int(v > 0.5)
            train.on_batch_end(batch=batch)
    assert len(rolled) == 4 and all(len(r) == 4 for r in rolled)
    assert not SURE & {q for r in rolled for q in r}, "a sure-pass / sure-fail prompt was rolled out"
    assert sampler.selector_.n_filled_ == 0
    # feedback: one add_history per step, the step it was planned at, n = rollout.n, successes as scored
    assert [h[1][0] for h in stub.history] == [0, 1, 2, 3]
    for step, (prompts, steps, n, y) in enumerate(stub.history):
        assert sorted(prompts) == sorted(rolled[step]) and set(n) == {3} and set(steps) == {step}
        for q, frac in zip(prompts, y):
            assert round(frac * 3) == expected[(step, PROMPTS.index(q))]


def test_stock_sampler_rolls_out_sure_prompts(verl_dataset):
    """The control: verl's own sampler (data.shuffle) does roll out the prompts the adapter skips."""
    stock = create_rl_sampler(OmegaConf.create({"shuffle": True, "seed": 0}), verl_dataset)
    seen = {_user_text({"prompt": m}) for b in _dataloader(verl_dataset, stock, 4) for m in b["raw_prompt"]}
    assert seen & SURE


def test_verl_hooks_replace_the_legacy_task_runners_factories(verl_files):
    """The pair has verl's signatures and builds what RayPPOTrainer needs from verl's own dataset factory."""
    path, cfg = verl_files
    stub = StubValue()
    create_rl_dataset, create_rl_sampler = verl_hooks(lambda: RolloutPlanner(stub), oversample=2.0, messages="user")
    tok = _tokenizer()
    train = create_rl_dataset(path, cfg, tok, None, is_train=True, max_samples=-1)
    val = create_rl_dataset(path, cfg, tok, None, is_train=False, max_samples=-1)
    assert isinstance(train, VerlFeedbackDataset) and isinstance(val, RLHFDataset)
    sampler = create_rl_sampler(cfg, train)
    assert train.sampler is sampler and sampler.batch_size == 4 and sampler.seed == 3
    kept = [_user_text({"prompt": m}) for b in _dataloader(train, sampler, 4) for m in b["raw_prompt"]]
    assert len(kept) == 8 and not SURE & set(kept)
    with pytest.raises(TypeError, match="verl_hooks"):
        create_rl_sampler(cfg, val)


def test_fills_from_nearest_band_when_too_few_in_band():
    rows = [{"prompt": q} for q in ["easy a", "hard b", "fair c", "easy d"]]
    sampler = VerlSampler(rows, RolloutPlanner(StubValue()), batch_size=2, oversample=2.0)
    kept = [rows[i]["prompt"] for i in sampler]
    assert "fair c" in kept and len(kept) == 2
    assert sampler.selector_.n_filled_ == 1


def test_p_mixed_mode_and_nontensor_reward_key():
    class Graded(StubValue):
        def predict(self, X):
            return np.array([float(q.split()[1]) for q in X["prompt"].to_list()])

    rows = [{"prompt": f"q {p}"} for p in (0.02, 0.3, 0.5, 0.97, 0.6, 0.1)]
    stub = Graded()
    sampler = VerlSampler(
        rows,
        RolloutPlanner(stub, uncertainty=None),
        batch_size=2,
        oversample=3.0,
        mode="p-mixed",
        group_size=8,
        reward_key="acc",
    )
    kept = sorted(rows[i]["prompt"] for i in sampler)
    assert kept == ["q 0.5", "q 0.6"]  # the two nearest 0.5 have the highest P(mixed | 8)
    batch = DataProto.from_single_dict(
        {
            "dummy_tensor": torch.zeros(4, 1),
            "uid": np.array(["a", "a", "b", "b"], dtype=object),
            "extra_info": np.array([{INDEX_KEY: 2}, {INDEX_KEY: 2}, {INDEX_KEY: 4}, {INDEX_KEY: 4}], dtype=object),
            "acc": np.array([1.0, 0.0, np.nan, np.nan], dtype=object),
        }
    )
    assert sampler.update(batch) == 1  # the all-NaN group carries no outcome
    assert stub.history[0][0] == ["q 0.5"] and stub.history[0][2] == [2] and stub.history[0][3].tolist() == [0.5]


def test_feedback_dataset_pickles_without_sampler():
    rows = [{"prompt": f"fair {i}", "extra_info": {"index": 7}} for i in range(4)]
    sampler = VerlSampler(rows, RolloutPlanner(StubValue()), batch_size=2)
    wrapped = VerlFeedbackDataset(rows, sampler)
    assert wrapped[1]["extra_info"] == {"index": 7, INDEX_KEY: 1} and rows[1]["extra_info"] == {"index": 7}
    clone = pickle.loads(pickle.dumps(wrapped))  # what a spawned dataloader worker receives
    assert clone.sampler is None and clone[3]["extra_info"][INDEX_KEY] == 3


def test_bad_input_says_what_to_fix(guarantees):
    rows = [{"question": "fair a"}, {"question": "fair b"}]
    planner = RolloutPlanner(StubValue())
    with pytest.raises(ValueError, match="prompt_key"):
        list(VerlSampler(rows, planner, batch_size=1))
    with pytest.raises(ValueError, match="fewer than the 4 candidates"):
        VerlSampler(rows, planner, batch_size=2)
    with pytest.raises(ValueError, match="band"):
        VerlSampler(rows, planner, batch_size=1, band=(0.8, 0.2))
    with pytest.raises(ValueError, match="oversample"):
        VerlSampler(rows, planner, batch_size=1, oversample=0.5)
    sampler = VerlSampler(rows, planner, batch_size=1, prompt_key="question")
    no_uid = DataProto.from_single_dict({"dummy_tensor": torch.zeros(2, 1)})
    with pytest.raises(ValueError, match="uid"):
        sampler.update(no_uid)
    uid = np.array(["a", "a"], dtype=object)
    no_score = DataProto.from_single_dict({"dummy_tensor": torch.zeros(2, 1), "uid": uid})
    with pytest.raises(ValueError, match="reward_key"):
        sampler.update(no_score)
    no_index = DataProto.from_single_dict(
        {"token_level_scores": torch.zeros(2, 3), "uid": np.array(["a", "a"], dtype=object)}
    )
    with pytest.raises(ValueError, match="VerlFeedbackDataset"):
        sampler.update(no_index)
    guarantees.tick("bad-input cases tried", 7)
