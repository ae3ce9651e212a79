"""Baseline routers: RouterBench's kNN router (fixed and CV-tuned ``k``) and the group/task-mean router."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .._folds import prompt_folds
from .._registry import unknown_name
from ..exceptions import V0liteError
from ._frontier import _sweep, aiq
from ._knn import _knn_mean, _knn_prefix_means, _normalise
from ._strategies import UtilityStrategy, _cost_tie

__all__ = ["knn_router_baseline", "tune_knn_router", "group_router_baseline", "TUNED_KS"]


def knn_router_baseline(
    train_emb, train_outcomes, train_costs, test_emb, k: int = 32, *, cost: str = "mean"
) -> tuple[np.ndarray, np.ndarray]:
    """RouterBench's kNN router: per model, the mean outcome of the ``k`` nearest train prompts.

    Parameters
    ----------
    train_emb : ndarray (n_train, d)
    train_outcomes : ndarray (n_train, n_policies)
    train_costs : ndarray (n_train, n_policies) or (n_policies,)
    test_emb : ndarray (n_test, d)
    k : int, default 32
    cost : {"mean", "knn"}, default "mean"
        Predicted cost: each model's mean train cost, or the same kNN average on costs.

    Returns
    -------
    P, C : ndarray (n_test, n_policies)
        Sweep them with :class:`v0lite.routing.UtilityStrategy` as for any router.

    Examples
    --------
    >>> E = np.eye(3, dtype=np.float32)
    >>> P, C = knn_router_baseline(E, np.array([[1, 0], [0, 1], [1, 1]]), np.array([1.0, 2.0]), E[:1], k=1)
    >>> P.tolist(), C.tolist()
    ([[1.0, 0.0]], [[1.0, 2.0]])
    """
    tr, te = _normalise(train_emb), _normalise(test_emb)
    Y = np.asarray(train_outcomes, dtype=np.float64)
    Ct = np.asarray(train_costs, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[0] != tr.shape[0]:
        raise V0liteError(f"train_outcomes must be (n_train={tr.shape[0]}, n_policies), got {Y.shape}.")
    if cost not in ("mean", "knn"):
        raise unknown_name("baseline cost", cost, ["knn", "mean"])
    if Ct.ndim == 1:
        if cost == "knn":
            raise V0liteError("cost='knn' needs per-prompt train_costs of shape (n_train, n_policies).")
        Ct = np.broadcast_to(Ct, Y.shape)
    if cost == "knn":
        both = _knn_mean(te, tr, np.concatenate([Y, Ct], axis=1), k)
        return both[:, : Y.shape[1]], both[:, Y.shape[1] :]
    P = _knn_mean(te, tr, Y, k)
    return P, np.tile(Ct.mean(axis=0), (te.shape[0], 1))


TUNED_KS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)


def tune_knn_router(
    train_emb,
    train_outcomes,
    train_costs,
    ks: Sequence[int] = TUNED_KS,
    *,
    cv: int = 5,
    random_state: int = 0,
    n_knobs: int = 64,
    show_progress_bar: bool = False,
) -> tuple[int, dict[str, Any]]:
    """Choose the kNN router's ``k`` by prompt-grouped cross-validation on train prompts only.

    The train prompts (rows; one row per prompt, so folds are prompt-grouped) are split into
    ``cv`` seeded folds. Each fold is predicted by the kNN router fitted on the other folds
    (per model, the mean outcome of the ``k`` nearest prompts; predicted cost: each model's
    mean cost on those folds, as in :func:`knn_router_baseline` with ``cost="mean"``). The
    pooled out-of-fold predictions are swept with the utility strategy against the true
    outcomes and costs, and scored by AIQ (``c_max`` = the largest mean train cost of a
    model). When every model costs the same, AIQ is undefined and the score is the accuracy
    of the most likely model per prompt. The best score wins; ties go to the smaller ``k``.

    Parameters
    ----------
    train_emb : ndarray (n_train, d)
    train_outcomes : ndarray (n_train, n_policies)
    train_costs : ndarray (n_train, n_policies) or (n_policies,)
    ks : sequence of int, default (8, 16, 32, ..., 2048)
        Candidates (powers of two, so the choice is rarely at the edge even for ~20k prompts); each
        is capped at the size of the fitted folds (duplicates dropped).
    cv : int, default 5
    random_state : int, default 0
        Seeds the folds.
    n_knobs : int, default 64
        Points of each candidate's sweep.
    show_progress_bar : bool, default False
        Bars over the folds and the candidates on stderr (:mod:`v0lite._progress`).

    Returns
    -------
    k : int
    scores : dict
        ``{"k": [...], "score": [...], "criterion": "aiq" | "acc", "cv": cv}``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> E = rng.normal(size=(60, 4)); Y = (rng.uniform(size=(60, 2)) < 0.5).astype(float)
    >>> k, scores = tune_knn_router(E, Y, np.array([1.0, 2.0]), ks=(4, 8), cv=3)
    >>> k in (4, 8), scores["criterion"]
    (True, 'aiq')
    """
    tr = _normalise(train_emb)
    Y = np.asarray(train_outcomes, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[0] != tr.shape[0]:
        raise V0liteError(f"train_outcomes must be (n_train={tr.shape[0]}, n_policies), got {Y.shape}.")
    C = np.asarray(train_costs, dtype=np.float64)
    C = np.array(np.broadcast_to(C, Y.shape)) if C.ndim == 1 else C
    if C.shape != Y.shape:
        raise V0liteError(f"train_costs must be (n_policies,) or {Y.shape}, got {C.shape}.")
    n = Y.shape[0]
    folds = int(cv)
    if isinstance(cv, bool) or folds != cv or folds < 2 or folds > n:
        raise V0liteError(f"cv must be an int in [2, n_train={n}], got {cv!r}.")
    fold = prompt_folds(n, folds, random_state)
    n_fit = n - int(np.bincount(fold).max())  # the smallest fitted part
    cands = sorted({int(min(int(k), n_fit)) for k in ks if int(k) >= 1})
    if not cands:
        raise V0liteError(f"ks must hold at least one int >= 1, got {list(ks)!r}.")
    from .._progress import bar

    P = {k: np.empty_like(Y) for k in cands}
    Cpred = np.empty_like(C)
    for f in bar(range(folds), desc="route-eval: tuned kNN, CV folds", unit="fold", enabled=show_progress_bar):
        fit, out = fold != f, fold == f
        means = _knn_prefix_means(tr[out], tr[fit], Y[fit], cands)
        for k in cands:
            P[k][out] = means[min(k, int(fit.sum()))]
        Cpred[out] = C[fit].mean(axis=0)
    mean_costs = C.mean(axis=0)
    c_max = float(mean_costs.max())
    degenerate = float(np.ptp(mean_costs)) <= _cost_tie(mean_costs[None, :]) or c_max <= 0  # ties in any cost unit
    strat, rows, scores = UtilityStrategy(), np.arange(n), []
    for k in bar(cands, desc="route-eval: tuned kNN, scoring each k", unit="k", enabled=show_progress_bar):
        if degenerate:
            scores.append(float(Y[rows, strat.choose(P[k], Cpred, 0.0)].mean()))
        else:
            curve = _sweep(strat, P[k], Cpred, Y, C, n_knobs)
            scores.append(aiq(curve["cost"], curve["acc"], c_max))
    best = max(scores)
    k = cands[next(i for i, v in enumerate(scores) if v >= best - 1e-12)]
    return k, {"k": cands, "score": scores, "criterion": "acc" if degenerate else "aiq", "cv": folds}


def group_router_baseline(train_groups, train_outcomes, train_costs, test_groups) -> tuple[np.ndarray, np.ndarray]:
    """A router that knows only each prompt's group (e.g. its task): per model, the group's mean.

    It is the reference for how much of a router's frontier comes from recognising the task
    alone. A test group absent from train gets each model's mean over all train prompts.

    Parameters
    ----------
    train_groups : array-like of str (n_train,)
    train_outcomes : ndarray (n_train, n_policies)
    train_costs : ndarray (n_train, n_policies) or (n_policies,)
    test_groups : array-like of str (n_test,)

    Returns
    -------
    P, C : ndarray (n_test, n_policies)
        The group's mean outcome and mean cost of every model.

    Examples
    --------
    >>> Y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> P, C = group_router_baseline(["a", "b", "b"], Y, np.array([1.0, 2.0]), ["b", "z"])
    >>> P.tolist()
    [[0.5, 1.0], [0.6666666666666666, 0.6666666666666666]]
    """
    Y = np.asarray(train_outcomes, dtype=np.float64)
    if Y.ndim != 2:
        raise V0liteError(
            f"train_outcomes must be 2-D (n_train, n_policies), got shape {Y.shape}. "
            "Fix: one row per train prompt, one column per policy."
        )
    C = np.asarray(train_costs, dtype=np.float64)
    C = np.array(np.broadcast_to(C, Y.shape)) if C.ndim == 1 else C
    g_tr = np.asarray(train_groups, dtype=object).astype(str)
    g_te = np.asarray(test_groups, dtype=object).astype(str)
    if C.shape != Y.shape or g_tr.shape != (Y.shape[0],):
        raise V0liteError(
            f"train_groups {g_tr.shape}, train_outcomes {Y.shape} and train_costs {C.shape} "
            "must describe the same train prompts. Fix: one group label per train row, and "
            "costs of shape (n_policies,) or like train_outcomes."
        )
    P = np.tile(Y.mean(axis=0), (g_te.shape[0], 1))
    Cp = np.tile(C.mean(axis=0), (g_te.shape[0], 1))
    for g in np.unique(g_tr):
        rows, dst = g_tr == g, g_te == g
        if dst.any():
            P[dst], Cp[dst] = Y[rows].mean(axis=0), C[rows].mean(axis=0)
    return P, Cp


def _within_group_auc(Y: np.ndarray, P: np.ndarray, groups: np.ndarray) -> float | None:
    """Mean over models of the size-weighted AUC of ``P`` inside each group (NaN groups skipped)."""
    from ..metrics import within_policy_auc

    vals = []
    for j in range(Y.shape[1]):
        v = within_policy_auc(Y[:, j], np.clip(P[:, j], 0.0, 1.0), groups)
        if math.isfinite(v):
            vals.append(v)
    return float(np.mean(vals)) if vals else None
