"""Similarity-weighted kNN on difficulty residuals, Beta-smoothed toward the policy prior."""

from __future__ import annotations

import numpy as np

from ..index import policy_prior
from .base import BaseHead

__all__ = ["KNNHead", "knn_estimate"]


def knn_estimate(residuals, sims, valid, prior, *, temperature=0.2, alpha=1.0, relative=False):
    """prior + sum(w * r) / (sum(w) + alpha), w = exp((sim - 1) / temperature).

    ``residuals`` are the neighbours' scores minus their own checkpoint's level, so outcomes
    from older checkpoints still say how hard a prompt is. A neighbour's weight is absolute: an
    exact match (similarity 1) counts as one outcome, and ``alpha`` is the prior's weight in such
    outcomes (Beta-style smoothing). Until 2026-12-07 the weights were relative to the query's
    best neighbour, so a new closer row (an outcome logged for the prompt itself) shrank every
    other neighbour's weight against the prior's, and one logged success lowered the prediction
    it should raise (-0.37 on the demo). Measured on the shared logs, k = 32 (within-model AUC /
    Brier, relative -> absolute): temperature 0.2, RouterBench 0.6503 / 0.1938 -> 0.6495 / 0.1939,
    routerdc 0.5706 / 0.2095 -> 0.5709 / 0.2086, the V0 sample 0.678 / 0.0798 -> 0.713 / 0.0773.
    """
    s = np.minimum(sims.astype(np.float64), 1.0)  # cosines: round-off must not outweigh an exact match
    if relative:  # the weights of a folder saved before 2026-12-07 (KNNHead.load), relative to the best neighbour
        top = np.where(valid, s, -np.inf).max(axis=1, keepdims=True)
        s = s - np.where(np.isfinite(top), top, 0.0) + 1.0
    w = np.exp((s - 1.0) / temperature) * valid
    return prior + (w * residuals).sum(1) / (w.sum(1) + alpha)


def _own_base_shift(index, queries, rows, valid, exclude):
    """Each neighbour's checkpoint level minus that level without the query's own rows (shape of ``rows``;
    0 where they are not in it).

    The rows a query hides (``exclude``) also sit in their checkpoint's level, and through the chain
    (:class:`~v0lite._step_chain.StepChain`) in every later one, which the neighbours there are read
    against: a success among them lowered the prediction (review R: -0.005 under ``"same_step"``, -0.031
    under ``"any_step"``; tests/test_heads.py). Under ``"same_step"`` only the query's own checkpoint holds
    them, so only neighbours there shift. Computed once per distinct (prompt, neighbour step) of each policy.
    """
    out = np.zeros(rows.shape)
    pick = valid & (queries.prompt_row >= 0)[:, None]
    if exclude == "same_step":
        pick &= index.step[np.maximum(rows, 0)] == queries.step[:, None]
    qi, ji = np.nonzero(pick)
    if len(qi) == 0:
        return out
    codes = queries.policy[qi]
    for code in np.unique(codes):
        sel = np.flatnonzero(codes == code)
        q, j = qi[sel], ji[sel]
        pairs = np.stack([queries.prompt_row[q], index.step[rows[q, j]]])
        (prow, step), inv = np.unique(pairs, axis=1, return_inverse=True)
        full = index.checkpoint_level(int(code), step)[0]
        hidden = index.checkpoint_level(int(code), step, (prow, exclude))[0]
        out[q, j] = np.nan_to_num(full - hidden)[inv.ravel()]  # nothing left without them: no neighbour there
    return out


