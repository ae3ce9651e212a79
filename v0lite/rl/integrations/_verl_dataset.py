"""verl 0.9.1's ``data.custom_cls``: the train dataset in the order a RolloutPlanner chooses.

verl loads the class named by ``data.custom_cls.{path,name}`` with ``load_extern_object`` inside
``create_rl_dataset``, in the task-runner process, for the legacy trainer and the V1 trainer
alike; nothing has to be assigned into verl's modules. :class:`PlannedRLHFDataset` wraps verl's
``RLHFDataset``: item ``i`` is the ``i``-th row a :class:`~v0lite.rl.integrations.VerlSampler`
planned, which verl's ``SequentialSampler`` (``data.shuffle=False``) reads in order, and
``on_batch_end`` feeds each step's outcomes back. Its options are ``data.v0lite.*``.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..._extras import require
from ...exceptions import DataError, ParameterError, V0liteWarning
from .._common import NO_OUTCOME_AFTER, check_known_policy
from ._common import (
    NO_SELECTION,
    check_band,
    check_int,
    check_mode,
    check_threshold,
    n_candidates,
    prompt_text,
)
from ._verl import INDEX_KEY, Dataset, VerlSampler

__all__ = ["PlannedRLHFDataset", "V0LITE_KEYS"]

#: What the dataset's no-outcome warning (after ``NO_OUTCOME_AFTER`` planned steps) says to do:
#: verl 0.9.1's V1 trainer never calls ``on_batch_end``; the legacy one does after every step.
NO_OUTCOME_FIX = (
    "this trainer does not call train_dataset.on_batch_end (verl 0.9.1's V1 trainer does not); run the legacy "
    "trainer, trainer.use_v1=false, as in docs/rl.md."
)

#: ``data.v0lite.*`` options and their defaults (``model`` and ``policy`` are required).
V0LITE_KEYS = {
    "model": None,
    "policy": None,
    "oversample": 2.0,
    "mode": "band",
    "band": (0.2, 0.8),
    "group_size": 8,
    "messages": "all",
    "success_threshold": 0.5,
    "reward_key": "token_level_scores",
    "shuffle": True,
    "step_offset": 0,
    "step_scale": 1,
    "device": None,
    "warm": True,
}


class _Sampler(VerlSampler):
    """:class:`VerlSampler` whose errors name the settings in ``data.v0lite`` terms."""

    _MESSAGES = "data.v0lite.messages"
    _THRESHOLD = "data.v0lite.success_threshold"
    _REWARD_SETTING = "data.v0lite.reward_key"
    _REWARD_FIX = (
        "set data.v0lite.reward_key to the key that holds each rollout's score (token_level_scores, the default, "
        "or a value your reward function returns in reward_extra_info)"
    )


def _as_list(files: Any) -> list[str]:
    if files is None:
        return []
    if isinstance(files, str):
        return [files]
    return [str(f) for f in files]


def _options(config: Any) -> dict:
    raw = config.get("v0lite", None) if hasattr(config, "get") else None
    if raw is None:
        raise ValueError(
            "PlannedRLHFDataset needs its options under data.v0lite: add +data.v0lite.model=/path/to/v0_model "
            "+data.v0lite.policy=NAME to the command line (docs/rl.md)."
        )
    if hasattr(raw, "items") and not isinstance(raw, dict):  # an OmegaConf DictConfig
        from omegaconf import OmegaConf

        raw = OmegaConf.to_container(raw, resolve=True)
    unknown = sorted(set(raw) - set(V0LITE_KEYS))
    if unknown:
        raise ValueError(f"unknown option data.v0lite.{unknown[0]}; the options are {sorted(V0LITE_KEYS)}.")
    opts = {**V0LITE_KEYS, **raw}
    for key in ("model", "policy"):
        if not opts[key]:
            raise ValueError(f"data.v0lite.{key} is required: add +data.v0lite.{key}=... (docs/rl.md).")
    return _checked(opts)


def _checked(opts: dict) -> dict:
    """The options with their types checked, each error naming ``data.v0lite.<option>`` (before any work)."""
    key = "data.v0lite.{}".format
    out = dict(opts)
    out["mode"] = check_mode(opts["mode"], key("mode"))
    out["band"] = check_band(opts["band"], key("band"))
    out["success_threshold"] = check_threshold(opts["success_threshold"], key("success_threshold"))
    why = " (a group of 1 has no advantage; use ${actor_rollout_ref.rollout.n})"
    out["group_size"] = check_int(opts["group_size"], key("group_size"), 2, why)
    out["step_offset"] = check_int(opts["step_offset"], key("step_offset"), 0)
    out["step_scale"] = check_int(opts["step_scale"], key("step_scale"), 1)
    for name in ("shuffle", "warm"):
        if not isinstance(opts[name], bool):
            raise ParameterError(f"{key(name)} must be true or false, got {opts[name]!r}. Fix: {key(name)}=true.")
    for name in ("reward_key", "messages"):
        if not isinstance(opts[name], str):
            raise ParameterError(f"{key(name)} must be a string, got {opts[name]!r}.")
    try:
        prompt_text(" ", opts["messages"])
    except ValueError as e:
        raise ParameterError(f"{key('messages')}: {e}") from None
    return out


def _check_rows(dataset: Any, data_files: Any, config: Any, chunk: int, batch_key: str) -> None:
    """verl's train rows are there, with the prompt column, and enough of them for one step."""
    key = config.get("prompt_key", "prompt")
    columns = getattr(getattr(dataset, "dataframe", None), "column_names", None)
    if columns is not None and key not in columns:
        raise DataError(
            f"data.prompt_key={key!r} is not a column of data.train_files {_as_list(data_files)} (columns: "
            f"{sorted(columns)}). Fix: set data.prompt_key to the column that holds the prompts."
        )
    if len(dataset) == 0:
        raise DataError(
            f"verl's RLHFDataset has 0 rows from data.train_files {_as_list(data_files)}: the files are empty, or verl "
            "dropped every row (data.filter_overlong_prompts drops prompts longer than data.max_prompt_length). "
            "Fix: check the files, data.prompt_key and data.max_prompt_length."
        )
    if len(dataset) < chunk:
        raise DataError(
            f"the training set has {len(dataset)} prompts, fewer than the {chunk} candidates one step needs "
            f"({batch_key} x data.v0lite.oversample). Fix: lower data.v0lite.oversample or {batch_key}, or add prompts."
        )


