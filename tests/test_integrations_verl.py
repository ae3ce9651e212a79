"""verl 0.9.1 adapter: VerlSampler + VerlFeedbackDataset against verl's own dataset, collate and DataProto.

The dataloader is built with the arguments ``RayPPOTrainer._create_dataloader`` uses; the step
loop repeats what ``RayPPOTrainer.fit`` does to a batch before ``on_batch_end`` (uid, interleaved
repeat, token-level scores). Only the value model is a stub.
"""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torchdata.stateful_dataloader import StatefulDataLoader
from verl.protocol import DataProto
from verl.trainer.ppo.utils import create_rl_sampler
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

from tests._tiny_lm import tiny_tokenizer
from v0lite import RolloutPlanner
from v0lite.exceptions import V0liteWarning
from v0lite.rl.integrations import PlannedRLHFDataset, VerlFeedbackDataset, VerlSampler
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
    return tiny_tokenizer(PROMPTS + ["user system"], eos=False)


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
    planned_when_read = []
    for _epoch in range(2):
        for batch_dict in loader:
            planned_when_read.append(sampler.selector_.step_)
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
    # with no workers a step is planned when its batch is read; workers prefetch, so the sampler plans ahead
    assert planned_when_read[0] == 1 if num_workers == 0 else planned_when_read[0] == 2
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


@pytest.fixture(scope="module")
def v0_model(tmp_path_factory):
    """A saved kNN V0Regressor whose history says easy passes, hard fails, fair is a coin flip."""
    import polars as pl

    from v0lite import V0Regressor

    score = [1.0 if q.startswith("easy") else 0.0 if q.startswith("hard") else 0.5 for q in PROMPTS]
    log = pl.DataFrame(
        {"policy": ["pol"] * len(PROMPTS), "prompt": PROMPTS, "score": score, "step": [0] * len(PROMPTS)}
    )
    path = tmp_path_factory.mktemp("v0") / "model"
    V0Regressor(head="knn", k=1).fit(log).save(path)
    return path


def _planned_config(cfg, train, model, **v0):
    """verl's data config naming PlannedRLHFDataset as data.custom_cls, as the docs/rl.md recipe does."""
    return OmegaConf.merge(
        cfg,
        {
            "train_files": train,
            "val_files": train.replace("train", "val"),
            "shuffle": False,
            "dataloader_num_workers": 0,
            "custom_cls": {"path": "pkg://v0lite.rl.integrations", "name": "PlannedRLHFDataset"},
            "v0lite": {"model": str(model), "policy": "pol", "messages": "user", **v0},
        },
    )


def test_planned_dataset_is_built_by_verls_own_factory(verl_files, v0_model):
    """create_rl_dataset loads the class from data.custom_cls; train rows come in the planned order."""
    from verl.trainer.ppo.utils import create_rl_dataset as verl_create_rl_dataset

    path, cfg = verl_files
    val_path = path.replace("train", "val")
    pd.read_parquet(path).head(4).to_parquet(val_path)
    cfg = _planned_config(cfg, path, v0_model)
    tok = _tokenizer()
    train = verl_create_rl_dataset(path, cfg, tok, None, is_train=True)
    val = verl_create_rl_dataset(val_path, cfg, tok, None, is_train=False)
    assert isinstance(train, PlannedRLHFDataset) and type(val) is RLHFDataset and len(val) == 4
    sampler = create_rl_sampler(cfg, train)  # verl's: data.shuffle=False gives a SequentialSampler
    assert type(sampler) is torch.utils.data.SequentialSampler
    loader = _dataloader(train, sampler, 4)
    assert len(loader) == len(PROMPTS) // 8
    rng = np.random.default_rng(0)
    for step, batch_dict in enumerate(loader):
        rows = [_user_text({"prompt": m}) for m in batch_dict["raw_prompt"]]
        planned = [PROMPTS[i] for i in train.sampler.planned_[step]]
        assert rows == planned and not SURE & set(rows)
        train.on_batch_end(batch=_finished_batch(batch_dict, rollout_n=2, rng=rng))
    assert train.sampler.selector_.n_observed_ == 8
    assert train.sampler.planner.value_model.n_history_ == len(PROMPTS) + 8  # the outcomes reached add_history


