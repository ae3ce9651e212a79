"""Unit tests of the outcome log: validate_log / read_log / write_log / split_xy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v0lite.exceptions import DataError
from v0lite.log import read_log, split_xy, validate_log, write_log

GOOD = {"policy": ["a", "a", "b"], "prompt": ["1+1?", "2+2?", "1+1?"], "score": [1.0, 0.5, 0.0]}


def test_valid_log_normalises_dtypes_and_keeps_order_and_extras():
    data = dict(GOOD, step=[0.0, 1.0, 0.0], n=[4, 4, 2], cost=[1, 2, 3], prompt_id=[1, 2, 1], extra=["x", "y", "z"])
    out = validate_log(data)
    assert out.height == 3
    assert out["policy"].to_list() == GOOD["policy"] and out["prompt"].to_list() == GOOD["prompt"]
    assert out.schema["score"] == pl.Float64 and out.schema["cost"] == pl.Float64
    assert out.schema["step"] == pl.Int64 and out.schema["n"] == pl.Int64
    assert out.schema["prompt_id"] == pl.String
    assert out["extra"].to_list() == ["x", "y", "z"]


def test_numeric_policy_names_become_text():
    out = validate_log({"policy": [1, 2], "prompt": ["x", "y"], "score": [0.0, 1.0]})
    assert out["policy"].to_list() == ["1", "2"]


def test_queries_need_no_score_but_a_present_score_is_still_checked():
    assert validate_log({"policy": ["a"], "prompt": ["x"]}, require_score=False).height == 1
    # missing query scores are fine (queries to predict), out-of-range ones are not
    assert validate_log({"policy": ["a"], "prompt": ["x"], "score": [None]}, require_score=False).height == 1
    with pytest.raises(DataError, match="row 0"):
        validate_log({"policy": ["a"], "prompt": ["x"], "score": [2.0]}, require_score=False)


def test_duplicate_rows_are_kept_as_separate_observations():
    out = validate_log({"policy": ["a", "a"], "prompt": ["x", "x"], "score": [1.0, 1.0]})
    assert out.height == 2


def test_pandas_and_polars_agree():
    a = validate_log(pd.DataFrame(GOOD))
    b = validate_log(pl.DataFrame(GOOD))
    assert a.equals(b)


@pytest.mark.parametrize("as_pandas", [True, False])
def test_an_integer_over_64_bits_is_a_data_error_naming_its_column(as_pandas):
    # found by the property test below: pyarrow's OverflowError escaped the pandas conversion
    data = {"policy": [[2**63]], "prompt": ["x"], "score": [1.0]}
    with pytest.raises(DataError, match="column 'policy'.*Fix"):
        validate_log(pd.DataFrame(data) if as_pandas else data)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_write_read_round_trip(tmp_path, suffix):
    df = validate_log(dict(GOOD, step=[0, 1, 2]))
    path = write_log(df, tmp_path / f"log{suffix}")
    back = read_log(path)
    assert back.select(df.columns).equals(df)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_write_log_rejects_unknown_suffix(tmp_path):
    with pytest.raises(DataError, match="jsonl"):
        write_log(validate_log(GOOD), tmp_path / "log.txt")


def test_split_xy():
    X, y = split_xy(validate_log(GOOD))
    assert "score" not in X.columns and X.height == 3
    assert y.dtype == np.float64 and y.tolist() == [1.0, 0.5, 0.0]


def test_file_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_log(tmp_path / "nope.jsonl")
    (tmp_path / "log.txt").write_text("x")
    with pytest.raises(DataError, match="unknown file type"):
        read_log(tmp_path / "log.txt")
    (tmp_path / "trunc.jsonl").write_bytes(b'{"policy":"a","prompt":"x","score":1.0}\n{"policy":"a","pro')
    with pytest.raises(DataError, match="trunc.jsonl.*Fix"):
        read_log(tmp_path / "trunc.jsonl")


def test_a_late_bad_row_in_a_file_is_pointed_at(tmp_path):
    f = tmp_path / "late.jsonl"
    f.write_text('{"policy":"a","prompt":"x","score":1.0}\n{"policy":"a","prompt":"y","score":"high"}\n')
    with pytest.raises(DataError, match=r"row 1: 'high'"):
        read_log(f)


# --- property: validate_log never raises anything but DataError --------------------------------------

_cell = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.just(""),
    st.just("  "),
    st.lists(st.integers(), max_size=2),
)
_names = st.sampled_from(["policy", "prompt", "score", "step", "n", "cost", "task", "prompt_id", "model", "reward"])


@st.composite
def _frames(draw):
    n = draw(st.integers(0, 5))
    cols = draw(st.lists(_names, min_size=0, max_size=6, unique=True))
    out = {}
    for c in cols:
        kind = draw(st.sampled_from(["mixed", "float", "text", "int"]))
        if kind == "mixed":
            out[c] = draw(st.lists(_cell, min_size=n, max_size=n))
        elif kind == "float":
            out[c] = draw(st.lists(st.one_of(st.floats(-2, 2), st.just(float("nan"))), min_size=n, max_size=n))
        elif kind == "int":
            out[c] = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
        else:
            out[c] = draw(st.lists(st.text(max_size=5), min_size=n, max_size=n))
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_frames(), as_pandas=st.booleans(), require_score=st.booleans())
def test_validate_log_only_ever_raises_data_error(guarantees, data, as_pandas, require_score):
    guarantees.tick("property examples run")
    if as_pandas:
        try:
            data = pd.DataFrame(data)
        except ValueError:
            return
    try:
        out = validate_log(data, require_score=require_score)
    except DataError as exc:
        assert "Fix" in str(exc) or "fix" in str(exc)
        assert "\n" not in str(exc)  # one readable line
        return
    # accepted: the guarantees of a valid log hold
    assert out.height == len(next(iter(data.values()))) if isinstance(data, dict) else out.height == len(data)
    assert out.schema["policy"] == pl.String and out.schema["prompt"] == pl.String
    assert (out["prompt"].str.strip_chars().str.len_chars() > 0).all()
    if "score" in out.columns:
        s = out["score"].to_numpy()
        ok = np.isfinite(s) & (s >= 0) & (s <= 1)
        assert ok.all() if require_score else (ok | np.isnan(s)).all()
