"""benchmarks/speed.py: --quick never writes; target evaluated; left-out recall queries said; warnings counted."""

import warnings

import benchmarks.speed as speed


def test_quick_implies_no_write_but_not_in_workers():
    args = speed.parse_args(["--quick"])
    assert args.no_write and args.sizes == "10000,100000"
    assert not speed.parse_args([]).no_write
    assert speed.parse_args(["--worker", "--quick"]).sizes == "10000,100000,1000000"


def test_cold_target_is_evaluated():
    assert speed.cold_target_text(0.97) == "(target >= 90%: met)"
    assert speed.cold_target_text(0.85) == "(target >= 90%: NOT met)"


def test_empty_prefix_queries_are_said():
    rows = [
        {"n": 10000, "recall_queries": 300, "recall_mixed_empty_prefix": 31, "recall_latest_empty_prefix": 0},
        {"n": 100000, "recall_queries": 300, "recall_mixed_empty_prefix": 28, "recall_latest_empty_prefix": 0},
    ]
    text = speed.empty_prefix_text(rows)
    assert "left out of recall (random steps / latest step): 31 / 0 of 300 at 10,000 rows, 28 / 0 of 300" in text
    assert speed.empty_prefix_text([{"n": 5}]) == ""  # rows from before the count existed


def test_real_prompts_counts_warnings_without_silencing_the_process(monkeypatch, capsys):
    def fake(n, seed):
        warnings.warn("near-duplicate prompts", UserWarning, stacklevel=1)
        warnings.warn("again", UserWarning, stacklevel=1)
        return ["a"] * n, "fake"

    monkeypatch.setattr(speed, "_real_prompts", fake)
    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        assert speed.real_prompts(2) == (["a", "a"], "fake")
        warnings.warn("later, elsewhere", RuntimeWarning, stacklevel=1)  # not ignored by real_prompts
    assert [str(w.message) for w in outside] == ["later, elsewhere"]
    assert "2 x UserWarning" in capsys.readouterr().out