def test_planned_dataset_refuses_settings_it_cannot_honour(verl_files, v0_model, guarantees):
    path, cfg = verl_files
    tok = _tokenizer()
    good = _planned_config(cfg, path, v0_model)
    cases = [
        ({"shuffle": True}, "data.shuffle=False"),
        ({"dataloader_num_workers": 8}, "data.dataloader_num_workers=0"),
        ({"v0lite": {"policy": None}}, "data.v0lite.policy is required"),
        ({"v0lite": {"policy": "other"}}, "policy 'other' has no history"),
        ({"v0lite": {"bands": [0, 1]}}, "unknown option data.v0lite.bands"),
        ({"v0lite": None}, r"\+data.v0lite.model="),
    ]
    for change, message in cases:
        bad = OmegaConf.merge(good, change)
        with pytest.raises(Exception, match=message):
            PlannedRLHFDataset(path, tok, bad)
    guarantees.tick("bad-input cases tried", len(cases))


def _run_loader(dataset, sampler, n_batches=None, state=None):
    loader = _dataloader(dataset, sampler, 4)
    if state is not None:
        loader.load_state_dict(state)
    out = []
    for batch_dict in loader:
        out.append([_user_text({"prompt": m}) for m in batch_dict["raw_prompt"]])
        if n_batches is not None and len(out) == n_batches:
            return out, json.loads(json.dumps(loader.state_dict()))  # what verl checkpoints, as plain JSON
    return out, None


@pytest.mark.filterwarnings("ignore:.*no outcome came back")  # two epochs read, none fed back: on purpose
def test_sampler_state_resumes_where_it_stopped(verl_dataset):
    """Epoch, step and RNG survive state_dict / load_state_dict: a resumed run reads what an unbroken one does."""

    def fresh():
        s = VerlSampler(verl_dataset, RolloutPlanner(StubValue()), batch_size=4, messages="user", seed=5)
        return VerlFeedbackDataset(verl_dataset, s), s

    ds, s = fresh()
    unbroken = _run_loader(ds, s)[0] + _run_loader(ds, s)[0]  # two epochs
    ds, s = fresh()
    head, state = _run_loader(ds, s, n_batches=1)
    ds2, s2 = fresh()
    rest = _run_loader(ds2, s2, state=state)[0] + _run_loader(ds2, s2)[0]
    assert head + rest == unbroken and unbroken[:2] != unbroken[2:]
    assert s2.selector_.step_ == 4 and s2._epoch == 1


def test_planned_dataset_state_resumes_where_it_stopped(verl_files, v0_model):
    path, cfg = verl_files
    cfg = _planned_config(cfg, path, v0_model, shuffle=True)
    tok = _tokenizer()

    def fresh():
        ds = PlannedRLHFDataset(path, tok, cfg)
        return ds, torch.utils.data.SequentialSampler(ds)

    unbroken = _run_loader(*fresh())[0]
    head, state = _run_loader(*fresh(), n_batches=1)
    rest = _run_loader(*fresh(), state=state)[0]
    assert head + rest == unbroken


