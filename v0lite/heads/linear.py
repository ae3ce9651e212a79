"""The pooled linear baseline: ridge on the prompt embedding with a policy indicator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import BaseHead
from .prior import policy_prior

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
        X = index.emb[index.prompt_row].astype(np.float64)
        r = index.score - index.row_base(np.arange(index.n_rows))
        lam = self.params["alpha"] * max(len(r), 1)
        self.coef_ = np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ r)
        return self

    def predict(self, index, queries, *, exclude="same_step"):
        return np.clip(policy_prior(index, queries) + queries.emb.astype(np.float64) @ self.coef_, 0.0, 1.0)

    def save(self, path: Path) -> dict:
        from ..persist import save_arrays

        save_arrays(Path(path) / "linear.safetensors", {"coef": self.coef_})
        return {"params": self.params}

    @classmethod
    def load(cls, path: Path, meta: dict):
        from ..persist import load_arrays

        head = cls(**meta["params"])
        head.coef_ = load_arrays(Path(path) / "linear.safetensors")["coef"]
        return head
