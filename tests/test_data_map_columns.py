"""``map_columns``: your own table (a spreadsheet export) becomes an outcome log; true/false/yes/no and
percentages are converted, nothing else, and a missing column is named."""

from __future__ import annotations

import polars as pl
import pytest

import v0lite.data as D
from tests.test_data import _write_jsonl
from v0lite.exceptions import DataError, ParameterError, V0liteWarning

# --------------------------------------------------------------------------- map_columns: your own table


_SHEET = (
    "Model,Question,Correct,Latency ms,Cost ($),score\n"
    "1.10,What is 2+2?,TRUE,120,0.002,7\n"
    "gpt,What is 2+2?,false,340,0.010,3\n"
    "1.10,Name a prime.,,90,0.002,5\n"
    "gpt,Name a prime.,True,200,0.010,9\n"
)


def test_map_columns_reads_a_spreadsheet_export(tmp_path):
    src = tmp_path / "sheet.csv"
    src.write_text(_SHEET, encoding="utf-8")
    names = dict(policy="Model", prompt="Question", score="Correct", cost="Cost ($)")
    with pytest.raises(DataError) as err, pytest.warns(V0liteWarning, match="kept as 'original_score'"):
        D.map_columns(src, **names)  # an empty outcome: counted and named, not dropped by default
    text = str(err.value)
    assert "column 'Correct' (score): 1 of 4 rows have no outcome" in text and "row 2." in text, text
    assert "drop_unscored=True" in text
    with pytest.warns(V0liteWarning) as caught:
        log = D.map_columns(src, **names, drop_unscored=True)
    texts = [str(w.message) for w in caught]
    assert any("dropped the 1 of 4 rows with no outcome" in t and "row 2" in t for t in texts), texts
    assert any("column 'score' is kept as 'original_score'" in t for t in texts), texts  # a clash is renamed
    assert log["policy"].to_list() == ["1.10", "gpt", "gpt"]  # CSV text stays text: 1.10 is not 1.1
    assert log["score"].to_list() == [1.0, 0.0, 1.0] and log["cost"].to_list() == [0.002, 0.010, 0.010]
    assert log.columns == ["policy", "prompt", "score", "Latency ms", "cost", "original_score"]
    assert log["Latency ms"].to_list() == [120, 340, 200] and log["original_score"].to_list() == [7, 3, 9]


def test_map_columns_converts_true_false_yes_no_and_nothing_else(tmp_path):
    rows = [{"m": "a", "q": "x", "ok": True}, {"m": "b", "q": "x", "ok": False}]
    src = _write_jsonl(tmp_path / "b.jsonl", rows)
    assert D.map_columns(src, policy="m", prompt="q", score="ok")["score"].to_list() == [1.0, 0.0]
    pl.DataFrame({"m": ["a", "b"], "q": ["x", "x"], "ok": [True, False]}).write_parquet(tmp_path / "b.parquet")
    assert D.map_columns(tmp_path / "b.parquet", policy="m", prompt="q", score="ok")["score"].to_list() == [1.0, 0.0]
    words = {"m": ["a"] * 5, "q": list("vwxyz"), "ok": ["YES", " no", "True", "FALSE", "yes"]}
    assert D.map_columns(words, policy="m", prompt="q", score="ok")["score"].to_list() == [1.0, 0.0, 1.0, 0.0, 1.0]
    for bad, row in ((["yes", "maybe"], 1), (["1%", "yes"], 0), (["y", "n"], 0), (["0", "1 of 2"], 1)):
        with pytest.raises(DataError, match=rf"column 'ok' \(score\), row {row}: value '{bad[row]}' is not an outcome"):
            D.map_columns({"m": ["a", "b"], "q": ["x", "y"], "ok": bad}, policy="m", prompt="q", score="ok")
    with pytest.raises(ParameterError, match="score_scale=100 divides numbers"):
        D.map_columns(words, policy="m", prompt="q", score="ok", score_scale=100)


def test_map_columns_scales_percentages_and_names_missing_columns():
    data = {"Model": ["a", "a"], "Question": ["x", "y"], "Pct": [0, 75], "Task ": ["t", "u"]}
    with pytest.raises(DataError, match=r"row 1: value 75 is not a success rate .*percentages\? Fix: divide by 100"):
        D.map_columns(data, policy="Model", prompt="Question", score="Pct")
    log = D.map_columns(data, policy="Model", prompt="Question", score="Pct", score_scale=100, task="Task ")
    assert log["score"].to_list() == [0.0, 0.75] and log["task"].to_list() == ["t", "u"]
    with pytest.raises(DataError, match=r"after dividing by 10\)"):
        D.map_columns(data, policy="Model", prompt="Question", score="Pct", score_scale=10)
    with pytest.raises(
        DataError, match=r"column 'model' \(policy\) is not in the data .*Fix: pass policy='Model'"
    ) as err:
        D.map_columns(data, policy="model", prompt="Question", score="Pct")
    assert err.value.column == "policy"  # the CLI names its flag from it
    with pytest.raises(ParameterError, match="policy and prompt both name the column 'Model'"):
        D.map_columns(data, policy="Model", prompt="Model", score="Pct")
    for scale in (0, -1, float("nan"), True, "100"):
        with pytest.raises(ParameterError, match="score_scale must be a positive number"):
            D.map_columns(data, policy="Model", prompt="Question", score="Pct", score_scale=scale)
    assert "map_columns" in D.__all__


