"""The first-epoch scenario of ``alloc-sim``: each prompt's first visit predicted from other prompts only.

Before a prompt's first rollout nothing of its own is known: a value model is the only
information there is (the first epoch of a run, or a new dataset). At the log's first step
``s0`` the prompts are split into ``folds`` groups at random (seeded); for each group a fresh
value model is fitted on the other groups' ``s0`` visits and predicts the group's ``s0``
visits, so a prompt's own rows are never in the fit nor in the context of its own
prediction. The value model reads merged visits (one row per (policy, prompt, step)), as in the
replay; selection is scored per group (a row of the log: a 0/8 and an 8/8 group of one visit are
two unmixed groups), each group taking its visit's prediction. Groups are ranked by
``P(mixed | n)`` at the point prediction (no earlier outcome exists to fit a belief's strength on).
The figures are those of :mod:`v0lite.rl._baselines`; with ``folds`` groups,
``(folds - 1) / folds`` of the other prompts' first visits are known, the generous end of a
real first epoch, where a batch sees only the batches before it.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import polars as pl

from ..exceptions import DataError, ParameterError
from ._allocate import PMixedSelector, RandomSelector
from ._baselines import SelectionTally, strategy_entry
from ._common import _n_keep, _rng, _whole, checked_pass_rates

__all__ = ["first_epoch", "model_factory"]

_KEYS = ("policy", "prompt", "step")


def model_factory(value_model: Any) -> Callable[[], Any] | None:
    """A function returning fresh unfitted copies of ``value_model`` (scikit-learn ``clone``), or None."""
    if not hasattr(value_model, "get_params"):
        return None
    from sklearn.base import clone

    return lambda: clone(value_model)


def first_epoch(
    visits: pl.DataFrame,
    make_model: Callable[[], Any],
    *,
    groups: pl.DataFrame | None = None,
    folds: int = 5,
    rollouts_per_prompt: int = 8,
    random_state: Any = 0,
) -> dict:
    """Score selection on the first step's visits, each predicted with its own prompt never seen.

    Parameters
    ----------
    visits : polars.DataFrame
        One row per (policy, prompt, step) with ``score`` and ``n`` (merged visits): what the value
        model is fitted on and predicts.
    make_model : callable
        Returns a fresh value model with ``fit(X, y)`` and ``predict(X)``.
    groups : polars.DataFrame, optional
        The groups selection is scored on: one row per group with ``policy``, ``prompt``, ``step``,
        ``score`` and ``n``, several per visit allowed (each gets its visit's prediction; a visit
        with no group there is not scored). Default: ``visits`` (one group per visit).
    folds : int, default 5
        Number of prompt groups (at least 2).
    rollouts_per_prompt : int, default 8
    random_state : int or None, default 0

    Returns
    -------
    dict
        ``step``, ``folds``, ``n_visits`` (merged visits predicted), ``n_groups`` (groups scored),
        ``n_prompts`` and ``strategies`` (``v0_first_epoch``,
        ``random``, ``dynamic_sampling``; figures as in ``alloc_sim``'s ``strategies``).

    Examples
    --------
    >>> res = first_epoch(visits, lambda: V0Regressor(head="knn"))  # doctest: +SKIP
    >>> res["strategies"]["v0_first_epoch"]["rollouts_per_mixed_group"]  # doctest: +SKIP
    """
    if not _whole(folds) or folds < 2:
        raise ParameterError(
            f"first_epoch needs folds >= 2 (prompt groups, each predicted from the others), got {folds!r}. "
            "Fix: folds=5 (the default)."
        )
    rng = _rng(random_state)
    n = int(rollouts_per_prompt)
    s0 = visits["step"].min()
    rows = visits.filter(pl.col("step") == s0)
    prompts = rows["prompt"].unique(maintain_order=True).to_list()
    k_folds = min(int(folds), len(prompts))
    if k_folds < 2:
        raise DataError(
            f"the first-epoch scenario needs 2 or more distinct prompts at the log's first step {s0}, found "
            f"{len(prompts)}. Fix: pass first_epoch_folds=0 to skip it, or a log with more prompts at its first step."
        )
    group = dict(zip(prompts, rng.permutation(len(prompts)) % k_folds))
    g = np.array([group[q] for q in rows["prompt"].to_list()])
    p = np.full(rows.height, np.nan)
    for f in range(k_folds):
        train, test = rows.filter(pl.Series(g != f)), rows.filter(pl.Series(g == f))
        model = make_model()
        model.fit(train.select(*_KEYS, "n"), train["score"].to_numpy())
        X = test.select(*_KEYS)
        p[g == f] = checked_pass_rates(
            np.asarray(model.predict(X), dtype=np.float64).ravel(),
            X.height,
            model,
            lambda i, X=X: f"prompt {str(X['prompt'][i])[:40]!r} at step {X['step'][i]} (first-epoch scenario)",
        )
    if groups is not None:  # each group scored with its visit's prediction, in the groups' order
        pred = rows.select(*_KEYS).with_columns(pl.Series("_p", p))
        rows = groups.filter(pl.col("step") == s0).join(pred, on=list(_KEYS), how="inner", maintain_order="left")
        p = rows["_p"].to_numpy()
    true = rows["score"].to_numpy()
    mixed = (true > 0) & (true < 1)
    m = _n_keep(true.size, 0.5)
    tallies = {name: SelectionTally() for name in ("v0_first_epoch", "random", "dynamic_sampling")}
    for name, kept in (
        ("v0_first_epoch", PMixedSelector(n).select(p, m, random_state=rng)),
        ("random", RandomSelector().select(true, m, random_state=rng)),
    ):
        mask = np.zeros(true.size, dtype=bool)
        mask[kept] = True
        tallies[name].add(mask, mixed, n)
    tallies["dynamic_sampling"].add(np.ones(true.size, dtype=bool), mixed, n)
    dyn = tallies["dynamic_sampling"].figures()["rollouts_per_mixed_group"]
    labels = {
        "v0_first_epoch": "V0, own prompt never seen (cross-fitted by prompt)",
        "random": "random half",
        "dynamic_sampling": "DAPO dynamic sampling: roll out all, drop unmixed",
    }
    return {
        "step": int(s0),
        "folds": k_folds,
        "n_visits": len(g),
        "n_groups": int(rows.height),
        "n_prompts": len(prompts),
        "strategies": {name: strategy_entry(t, labels[name], True, dyn) for name, t in tallies.items()},
    }
