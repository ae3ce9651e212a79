"""``head_params`` checked before any work: known keys, finite numbers, each head's ranges.

A bad value used to reach the head's arithmetic (a kNN ``temperature`` of 0, a ridge ``alpha`` of
NaN) and come out as NaN predictions; an unknown key as a raw ``TypeError`` of the head's constructor.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from ..exceptions import ParameterError

__all__ = ["check_head_params", "saved_params_problem", "plain"]


def plain(value):
    """``value`` with numpy scalars as Python numbers, recursively (dicts, lists, tuples): JSON-ready."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _positive_int_or_cv(v) -> bool:
    return v == "cv" if isinstance(v, str) else _number(v) and float(v) == int(v) and v >= 1


def _int_at_least(lo):
    """A check: an integer (an integral float too, not a bool) >= ``lo``."""
    return lambda v: _number(v) and math.isfinite(float(v)) and float(v) == int(v) and v >= lo


def _positive(v) -> bool:
    return _number(v) and v > 0


def _alphas(v) -> bool:
    return isinstance(v, (list, tuple, np.ndarray)) and len(v) > 0 and all(_positive(a) for a in v)


_GLM = {
    "alphas": (_alphas, "a non-empty list of numbers > 0"),
    "n_folds": (_int_at_least(2), "an integer >= 2"),
    "select": (lambda v: v in ("loss", "choice", "pairwise"), "'loss', 'choice' or 'pairwise'"),
    "pool_scale": (_positive, "a number > 0"),
}

# head -> key -> (check, what it must be)
_RANGES = {
    "gbdt": {
        "n_estimators": (_int_at_least(1), "an integer >= 1"),
        "learning_rate": (_positive, "a number > 0"),
        "num_leaves": (_int_at_least(2), "an integer >= 2"),
        "min_child_samples": (_int_at_least(0), "an integer >= 0"),
        "n_folds": (_int_at_least(2), "an integer >= 2"),
        "max_rows": (_int_at_least(1), "an integer >= 1"),
        "pca_components": (_int_at_least(0), "an integer >= 0"),
        "k": (_int_at_least(1), "an integer >= 1"),
    },
    "logistic": _GLM,
    "ridge": _GLM,
    "knn": {
        "k": (_positive_int_or_cv, "a positive integer or 'cv'"),
        "temperature": (lambda v: _number(v) and v > 0, "a number > 0"),
        "alpha": (lambda v: _number(v) and v > 0, "a number > 0"),
    },
    "linear": {"alpha": (lambda v: _number(v) and v > 0, "a number > 0")},
}


def _non_finite(value):
    """The first NaN or infinite number inside ``value`` (dicts and lists searched), else None."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for v in value:
            bad = _non_finite(v)
            if bad is not None:
                return bad
        return None
    if _number(value) and not math.isfinite(float(value)):
        return value
    return None


def check_head_params(head, head_params) -> None:
    """Refuse ``head_params`` that the head cannot use, naming the key, the value and the fix.

    Raises
    ------
    ParameterError
        ``head_params`` not a dict of str keys; a key the head does not take (the valid keys are
        listed); a NaN or infinite number; a value outside the head's range (kNN ``k``,
        ``temperature``, ``alpha``; linear ``alpha``; gbdt's ``n_estimators``, ``learning_rate``,
        ``num_leaves``, ``min_child_samples``, ``n_folds``, ``max_rows``, ``pca_components``, ``k``;
        logistic / ridge ``alphas``, ``n_folds``, ``select``, ``pool_scale``).
    """
    from .._registry import canonical
    from .base import HEADS, BaseHead, get_head_class

    if head_params is None:
        return
    if not isinstance(head_params, dict) or not all(isinstance(k, str) for k in head_params):
        raise ParameterError(
            f"head_params must be a dict of parameter names, got {head_params!r}. "
            "Fix: pass e.g. head_params={'alpha': 1.0}, or None."
        )
    cls = get_head_class(head)
    name = canonical(HEADS, head, "head") if isinstance(head, str) else getattr(cls, "name", cls.__name__)
    sig = {} if cls.__init__ is BaseHead.__init__ else inspect.signature(cls.__init__).parameters  # none
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values()):
        valid = [p for p in sig if p != "self"]
        unknown = [k for k in head_params if k not in valid]
        if unknown:
            raise ParameterError(
                f"head_params: the {name!r} head has no parameter {unknown[0]!r}. Fix: use only its parameters {valid}."
            )
    for key, value in head_params.items():
        bad = _non_finite(value)
        if bad is not None:
            raise ParameterError(
                f"head_params[{key!r}] = {value!r} holds a non-finite number ({bad!r}). Fix: pass a finite number."
            )
        check = _RANGES.get(name, {}).get(key)
        if check is not None and not check[0](value):
            raise ParameterError(
                f"head_params[{key!r}] of the {name!r} head must be {check[1]}, got {value!r}. "
                f"Fix: pass {check[1]} (or leave it out for the default)."
            )


def saved_params_problem(head, head_params) -> str | None:
    """Why a saved folder's ``head_params`` fail :func:`check_head_params` (its message without the fit-time fix),
    or None; None too for an unknown head, which the head's loader names."""
    from ..exceptions import V0liteError
    from .base import get_head_class

    try:
        get_head_class(head)
    except V0liteError:
        return None
    try:
        check_head_params(head, head_params)
    except (V0liteError, TypeError, ValueError) as exc:
        return str(exc).split(" Fix: ")[0].rstrip(".")
    return None
