"""The pooled linear baseline: ridge on the prompt embedding with a policy indicator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..index import policy_prior
from .base import BaseHead

__all__ = ["LinearHead"]


class LinearHead(BaseHead):
    """Ridge regression pooled over every policy's history.

    ``p = prior(policy, step) + emb @ w``: the policy indicator is the per-(policy, checkpoint)
    intercept, so ``w`` is fitted on difficulty residuals (score minus the row's checkpoint
    mean) shared by all policies. A new policy only needs its prior, from ``add_history``.

    Parameters
    ----------
    alpha : float, default 0.03
        Ridge penalty per row (the penalty is ``alpha * n_rows``).

    Examples
    --------
    >>> from v0lite import V0Regressor
    >>> model = V0Regressor(head="linear")  # doctest: +SKIP
    """

    name = "linear"

    def __init__(self, alpha=0.03):
        super().__init__(alpha=alpha)

    def fit(self, index, *, random_state=0, show_progress_bar=False):
        self.raw_base_ = False  # residuals against each checkpoint's shrunk level (index.row_base)
        r = index.score - index.row_base(np.arange(index.n_rows))
        lam = self.params["alpha"] * max(len(r), 1)
        # per-prompt count and residual sum of the fitted rows: the Gram matrix over distinct prompts
        # (the same sums as over rows, a policies-times smaller product in a routing log); a cold
        # query is predicted as if its own prompt had been left out (Sherman-Morrison, features.ridge_predict)
        self.prompt_count_ = np.bincount(index.prompt_row, None, len(index.keys)).astype(np.float64)
        self.prompt_sum_ = np.bincount(index.prompt_row, r, len(index.keys))
        seen = np.flatnonzero(self.prompt_count_ > 0)
        X = index.emb[seen].astype(np.float64)
        self.a_inv_ = np.linalg.inv(X.T @ (X * self.prompt_count_[seen, None]) + lam * np.eye(X.shape[1]))
        self.coef_ = self.a_inv_ @ (X.T @ self.prompt_sum_[seen])
        return self

    def _own_fitted(self, index):
        """Sorted (policy, prompt, step) keys of the fitted rows, with their counts and residual sums.

        The fitted rows are the index's first ``prompt_count_.sum()`` rows (``add_history`` appends,
        save and load keep the order); their residuals are recomputed against those rows' own
        checkpoint means, as at fit. Built once per head.
        """
        cache = getattr(self, "_own_cache", None)
        n_fit = int(round(float(self.prompt_count_.sum())))
        if cache is not None and cache[0] == n_fit:
            return cache[1]
        from ..index import HistoryIndex

        rows = np.arange(min(n_fit, index.n_rows))
        fit_index = HistoryIndex(
            index.emb, index.keys, index.policies, index.policy[rows], index.prompt_row[rows], index.score[rows],
            index.step[rows],
        )  # fmt: skip
        r = fit_index.score - fit_index.row_base(rows, raw=getattr(self, "raw_base_", False))  # as at fit
        ustep = np.unique(fit_index.step)
        n_p = len(self.prompt_count_)  # the fitted prompts: later ones have no fitted row
        key = (fit_index.policy.astype(np.int64) * n_p + fit_index.prompt_row) * len(ustep)
        key = key + np.searchsorted(ustep, fit_index.step)
        ukey, inv = np.unique(key, return_inverse=True)
        out = (ustep, ukey, np.bincount(inv, None, len(ukey)).astype(np.float64), np.bincount(inv, r, len(ukey)))
        self._own_cache = (n_fit, out)
        return out

    def _same_step_rows(self, index, queries):
        """(count, residual sum) of each query's own (policy, prompt, step) rows among the fitted rows."""
        ustep, ukey, cnt, rsum = self._own_fitted(index)
        m = len(queries)
        if not len(ukey):
            return np.zeros(m), np.zeros(m)
        rank = np.searchsorted(ustep, queries.step)
        rank_c = np.minimum(rank, len(ustep) - 1)
        pr = queries.prompt_row
        n_p = len(self.prompt_count_)
        fitted = (pr >= 0) & (pr < n_p) & (queries.policy >= 0)
        key = (queries.policy.astype(np.int64) * n_p + np.where(fitted, pr, 0)) * len(ustep) + rank_c
        pos = np.minimum(np.searchsorted(ukey, key), len(ukey) - 1)
        hit = (ukey[pos] == key) & (ustep[rank_c] == queries.step) & fitted
        return np.where(hit, cnt[pos], 0.0), np.where(hit, rsum[pos], 0.0)

    def predict(self, index, queries, *, exclude="same_step"):
        x = queries.emb.astype(np.float64)
        pred = x @ self.coef_
        c = s = None
        if exclude == "any_step":  # every fitted row of the prompt, all policies
            pr = queries.prompt_row
            known = (pr >= 0) & (pr < len(self.prompt_count_))
            prc = np.where(known, pr, 0)
            c = np.where(known, self.prompt_count_[prc], 0.0)
            s = np.where(known, self.prompt_sum_[prc], 0.0)
        elif exclude == "same_step":  # the query's own (policy, prompt, step) rows: the step rule
            c, s = self._same_step_rows(index, queries)
        if c is not None and (c > 0).any():
            # leave those rows out of the ridge (Sherman-Morrison, as features.ridge_predict)
            h = np.einsum("ij,jk,ik->i", x, self.a_inv_, x)
            pred = np.where(c > 0, (pred - h * s) / np.maximum(1 - c * h, 1e-6), pred)
        return np.clip(policy_prior(index, queries, hide=exclude) + pred, 0.0, 1.0)

    def save(self, path: Path) -> dict:
        from .._io import save_arrays

        save_arrays(
            Path(path) / "linear.safetensors",
            {
                "coef": self.coef_,
                "a_inv": self.a_inv_,
                "prompt_count": self.prompt_count_,
                "prompt_sum": self.prompt_sum_,
            },
        )
        return {"params": self.params, "residual_base": "raw" if getattr(self, "raw_base_", False) else "shrunk"}

    @classmethod
    def load(cls, path: Path, meta: dict):
        from .._io import load_arrays

        head = cls(**meta["params"])
        a = load_arrays(Path(path) / "linear.safetensors")
        head.coef_, head.a_inv_ = a["coef"], a["a_inv"]
        head.prompt_count_, head.prompt_sum_ = a["prompt_count"], a["prompt_sum"]
        # a folder saved before 2026-12-07 has none: its sums were fitted against each checkpoint's raw mean
        head.raw_base_ = meta.get("residual_base", "raw") == "raw"
        return head
