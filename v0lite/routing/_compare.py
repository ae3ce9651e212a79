"""Per-task accuracy of a router's top choice, and the baseline routers beside the chosen value model.

Definitions (``Y`` = true outcomes, one row per complete test prompt, one column per policy):

* **top choice**: the router's max-quality operating point, RouterDC's protocol: per prompt
  the policy with the highest predicted success, whatever it costs (the utility strategy at
  ``lam = 0``; ties go to the higher p, then the cheaper policy).
* **task_acc[t]**: the mean true outcome of the top choice over the test prompts of task ``t``.
* **mean_task_acc**: the unweighted mean of ``task_acc`` over the tasks of the test log, so a
  small task counts as much as a big one (RouterDC's headline, Chen et al. 2024).
* **baselines** (:data:`v0lite.baselines.BASELINES`): the prompt-blind prior, the tuned kNN
  router (k by CV on train), per-policy logistic regression and pooled ridge. Each one's
  predicted success goes through the chosen router's cost predictions and strategy, so a
  difference is a difference in p only. The chosen router's lead over each is given with a
  paired bootstrap 95% interval over test prompts (:func:`v0lite.metrics.paired_bootstrap`).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import polars as pl

from ._frontier import aiq, knob_choices
from ._strategies import UtilityStrategy

__all__ = ["top_choice", "task_accuracy", "knob_tables", "route_baselines", "ROUTE_METRICS"]

ROUTE_METRICS = ("aiq", "max_acc", "mean_task_acc")


def top_choice(P: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Index of the most likely policy per prompt (ties: higher p, then cheaper).

    Examples
    --------
    >>> top_choice(np.array([[0.2, 0.9], [0.5, 0.5]]), np.array([[1.0, 2.0], [2.0, 1.0]])).tolist()
    [1, 1]
    """
    return UtilityStrategy().choose(P, C, 0.0)


def task_accuracy(Y: np.ndarray, idx: np.ndarray, tasks: np.ndarray) -> tuple[float, dict[str, float]]:
    """``(mean_task_acc, task_acc)`` of the choices ``idx`` (see the module docstring).

    Examples
    --------
    >>> Y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> task_accuracy(Y, np.array([0, 0, 1]), np.array(["a", "a", "b"]))
    (0.75, {'a': 0.5, 'b': 1.0})
    """
    got = np.asarray(Y, dtype=np.float64)[np.arange(len(idx)), idx]
    names, codes = np.unique(np.asarray(tasks).astype(str), return_inverse=True)
    acc = np.bincount(codes, weights=got) / np.bincount(codes)
    per = {str(n): float(a) for n, a in zip(names, acc)}
    return float(acc.mean()), per


def knob_tables(strategy, P, Cpred, Y, Ctrue, n_knobs: int, idx=None) -> tuple[np.ndarray, np.ndarray]:
    """Per knob of the strategy's grid, each prompt's true outcome and cost of the chosen policy.

    A prompt's choice at a knob does not depend on the other prompts, so a resample's curve is
    the column means of these ``(n_knobs, n_prompts)`` tables over the resampled prompts.
    ``idx``: those choices (:func:`knob_choices`), if already made.
    """
    if idx is None:
        _, idx = knob_choices(strategy, P, Cpred, n_knobs)
    rows = np.arange(Y.shape[0])
    return Y[rows, idx], Ctrue[rows, idx]


class _Scored:
    """One router's tables for the bootstrap: knob tables, top-choice outcomes; and its choices (``idx``: per
    knob, each prompt's policy column; ``top_idx``: each prompt's top choice)."""

    def __init__(self, strategy, P, Cpred, Y, Ctrue, n_knobs):
        _, self.idx = knob_choices(strategy, P, Cpred, n_knobs)
        self.A, self.C = knob_tables(strategy, P, Cpred, Y, Ctrue, n_knobs, idx=self.idx)
        self.top_idx = top_choice(P, Cpred)
        self.top = Y[np.arange(Y.shape[0]), self.top_idx]

    def chosen_n(self, j: int) -> int:
        """On how many prompts policy column ``j`` is chosen, at one knob of the sweep or as the top choice."""
        return int(((self.idx == j).any(axis=0) | (self.top_idx == j)).sum())


def _metric_fn(metric: str, c_max: float | None, tasks: np.ndarray | None):
    """``(scored, rows) -> float`` of ``metric`` (``aiq``, ``max_acc``, ``mean_task_acc`` over ``tasks`` labels)."""
    task_codes = np.unique(np.asarray(tasks).astype(str), return_inverse=True)[1] if tasks is not None else None

    def fn(s: _Scored, rows: np.ndarray) -> float:
        if metric == "aiq":
            return aiq(s.C[:, rows].mean(axis=1), s.A[:, rows].mean(axis=1), c_max)
        if metric == "max_acc":
            return float(s.A[:, rows].mean(axis=1).max())
        t = task_codes[rows]
        cnt = np.bincount(t)
        ok = cnt > 0
        return float((np.bincount(t, weights=s.top[rows])[ok] / cnt[ok]).mean())

    return fn


def _value_matrix(model, prompts: list[str], policies: list[str]) -> np.ndarray:
    n, m = len(prompts), len(policies)
    X = pl.DataFrame(
        {
            "policy": np.tile(np.asarray(policies, dtype=object), n).tolist(),
            "prompt": np.repeat(np.asarray(prompts, dtype=object), m).tolist(),
        }
    )
    return np.clip(np.asarray(model.predict(X), dtype=np.float64).reshape(n, m), 0.0, 1.0)


def _within_policy(Y: np.ndarray, P: np.ndarray) -> float | None:
    from ..metrics import within_policy_auc

    v = within_policy_auc(Y.reshape(-1), np.clip(P, 0.0, 1.0).reshape(-1), np.tile(np.arange(Y.shape[1]), Y.shape[0]))
    return float(v) if math.isfinite(v) else None


