"""``v0lite data`` (commands/data.py): ``convert`` counts exact repeats of a source line as ``map`` does, the
errors name LOG once, and counts of one read in the singular."""

from __future__ import annotations

import json

import pytest

from v0lite.cli import main
from v0lite.log import read_log


def _lines(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["v0", "oneshot-rlvr", "routerbench"])
def test_data_convert_counts_exact_repeats_of_a_source_line(tmp_path, capsys, fmt):
    """A line copied twice is kept (each may be an observation) and said, with the same words as `data map`."""
    if fmt == "v0":
        (tmp_path / "prompt_dict.json").write_text(json.dumps({"d_7": "1+1?", "d_8": "2+2?"}))
        row = {"id": 7, "score": 0.6, "model": "m", "step": 16, "dataset": "d"}
        src = _lines(tmp_path / "ctx.jsonl", [row, {**row, "id": 8}, row])
    elif fmt == "oneshot-rlvr":
        row = {"index": 3, "prompt": "P", "data_source": "d", "acc_history": [0.0, 0.5]}
        src = _lines(tmp_path / "h_acc_history.jsonl", [row, {**row, "index": 4}, row])  # 2 visits a line
    else:
        src, head = tmp_path / "rb", ",sample_id,prompt,eval_name,m1,m1|total_cost\n"
        src.mkdir()
        (src / "t_train.csv").write_text(head + "0,t.1,\"['Q1']\",t,1.0,0.01\n1,t.1,\"['Q1']\",t,1.0,0.01\n")
        (src / "t_test.csv").write_text(head + "2,t.2,\"['Q2']\",t,0.0,0.02\n")
    out = tmp_path / ("o" if fmt == "routerbench" else "o.jsonl")
    assert main(["data", "convert", fmt, str(src), str(out)]) == 0
    said = capsys.readouterr().out
    n, twins = {"v0": (3, 1), "oneshot-rlvr": (6, 2), "routerbench": (2, 1)}[fmt]
    path = out / "train.jsonl" if fmt == "routerbench" else out
    assert f"{path}: {n} rows, {twins} repeating an earlier row exactly (kept: each is an observation)" in said, said
    assert read_log(path).height == n
    if fmt == "routerbench":  # the test log repeats nothing: its line says only what it wrote
        assert f"wrote test: {out / 'test.jsonl'}\n" in said


def test_data_prices_names_log_once_and_counts_read_in_the_singular(tmp_path, capsys):
    log = tmp_path / "l.csv"
    log.write_text("policy,prompt,score,cost\na,x,1,0.1\na,y,0,\n", encoding="utf-8")
    assert main(["data", "prices", str(log), str(tmp_path / "p.json")]) == 1
    err = capsys.readouterr().err
    assert f"LOG {log}: column 'cost', row 1" in err and err.count(f"LOG {log}") == 1, err
    one = tmp_path / "one.csv"
    one.write_text("prompt\nx\n", encoding="utf-8")
    assert main(["data", "prompts", str(one), str(tmp_path / "q.jsonl")]) == 0
    assert "1 distinct prompt of 1 row (columns" in capsys.readouterr().out
