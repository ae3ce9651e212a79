"""Helpers shared by the RL modules: random generators, checked prompts, probabilities and counts, keep sizes,
the value model's known policies, the one warning that no outcome comes back."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..exceptions import ParameterError, UnknownPolicyError, V0liteError, V0liteWarning

#: Planned steps with no outcome back after which a planner or an adapter warns (once) that its
#: outcomes are not wired: far more than the lag of the trainers' own loops (verl's legacy
#: trainer 1, TRL 2; docs/rl.md), so a run that does feed outcomes back never sees it.
NO_OUTCOME_AFTER = 3


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


def _prompt_list(prompts: Any, name: str = "prompts") -> list:
    """``prompts`` as a list; a bare string (which would be read as its characters) is refused."""
    if isinstance(prompts, (str, bytes)):
        raise ParameterError(
            f"{name} must be a sequence of prompts, got one str ({str(prompts)[:40]!r}), which would be read as "
            f"its {len(prompts)} characters. Fix: pass a list, e.g. [{str(prompts)[:20]!r}] for one prompt."
        )
    if prompts is None or not hasattr(prompts, "__iter__"):
        raise ParameterError(
            f"{name} must be a sequence of prompts, got {type(prompts).__name__}. Fix: pass a list of prompt texts."
        )
    return list(prompts)


def _check_counts(prompts, successes, n, *, min_n: int, whole: bool = False):
    """(successes, n) as float arrays, checked: same length as prompts, min_n <= n, 0 <= successes <= n.

    ``whole``: both must be whole numbers (counts of rollouts, not rates), ``n`` below 2**63 (int64).
    """
    s = np.asarray(successes, dtype=np.float64).ravel()
    m = np.asarray(n, dtype=np.float64).ravel()
    if not (len(prompts) == s.size == m.size):
        raise V0liteError(
            f"prompts, successes and n must have the same length, got {len(prompts)}, {s.size} and {m.size}. "
            "Fix: pass one count of each per prompt, in the prompts' order."
        )
    if whole:
        for name, v in (("successes", s), ("n", m)):
            bad = np.flatnonzero(~np.isfinite(v) | (v != np.round(v)))
            if bad.size:
                i = int(bad[0])
                raise ParameterError(
                    f"{name} must hold whole numbers (successes are counts of successful rollouts out of n "
                    f"rollouts), got {float(v[i])!r} for prompt {i}. Fix: pass counts, e.g. successes = "
                    "round(success_rate * n), and n the rollouts each prompt got (plan.n_rollouts)."
                )
        big = np.flatnonzero(m >= 2.0**63)  # counts are stored as int64: a larger one would wrap around
        if big.size:
            i = int(big[0])
            raise V0liteError(
                f"n must hold rollout counts below 2**63 (stored as 64-bit integers); prompt {i} "
                f"({str(prompts[i])[:40]!r}) has n[{i}] = {m[i]:g}. Fix: pass the rollouts it got as n."
            )
    bad = np.flatnonzero((m < min_n) | (s < 0) | (s > m))
    if bad.size:
        i = int(bad[0])
        need = "0 <= successes <= n" if min_n <= 0 else f"n >= {min_n} and 0 <= successes <= n"
        raise V0liteError(
            f"need {need} for every prompt; prompt {i} ({str(prompts[i])[:40]!r}) has successes[{i}] = {s[i]:g} "
            f"and n[{i}] = {m[i]:g}. Fix: pass the rollouts it got as n and how many of them succeeded as successes."
        )
    return s, m


def _check_fraction(name: str, v: Any, default: float, *, closed_hi: bool) -> None:
    """``v`` is a number in (0, 1] (``closed_hi``) or (0, 1)."""
    ok = isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)
    if not (ok and 0 < v and (v <= 1 if closed_hi else v < 1)):
        span = "(0, 1]" if closed_hi else "(0, 1)"
        raise ParameterError(f"{name} must be a number in {span}, got {v!r}. Fix: {name}={default} (the default).")


def _n_keep(k: int, fraction: float) -> int:
    """Number kept out of ``k`` for a keep fraction (at least 1 when ``k > 0``)."""
    return 0 if k == 0 else max(1, int(math.floor(k * fraction + 0.5)))


def known_policies(value_model: Any) -> list | None:
    """The policies ``value_model`` has history of, when an unknown one would fail its predictions.

    ``None`` when it cannot fail on a policy (``fallback`` other than ``"error"``: it predicts an
    unknown policy from the pool) or does not say which policies it knows (a model of your own).
    Read from a fitted :class:`v0lite.V0Regressor` (``index_.policies``) without predicting, so
    nothing is embedded.
    """
    if getattr(value_model, "fallback", None) != "error":
        return None
    policies = getattr(getattr(value_model, "index_", None), "policies", None)
    return None if policies is None else [str(p) for p in policies]


def check_known_policy(value_model: Any, policy: str, setting: str = "policy", fix: str | None = None) -> None:
    """Refuse a policy the value model has no history of (it would fail at the first prediction).

    ``setting``: how the caller names the policy (``policy`` in Python, ``data.v0lite.policy`` for
    verl); ``fix``: how the caller adds history or a fallback, in its terms.
    """
    known = known_policies(value_model)
    if known is None or policy in known:
        return
    shown = ", ".join(repr(p) for p in known[:5]) + (f" and {len(known) - 5} more" if len(known) > 5 else "")
    example = repr(known[0]) if known else "'NAME'"
    fix = fix or (
        f"add some of {policy!r}'s outcomes first (value_model.add_history(X, y)), or set value_model.fallback="
        "'global_mean' to predict it from the pool of policies"
    )
    raise UnknownPolicyError(
        f"{setting}={policy!r}: policy {policy!r} has no history in the value model ({type(value_model).__name__} "
        f"knows {len(known)} policies: {shown}), so its fallback='error' would fail every prediction. Fix: set "
        f"{setting} to the name the trained policy has in the outcome log (e.g. {setting}={example}), or {fix}."
    )


def warn_no_outcomes(
    owner: Any, planned: int, observed: int, fix: str, after: int = NO_OUTCOME_AFTER, *, what: str = "steps planned"
) -> None:
    """Warn once per ``owner`` when ``planned >= after`` steps were planned and no outcome came back.

    Without outcomes the value model never learns from the run (its predictions, hence the plans,
    stay those of the history it started with); ``fix`` says how outcomes reach it in the caller's
    terms, and ``what`` what ``planned`` counts (``"generation batches scored"`` for TRL).
    """
    if observed or planned < after or getattr(owner, "_no_outcome_warned", False):
        return
    owner._no_outcome_warned = True
    warnings.warn(
        f"{planned} {what} and no outcome came back, so the value model never learns from the run. Fix: {fix}",
        V0liteWarning,
        stacklevel=3,
    )
