"""Unit tests of the outcome log: validate_log / read_log / write_log / split_xy."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v0lite.exceptions import DataError
from v0lite.log import _prompt_list, read_log, split_xy, validate_log, write_log

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


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json"])
def test_an_empty_file_says_empty_not_a_parse_error(tmp_path, suffix):
    path = tmp_path / f"log{suffix}"
    path.write_text("\n")
    with pytest.raises(DataError, match=r"log\.\w+: the file is empty.*Fix: write at least one row"):
        read_log(path)


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


# --- issue 27: text stays text, and rows are the file's rows ----------------------------------------------


def test_csv_text_columns_stay_text(tmp_path, guarantees):
    """`1.10` and `1.1` are two policies; `007` stays `007`: CSV text columns are never read as numbers."""
    guarantees.tick("bad-input cases tried")
    f = tmp_path / "log.csv"
    f.write_text("policy,prompt,score,task,prompt_id\n1.10,2+2?,1.0,007,007\n1.1,3+3?,0.0,1e3,01\n1.10,42,0.5,7,7\n")
    df = read_log(f)
    assert df["policy"].to_list() == ["1.10", "1.1", "1.10"] and df["policy"].n_unique() == 2
    assert df["task"].to_list() == ["007", "1e3", "7"] and df["prompt_id"].to_list() == ["007", "01", "7"]
    assert df["prompt"].to_list() == ["2+2?", "3+3?", "42"]  # a numeric-looking prompt in a CSV is text


def test_csv_text_columns_stay_text_through_fit_and_the_cli(tmp_path, fake_minilm, guarantees):
    from v0lite.cli import main
    from v0lite.estimator import V0Regressor

    guarantees.tick("bad-input cases tried", 2)
    f = tmp_path / "log.csv"
    f.write_text("policy,prompt,score\n1.10,a b c,1.0\n1.1,a b c,0.0\n007,d e f,1.0\n1.10,d e f,1.0\n")
    assert main(["fit", str(f), "--model-dir", str(tmp_path / "m"), "--head", "prior", "-q"]) == 0
    assert V0Regressor.load(tmp_path / "m").index_.policies == ["007", "1.1", "1.10"]
    (tmp_path / "q.csv").write_text("policy,prompt\n007,x y z\n1.10,x y z\n")
    assert (
        main(["predict", str(tmp_path / "q.csv"), "--model-dir", str(tmp_path / "m"), "--out", str(tmp_path / "o.csv")])
        == 0
    )
    out = pl.read_csv(tmp_path / "o.csv", schema_overrides={"policy": pl.String})
    assert out["policy"].to_list() == ["007", "1.10"] and (out["p_success"] > 0.99).all()  # both all-1 histories


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_utf16_file_is_told_to_re_encode_as_utf8(tmp_path, guarantees, codec, suffix):
    guarantees.tick("bad-input cases tried")
    text = '{"policy":"a","prompt":"x","score":1.0}\n' if suffix == ".jsonl" else "policy,prompt,score\na,x,1.0\n"
    data = text.encode(codec)  # "utf-16-be" writes no byte-order mark: its NUL bytes give it away
    f = tmp_path / f"log{suffix}"
    f.write_bytes(data)
    with pytest.raises(DataError, match=r"(UTF-16|UTF-32|NUL byte).*Fix: re-encode the file as UTF-8"):
        read_log(f)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_bytes(b'\xef\xbb\xbf{"policy":"a","prompt":"x","score":1.0}\n')
    assert read_log(f)["policy"].to_list() == ["a"]


@pytest.mark.parametrize("sep, word", [(";", "semicolon"), ("\t", "tab")])
def test_a_csv_with_another_separator_is_told_so(tmp_path, guarantees, sep, word):
    guarantees.tick("bad-input cases tried")
    f = tmp_path / "log.csv"
    f.write_text(sep.join(["policy", "prompt", "score"]) + "\n" + sep.join(["a", "x", "1.0"]) + "\n")
    with pytest.raises(
        DataError, match=rf"{word}-separated, not comma-separated\. Fix: write the CSV with commas"
    ) as e:
        read_log(f)
    assert "add a 'policy' column" not in str(e.value)


def test_a_lone_surrogate_is_a_data_error_with_its_row(tmp_path, guarantees):
    """JSON allows the escape "\\ud800" but it is no character: polars would silently make it NUL."""
    guarantees.tick("bad-input cases tried", 4)
    rows = ['{"policy":"a","prompt":"fine","score":1.0}', "", '{"policy":"a","prompt":"x\\ud800y","score":1.0}']
    f = tmp_path / "s.jsonl"
    f.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"s.jsonl, line 3 \(row 1\): column 'prompt' holds undecodable text.*Fix"):
        read_log(f)
    g = tmp_path / "s.json"
    g.write_text('[{"policy":"a","prompt":"ok","score":1.0}, {"policy":"a","prompt":"\\udc80","score":1.0}]')
    with pytest.raises(DataError, match=r"s.json, row 1: column 'prompt' holds undecodable text"):
        read_log(g)
    with pytest.raises(DataError, match=r"column 'prompt', row 1: value 'x\\ud800' holds undecodable text"):
        validate_log({"policy": ["a", "b"], "prompt": ["ok", "x\ud800"], "score": [1.0, 0.0]})
    # a valid pair (an emoji written as two escapes) is a character, and passes
    ok = tmp_path / "pair.jsonl"
    ok.write_text('{"policy":"a","prompt":"x\\ud83d\\ude00","score":1.0}\n')
    assert read_log(ok)["prompt"].to_list() == ["x\U0001f600"]


def test_a_late_text_score_is_reported_at_its_row(tmp_path, guarantees):
    """One "0" among numbers makes polars read the whole column as text; the error names that row."""
    guarantees.tick("bad-input cases tried")
    f = tmp_path / "late.jsonl"
    f.write_text(
        "".join(
            f'{{"policy":"a","prompt":"p{i}","score":{chr(34) + "0" + chr(34) if i == 5 else 1.0}}}\n' for i in range(8)
        )
    )
    with pytest.raises(
        DataError, match=r"column 'score' must be numeric, found text at row 5: '0' \(.*late.jsonl, line 6\)"
    ):
        read_log(f)


def test_a_bare_nan_in_json_names_its_line_field_and_the_fix(tmp_path, guarantees):
    """Python's json.dumps writes NaN / Infinity, which JSON (and polars) refuse: say where, not 'TapeError'."""
    import json

    guarantees.tick("bad-input cases tried", 3)
    rows = [{"policy": "a", "prompt": f"p{i}", "score": 0.5} for i in range(4)]
    f = tmp_path / "nan.jsonl"
    f.write_text(
        "".join(json.dumps({**r, "score": float("nan") if i == 2 else 0.5}) + "\n" for i, r in enumerate(rows))
    )
    with pytest.raises(DataError, match=r"nan.jsonl, line 3 \(row 2\): field 'score' holds NaN.*Fix: write null"):
        read_log(f)
    f.write_text(json.dumps({**rows[0], "extra": [1, float("-inf")]}) + "\n")
    with pytest.raises(DataError, match=r"line 1 \(row 0\): field 'extra\[1\]' holds -Infinity"):
        read_log(f)
    g = tmp_path / "nan.json"
    g.write_text(json.dumps([rows[0], {**rows[1], "score": float("inf")}]))
    with pytest.raises(DataError, match=r"nan.json, row 1: field 'score' holds Infinity.*Fix"):
        read_log(g)


