"""The prompt-blind baseline: each policy's mean success over its eligible history.

See :func:`v0lite.index.policy_prior`.
"""

from __future__ import annotations

from ..index import policy_prior
from .base import BaseHead

__all__ = ["PriorHead"]


class PriorHead(BaseHead):
    """Predict the policy's mean success rate, whatever the prompt.

    Examples
    --------
    >>> from v0lite import V0Regressor
    >>> model = V0Regressor(head="prior")  # doctest: +SKIP
    """

    name = "prior"

    def predict(self, index, queries, *, exclude="same_step"):
        # the query's own rows are hidden: its (prompt, step) rows, or every row of its prompt (any_step)
        return policy_prior(index, queries, hide=exclude)
