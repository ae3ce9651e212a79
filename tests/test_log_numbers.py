"""v0lite/log.py's number columns: ``step`` and ``n`` keep every integer exactly (no float on the way), what
does not fit 64 bits is refused by name, a pandas NaN is shown as the NaN it is, and a score outside [0, 1]
gets the fix that fits the column (divide by 100 only for percentages, else the stray rows are named)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

from v0lite.exceptions import DataError
from v0lite.log import validate_log

BIG = [2**53 + 1, 2**63 - 1, -(2**63), 3]  # a float would round the first and wrap the second to -2**63


def test_integer_steps_and_counts_stay_exact_with_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "invalid value in cast" was the symptom
        out = validate_log(
            {"policy": ["a"] * 4, "prompt": list("wxyz"), "score": [1.0] * 4, "step": BIG, "n": BIG[:1] * 4}
        )
        frame = pd.DataFrame({"policy": ["a"] * 4, "prompt": list("wxyz"), "score": [1.0] * 4, "step": BIG})
        from_pandas = validate_log(frame)
    assert out["step"].to_list() == BIG and out["n"].to_list() == [2**53 + 1] * 4
    assert from_pandas["step"].to_list() == BIG and out.schema["step"] == pl.Int64
    # a whole float is still read as its integer
    assert validate_log({"policy": ["a"], "prompt": ["x"], "score": [1.0], "step": [3.0]})["step"].to_list() == [3]


@pytest.mark.parametrize("dtype, value", [(pl.UInt64, 2**64 - 1), (pl.Int128, 2**63 + 5)])
def test_an_integer_beyond_int64_is_refused_by_column_row_and_value(dtype, value):
    df = pl.DataFrame({"policy": ["a", "a"], "prompt": ["x", "y"], "score": [1.0, 0.0]})
    df = df.with_columns(pl.Series("step", [1, value], dtype=dtype))
    with pytest.raises(DataError, match=rf"column 'step', row 1: value {value} is not an integer within 64 bits"):
        validate_log(df)
    assert validate_log(df.with_columns(pl.Series("step", [1, 2], dtype=dtype)))["step"].to_list() == [1, 2]


def test_the_largest_step_of_a_file_is_read_and_written_exactly(files, capsys, fake_minilm):
    """Issue: `v0lite predict` wrote step 2**63 - 1 to --out as -2**63 (the earliest step), 2**53 + 1 rounded."""
    from v0lite.cli import main

    tmp, hist, _ = files
    rows = [{"policy": "pol0", "prompt": f"q{i}", "step": s, "tag": s} for i, s in enumerate(BIG)]
    queries = tmp / "q.jsonl"
    queries.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "prior"]) == 0
    assert main(["predict", str(queries), "--model-dir", str(tmp / "m"), "--out", str(tmp / "o.jsonl")]) == 0
    out = [json.loads(line) for line in (tmp / "o.jsonl").read_text().splitlines()]
    assert [r["step"] for r in out] == BIG == [r["tag"] for r in out]


@pytest.mark.parametrize("col", ["step", "n", "cost"])
def test_a_pandas_nan_is_reported_as_nan_not_none(col):
    frame = pd.DataFrame({"policy": ["a", "a"], "prompt": ["x", "y"], "score": [1.0, 0.0], col: [1.0, np.nan]})
    with pytest.raises(DataError, match=rf"column '{col}', row 1: value nan is not") as err:
        validate_log(frame)
    assert "None" not in str(err.value)


def _scores(scores):
    with pytest.raises(DataError) as err:
        validate_log({"policy": ["a"] * len(scores), "prompt": [f"p{i}" for i in range(len(scores))], "score": scores})
    return str(err.value)


@pytest.mark.parametrize("scores", [[0.1, 0.5, 2.0, 0.3, 1.0, 0.0, 0.2, 0.9], [0.0, 1.0, 1.0, 1.0, 2.0, 1.0]])
def test_one_stray_score_is_named_not_a_reason_to_divide_all_by_100(scores):
    """Issue: one 2.0 among success rates was told "percentages? divide by 100", which breaks every other row."""
    text = _scores(scores)
    r = scores.index(2.0)
    assert "percentages" not in text and "--score-scale" not in text, text
    assert f"row {r}: value 2.0 is not a success rate in [0, 1] (1 of {len(scores)} scores is outside it)." in text
    assert f"Fix: correct or drop those rows (row {r} (2.0)); if the column holds rewards, not rates" in text, text


def test_strays_are_listed_first_few_with_their_values_and_percentages_still_divide():
    text = _scores([0.5, 3.0, 0.5, -2.0, 0.5, 4.0, 0.5, 5.0, 0.5, 6.0, 0.5, 7.0, 0.5, 0.5, 0.5])
    assert (
        "(6 of 15 scores are outside it). Fix: correct or drop those rows (row 1 (3.0), row 3 (-2.0), row 5 (4.0), "
        "row 7 (5.0), row 9 (6.0), ...)" in text
    )
    for pct in ([0.0, 50.0, 100.0], [0.0, 1.0, 80.0, 75.0, 0.0], [0.0, 0.0, 0.0, 100.0]):
        assert "percentages? Fix: divide by 100 (`v0lite data map" in _scores(pct), pct
    assert "Fix: map rewards to [0, 1] first (e.g. (reward + 1) / 2" in _scores([-1.0, 1.0, -1.0, 1.0])


def test_predict_names_the_query_files_line_of_a_bad_cell(tmp_path, capsys, make_model, small_log):
    """Issue: a bad cell of predict's query file gave its row but not its line (the history's errors gave both)."""
    from v0lite.cli import main

    make_model().fit(small_log).save(tmp_path / "m")
    q = tmp_path / "q.jsonl"
    q.write_text('{"policy": "pol0", "prompt": "a"}\n\n{"policy": "pol0", "prompt": "b", "step": true}\n')
    out = tmp_path / "p.jsonl"
    assert main(["predict", str(q), "--model-dir", str(tmp_path / "m"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "row 1" in err and f"({q}, line 3)" in err and not out.exists(), err