def route_baselines(
    train: pl.DataFrame,
    te_prompts: list[str],
    policies: list[str],
    *,
    strategy,
    P,
    Cpred,
    Y,
    Ctrue,
    n_knobs: int,
    c_max: float | None,
    tasks: np.ndarray | None,
    knn_P=None,
    knn_params: dict | None = None,
    model_kwargs: dict | None = None,
    random_state: int = 0,
    n_boot: int = 1000,
    within_task: Callable | None = None,
    log: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Score every available baseline router and the chosen router's lead over each.

    Parameters
    ----------
    train : polars.DataFrame
        The train log the baselines' value models are fitted on.
    te_prompts, policies : list of str
        Rows and columns of ``P``, ``Cpred``, ``Y``, ``Ctrue``.
    strategy : routing strategy
        The chosen router's; every baseline is swept with it and with ``Cpred``.
    P, Cpred, Y, Ctrue : ndarray (n_test, n_policies)
        The chosen router's predicted success and cost, the true outcomes and costs.
    n_knobs : int
    c_max : float or None
        The AIQ cost axis; None when costs are degenerate (AIQ undefined).
    tasks : ndarray of str or None
        Each test prompt's task: gives ``mean_task_acc`` and ``task_acc``.
    knn_P : ndarray, optional
        The tuned kNN router's predicted success (``route_eval`` has already fitted it);
        without it the ``knn`` row is skipped.
    knn_params : dict, optional
        Its parameters (``k`` and the CV scores), reported as they are.
    model_kwargs : dict, optional
        Extra :class:`~v0lite.estimator.V0Regressor` parameters of the baselines' value models
        (``encoder``, ``cache_dir``), so they read the chosen model's prompt vectors.
    random_state, n_boot
        The baselines' seed and the bootstrap's; bootstrap resamples.
    within_task : callable ``(P) -> float``, optional
        The within-task AUC of a prediction matrix.
    log : callable, optional
        One progress line per baseline.

    Returns
    -------
    dict
        ``label -> {head, params, aiq, max_acc, [mean_task_acc, task_acc], within_policy_auc,
        ranks_within, within_task_auc, fit_s, diff, loses, chance}`` where ``diff[metric]`` is the chosen
        router minus the baseline with its 95% interval, for ``aiq`` (when defined) or
        ``max_acc`` (when not), and ``mean_task_acc`` (with tasks).
    """
    from ..baselines import available_baselines, flags, ranks_within
    from ..estimator import V0Regressor
    from ..metrics import paired_bootstrap

    say = log or (lambda _m: None)
    rows = available_baselines(say)
    metrics = ["aiq" if c_max is not None else "max_acc"] + (["mean_task_acc"] if tasks is not None else [])
    mats: dict[str, np.ndarray] = {}
    out: dict[str, dict] = {}
    for i, (label, head, params) in enumerate(rows, 1):
        t0 = time.perf_counter()
        if head == "knn":
            if knn_P is None:
                say(f"baseline {label!r} skipped: the tuned kNN router was not fitted")
                continue
            say(
                f"baseline {i}/{len(rows)}: {label} (the tuned kNN router's success predictions, "
                f"k={(knn_params or {}).get('k')} by CV, with this router's cost predictions)"
            )
            Pb, info = knn_P, {"head": "knn router (RouterBench)", "params": dict(knn_params or {})}
        else:
            say(f"baseline {i}/{len(rows)}: {label} (head {head}) ...")
            kw = dict(model_kwargs or {}, **({"head_params": dict(params)} if params else {}))
            model = V0Regressor(head=head, random_state=random_state, **kw)
            model.fit(train.select([c for c in ("policy", "prompt", "score", "step", "n") if c in train.columns]))
            Pb, info = _value_matrix(model, te_prompts, policies), {"head": head, "params": dict(params)}
        mats[label] = Pb
        s = _Scored(strategy, Pb, Cpred, Y, Ctrue, n_knobs)
        every = np.arange(Y.shape[0])
        r = {
            **info,
            "aiq": None if c_max is None else _metric_fn("aiq", c_max, None)(s, every),
            "max_acc": _metric_fn("max_acc", c_max, None)(s, every),
        }
        if tasks is not None:
            r["mean_task_acc"], r["task_acc"] = task_accuracy(Y, top_choice(Pb, Cpred), tasks)
        r["within_policy_auc"] = _within_policy(Y, Pb)
        r["ranks_within"] = ranks_within(np.tile(np.arange(Pb.shape[1]), Pb.shape[0]), np.clip(Pb, 0.0, 1.0))
        r["within_task_auc"] = within_task(Pb) if within_task is not None else None
        r["fit_s"] = time.perf_counter() - t0
        out[label] = r
        say(
            f"  {label}: "
            + ", ".join(f"{k} {r[k]:.4f}" for k in (*metrics, "within_policy_auc") if r.get(k) is not None)
        )
    if not out:
        return out
    chosen = _Scored(strategy, P, Cpred, Y, Ctrue, n_knobs)
    refs = {label: _Scored(strategy, mats[label], Cpred, Y, Ctrue, n_knobs) for label in out}
    for metric in metrics:
        diffs = paired_bootstrap(
            _metric_fn(metric, c_max, tasks),
            chosen,
            refs,
            n_rows=Y.shape[0],
            n_boot=n_boot,
            random_state=random_state,
        )
        for label, d in diffs.items():
            out[label].setdefault("diff", {})[metric] = d
    for r in out.values():
        r.update(flags(r["diff"], r["within_policy_auc"], {m: 1 for m in metrics}, r["ranks_within"]))
    return out
