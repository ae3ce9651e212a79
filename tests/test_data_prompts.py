"""``v0lite data prompts`` (data/_prompts.py): only the prompt columns are kept, every prompt is checked, and
the file is read by the outcome log's one reader, so what that reader refuses is refused here too."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

from v0lite.cli import main
from v0lite.data._prompts import read_prompt_columns
from v0lite.exceptions import DataError


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_data_prompts_refuses_empty_prompts_and_reads_only_prompt_columns(tmp_path, capsys, guarantees):
    out = tmp_path / "p.jsonl"
    for bad, shown in (
        ({"prompt": None}, "line 2: 'prompt' is null"),
        ({"prompt": ""}, "line 2: 'prompt' is '': empty"),
        ({"task": "t"}, "line 2: 'prompt' is missing"),
        ({"prompt": 5}, "line 2: 'prompt' is 5: a number, not text"),  # not read as the text "5"
        ({"prompt": ["x"]}, r"line 2 \(row 1\): column 'prompt' holds \[\"x\"\] \(a list\) where text belongs"),
    ):
        src = _jsonl(tmp_path / "q.jsonl", [{"prompt": "a", "task": "t"}, bad])
        assert main(["data", "prompts", str(src), str(out), "--force"]) == 1
        err = capsys.readouterr().err
        assert re.search(rf"LOG {re.escape(str(src))}, {shown}.*Fix", err), err
        assert not out.exists()
    (tmp_path / "q.csv").write_text("prompt,task\na,t\n,t\n")
    assert main(["data", "prompts", str(tmp_path / "q.csv"), str(out)]) == 1
    assert "q.csv, row 1: 'prompt' is null" in capsys.readouterr().err
    # an unused column holding text where a log has numbers is not checked
    src = _jsonl(tmp_path / "q.jsonl", [{"prompt": "a", "score": "1", "prompt_id": 3}, {"prompt": "b", "score": 0}])
    assert main(["data", "prompts", str(src), str(out)]) == 0
    got = pl.read_ndjson(out)
    assert got.columns == ["prompt", "prompt_id"] and got["prompt"].to_list() == ["a", "b"]
    assert got["prompt_id"].to_list() == [3, None]
    guarantees.tick("bad-input cases tried", 7)


def test_prompts_of_one_kind_that_is_not_text_are_named_by_line_or_row(tmp_path):
    for name, text, shown in (
        ("a.jsonl", '{"prompt": ["x"]}\n\n{"prompt": ["y"]}\n', "a.jsonl, line 1: 'prompt' is ['x']: a list, not"),
        ("b.jsonl", '{"prompt": {"role": "user"}}\n', "b.jsonl, line 1: 'prompt' is {'role': 'user'}: an object"),
        ("c.json", '[{"prompt": "a"}, {"prompt": true}]', "c.json, row 1: 'prompt' is True: a boolean, not text"),
        ("d.jsonl", '{"x": 1}\n\n{"prompt": null}\n', "d.jsonl, line 1: 'prompt' is missing"),
        ("e.json", '[{"prompt": "a"}, 5]', "e.json, row 1: expected a JSON object, got int"),
    ):
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError) as e:
            read_prompt_columns(tmp_path / name)
        assert shown in str(e.value) and "Fix:" in str(e.value), str(e.value)
    (tmp_path / "ok.jsonl").write_text('{"prompt": "5"}\n{"prompt": "true"}\n')  # texts that look like numbers
    assert read_prompt_columns(tmp_path / "ok.jsonl")["prompt"].to_list() == ["5", "true"]


@pytest.mark.parametrize(
    "name, text, shown",
    [
        ("h.csv", "prompt,task,prompt\na,t,b\n", "h.csv, line 1: the header repeats the column(s) ['prompt']"),
        ("k.jsonl", '{"prompt": "a"}\n{"prompt": "b", "prompt": "c"}\n', "line 2 (row 1): the key 'prompt' appears"),
        ("r.csv", "prompt,task\na,t\nb,t,x\n", "r.csv, line 3: 3 fields where the header has 2 (extra value 'x'"),
        ("t.jsonl", '{"prompt": "a", "task": 1}\n{"prompt": "b", "task": [1]}\n', "line 2 (row 1): column 'task'"),
        ("u.jsonl", '{"prompt": "a", "note": "\\ud800"}\n', "line 1 (row 0): column 'note' holds undecodable text"),
    ],
)
def test_what_the_log_reader_refuses_is_refused_in_a_prompt_file(tmp_path, capsys, name, text, shown, guarantees):
    """A repeated header or key (silently read one way or the other), a ragged row, a type clash, undecodable
    text: refused as the outcome log's reader refuses them, naming the line, the column and the value."""
    src, out = tmp_path / name, tmp_path / "p.jsonl"
    src.write_text(text, encoding="utf-8")
    assert main(["data", "prompts", str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert f"LOG {src}" in err and shown in err and "Fix:" in err, err
    assert not out.exists()
    guarantees.tick("bad-input cases tried")


@pytest.mark.parametrize("name, text", [("h.csv", "prompt,task\n"), ("h.json", "[]")])
def test_data_prompts_refuses_a_file_without_rows_before_writing(tmp_path, capsys, name, text):
    """A header alone: refused naming LOG and the fix (an empty OUT and exit 0 would pass for a result)."""
    src, out = tmp_path / name, tmp_path / "p.jsonl"
    src.write_text(text, encoding="utf-8")
    assert main(["data", "prompts", str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert f"LOG {src}: no rows" in err and "Fix:" in err, err
    assert not out.exists()