def test_a_csv_cell_that_is_not_a_number_is_named_by_its_row(tmp_path, guarantees):
    """'nan' (and '1_000') keep a CSV column as text: the error names that row and value, not row 0."""
    guarantees.tick("bad-input cases tried", 2)
    for bad in ("nan", "1_000"):
        f = tmp_path / "log.csv"
        f.write_text("policy,prompt,score\n" + "".join(f"a,p{i},{bad if i == 4 else 0.0}\n" for i in range(6)))
        with pytest.raises(DataError, match=rf"column 'score' must be numeric.*\(row 4: '{bad}'\)"):
            read_log(f)


def test_an_integer_beyond_64_bits_in_a_file_is_shown_as_written(tmp_path, guarantees):
    import warnings

    guarantees.tick("bad-input cases tried", 2)
    for col in ("n", "step"):
        f = tmp_path / f"{col}.jsonl"
        good = f'{{"policy":"a","prompt":"x","score":1.0,"{col}":3}}\n'
        f.write_text(good + f'{{"policy":"a","prompt":"y","score":1.0,"{col}":{2**63 + 5}}}\n')
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no raw numpy cast warning on the way
            with pytest.raises(
                DataError,
                match=rf"column '{col}', row 1: value 9223372036854775813 \(.*, line 2\) is not .*within 64 bits",
            ):
                read_log(f)


