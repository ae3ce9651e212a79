"""The one prompt-grouped fold splitter: every cross-validation in v0lite assigns whole prompts to folds.

A prompt in a held-out fold is cold for every policy, so nothing about it leaks into the fitted
part. Episodes, the training set's validation prompts, the router's ``shrink="cv"``, the tuned
kNN router baseline and the benchmarks all call :func:`prompt_folds`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .exceptions import ParameterError

__all__ = ["prompt_folds"]


def prompt_folds(n_prompts: int, n_folds: int, random_state: Any = 0) -> np.ndarray:
    """Fold id (0..n_folds-1) of each of ``n_prompts`` prompts: balanced sizes, seeded random order.

    ``default_rng(random_state).permutation(n_prompts) % n_folds``, so fold sizes differ by at
    most one. Map prompts to ids in a fixed order (e.g. first seen, or sorted) to reproduce a split.

    Examples
    --------
    >>> prompt_folds(6, 3, random_state=0).tolist()
    [0, 2, 2, 1, 0, 1]
    >>> sorted(np.bincount(prompt_folds(10, 3)).tolist())
    [3, 3, 4]
    """
    if isinstance(n_folds, bool) or int(n_folds) != n_folds or n_folds < 1:
        raise ParameterError(f"n_folds must be an int >= 1, got {n_folds!r}.")
    return np.random.default_rng(random_state).permutation(int(n_prompts)) % int(n_folds)
