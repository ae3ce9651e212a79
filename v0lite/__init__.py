"""v0lite: predict an LLM policy's success on a prompt before rollout, from its history.

Public names are imported lazily, so ``import v0lite`` loads no heavy library.
"""

from __future__ import annotations

import importlib

from ._version import __version__

__all__ = [
    "V0Regressor",
    "Embedder",
    "Router",
    "RolloutPlanner",
    "load",
    "read_log",
    "validate_log",
    "metrics",
    "data",
    "V0liteError",
    "DataError",
    "NotFittedError",
    "UnknownPolicyError",
    "ParameterError",
    "FormatVersionError",
    "EncoderMismatchError",
    "V0liteWarning",
    "__version__",
]

_LAZY = {
    "V0Regressor": ("v0lite.estimator", "V0Regressor"),
    "Embedder": ("v0lite.embed", "Embedder"),
    "Router": ("v0lite.routing", "Router"),
    "RolloutPlanner": ("v0lite.rl", "RolloutPlanner"),
    "read_log": ("v0lite.log", "read_log"),
    "validate_log": ("v0lite.log", "validate_log"),
    "V0liteError": ("v0lite.exceptions", "V0liteError"),
    "DataError": ("v0lite.exceptions", "DataError"),
    "NotFittedError": ("v0lite.exceptions", "NotFittedError"),
    # the errors the docs name, catchable as v0lite.X (the exceptions module is light)
    "UnknownPolicyError": ("v0lite.exceptions", "UnknownPolicyError"),
    "ParameterError": ("v0lite.exceptions", "ParameterError"),
    "FormatVersionError": ("v0lite.exceptions", "FormatVersionError"),
    "EncoderMismatchError": ("v0lite.exceptions", "EncoderMismatchError"),
    "V0liteWarning": ("v0lite.exceptions", "V0liteWarning"),
}


def load(path, **kwargs):
    """Load a saved :class:`V0Regressor` folder (no pickle; see :meth:`V0Regressor.load`)."""
    from .estimator import V0Regressor

    return V0Regressor.load(path, **kwargs)


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in ("metrics", "data"):
        return importlib.import_module(f"v0lite.{name}")
    raise AttributeError(f"module 'v0lite' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