@pytest.mark.parametrize("value", [2**63 + 5, 2**64 - 1])
def test_an_integer_beyond_64_bits_in_a_frame_is_a_data_error(value, guarantees):
    import warnings

    guarantees.tick("bad-input cases tried")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=rf"column 'n', row 1: value {value} is not a positive integer within 64"):
            validate_log({"policy": ["a", "a"], "prompt": ["x", "y"], "score": [1.0, 1.0], "n": [3, value]})


def test_json_syntax_errors_give_the_line_not_a_character_offset(tmp_path, guarantees):
    guarantees.tick("bad-input cases tried", 2)
    f = tmp_path / "bad.jsonl"
    good = '{"policy":"a","prompt":"x","score":1.0}\n'
    f.write_text(good + "\n" + good + '{"policy":"a" "prompt":"z"}\n')
    with pytest.raises(
        DataError,
        match=r"bad.jsonl, line 4 \(row 2\): not valid JSON \(.*column 15\)\. Fix: repair or remove that line",
    ) as e:
        read_log(f)
    assert "character" not in str(e.value)
    g = tmp_path / "bad.json"
    g.write_text('[\n {"policy": "a", "prompt": "x", "score": 1.0},\n {"policy": "a",, "prompt": "y"}\n]\n')
    with pytest.raises(DataError, match=r"bad.json, line 3, column \d+: not valid JSON"):
        read_log(g)


def test_a_categorical_or_enum_policy_column_is_read_as_text(guarantees):
    guarantees.tick("bad-input cases tried", 3)
    base = {"policy": ["zed", "a"], "prompt": ["x y", "z w"], "score": [1.0, 0.0]}
    frames = [
        pd.DataFrame(base).astype({"policy": "category", "prompt": "category"}),
        pl.DataFrame(base).with_columns(pl.col("policy").cast(pl.Categorical)),
        pl.DataFrame(base).with_columns(pl.col("policy").cast(pl.Enum(["a", "zed"]))),
    ]
    for frame in frames:
        out = validate_log(frame)
        assert out["policy"].dtype == pl.String and out["policy"].to_list() == ["zed", "a"]
        assert out["prompt"].dtype == pl.String


def test_duplicate_pandas_column_names_are_a_data_error_naming_them(guarantees):
    guarantees.tick("bad-input cases tried")
    d = pd.DataFrame([["a", "b", "x", 1.0]], columns=["policy", "policy", "prompt", "score"])
    with pytest.raises(DataError, match=r"duplicate column names \['policy'\].*Fix: rename or drop"):
        validate_log(d)


@pytest.mark.parametrize("as_pandas", [False, True])
def test_a_bool_among_numbers_in_a_score_list_is_refused_not_read_as_one(as_pandas, guarantees):
    guarantees.tick("bad-input cases tried")
    cols = {"policy": ["a", "a"], "prompt": ["x y", "z w"], "score": [True, 0.5]}
    data = pd.DataFrame(cols, dtype=object).astype({"policy": str, "prompt": str}) if as_pandas else cols
    with pytest.raises(DataError, match=r"column 'score' mixes types: row 0 is bool \(True\).*1.0/0.0 for True/False"):
        validate_log(data)


