"""RouterDC's JSON files (data/_routerdc.py): an empty file is refused naming it, and a model that some items
do not score (a name misspelt in one file) is named in a warning, never kept silently."""

from __future__ import annotations

import json
import warnings

import pytest

from v0lite.cli import main
from v0lite.data import convert_routerdc
from v0lite.exceptions import DataError, V0liteWarning


def _write(folder, name, items):
    (folder / name).write_text(json.dumps(items), encoding="utf-8")


def test_an_empty_routerdc_file_is_refused_naming_it(tmp_path, capsys):
    _write(tmp_path, "mmlu_train.json", [{"question": "Q1", "scores": {"m1": 1, "m2": 0}}])
    _write(tmp_path, "mmlu_test.json", [{"question": "Q2", "scores": {"m1": 1, "m2": 0}}])
    _write(tmp_path, "mbpp.json", [])
    with pytest.raises(DataError, match=r"mbpp\.json: no items \(an empty list\)\. Fix: "):
        convert_routerdc(tmp_path)
    out = tmp_path / "off"  # the official split names the file, not "dropping the questions also in train"
    assert main(["data", "convert", "routerdc", str(tmp_path), str(out), "--split", "official"]) == 1
    err = capsys.readouterr().err
    assert "mbpp.json: no items" in err and "also in train" not in err, err
    assert not out.exists()


def test_a_model_some_items_do_not_score_is_named_in_a_warning(tmp_path):
    _write(tmp_path, "a_train.json", [{"question": "Q1", "scores": {"m1": 1, "m2": 0}}])
    _write(tmp_path, "a_test.json", [{"question": "Q2", "scores": {"m1": 1, "m_2": 0}}])
    with pytest.warns(V0liteWarning) as caught:
        log = convert_routerdc(tmp_path)
    said = " ".join(str(w.message) for w in caught)
    assert "2 of 2 items do not score all 3 models" in said, said
    assert "'m2': ['a_test.json']" in said and "'m_2': ['a_train.json']" in said
    assert sorted(log["policy"].unique()) == ["m1", "m2", "m_2"]  # kept, as said
    _write(
        tmp_path,
        "a_test.json",
        [{"question": "Q2", "scores": {"m1": 1, "m2": 0}}, {"question": "Q3", "scores": {"m1": 0}}],
    )
    with pytest.warns(V0liteWarning, match=r"1 of 3 items do not score all 2 models\. Their other"):
        convert_routerdc(tmp_path)  # one item lacks m2, no whole file does
    _write(tmp_path, "a_test.json", [{"question": "Q2", "scores": {"m1": 1, "m2": 0}}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every item scores every model: not a word
        assert convert_routerdc(tmp_path).height == 4
