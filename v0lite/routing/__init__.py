"""Routing: send each prompt to one policy of a pool, from predicted success and cost.

* :class:`Router` -- value model + cost model + strategy, scikit-learn style.
* strategies (``STRATEGIES``): ``utility``, ``threshold``, ``budget``, ``quality-target``;
  add your own by subclassing :class:`Strategy` (or any object with ``choose``/``knob_grid``).
* cost models (``COST_MODELS``): ``knn``, ``mean``, ``fixed``, ``unit``; add your own by
  subclassing :class:`CostModel` (or any object with ``fit``/``predict``).
* offline evaluation: :func:`route_eval`, frontier metrics (AIQ, APGR, CPT), baseline routers,
  :func:`plot_frontiers`.

``import v0lite`` does not import this package; importing it loads numpy, polars and sklearn.
"""

from ._baselines import (
    TUNED_KS,
    group_router_baseline,
    knn_router_baseline,
    tune_knn_router,
)
from ._costs import (
    COST_MODEL_PROTOCOL,
    COST_MODELS,
    CostModel,
    FixedCost,
    KnnCost,
    MeanCost,
    UnitCost,
    get_cost_model,
)
from ._evaluate import route_eval
from ._frontier import (
    aiq,
    apgr,
    best_single,
    cost_at_accuracy,
    cpt,
    non_decreasing_hull,
    oracle,
)
from ._plot import plot_frontiers
from ._router import Router
from ._strategies import (
    STRATEGIES,
    STRATEGY_PROTOCOL,
    BudgetStrategy,
    QualityTargetStrategy,
    Strategy,
    ThresholdStrategy,
    UtilityStrategy,
    get_strategy,
)

__all__ = [
    "Router",
    "Strategy",
    "STRATEGY_PROTOCOL",
    "STRATEGIES",
    "get_strategy",
    "UtilityStrategy",
    "ThresholdStrategy",
    "BudgetStrategy",
    "QualityTargetStrategy",
    "CostModel",
    "COST_MODEL_PROTOCOL",
    "COST_MODELS",
    "get_cost_model",
    "KnnCost",
    "MeanCost",
    "FixedCost",
    "UnitCost",
    "non_decreasing_hull",
    "aiq",
    "cost_at_accuracy",
    "best_single",
    "oracle",
    "apgr",
    "cpt",
    "knn_router_baseline",
    "tune_knn_router",
    "group_router_baseline",
    "TUNED_KS",
    "route_eval",
    "plot_frontiers",
]