def _rlhf_dataset():
    """verl's ``RLHFDataset``, or :class:`~v0lite._extras.MissingExtraError` with ``pip install 'v0lite[verl]'``.

    Imported when a dataset is built, not with this module (verl is heavy, and loads this module itself).
    """
    require("verl", "verl", "PlannedRLHFDataset")
    from verl.utils.dataset.rl_dataset import RLHFDataset

    return RLHFDataset


class PlannedRLHFDataset(Dataset):
    """verl's ``RLHFDataset`` read in the order a v0lite planner chooses; verl's ``data.custom_cls``.

    Constructed by verl (``create_rl_dataset``) with ``RLHFDataset``'s arguments. For the
    training files it loads the value model ``data.v0lite.model`` (a saved
    :class:`v0lite.V0Regressor` folder), wraps it in a :class:`v0lite.RolloutPlanner` for
    ``data.v0lite.policy``, and plans with a :class:`~v0lite.rl.integrations.VerlSampler`
    (``data.train_batch_size`` or ``data.gen_batch_size`` kept per step, ``data.prompt_key``,
    ``data.seed``). For the validation files (``data.val_files``) it returns verl's plain
    ``RLHFDataset``.

    It requires ``data.shuffle=False`` (verl's sampler must read the planned order as it is;
    the candidates are shuffled here, ``data.v0lite.shuffle``) and
    ``data.dataloader_num_workers=0`` (rows are planned when read, in the trainer's process,
    where ``on_batch_end`` feeds the outcomes back; with no prefetch, the outcomes of step
    ``t`` reach the value model before step ``t + 1`` is planned). Both are checked here,
    before verl starts its workers.

    Parameters
    ----------
    data_files, tokenizer, config, processor, max_samples
        ``RLHFDataset``'s.

    Attributes
    ----------
    dataset : verl.utils.dataset.rl_dataset.RLHFDataset
        The rows.
    sampler : VerlSampler
        The plan (``sampler.planned_``, ``sampler.selector_`` counters).
    """

    def __new__(cls, data_files: Any = None, tokenizer: Any = None, config: Any = None, *args: Any, **kwargs: Any):
        RLHFDataset = _rlhf_dataset()  # first: without verl, the install line rather than a raw import error
        if config is not None and data_files is not None:
            val, train = _as_list(config.get("val_files", None)), _as_list(config.get("train_files", None))
            if _as_list(data_files) == val and val != train:
                return RLHFDataset(data_files, tokenizer, config, *args, **kwargs)  # validation: not planned
        return super().__new__(cls)

    def __init__(self, data_files: Any, tokenizer: Any, config: Any, processor: Any = None, max_samples: int = -1):
        from ...estimator import V0Regressor
        from .._planner import RolloutPlanner

        RLHFDataset = _rlhf_dataset()

        opts = _options(config)
        if config.get("shuffle", True):
            raise ValueError(
                "PlannedRLHFDataset needs data.shuffle=False: verl's sampler must read the planned order as it is "
                "(the candidates are shuffled by v0lite, data.v0lite.shuffle, seeded by data.seed)."
            )
        workers = config.get("dataloader_num_workers", 0)
        if workers != 0:
            raise ValueError(
                f"PlannedRLHFDataset needs data.dataloader_num_workers=0 (got {workers}): rows are planned when read, "
                "in the trainer's process, where the outcomes come back; worker processes would plan on copies."
            )
        batch_size = config.get("gen_batch_size", None) or config.train_batch_size
        batch_key = "data.gen_batch_size" if config.get("gen_batch_size", None) else "data.train_batch_size"
        chunk = n_candidates(
            batch_size,
            opts["oversample"],
            names=(batch_key, "data.v0lite.oversample"),
            rolled_out=f"the {batch_key}={batch_size} rolled out",
        )
        model = V0Regressor.load(opts["model"], device=opts["device"])
        policy = str(opts["policy"])
        # an unknown policy fails here, before verl's RLHFDataset reads the files and anything is embedded
        check_known_policy(
            model,
            policy,
            "data.v0lite.policy",
            fix=f"save the model with some of {policy!r}'s outcomes in its history (V0Regressor.add_history, then "
            "save) or with fallback='global_mean' (predicts it from the pool of policies)",
        )
        planner = RolloutPlanner(model, policy=policy)
        self.dataset = RLHFDataset(data_files, tokenizer, config, processor=processor, max_samples=max_samples)
        _check_rows(self.dataset, data_files, config, chunk, batch_key)
        with warnings.catch_warnings():  # said above in data.v0lite terms
            warnings.filterwarnings("ignore", f".*{NO_SELECTION}", V0liteWarning)
            self.sampler = _Sampler(
                self.dataset,
                planner,
                batch_size=batch_size,
                oversample=opts["oversample"],
                mode=opts["mode"],
                band=opts["band"],
                group_size=opts["group_size"],
                prompt_key=config.get("prompt_key", "prompt"),
                messages=opts["messages"],
                success_threshold=opts["success_threshold"],
                reward_key=opts["reward_key"],
                shuffle=opts["shuffle"],
                seed=config.get("seed", None) or 0,
                step_offset=opts["step_offset"],
                step_scale=opts["step_scale"],
            )
        sel = self.sampler.selector_
        sel.no_outcome_fix, sel.no_outcome_after = NO_OUTCOME_FIX, NO_OUTCOME_AFTER  # no prefetch: workers are 0
        texts = self.sampler.texts()
        if opts["warm"]:
            planner.warm(texts)  # every prompt embedded now, not inside the dataloader's next()
        self.sampler.selector_.predict(texts[:1], 0)  # a model that cannot predict fails here, before verl's workers

    def __len__(self) -> int:
        return len(self.sampler)

    def __getitem__(self, slot: int) -> dict:
        index = self.sampler.row_at(slot)  # warns once after 3 planned steps with no outcome back
        row = self.dataset[index]
        info = dict(row.get("extra_info") or {})
        info[INDEX_KEY] = index
        return {**row, "extra_info": info}

    def __getattr__(self, name: str):
        if name in ("dataset", "sampler"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def on_batch_end(self, batch: Any) -> None:
        """Called by ``RayPPOTrainer.fit`` after every step: feeds the outcomes to the planner."""
        self.sampler.update(batch)

    def state_dict(self) -> dict:
        """The plan's state; verl's ``StatefulDataLoader`` saves it in the checkpoint."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
