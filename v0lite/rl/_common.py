"""Helpers shared by the RL modules: random generators, checked probabilities and counts, keep sizes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..exceptions import V0liteError


def _rng(random_state: Any) -> np.random.Generator:
    """Return a numpy ``Generator`` from ``None``, an int, a ``Generator`` or a ``RandomState``."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng(random_state)


def _as_p(p: Any, name: str = "p") -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim > 1:
        raise V0liteError(f"{name} must be one-dimensional, got shape {arr.shape}.")
    arr = np.atleast_1d(arr)
    if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1):
        raise V0liteError(f"{name} must hold probabilities in [0, 1] (no NaN). Fix: clip or drop bad predictions.")
    return arr


def _check_counts(prompts, successes, n, *, min_n: int):
    """(successes, n) as float arrays, checked: same length as prompts, min_n <= n, 0 <= successes <= n."""
    s = np.asarray(successes, dtype=np.float64).ravel()
    m = np.asarray(n, dtype=np.float64).ravel()
    if not (len(prompts) == s.size == m.size):
        raise V0liteError("prompts, successes and n must have the same length.")
    if np.any(m < min_n) or np.any(s < 0) or np.any(s > m):
        need = "0 <= successes <= n" if min_n <= 0 else f"n >= {min_n} and 0 <= successes <= n"
        raise V0liteError(f"need {need} for every prompt.")
    return s, m


def _n_keep(k: int, fraction: float) -> int:
    """Number kept out of ``k`` for a keep fraction (at least 1 when ``k > 0``)."""
    return 0 if k == 0 else max(1, int(math.floor(k * fraction + 0.5)))
