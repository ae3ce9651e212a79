"""The router's shrinkage toward a prior from its own log (``Router(shrink=...)``).

Each predicted success is blended with the policy's mean outcome on the ``prior_k`` log prompts
most similar to the prompt (``None``: on all its log prompts). ``shrink="cv"`` chooses the weight
and ``prior_k`` by the out-of-fold Brier score of value-model clones refitted on prompt-grouped
folds of the log, so nothing is tuned on the data routed later.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .._folds import prompt_folds
from ..exceptions import DataError, V0liteError
from ._knn import _knn_mean, _knn_prefix_means
from ._strategies import _float_knob

__all__ = ["fit_shrink", "prior_matrix"]


def _clone(model):
    """An unfitted copy of a value model: ``sklearn.base.clone`` when it has ``get_params``, else a deep copy."""
    if hasattr(model, "get_params"):
        from sklearn.base import clone

        return clone(model)
    import copy

    return copy.deepcopy(model)


def fit_shrink(router, frame, policies):
    """Check ``shrink`` / ``prior_k`` and set ``shrink_``, ``prior_k_`` and the prior's rows on ``router``."""
    router.shrink_, router.prior_k_, router._prior = 0.0, None, {}
    router.__dict__.pop("shrink_scores_", None)
    if router.shrink is None:
        return
    cv_mode = isinstance(router.shrink, str)
    if cv_mode and router.shrink != "cv":
        raise V0liteError(f"shrink must be None, a weight in [0, 1] or 'cv', got {router.shrink!r}.")
    if not cv_mode:
        a = _float_knob("shrink", router.shrink)
        if not 0.0 <= a <= 1.0:
            raise V0liteError(f"shrink must be in [0, 1], got {a}. Fix: pass a weight in [0, 1], 'cv' or None.")
    if router.prior_k is not None and (
        isinstance(router.prior_k, bool) or int(router.prior_k) != router.prior_k or int(router.prior_k) < 1
    ):
        raise V0liteError(f"prior_k must be None or an int >= 1, got {router.prior_k!r}.")
    if frame is None or "score" not in frame.columns:
        raise DataError(
            "shrink needs the log's 'score' column (the prior is each policy's outcomes). "
            "Fix: pass an outcome log with 'score' to fit, or shrink=None."
        )
    per = (
        frame.filter(pl.col("policy").is_in(policies))
        .group_by(["policy", "prompt"], maintain_order=True)
        .agg(pl.col("score").mean())
    )
    if per.height == 0:
        raise DataError("the log has no outcome of the pool's policies. Fix: log outcomes of the pool.")
    texts = per["prompt"].unique(maintain_order=True).to_list()
    row = dict(zip(texts, range(len(texts))))
    emb = router._embed(texts)
    pr_rows = np.fromiter((row[t] for t in per["prompt"].to_list()), np.int64, per.height)
    col = {p: j for j, p in enumerate(policies)}
    pol_idx = np.fromiter((col[p] for p in per["policy"].to_list()), np.int64, per.height)
    y = per["score"].to_numpy().astype(np.float64)
    router._prior = {
        "emb": emb,
        "rows": {j: pr_rows[pol_idx == j] for j in np.unique(pol_idx)},
        "y": {j: y[pol_idx == j] for j in np.unique(pol_idx)},
    }
    if not cv_mode:
        router.shrink_, router.prior_k_ = a, None if router.prior_k is None else int(router.prior_k)
        return
    _choose_shrink(router, frame, per, pr_rows, pol_idx, y, emb, len(texts))


def _choose_shrink(router, frame, per, pr_rows, pol_idx, y, emb, n_prompts):
    """Out-of-fold Brier of every (weight, prior_k); keep the best (ties: the smaller weight)."""
    folds = int(router.cv)
    if folds < 2 or folds > n_prompts:
        raise V0liteError(f"cv must be an int in [2, n_prompts={n_prompts}], got {router.cv!r}.")
    all_prompts = frame["prompt"].unique(maintain_order=True).to_list()
    fold_all = dict(zip(all_prompts, prompt_folds(len(all_prompts), folds, router.random_state)))
    fold_of = np.fromiter(
        (fold_all[t] for t in per["prompt"].unique(maintain_order=True).to_list()), np.int64, n_prompts
    )
    ks = [16, 32, 64, 128, 256, 512] if router.prior_k is None else [int(router.prior_k)]
    grid_k: list[int | None] = [*ks, None]
    weights = np.linspace(0.0, 1.0, 11)
    p_oof = np.full(per.height, np.nan)
    prior_oof = {k: np.full(per.height, np.nan) for k in grid_k}
    row_fold = fold_of[pr_rows]
    frame_fold = np.fromiter((fold_all[t] for t in frame["prompt"].to_list()), np.int64, frame.height)
    from .._progress import bar

    # progress follows the value model's own setting (its refits show their stages too)
    shown = bool(getattr(router.value_model, "show_progress_bar", False))
    for f in bar(range(folds), desc="shrink cv: value-model refits", unit="fold", enabled=shown):
        part = frame.filter(pl.Series(frame_fold != f))  # a held-out prompt is cold for every policy
        X, yy = part.drop("score"), part["score"].to_numpy().astype(np.float64)
        seen = set(part["policy"].unique().to_list())
        ask = np.flatnonzero(
            (row_fold == f) & np.isin(pol_idx, [j for j, p in enumerate(router.policies_) if p in seen])
        )
        if ask.size == 0:
            continue
        model = _clone(router.value_model).fit(X, yy)
        q = per[ask].select("policy", "prompt")
        p_oof[ask] = np.clip(np.asarray(model.predict(q), dtype=np.float64).reshape(-1), 0.0, 1.0)
        for j in np.unique(pol_idx[ask]):
            src = (pol_idx == j) & (row_fold != f)
            dst = ask[pol_idx[ask] == j]
            if not src.any():  # no outcome of j outside the fold: no prior to blend
                continue
            prior_oof[None][dst] = y[src].mean()
            if ks:
                means = _knn_prefix_means(emb[pr_rows[dst]], emb[pr_rows[src]], y[src], ks)
                n_src = int(src.sum())
                for k in ks:
                    prior_oof[k][dst] = means[min(k, n_src)]
    ok = np.isfinite(p_oof) & np.isfinite(prior_oof[None])
    if not ok.any():
        raise DataError("shrink='cv' found no prompt to predict out of fold. Fix: log more prompts per policy.")
    brier = np.array(
        [[float(np.mean(((1 - a) * p_oof[ok] + a * prior_oof[k][ok] - y[ok]) ** 2)) for a in weights] for k in grid_k]
    )
    best = brier.min()
    ki, ai = min(zip(*np.nonzero(brier <= best + 1e-12)), key=lambda t: (t[1], t[0]))
    router.shrink_, router.prior_k_ = float(weights[ai]), grid_k[ki] if ai > 0 else None
    router.shrink_scores_ = {"shrink": weights.tolist(), "prior_k": grid_k, "brier": brier.tolist()}


def prior_matrix(router, prompts: list[str], P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The prior of every prompt x policy pair, and a mask of the policies that have one."""
    prior = P.copy()
    has = np.zeros(P.shape[1], dtype=bool)
    q = None
    for j, rows in router._prior["rows"].items():
        yj = router._prior["y"][j]
        has[j] = True
        if router.prior_k_ is None or router.prior_k_ >= rows.size:
            prior[:, j] = yj.mean()
            continue
        if q is None:
            q = router._embed(prompts)
        prior[:, j] = _knn_mean(q, router._prior["emb"][rows], yj[:, None], router.prior_k_)[:, 0]
    return prior, has
