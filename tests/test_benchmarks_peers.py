"""benchmarks/peers.py: --quick, refused names, missing outcomes refused, targets evaluated."""

import numpy as np
import pytest

from benchmarks import peers


def test_quick_runs_the_small_logs_and_never_writes():
    args = peers._parse_args(["--quick"])
    assert args.logs == ["v0", "v0cv"]
    assert args.labels == ["prior", "per-model logistic", "auto (new default)"]
    assert args.no_write
    # an explicit --logs wins; --quick still leaves RESULTS.md alone
    args = peers._parse_args(["--quick", "--logs", "v0"])
    assert args.logs == ["v0"] and args.no_write
    full = peers._parse_args([])
    assert full.logs == list(peers.LOGS) and not full.no_write
    assert full.labels == list(peers.HEADS)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [(["--logs", "v0,routerbnch"], "--logs: unknown ['routerbnch']"), (["--heads", "prior,lgstic"], "['lgstic']")],
)
def test_unknown_logs_or_heads_are_refused(argv, needle, capsys):
    with pytest.raises(SystemExit):
        peers._parse_args(argv)
    assert needle in capsys.readouterr().err


def test_a_missing_outcome_is_refused_not_scored_as_zero():
    Y = np.array([[1.0, 0.0], [np.nan, 1.0]])
    with pytest.raises(ValueError, match=r"routerdc test_id: 1 \(prompt, policy\) outcomes missing.*'a'.*'q2'"):
        peers._require_complete(Y, ["q1", "q2"], ["a", "b"], "routerdc test_id")
    peers._require_complete(np.nan_to_num(Y), ["q1", "q2"], ["a", "b"], "x")  # complete: no error


def _speed(ratio, auto_pps):
    return {
        "n_rows": 1000,
        "n_dropped": 7,
        "logistic_fits": [1.0, 1.0],
        "auto_fits": [ratio, ratio],
        "logistic_fit_s": 1.0,
        "auto_fit_s": ratio,
        "auto_chosen": "logistic",
        "logistic_pps": 10_000.0,
        "auto_pps": auto_pps,
    }


def test_speed_targets_are_evaluated():
    ok = peers._speed_text(_speed(4.0, 6000.0))
    assert "target <= 5: met" in ok and "auto 6,000 rows/s (met)" in ok
    assert "7 repeated (policy, prompt) rows dropped" in ok
    bad = peers._speed_text(_speed(6.0, 4000.0))
    assert "ratio 6.0, target <= 5: NOT met" in bad
    assert "logistic 10,000 rows/s (met)" in bad and "auto 4,000 rows/s (NOT met)" in bad


def test_incomplete_test_prompts_are_counted_in_the_heading():
    block = {"rows": {}, "n_prompts": 945, "n_incomplete": 8}
    assert "routerdc-routerbench (945 complete test prompts (8 incomplete left out))" in peers._table(
        "routerdc-routerbench", block, "AIQ"
    )
    assert peers._n_test({"n_prompts": 1200}) == "1,200 test prompts"
