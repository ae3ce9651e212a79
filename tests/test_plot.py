"""routing._plot: the frontier plot is readable (log cost with its unit, every mark in a legend, none hidden)."""

from __future__ import annotations

import numpy as np
import pytest

from v0lite.routing._plot import frontier_figure, plot_frontiers


def _result(costs, accs, cost_source="log"):
    names = [f"model-{i}" for i in range(len(costs))]
    cheap, dear = float(min(costs)), float(max(costs))
    grid = np.geomspace(cheap, dear, 8) if cheap > 0 else np.linspace(cheap, dear, 8)
    router = {"cost": list(grid), "acc": list(np.linspace(0.5, 0.85, 8))}
    return {
        "strategy": "utility",
        "cost_source": cost_source,
        "aiq": 0.8,
        "baseline_knn_aiq": 0.79,
        "baseline_knn_k": 12,
        "baseline_knn_tuned_aiq": None,
        "baseline_knn_tuned_k": None,
        "curves": {
            "router": router,
            "router_hull": router,
            "baseline_knn_hull": router,
            "baseline_knn_tuned_hull": None,
            "baseline_task": None,
            "single": {"policy": names, "cost": list(costs), "acc": list(accs)},
            "random_mix": {"cost": [cheap, dear], "acc": [0.5, 0.85]},
            "oracle": {"cost": cheap * 2, "acc": 0.95},
        },
    }


def test_log_cost_axis_with_unit_and_a_legend_entry_per_mark():
    costs = [8e-5, 1.2e-4, 2.5e-4, 3e-4, 3.3e-4, 3.6e-4, 3.7e-4, 4.2e-4, 3.5e-3, 3.8e-3, 5e-3]
    fig = frontier_figure(_result(costs, np.linspace(0.55, 0.88, len(costs))))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert "USD per call" in ax.get_xlabel() and "log scale" in ax.get_xlabel()
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    for i in range(len(costs)):
        assert any(lab.startswith(f"model-{i} ") for lab in labels)
    for mark in ("oracle", "router frontier", "kNN router", "random mix", "one point per knob"):
        assert any(mark in lab for lab in labels), mark
    assert "kNN router, k=12" in labels  # the k the baseline ran with (route-eval --k-baseline)
    assert not ax.texts  # no text labels on the axes to collide
    assert ax.get_legend() is None  # legends sit beside the axes, so none hides a mark


@pytest.mark.parametrize(
    "costs, source, scale, unit",
    [
        ([1.0, 1.0, 1.0], "unit", "linear", "every call costs 1"),
        ([0.0, 0.0001, 0.01], "prices", "symlog", "USD per call"),
        ([0.001, 0.002, 0.003], "log", "linear", "USD per call"),
    ],
)
def test_axis_scale_follows_the_cost_range(costs, source, scale, unit):
    ax = frontier_figure(_result(costs, [0.5, 0.6, 0.7], source)).axes[0]
    assert ax.get_xscale() == scale and unit in ax.get_xlabel()


def test_plot_is_written_atomically_as_png(tmp_path):
    out = plot_frontiers(_result([1e-4, 1e-3, 1e-2], [0.5, 0.7, 0.9]), tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.endswith("f.png")
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]
