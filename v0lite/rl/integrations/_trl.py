"""TRL 1.16: ``GRPOTrainer`` that rolls out only the prompts a planner keeps, and learns from them.

TRL's hook before rollout is ``GRPOTrainer._get_train_sampler``: its ``RepeatSampler`` yields each
of ``generation_batch_size // num_generations`` prompt indices ``num_generations`` times in a row,
the whole chunk ``num_iterations * steps_per_generation`` times. :class:`PlannedRepeatSampler`
keeps that contract (so TRL's groups, ``rewards.view(-1, num_generations)``, stay intact) and only
changes *which* prompts fill a chunk. After rollout, ``GRPOTrainer._calculate_rewards`` returns
the rewards of every completion, gathered from all processes; :class:`PlannedGRPOTrainer` reads
them there and feeds each group's successes back to the planner.

Per-prompt group sizes are not possible in TRL 1.16 (one ``num_generations`` per run; the
reward reshape needs it), so only the choice of prompts is planned.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..._extras import require
from ...exceptions import ParameterError
from .._common import warn_no_outcomes
from ._common import (
    FixedSizeSelector,
    _text_fn,
    candidate_chunks,
    check_int,
    check_text,
    check_threshold,
    group_outcomes,
    n_candidates,
)
from ._warnings import DEFAULT_THRESHOLD, warn_messages_unseen, warn_reward_scale

_WHAT = "PlannedGRPOTrainer and PlannedRepeatSampler"  # what the install line is needed for
torch = require("torch", "trl", _WHAT)
trl = require("trl", "trl", _WHAT)
Sampler = torch.utils.data.Sampler

__all__ = ["PlannedGRPOTrainer", "PlannedRepeatSampler"]

#: Generation batches scored with no group's outcome before the trainer warns (counted where TRL
#: scores real generations, so batches a resumed run skips, planned but never rolled out, do not count).
NO_OUTCOME_BATCHES = 2

#: How TRL's settings are named in the warnings about a planner's own selection settings.
_TERMS = {
    "adapter": "PlannedGRPOTrainer",
    "share": "oversample={inv:g} to PlannedGRPOTrainer (candidates per rolled-out prompt)",
    "group": "GRPOConfig(num_generations=...)",
    "seed": "GRPOConfig(seed=...)",
}


class PlannedRepeatSampler(Sampler):
    """TRL's ``RepeatSampler`` layout, with each chunk's prompts chosen by a planner.

    Each chunk draws ``ceil(oversample * batch_size)`` candidates from a seeded permutation of
    the dataset (every prompt a candidate once per epoch), keeps ``batch_size`` of them with
    ``selector``, and yields every kept index ``mini_repeat_count`` times in a row, the chunk
    ``repeat_count`` times.

    Parameters
    ----------
    data_source : map-style dataset
        Rows are dicts with a ``prompt_column`` (a string or chat messages).
    selector : FixedSizeSelector
    mini_repeat_count : int
        ``num_generations``.
    batch_size : int
        Unique prompts per chunk (``generation_batch_size // num_generations``).
    repeat_count : int, default 1
        ``num_iterations * steps_per_generation``.
    oversample : float, default 2.0
    prompt_column : str, default "prompt"
    prompt_text : callable, optional
        ``row[prompt_column] -> str``; default :func:`~v0lite.rl.integrations.prompt_text`.
    messages : {"all", "user", "last_user"}, default "all"
    shuffle : bool, default True
        ``False``: candidates in dataset order (TRL's ``shuffle_dataset=False``).
    seed : int, default 0
    """

    def __init__(
        self,
        data_source: Any,
        selector: FixedSizeSelector,
        mini_repeat_count: int,
        batch_size: int,
        repeat_count: int = 1,
        *,
        oversample: float = 2.0,
        prompt_column: str = "prompt",
        prompt_text: Callable | None = None,
        messages: str = "all",
        shuffle: bool = True,
        seed: int = 0,
    ):
        if not hasattr(data_source, "__getitem__") or not hasattr(data_source, "__len__"):
            raise ValueError(
                "PlannedRepeatSampler needs a map-style dataset (an IterableDataset cannot be "
                "planned: load it with streaming=False)."
            )
        self.data_source = data_source
        self.selector = selector
        self.mini_repeat_count = int(mini_repeat_count)
        self.batch_size = int(batch_size)
        self.repeat_count = int(repeat_count)
        self.prompt_column = prompt_column
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.n_candidates = n_candidates(batch_size, oversample)
        self._text = _text_fn(prompt_text, messages)
        self._custom_text = prompt_text is not None
        self._texts: dict[int, str] = {}
        self._epoch = 0
        first = candidate_chunks(len(data_source), self.n_candidates, self.seed, 0, self.shuffle)[0]  # size checked
        self.text(0)  # so does a missing prompt column, or a text that comes out empty
        if not self._custom_text and not getattr(selector, "_messages_checked", False):
            selector._messages_checked = True  # PlannedGRPOTrainer builds its sampler twice: one warning
            rows = (data_source[int(i)] for i in first)
            warn_messages_unseen(selector.planner, [r.get(self.prompt_column) for r in rows], messages)

    def text(self, index: int) -> str:
        """The prompt text of row ``index`` (cached); an empty one is an error naming the row and ``messages=``."""
        index = int(index)
        if index not in self._texts:
            row = self.data_source[index]
            if self.prompt_column not in row:
                raise ValueError(
                    f"dataset row {index} has no {self.prompt_column!r} column (columns: "
                    f"{sorted(row)}); GRPOTrainer reads prompts from 'prompt'."
                )
            value = row[self.prompt_column]
            self._texts[index] = check_text(
                self._text(value), f"dataset row {index}", value, "messages", self._custom_text
            )
        return self._texts[index]

    def __iter__(self):
        chunks = candidate_chunks(len(self.data_source), self.n_candidates, self.seed, self._epoch, self.shuffle)
        self._epoch += 1
        for chunk in chunks:
            kept = chunk[self.selector.choose([self.text(i) for i in chunk], self.batch_size)]
            for _ in range(self.repeat_count):
                for index in kept:
                    for _ in range(self.mini_repeat_count):
                        yield int(index)

    def __len__(self) -> int:
        steps = len(self.data_source) // self.n_candidates
        return steps * self.batch_size * self.mini_repeat_count * self.repeat_count


class PlannedGRPOTrainer(trl.GRPOTrainer):
    """``trl.GRPOTrainer`` whose prompts are chosen before rollout by a v0lite planner.

    Takes every argument of ``GRPOTrainer`` plus the keyword-only ones below. Each generation
    batch draws ``oversample`` times as many candidate prompts as TRL would roll out, keeps
    the planned ones at TRL's fixed ``num_generations``, and after scoring feeds each group's
    successes to ``planner.observe`` (a completion succeeds when its weighted total reward, as
    TRL sums it, is ``> success_threshold``). Evaluation batches are not fed back.

    Parameters
    ----------
    planner : v0lite.RolloutPlanner
    oversample : float, default 2.0
        Candidates per rolled-out prompt; one that draws no more candidates than a generation
        batch's prompts selects nothing (warned).
    mode : {"band", "p-mixed"}, default "band"
    band : (float, float), default (0.2, 0.8)
    success_threshold : float, default 0.5
    prompt_text : callable, optional
    messages : {"all", "user", "last_user"}, default "all"
    step_offset : int, default 0
    step_scale : int, optional
        Generation batch ``t`` (from 0) is predicted and recorded at value-model step
        ``step_offset + step_scale * t`` (see :class:`~v0lite.rl.integrations.FixedSizeSelector`).
        Default: the optimizer steps one generation batch lasts, ``num_iterations *
        steps_per_generation / gradient_accumulation_steps`` from ``args`` (TRL generates every
        ``steps_per_generation * num_iterations`` micro-batches and steps the optimizer every
        ``gradient_accumulation_steps``; ``steps_per_generation`` defaults to the latter, so
        this is ``num_iterations`` unless you set it), so that the value model's steps count
        optimizer steps like ``trainer.state.global_step``. A ratio that is not a whole number
        is refused: set ``step_scale`` yourself (``1`` counts generation batches).

    Attributes
    ----------
    selector_ : FixedSizeSelector
        What was kept and fed back (``n_candidates_``, ``n_chosen_``, ``n_filled_``, ``n_observed_``).

    Notes
    -----
    With several processes every rank builds the same sampler (seed ``args.seed``) and feeds
    back the same gathered rewards, so the ranks' value models stay identical and choose the
    same prompts; this is by construction, tested on one process only. Groups are TRL's:
    ``num_generations`` consecutive completions, so a prompt that appears twice in a batch
    gives two groups. A streaming ``IterableDataset`` cannot be planned and is refused; so are a
    dataset without a ``prompt`` column, one whose first prompt's text comes out empty (e.g.
    ``messages="user"`` on a prompt with only a system message; a later one is refused when its
    chunk is planned, naming the row), one with fewer prompts than one generation batch's
    candidates, and a ``success_threshold`` that is not a number (before the model loads when
    ``args`` is given). When two generation batches were scored and no group has an outcome yet
    (every reward ``None``/NaN), the trainer warns once; batches that
    ``train(resume_from_checkpoint=...)`` skips are planned again (so the plan's step count
    follows the unbroken run's) but are not rolled out, and do not count. A reward outside
    [0, 1] while ``success_threshold`` is the default 0.5 is warned about once. The planner's
    own selection settings (``keep_fraction``, ``strategy``, ``budget_per_prompt``, ``n_min``,
    ``n_max``, ``value``, ``random_state``) are not used: one set away from its default is
    warned about, naming the setting here that does its job. Chat prompts whose texts the
    value model's history holds only under another ``messages`` setting are warned about
    when the trainer is built.

    Examples
    --------
    >>> trainer = PlannedGRPOTrainer(model=model, reward_funcs=reward, args=GRPOConfig(...),
    ...                              train_dataset=ds, planner=RolloutPlanner(value_model))  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
    """

    def __init__(
        self,
        *args: Any,
        planner: Any,
        oversample: float = 2.0,
        mode: str = "band",
        band: Sequence[float] = (0.2, 0.8),
        success_threshold: float = DEFAULT_THRESHOLD,
        prompt_text: Callable | None = None,
        messages: str = "all",
        step_offset: int = 0,
        step_scale: int | None = None,
        **kwargs: Any,
    ):
        train = kwargs.get("train_dataset", args[3] if len(args) > 3 else None)
        datasets = require("datasets", "trl", "PlannedGRPOTrainer")
        if isinstance(train, (torch.utils.data.IterableDataset, datasets.IterableDataset)):
            raise ValueError(
                "PlannedGRPOTrainer needs a map-style train_dataset: an IterableDataset (streaming) yields prompts "
                "in its own order, so none can be planned. Load it with streaming=False (datasets.load_dataset) "
                "or use trl.GRPOTrainer."
            )
        self.v0_oversample = oversample
        self.v0_success_threshold = check_threshold(success_threshold)  # before the model loads
        self.v0_prompt_text, self.v0_messages = prompt_text, messages
        self._v0_text = _text_fn(prompt_text, messages)
        selection = {"planner": planner, "mode": mode, "band": band, "step_offset": step_offset}
        selection["step_scale"] = step_scale
        self._v0_scored = 0  # training generation batches scored (the no-outcome warning counts these)
        config = kwargs.get("args", args[2] if len(args) > 2 else None)
        if config is not None:  # checked before GRPOTrainer loads the model
            self._v0_setup(train, config, selection)
        super().__init__(*args, **kwargs)
        if config is None:  # TRL built its default GRPOConfig
            self._v0_setup(self.train_dataset, self.args, selection)

    def _v0_setup(self, dataset: Any, config: Any, selection: dict) -> None:
        """The selector, and the dataset checked the way the sampler will read it (prompt column, size)."""
        batch = config.generation_batch_size // config.num_generations
        n_candidates(batch, self.v0_oversample, rolled_out=f"the {batch} prompts of a generation batch")
        self.selector_ = FixedSizeSelector(
            selection["planner"],
            mode=selection["mode"],
            band=selection["band"],
            group_size=max(2, config.num_generations),
            random_state=config.seed,
            step_offset=selection["step_offset"],
            step_scale=_step_scale(config, selection["step_scale"]),
            no_outcome_fix="every completion's reward was None or NaN so far, so no group had an outcome; make the "
            "reward functions return a number for the prompts (a completion succeeds when its weighted total "
            "reward is > success_threshold).",
            # warned from _calculate_rewards, which counts the batches really scored: the plans of a resumed
            # run's skipped batches never get an outcome, and would warn falsely here
            no_outcome_after=sys.maxsize,
            planner_terms=_TERMS,
            stacklevel=5,  # the user's PlannedGRPOTrainer(...) line, above __init__ and this method
        )
        if dataset is not None:
            self._v0_sampler(dataset, config)

    def _v0_sampler(self, dataset: Any, config: Any) -> PlannedRepeatSampler:
        return PlannedRepeatSampler(
            dataset,
            self.selector_,
            mini_repeat_count=config.num_generations,
            batch_size=config.generation_batch_size // config.num_generations,
            repeat_count=config.num_iterations * config.steps_per_generation,
            oversample=self.v0_oversample,
            prompt_text=self.v0_prompt_text,
            messages=self.v0_messages,
            shuffle=config.shuffle_dataset,
            seed=config.seed,
        )

    def _get_train_sampler(self, dataset: Any = None) -> Sampler:
        return self._v0_sampler(self.train_dataset if dataset is None else dataset, self.args)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.model.training:
            from accelerate.utils import gather_object

            # The dataset's prompts, not ``prompts`` (an environment may have appended observations to those).
            raw = [x.get("prompt", p) for x, p in zip(inputs, prompts)]
            all_prompts = gather_object(raw)  # rewards_per_func is already gathered
            w = self.reward_weights.to(rewards_per_func.device)
            total = (rewards_per_func * w.unsqueeze(0)).nansum(dim=1)
            total[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
            # TRL's groups are num_generations consecutive rows (rewards.view(-1, num_generations)),
            # not equal prompts: a prompt twice in one batch is two groups
            group = [i // self.num_generations for i in range(len(all_prompts))]
            rewards = total.float().cpu().numpy()
            warn_reward_scale(self, rewards, self.v0_success_threshold)
            keys, s, m = group_outcomes(group, rewards, self.v0_success_threshold)
            ok = m > 0
            texts = [self._v0_text(all_prompts[g * self.num_generations]) for g, o in zip(keys, ok) if o]
            self.selector_.observe(texts, s[ok], m[ok])
            self._v0_scored += 1
            sel = self.selector_
            warn_no_outcomes(
                sel,
                self._v0_scored,
                sel.n_observed_,
                sel.no_outcome_fix,
                NO_OUTCOME_BATCHES,
                what="generation batches scored",
            )
        return rewards_per_func


def _step_scale(config: Any, step_scale: int | None) -> int:
    """``step_scale`` as given, else the optimizer steps one generation batch lasts (a whole number, or refused)."""
    if step_scale is not None:
        return check_int(step_scale, "step_scale", 1)
    ni, spg, ga = config.num_iterations, config.steps_per_generation, config.gradient_accumulation_steps
    if (ni * spg) % ga:
        raise ParameterError(
            f"step_scale: one generation batch lasts num_iterations x steps_per_generation = {ni} x {spg} "
            f"micro-batches and an optimizer step gradient_accumulation_steps = {ga}, so a batch is {ni * spg}/{ga} "
            "optimizer steps, not a whole number of the value model's steps. Fix: make num_iterations x "
            "steps_per_generation a multiple of gradient_accumulation_steps (steps_per_generation left unset is "
            "gradient_accumulation_steps), or pass step_scale= to PlannedGRPOTrainer (step_scale=1 counts "
            "generation batches)."
        )
    return ni * spg // ga
