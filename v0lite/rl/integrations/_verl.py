"""verl 0.9.1: a dataloader sampler that keeps the prompts worth rolling out, and its feedback.

verl's legacy trainer ``verl.trainer.ppo.ray_trainer.RayPPOTrainer`` takes ``train_sampler`` (a
torch ``Sampler``) and, after every step, calls ``train_dataset.on_batch_end(batch=batch)`` when
the dataset has that method. :class:`VerlSampler` is the sampler; :class:`VerlFeedbackDataset`
wraps the train dataset so that ``on_batch_end`` feeds each group's outcomes back to it.

What verl 0.9.1 does not offer (read from its source): there is no ``data.sampler`` class-path
setting and no curriculum-sampler interface (``create_rl_sampler`` builds a Random or Sequential
sampler only), and the default V1 trainer (``trainer.use_v1=true``) builds its dataloader itself
with no sampler argument. Use the legacy trainer (``trainer.use_v1=false``): :func:`verl_hooks`
gives drop-in replacements for the two factories its task runner calls (docs/rl.md has the
recipe). Every prompt gets ``actor_rollout_ref.rollout.n`` rollouts
(``gen_batch.repeat(repeat_times=rollout_n)``): per-prompt group sizes are not possible in
stock verl, so only the choice of prompts is planned here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..._extras import require
from ._common import (
    FixedSizeSelector,
    _text_fn,
    candidate_chunks,
    group_outcomes,
    n_candidates,
)

torch = require("torch", "verl")
Dataset, Sampler = torch.utils.data.Dataset, torch.utils.data.Sampler

__all__ = ["INDEX_KEY", "VerlFeedbackDataset", "VerlSampler", "verl_hooks"]

#: Key added to each row's ``extra_info`` by :class:`VerlFeedbackDataset`: the row's dataset index.
#: verl keeps ``extra_info`` in the batch through rollout (it is a reward key), unlike the prompt.
INDEX_KEY = "v0lite_index"


class VerlSampler(Sampler):
    """Each step, draw candidate prompts, keep ``batch_size`` of them with a planner, yield their indices.

    An epoch walks a seeded permutation of the dataset in chunks of
    ``ceil(oversample * batch_size)`` candidates; from each chunk the planner's value model
    keeps ``batch_size`` (see :class:`~v0lite.rl.integrations._common.FixedSizeSelector`), so
    verl's dataloader (``batch_size=data.train_batch_size``, ``drop_last=True``) gets exactly
    one planned step per batch. ``len(sampler)`` is what that dataloader needs for
    ``total_training_steps``.

    Parameters
    ----------
    data_source : torch Dataset
        verl's train dataset (``RLHFDataset``; its ``dataframe`` rows are read for the prompt
        text, without building messages) or any map-style dataset of row dicts.
    planner : v0lite.RolloutPlanner
    batch_size : int
        ``data.train_batch_size`` (``data.gen_batch_size`` if you set it).
    oversample : float, default 2.0
        Candidates predicted per kept prompt.
    mode : {"band", "p-mixed"}, default "band"
    band : (float, float), default (0.2, 0.8)
    group_size : int, optional
        ``actor_rollout_ref.rollout.n`` (the ``"p-mixed"`` ranking's group size); default the
        planner's ``budget_per_prompt``.
    prompt_key : str, default "prompt"
        verl's ``data.prompt_key``.
    prompt_text : callable, optional
        ``row[prompt_key] -> str``; default :func:`~v0lite.rl.integrations.prompt_text`
        (a string as is, chat messages joined as chosen by ``messages``).
    messages : {"all", "user", "last_user"}, default "all"
    success_threshold : float, default 0.5
        A rollout succeeds when its score is ``> success_threshold`` (0/1 rewards; use 0.0
        for -1/1 rewards).
    reward_key : str, default "token_level_scores"
        Where :meth:`update` reads each rollout's score: a ``batch.batch`` tensor (summed over
        tokens, as verl places the rule reward at the last token) or a ``non_tensor_batch``
        key such as ``"acc"`` that your reward function returns.
    seed : int, default 0

    Attributes
    ----------
    selector_ : FixedSizeSelector
        Its counters say what was kept (``n_candidates_``, ``n_chosen_``, ``n_filled_``,
        ``n_observed_``).

    Notes
    -----
    The dataloader prefetches, so the plan of a step is made before the outcomes of the last
    one or two steps are fed back; the value model then lags by that much. On resume, verl's
    ``StatefulDataLoader`` skips consumed batches by iterating this sampler again (those steps
    are predicted, not rolled out); the value model's history is not in verl's checkpoint.

    Examples
    --------
    >>> sampler = VerlSampler(train_dataset, planner, batch_size=config.data.train_batch_size)  # doctest: +SKIP
    >>> trainer = RayPPOTrainer(config, ..., train_dataset=VerlFeedbackDataset(train_dataset, sampler),
    ...                         train_sampler=sampler)  # doctest: +SKIP
    """

    def __init__(
        self,
        data_source: Any,
        planner: Any,
        batch_size: int,
        *,
        oversample: float = 2.0,
        mode: str = "band",
        band: Sequence[float] = (0.2, 0.8),
        group_size: int | None = None,
        prompt_key: str = "prompt",
        prompt_text: Callable | None = None,
        messages: str = "all",
        success_threshold: float = 0.5,
        reward_key: str = "token_level_scores",
        seed: int = 0,
    ):
        self.data_source = data_source
        self.planner = planner
        self.batch_size = int(batch_size)
        self.oversample = oversample
        self.prompt_key = prompt_key
        self.success_threshold = float(success_threshold)
        self.reward_key = reward_key
        self.seed = int(seed)
        self.n_candidates = n_candidates(batch_size, oversample)
        self._text = _text_fn(prompt_text, messages)
        gs = getattr(planner, "budget_per_prompt", 8) if group_size is None else group_size
        self.selector_ = FixedSizeSelector(planner, mode=mode, band=band, group_size=gs, random_state=seed)
        self._texts: dict[int, str] = {}
        self._epoch = 0
        if len(data_source) < self.n_candidates:  # fail at construction, not at the first step
            candidate_chunks(len(data_source), self.n_candidates, self.seed, 0)

    def __len__(self) -> int:
        return (len(self.data_source) // self.n_candidates) * self.batch_size

    def text(self, index: int) -> str:
        """The prompt text of dataset row ``index`` (cached)."""
        index = int(index)
        if index not in self._texts:
            rows = getattr(self.data_source, "dataframe", None)
            row = rows[index] if rows is not None else self.data_source[index]
            if self.prompt_key not in row:
                raise ValueError(
                    f"dataset row {index} has no {self.prompt_key!r} column (columns: "
                    f"{sorted(row)}); pass prompt_key= (verl's data.prompt_key)."
                )
            self._texts[index] = self._text(row[self.prompt_key])
        return self._texts[index]

    def __iter__(self):
        chunks = candidate_chunks(len(self.data_source), self.n_candidates, self.seed, self._epoch)
        self._epoch += 1
        for chunk in chunks:
            keep = self.selector_.choose([self.text(i) for i in chunk], self.batch_size)
            yield from (int(i) for i in chunk[keep])

    def update(self, batch: Any) -> int:
        """Feed one finished step's outcomes back: one group per ``uid``; returns the groups fed.

        ``batch`` is the step's ``verl.DataProto`` as ``RayPPOTrainer.fit`` holds it after the
        advantage computation (what it passes to ``on_batch_end``). The prompt of each group is
        read from ``extra_info[INDEX_KEY]`` (added by :class:`VerlFeedbackDataset`), else from
        a ``raw_prompt`` column if the batch still has one.
        """
        ntb = batch.non_tensor_batch
        if "uid" not in ntb:
            raise ValueError("the batch has no 'uid' column; pass the batch RayPPOTrainer.fit builds (it adds uid).")
        uid = list(ntb["uid"])
        if self.reward_key in batch.batch.keys():  # noqa: SIM118 (a TensorDict)
            scores = batch.batch[self.reward_key]
            scores = (scores.sum(-1) if scores.dim() > 1 else scores).float().cpu().numpy()
        elif self.reward_key in ntb:
            scores = np.asarray(ntb[self.reward_key], dtype=np.float64)
        else:
            raise ValueError(
                f"the batch has no {self.reward_key!r} scores (tensors: {sorted(batch.batch.keys())}, "
                f"non-tensors: {sorted(ntb)}); pass reward_key= to VerlSampler."
            )
        texts = self._batch_texts(ntb)
        keys, s, m = group_outcomes(uid, scores, self.success_threshold)
        first = {u: i for i, u in reversed(list(enumerate(uid)))}
        ok = m > 0  # a group whose every score is NaN carries no outcome
        return self.selector_.observe([texts[first[u]] for u, k in zip(keys, ok) if k], s[ok], m[ok])

    def _batch_texts(self, ntb: dict) -> list:
        info = ntb.get("extra_info")
        if info is not None and len(info) and all(isinstance(e, dict) and INDEX_KEY in e for e in info):
            return [self.text(e[INDEX_KEY]) for e in info]
        if "raw_prompt" in ntb:
            return [self._text(v) for v in ntb["raw_prompt"]]
        raise ValueError(
            f"cannot tell which prompt each row of the batch came from: no extra_info[{INDEX_KEY!r}] "
            "and no raw_prompt; wrap the train dataset in VerlFeedbackDataset(dataset, sampler)."
        )


class VerlFeedbackDataset(Dataset):
    """verl's train dataset with ``on_batch_end`` wired to a :class:`VerlSampler`'s feedback.

    Rows are the wrapped dataset's, with ``extra_info[INDEX_KEY]`` set to the row's index so
    the finished batch says which prompt each rollout came from. Attributes not defined here
    are the wrapped dataset's. The sampler is not pickled into dataloader workers (they only
    read rows).

    Parameters
    ----------
    dataset : torch Dataset
        verl's ``RLHFDataset`` (or any dataset whose rows are dicts).
    sampler : VerlSampler
    """

    def __init__(self, dataset: Any, sampler: VerlSampler):
        self.dataset = dataset
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        row = self.dataset[index]
        if not isinstance(row, dict):
            raise TypeError(f"row {index} is a {type(row).__name__}; VerlFeedbackDataset needs dict rows (verl's).")
        info = dict(row.get("extra_info") or {})
        info[INDEX_KEY] = int(index)
        return {**row, "extra_info": info}  # a new dict: the dataset's own row stays as it was

    def __getattr__(self, name):
        if name in ("dataset", "sampler"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getstate__(self):
        return {"dataset": self.dataset, "sampler": None}

    def __setstate__(self, state):
        self.__dict__.update(state)

    def on_batch_end(self, batch: Any) -> None:
        """Called by ``RayPPOTrainer.fit`` after every step: feeds the outcomes to the sampler."""
        if self.sampler is not None:
            self.sampler.update(batch)
        inner = getattr(self.dataset, "on_batch_end", None)
        if inner is not None:
            inner(batch=batch)


def verl_hooks(planner: Any, **sampler_kwargs: Any):
    """Drop-in replacements for verl's ``create_rl_dataset`` and ``create_rl_sampler``.

    verl 0.9.1's legacy task runner (``verl.trainer.main_ppo_v0.TaskRunner.run``) builds the
    train dataset and sampler with these two module-level functions and hands both to
    ``RayPPOTrainer``. Assign the returned pair over them in that module, inside the task
    runner's process (see docs/rl.md), and the trainer gets a :class:`VerlSampler` and a
    :class:`VerlFeedbackDataset` wired to it; the validation dataset is left as verl builds it.

    Parameters
    ----------
    planner : v0lite.RolloutPlanner or callable
        The planner, or a zero-argument callable returning one (called once, in the process
        that builds the sampler, so the value model is loaded where it is used).
    **sampler_kwargs
        Passed to :class:`VerlSampler` (``oversample``, ``mode``, ``band``, ``group_size`` =
        ``actor_rollout_ref.rollout.n``, ``messages``, ``success_threshold``, ...).
        ``batch_size``, ``prompt_key`` and ``seed`` default to ``data.gen_batch_size`` or
        ``data.train_batch_size``, ``data.prompt_key`` and ``data.seed``.

    Returns
    -------
    (create_rl_dataset, create_rl_sampler)
        With the signatures of ``verl.trainer.ppo.utils``'s functions.
    """
    from verl.trainer.ppo.utils import create_rl_dataset as stock_dataset

    def create_rl_dataset(data_paths, data_config, tokenizer, processor, is_train=True, max_samples=-1):
        ds = stock_dataset(data_paths, data_config, tokenizer, processor, is_train=is_train, max_samples=max_samples)
        return VerlFeedbackDataset(ds, None) if is_train else ds

    def create_rl_sampler(data_config, dataset):
        if not isinstance(dataset, VerlFeedbackDataset):
            raise TypeError(
                "create_rl_sampler got a dataset that the paired create_rl_dataset did not build; "
                "replace both of verl's factories with the pair verl_hooks returns."
            )
        plan = planner if hasattr(planner, "observe") else planner()
        kw = {
            "batch_size": data_config.get("gen_batch_size", None) or data_config.train_batch_size,
            "prompt_key": data_config.get("prompt_key", "prompt"),
            "seed": data_config.get("seed", None) or 0,
        }
        kw.update(sampler_kwargs)
        sampler = VerlSampler(dataset.dataset, plan, **kw)
        dataset.sampler = sampler
        return sampler

    return create_rl_dataset, create_rl_sampler