def test_map_columns_reads_numbers_written_as_text_beside_words():
    data = {"m": ["a"] * 7, "q": list("tuvwxyz"), "ok": ["True", "yes", "1", "1.0", "0", " 0.5 ", ""]}
    with pytest.warns(V0liteWarning, match="dropped the 1 of 7 rows"):
        log = D.map_columns(data, policy="m", prompt="q", score="ok", drop_unscored=True)
    assert log["score"].to_list() == [1.0, 1.0, 1.0, 1.0, 0.0, 0.5]
    with pytest.raises(DataError, match=r"\(score\), row 1: value '2' is not a success rate in \[0, 1\]"):
        D.map_columns({"m": ["a", "a"], "q": ["x", "y"], "ok": ["no", "2"]}, policy="m", prompt="q", score="ok")
    pct = {"m": ["a", "a"], "q": ["x", "y"], "ok": ["50", "100"]}  # numbers only: --score-scale applies
    assert D.map_columns(pct, policy="m", prompt="q", score="ok", score_scale=100)["score"].to_list() == [0.5, 1.0]
    with pytest.raises(ParameterError, match="score_scale=100 divides numbers"):  # words and a scale: ambiguous
        D.map_columns(data, policy="m", prompt="q", score="ok", score_scale=100)


def test_map_columns_errors_name_your_column_and_the_row_as_read(tmp_path):
    src = tmp_path / "costs.csv"
    src.write_text("Model,Q,ok,cost_usd\na,x,,0.1\na,y,yes,0.2\nb,x,no,$0.016050\n", encoding="utf-8")
    names = dict(policy="Model", prompt="Q", score="ok", cost="cost_usd", drop_unscored=True)
    with pytest.warns(V0liteWarning, match="dropped the 1 of 3 rows"), pytest.raises(DataError) as err:
        D.map_columns(src, **names)
    text = str(err.value)  # row 2 of the table as read (row 1 once the unscored row 0 is dropped)
    assert text.startswith("column 'cost_usd' (cost) must be numeric") and "(row 2: '$0.016050')" in text, text
    assert "Fix: write 'cost_usd' as plain numbers (strip the currency sign" in text and "leave cost out" in text
    assert "'cost'" not in text and err.value.column == "cost"
    data = {"M": ["a", "a", "b"], "Q": ["x", "y", "x"], "ok": [None, 1.0, 0.0], "C": [0.1, 0.2, -1.0]}
    with pytest.warns(V0liteWarning), pytest.raises(DataError, match=r"^column 'C' \(cost\), row 2: value -1\.0 .*"
                                                    r"Fix: give every row its cost, or leave cost out\.$"):  # fmt: skip
        D.map_columns(data, policy="M", prompt="Q", score="ok", cost="C", drop_unscored=True)
    blank = {"M": ["a", "", "b"], "Q": ["x", "y", ""], "ok": [1.0, None, 0.0]}  # a dropped row is not checked
    with pytest.warns(V0liteWarning), pytest.raises(DataError, match=r"^column 'Q' \(prompt\), row 2: value ''"):
        D.map_columns(blank, policy="M", prompt="Q", score="ok", drop_unscored=True)


def test_map_columns_reads_dotted_names_inside_nested_objects(tmp_path):
    rows = [
        {"model": {"name": m, "size": 7}, "q": q, "eval": {"ok": ok, "grade": {"pct": pct}}, "usage": {"usd": 0.5}}
        for m, q, ok, pct in (("a", "x", True, 80), ("b", "x", False, 20), ("a", "y", False, 0))
    ]
    rows[0]["chat"] = {"messages": [{"role": "user", "content": "x"}]}
    src = _write_jsonl(tmp_path / "nested.jsonl", rows)
    names = dict(policy="model.name", prompt="q", cost="usage.usd")
    log = D.map_columns(src, **names, score="eval.ok")
    assert log["policy"].to_list() == ["a", "b", "a"] and log["score"].to_list() == [1.0, 0.0, 0.0]
    assert log["cost"].to_list() == [0.5] * 3 and "model" in log.columns  # the object itself is kept
    log = D.map_columns(src, **names, score="eval.grade.pct", score_scale=100, step="model.size")
    assert log["score"].to_list() == [0.8, 0.2, 0.0] and log["step"].to_list() == [7] * 3
    with pytest.raises(DataError, match=r"^column 'model.nme' \(policy\): 'model' has no field 'nme' \(fields: \['nam"):
        D.map_columns(src, **{**names, "policy": "model.nme"}, score="eval.ok")
    with pytest.raises(DataError, match=r"'chat.messages' holds lists.*a list of messages: store the last user") as err:
        D.map_columns(src, **{**names, "prompt": "chat.messages.content"}, score="eval.ok")
    assert err.value.column == "prompt"
    with pytest.raises(
        DataError, match=r"\(task\): 'chat.messages' holds lists.*Fix: name a column that holds one task"
    ) as err:
        D.map_columns(src, **names, score="eval.ok", task="chat.messages.role")
    assert "a list of messages" not in str(err.value) and err.value.column == "task"  # not a prompt: no chat advice
    with pytest.raises(DataError, match=r"^column 'chat.messages' \(prompt\) must hold text.*last user message"):
        D.map_columns(src, **{**names, "prompt": "chat.messages"}, score="eval.ok")
    with pytest.raises(DataError, match=r"column 'model.name.x' .*'model.name' holds String, not objects"):
        D.map_columns(src, **{**names, "policy": "model.name.x"}, score="eval.ok")
