"""The prompt-blind baseline: each policy's mean success over its eligible history."""

from __future__ import annotations

import numpy as np

from .base import BaseHead

__all__ = ["PriorHead", "policy_prior"]


def policy_prior(index, queries) -> np.ndarray:
    """Each query's policy prior at its step (nan if nothing is eligible).

    The mean at the latest eligible checkpoint, shrunk toward the mean of all eligible rows
    (for a static policy, its mean), then toward the other policies by the number of eligible
    rows (see :meth:`v0lite.index.HistoryIndex.recent_prior`): a policy added with a handful of
    outcomes is not taken at its word.
    """
    out = np.full(len(queries), np.nan)
    for code in np.unique(queries.policy):
        if code < 0:
            continue
        qi = np.flatnonzero(queries.policy == code)
        out[qi] = index.recent_prior(int(code), queries.step[qi])
    return out


class PriorHead(BaseHead):
    """Predict the policy's mean success rate, whatever the prompt.

    Examples
    --------
    >>> from v0lite import V0Regressor
    >>> model = V0Regressor(head="prior")  # doctest: +SKIP
    """

    name = "prior"

    def predict(self, index, queries, *, exclude="same_step"):
        return policy_prior(index, queries)