# --- probe of the file readers: what polars hid or reported without a place ----------------------------


def test_a_repeated_csv_header_or_json_key_is_a_data_error(tmp_path, guarantees):
    """polars renames a second `score` header to `score_duplicated_0` and keeps the first of two JSON keys."""
    guarantees.tick("bad-input cases tried", 3)
    f = tmp_path / "dup.csv"
    f.write_text("policy,prompt,score,score\na,x,1,0\n")
    with pytest.raises(
        DataError, match=r"dup.csv, line 1: the header repeats the column\(s\) \['score'\].*Fix: rename"
    ):
        read_log(f)
    g = tmp_path / "dup.jsonl"
    good = '{"policy":"a","prompt":"x","score":1}\n'
    g.write_text(good + '{"policy":"a","prompt":"y","score":1,"score":0}\n')
    with pytest.raises(DataError, match=r"dup.jsonl, line 2 \(row 1\): the key 'score' appears twice.*Fix: write each"):
        read_log(g)
    h = tmp_path / "dup.json"
    h.write_text('[{"policy":"a","prompt":"x","score":1,"policy":"b"}]')
    with pytest.raises(DataError, match=r"dup.json, row 0: the key 'policy' appears twice"):
        read_log(h)
    # a key's name inside a prompt, a key written with spaces, a null: one key each, accepted
    ok = tmp_path / "ok.jsonl"
    ok.write_text(
        '{"policy":"a","prompt":"say \\"score\\": 1","score":1, "task":null}\n{"policy" : "b","prompt":"y","score":0}\n'
    )
    assert read_log(ok)["prompt"].to_list() == ['say "score": 1', "y"]


def test_a_nul_byte_past_the_first_64_kib_is_found(tmp_path, guarantees):
    import random

    guarantees.tick("bad-input cases tried")
    rng = random.Random(0)
    rows = [f"m{rng.randrange(3)},p{i},{rng.random():.3f}\n" for i in range(8000)]  # ~100 KiB
    rows[7000] = "m0,p\x00,1.0\n"
    f = tmp_path / "late.csv"
    f.write_text("policy,prompt,score\n" + "".join(rows))
    assert f.stat().st_size > 1 << 16
    with pytest.raises(DataError, match=r"late.csv, line 7002: holds a NUL byte.*Fix: re-encode the file as UTF-8"):
        read_log(f)


@pytest.mark.parametrize("sep, word", [(";", "semicolon"), ("\t", "tab")])
def test_a_csv_with_another_separator_and_commas_in_its_prompts_is_told_so(tmp_path, guarantees, sep, word):
    guarantees.tick("bad-input cases tried")
    f = tmp_path / "log.csv"
    f.write_text(sep.join(["policy", "prompt", "score"]) + "\n" + sep.join(["a", "x, y and z", "1.0"]) + "\n")
    with pytest.raises(DataError, match=rf"{word}-separated, not comma-separated\. Fix: write the CSV with commas"):
        read_log(f)


@pytest.mark.parametrize(
    "lines, pattern",
    [
        (
            ['{"policy":"a","prompt":"x","score":1}', '{"policy":"a","prompt":"y","score":true}'],
            r"line 2 \(row 1\): column 'score' holds true \(a boolean\), but line 1 holds 1 \(a number\)\. "
            r"Fix: give every value of 'score' one type \(numbers: 1\.0/0\.0 for true/false\)",
        ),
        (
            ['{"policy":"a","prompt":"x","score":1,"step":0}', '{"policy":"a","prompt":"y","score":1,"step":true}'],
            r"line 2 \(row 1\): column 'step' holds true \(a boolean\).*Fix",
        ),
        (
            ['{"policy":"a","prompt":"x","score":1,"n":2}', "", '{"policy":"a","prompt":"y","score":1,"n":false}'],
            r"line 3 \(row 1\): column 'n' holds false \(a boolean\).*Fix",
        ),
        (
            ['{"policy":"a","prompt":"x","score":1}', '{"policy":"a","prompt":"y","score":1e400}'],
            r"line 2 \(row 1\): field 'score' holds 1e400, a number too large to read.*Fix: write a finite number",
        ),
    ],
)
def test_a_json_type_polars_cannot_read_names_the_line_column_and_value(tmp_path, guarantees, lines, pattern):
    guarantees.tick("bad-input cases tried")
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"t\.jsonl, " + pattern) as e:
        read_log(f)
    assert "character" not in str(e.value) and "cannot be read" not in str(e.value)


