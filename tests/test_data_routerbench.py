"""RouterBench's CSVs (data/_routerbench.py): a row without its id or task is refused naming the file, row and
column; test prompts whose text is also a train prompt are kept and counted in a note."""

from __future__ import annotations

import warnings

import pytest

from v0lite.data import convert_routerbench
from v0lite.exceptions import DataError, V0liteWarning

_HEAD = ",sample_id,prompt,eval_name,m1,m1|total_cost\n"


def _folder(tmp_path, train_rows, test_rows):
    (tmp_path / "t_train.csv").write_text(_HEAD + "".join(train_rows), encoding="utf-8")
    (tmp_path / "t_test.csv").write_text(_HEAD + "".join(test_rows), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    "row, col",
    [("0,,\"['Q1']\",t,1.0,0.01\n", "sample_id"), ("0,t.1,\"['Q1']\",,1.0,0.01\n", "eval_name"),
     ("0,t.1,\"['Q1']\",  ,1.0,0.01\n", "eval_name")],
)  # fmt: skip
def test_a_blank_sample_id_or_eval_name_is_refused_naming_the_row(tmp_path, row, col, guarantees):
    src = _folder(tmp_path, ["1,t.0,\"['Q0']\",t,0.0,0.01\n", row], ["2,t.2,\"['Q2']\",t,0.0,0.02\n"])
    with pytest.raises(DataError) as e:
        convert_routerbench(src)
    msg = str(e.value)
    assert f"t_train.csv, row 1, column {col!r}: empty. Fix: fill in that row's {col}" in msg, msg
    guarantees.tick("bad-input cases tried")


def test_test_prompts_also_in_train_are_kept_and_counted(tmp_path):
    """The same text, or RouterBench's doubled text ('X\\nX' of a train X): kept as shipped, and said."""
    train = ["0,t.1,\"['Q1']\",t,1.0,0.01\n", "1,t.2,\"['Q2']\",t,1.0,0.01\n", "2,t.3,\"['Q3']\",t,1.0,0.01\n"]
    test = ["3,t.4,\"['Q1']\",t,0.0,0.02\n", "4,t.5,\"['Q2', 'Q2']\",t,0.0,0.02\n", "5,t.6,\"['Q6']\",t,0.0,0.02\n"]
    with pytest.warns(V0liteWarning) as caught:
        out = convert_routerbench(_folder(tmp_path, train, test))
    said = " ".join(str(w.message) for w in caught)
    assert "2 test sample_ids have a prompt that is also a train prompt (1 the same text, 1 as" in said, said
    assert "['t.4', 't.5']" in said and "kept" in said
    assert out["test"]["prompt_id"].to_list() == ["t.4", "t.5", "t.6"]  # nothing dropped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no shared prompt: not a word
        convert_routerbench(_folder(tmp_path, train, test[2:]))
