"""v0lite/_log_files.py's sniffing: a file whose bytes are not what its name says (gzip, Parquet, a JSON
array, JSON lines, CSV) or a suffix v0lite does not read (.gz, .tsv) is refused naming what it is, with
the fix (rename or unpack), before any parser guesses."""

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
