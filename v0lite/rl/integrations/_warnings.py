"""Warnings the adapters give when a run would go on silently wrong: chat text the history never saw, reward scales.

No torch, trl or verl here (imported by every adapter).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...embed import prompt_keys
from ...exceptions import V0liteWarning
from ._common import prompt_text

__all__ = ["DEFAULT_THRESHOLD", "warn_messages_unseen", "warn_reward_scale"]

#: The adapters' default ``success_threshold`` (a rollout succeeds when its reward is above it).
DEFAULT_THRESHOLD = 0.5

_MESSAGES = ("user", "last_user", "all")


def warn_messages_unseen(planner: Any, values: Sequence[Any], messages: str, setting: str = "messages") -> bool:
    """Warn when the history holds these chat prompts' texts under another ``messages`` setting only.

    ``values`` are the first planned chunk's prompts as the trainer stores them. When the value
    model exposes its history's prompts (a fitted :class:`v0lite.V0Regressor`: ``index_.key_to_row``,
    a membership test of content hashes, nothing embedded), none of their texts read with
    ``messages`` is in it, and some read with another setting are (a history logged from the
    user's text, a trainer that stores the chat template's system message too), the value model
    would predict texts it never saw: warned, naming ``setting`` and the setting that matches.
    Prompts new to the history under every setting say nothing and are not warned about.
    Returns whether it warned.
    """
    value_model = getattr(planner, "value_model", None)
    known = getattr(getattr(value_model, "index_", None), "key_to_row", None)
    chats = [v for v in values if v is not None and not isinstance(v, str)]  # a plain string reads the same always
    if not isinstance(known, Mapping) or not known or not chats:
        return False

    def hits(m: str) -> int:
        try:
            texts = [prompt_text(v, m) for v in chats]
        except (TypeError, ValueError):  # not chat messages: the adapter's own check names the row
            return 0
        return sum(k in known for k in prompt_keys(texts))

    if hits(messages):
        return False
    counts = {m: hits(m) for m in _MESSAGES if m != messages}
    best = max(counts, key=counts.get)
    if not counts[best]:
        return False
    warnings.warn(
        f"none of the first {len(chats)} training prompts, read with {setting}={messages!r}, is in the value model's "
        f"history, but {counts[best]} of them are when read with {setting}={best!r}: the history was logged from "
        f"other messages of the chat than the ones read now, so the value model would predict texts it never saw "
        f"(a system prompt in the text moves every prediction). Fix: {setting}={best!r}.",
        V0liteWarning,
        stacklevel=4,
    )
    return True


def warn_reward_scale(owner: Any, rewards: Any, threshold: float, setting: str = "success_threshold") -> bool:
    """Warn once per ``owner`` when a reward lies outside [0, 1] and ``threshold`` is the default 0.5.

    A rollout counts as a success when its reward is ``> threshold``: 0.5 is the pass mark of
    0/1 rewards, not of 0-10 scores or of summed reward functions (1 for format + 1 for
    correctness). ``setting`` is how the caller names the threshold. Returns whether it warned.
    """
    if threshold != DEFAULT_THRESHOLD or getattr(owner, "_reward_scale_warned", False):
        return False
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    r = r[np.isfinite(r)]
    out = r[(r < 0.0) | (r > 1.0)]
    if not out.size:
        return False
    owner._reward_scale_warned = True
    warnings.warn(
        f"a reward of {out[0]:g} is outside [0, 1] (this batch's rewards run from {r.min():g} to {r.max():g}) while "
        f"{setting} is {threshold:g}, the pass mark of 0/1 rewards: a rollout is counted as a success when its "
        f"reward is > {threshold:g}, which may not mean success on this scale, and the value model learns those "
        f"counts. Fix: set {setting} to the reward above which a rollout succeeds (0.0 for -1/1 rewards, e.g. 5.0 "
        "for 0-10 scores).",
        V0liteWarning,
        stacklevel=3,
    )
    return True
