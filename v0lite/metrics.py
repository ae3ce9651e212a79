"""Evaluation metrics for predicted success rates.

``y`` are observed success rates in [0, 1] and ``p`` predicted rates in [0, 1]. The
ranking metrics (AUC and its grouped variants) binarise ``y`` as ``y >= 0.5``
(positive). Everything is vectorised numpy; no scikit-learn or scipy is needed.

========================  ===================================================
function                  meaning
========================  ===================================================
:func:`auc`               global ROC AUC (Mann-Whitney, ties as average ranks)
:func:`within_policy_auc` AUC per group, weighted by group size
:func:`within_groups`     which groups that AUC uses and which it skips (one class), why
:func:`gauc`              the V0 paper's gAUC: AUC per step, count-weighted
:func:`brier`             mean squared error against the rate
:func:`log_loss`          cross-entropy with soft labels ``y``
:func:`ece`               expected calibration error, equal-width bins over p
:func:`spearman`          Spearman rank correlation
:func:`choice_accuracy`   share of prompts where the top-ranked policy is a best one
:func:`paired_bootstrap`  95% interval of a metric difference, resampling groups
========================  ===================================================

Undefined values (one class only, constant input) are ``nan``, never an error.

scikit-learn scorers (``scorer(estimator, X, y)``, greater is better) for
``cross_val_score``, ``GridSearchCV`` and ``cross_validate`` with :class:`v0lite.V0Regressor`:
:data:`neg_brier_scorer`, :data:`within_policy_auc_scorer`, :data:`choice_accuracy_scorer`
and the dict :data:`SCORERS` of all three (``scoring=SCORERS`` scores them at once).
scikit-learn's own ``"neg_brier_score"`` and ``"roc_auc"`` are classifier scorers: they call
``predict_proba`` and need 0/1 labels, so with a regressor of success rates they fail (``nan``
and a traceback per fold). Its ``"neg_mean_squared_error"`` works and equals the negated Brier
score against the rate.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .exceptions import DataError

__all__ = [
    "auc",
    "within_policy_auc",
    "within_groups",
    "gauc",
    "brier",
    "log_loss",
    "ece",
    "spearman",
    "choice_accuracy",
    "evaluate_predictions",
    "neg_brier_scorer",
    "within_policy_auc_scorer",
    "choice_accuracy_scorer",
    "SCORERS",
    "paired_bootstrap",
]


# --------------------------------------------------------------------------- checks


def _as_float(name: str, values: Any) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name!r} must be numeric ({exc}). Fix: pass a 1-d array of numbers.") from exc
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise DataError(f"{name!r} must be 1-d, got shape {arr.shape}. Fix: pass one value per row.")
    return arr


def _check_unit(name: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        what = "success rate" if name == "y" else "predicted probability"
        raise DataError(
            f"{name!r}, row {r}: value {arr[r]!r} is not a {what} in [0, 1] "
            f"({int(bad.sum())} such rows). Fix: pass finite values in [0, 1]"
            + (
                " (e.g. clip or map rewards with (r + 1) / 2)."
                if name == "y"
                else " (e.g. apply a sigmoid or np.clip)."
            )
        )


def _check_pair(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    ya = _as_float("y", y)
    pa = _as_float("p", p)
    if ya.shape[0] != pa.shape[0]:
        raise DataError(
            f"'y' has {ya.shape[0]} rows but 'p' has {pa.shape[0]}. "
            "Fix: pass one prediction per observed outcome, in the same order."
        )
    if ya.shape[0] == 0:
        raise DataError("'y' and 'p' are empty. Fix: pass at least one (outcome, prediction) pair.")
    _check_unit("y", ya)
    _check_unit("p", pa)
    return ya, pa


def _is_column(obj: Any) -> bool:
    """True for array-likes that can be one key column (not strings or scalars)."""
    if isinstance(obj, (str, bytes)) or np.isscalar(obj) or obj is None:
        return False
    return hasattr(obj, "__len__")


def _codes_of(name: str, values: Any, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{name!r} must be 1-d, got shape {arr.shape}. Fix: pass one group label per row.")
    if arr.shape[0] != n:
        raise DataError(
            f"{name!r} has {arr.shape[0]} rows but 'y' has {n}. "
            "Fix: pass one group label per row, in the same order as y and p."
        )
    if arr.dtype == object:
        arr = np.array(["\x00None" if v is None else f"{type(v).__name__}:{v}" for v in arr.tolist()])
    _, codes = np.unique(arr, return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def _group_codes(groups: Any, n: int, name: str = "groups") -> np.ndarray:
    """Dense integer codes for a group array or a list/tuple of arrays zipped row-wise."""
    if isinstance(groups, (list, tuple)) and len(groups) > 0 and all(_is_column(g) for g in groups):
        codes = np.zeros(n, dtype=np.int64)
        for j, g in enumerate(groups):
            c = _codes_of(f"{name}[{j}]", g, n)
            codes = codes * (int(c.max()) + 1 if n else 1) + c
            _, codes = np.unique(codes, return_inverse=True)
            codes = codes.reshape(-1).astype(np.int64)
        return codes
    return _codes_of(name, groups, n)


# --------------------------------------------------------------------------- ranks


def _tie_ranks(sorted_keys: np.ndarray) -> np.ndarray:
    """Average 1-based ranks of an already sorted array (ties share their mean rank)."""
    n = sorted_keys.shape[0]
    new = np.ones(n, dtype=bool)
    new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    block = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    return ((starts + ends + 1) / 2.0)[block]  # mean of positions start+1 .. end


def _grouped_auc(labels: np.ndarray, scores: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-group Mann-Whitney AUC and group size; ``nan`` where a group has one class only."""
    n_groups = int(codes.max()) + 1
    order = np.lexsort((scores, codes))
    c_s = codes[order]
    s_s = scores[order]
    l_s = labels[order]
    # a tie block is (group, score); make group changes break ties.
    boundary = np.ones(len(order), dtype=bool)
    boundary[1:] = (c_s[1:] != c_s[:-1]) | (s_s[1:] != s_s[:-1])
    block = np.cumsum(boundary) - 1
    starts = np.flatnonzero(boundary)
    ends = np.append(starts[1:], len(order))
    size = np.bincount(c_s, minlength=n_groups)
    gfirst = np.concatenate(([0], np.cumsum(size)[:-1]))
    ranks = (starts + ends + 1) / 2.0
    ranks = ranks[block] - gfirst[c_s]
    n_pos = np.bincount(c_s, weights=l_s.astype(np.float64), minlength=n_groups)
    n_neg = size - n_pos
    r_pos = np.bincount(c_s, weights=np.where(l_s, ranks, 0.0), minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    out[(n_pos == 0) | (n_neg == 0)] = np.nan
    return out, size


def _rank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.shape[0], dtype=np.float64)
    ranks[order] = _tie_ranks(x[order])
    return ranks


