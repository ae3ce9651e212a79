"""What every trainer adapter shares: prompt text, fixed-size selection, outcome feedback.

Trainers that people use (verl, TRL, OpenRLHF) roll out every prompt of a batch with one group
size. The adapters therefore ask the planner a fixed-size question: *which k of these candidates*
(band-pass on the predicted pass rate, or the planner's P(mixed) ranking at the trainer's group
size), and feed the groups' outcomes back with :meth:`v0lite.RolloutPlanner.observe`.

No torch, trl or verl here: this module is imported by all three adapters.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..._io import to_jsonable
from ..._registry import canonical, normalise
from ...exceptions import DataError, ParameterError, V0liteWarning
from .._allocate import PMixedSelector
from .._common import NO_OUTCOME_AFTER, _check_counts, _prompt_list, check_known_policy, warn_no_outcomes

__all__ = ["MODES", "FixedSizeSelector", "prompt_text"]

#: Selection modes of :class:`FixedSizeSelector` (``-`` and ``_`` alike, like every name in v0lite).
MODES = ("band", "p-mixed")

#: Start of the warning that a setting turns selection off (filtered by ``PlannedRLHFDataset``,
#: which says it in ``data.v0lite`` terms).
NO_SELECTION = "nothing is selected"

#: A planned step older than this many steps whose outcome never came is forgotten (the trainer
#: planned it ahead and stopped, e.g. a dataloader's look-ahead at the end of training); far more
#: than any prefetch depth (verl: ``dataloader_num_workers x prefetch_factor`` batches).
MAX_LAG = 64

#: The :class:`v0lite.RolloutPlanner` settings no adapter reads (it keeps a fixed number of prompts
#: per step, each rolled out at the trainer's group size): why, and what to set instead (formatted
#: with the adapter's words, :data:`TERMS`; ``share`` with the planner's value ``v`` and ``inv = 1 / v``).
UNUSED_PLANNER_SETTINGS = {
    "keep_fraction": ("the share of candidates kept is the adapter's", "pass {share} and "),
    "strategy": (
        "candidates are ranked by the adapter's mode",
        "pass mode='p-mixed' (the planner's P(mixed) ranking) or mode='band' to {adapter} and ",
    ),
    "budget_per_prompt": ("every kept prompt gets the trainer's group size", "set {group} and "),
    "n_min": ("every kept prompt gets the trainer's group size", "set {group} and "),
    "n_max": ("every kept prompt gets the trainer's group size", "set {group} and "),
    "value": ("no rollouts are allocated, so nothing replaces it", ""),
    "random_state": ("the adapter seeds its own choices", "set {seed} and "),
}

#: How a bare :class:`FixedSizeSelector` names the settings that do those jobs; each adapter
#: passes its own words (``planner_terms``).
TERMS = {
    "adapter": "the adapter",
    "share": "oversample={inv:g} to the adapter (candidates per kept prompt; OpenRLHFPlanner: keep_fraction={v:g})",
    "group": "the trainer's group size (TRL num_generations, verl actor_rollout_ref.rollout.n, OpenRLHF "
    "n_samples_per_prompt)",
    "seed": "the adapter's seed (TRL GRPOConfig(seed=...), verl data.seed, OpenRLHFPlanner(random_state=...))",
}


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):  # multimodal content blocks: keep the text parts
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return "" if content is None else str(content)


def prompt_text(value: Any, messages: str = "all") -> str:
    """The text the value model sees for one prompt as a trainer stores it.

    Parameters
    ----------
    value : str, message dict, or sequence of message dicts
        A plain prompt, or chat-template messages (``{"role": ..., "content": ...}``, as in
        verl's ``prompt`` column and TRL's conversational datasets; a numpy object array of
        them is accepted too).
    messages : {"all", "user", "last_user"}, default "all"
        Which messages' contents are joined (with newlines) into the text.

    Returns
    -------
    str

    Examples
    --------
    >>> prompt_text([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}], "user")
    '2+2?'
    """
    if messages not in ("all", "user", "last_user"):
        raise ValueError(f"messages must be 'all', 'user' or 'last_user', got {messages!r}.")
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "content" in value:
        value = [value]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)) and all(isinstance(m, dict) and "content" in m for m in value):
        msgs = list(value)
        if messages != "all":
            msgs = [m for m in msgs if m.get("role") == "user"]
            if messages == "last_user":
                msgs = msgs[-1:]
        return "\n".join(_content_text(m["content"]) for m in msgs)
    raise TypeError(
        f"cannot read a prompt's text from a {type(value).__name__} ({str(value)[:60]!r}); expected a str or "
        "chat messages [{'role': ..., 'content': ...}]. Pass prompt_text=callable(value) -> str to the adapter."
    )


def check_text(text: Any, row: Any, value: Any, setting: str, custom: bool) -> str:
    """``text`` (a prompt's text as read by an adapter), refused when empty or whitespace.

    ``row`` says where the prompt is, in the caller's terms (``"dataset row 3"``); ``setting`` is
    how the caller names its ``messages`` option (``messages``, ``data.v0lite.messages``);
    ``custom``: the text came from the caller's own ``prompt_text`` callable.
    """
    if isinstance(text, str) and text.strip():
        return text
    cause = (
        "your prompt_text callable returned it: make it return the prompt's text"
        if custom
        else f"the messages read by {setting} hold no text (e.g. {setting}='user' on a prompt with only a system "
        f"message). Fix: {setting}='all' (every message), or give the row a user message with text"
    )
    raise DataError(
        f"{row}: the prompt's text for the value model is empty ({text!r}, read from {str(value)[:80]!r}); {cause}."
    )


def _two_numbers(value: Any) -> tuple[float, float]:
    """``value`` as two floats, or two NaN (a string is refused: "0.2,0.8" would be read character by character)."""
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError
        lo, hi = (float(b) for b in value)
    except (TypeError, ValueError):
        lo = hi = math.nan
    return lo, hi


def check_reward_range(value: Any, name: str = "reward_range") -> tuple[float, float]:
    """``(lo, hi)`` as floats with ``lo < hi`` (finite; a string refused), or an error naming ``name``."""
    lo, hi = _two_numbers(value)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ParameterError(
            f"{name} must be two numbers (lo, hi) with lo < hi (groups whose mean score is strictly inside are "
            f"kept), got {value!r}. Fix: {name}=(0.0, 1.0) for 0/1 scores (drops groups "
            "that all pass or all fail), (-1.0, 1.0) for -1/1 scores."
        )
    return lo, hi


def _text_fn(prompt_text_fn: Callable | None, messages: str) -> Callable[[Any], str]:
    if prompt_text_fn is None:
        prompt_text(" ", messages)  # validates ``messages`` now, not at the first step
        return lambda v: prompt_text(v, messages)
    if not callable(prompt_text_fn):
        raise TypeError(f"prompt_text must be a callable value -> str, got {type(prompt_text_fn).__name__}.")
    return prompt_text_fn


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)


def check_int(value: Any, name: str, least: int, why: str = "") -> int:
    """``value`` as an int, refused (naming ``name``) unless it is a whole number ``>= least``."""
    if not _is_number(value) or int(value) != value or value < least:
        raise ParameterError(f"{name} must be an int >= {least}{why}, got {value!r}. Fix: a whole number >= {least}.")
    return int(value)


def check_mode(mode: Any, name: str = "mode") -> str:
    """The :data:`MODES` spelling of ``mode`` (``-`` and ``_`` alike)."""
    try:
        return canonical(dict.fromkeys(MODES), mode, "selection mode")
    except ParameterError as e:
        raise ParameterError(f"{name}: {e}") from None


def check_band(band: Any, name: str = "band") -> tuple[float, float]:
    """``(lo, hi)`` as floats with ``0 <= lo < hi <= 1``, or an error naming ``name`` and the fix."""
    lo, hi = _two_numbers(band)
    if not 0.0 <= lo < hi <= 1.0:
        raise ParameterError(
            f"{name} must be two numbers [lo, hi] with 0 <= lo < hi <= 1 (the predicted pass rates kept), got "
            f"{band!r}. Fix: {name}=[0.2, 0.8] (the default), a list of two numbers."
        )
    return lo, hi


def check_threshold(value: Any, name: str = "success_threshold") -> float:
    """A rollout's success threshold as a float, or an error naming ``name`` and the fix."""
    if not _is_number(value):
        raise ParameterError(
            f"{name} must be a number (a rollout succeeds when its reward is > {name}), got {value!r}. "
            f"Fix: {name}=0.5 for 0/1 rewards (the default), 0.0 for -1/1 rewards."
        )
    return float(value)


def n_candidates(
    batch_size: int,
    oversample: float,
    *,
    names: tuple[str, str] = ("batch_size", "oversample"),
    rolled_out: str | None = None,
) -> int:
    """Candidates drawn per step: ``ceil(oversample * batch_size)`` (at least ``batch_size``).

    ``names``: how the caller calls the two settings, for the errors. ``rolled_out``: what the
    batch is, in the caller's terms; given, an ``oversample`` that draws no more candidates than
    the batch (so nothing is selected) is warned about (:func:`warn_no_selection`).
    """
    check_int(batch_size, names[0], 1)
    if not _is_number(oversample) or not oversample >= 1:
        raise ParameterError(
            f"{names[1]} must be a number >= 1 (candidates per kept prompt), got {oversample!r}. "
            f"Fix: {names[1]}=2.0 (the default)."
        )
    n = max(int(batch_size), int(np.ceil(float(oversample) * batch_size - 1e-9)))
    if rolled_out is not None and n == batch_size:
        warn_no_selection(
            f"{names[1]}={oversample!r} draws no more candidates than {rolled_out}",
            f"{names[1]}=2.0 (the default).",
            stacklevel=4,
        )
    return n


def warn_no_selection(setting: str, fix: str, *, stacklevel: int = 3) -> None:
    """Warn that ``setting`` keeps every candidate: the adapter plans nothing, it only records outcomes."""
    warnings.warn(
        f"{setting}: {NO_SELECTION}, every candidate prompt is rolled out and the planner only records the "
        f"outcomes. Fix: {fix}",
        V0liteWarning,
        stacklevel=stacklevel,
    )


def candidate_chunks(n_items: int, chunk: int, seed: int, epoch: int, shuffle: bool = True) -> list[np.ndarray]:
    """One epoch's candidate sets: a seeded permutation cut into full chunks (the rest is dropped).

    Every prompt is a candidate once per epoch, as with the trainers' own samplers; the
    permutation depends on ``(seed, epoch)`` so all data-parallel ranks draw the same chunks
    (``shuffle=False``: dataset order).
    """
    if n_items == 0:
        raise DataError(
            "the dataset is empty (0 prompts): there is nothing to plan. Fix: check the training files and "
            "which column holds the prompts (verl: data.train_files, data.prompt_key)."
        )
    if n_items < chunk:
        raise ValueError(
            f"the dataset has {n_items} prompts, fewer than the {chunk} candidates one step needs; "
            "lower oversample or the batch size."
        )
    perm = np.random.default_rng([int(seed), int(epoch)]).permutation(n_items) if shuffle else np.arange(n_items)
    return [perm[i : i + chunk] for i in range(0, n_items - chunk + 1, chunk)]


def _same(a: Any, b: Any) -> bool:
    """Whether a planner setting equals its default (names compared as v0lite reads them)."""
    if isinstance(a, str) and isinstance(b, str):
        return normalise(a) == normalise(b)
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. an array: not a default
        return False


def warn_unused_planner_settings(planner: Any, terms: Mapping[str, Any] | None = None, *, stacklevel: int = 3) -> None:
    """Warn once for each :data:`UNUSED_PLANNER_SETTINGS` entry the planner sets away from its default.

    The defaults are read from the planner's own signature (a stand-in planner without these
    settings is left alone). ``terms`` overrides :data:`TERMS`; its ``"used"`` entry names
    settings this adapter does read (not warned).
    """
    terms = {**TERMS, **(terms or {})}
    try:
        params = inspect.signature(type(planner).__init__).parameters
    except (TypeError, ValueError):
        return
    for name, why in UNUSED_PLANNER_SETTINGS.items():
        if name in terms.get("used", ()) or name not in params or not hasattr(planner, name):
            continue
        v, default = getattr(planner, name), params[name].default
        if default is inspect.Parameter.empty or _same(v, default):
            continue
        words = {k: str(t) for k, t in terms.items() if k != "used"}
        if name == "keep_fraction":  # a number in (0, 1]: the planner checked it
            words["share"] = words["share"].format(v=v, inv=1.0 / v)
        why, fix = (t.format(**words) for t in why)
        warnings.warn(
            f"RolloutPlanner({name}={v!r}) is not used by {terms['adapter']}, which keeps a fixed number of each "
            f"step's candidates, each rolled out at the trainer's group size: {why}. Fix: {fix}leave the planner's "
            f"{name} at its default, {default!r}.",
            V0liteWarning,
            stacklevel=stacklevel,
        )


# the bit generators numpy ships, by the name their state carries: what a saved selector state may hold
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


class FixedSizeSelector:
    """Pick a fixed number of prompts from each step's candidates with a planner, and feed outcomes back.

    Parameters
    ----------
    planner : v0lite.RolloutPlanner
        Its value model predicts the candidates (``planner.value_model.predict``); outcomes go
        back through ``planner.observe`` (which calls ``value_model.add_history``).
    mode : {"band", "p-mixed"}, default "band"
        ``"band"``: keep candidates whose predicted pass rate lies in ``band`` (a random
        subset of them if there are more than needed; when fewer, the rest are those
        nearest the band). ``"p-mixed"``: keep the highest chance of a mixed group at
        ``group_size`` rollouts, under the planner's Beta belief around each prediction.
    band : (float, float), default (0.2, 0.8)
    group_size : int, default 8
        The trainer's rollouts per prompt (``"p-mixed"`` only).
    random_state : int, numpy.random.Generator or numpy.random.BitGenerator, default 0
        Seeds the tie-breaks between equal candidates; a generator is drawn from as given.
        :meth:`state_dict` keeps its bit generator's kind (any of numpy's: PCG64, Philox, SFC64, ...).
    step_offset, step_scale : int, default 0 and 1
        How trainer steps map to the value model's ``step`` (its history is read with
        ``step <= t``): the ``t``-th planned step (from 0) is predicted and recorded at
        ``step_offset + step_scale * t``. Set them so that the history's step numbers mean the
        same checkpoints as the trainer's, e.g. ``step_offset=16`` when the history was logged
        from step 16 of this policy on (see :meth:`history_step`).
    no_outcome_fix : str, optional
        How outcomes reach this selector, in the adapter's terms: when ``no_outcome_after``
        steps were planned and none came back, :meth:`choose` warns once with it.
    no_outcome_after : int, default 3
    planner_terms : dict, optional
        How the adapter names the settings that replace the planner's own selection settings
        (see :func:`warn_unused_planner_settings`): a planner whose ``keep_fraction``,
        ``strategy``, ``budget_per_prompt``, ``n_min``, ``n_max``, ``value`` or
        ``random_state`` differs from its default is warned about, naming the adapter's setting.
    stacklevel : int, default 3
        ``warnings.warn``'s stacklevel for that warning, counted from the function that warns: 3 is
        the line that built this selector; an adapter that builds it passes 3 plus its own frames
        between the user's line and this constructor, so the warning names the user's line.

    Attributes
    ----------
    step_ : int
        Trainer steps planned so far; the value model sees ``history_step(t)`` for step ``t``.
    last_p_ : numpy.ndarray
        Predicted pass rate of the last step's candidates.
    last_chosen_ : numpy.ndarray of int
        Positions (into the last candidates) that were kept.
    n_candidates_, n_chosen_, n_filled_ : int
        Totals: candidates predicted, prompts kept, kept prompts outside the band (``"band"``
        fills with them when too few candidates are in the band).
    n_observed_ : int
        Groups fed back to the planner.
    """

    def __init__(
        self,
        planner: Any,
        *,
        mode: str = "band",
        band: Sequence[float] = (0.2, 0.8),
        group_size: int = 8,
        random_state: int | np.random.Generator | np.random.BitGenerator = 0,
        step_offset: int = 0,
        step_scale: int = 1,
        no_outcome_fix: str | None = None,
        no_outcome_after: int = NO_OUTCOME_AFTER,
        planner_terms: Mapping[str, Any] | None = None,
        stacklevel: int = 3,
    ):
        mode = check_mode(mode)
        lo, hi = check_band(band)
        group_size = check_int(group_size, "group_size", 2, " (a group of 1 has no advantage)")
        for attr in ("observe", "value_model"):
            if not hasattr(planner, attr):
                raise ValueError(
                    f"planner must be a v0lite.RolloutPlanner (it has no {attr!r}); got {type(planner).__name__}."
                )
        policy = getattr(planner, "policy", None)
        if isinstance(policy, str):  # the planner's policy may have been changed since it was built
            check_known_policy(planner.value_model, policy)
        warn_unused_planner_settings(planner, planner_terms, stacklevel=stacklevel)
        self.planner = planner
        self.step_offset = check_int(step_offset, "step_offset", 0)
        self.step_scale = check_int(step_scale, "step_scale", 1)
        self.no_outcome_fix = (
            no_outcome_fix or "feed each group's outcome back with selector.observe(texts, successes, n)."
        )
        self.no_outcome_after = int(no_outcome_after)
        self.mode = mode
        self.band = (lo, hi)
        self.group_size = group_size
        self.random_state = random_state
        self._rng = np.random.default_rng(random_state)
        # text -> [(trainer step, predicted pass rate)] planned and not yet observed, oldest first
        self._planned: dict[str, list[tuple[int, float]]] = {}
        self.step_ = 0
        self.last_p_ = np.zeros(0)
        self.last_chosen_ = np.zeros(0, dtype=np.int64)
        self.n_candidates_ = self.n_chosen_ = self.n_filled_ = self.n_observed_ = 0

    def history_step(self, t: int) -> int:
        """The value model's ``step`` for trainer step ``t``: ``step_offset + step_scale * t``."""
        return self.step_offset + self.step_scale * int(t)

    def predict(self, texts: Sequence[str], step: int) -> np.ndarray:
        """Predicted pass rate of each text at trainer step ``step`` (the planner's own prediction path)."""
        return self.planner._predict(list(texts), self.history_step(step))

    def state_dict(self) -> dict:
        """What a resumed run needs (plain JSON types): steps planned, RNG, counters.

        Outcomes of planned steps that were not fed back yet are not kept: after a resume,
        a late outcome is recorded at the latest planned step.
        """
        return {
            "format": "v0lite-selector-1",
            "step": self.step_,
            "rng": to_jsonable(self._rng.bit_generator.state),  # Philox, SFC64, MT19937 hold arrays: as lists
            "counters": [self.n_candidates_, self.n_chosen_, self.n_filled_, self.n_observed_],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output; a state that does not fit changes nothing."""
        step, rng, counters = self._parse_state(state)
        self.step_, self._rng = step, rng
        self.n_candidates_, self.n_chosen_, self.n_filled_, self.n_observed_ = counters
        self._planned = {}

    def _parse_state(self, state: Any) -> tuple[int, np.random.Generator, list[int]]:
        """``state``'s step, RNG and counters, all read before anything is assigned (a bad state half-applied
        would leave a plan that neither the old nor the new run had)."""
        fix = "pass what state_dict() returned"
        if not isinstance(state, dict) or state.get("format") != "v0lite-selector-1":
            raise ValueError(
                f"not a v0lite selector state (format {state.get('format') if isinstance(state, dict) else None!r}, "
                f"expected 'v0lite-selector-1'); {fix}."
            )
        missing = [k for k in ("step", "rng", "counters") if k not in state]
        if missing:
            raise ValueError(f"the selector state has no {', '.join(map(repr, missing))}; {fix}.")
        name = state["rng"].get("bit_generator") if isinstance(state["rng"], dict) else None
        if name not in _BIT_GENERATORS:  # a random_state Generator may be any of them, not only default_rng's
            raise ValueError(
                f"the selector state's rng has bit generator {name!r}, not one of numpy's "
                f"({', '.join(_BIT_GENERATORS)}); {fix}."
            )
        rng = np.random.Generator(getattr(np.random, name)())  # the saved kind of generator, its state set below
        try:
            step = check_int(state["step"], "the state's step", 0)
            rng.bit_generator.state = state["rng"]
            counters = [check_int(c, "the state's counters", 0) for c in state["counters"]]
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"the selector state does not fit ({e}); {fix}.") from None
        if len(counters) != 4:
            raise ValueError(f"the selector state has {len(counters)} counters, not 4; {fix}.")
        return step, rng, counters

    def resync(self, step: int) -> int:
        """Move the plan on so that its latest planned step is trainer step ``step``; returns the steps skipped.

        For a trainer that resumed from a checkpoint without this selector's state (the plan
        restarted at step 0 while the trainer went on from its checkpoint's step): the steps
        planned and not yet observed move with it, so their outcomes are recorded at the
        trainer's steps. A ``step`` not after the latest planned one changes nothing.
        """
        lag = int(step) - (self.step_ - 1)
        if lag <= 0:
            return 0
        self._planned = {q: [(t + lag, p) for t, p in steps] for q, steps in self._planned.items()}
        self.step_ += lag
        return lag

    def choose(self, texts: Sequence[str], k: int) -> np.ndarray:
        """Positions of the ``k`` candidates to roll out at the next step (sorted ascending)."""
        texts = list(texts)
        if not 0 < k <= len(texts):
            raise ValueError(f"cannot keep {k} of {len(texts)} candidates.")
        warn_no_outcomes(self, self.step_, self.n_observed_, self.no_outcome_fix, self.no_outcome_after)
        step = self.step_
        p = self.predict(texts, step)
        tie = self._rng.random(p.size)
        if self.mode == "band":
            lo, hi = self.band
            gap = np.maximum(np.maximum(lo - p, p - hi), 0.0)  # 0 inside the band
            order = np.lexsort((tie, gap))
            chosen = order[:k]
            self.n_filled_ += int((gap[chosen] > 0).sum())
        else:
            conc = self.planner._concentration(p)
            score = PMixedSelector(self.group_size).score(p, conc)
            chosen = np.lexsort((tie, -score))[:k]
        chosen = np.sort(chosen)
        for i in chosen:
            self._planned.setdefault(texts[i], []).append((step, float(p[i])))
        self.step_ += 1
        self.last_p_, self.last_chosen_ = p, chosen
        self.n_candidates_ += len(texts)
        self.n_chosen_ += int(k)
        return chosen

    def observe(self, texts: Sequence[str], successes: Any, n: Any) -> int:
        """Feed groups' outcomes to the planner, each at the step its prompt was planned for.

        A prompt planned at several steps is matched to the oldest one not yet observed; a
        prompt this selector did not plan (a trainer that also rolls out other prompts) is
        recorded at the latest planned step. The prior passed to ``planner.observe`` is the
        prediction made when the prompt was planned (an unplanned prompt is predicted once, at
        the latest planned step, before any group is written). Returns the number of groups fed
        back.

        Every group of the call, whatever its step, is recorded by one ``planner.observe`` (one
        ``add_history``): bad input (counts, prompts, a prompt the value model cannot predict) or
        a failing ``add_history`` records nothing and leaves the plan as it was, so the call can be
        retried whole.
        """
        texts = _prompt_list(texts, "texts")
        s = np.asarray(successes, dtype=np.float64).reshape(-1)
        m = np.asarray(n, dtype=np.float64).reshape(-1)
        if not (len(texts) == s.size == m.size):
            raise ValueError(
                f"observe needs one success count and one n per prompt: got {len(texts)} prompts, "
                f"{s.size} success counts, {m.size} n."
            )
        # the planner's check of counts, before a cast to integers could truncate a rate to 0
        s, m = (a.astype(np.int64) for a in _check_counts(texts, s, m, min_n=1, whole=True))
        if not texts:
            return 0
        latest = max(self.step_ - 1, 0)
        # Everything that can fail because of the input is checked before the first group is written, and
        # nothing is taken off the plan until every step's groups are: a failed call can be retried whole.
        steps, prior, _ = self._planned_steps(texts, latest)
        missing = np.flatnonzero(np.isnan(prior))  # not planned here: predicted now, at the latest step
        if missing.size:
            prior[missing] = self.predict([texts[i] for i in missing], latest)
        # one planner call for every step's groups: one add_history, so the batch is recorded whole or not at all
        self.planner.observe(texts, [self.history_step(int(st)) for st in steps], s, m, prior=prior)
        self._use_up(texts)
        self.n_observed_ += len(texts)
        return len(texts)

    def _planned_steps(self, texts: Sequence[str], default: int) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """Each text's trainer step and planned prior, looked up without changing the plan.

        A text listed k times takes its k oldest planned steps that are not too old (:data:`MAX_LAG`;
        outcomes arrive in the order the steps were planned); a text not planned (or listed more times
        than planned) gets ``default`` and a NaN prior. The dict counts, per text, the planned
        entries taken (expired ones included), for :meth:`_use_up`.
        """
        steps = np.full(len(texts), default, dtype=np.int64)
        prior = np.full(len(texts), np.nan)
        used: dict[str, int] = {}
        for i, q in enumerate(texts):
            planned = self._planned.get(q, [])
            j = used.get(q, 0)
            while j < len(planned) and planned[j][0] < self.step_ - MAX_LAG:
                j += 1
            if j < len(planned):
                steps[i], prior[i] = planned[j]
                j += 1
            used[q] = j
        return steps, prior, used

    def _use_up(self, texts: Sequence[str]) -> None:
        """Take the entries :meth:`_planned_steps` looks up for ``texts`` off the plan (they were recorded)."""
        used = self._planned_steps(texts, 0)[2]
        for q in used:
            rest = self._planned.get(q, [])[used.get(q, 0) :]
            if rest:
                self._planned[q] = rest
            else:
                self._planned.pop(q, None)


def group_outcomes(keys: Sequence[Any], rewards: Any, threshold: float) -> tuple[list, np.ndarray, np.ndarray]:
    """Successes and sizes of groups: rows sharing a key form a group, in order of first appearance.

    A row counts as a success when its reward is ``> threshold``; rows with a NaN reward
    (unscorable) are left out of their group's count.
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    if len(keys) != r.size:
        raise ValueError(f"{len(keys)} group keys for {r.size} rewards.")
    first: dict[Any, int] = {}
    s: list[int] = []
    m: list[int] = []
    for key, v in zip(keys, r):
        g = first.setdefault(key, len(first))
        if g == len(s):
            s.append(0)
            m.append(0)
        if np.isnan(v):
            continue
        s[g] += int(v > threshold)
        m[g] += 1
    return list(first), np.asarray(s, dtype=np.int64), np.asarray(m, dtype=np.int64)