def test_shuffle_false_reads_candidates_in_dataset_order():
    rows = [{"prompt": q} for q in PROMPTS]
    sampler = VerlSampler(rows, RolloutPlanner(StubValue()), batch_size=2, oversample=2.0, shuffle=False)
    out = list(sampler)
    for step in range(len(out) // 2):  # step t keeps 2 of rows 4t .. 4t + 3
        assert set(out[2 * step : 2 * step + 2]) <= set(range(4 * step, 4 * step + 4))
    assert out != list(VerlSampler(rows, RolloutPlanner(StubValue()), batch_size=2, oversample=2.0))


class CountingValue(StubValue):
    def __init__(self):
        super().__init__()
        self.predicted_steps = []

    def predict(self, X):
        self.predicted_steps.append(sorted(set(X["step"].to_list())))
        return super().predict(X)


def test_step_mapping_and_observe_reuses_the_planned_priors():
    """Trainer step t is value-model step offset + scale * t, for predict and add_history; one predict per step."""
    rows = [{"prompt": q} for q in PROMPTS]
    value = CountingValue()
    sampler = VerlSampler(rows, RolloutPlanner(value), batch_size=2, oversample=2.0, step_offset=16, step_scale=48)
    it = iter(sampler)
    for _step in range(3):
        kept = [next(it), next(it)]
        uid = np.array(["a", "a", "b", "b"], dtype=object)
        info = np.array([{INDEX_KEY: kept[0]}] * 2 + [{INDEX_KEY: kept[1]}] * 2, dtype=object)
        batch = DataProto.from_single_dict(
            {"token_level_scores": torch.tensor([[1.0], [0.0], [1.0], [1.0]]), "uid": uid, "extra_info": info}
        )
        assert sampler.update(batch) == 2
    assert value.predicted_steps == [[16], [64], [112]]  # no second predict of the observed prompts
    assert [h[1] for h in value.history] == [[16, 16], [64, 64], [112, 112]]
    assert sampler.selector_.history_step(5) == 16 + 48 * 5


def test_history_logged_at_later_steps_is_read_with_the_mapped_step(v0_model):
    """A history logged at steps 16/64/256 is invisible at value-model step 0 and visible from step 16 on."""
    import polars as pl

    from v0lite import V0Regressor

    fair = [q for q in PROMPTS if q.startswith("fair")]
    log = pl.DataFrame(
        {
            "policy": ["pol"] * 3 * len(fair) + ["base"] * len(fair),
            "prompt": fair * 4,
            "score": [1.0] * len(fair) + [1.0] * len(fair) + [1.0] * len(fair) + [0.0] * len(fair),
            "step": [16] * len(fair) + [64] * len(fair) + [256] * len(fair) + [0] * len(fair),
        }
    )
    model = V0Regressor(head="knn", k=4, fallback="global_mean").fit(log)
    rows = [{"prompt": q} for q in fair]

    def first_p(offset):
        sampler = VerlSampler(rows, RolloutPlanner(model, policy="pol"), batch_size=2, step_offset=offset)
        next(iter(sampler))
        return sampler.selector_.last_p_

    assert first_p(16).min() > first_p(0).max()


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


def test_verls_entry_points_import_in_the_locked_environment():
    """The verl extra is complete: both task runners' modules import (0.9.1 needs fastapi, uvicorn, cachetools)."""
    import importlib

    main_ppo = importlib.import_module("verl.trainer.main_ppo")
    main_ppo_v0 = importlib.import_module("verl.trainer.main_ppo_v0")
    assert callable(main_ppo.main) and hasattr(main_ppo_v0.TaskRunner, "remote")


def test_planned_dataset_warns_when_no_outcome_comes_back(verl_files, v0_model):
    """A trainer that never calls on_batch_end (verl 0.9.1's V1) is named in a warning after 3 steps."""
    from v0lite.exceptions import V0liteWarning

    path, cfg = verl_files
    ds = PlannedRLHFDataset(path, _tokenizer(), _planned_config(cfg, path, v0_model))
    loader = _dataloader(ds, torch.utils.data.SequentialSampler(ds), 4)
    list(loader)  # 2 steps: no warning yet
    with pytest.warns(V0liteWarning, match=r"on_batch_end.*trainer.use_v1=false"):
        list(loader)


def test_planned_dataset_embeds_its_training_set_when_built(verl_files, tmp_path, fake_minilm):
    """data.v0lite.warm (default): every prompt is embedded when verl builds the dataset, none at the first batch."""
    import polars as pl

    from v0lite import V0Regressor

    log = pl.DataFrame({"policy": ["pol"] * 3, "prompt": ["other a", "other b", "other c"], "score": [1.0, 0.0, 0.5]})
    V0Regressor(head="knn", k=1).fit(log).save(tmp_path / "m")
    path, cfg = verl_files
    seen = fake_minilm.texts_seen
    ds = PlannedRLHFDataset(path, _tokenizer(), _planned_config(cfg, path, tmp_path / "m"))
    assert fake_minilm.texts_seen == seen + len(PROMPTS)
    next(iter(_dataloader(ds, torch.utils.data.SequentialSampler(ds), 4)))
    assert fake_minilm.texts_seen == seen + len(PROMPTS)


def test_planned_dataset_options_are_checked_in_data_v0lite_terms(verl_files, v0_model, guarantees):
    path, cfg = verl_files
    tok = _tokenizer()
    good = _planned_config(cfg, path, v0_model)
    cases = [
        (
            {"v0lite": {"band": 0.5}},
            r"data.v0lite.band must be two numbers \[lo, hi\].*got 0.5. Fix: data.v0lite.band=",
        ),
        ({"v0lite": {"band": "0.2,0.8"}}, r"data.v0lite.band must be two numbers.*got '0.2,0.8'"),
        ({"v0lite": {"success_threshold": "high"}}, r"data.v0lite.success_threshold must be a number.*'high'. Fix:"),
        ({"v0lite": {"mode": "best"}}, r"data.v0lite.mode: unknown selection mode 'best'"),
        ({"v0lite": {"group_size": 1}}, r"data.v0lite.group_size must be an int >= 2"),
        ({"v0lite": {"step_offset": -1}}, r"data.v0lite.step_offset must be an int >= 0"),
        ({"v0lite": {"shuffle": "false"}}, r"data.v0lite.shuffle must be true or false, got 'false'"),
        (
            {"v0lite": {"oversample": 0.5}},
            r"data.v0lite.oversample must be a number >= 1.*Fix: data.v0lite.oversample=",
        ),
        ({"v0lite": {"messages": "bot"}}, r"data.v0lite.messages: messages must be"),
        ({"train_batch_size": 100}, r"fewer than the 200 candidates .*Fix: lower data.v0lite.oversample or data.train"),
        ({"prompt_key": "question"}, r"data.prompt_key='question' is not a column of data.train_files .*'prompt'"),
        ({"max_prompt_length": 1}, r"RLHFDataset has 0 rows from data.train_files.*data.filter_overlong_prompts"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):  # ParameterError and DataError are ValueErrors
            PlannedRLHFDataset(path, tok, OmegaConf.merge(good, change))
    guarantees.tick("bad-input cases tried", len(cases))
    ds = PlannedRLHFDataset(path, tok, OmegaConf.merge(good, {"v0lite": {"mode": "p_mixed"}}))  # as RolloutPlanner
    assert ds.sampler.selector_.mode == "p-mixed"
    with pytest.warns(V0liteWarning) as caught:
        PlannedRLHFDataset(path, tok, OmegaConf.merge(good, {"v0lite": {"oversample": 1}}))
    said = [str(w.message) for w in caught if issubclass(w.category, V0liteWarning)]
    assert len(said) == 1 and said[0].startswith(
        "data.v0lite.oversample=1 draws no more candidates than the data.train"
    )
    assert "nothing is selected" in said[0] and "Fix: data.v0lite.oversample=2.0" in said[0]


def test_sampler_warns_when_no_outcome_comes_back_or_nothing_is_selected(guarantees):
    rows = [{"prompt": q} for q in PROMPTS]
    sampler = VerlSampler(rows, RolloutPlanner(StubValue()), batch_size=2)  # 4 steps an epoch
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(sampler)  # with workers' prefetch a whole epoch may be planned before its first outcome
    with pytest.warns(V0liteWarning, match=r"4 steps planned and no outcome came back.*VerlFeedbackDataset"):
        list(sampler)  # a new epoch, and none of the last one's outcomes came back
    with pytest.warns(V0liteWarning, match=r"oversample=1.0 draws no more candidates than the batch_size=2"):
        VerlSampler(rows, RolloutPlanner(StubValue()), batch_size=2, oversample=1.0)
    with pytest.raises(ValueError, match=r"no 'prompt' column.*prompt_key="):
        VerlSampler([{"question": q} for q in PROMPTS], RolloutPlanner(StubValue()), batch_size=2)  # when built
    guarantees.tick("bad-input cases tried")


def test_planned_dataset_refuses_an_unknown_policy_before_embedding_or_reading_rows(
    verl_files, tmp_path, fake_minilm, monkeypatch, guarantees
):
    import polars as pl

    from v0lite import V0Regressor
    from v0lite.exceptions import UnknownPolicyError

    log = pl.DataFrame(
        {"policy": ["pol", "base", "pol"], "prompt": ["other a", "other b", "other c"], "score": [1.0, 0.0, 0.5]}
    )
    V0Regressor(head="knn", k=1).fit(log).save(tmp_path / "m")
    path, cfg = verl_files
    seen = fake_minilm.texts_seen
    monkeypatch.setattr(RLHFDataset, "__init__", lambda *a, **k: pytest.fail("verl's rows were read"))
    config = OmegaConf.merge(_planned_config(cfg, path, tmp_path / "m"), {"v0lite": {"policy": "qwen-grpo"}})
    with pytest.raises(UnknownPolicyError) as caught:
        PlannedRLHFDataset(path, _tokenizer(), config)
    said = str(caught.value)
    assert said.startswith("data.v0lite.policy='qwen-grpo': policy 'qwen-grpo' has no history")
    assert "knows 2 policies: 'base', 'pol'" in said and "data.v0lite.policy='base'" in said
    assert "fallback='global_mean'" in said and fake_minilm.texts_seen == seen  # nothing embedded
    guarantees.tick("bad-input cases tried")


def test_planned_dataset_rereads_a_slot_as_the_same_row(verl_files, v0_model):
    """Reading slot i again (a retry, a look at ds[i]) gives the same row and starts no epoch; ds[0] after the
    epoch's last slot (verl's sequential sampler starting over) does."""
    path, cfg = verl_files
    ds = PlannedRLHFDataset(path, _tokenizer(), _planned_config(cfg, path, v0_model))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "on_batch_end not called" warning
        first = ds[0]["extra_info"][INDEX_KEY]
        assert ds[0]["extra_info"][INDEX_KEY] == first and ds[0]["extra_info"][INDEX_KEY] == first
        assert ds.sampler._epoch == 0 and ds.sampler.selector_.step_ == 1
        rows = [ds[i]["extra_info"][INDEX_KEY] for i in range(len(ds))]
        assert rows[-1] == ds[len(ds) - 1]["extra_info"][INDEX_KEY] and ds.sampler._epoch == 0
    with pytest.warns(V0liteWarning, match="no outcome came back"):  # a whole epoch read and none fed back
        ds[0]
    assert ds.sampler._epoch == 1


def test_planned_dataset_names_its_settings_for_empty_texts_and_missing_scores(
    verl_files, v0_model, tmp_path, guarantees
):
    from v0lite.exceptions import DataError

    path, cfg = verl_files
    rows = pd.read_parquet(path)
    rows.at[5, "prompt"] = [{"role": "system", "content": "be brief"}]
    rows.to_parquet(tmp_path / "train.parquet")
    bad = str(tmp_path / "train.parquet")
    with pytest.raises(DataError, match=r"dataset row 5: .* is empty .*Fix: data.v0lite.messages='all'"):
        PlannedRLHFDataset(bad, _tokenizer(), _planned_config(cfg, bad, v0_model))
    ds = PlannedRLHFDataset(path, _tokenizer(), _planned_config(cfg, path, v0_model, reward_key="acc"))
    batch = DataProto.from_single_dict(
        {"token_level_scores": torch.zeros(2, 3), "uid": np.array(["a", "a"], dtype=object)}
    )
    with pytest.raises(ValueError, match=r"no 'acc' scores .*Fix: set data.v0lite.reward_key to the key"):
        ds.on_batch_end(batch)
    with pytest.raises(ValueError, match=r"success_threshold must be a number.*got nan"):
        VerlSampler([{"prompt": q} for q in PROMPTS], RolloutPlanner(StubValue()), 2, success_threshold=float("nan"))
    guarantees.tick("bad-input cases tried", 3)


def _acc_batch(acc, index=(0, 0, 1, 1)):
    """A finished batch of two groups whose scores are the non-tensor ``acc``."""
    return DataProto.from_single_dict(
        {
            "dummy_tensor": torch.zeros(len(index), 1),
            "uid": np.array([f"u{i}" for i in index], dtype=object),
            "extra_info": np.array([{INDEX_KEY: i} for i in index], dtype=object),
            "acc": np.array(acc, dtype=object),
        }
    )


def test_update_refuses_wrong_shaped_rewards_and_unknown_rows_and_skips_an_empty_batch(guarantees):
    from v0lite.exceptions import DataError
    from v0lite.rl.integrations._verl_dataset import _Sampler

    rows = [{"prompt": f"fair {i}"} for i in range(4)]
    stub = StubValue()
    for cls, setting in [(VerlSampler, "reward_key"), (_Sampler, "data.v0lite.reward_key")]:
        sampler = cls(rows, RolloutPlanner(stub), batch_size=1, reward_key="acc")
        two_d = [[1, 0], [1, 0], [1, 1], [0, 0]]  # a list per rollout
        with pytest.raises(
            DataError, match=rf"{setting}='acc': .* shape \(4, 2\).*shape \(4,\) for the batch's 4 rows"
        ):
            sampler.update(_acc_batch(two_d))
        with pytest.raises(DataError, match=rf"{setting}='acc': .*must hold one number per rollout.*Fix"):
            sampler.update(_acc_batch(["yes", "no", "1", "0"]))
    for bad in (99, -1):  # -1 would silently read the last row
        with pytest.raises(DataError, match=rf"row 0 of the batch has extra_info\['{INDEX_KEY}'\] = {bad}, .*Fix"):
            sampler.update(_acc_batch([1.0] * 4, index=(bad, bad, 1, 1)))
    empty = DataProto.from_dict(
        tensors={"token_level_scores": torch.zeros(0, 3)},
        non_tensors={"uid": np.array([], dtype=object), "extra_info": np.array([], dtype=object)},
    )
    assert VerlSampler(rows, RolloutPlanner(stub), batch_size=1).update(empty) == 0
    assert stub.history == []
    guarantees.tick("bad-input cases tried", 6)


def test_a_bad_sampler_state_changes_nothing_and_says_to_pass_state_dict(guarantees):
    sampler = VerlSampler([{"prompt": f"fair {i}"} for i in range(8)], RolloutPlanner(StubValue()), batch_size=2)
    next(iter(sampler))
    before = json.dumps(sampler.state_dict())
    good = sampler.state_dict()
    for bad in [{"format": good["format"]}, {**good, "epoch": 5, "selector": {"format": "v0lite-selector-1"}}]:
        with pytest.raises(ValueError, match=r"pass what state_dict\(\) returned"):
            sampler.load_state_dict(bad)
        assert json.dumps(sampler.state_dict()) == before
    guarantees.tick("bad-input cases tried", 2)
