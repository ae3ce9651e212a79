"""benchmarks/routing.py: --quick never writes; targets evaluated; no hard-coded facts; notes kept."""

import polars as pl

from benchmarks import routing


def test_quick_implies_no_write():
    assert routing._parse_args(["--quick"]).no_write
    assert routing._parse_args(["--no-write"]).no_write
    assert not routing._parse_args([]).no_write


def _res(aiq, cab, knn):
    return {"aiq": aiq, "cost_at_best_single_acc": cab, "best_single_cost": 1.0, "baseline_knn_tuned_aiq": knn}


def test_targets_are_evaluated():
    ok = routing._targets(_res(0.87, 0.30, 0.86), "ensemble")
    assert "AIQ >= 0.86: 0.8700 (met)" in ok
    assert "30.0% of its cost (met)" in ok and "0.8700 vs 0.8600 (met)" in ok
    bad = routing._targets(_res(0.80, None, 0.90), "ensemble")
    assert "0.8000 (NOT met)" in bad
    assert "never reaches the best single model's accuracy (NOT met)" in bad and "0.8000 vs 0.9000 (NOT met)" in bad
    assert "40.0% of its cost (NOT met)" in routing._targets(_res(0.9, 0.40, 0.8), "knn")


class _Res(dict):
    """A route_eval result: 0.5 for every metric the test does not set."""

    def __missing__(self, key):
        return 0.5


def test_task_mean_router_auc_is_labelled_by_construction():
    r = _Res(shrink=None, best_single_model="m", baseline_knn_tuned_k=32)
    table = routing.heads_table({"knn": (r, None)})
    assert "| reference: task-mean router" in table and "0.500 (by construction)" in table


def test_official_intro_counts_models_and_keeps_every_note():
    train = pl.DataFrame({"policy": ["a", "b", "c", "a"], "prompt": ["p", "p", "p", "q"]})
    text = routing._official_intro(train, ["3 test questions dropped", "2 blank cells skipped"])
    assert "(2 prompts, 3 models)" in text
    assert "dropped (3 test questions dropped)" in text and "Converter note: 2 blank cells skipped" in text
    assert "none overlapped" in routing._official_intro(train, [])


def test_incomplete_test_prompts_are_said():
    assert routing._incomplete({"n_test": 945, "n_test_incomplete": 8}) == (
        "945 complete test prompts (8 incomplete left out)"
    )
