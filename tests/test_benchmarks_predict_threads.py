"""benchmarks/predict_threads.py: --quick never writes; the 5,000 rows/s target is evaluated, not only stated."""

from benchmarks.predict_threads import parse_args, verdict


def test_quick_implies_no_write():
    args = parse_args(["--quick"])
    assert args.no_write and args.heads == "knn" and args.repeats == 1
    assert not parse_args([]).no_write


def test_target_verdict_with_the_figure():
    assert verdict(7766.2) == "met (7,766)"
    assert verdict(5000) == "met (5,000)"
    assert verdict(4561.0) == "NOT met (4,561)"