def test_a_csv_row_with_an_extra_field_names_its_line_and_value(tmp_path, guarantees):
    guarantees.tick("bad-input cases tried")
    f = tmp_path / "ragged.csv"
    f.write_text('policy,prompt,score\na,"x, y",1\na,y,1,5\n')
    with pytest.raises(
        DataError,
        match=r"ragged.csv, line 3: 4 fields where the header has 3 \(extra value '5' after column 'score'\)\. "
        r"Fix: quote the values that hold commas",
    ):
        read_log(f)


def test_a_lone_surrogate_in_a_json_key_is_a_data_error(tmp_path, guarantees):
    guarantees.tick("bad-input cases tried")
    f = tmp_path / "k.jsonl"
    f.write_text('{"policy":"a","prompt":"w","score":1}\n{"policy":"a","prompt":"x","score":1,"\\ud800":1}\n')
    with pytest.raises(DataError, match=r"k.jsonl, line 2 \(row 1\): the key '\\ud800' is undecodable.*Fix"):
        read_log(f)


@pytest.mark.parametrize(
    "data, col",
    [
        ({"policy": [1.0, float("nan")], "prompt": ["x", "y"], "score": [1, 0]}, "policy"),
        (pl.DataFrame({"policy": [1.0, float("nan")], "prompt": ["x", "y"], "score": [1, 0]}), "policy"),
        ({"policy": ["a", "b"], "prompt": ["x", float("nan")], "score": [1, 0]}, "prompt"),
    ],
)
def test_a_nan_among_names_is_a_missing_cell_not_the_text_nan(data, col, guarantees):
    guarantees.tick("bad-input cases tried")
    with pytest.raises(DataError, match=rf"column '{col}', row 1: value is missing \(null\)\. Fix"):
        validate_log(data)


@pytest.mark.parametrize(
    "header, bad",
    [("Policy,Prompt,Score", "Policy"), ("policy, prompt, score", " prompt"), ("MODEL,prompt,score", "MODEL")],
)
def test_a_column_misnamed_by_case_or_spaces_is_told_to_rename_it(tmp_path, guarantees, header, bad):
    guarantees.tick("bad-input cases tried")
    f = tmp_path / "log.csv"
    f.write_text(header + "\na,x,1\n")
    with pytest.raises(DataError, match=rf"Fix: rename '{bad}' to '{bad.strip().lower().replace('model', 'policy')}'"):
        read_log(f)


def test_a_chat_message_prompt_among_text_prompts_is_refused(tmp_path, guarantees):
    """Every prompt a list of messages is refused; one among texts was silently read as its JSON text."""
    guarantees.tick("bad-input cases tried", 2)
    chat = '{"policy":"a","prompt":[{"role":"user","content":"hi"}],"score":1}'
    f = tmp_path / "chat.jsonl"
    f.write_text('{"policy":"a","prompt":"[not a list]","score":1}\n' + chat + "\n")
    with pytest.raises(
        DataError, match=r"chat.jsonl, line 2 \(row 1\): column 'prompt' holds \[\{\"role\": \"user\".*\(a list\).*Fix"
    ):
        read_log(f)
    g = tmp_path / "chat.json"
    g.write_text('[{"policy":"a","prompt":"x","score":1}, ' + chat + "]")
    with pytest.raises(DataError, match=r"chat.json, row 1: column 'prompt' holds .*\(a list\)"):
        read_log(g)


