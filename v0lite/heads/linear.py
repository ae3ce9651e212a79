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

    def predict(self, index, queries, *, exclude="same_step"):
        x = queries.emb.astype(np.float64)
        pred = x @ self.coef_
        if exclude == "any_step":
            pr = queries.prompt_row
            known = (pr >= 0) & (pr < len(self.prompt_count_))
            prc = np.where(known, pr, 0)
            c = np.where(known, self.prompt_count_[prc], 0.0)
            s = np.where(known, self.prompt_sum_[prc], 0.0)
            h = np.einsum("ij,jk,ik->i", x, self.a_inv_, x)
            pred = np.where(c > 0, (pred - h * s) / np.maximum(1 - c * h, 1e-6), pred)
        return np.clip(policy_prior(index, queries) + pred, 0.0, 1.0)

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
        return {"params": self.params}

    @classmethod
    def load(cls, path: Path, meta: dict):
        from .._io import load_arrays

        head = cls(**meta["params"])
        a = load_arrays(Path(path) / "linear.safetensors")
        head.coef_, head.a_inv_ = a["coef"], a["a_inv"]
        head.prompt_count_, head.prompt_sum_ = a["prompt_count"], a["prompt_sum"]
        return head
