"""The training set shared by the learned heads: episode features, labels, context tokens.

Built once per fit from leakage-free episodes (see :mod:`v0lite.episodes`); a validation
mask holds out whole prompts (all their rows, cold and warm) for early stopping and for
the ensemble's out-of-fold stacking and calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._folds import prompt_folds
from ..episodes import make_episodes
from ..features import compute_features

__all__ = ["TrainingSet", "build_training_set", "pad_context", "check_enough_prompts", "MIN_PROMPTS"]

#: distinct prompts a learned head needs: its cold episodes hold prompts out of the context
MIN_PROMPTS = 2


def check_enough_prompts(index, head: str) -> None:
    """Refuse a history with fewer than :data:`MIN_PROMPTS` distinct prompts, naming the head and the fix."""
    from ..exceptions import DataError

    n = len(np.unique(index.prompt_row))
    if n < MIN_PROMPTS:
        raise DataError(
            f"head {head!r}: the history has {n} distinct prompt ({index.n_rows} row(s)); this head learns "
            f"from prompts held out of the context, so it needs at least {MIN_PROMPTS} distinct prompts. "
            "Fix: fit on a log with more distinct prompts, or choose a head that holds none out "
            "(head='knn', 'prior', 'linear' or 'logistic')."
        )


@dataclass
class TrainingSet:
    X: np.ndarray
    names: list
    y: np.ndarray
    prompt_row: np.ndarray
    val: np.ndarray
    ctx: dict | None
    q_emb_row: np.ndarray


def pad_context(ctx: dict, width: int) -> dict:
    """Pad the cross-policy token arrays to ``width`` columns (invalid padding)."""
    out = dict(ctx)
    w = ctx["xp_prompt"].shape[1]
    if w < width:
        m = ctx["xp_prompt"].shape[0]
        for key, fill in (("xp_prompt", 0), ("xp_resid", 0.0), ("xp_sim", 0.0), ("xp_valid", False)):
            pad = np.full((m, width - w), fill, ctx[key].dtype)
            out[key] = np.concatenate([ctx[key], pad], axis=1)
    elif w > width:
        for key in ("xp_prompt", "xp_resid", "xp_sim", "xp_valid"):
            out[key] = ctx[key][:, :width]
    return out


def build_training_set(
    index,
    *,
    n_folds=5,
    max_rows=100000,
    pca=None,
    k=32,
    with_context=False,
    xp_width=33,
    random_state=0,
    show_progress_bar=False,
    head="learned",
) -> TrainingSet:
    """Features (and optionally context tokens) of every query of the training episodes.

    ``head`` names the head in the error raised for a history of fewer than :data:`MIN_PROMPTS` prompts.
    """
    from .._progress import bar, stage

    check_enough_prompts(index, head)

    Xs, ys, prs, ctxs = [], [], [], []
    names = None
    oof_ridge = np.full(index.n_rows, np.nan, np.float32)
    with stage("fit: episodes", enabled=show_progress_bar):
        episodes = make_episodes(index, n_folds=n_folds, warm=True, max_rows=max_rows, random_state=random_state)
    for ep in bar(episodes, desc="fit: features", unit="episode", enabled=show_progress_bar):
        out = compute_features(ep.context, ep.queries, ep.exclude, pca=pca, k=k, return_context=with_context)
        X, names = out[0], out[1]
        j = names.index("ridge_resid")
        if ep.kind == "cold":
            oof_ridge[ep.rows] = X[:, j]
        elif ep.kind == "warm":  # the full-history ridge has seen these very rows: use their out-of-fold values
            X[:, j] = np.where(np.isnan(oof_ridge[ep.rows]), X[:, j], oof_ridge[ep.rows])
        Xs.append(X)
        ys.append(ep.y)
        prs.append(ep.queries.prompt_row)
        if with_context:
            ctxs.append(pad_context(out[2], xp_width))
    prompt_row = np.concatenate(prs)
    val = prompt_folds(len(index.keys), 5, random_state + 1)[prompt_row] == 0
    ctx = None
    if with_context:
        ctx = {key: np.concatenate([c[key] for c in ctxs]) for key in ctxs[0]}
    return TrainingSet(
        np.vstack(Xs),
        names,
        np.concatenate(ys),
        prompt_row,
        val,
        ctx,
        prompt_row,
    )
