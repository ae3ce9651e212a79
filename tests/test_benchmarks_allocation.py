"""benchmarks/allocation.py: --quick never writes RESULTS.md; the late-step coverage is read from the log."""

import polars as pl

from benchmarks.allocation import complete_max_step, coverage_note, parse_args


def _log(visits: dict) -> pl.DataFrame:
    rows = [(p, s) for p, steps in visits.items() for s in steps]
    return pl.DataFrame(
        {"policy": ["a"] * len(rows), "prompt": [p for p, _ in rows], "step": [s for _, s in rows]}
    ).with_columns(score=pl.lit(0.5))


def test_quick_implies_no_write():
    assert parse_args(["--quick"]).no_write
    assert not parse_args([]).no_write


def test_coverage_note_counts_from_the_log():
    log = _log({"p": range(5), "q": range(5), "r": range(3)})
    assert complete_max_step(log) == 2
    note = coverage_note("toy", log)
    assert note == (
        "toy: every one of the 3 (policy, prompt) pairs has a visit at steps <= 2; "
        "from step 3 on fewer do, down to 2 at step 4"
    )
    # the last step's own count, not a fixed number
    note = coverage_note("toy", _log({"p": range(6), "q": range(5), "r": range(3)}))
    assert note.endswith("from step 3 on fewer do, down to 1 at step 5")


def test_coverage_note_none_when_every_step_is_complete():
    assert coverage_note("toy", _log({"p": range(4), "q": range(4)})) is None
