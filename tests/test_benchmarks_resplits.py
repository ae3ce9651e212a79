"""benchmarks/resplits.py: --quick, the t quantile at any number of splits, missing outcomes refused."""

import numpy as np
import polars as pl
import pytest

from benchmarks import resplits


def test_quick_is_two_splits_and_never_writes():
    args = resplits._parse_args(["--quick"])
    assert args.splits == 2 and args.no_write
    assert resplits._parse_args(["--quick", "--splits", "3"]).splits == 3
    full = resplits._parse_args([])
    assert full.splits == 10 and not full.no_write


def test_unknown_log_is_refused(capsys):
    with pytest.raises(SystemExit):
        resplits._parse_args(["--logs", "routerbnch"])
    assert "unknown 'routerbnch'" in capsys.readouterr().err


def test_t_quantile_beyond_the_old_table():
    # the old table stopped at 10 degrees of freedom and fell back to the normal 1.96
    assert resplits._t975(1) == pytest.approx(12.706, abs=1e-3)
    assert resplits._t975(10) == pytest.approx(2.228, abs=1e-3)
    assert resplits._t975(20) == pytest.approx(2.086, abs=1e-3)
    d = np.random.default_rng(0).normal(size=21)
    m, lo, hi = resplits._interval(d)
    assert hi - m == pytest.approx(2.086 * d.std(ddof=1) / np.sqrt(21), rel=1e-3)


def test_routerdc_missing_outcome_is_refused(monkeypatch):
    rows = [(p, f"q{i}", 1.0, "t") for i in range(40) for p in ("a", "b")]
    log = pl.DataFrame(rows, schema=["policy", "prompt", "score", "task"], orient="row")
    log = log.filter(~((pl.col("policy") == "b") & pl.col("prompt").is_in([f"q{i}" for i in range(0, 40, 2)])))
    monkeypatch.setattr(resplits, "routerdc_in_distribution", lambda: log)
    monkeypatch.setattr(resplits, "_warm_cache", lambda frames, log: None)

    def no_fit(*a, **k):
        raise AssertionError("a split with a missing outcome was scored")

    monkeypatch.setattr(resplits, "_fit_predict", no_fit)
    with pytest.raises(ValueError, match=r"routerdc split 1 test: \d+ \(prompt, policy\) outcomes missing"):
        resplits.bench_routerdc(["prior"], 1, log=lambda m: None)