def test_a_folder_is_told_to_convert_with_v0lite_data_convert(tmp_path):
    import importlib

    with pytest.raises(DataError, match=r"is a directory.*v0lite\.data\.convert\)") as e:
        read_log(tmp_path)
    assert "datasets" not in str(e.value)
    assert callable(importlib.import_module("v0lite.data").convert)


def test_a_boolean_among_numbers_in_a_json_array_is_refused_not_read_as_one(tmp_path, guarantees):
    """polars' JSON-array reader reads `true` among numbers as 1: name the row, as for a dict."""
    guarantees.tick("bad-input cases tried")
    f = tmp_path / "b.json"
    f.write_text('[{"policy":"a","prompt":"true?","score":0}, {"policy":"a","prompt":"y","score":true}]')
    with pytest.raises(DataError, match=r"b.json, row 1: column 'score' holds true \(a boolean\), but row 0 holds 0"):
        read_log(f)


def test_check_policy_name_reads_an_int_as_its_text_where_asked():
    from v0lite.exceptions import ParameterError
    from v0lite.log import check_policy_name

    assert check_policy_name("a") == "a"
    assert check_policy_name(3, allow_int=True) == "3" == check_policy_name(np.int64(3), allow_int=True)
    for bad in (True, np.bool_(False), 3.0):
        with pytest.raises(ParameterError):
            check_policy_name(bad, allow_int=True)
    with pytest.raises(ParameterError):
        check_policy_name(3)  # not asked: a name must be text


def test_validate_log_allows_zero_rows_only_when_asked():
    empty = {"policy": [], "prompt": []}
    assert validate_log(empty, require_score=False, allow_empty=True).height == 0
    with pytest.raises(DataError, match="no rows"):
        validate_log(empty, require_score=False)
    with pytest.raises(DataError, match="column 'prompt'"):
        validate_log({"policy": []}, require_score=False, allow_empty=True)


# --------------------------------------------------------------------------- own data: the fixes that get it in


