"""``alloc_sim``: replay a logged RL run and score selection/allocation strategies, no look-ahead.

The log is an outcome log with ``step`` (the visit / checkpoint) and ``n`` (rollouts behind
each score). Rows of the same (policy, prompt, step) are merged first (n-weighted mean);
each merged row is one *visit*.

Protocol
--------
* **Fit cut.** Let ``S`` be the sorted distinct steps. The value model is fitted once on the
  visits whose step is among the first ``max(1, ceil(fit_fraction * len(S)))`` steps, then
  frozen (no refit).
* **Replay.** For every later step ``t`` in order: ``add_history`` with the previous
  step's visits (the ones of the last fit step are already in the fitted context), then
  predict all of step ``t``'s visits in one call (warm) and one call with
  ``exclude_own_prompt=True`` (cold: the prompt's own rows at every step are hidden). Rows of
  step ``t`` are never added before step ``t`` is predicted, so the context is always
  ``step < t``.
* **History baselines** use the same rule: ``last_visit`` is the prompt's most recent
  earlier score, ``mean_last3`` the mean of its last three; a never-seen prompt gets the
  mean score of all visits with step < t.

Reported (averages over evaluated steps unless said otherwise)
--------------------------------------------------------------
``keep_half_mixed_share_<s>``
    Keep the half of step t's prompts with the highest predicted ``P(mixed | n)`` with
    ``n = rollouts_per_prompt`` (ties at random, seeded); the share of kept prompts whose
    recorded score is strictly between 0 and 1. ``<s>`` in warm, cold, random,
    last_visit, mean_last3, oracle (the recorded score itself).
``effective_groups_per_1000_rollouts[_cold|_uniform|_oracle]``
    Budget ``rollouts_per_prompt x prompts`` at each step split by :func:`allocate`
    (``n`` in ``{0} U [n_min, n_max]``, hull method: within one prompt's value of the
    optimum) from the warm (cold, oracle) predictions, or uniform ``rollouts_per_prompt``;
    scored with the recorded score as the true ``p``: ``1000 x sum p_mixed(p_true, n_i) /
    sum n_i``, pooled over all steps. The recorded score is itself an estimate from
    ``n`` rollouts, so the oracle is optimistic (a recorded 0 or 1 is taken as certain).
``baseline_mse_g<g>_{mean,prior,fused}``
    Rollouts ``Binomial(g, p_true)`` (seeded) per prompt; the MSE against ``p_true`` of the
    group mean, of the warm V0 prediction and of :func:`fuse_baseline`. The prior strength
    (``"auto"``) is fitted by empirical Bayes (:func:`fit_prior_strength`) on the warm
    predictions and recorded outcomes of the steps evaluated *before* t (at most the last
    10,000 visits), ``default_prior_strength`` at the first evaluated step; reported as
    ``prior_strength_mean``.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from typing import Any

import numpy as np
import polars as pl

from .allocate import (
    PMixedSelector,
    RandomSelector,
    _n_keep,
    _rng,
    allocate,
    fit_prior_strength,
    fuse_baseline,
    p_mixed,
)
from .exceptions import DataError, V0liteError, V0liteWarning
from .log import validate_log

__all__ = ["alloc_sim"]

_KEYS = ("policy", "prompt", "step")
_SHARE_NAMES = ("warm", "cold", "random", "last_visit", "mean_last3", "oracle")
_EB_WINDOW = 10_000


def _visits(df: pl.DataFrame, default_n: int) -> pl.DataFrame:
    """One row per (policy, prompt, step), n-weighted, with leakage-free history baselines."""
    if "n" not in df.columns:
        df = df.with_columns(pl.lit(default_n, dtype=pl.Int64).alias("n"))
    v = (
        df.group_by(_KEYS, maintain_order=True)
        .agg(((pl.col("score") * pl.col("n")).sum() / pl.col("n").sum()).alias("score"), pl.col("n").sum())
        .sort(["policy", "prompt", "step"])
        .with_columns(
            pl.col("score").shift(1).over(["policy", "prompt"]).alias("last_visit"),
            pl.col("score")
            .shift(1)
            .rolling_mean(window_size=3, min_samples=1)
            .over(["policy", "prompt"])
            .alias("mean_last3"),
        )
    )
    # mean score of all visits at earlier steps, for prompts never seen before
    per_step = v.group_by("step").agg(pl.col("score").sum().alias("_s"), pl.len().alias("_c")).sort("step")
    cs = per_step["_s"].cum_sum().shift(1)
    cc = per_step["_c"].cum_sum().shift(1)
    per_step = per_step.with_columns((cs / cc).alias("_prev_mean")).select("step", "_prev_mean")
    v = v.join(per_step, on="step", how="left")
    fill = pl.col("_prev_mean").fill_null(pl.col("score").mean())  # first step: no history at all
    return v.with_columns(pl.col("last_visit").fill_null(fill), pl.col("mean_last3").fill_null(fill)).drop("_prev_mean").sort(
        ["step", "policy", "prompt"]
    )


def _accepts_exclude(model: Any) -> bool:
    try:
        params = inspect.signature(model.predict).parameters
    except (TypeError, ValueError):
        return False
    return "exclude_own_prompt" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _predict(model: Any, X: pl.DataFrame, **kw) -> np.ndarray:
    p = np.asarray(model.predict(X, **kw), dtype=np.float64).ravel()
    if p.shape != (X.height,):
        raise V0liteError(f"value_model.predict returned shape {p.shape}, expected ({X.height},).")
    return np.clip(np.nan_to_num(p, nan=0.5), 0.0, 1.0)


def alloc_sim(
    log: Any,
    *,
    value_model: Any = None,
    head: str | None = None,
    fit_fraction: float = 0.1,
    rollouts_per_prompt: int = 8,
    group_sizes: tuple = (2, 4),
    n_min: int = 2,
    n_max: int = 16,
    prior_strength: Any = "auto",
    default_prior_strength: float = 4.0,
    random_state: Any = 0,
    show_progress_bar: bool = False,
) -> dict:
    """Replay an RL outcome log step by step and score prompt selection and allocation.

    See the module docstring for the exact protocol and every reported key.

    Parameters
    ----------
    log : path, polars/pandas DataFrame or dict
        Outcome log with ``policy``, ``prompt``, ``score``, ``step`` and optionally ``n``
        (``rollouts_per_prompt`` when absent).
    value_model : object, optional
        ``fit(X, y)``, ``predict(X[, exclude_own_prompt=True])``, ``add_history(X, y)``.
        Fitted in place. Default ``v0lite.estimator.V0Regressor()`` (imported lazily).
    head : str, optional
        Head of the default ``V0Regressor`` (e.g. ``"knn"``); not with ``value_model``.
    fit_fraction : float in (0, 1), default 0.1
        Share of the distinct steps (the earliest, rounded up, at least one) to fit on.
    rollouts_per_prompt : int, default 8
        ``n`` of ``P(mixed | n)`` and the per-prompt budget of the allocation.
    group_sizes : tuple of int, default (2, 4)
        Group sizes of the baseline-MSE experiment.
    n_min, n_max : int, default 2 and 16
        Allowed group sizes of the allocation (``{0} U [n_min, n_max]``).
    prior_strength : float or "auto", default "auto"
    default_prior_strength : float, default 4.0
    random_state : int or None, default 0
    show_progress_bar : bool, default False

    Returns
    -------
    dict
        Scores (floats; NaN where not computable, e.g. cold without
        ``exclude_own_prompt`` support), ``n_steps_evaluated``, ``fit_steps``,
        ``fit_cut_step``, ``n_visits_evaluated`` and timings in seconds.

    Examples
    --------
    >>> res = alloc_sim("history.jsonl", head="knn")  # doctest: +SKIP
    >>> res["keep_half_mixed_share_warm"] > res["keep_half_mixed_share_random"]  # doctest: +SKIP
    True
    """
    t_start = time.perf_counter()
    if not 0 < fit_fraction < 1:
        raise V0liteError(f"fit_fraction must be in (0, 1), got {fit_fraction}.")
    if value_model is not None and head is not None:
        raise V0liteError("pass either value_model or head (the head of the default V0Regressor), not both.")
    df = validate_log(log)
    if "step" not in df.columns:
        raise DataError(
            f"alloc-sim needs a 'step' column (columns present: {df.columns}). "
            "Fix: add the training step / visit index of each row."
        )
    visits = _visits(df, rollouts_per_prompt)
    steps = np.unique(visits["step"].to_numpy())
    n_fit = max(1, math.ceil(fit_fraction * steps.size))
    if n_fit >= steps.size:
        raise DataError(
            f"the log has {steps.size} distinct steps; fitting on {n_fit} leaves none to replay. "
            "Fix: lower fit_fraction or pass a log with more steps."
        )
    if value_model is None:
        from .estimator import V0Regressor

        value_model = V0Regressor(head=head) if head is not None else V0Regressor()
    by_step = {int(g["step"][0]): g for g in visits.partition_by("step", maintain_order=True)}
    cut = int(steps[n_fit - 1])

    t0 = time.perf_counter()
    fit_rows = visits.filter(pl.col("step") <= cut)
    value_model.fit(fit_rows.select(*_KEYS, "n"), fit_rows["score"].to_numpy())
    seconds_fit = time.perf_counter() - t0

    cold_ok = _accepts_exclude(value_model)
    if not cold_ok:
        warnings.warn(
            "value_model.predict has no 'exclude_own_prompt' keyword: cold scores are NaN.",
            V0liteWarning,
            stacklevel=2,
        )
    rng = _rng(random_state)
    sel_mixed = PMixedSelector(rollouts_per_prompt)
    shares = {k: [] for k in _SHARE_NAMES}
    eff = {k: [0.0, 0] for k in ("warm", "cold", "uniform", "oracle")}  # [expected groups, rollouts]
    mse = {(g, k): [] for g in group_sizes for k in ("mean", "prior", "fused")}
    strengths: list[float] = []
    eb_prior: list[np.ndarray] = []
    eb_s: list[np.ndarray] = []
    eb_n: list[np.ndarray] = []
    seconds_predict = 0.0
    n_evaluated = 0

    eval_steps = [int(s) for s in steps[n_fit:]]
    iterator = eval_steps
    if show_progress_bar:
        from tqdm.auto import tqdm

        iterator = tqdm(eval_steps, desc="alloc-sim")
    prev = cut
    for t in iterator:
        if prev != cut:  # the last fit step is already the fitted context
            rows = by_step[prev]
            value_model.add_history(rows.select(*_KEYS, "n"), rows["score"].to_numpy())
        prev = t
        cur = by_step[t]
        X = cur.select(*_KEYS)
        t0 = time.perf_counter()
        warm = _predict(value_model, X)
        cold = _predict(value_model, X, exclude_own_prompt=True) if cold_ok else None
        seconds_predict += time.perf_counter() - t0

        true = cur["score"].to_numpy()
        n_obs = cur["n"].to_numpy()
        mixed = (true > 0) & (true < 1)
        k = true.size
        m = _n_keep(k, 0.5)
        n_evaluated += k
        preds = {
            "warm": warm,
            "cold": cold,
            "last_visit": cur["last_visit"].to_numpy(),
            "mean_last3": cur["mean_last3"].to_numpy(),
            "oracle": true,
        }
        for name, pred in preds.items():
            if pred is None:
                shares[name].append(np.nan)
            else:
                shares[name].append(float(mixed[sel_mixed.select(pred, m, random_state=rng)].mean()))
        shares["random"].append(float(mixed[RandomSelector().select(true, m, random_state=rng)].mean()))

        budget = rollouts_per_prompt * k
        for name, pred in (("warm", warm), ("cold", cold), ("oracle", true)):
            if pred is None:
                continue
            n_i = allocate(pred, budget, n_min, n_max, "p_mixed", method="hull")
            eff[name][0] += float(p_mixed(true, n_i).sum())
            eff[name][1] += int(n_i.sum())
        eff["uniform"][0] += float(p_mixed(true, rollouts_per_prompt).sum())
        eff["uniform"][1] += budget

        if prior_strength == "auto":
            a = (
                fit_prior_strength(np.concatenate(eb_prior), np.concatenate(eb_s), np.concatenate(eb_n))
                if eb_prior
                else float(default_prior_strength)
            )
        else:
            a = float(prior_strength)
        strengths.append(a)
        for g in group_sizes:
            s = rng.binomial(int(g), true)
            gm = s / g
            fused = fuse_baseline(warm, gm, g, a)
            mse[(g, "mean")].append(float(np.mean((gm - true) ** 2)))
            mse[(g, "prior")].append(float(np.mean((warm - true) ** 2)))
            mse[(g, "fused")].append(float(np.mean((fused - true) ** 2)))
        eb_prior.append(warm)
        eb_s.append(np.round(true * n_obs))
        eb_n.append(n_obs.astype(np.float64))
        while sum(x.size for x in eb_prior) - eb_prior[0].size >= _EB_WINDOW:
            eb_prior.pop(0), eb_s.pop(0), eb_n.pop(0)

    out: dict[str, Any] = {}
    for name in _SHARE_NAMES:
        vals = np.asarray(shares[name], dtype=np.float64)
        out[f"keep_half_mixed_share_{name}"] = float(np.mean(vals)) if np.isfinite(vals).all() else float("nan")
    for name, key in (
        ("warm", "effective_groups_per_1000_rollouts"),
        ("cold", "effective_groups_per_1000_rollouts_cold"),
        ("uniform", "effective_groups_per_1000_rollouts_uniform"),
        ("oracle", "effective_groups_per_1000_rollouts_oracle"),
    ):
        groups, spent = eff[name]
        out[key] = 1000.0 * groups / spent if spent else float("nan")
    for (g, kind), vals in mse.items():
        out[f"baseline_mse_g{g}_{kind}"] = float(np.mean(vals))
    out["prior_strength_mean"] = float(np.mean(strengths))
    out["n_steps_evaluated"] = len(eval_steps)
    out["fit_steps"] = int(n_fit)
    out["fit_cut_step"] = cut
    out["n_visits_evaluated"] = int(n_evaluated)
    out["n_visits_fit"] = int(fit_rows.height)
    out["rollouts_per_prompt"] = int(rollouts_per_prompt)
    out["seconds_fit"] = seconds_fit
    out["seconds_predict"] = seconds_predict
    out["seconds_total"] = time.perf_counter() - t_start
    return out