# --------------------------------------------------------------------------- metrics


def auc(y: Any, p: Any) -> float:
    """Global ROC AUC of ``p`` against the label ``y >= 0.5``.

    Ties in ``p`` count one half (average ranks, Mann-Whitney U).

    Parameters
    ----------
    y : array-like of float
        Observed success rates in [0, 1].
    p : array-like of float
        Predicted success probabilities in [0, 1].

    Returns
    -------
    float
        AUC in [0, 1], or ``nan`` if all labels fall in one class.

    Examples
    --------
    >>> auc([0.0, 1.0, 0.8, 0.2], [0.1, 0.9, 0.6, 0.6])
    0.875
    """
    ya, pa = _check_pair(y, p)
    out, _ = _grouped_auc(ya >= 0.5, pa, np.zeros(ya.shape[0], dtype=np.int64))
    return float(out[0])


def within_policy_auc(y: Any, p: Any, groups: Any) -> float:
    """AUC inside each group, averaged with weights = group size.

    Groups where every label falls in one class are skipped.

    Parameters
    ----------
    y, p : array-like of float
        Observed rates and predictions in [0, 1].
    groups : array-like or list of array-likes
        One label per row (e.g. the policy), or a list/tuple of such arrays zipped
        row-wise (e.g. ``[policy, step]`` makes one group per (policy, step)).

    Returns
    -------
    float
        Size-weighted mean AUC over usable groups; ``nan`` if no group is usable.

    Examples
    --------
    >>> y = [0, 1, 0, 1, 1, 1]
    >>> p = [0.2, 0.8, 0.9, 0.1, 0.5, 0.5]
    >>> within_policy_auc(y, p, ["a", "a", "b", "b", "c", "c"])  # group c skipped
    0.5
    """
    per, size, _, _ = _within(y, p, groups)
    ok = ~np.isnan(per)
    if not ok.any():
        return math.nan
    return float(np.sum(per[ok] * size[ok]) / np.sum(size[ok]))


