"""Adapters that put a :class:`v0lite.RolloutPlanner` before rollout in real GRPO trainers.

* verl 0.9.1 -- :class:`PlannedRLHFDataset`, named by verl's own ``data.custom_cls`` setting (the
  recipe in docs/rl.md runs ``python -m verl.trainer.main_ppo`` unchanged), or
  :class:`VerlSampler` (``RayPPOTrainer(train_sampler=...)``) with :class:`VerlFeedbackDataset`
  for code that builds the trainer itself; ``pip install 'v0lite[verl]'``.
* TRL 1.16 -- :class:`PlannedGRPOTrainer` (a ``GRPOTrainer`` whose ``_get_train_sampler`` is
  :class:`PlannedRepeatSampler`); ``pip install 'v0lite[trl]'``.
* OpenRLHF -- :class:`OpenRLHFPlanner` (prompt-iterator filter and filter hook); not run inside
  OpenRLHF, which does not install on CPU.

Every adapter keeps the trainer's fixed group size and plans only which prompts are rolled out
(band-pass on the predicted pass rate, or P(mixed) ranking); see docs/rl.md. Names are imported
lazily: ``import v0lite.rl.integrations`` loads no torch, trl or verl.
"""

from __future__ import annotations

import importlib

__all__ = [
    "FixedSizeSelector",
    "OpenRLHFFilterHook",
    "OpenRLHFPlanner",
    "PlannedGRPOTrainer",
    "PlannedRLHFDataset",
    "PlannedRepeatSampler",
    "VerlFeedbackDataset",
    "VerlSampler",
    "prompt_text",
]

_LAZY = {
    "FixedSizeSelector": "_common",
    "prompt_text": "_common",
    "VerlSampler": "_verl",
    "VerlFeedbackDataset": "_verl",
    "PlannedRLHFDataset": "_verl_dataset",
    "PlannedRepeatSampler": "_trl",
    "PlannedGRPOTrainer": "_trl",
    "OpenRLHFPlanner": "_openrlhf",
    "OpenRLHFFilterHook": "_openrlhf",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
