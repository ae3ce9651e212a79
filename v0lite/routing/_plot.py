"""``plot_frontiers``: a PNG of a ``route_eval`` result, readable at a glance (log cost, a legend per mark)."""

from __future__ import annotations

import os
from typing import Any, Mapping

from .._io import atomic_path
from ._frontier import non_decreasing_hull

__all__ = ["plot_frontiers", "frontier_figure"]


def plot_frontiers(result: Mapping[str, Any], path, *, cost_unit: str | None = None) -> str:
    """PNG of the router frontier, the kNN baselines (k fixed and k tuned), the task-mean router
    (when the logs name tasks), every single model, random mixes and the oracle.

    Cost is on a log axis (a pool's prices span orders of magnitude), labelled with its unit;
    every mark has a legend entry, and the single models are told apart by marker and colour in
    a legend beside the axes (no text on the plot to collide). Written atomically (temporary
    file, then rename). Returns the path as a string.

    Parameters
    ----------
    result : dict
        A :func:`route_eval` result.
    path : path
        The PNG to write.
    cost_unit : str, optional
        Axis unit; default "USD per call", or "unit cost" when every call cost 1.
    """
    from .._extras import require

    require("matplotlib", "plot", "the frontier plot")
    fig = frontier_figure(result, cost_unit=cost_unit)
    path = os.fspath(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


def frontier_figure(result: Mapping[str, Any], *, cost_unit: str | None = None):
    """The matplotlib ``Figure`` :func:`plot_frontiers` writes (no pyplot state is touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    curves = result["curves"]
    if cost_unit is None:
        cost_unit = "every call costs 1" if result.get("cost_source") == "unit" else "USD per call"
    fig = Figure(figsize=(11, 6.5))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.08, 0.1, 0.54, 0.8))
    r = curves["router"]
    ax.scatter(r["cost"], r["acc"], s=9, alpha=0.35, color="C0", label="router, one point per knob value")
    h = curves["router_hull"]
    ax.plot(h["cost"], h["acc"], "-", lw=2, color="C0", label=f"router frontier ({result.get('strategy')})")
    if curves.get("baseline_knn_hull"):
        b = curves["baseline_knn_hull"]
        ax.plot(b["cost"], b["acc"], "-", lw=1.3, color="C1", label=f"kNN router, k={result.get('baseline_knn_k', 32)}")
    if curves.get("baseline_knn_tuned_hull"):
        b = curves["baseline_knn_tuned_hull"]
        ax.plot(
            b["cost"],
            b["acc"],
            "-",
            lw=1.3,
            color="C2",
            label=f"kNN router, k={result.get('baseline_knn_tuned_k')} (CV on train)",
        )
    if curves.get("baseline_task"):
        tc = curves["baseline_task"]
        hc, ha = non_decreasing_hull(tc["cost"], tc["acc"])
        ax.plot(hc, ha, ":", lw=1.5, color="C4", label="task-mean router (knows the task label)")
    m = curves["random_mix"]
    ax.plot(m["cost"], m["acc"], "--", lw=1, color="grey", label="random mix of two models")
    o = curves["oracle"]
    ax.scatter([o["cost"]], [o["acc"]], marker="*", s=160, color="C3", zorder=4, label="oracle (best model per prompt)")

    s = curves["single"]
    order = sorted(range(len(s["policy"])), key=lambda i: s["cost"][i])
    markers = "oDs^vP<X>hp8"
    colours = [f"C{j}" for j in range(10)] + ["k", "olive"]
    model_handles = []
    for j, i in enumerate(order):
        style = {"marker": markers[j % len(markers)], "color": colours[(j * 7 + 3) % len(colours)]}
        ax.scatter([s["cost"][i]], [s["acc"][i]], s=55, edgecolors="k", linewidths=0.6, zorder=5, **style)
        model_handles.append(
            Line2D(
                [],
                [],
                ls="",
                ms=7,
                markeredgecolor="k",
                markeredgewidth=0.6,
                **style,
                label=f"{s['policy'][i]}  ({s['acc'][i]:.3f}, {s['cost'][i]:.2g})",
            )
        )

    costs = [c for c in (*r["cost"], *m["cost"], *s["cost"], o["cost"]) if c is not None]
    positive = [c for c in costs if c > 0]
    if positive and len(positive) == len(costs) and max(positive) / min(positive) > 20:
        ax.set_xscale("log")
        scale = "log scale"
    elif positive and len(positive) < len(costs) and max(positive) / min(positive) > 20:
        ax.set_xscale("symlog", linthresh=min(positive))  # a free model (cost 0) still shows
        scale = f"symlog scale, linear below {min(positive):.2g}"
    else:
        scale = "linear scale"
    ax.set_xlabel(f"mean cost per prompt ({cost_unit}, {scale})")
    ax.set_ylabel("accuracy (mean success on the test prompts)")
    title = "routing frontier"
    if result.get("aiq") is not None:
        title += f": AIQ router {result['aiq']:.3f}"
        if result.get("baseline_knn_aiq") is not None:
            title += f", kNN {result['baseline_knn_aiq']:.3f}"
        if result.get("baseline_knn_tuned_aiq") is not None:
            title += f", tuned kNN {result['baseline_knn_tuned_aiq']:.3f}"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    # both legends beside the axes, so no mark is ever hidden behind one
    fig.legend(
        handles=ax.get_legend_handles_labels()[0],
        loc="upper left",
        bbox_to_anchor=(0.63, 0.92),
        fontsize=8,
        frameon=False,
        title="curves",
        title_fontsize=8,
        alignment="left",
    )
    fig.legend(
        handles=model_handles,
        loc="lower left",
        bbox_to_anchor=(0.63, 0.08),
        fontsize=8,
        frameon=False,
        title="single models (accuracy, cost)",
        title_fontsize=8,
        alignment="left",
    )
    return fig