def _within(y: Any, p: Any, groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-group AUC and size, row codes and labels: the one grouping both within-policy functions use."""
    ya, pa = _check_pair(y, p)
    codes = _group_codes(groups, ya.shape[0])
    labels = ya >= 0.5
    per, size = _grouped_auc(labels, pa, codes)
    return per, size, codes, labels


def within_groups(y: Any, p: Any, groups: Any) -> dict[str, Any]:
    """The groups :func:`within_policy_auc` averages over, and those it skips (one class only).

    Takes the arguments of :func:`within_policy_auc`. Returns ``used`` and ``skipped`` (numbers of
    groups), ``rows_used`` (rows in used groups) and ``skipped_groups``: per skipped group, by first row,
    ``row`` (its first row), ``rows`` (its size) and ``why`` ("all succeed" or "all fail", at score 0.5).

    Examples
    --------
    >>> g = within_groups([0, 1, 1, 1], [0.2, 0.8, 0.5, 0.5], ["a", "a", "c", "c"])
    >>> g["used"], g["skipped"], g["rows_used"], g["skipped_groups"]
    (1, 1, 2, [{'row': 2, 'rows': 2, 'why': 'all succeed'}])
    """
    per, size, codes, labels = _within(y, p, groups)
    first = np.unique(codes, return_index=True)[1]  # codes are dense 0..G-1
    n_pos = np.bincount(codes, weights=labels, minlength=size.shape[0])
    skip = np.flatnonzero(np.isnan(per))
    skip = skip[np.argsort(first[skip], kind="stable")]
    return {
        "used": int(size.shape[0] - skip.shape[0]),
        "skipped": int(skip.shape[0]),
        "rows_used": int(size.sum() - size[skip].sum()),
        "skipped_groups": [
            {"row": int(first[g]), "rows": int(size[g]), "why": "all succeed" if n_pos[g] else "all fail"} for g in skip
        ],
    }


def gauc(y: Any, p: Any, steps: Any) -> float:
    """The V0 paper's gAUC: AUC per training step (pooling policies), count-weighted.

    Parameters
    ----------
    y, p : array-like of float
        Observed rates and predictions in [0, 1].
    steps : array-like
        The checkpoint (step) of each row.

    Returns
    -------
    float
        Count-weighted mean of the per-step AUCs; single-class steps are skipped;
        ``nan`` if none is usable.

    Examples
    --------
    >>> gauc([0, 1, 0, 1], [0.1, 0.9, 0.8, 0.2], [16, 16, 64, 64])
    0.5
    """
    return within_policy_auc(y, p, steps)


def brier(y: Any, p: Any) -> float:
    """Mean of ``(p - y) ** 2`` against the success rate (not the binarised label).

    Examples
    --------
    >>> round(brier([1.0, 0.0, 0.5], [0.8, 0.2, 0.5]), 6)
    0.026667
    """
    ya, pa = _check_pair(y, p)
    return float(np.mean((pa - ya) ** 2))


def log_loss(y: Any, p: Any, eps: float = 1e-6) -> float:
    """Cross-entropy with soft labels: ``-mean(y log p + (1 - y) log(1 - p))``.

    ``p`` is clipped to ``[eps, 1 - eps]`` first.

    Examples
    --------
    >>> round(log_loss([1.0, 0.0], [0.5, 0.5]), 6)
    0.693147
    """
    if not (isinstance(eps, (int, float)) and 0 < eps < 0.5):
        raise DataError(f"eps={eps!r} must be a number in (0, 0.5). Fix: use a small value such as 1e-6.")
    ya, pa = _check_pair(y, p)
    pc = np.clip(pa, eps, 1.0 - eps)
    return float(-np.mean(ya * np.log(pc) + (1.0 - ya) * np.log1p(-pc)))


def ece(y: Any, p: Any, n_bins: int = 10) -> float:
    """Expected calibration error over ``n_bins`` equal-width bins of ``p``.

    ``sum_b (n_b / N) * |mean(p_b) - mean(y_b)|`` over non-empty bins; bin ``b`` holds
    ``b / n_bins <= p < (b + 1) / n_bins`` (the last bin includes 1).

    Examples
    --------
    >>> round(ece([0.0, 1.0, 1.0, 1.0], [0.1, 0.2, 0.9, 0.95]), 6)
    0.2625
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise DataError(f"n_bins={n_bins!r} must be a positive integer. Fix: use e.g. n_bins=10.")
    ya, pa = _check_pair(y, p)
    # by the edges, not int(p * n_bins): its rounding put 0.8999999999999999 in bin 9 and 0.29 (of 100) in 28
    b = np.searchsorted(np.arange(1, n_bins) / n_bins, pa, side="right")
    cnt = np.bincount(b, minlength=n_bins).astype(np.float64)
    sp = np.bincount(b, weights=pa, minlength=n_bins)
    sy = np.bincount(b, weights=ya, minlength=n_bins)
    nz = cnt > 0
    return float(np.sum(np.abs(sp[nz] - sy[nz])) / ya.shape[0])


def spearman(y: Any, p: Any) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); ``nan`` if constant.

    Examples
    --------
    >>> spearman([0.1, 0.5, 0.9], [0.2, 0.3, 0.4])
    1.0
    """
    ya, pa = _check_pair(y, p)
    ry = _rank(ya)
    rp = _rank(pa)
    ry -= ry.mean()
    rp -= rp.mean()
    den = math.sqrt(float(np.dot(ry, ry)) * float(np.dot(rp, rp)))
    if den == 0.0:
        return math.nan
    return float(np.clip(np.dot(ry, rp) / den, -1.0, 1.0))


def evaluate_predictions(
    y: Any,
    p: Any,
    policy: Sequence | np.ndarray | None = None,
    step: Sequence | np.ndarray | None = None,
) -> dict[str, float | int]:
    """All metrics at once, as plain Python numbers.

    Parameters
    ----------
    y, p : array-like of float
        Observed rates and predictions in [0, 1].
    policy : array-like, optional
        Policy of each row; absent means one policy.
    step : array-like, optional
        Step of each row; when given, ``within_policy_auc`` groups by (policy, step)
        and ``gauc`` is reported.

    Returns
    -------
    dict
        ``n`` (int) and float ``auc``, ``within_policy_auc``, ``gauc`` (only when
        ``step`` is given), ``brier``, ``log_loss``, ``ece``, ``spearman``.
        Undefined values stay ``float('nan')``; turning them into ``None`` for JSON
        is the caller's job.

    Examples
    --------
    >>> m = evaluate_predictions([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.9], policy=["a", "a", "b", "b"])
    >>> m["n"], m["auc"], m["within_policy_auc"]
    (4, 1.0, 1.0)
    """
    ya, pa = _check_pair(y, p)
    n = ya.shape[0]
    keys = []
    if policy is not None:
        keys.append(policy)
    if step is not None:
        keys.append(step)
    out: dict[str, float | int] = {"n": int(n), "auc": auc(ya, pa)}
    if keys:
        names = (["policy"] if policy is not None else []) + (["step"] if step is not None else [])
        codes = [_codes_of(nm, k, n) for nm, k in zip(names, keys)]
        out["within_policy_auc"] = within_policy_auc(ya, pa, codes)
    else:
        out["within_policy_auc"] = out["auc"]
    if step is not None:
        out["gauc"] = gauc(ya, pa, _codes_of("step", step, n))
    out["brier"] = brier(ya, pa)
    out["log_loss"] = log_loss(ya, pa)
    out["ece"] = ece(ya, pa)
    out["spearman"] = spearman(ya, pa)
    return out


def choice_accuracy(y: Any, p: Any, prompts: Any, policies: Any = None) -> float:
    """Share of prompts where the policy ranked first by ``p`` is one of the best by ``y``.

    Rows are grouped by prompt (one row per policy tried on it). Prompts with a single row,
    or whose policies all scored the same (no choice to get wrong), are skipped. Ties in ``p``
    go to the row listed first. This is a router's accuracy at zero cost: did it pick a model
    that did best on the prompt?

    Parameters
    ----------
    y, p : array-like of float
        Observed rates and predictions in [0, 1].
    prompts : array-like
        The prompt (or prompt id) of each row.
    policies : array-like, optional
        Unused in the score; checked for length so a misaligned column fails loudly.

    Returns
    -------
    float
        ``nan`` if no prompt offers a choice.

    Examples
    --------
    >>> choice_accuracy([1, 0, 0, 1], [0.9, 0.2, 0.8, 0.3], ["q1", "q1", "q2", "q2"])
    0.5
    """
    ya, pa = _check_pair(y, p)
    codes = _codes_of("prompts", prompts, ya.shape[0])
    if policies is not None:
        _codes_of("policies", policies, ya.shape[0])
    order = np.lexsort((np.arange(ya.shape[0]), -pa, codes))  # by prompt, then p descending, first row first
    c = codes[order]
    start = np.r_[True, c[1:] != c[:-1]]
    first = order[start]  # the top-ranked row of each prompt
    g = c[start]
    n = np.bincount(codes)
    best = np.full(n.shape[0], -np.inf)
    np.maximum.at(best, codes, ya)
    worst = np.full(n.shape[0], np.inf)
    np.minimum.at(worst, codes, ya)
    usable = (n[g] > 1) & (best[g] > worst[g])
    if not usable.any():
        return math.nan
    return float(np.mean(ya[first][usable] >= best[g][usable]))


class _Scorer:
    """A scikit-learn scorer ``(estimator, X, y) -> float`` (greater is better) over a v0lite metric.

    ``X`` is the frame the estimator predicts (polars or pandas, with ``policy`` and ``prompt``);
    a metric that needs the policy or the prompt reads it from ``X``.
    """

    def __init__(self, name: str, func, sign: float = 1.0, needs: tuple = ()):
        self.name = name
        self._func = func
        self._sign = sign
        self._needs = needs

    def __call__(self, estimator, X, y, sample_weight=None) -> float:
        if sample_weight is not None:
            raise DataError(f"scorer {self.name!r} does not take sample_weight. Fix: score without weights.")
        p = np.asarray(estimator.predict(X), dtype=np.float64).reshape(-1)
        cols = [_column(X, c, self.name) for c in self._needs]
        return self._sign * float(self._func(y, p, *cols))

    def __repr__(self) -> str:
        return f"v0lite.metrics.{self.name}"


def _column(X: Any, name: str, scorer: str) -> np.ndarray:
    if name not in getattr(X, "columns", ()):
        raise DataError(
            f"scorer {scorer!r} reads column {name!r} of X, which has none. "
            f"Fix: pass X as a DataFrame with a {name!r} column."
        )
    col = X[name]
    return np.asarray(col.to_numpy() if hasattr(col, "to_numpy") else col)


neg_brier_scorer = _Scorer("neg_brier_scorer", brier, -1.0)
"""``-brier(y, predict(X))``: use as ``scoring=neg_brier_scorer`` (what ``"neg_brier_score"`` means)."""

within_policy_auc_scorer = _Scorer("within_policy_auc_scorer", within_policy_auc, 1.0, ("policy",))
"""AUC inside each policy of ``X`` (the ``policy`` column), size-weighted."""

choice_accuracy_scorer = _Scorer("choice_accuracy_scorer", choice_accuracy, 1.0, ("prompt",))
""":func:`choice_accuracy` with prompts from ``X``; folds must keep a prompt's rows together."""