def test_boolean_scores_are_refused_with_the_data_map_fix(tmp_path):
    """True/false outcomes are never read as 1.0/0.0 by the log itself; the fix says how to convert them."""
    (tmp_path / "b.csv").write_text("policy,prompt,score\na,x,TRUE\nb,x,FALSE\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"policy":"a","prompt":"x","score":true}\n', encoding="utf-8")
    (tmp_path / "y.jsonl").write_text('{"policy":"a","prompt":"x","score":"yes"}\n', encoding="utf-8")
    pl.DataFrame({"policy": ["a"], "prompt": ["x"], "score": [True]}).write_parquet(tmp_path / "b.parquet")
    (tmp_path / "y.csv").write_text("policy,prompt,score\na,x,yes\nb,x,no\n", encoding="utf-8")
    for name in ("b.csv", "b.jsonl", "b.parquet", "y.csv", "y.jsonl"):
        with pytest.raises(DataError) as err:
            read_log(tmp_path / name)
        text = str(err.value)
        assert "1.0/0.0 for true/false" in text and "v0lite data map" in text and "--score score" in text, text
    with pytest.raises(DataError, match="1.0/0.0 for true/false"):
        validate_log(pl.DataFrame({"policy": ["a"], "prompt": ["x"], "score": [False]}))


def test_a_missing_score_counts_the_unlabeled_rows_and_says_drop_them():
    n = 20
    score = [None if i % 3 == 0 else 1.0 for i in range(n)]  # rows 0, 3, 6, ... 18: 7 rows
    with pytest.raises(DataError) as err:
        validate_log({"policy": ["a"] * n, "prompt": [f"q{i}" for i in range(n)], "score": score})
    text = str(err.value)
    assert (
        "row 0: value None means the row has no outcome (7 of 20 rows have no outcome: rows 0, 3, 6, 9, 12, ...)"
        in text
    )
    assert "Fix: drop the unlabeled rows" in text and "--drop-unscored" in text, text
    assert "(reward + 1) / 2" not in text and "success rate" not in text
    with pytest.raises(
        DataError, match=r"a NaN score is no outcome \(1 of 2 rows has no outcome: row 1\).*--drop-unscored"
    ):
        validate_log({"policy": ["a", "a"], "prompt": ["x", "y"], "score": [1.0, float("nan")]})


def test_percentages_are_told_to_divide_by_100_and_rewards_to_map():
    base = {"policy": ["a", "a", "a"], "prompt": ["x", "y", "z"]}
    with pytest.raises(DataError) as err:
        validate_log({**base, "score": [0.0, 50.0, 100.0]})
    text = str(err.value)
    assert "row 1" in text and "percentages? Fix: divide by 100" in text and "--score-scale 100" in text, text
    assert "(reward + 1) / 2" not in text
    with pytest.raises(DataError, match=r"\(reward \+ 1\) / 2") as err:  # ±1 rewards keep their hint
        validate_log({**base, "score": [-1.0, 1.0, 0.0]})
    assert "percentages" not in str(err.value)
    with pytest.raises(DataError, match=r"\(reward \+ 1\) / 2"):  # beyond 100: not percentages
        validate_log({**base, "score": [0.0, 500.0, 1.0]})


def test_near_miss_optional_columns_warn_with_the_rename(tmp_path):
    from v0lite.exceptions import V0liteWarning

    (tmp_path / "t.csv").write_text("policy,prompt,score,Task, cost,STEP\na,x,1,math,0.1,3\n", encoding="utf-8")
    with pytest.warns(V0liteWarning) as caught:
        out = read_log(tmp_path / "t.csv")
    texts = [str(w.message) for w in caught]
    for col, name, flag in (("Task", "task", "--task Task"), (" cost", "cost", "--cost ' cost'"), ("STEP", "step", "")):
        hit = [t for t in texts if t.startswith(f"column {col!r} differs from the optional column {name!r}")]
        assert hit and f"Fix: rename {col!r} to {name!r}" in hit[0] and flag in hit[0], texts
    assert "task" not in out.columns and out["Task"].to_list() == ["math"]  # a warning, not a rename
    with pytest.warns(V0liteWarning, match="the log has 'task' too; that one is read"):  # both: the exact one is read
        out = validate_log({**GOOD, "task": ["m"] * 3, "Task": ["n"] * 3})
    assert out["task"].to_list() == ["m"] * 3
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_log({**GOOD, "task": ["m"] * 3, "Costs": [1, 2, 3]})  # exact names and other columns: silent


def test_chat_message_prompts_are_told_to_store_the_last_user_message(tmp_path):
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "1+1?"}]
    (tmp_path / "c.jsonl").write_text(
        json.dumps({"policy": "a", "prompt": "plain", "score": 1})
        + "\n"
        + json.dumps({"policy": "a", "prompt": chat, "score": 1})
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError, match="last user message, the text `v0lite serve` routes on"):
        read_log(tmp_path / "c.jsonl")
    frame = pl.DataFrame({"policy": ["a"], "prompt": [[{"role": "user", "content": "1+1?"}]], "score": [1.0]})
    with pytest.raises(DataError, match="last user message"):
        validate_log(frame)


@pytest.mark.parametrize("blank", ["\u200b", "\ufeff\u200b\u2060", " \u2060\t", "\xa0"])
def test_a_prompt_of_invisible_format_characters_only_is_empty(blank):
    """Zero-width space, BOM, word joiner (Unicode category Cf) are as empty as whitespace, in logs and warm()."""
    with pytest.raises(DataError, match=r"column 'prompt', row 1: value .* is empty or whitespace \(invisible") as e:
        validate_log({"policy": ["a", "a"], "prompt": ["x", blank], "score": [1.0, 0.0]})
    assert repr(blank) in str(e.value) and "Fix: give every row a non-empty prompt" in str(e.value)
    with pytest.raises(DataError, match="prompts, row 1"):
        _prompt_list(["x", blank])
