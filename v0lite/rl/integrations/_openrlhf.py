"""OpenRLHF glue: filter the prompt stream before rollout, observe groups through its filter hook.

**Not run inside OpenRLHF.** OpenRLHF pins CUDA-only builds (flash-attn, deepspeed) that do not
install on CPU machines, so this module imports nothing from it and is tested only against
v0lite's planner with stand-in objects shaped like OpenRLHF's. The shapes come from reading
OpenRLHF's samples generator (``openrlhf/trainer/ppo_utils``): it pulls prompts with
``_, prompts, labels = next(dataloader_iter)`` until it has ``target_prompts``, rolls each out
``n_samples_per_prompt`` times, and passes each prompt's group of ``Experience`` objects
(``.prompts[0]`` the prompt, ``.scores[0]`` its score) to a filter hook's ``apply``, which
returns the experiences to keep (``FilterHookBase``: ``apply``, ``pass_rate``, ``reset``; its
``DynamicFilteringHook`` is the after-rollout filter on ``dynamic_filtering_reward_range``).
Check these names against the OpenRLHF release you run.

:class:`OpenRLHFPlanner` gives both ends: :meth:`~OpenRLHFPlanner.wrap` turns the prompt
dataloader's iterator into one that yields only the kept prompts of each batch (the generator
then pulls more batches to reach its target: the extra cost is predictions, not rollouts), and
:meth:`~OpenRLHFPlanner.filter_hook` returns a hook that records every group's successes (and,
if asked, also applies the after-rollout reward-range filter). Group sizes stay OpenRLHF's fixed
``n_samples_per_prompt``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ...exceptions import DataError, ParameterError
from .._common import NO_OUTCOME_AFTER, _check_fraction, _n_keep
from ._common import (
    FixedSizeSelector,
    _text_fn,
    check_reward_range,
    check_text,
    check_threshold,
    group_outcomes,
    warn_no_selection,
)
from ._warnings import DEFAULT_THRESHOLD, warn_reward_scale

__all__ = ["OpenRLHFFilterHook", "OpenRLHFPlanner"]

#: How OpenRLHF's settings are named in the warnings about a planner's own selection settings.
_TERMS = {
    "adapter": "OpenRLHFPlanner",
    "share": "keep_fraction={v:g} to OpenRLHFPlanner",
    "group": "OpenRLHF's --n_samples_per_prompt (and OpenRLHFPlanner(n_samples_per_prompt=...))",
    "seed": "OpenRLHFPlanner(random_state=...)",
}


class OpenRLHFPlanner:
    """Pre-rollout prompt filter and post-rollout outcome hook for OpenRLHF, over one planner.

    Parameters
    ----------
    planner : v0lite.RolloutPlanner
    keep_fraction : float in (0, 1], default 0.5
        Share of each dataloader batch kept: ``keep_fraction x batch`` rounded half up, at least
        one prompt (the rule of :class:`v0lite.RolloutPlanner`). ``1`` keeps every prompt: nothing
        is selected (warned when built); so does a fraction that rounds to the whole batch (0.9 of
        4 prompts, any fraction of 1), warned once at the first such batch.
    mode : {"band", "p-mixed"}, default "band"
    band : (float, float), default (0.2, 0.8)
    n_samples_per_prompt : int, default 8
        OpenRLHF's ``--n_samples_per_prompt`` (the group size).
    success_threshold : float, default 0.5
        A sample succeeds when its score is ``> success_threshold``.
    prompt_field : int, default 1
        Position of the prompts in each dataloader batch (``(datasources, prompts, labels)``).
    prompt_text : callable, optional
        prompt -> str for the value model; default :func:`~v0lite.rl.integrations.prompt_text`.
    messages : {"all", "user", "last_user"}, default "all"
    random_state : int, default 0
    step_offset, step_scale : int, default 0 and 1
        Planned batch ``t`` (from 0) is predicted and recorded at value-model step
        ``step_offset + step_scale * t`` (see :class:`~v0lite.rl.integrations.FixedSizeSelector`).

    Attributes
    ----------
    selector_ : FixedSizeSelector
        Counters of what was kept and observed; ``selector_.step_`` counts planned batches
        (the ``step`` the value model sees).

    Notes
    -----
    When ``2 / keep_fraction`` batches (two rollout batches' worth; at least 3) were planned and
    no group's outcome was recorded (the filter hook is not passed to ``generate_batch``), the
    next batch warns once: the value model does not learn from the run. The planner's own
    selection settings (``keep_fraction``, ``strategy``, ``budget_per_prompt``, ``n_min``,
    ``n_max``, ``value``, ``random_state``) are not used: one set away from its default is
    warned about, naming the setting here that does its job (``keep_fraction`` here for the
    planner's). Prompts reach it with OpenRLHF's chat template applied (one string): pass
    ``prompt_text=`` to read the text your value model's history holds.

    Examples
    --------
    >>> glue = OpenRLHFPlanner(planner, n_samples_per_prompt=args.n_samples_per_prompt)  # doctest: +SKIP
    >>> dataloader_iter = glue.wrap(iter(prompts_dataloader))  # doctest: +SKIP
    >>> generator.generate_batch(target, dataloader_iter, filter_hook=glue.filter_hook())  # doctest: +SKIP
    """

    def __init__(
        self,
        planner: Any,
        *,
        keep_fraction: float = 0.5,
        mode: str = "band",
        band: Sequence[float] = (0.2, 0.8),
        n_samples_per_prompt: int = 8,
        success_threshold: float = DEFAULT_THRESHOLD,
        prompt_field: int = 1,
        prompt_text: Callable | None = None,
        messages: str = "all",
        random_state: int = 0,
        step_offset: int = 0,
        step_scale: int = 1,
    ):
        _check_fraction("keep_fraction", keep_fraction, 0.5, closed_hi=True)  # the share of each batch rolled out
        if keep_fraction == 1:
            warn_no_selection("keep_fraction=1 keeps every prompt of each batch", "keep_fraction=0.5 (the default).")
        self.keep_fraction = float(keep_fraction)
        self.n_samples_per_prompt = int(n_samples_per_prompt)
        self.success_threshold = check_threshold(success_threshold)
        self.prompt_field = int(prompt_field)
        self._text = _text_fn(prompt_text, messages)
        self._custom_text = prompt_text is not None
        self._all_kept_warned = keep_fraction == 1  # warned above
        self.selector_ = FixedSizeSelector(
            planner,
            mode=mode,
            band=band,
            group_size=n_samples_per_prompt,
            random_state=random_state,
            step_offset=step_offset,
            step_scale=step_scale,
            stacklevel=4,  # the user's line: OpenRLHFPlanner(...)
            no_outcome_fix="pass filter_hook=glue.filter_hook() to OpenRLHF's generate_batch (its apply() records "
            "each group's successes), or call glue.record(prompt, successes, n) for each rolled-out group.",
            # the generator pulls about 1 / keep_fraction batches per rollout batch before its outcomes:
            # two rollout batches' worth allows one in flight (asynchronous generation)
            no_outcome_after=max(NO_OUTCOME_AFTER, 2 * math.ceil(1 / self.keep_fraction)),
            planner_terms=_TERMS,
        )
        self._pending: list[tuple[str, int, int]] = []

    def select(self, prompts: Sequence[Any]) -> np.ndarray:
        """Positions of the prompts to keep from one batch of candidates (after flushing outcomes)."""
        self.flush()
        texts = [self._checked_text(p, f"prompt {i} of the batch") for i, p in enumerate(prompts)]
        k = _n_keep(len(texts), self.keep_fraction)  # the planner's rule: round half up, at least 1
        if k == len(texts) and not self._all_kept_warned:
            self._all_kept_warned = True
            warn_no_selection(
                f"keep_fraction={self.keep_fraction:g} keeps all {k} prompts of a batch of {k}",
                "a lower keep_fraction (0.5 keeps half), or larger dataloader batches (a batch of 1 always keeps its "
                "prompt).",
            )
        return self.selector_.choose(texts, k)

    def _checked_text(self, prompt: Any, where: str) -> str:
        return check_text(self._text(prompt), where, prompt, "messages", self._custom_text)

    def wrap(self, batches: Iterable) -> Iterator:
        """Yield each batch (a tuple of parallel sequences) with only its kept positions."""
        for batch in batches:
            cols = list(batch)
            if not 0 <= self.prompt_field < len(cols):
                raise ValueError(
                    f"a batch has {len(cols)} fields, no prompt_field={self.prompt_field}; expected "
                    "(datasources, prompts, labels) batches or pass prompt_field=."
                )
            odd = [i for i, c in enumerate(cols) if isinstance(c, (str, bytes)) or not hasattr(c, "__len__")]
            if odd:  # a raw TypeError from len() said nothing of the batch
                raise ValueError(
                    f"a batch's field {odd[0]} is a {type(cols[odd[0]]).__name__}, not a sequence; each field must "
                    "be a list parallel to the prompts (datasources, prompts, labels)."
                )
            n = len(cols[self.prompt_field])
            if any(len(c) != n for c in cols):
                raise ValueError(f"the batch's fields have lengths {[len(c) for c in cols]}; they must be parallel.")
            if n == 0:
                continue
            keep = self.select(cols[self.prompt_field])
            yield tuple(_take(c, keep) for c in cols)

    def filter_hook(self, reward_range: Sequence[float] | None = None) -> OpenRLHFFilterHook:
        """A ``FilterHookBase``-shaped hook recording outcomes; ``reward_range`` also filters like DAPO.

        ``reward_range`` is checked here (two numbers, ``lo < hi``), not at the first group.
        """
        return OpenRLHFFilterHook(self, reward_range=reward_range)

    def record(self, prompt: Any, successes: int, n: int) -> None:
        """Queue one group's outcome; queued groups reach the planner at the next :meth:`select`."""
        self._pending.append((self._checked_text(prompt, "a recorded group's prompt"), int(successes), int(n)))

    def flush(self) -> int:
        """Feed the queued groups to the planner now; returns how many.

        The queue is emptied only once the planner recorded it (whole: one ``add_history``); when it
        fails, every group stays queued for the next flush (nothing lost, nothing recorded twice).
        """
        if not self._pending:
            return 0
        texts, s, m = zip(*self._pending)
        n = self.selector_.observe(list(texts), np.array(s), np.array(m))
        self._pending = []
        return n


def _take(col: Any, keep: np.ndarray):
    if hasattr(col, "index_select") and hasattr(col, "shape"):  # a tensor: keep its type
        import torch

        return col.index_select(0, torch.as_tensor(keep, dtype=torch.long))
    if isinstance(col, np.ndarray):
        return col[keep]
    return [col[int(i)] for i in keep]


class OpenRLHFFilterHook:
    """``apply(experiences)`` for one prompt's group: record its successes, keep or drop the group.

    Shaped like OpenRLHF's ``FilterHookBase`` (``apply``, ``pass_rate``, ``reset``); not a
    subclass, since OpenRLHF is not imported. A group smaller than ``n_samples_per_prompt`` is
    dropped, as OpenRLHF's ``DynamicFilteringHook`` does. A group larger than it, or the first
    3 groups all smaller (no full group yet), mean that ``n_samples_per_prompt`` is not
    OpenRLHF's: every group would be dropped, so that is an error. A NaN score is left out of
    its group's count (a group of NaN scores records no outcome), as in the TRL and verl
    adapters; a score outside [0, 1] while ``success_threshold`` is the default 0.5 is warned
    about once.

    Parameters
    ----------
    glue : OpenRLHFPlanner
    reward_range : (float, float), optional
        Keep only groups whose mean score is strictly inside it (OpenRLHF's
        ``dynamic_filtering_reward_range``); ``None`` keeps every full group. Two numbers with
        ``lo < hi`` (a string, or ``lo >= hi``, which would drop every group, is refused).
    """

    def __init__(self, glue: OpenRLHFPlanner, reward_range: Sequence[float] | None = None):
        self.glue = glue
        self.reward_range = None if reward_range is None else check_reward_range(reward_range)
        self.total_groups = 0
        self.valid_groups = 0
        self.short_groups = 0
        self._ever_full = False

    def apply(self, experiences: list) -> list:
        n = self.glue.n_samples_per_prompt
        if len(experiences) != n:
            self.short_groups += len(experiences) < n
            if len(experiences) > n or (not self._ever_full and self.short_groups >= NO_OUTCOME_AFTER):
                seen = f"a group of {len(experiences)} samples"
                if len(experiences) < n:
                    seen += f" ({self.short_groups} groups so far, none of {n})"
                raise ParameterError(
                    f"OpenRLHFPlanner(n_samples_per_prompt={n}) but the filter hook got {seen}: a group of another "
                    "size is dropped, so nothing would be trained on and no outcome recorded. Fix: pass OpenRLHF's "
                    "own setting to OpenRLHFPlanner, n_samples_per_prompt=args.n_samples_per_prompt (the groups "
                    f"here have {len(experiences)} samples)."
                )
            return []
        # read (and refuse) every sample before anything is counted or recorded
        scores = np.array([_score(e, i) for i, e in enumerate(experiences)], dtype=np.float64)
        prompts = [
            _one(e.prompts, i, "prompts", "prompt", "the prompt it was sampled from") for i, e in enumerate(experiences)
        ]
        prompt = prompts[0]  # a group is one prompt's samples: each must still be one sample (a packed one is refused)
        self._ever_full = True
        self.total_groups += 1
        warn_reward_scale(self.glue, scores, self.glue.success_threshold)
        # a NaN score (unscorable) counts neither way, as in the TRL and verl adapters; no score: nothing recorded
        _, s, m = group_outcomes([0] * n, scores, self.glue.success_threshold)
        if m[0]:
            self.glue.record(prompt, int(s[0]), int(m[0]))
        if self.reward_range is not None:
            lo, hi = self.reward_range
            if not lo < scores.mean() < hi:
                return []
        self.valid_groups += 1
        return experiences

    def pass_rate(self) -> float | None:
        """Percentage of full groups kept (``None`` before any)."""
        return None if self.total_groups == 0 else self.valid_groups / self.total_groups * 100

    def reset(self) -> None:
        self.glue.flush()
        self.total_groups = self.valid_groups = 0


def _one(values: Any, i: int, field: str, what: str, fix: str) -> Any:
    """The single value of experience ``i``'s ``field`` (a 1-element list, tuple, array or tensor).

    One sample per ``Experience``: a field holding several values (a packed or batched
    experience) is refused, as reading its first value would record one sample for many.
    """
    if isinstance(values, (list, tuple)):
        size = len(values)
    elif hasattr(values, "reshape") and hasattr(values, "ndim"):  # a tensor or an array, 0-d included
        size = int(np.prod(values.shape))
        values = values.reshape(-1)
    else:
        raise DataError(
            f"experience {i} of the group: an Experience's {field} must be a list holding its sample's {what}, got "
            f"a {type(values).__name__} ({str(values)[:60]!r}). Fix: pass the hook OpenRLHF's per-sample "
            f"Experience objects, whose .{field} is a list of one value ({fix})."
        )
    if size != 1:
        raise DataError(
            f"experience {i} of the group: an Experience's {field} must hold its sample's {what} (one value per "
            f"Experience), got {size} values ({str(values)[:60]!r}). Fix: pass the hook one Experience per sample, "
            f"each with {fix} (not packed or batched experiences), as OpenRLHF's generator does before its filter hook."
        )
    return values[0]


def _score(exp: Any, i: int) -> float:
    """The sample's score from ``exp.scores``: a 1-element tensor, array or list, a 0-d tensor or a number."""
    s = exp.scores
    try:
        if isinstance(s, (list, tuple)) or (hasattr(s, "reshape") and hasattr(s, "ndim")):
            s = _one(s, i, "scores", "score", "its score")
        if isinstance(s, (str, bytes)):  # "1" would be read as a number: a score is one already
            raise TypeError
        return float(s.item() if hasattr(s, "item") else s)
    except DataError:
        raise
    except (TypeError, ValueError):
        raise DataError(
            f"experience {i} of the group: an Experience's scores must hold its sample's score (a number, or a "
            f"tensor or list of one number), got {str(exp.scores)[:60]!r}. Fix: score the samples before the filter "
            "hook, as OpenRLHF's generator does."
        ) from None
