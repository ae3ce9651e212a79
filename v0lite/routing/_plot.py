"""``plot_frontiers``: a PNG of a ``route_eval`` result."""

from __future__ import annotations

import os
from typing import Any, Mapping

from .._io import atomic_path
from ._frontier import non_decreasing_hull

__all__ = ["plot_frontiers"]


def plot_frontiers(result: Mapping[str, Any], path) -> str:
    """PNG of the router frontier, the kNN baselines (k fixed and k tuned), the task-mean router
    (when the logs name tasks), single models, random mixes and the oracle.

    Written atomically (temporary file, then rename). Returns the path as a string.
    """
    from .._extras import require

    require("matplotlib", "plot", "the frontier plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = result["curves"]
    fig = Figure(figsize=(7, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    r = curves["router"]
    ax.scatter(r["cost"], r["acc"], s=10, alpha=0.4, color="C0")
    h = curves["router_hull"]
    ax.plot(h["cost"], h["acc"], "-o", ms=3, color="C0", label=f"router ({result.get('strategy')})")
    if curves.get("baseline_knn_hull"):
        b = curves["baseline_knn_hull"]
        ax.plot(b["cost"], b["acc"], "-s", ms=3, color="C1", label="kNN router baseline")
    if curves.get("baseline_knn_tuned_hull"):
        b = curves["baseline_knn_tuned_hull"]
        ax.plot(b["cost"], b["acc"], "-^", ms=3, color="C2",
                label=f"kNN router, k={result.get('baseline_knn_tuned_k')} (CV on train)")
    if curves.get("baseline_task"):
        tc = curves["baseline_task"]
        hc, ha = non_decreasing_hull(tc["cost"], tc["acc"])
        ax.plot(hc, ha, ":", color="C4", label="task-mean router (knows the task label)")
    m = curves["random_mix"]
    ax.plot(m["cost"], m["acc"], "--", color="grey", label="random mix of models")
    s = curves["single"]
    ax.scatter(s["cost"], s["acc"], marker="D", color="k", zorder=3, label="single models")
    for name, c, a in zip(s["policy"], s["cost"], s["acc"]):
        ax.annotate(str(name), (c, a), textcoords="offset points", xytext=(4, 4), fontsize=7)
    o = curves["oracle"]
    ax.scatter([o["cost"]], [o["acc"]], marker="*", s=120, color="C3", zorder=3, label="oracle")
    ax.set_xlabel("mean cost per prompt")
    ax.set_ylabel("accuracy")
    title = "routing frontier"
    if result.get("aiq") is not None:
        title += f" (AIQ {result['aiq']:.3f}"
        if result.get("baseline_knn_aiq") is not None:
            title += f", kNN {result['baseline_knn_aiq']:.3f}"
        if result.get("baseline_knn_tuned_aiq") is not None:
            title += f", tuned kNN {result['baseline_knn_tuned_aiq']:.3f}"
        title += ")"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = os.fspath(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