class KNNHead(BaseHead):
    """kNN over the policy's own eligible history.

    Parameters
    ----------
    k : int or "cv", default 32
        Neighbours retrieved. ``"cv"``: ``k`` and ``temperature`` are chosen together at fit
        time by the Brier score of out-of-fold predictions on prompt-grouped folds of the
        history (grid :data:`v0lite.heads._oof.KNN_GRID`); the choice is in ``k_`` and ``temperature_``.
    temperature : float, default 0.2
        Softness of the similarity weights, in cosine units: a neighbour at similarity ``s``
        weighs ``exp((s - 1) / temperature)`` outcomes. Ignored with ``k="cv"``. (0.05 until
        2026-12-07; cross-validation chose 0.2 on all three shared logs.)
    alpha : float, default 1.0
        Strength of the pull toward the policy prior.

    Examples
    --------
    >>> from v0lite import V0Regressor
    >>> model = V0Regressor(head="knn", k=16)  # doctest: +SKIP
    """

    name = "knn"

    def __init__(self, k=32, temperature=0.2, alpha=1.0):
        super().__init__(k=k, temperature=temperature, alpha=alpha)

    def fit(self, index, *, random_state=0, show_progress_bar=False):
        k = self.params["k"]
        if isinstance(k, str):
            from .._folds import prompt_folds
            from ..exceptions import V0liteError
            from ._oof import KNN_GRID, brier_by_config, oof_simple

            if k != "cv":
                raise V0liteError(f"knn head: k must be a positive integer or 'cv', got {k!r}.")
            oof = oof_simple(index, prompt_folds(len(index.keys), 5, random_state + 1), ridge=False)
            if oof["covered"].any():
                self.k_, self.temperature_ = KNN_GRID[
                    int(np.argmin(brier_by_config(oof["knn"], index.score, oof["covered"])))
                ]
            else:  # a single prompt: nothing to cross-validate
                self.k_, self.temperature_ = 32, self.params["temperature"]
        return self

    def save(self, path):
        meta = super().save(path)
        meta["weights"] = getattr(self, "weights_", "absolute")
        if isinstance(self.params["k"], str):
            meta.update(k_=int(self.k_), temperature_=float(self.temperature_))
        return meta

    @classmethod
    def load(cls, path, meta):
        head = cls(**meta.get("params", {}))
        if "k_" in meta:
            head.k_, head.temperature_ = meta["k_"], meta["temperature_"]
        # a folder saved before 2026-12-07 has no "weights": its temperature was chosen (or defaulted, 0.05)
        # for weights relative to the best neighbour, so it keeps them and its residuals' raw checkpoint means
        weights = meta.get("weights", "relative")
        if weights not in ("absolute", "relative"):
            from ..exceptions import FormatVersionError

            raise FormatVersionError(
                f"knn head: weights {weights!r} is not one this version knows ('absolute', 'relative'). "
                "Fix: load it with the v0lite version that saved it, or refit."
            )
        head.weights_ = weights
        return head

    def predict(self, index, queries, *, exclude="same_step"):
        p = dict(self.params)
        if isinstance(p["k"], str):
            p["k"], p["temperature"] = self.k_, self.temperature_
        prior = policy_prior(index, queries, hide=exclude)  # the neighbours hide the same rows
        # no policy has more rows than the index: a larger k only pads with -1 (and k = 10^12 would allocate TiB)
        rows, sims = index.search_queries(queries, max(1, min(int(p["k"]), index.n_rows)), exclude)
        valid = rows >= 0
        relative = getattr(self, "weights_", "absolute") == "relative"
        resid = np.where(valid, index.score[np.where(valid, rows, 0)] - index.row_base(rows, raw=relative), 0.0)
        if exclude in ("same_step", "any_step") and not relative:
            # the rows the query hides also sit in their checkpoints' levels, which its neighbours are read
            # against: read them against the levels without those rows
            resid = resid + _own_base_shift(index, queries, rows, valid, exclude)
        est = knn_estimate(
            resid,
            sims,
            valid,
            np.nan_to_num(prior, nan=0.5),
            temperature=p["temperature"],
            alpha=p["alpha"],
            relative=relative,
        )
        return np.where(np.isnan(prior), np.nan, np.clip(est, 0.0, 1.0))
