"""benchmarks/plan_speed.py: --quick, the target verdict over every repeat, verl's version read not written."""

import sys
import types

from benchmarks.plan_speed import QUICK_SIZES, TARGET_N, _repeats, parse_args, target, verl_version


def test_quick_implies_no_write_and_knn_unless_heads_given():
    args = parse_args(["--quick"])
    assert args.no_write and args.heads == "knn"
    assert parse_args(["--quick", "--heads", "auto"]).heads == "auto"
    full = parse_args([])
    assert not full.no_write and full.heads == "auto,knn"
    assert TARGET_N not in QUICK_SIZES


def test_target_is_judged_on_the_worst_repeat():
    # the median (0.6) is under 1 s but one repeat is not: not met
    assert target(1024, [0.5, 0.6, 1.2]) == "NOT met (worst of 3: 1.200 s)"
    assert target(1024, [0.5, 0.6, 0.9]) == "met (worst of 3: 0.900 s)"
    assert target(512, [5.0]) == ""


def test_repeats_are_shown():
    assert _repeats([0.3, 0.1, 0.2]) == "0.200 (0.30, 0.10, 0.20)"


def test_verl_version_is_read_from_the_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "verl", types.SimpleNamespace(__version__="9.8.7"))
    assert verl_version() == "9.8.7"
    monkeypatch.setitem(sys.modules, "verl", None)  # import verl raises ImportError
    assert verl_version() is None
