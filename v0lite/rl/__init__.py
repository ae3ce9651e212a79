"""RL side: choose which prompts to roll out and how many rollouts each gets, from predicted success.

* :mod:`allocation <v0lite.rl._allocate>`: :func:`p_mixed`, :func:`beta_p_mixed`, values
  (``VALUES``), selectors (``SELECTORS``; add your own by subclassing :class:`Selector`, or any
  object with ``select``), :func:`allocate` (exact integer budget split);
* :mod:`beliefs <v0lite.rl._beliefs>`: :class:`BetaPosterior`, V0.5-style fusion
  (:func:`fuse_baseline`, :func:`fit_prior_strength`, :class:`BinnedStrength`, :func:`disagreement_test`);
* :class:`RolloutPlanner` / :class:`Plan`: one call per RL step;
* :func:`alloc_sim` / :func:`score_predictions`: replay a logged RL run, no look-ahead, scoring
  v0lite next to the literature's baselines (:mod:`v0lite.rl._baselines`: dynamic sampling,
  GRESO-style, MoPPS-style; rollouts per mixed group) and a first-epoch scenario
  (:mod:`v0lite.rl._first_epoch`).

Everything consumes a value model's ``predict(X)`` (and ``add_history`` online); any model
with those methods plugs in.
"""

from ._allocate import (
    SELECTOR_PROTOCOL,
    SELECTORS,
    VALUES,
    PMixedSelector,
    RandomSelector,
    Selector,
    TargetSelector,
    allocate,
    beta_p_mixed,
    beta_params,
    get_selector,
    knapsack_value,
    p_mixed,
)
from ._beliefs import (
    BetaPosterior,
    BinnedStrength,
    disagreement_test,
    fit_prior_strength,
    fuse_baseline,
)
from ._planner import Plan, RolloutPlanner
from ._replay import DEFAULT_HEAD, alloc_sim, score_predictions

__all__ = [
    "p_mixed",
    "beta_p_mixed",
    "beta_params",
    "knapsack_value",
    "VALUES",
    "SELECTORS",
    "SELECTOR_PROTOCOL",
    "Selector",
    "TargetSelector",
    "PMixedSelector",
    "RandomSelector",
    "get_selector",
    "allocate",
    "BetaPosterior",
    "fuse_baseline",
    "fit_prior_strength",
    "BinnedStrength",
    "disagreement_test",
    "Plan",
    "RolloutPlanner",
    "alloc_sim",
    "score_predictions",
    "DEFAULT_HEAD",
]
