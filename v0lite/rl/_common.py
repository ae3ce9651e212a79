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


def checked_values(values: Any, name: str, what: str, fix: str, *, hi: float | None = None, whole: bool = False):
    """``values`` as a float array of any shape, checked in one vectorised pass: numbers, finite, ``>= 0``.

    ``hi``: an upper bound too (``1`` for probabilities); ``whole``: whole numbers only (counts). ``what``
    says what the values must be (``"probabilities in [0, 1]"``) and ``fix`` how to mend them, in the
    caller's terms; the first bad value is named with its position, so a NaN among a million is found.
    """
    raw = np.asarray(values)
    if raw.dtype.kind not in "biuf":  # a str "0.5" would be cast to a number, None to NaN
        raise ParameterError(
            f"{name} must hold numbers ({what}), got {str(values)[:60]} (dtype {raw.dtype}). Fix: {fix}"
        )
    arr = raw.astype(np.float64)
    ok = np.isfinite(arr) & (arr >= 0)
    if hi is not None:
        ok &= arr <= hi
    if whole:
        ok &= arr == np.round(arr)
    if not ok.all():
        i = int(np.flatnonzero(~ok.ravel())[0])
        at = "" if arr.ndim == 0 else "[" + ", ".join(str(int(j)) for j in np.unravel_index(i, arr.shape)) + "]"
        raise ParameterError(
            f"{name}{at} = {float(arr.ravel()[i])!r}: {name} must hold {what} (no NaN or inf). Fix: {fix}"
        )
    return arr


def _as_p(p: Any, name: str = "p") -> np.ndarray:
    """``p`` as a one-dimensional array of probabilities in [0, 1] (a scalar as one value), checked."""
    arr = checked_values(
        p,
        name,
        "probabilities in [0, 1]",
        "pass the predicted pass rates as floats, e.g. model.predict(X); clip or drop bad ones.",
        hi=1.0,
    )
    if arr.ndim > 1:
        raise V0liteError(f"{name} must be one-dimensional, got shape {arr.shape}.")
    return np.atleast_1d(arr)


def _prompt_list(prompts: Any, name: str = "prompts") -> list:
    """``prompts`` as a list of non-empty texts; a bare string (which would be read as its characters) is refused.

    Each prompt is checked up front (:func:`v0lite.log._prompt_list`: a str, not blank, decodable), naming
    its position and value, so that a number, ``None`` or ``""`` fails here rather than deep in the value
    model's frame building or, worse, gets planned as a prompt.
    """
    if isinstance(prompts, (str, bytes)):
        raise ParameterError(
            f"{name} must be a sequence of prompts, got one str ({str(prompts)[:40]!r}), which would be read as "
            f"its {len(prompts)} characters. Fix: pass a list, e.g. [{str(prompts)[:20]!r}] for one prompt."
        )
    if prompts is None or not hasattr(prompts, "__iter__"):
        raise ParameterError(
            f"{name} must be a sequence of prompts, got {type(prompts).__name__}. Fix: pass a list of prompt texts."
        )
    from ..log import _prompt_list as checked_texts  # the log's one check of prompt texts (polars: lazily)

    return checked_texts(prompts, name)


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


def _whole(v: Any) -> bool:
    """Whether ``v`` is a finite whole number (an int, or a float like 8.0; not a bool or a str)."""
    if isinstance(v, (bool, np.bool_)):
        return False
    try:
        return math.isfinite(v) and int(v) == v
    except (TypeError, ValueError):
        return False


def check_whole_count(name: str, v: Any, minimum: int, what: str, fix: str, note: str = "") -> int:
    """``v`` as an int: a whole number ``>= minimum`` (a bool, 7.9, "8", NaN, inf or None is refused, not cast).

    ``what`` says what the number counts, ``fix`` how to set it (both in the caller's terms), ``note`` is
    added after the value (e.g. what a 0 would do).
    """
    if not _whole(v) or v < minimum:
        raise ParameterError(f"{name} must be an int >= {minimum} ({what}), got {v!r}{note}. Fix: {fix}")
    return int(v)


def _check_group_sizes(n_min: Any, n_max: Any, defaults: tuple = (2, 16)) -> tuple[int, int]:
    """``(n_min, n_max)`` as ints: whole numbers, ``0 <= n_min <= n_max`` (refused otherwise, with a fix).

    ``defaults``: the caller's defaults of ``(n_min, n_max)``, named in the fix.
    """
    for name, v, default in (("n_min", n_min, defaults[0]), ("n_max", n_max, defaults[1])):
        if not _whole(v) or v < 0:
            raise ParameterError(
                f"{name} must be a whole number >= 0 (a group size: rollouts per prompt), got {v!r}. "
                f"Fix: {name}={default} (the default)."
            )
    if n_max < n_min:
        raise ParameterError(
            f"n_max must be >= n_min (the largest group size is at least the smallest), got n_min={n_min!r}, "
            f"n_max={n_max!r}. Fix: n_max >= {max(int(n_min), 2)} (default n_min={defaults[0]}, n_max={defaults[1]}), "
            "or a smaller n_min."
        )
    return int(n_min), int(n_max)


def checked_pass_rates(p: Any, n_rows: int, model: Any, row_name) -> np.ndarray:
    """A value model's predictions, checked: ``n_rows`` finite pass rates in [0, 1] (round-off clipped).

    NaN or a value out of [0, 1] is refused, never replaced: ``row_name(i)`` names row ``i`` in the
    caller's terms.
    """
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (n_rows,):
        raise V0liteError(f"value_model.predict returned shape {p.shape}, expected ({n_rows},).")
    bad = np.flatnonzero(~(np.isfinite(p) & (p >= -1e-9) & (p <= 1 + 1e-9)))
    if bad.size:
        i = int(bad[0])
        raise V0liteError(
            f"value_model.predict ({type(model).__name__}) returned {float(p[i])!r} for {row_name(i)} and "
            f"{bad.size - 1} more out of [0, 1] or NaN: the planner needs predicted pass rates in [0, 1]. Fix: make "
            "the value model return pass rates (a model of raw rewards must map them to [0, 1] first, e.g. "
            "(reward + 1) / 2 for -1/1 rewards)."
        )
    return np.clip(p, 0.0, 1.0)


def check_strengths(prior_strength: Any, default_prior_strength: Any) -> None:
    """``prior_strength`` is ``"auto"`` or a number > 0, ``default_prior_strength`` a number > 0 (with a fix)."""
    for name, v in (("prior_strength", prior_strength), ("default_prior_strength", default_prior_strength)):
        if name == "prior_strength" and isinstance(v, str) and v == "auto":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not (math.isfinite(v) and v > 0):
            auto = "'auto' or " if name == "prior_strength" else ""
            raise ParameterError(
                f"{name} must be {auto}a number > 0 (the rollouts the prior counts for), got {v!r}. Fix: "
                + (
                    "prior_strength='auto' (fitted on the outcomes; the default) or e.g. 4.0."
                    if auto
                    else f"{name}=4.0 (the default)."
                )
            )


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
