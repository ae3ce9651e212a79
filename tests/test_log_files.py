"""v0lite/_log_files.py's sniffing: a file whose bytes are not what its name says (gzip, Parquet, a JSON
array, JSON lines, CSV) or a suffix v0lite does not read (.gz, .tsv) is refused naming what it is, with
the fix (rename or unpack), before any parser guesses; a bad cell of a JSON-lines or CSV file is named by its
row and its line (``row_place``)."""

from __future__ import annotations

import gzip

import pytest

from tests.conftest import make_log
from v0lite.exceptions import DataError
from v0lite.log import read_log

JSONL = b'{"policy":"a","prompt":"x","score":1.0}\n{"policy":"b","prompt":"y","score":0.0}\n'
CSV = b"policy,prompt,score\na,x,1.0\nb,y,0.0\n"


@pytest.mark.parametrize(
    "name, data, said",
    [
        ("gz.jsonl", gzip.compress(JSONL, mtime=0), r"gz.jsonl: is gzip-compressed, not jsonl text. Fix: gunzip"),
        ("gz.csv", gzip.compress(CSV, mtime=0), r"is gzip-compressed, not csv text"),
        (
            "arr.jsonl",
            b"[" + JSONL.replace(b"}\n{", b"},{").strip() + b"]\n",
            r"one JSON array.*rename it to arr.json\b",
        ),
        ("nd.json", JSONL, r"JSON lines \(one object a line\).*rename it to nd.jsonl"),
        ("j.csv", JSONL, r"j.csv: holds JSON lines, not CSV. Fix: rename it to j.jsonl"),
        ("c.jsonl", CSV, r"c.jsonl: holds comma-separated \(CSV\), not JSON lines. Fix: rename it to c.csv"),
        ("t.parquet", JSONL, r"t.parquet: is JSON, not a Parquet file. Fix: rename it to t.jsonl"),
        ("q.jsonl.gz", gzip.compress(JSONL, mtime=0), r"compressed \(gzip\). Fix: gunzip it first"),
        ("q.tsv", CSV.replace(b",", b"\t"), r"tab-separated. Fix: save it as CSV"),
    ],
)
def test_a_file_that_is_not_what_its_name_says_is_named_with_the_fix(tmp_path, guarantees, name, data, said):
    f = tmp_path / name
    f.write_bytes(data)
    with pytest.raises(DataError, match=said):
        read_log(f)
    guarantees.tick("bad-input cases tried")


def test_a_parquet_file_named_jsonl_is_told_to_be_renamed(tmp_path):
    f = tmp_path / "p.jsonl"
    make_log().write_parquet(f)
    with pytest.raises(DataError, match=r"p.jsonl: is a Parquet file, not jsonl text. Fix: rename it to p.parquet"):
        read_log(f)


@pytest.mark.parametrize(
    "name, data",
    [("ok.jsonl", JSONL), ("ok.csv", CSV), ("ok.json", b"[" + JSONL.replace(b"}\n{", b"},{").strip() + b"]")],
)
def test_files_that_are_what_their_name_says_still_read(tmp_path, name, data):
    f = tmp_path / name
    f.write_bytes(data)
    assert read_log(f)["policy"].to_list() == ["a", "b"]


def _rows(n=8, **at5):
    return [{"policy": "a", "prompt": f"p{i}", "score": 0.5, "step": i, **(at5 if i == 5 else {})} for i in range(n)]


@pytest.mark.parametrize(
    "cell, said",
    [
        ({"step": None}, r"column 'step', row 5: value None \(.*j.jsonl, line 7\) is not an integer\. Fix"),
        ({"score": None}, r"column 'score', row 5: value None \(.*j.jsonl, line 7\) means the row has no outcome"),
        ({"prompt": None}, r"column 'prompt', row 5: value is missing \(null\) \(.*j.jsonl, line 7\)\. Fix"),
        ({"cost": -1.0}, r"column 'cost', row 5: value -1.0 \(.*j.jsonl, line 7\) is not a finite cost"),
    ],
)
def test_a_bad_cell_of_a_jsonl_file_names_its_line_as_a_text_cell_does(tmp_path, cell, said):
    """Issue: a null step or score gave the row only, a text score "(file, line 6)"; a blank line is no row."""
    import json

    lines = [json.dumps({"cost": 0.1, **r}) for r in _rows(**cell)]
    f = tmp_path / "j.jsonl"
    f.write_text("\n".join(lines[:2] + [""] + lines[2:]) + "\n")  # the blank line 3: row 5 is on line 7
    with pytest.raises(DataError, match=said):
        read_log(f)


def test_a_boolean_or_empty_cell_of_a_csv_file_names_its_line(tmp_path):
    head = "policy,prompt,score,step\n"
    f = tmp_path / "c.csv"
    # a quoted prompt over two lines: row 5 starts on line 8
    f.write_text(head + '"a","p\n0",0.5,0\n' + "".join(f"a,p{i},{'' if i == 5 else 0.5},{i}\n" for i in range(1, 8)))
    with pytest.raises(DataError, match=r"column 'score', row 5: value None \(.*c.csv, line 8\) means the row has no"):
        read_log(f)
    f.write_text(head + "".join(f"a,p{i},{'true' if i == 5 else 0.5},{i}\n" for i in range(8)))
    with pytest.raises(
        DataError, match=r"found dtype String \(row 5: 'true'\) \(.*c.csv, line 7\)\. Fix: write 'score'"
    ):
        read_log(f)


@pytest.mark.parametrize("col", ["score", "step"])
def test_a_boolean_column_of_a_jsonl_file_names_the_line_of_its_first_row(tmp_path, col):
    import json

    f = tmp_path / "b.jsonl"
    f.write_text("".join(json.dumps({**r, col: i % 2 == 0}) + "\n" for i, r in enumerate(_rows())))
    with pytest.raises(
        DataError, match=rf"column '{col}' must be numeric, found dtype Boolean \(row 0: True\) \(.*b.jsonl, line 1\)"
    ):
        read_log(f)


def test_a_frame_read_from_a_file_names_the_line_when_given_its_source(tmp_path):
    """The CLI reads a query file as a frame first (predict keeps the columns it does not check): ``source``."""
    from v0lite.log import as_frame, validate_log

    f = tmp_path / "q.jsonl"
    f.write_text("".join(f'{{"policy": "a", "prompt": "p{i}", "step": {"null" if i == 2 else i}}}\n' for i in range(3)))
    frame = as_frame(f, keep_all=True)
    with pytest.raises(DataError, match=r"row 2: value None \(.*q.jsonl, line 3\) is not an integer"):
        validate_log(frame, require_score=False, source=f)
    with pytest.raises(DataError, match=r"row 2: value None is not an integer"):  # no source: the row only
        validate_log(frame, require_score=False)


def test_row_place_is_empty_where_a_file_has_no_lines_or_no_such_row(tmp_path):
    from v0lite._log_files import row_place

    (tmp_path / "a.json").write_bytes(b"[" + JSONL.replace(b"}\n{", b"},{").strip() + b"]")
    (tmp_path / "a.csv").write_bytes(CSV)
    assert row_place(tmp_path / "a.json", 0) == "" and row_place(tmp_path / "a.csv", 9) == ""
    assert row_place(tmp_path / "a.csv", 1) == f" ({tmp_path / 'a.csv'}, line 3)"