SCORERS = {
    "neg_brier": neg_brier_scorer,
    "within_policy_auc": within_policy_auc_scorer,
    "choice_accuracy": choice_accuracy_scorer,
}
"""All three by name, for ``scoring=SCORERS`` in ``cross_validate`` / ``GridSearchCV(refit=...)``."""
# --------------------------------------------------------------------------- paired bootstrap


def _resample_rows(starts: np.ndarray, sizes: np.ndarray, order: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Row indices of the groups ``picks`` (with repeats), all rows of each picked group."""
    sz = sizes[picks]
    total = int(sz.sum())
    offs = np.repeat(starts[picks] - np.concatenate(([0], np.cumsum(sz)[:-1])), sz)
    return order[offs + np.arange(total)]


def paired_bootstrap(
    metric_fn,
    a,
    b,
    *,
    groups=None,
    n_rows: int | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
):
    """Paired bootstrap interval of ``metric_fn(a) - metric_fn(b)``, resampling whole groups.

    Each of ``n_boot`` resamples draws as many groups as there are (e.g. test prompts), with
    replacement, and keeps every row of each drawn group; ``a`` and ``b`` are scored on the
    very same rows (paired), so what is shared by both (hard prompts) cancels out. The interval
    is the percentile interval of the resampled differences; resamples where either metric
    is undefined (NaN, e.g. an AUC on one class) are left out and counted.

    Parameters
    ----------
    metric_fn : callable ``(pred, rows) -> float``
        The metric of prediction ``pred`` on the rows ``rows`` (an int array that may repeat a
        row); ``pred`` is ``a`` or one ``b`` as given, so it can be any object (an array, or
        precomputed per-row tables).
    a : object
        The prediction whose lead is measured (the chosen head).
    b : object or mapping of str to object
        The reference prediction, or several by name: each is compared with ``a`` on the same
        resamples, and ``a``'s metric is computed once per resample.
    groups : array-like, optional
        One group label per row (e.g. the prompt id): the unit resampled. Default: every row
        its own group (then ``n_rows`` is required unless ``a`` has a length).
    n_rows : int, optional
        Number of rows, when ``groups`` is None and ``a`` has no ``len`` (a prediction with a ``len``
        must have one entry per row).
    n_boot : int, default 1000
    confidence : float, default 0.95
    random_state : int, default 0
        Seeds the resamples: the same seed gives the same interval.

    Returns
    -------
    dict or dict of str to dict
        ``estimate`` (the difference on all rows), ``ci_low``, ``ci_high``, ``n_boot`` (usable
        resamples) and ``n_groups``; a mapping of such dicts when ``b`` is a mapping.

    Examples
    --------
    >>> y = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    >>> def acc(pred, rows):
    ...     return float((pred[rows] == y[rows]).mean())
    >>> r = paired_bootstrap(acc, y.copy(), np.zeros(6), n_boot=200)
    >>> round(r["estimate"], 4), r["ci_low"] <= r["estimate"] <= r["ci_high"]
    (0.6667, True)
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise DataError(f"n_boot={n_boot!r} must be a positive integer. Fix: use e.g. n_boot=1000.")
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise DataError(f"confidence={confidence!r} must be in (0, 1). Fix: use e.g. 0.95.")
    if groups is None:
        n = int(n_rows) if n_rows is not None else len(a)
        codes = np.arange(n, dtype=np.int64)
    else:
        n = len(groups)
        codes = _group_codes(groups, n)
    named = isinstance(b, dict)
    refs = dict(b) if named else {"_": b}
    src = "n_rows" if groups is None else "groups"
    for name, x in [("a", a), *((f"b[{k!r}]" if named else "b", v) for k, v in refs.items())]:
        if hasattr(x, "__len__") and len(x) != n:  # else metric_fn fails on a bare IndexError, or scores a part
            fix = f"leave n_rows out or set it to {len(x)}" if groups is None else "pass one group label per row"
            raise DataError(f"paired_bootstrap: {name} has {len(x)} rows but {src} gives {n}. Fix: {fix}.")
    if n == 0:
        raise DataError("paired_bootstrap needs at least one row. Fix: pass a non-empty test set.")
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    n_groups = sizes.shape[0]
    every = np.arange(n)
    base_a = float(metric_fn(a, every))
    full = {k: base_a - float(metric_fn(v, every)) for k, v in refs.items()}
    rng = np.random.default_rng(random_state)
    diffs = {k: np.full(n_boot, np.nan) for k in refs}
    for i in range(n_boot):
        rows = _resample_rows(starts, sizes, order, rng.integers(0, n_groups, n_groups))
        va = float(metric_fn(a, rows))
        if not math.isfinite(va):
            continue
        for k, v in refs.items():
            diffs[k][i] = va - float(metric_fn(v, rows))
    alpha = (1.0 - float(confidence)) / 2.0
    out = {}
    for k, d in diffs.items():
        d = d[np.isfinite(d)]
        lo, hi = np.quantile(d, [alpha, 1.0 - alpha]).tolist() if d.size else (math.nan, math.nan)
        out[k] = {
            "estimate": full[k],
            "ci_low": float(lo),
            "ci_high": float(hi),
            "n_boot": int(d.size),
            "n_groups": int(n_groups),
        }
    return out if named else out["_"]
