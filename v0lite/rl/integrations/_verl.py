"""verl 0.9.1: the train dataset read in the order a planner chooses, and the outcomes fed back.

verl 0.9.1 builds the train dataloader in two places, both from the data config: the legacy
``RayPPOTrainer`` (``trainer.use_v1=false``) and the V1 trainer (``PPOTrainer._init_dataloader``).
Both call ``create_rl_dataset``, which loads the class named by ``data.custom_cls.{path,name}``
*inside the task-runner process*, and ``create_rl_sampler``, which builds a Random or Sequential
sampler and takes no class path. So the planning sits in the dataset:
:class:`PlannedRLHFDataset` is verl's ``RLHFDataset`` whose item ``i`` is the ``i``-th row the
planner chose (verl's ``SequentialSampler`` walks it in order, ``data.shuffle=False``), and whose
``on_batch_end`` (called by ``RayPPOTrainer.fit`` after each step) feeds the outcomes back. It is
configured by ``data.v0lite.*`` (docs/rl.md has the recipe). :class:`VerlSampler` is the same
planner as a torch ``Sampler`` for code that builds ``RayPPOTrainer(train_sampler=...)`` itself,
with :class:`VerlFeedbackDataset` for the feedback.

Every prompt gets ``actor_rollout_ref.rollout.n`` rollouts (``gen_batch.repeat(repeat_times=rollout_n)``):
per-prompt group sizes are not possible in stock verl, so only the choice of prompts is planned.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..._extras import require
from ...exceptions import DataError, V0liteWarning
from .._common import warn_no_outcomes
from ._common import (
    MAX_LAG,
    FixedSizeSelector,
    _text_fn,
    candidate_chunks,
    check_text,
    check_threshold,
    group_outcomes,
    n_candidates,
)
from ._warnings import DEFAULT_THRESHOLD, warn_messages_unseen, warn_reward_scale

torch = require("torch", "verl", "VerlSampler, VerlFeedbackDataset and PlannedRLHFDataset")
Dataset, Sampler = torch.utils.data.Dataset, torch.utils.data.Sampler

__all__ = ["INDEX_KEY", "VerlFeedbackDataset", "VerlSampler"]

#: Key added to each row's ``extra_info``: the row's index in the underlying dataset.
#: verl keeps ``extra_info`` in the batch through rollout (it is a reward key), unlike the prompt.
INDEX_KEY = "v0lite_index"

_STATE_FORMAT = "v0lite-verl-sampler-1"

#: ``non_tensor_batch`` key where verl 0.9.1's agent loop puts each rollout's weight version: the
#: ``global_steps`` the rollout server's weights were last updated at (vLLM, SGLang, TensorRT-LLM
#: servers), i.e. the trainer step (from 0) the rollouts came from. ``meta_info["global_steps"]``
#: does not reach ``on_batch_end``: it is set on the generation batch only.
VERSION_KEY = "max_global_steps"

#: How VerlSampler's settings are named in the warnings about a planner's own selection settings.
_TERMS = {
    "adapter": "VerlSampler",
    "share": "oversample={inv:g} to VerlSampler (candidates per kept prompt)",
    "group": "actor_rollout_ref.rollout.n (and VerlSampler(group_size=...) for mode='p-mixed')",
    "seed": "VerlSampler(seed=...) (verl's data.seed)",
}


class VerlSampler(Sampler):
    """Each step, draw candidate prompts, keep ``batch_size`` of them with a planner, yield their indices.

    An epoch walks a seeded permutation of the dataset (dataset order with ``shuffle=False``)
    in chunks of ``ceil(oversample * batch_size)`` candidates; from each chunk the planner's
    value model keeps ``batch_size`` (see :class:`~v0lite.rl.integrations.FixedSizeSelector`),
    so verl's dataloader (``batch_size=data.train_batch_size``, ``drop_last=True``) gets exactly
    one planned step per batch. A chunk is planned when its first index is drawn.
    ``len(sampler)`` is what that dataloader needs for ``total_training_steps``.

    Parameters
    ----------
    data_source : torch Dataset
        verl's train dataset (``RLHFDataset``; its ``dataframe`` rows are read for the prompt
        text, without building messages) or any map-style dataset of row dicts.
    planner : v0lite.RolloutPlanner
    batch_size : int
        ``data.train_batch_size`` (``data.gen_batch_size`` if you set it).
    oversample : float, default 2.0
        Candidates predicted per kept prompt; one that draws no more candidates than
        ``batch_size`` selects nothing (warned).
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
    shuffle : bool, default True
        ``False``: candidates in dataset order (verl's ``data.shuffle=False``).
    seed : int, default 0
        ``data.seed``: the permutation of epoch ``e`` is seeded by ``(seed, e)``.
    step_offset, step_scale : int, default 0 and 1
        Trainer step ``t`` (from 0) is predicted and recorded at value-model step
        ``step_offset + step_scale * t`` (see :class:`~v0lite.rl.integrations.FixedSizeSelector`).

    Attributes
    ----------
    selector_ : FixedSizeSelector
        Its counters say what was kept (``n_candidates_``, ``n_chosen_``, ``n_filled_``,
        ``n_observed_``).
    planned_ : dict of int to numpy.ndarray
        The current epoch's planned steps: chunk number -> dataset indices kept.

    Notes
    -----
    ``state_dict`` / ``load_state_dict`` carry the epoch, the chunks planned in it, the
    selector's step count and RNG (plain JSON types), so verl's ``StatefulDataLoader``
    checkpoint resumes where the run stopped. The value model's history is not in that
    checkpoint (save it yourself with ``V0Regressor.save``).

    When a new epoch starts, or ``MAX_LAG`` steps were planned (more than any dataloader's
    prefetch), and :meth:`update` never fed an outcome back, the sampler warns once.

    A checkpoint verl resumes without the plan's state (verl 0.9.1 skips the dataloader's
    ``data.pt`` at an epoch boundary) restarts the plan at step 0: the first batch whose
    rollouts report a later step (``non_tensor_batch["max_global_steps"]``, the rollout weights'
    version) moves the plan to verl's step, warned. Also warned, once: the planner's own
    selection settings set away from their defaults (unused here, naming the setting that does
    their job), chat prompts whose texts the value model's history holds only under another
    ``messages`` setting, and scores outside [0, 1] with the default ``success_threshold``.

    Examples
    --------
    >>> sampler = VerlSampler(train_dataset, planner, batch_size=config.data.train_batch_size)  # doctest: +SKIP
    >>> trainer = RayPPOTrainer(config, ..., train_dataset=VerlFeedbackDataset(train_dataset, sampler),
    ...                         train_sampler=sampler)  # doctest: +SKIP
    """

    #: How errors name the settings (``PlannedRLHFDataset`` says them in ``data.v0lite`` terms).
    _MESSAGES = "messages"
    _THRESHOLD = "success_threshold"
    _REWARD_FIX = "pass reward_key= to VerlSampler, the key that holds each rollout's score"
    _REWARD_SETTING = "reward_key"

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
        success_threshold: float = DEFAULT_THRESHOLD,
        reward_key: str = "token_level_scores",
        shuffle: bool = True,
        seed: int = 0,
        step_offset: int = 0,
        step_scale: int = 1,
    ):
        self.data_source = data_source
        self.planner = planner
        self.batch_size = int(batch_size)
        self.oversample = oversample
        self.prompt_key = prompt_key
        self.success_threshold = check_threshold(success_threshold)
        self.reward_key = reward_key
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.n_candidates = n_candidates(batch_size, oversample, rolled_out=f"the batch_size={batch_size} rolled out")
        self._text = _text_fn(prompt_text, messages)
        self._custom_text = prompt_text is not None
        gs = getattr(planner, "budget_per_prompt", 8) if group_size is None else group_size
        self.selector_ = FixedSizeSelector(
            planner,
            mode=mode,
            band=band,
            group_size=gs,
            random_state=seed,
            step_offset=step_offset,
            step_scale=step_scale,
            no_outcome_fix="wrap the train dataset in VerlFeedbackDataset(dataset, sampler): RayPPOTrainer.fit calls "
            "its on_batch_end after every step, which calls sampler.update(batch); or call sampler.update yourself.",
            no_outcome_after=MAX_LAG,  # dataloader workers plan up to workers x prefetch_factor steps ahead
            stacklevel=4,  # the user's line: VerlSampler(...)
            # group_size left unset is the planner's budget_per_prompt: that setting is used
            planner_terms={**_TERMS, "used": ("budget_per_prompt",) if group_size is None else ()},
        )
        self._texts: dict[int, str] = {}
        first = candidate_chunks(len(data_source), self.n_candidates, self.seed, 0, self.shuffle)[0]  # size checked
        self.text(0)  # a missing prompt column or an empty text fails here, not at the first batch
        if not self._custom_text:
            warn_messages_unseen(planner, [self._row(i).get(self.prompt_key) for i in first], messages, self._MESSAGES)
        self._epoch = 0
        self._chunks: list | None = None
        self._last_slot = -1
        self.planned_: dict[int, np.ndarray] = {}

    @property
    def n_steps(self) -> int:
        """Planned steps per epoch."""
        return len(self.data_source) // self.n_candidates

    def __len__(self) -> int:
        return self.n_steps * self.batch_size

    def text(self, index: int) -> str:
        """The prompt text of dataset row ``index`` (cached); an empty one is an error naming the row."""
        index = int(index)
        if index not in self._texts:
            row = self._row(index)
            if self.prompt_key not in row:
                raise ValueError(
                    f"dataset row {index} has no {self.prompt_key!r} column (columns: "
                    f"{sorted(row)}); pass prompt_key= (verl's data.prompt_key)."
                )
            value = row[self.prompt_key]
            self._texts[index] = check_text(
                self._text(value), f"dataset row {index}", value, self._MESSAGES, self._custom_text
            )
        return self._texts[index]

    def _row(self, index: int) -> dict:
        """Row ``index`` as stored (verl's ``dataframe`` row: no messages built, nothing tokenized)."""
        rows = getattr(self.data_source, "dataframe", None)
        return rows[int(index)] if rows is not None else self.data_source[int(index)]

    def texts(self) -> list[str]:
        """Every row's prompt text, in dataset order (what :meth:`v0lite.RolloutPlanner.warm` takes)."""
        return [self.text(i) for i in range(len(self.data_source))]

    def _plan(self, chunk: int) -> np.ndarray:
        """Plan chunk ``chunk`` of the current epoch (once) and return the dataset indices kept."""
        if chunk not in self.planned_:
            if self._chunks is None:
                self._chunks = candidate_chunks(
                    len(self.data_source), self.n_candidates, self.seed, self._epoch, self.shuffle
                )
            cand = self._chunks[chunk]
            keep = self.selector_.choose([self.text(i) for i in cand], self.batch_size)
            self.planned_[chunk] = cand[keep]
        return self.planned_[chunk]

    def _next_epoch(self) -> None:
        sel = self.selector_  # a whole epoch planned and read, none of its outcomes back: feedback is not wired
        warn_no_outcomes(sel, sel.step_, sel.n_observed_, sel.no_outcome_fix, after=1)
        self._epoch += 1
        self._chunks = None
        self._last_slot = -1
        self.planned_ = {}

    def __iter__(self):
        if len(self.planned_) >= self.n_steps:  # the last epoch was planned to its end
            self._next_epoch()
        while len(self.planned_) < self.n_steps:  # a restored state resumes mid-epoch
            chunk = len(self.planned_)
            yield from (int(i) for i in self._plan(chunk))
            self._last_slot = (chunk + 1) * self.batch_size - 1

    def row_at(self, slot: int) -> int:
        """The dataset index at position ``slot`` of the epoch's planned order (plans on demand).

        verl's ``StatefulDataLoader`` reads slots in increasing order within an epoch (its
        ``SequentialSampler``; a resumed loader skips the slots read before the checkpoint, which
        this state records, without reading them). So a slot before the last one read starts the
        next epoch, and the last one read again (a retried read, or a look at ``dataset[i]``)
        returns the same row and starts nothing. An epoch of one planned row therefore never
        ends: the training set must hold two steps' candidates to see more than one epoch.
        """
        slot = int(slot)
        if not 0 <= slot < len(self):
            raise IndexError(f"slot {slot} out of range for {len(self)} planned rows per epoch.")
        if slot < self._last_slot:
            self._next_epoch()
        self._last_slot = slot
        return int(self._plan(slot // self.batch_size)[slot % self.batch_size])

    def state_dict(self) -> dict:
        """Epoch, chunks planned in it (their kept indices), last slot read, selector state; JSON types."""
        return {
            "format": _STATE_FORMAT,
            "epoch": self._epoch,
            "last_slot": self._last_slot,
            "planned": {str(c): [int(i) for i in v] for c, v in self.planned_.items()},
            "selector": self.selector_.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output (a resumed run continues the same epoch and order)."""
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            got = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"not a VerlSampler state (format {got!r}, expected {_STATE_FORMAT!r}).")
        fix = "pass what state_dict() returned"
        missing = [k for k in ("epoch", "last_slot", "planned", "selector") if k not in state]
        if missing:
            raise ValueError(f"the VerlSampler state has no {', '.join(map(repr, missing))}; {fix}.")
        try:  # everything read before anything is assigned: a state that does not fit changes nothing
            epoch, last_slot = int(state["epoch"]), int(state["last_slot"])
            planned = {int(c): np.asarray(v, dtype=np.int64).reshape(-1) for c, v in state["planned"].items()}
        except (AttributeError, TypeError, ValueError) as e:
            raise ValueError(f"the VerlSampler state does not fit ({e}); {fix}.") from None
        self.selector_.load_state_dict(state["selector"])  # checks its own state before assigning
        self._epoch, self._last_slot, self.planned_ = epoch, last_slot, planned
        self._chunks = None

    def update(self, batch: Any) -> int:
        """Feed one finished step's outcomes back: one group per ``uid``; returns the groups fed.

        ``batch`` is the step's ``verl.DataProto`` as ``RayPPOTrainer.fit`` holds it after the
        advantage computation (what it passes to ``on_batch_end``). The prompt of each group is
        read from ``extra_info[INDEX_KEY]`` (added by :class:`VerlFeedbackDataset` and
        :class:`PlannedRLHFDataset`), else from a ``raw_prompt`` column if the batch still has one.
        """
        ntb = batch.non_tensor_batch
        if "uid" not in ntb:
            raise ValueError("the batch has no 'uid' column; pass the batch RayPPOTrainer.fit builds (it adds uid).")
        uid = list(ntb["uid"])
        if not uid:  # nothing rolled out (and no row to tell the prompts by)
            return 0
        scores = self._scores(batch, len(uid))
        texts = self._batch_texts(ntb)
        warn_reward_scale(self, scores, self.success_threshold, self._THRESHOLD)
        self._check_resumed(ntb)
        keys, s, m = group_outcomes(uid, scores, self.success_threshold)
        first = {u: i for i, u in reversed(list(enumerate(uid)))}
        ok = m > 0  # a group whose every score is NaN carries no outcome
        return self.selector_.observe([texts[first[u]] for u, k in zip(keys, ok) if k], s[ok], m[ok])

    def _scores(self, batch: Any, n_rows: int) -> np.ndarray:
        """One score per row of ``batch``, from :attr:`reward_key`: a tensor summed over tokens, or a non-tensor."""
        ntb = batch.non_tensor_batch
        where = "batch.batch" if self.reward_key in batch.batch.keys() else "non_tensor_batch"  # noqa: SIM118
        if where == "batch.batch":
            scores = batch.batch[self.reward_key]
            scores = (scores.sum(-1) if scores.dim() > 1 else scores).float().cpu().numpy()
        elif self.reward_key in ntb:
            raw = np.asarray(ntb[self.reward_key])
            try:
                if raw.dtype.kind in "USa" or any(isinstance(v, (str, bytes)) for v in raw.reshape(-1)):
                    raise TypeError  # "1" would be read as a number: a score is one already
                scores = raw.astype(np.float64)
            except (TypeError, ValueError):
                raise DataError(
                    f"{self._REWARD_SETTING}={self.reward_key!r}: the batch's {where}[{self.reward_key!r}] must hold "
                    f"one number per rollout, got {str(raw.tolist())[:80]} (dtype {raw.dtype}). Fix: make the reward "
                    f"function return a number under {self.reward_key!r} for every rollout, or "
                    f"{self._REWARD_FIX}."
                ) from None
        else:
            raise ValueError(
                f"the batch has no {self.reward_key!r} scores (tensors: {sorted(batch.batch.keys())}, "
                f"non-tensors: {sorted(ntb)}). Fix: {self._REWARD_FIX}."
            )
        if scores.shape != (n_rows,):
            raise DataError(
                f"{self._REWARD_SETTING}={self.reward_key!r}: the batch's {where}[{self.reward_key!r}] has shape "
                f"{tuple(scores.shape)}{' after summing over tokens' if where == 'batch.batch' else ''}, not one score "
                f"per rollout, shape ({n_rows},) for the batch's {n_rows} rows. Fix: make the reward function return "
                f"one number per rollout under {self.reward_key!r}, or {self._REWARD_FIX}."
            )
        return scores

    def _check_resumed(self, ntb: dict) -> None:
        """Move the plan to verl's step when the rollouts came from a later step than the last one planned.

        In an unbroken run the latest planned step is at least the rollouts' (each trainer step
        reads one planned batch, and prefetch plans ahead). Behind it, verl resumed from a
        checkpoint without this plan's state: verl 0.9.1's ``_load_checkpoint`` skips the
        dataloader's ``data.pt`` when ``global_steps`` is a multiple of the steps per epoch, and
        the plan restarted at step 0. The plan is moved on (outcomes recorded, and later steps
        planned, at verl's steps; the next epoch is verl's) and that is warned about. Batches
        without the version (another trainer, a server that does not report it) are not checked.
        """
        version = ntb.get(VERSION_KEY)
        try:
            step = min(int(v) for v in version)  # None (not reported) or no rows: not checked
        except (TypeError, ValueError):
            return
        sel = self.selector_
        planned = sel.step_ - 1
        if step <= planned:
            return
        sel.resync(step)
        self._epoch = max(self._epoch, step // max(self.n_steps, 1))
        warnings.warn(
            f"the rollouts of this batch came from verl's trainer step {step} (global_steps {step + 1}) but the plan "
            f"was at step {planned}: verl resumed from a checkpoint without the plan's state (verl 0.9.1 does not "
            "restore the dataloader's data.pt from a checkpoint at an epoch boundary, global_steps a multiple of the "
            "steps per epoch, so the plan restarted at epoch 0, step 0). The plan now follows verl's steps: these "
            f"outcomes are recorded at value-model step {sel.history_step(step)} (this batch was chosen with "
            f"predictions at step {sel.history_step(planned)}) and the next epoch is verl's. Fix: nothing for the "
            "steps; the value model's history since the run started is not in verl's checkpoint, so load one saved "
            "with it (V0Regressor.save) to resume with what it had learned, and save checkpoints off epoch "
            "boundaries (trainer.save_freq) to resume the plan's own order.",
            V0liteWarning,
            stacklevel=3,
        )

    def _batch_texts(self, ntb: dict) -> list:
        info = ntb.get("extra_info")
        if info is not None and len(info) and all(isinstance(e, dict) and INDEX_KEY in e for e in info):
            n = len(self.data_source)
            for row, e in enumerate(info):
                i = e[INDEX_KEY]
                if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)) or not 0 <= i < n:
                    raise DataError(
                        f"row {row} of the batch has extra_info[{INDEX_KEY!r}] = {i!r}, not a row of the sampler's "
                        f"dataset (0 to {n - 1}): the batch came from another dataset. Fix: build the sampler and "
                        "VerlFeedbackDataset(dataset, sampler) on the train dataset the trainer reads."
                    )
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
