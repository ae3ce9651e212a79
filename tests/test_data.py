"""Tests of v0lite.data: converters on tiny fixtures, the demo generator, real data when present."""

from __future__ import annotations

import csv
import doctest
import json
import warnings
from pathlib import Path

import polars as pl
import pytest

import v0lite.data as D
from v0lite.exceptions import DataError, ParameterError, V0liteWarning
from v0lite.log import read_log

# --------------------------------------------------------------------------- fixtures


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def v0_dir(tmp_path):
    _write_jsonl(
        tmp_path / "context.jsonl",
        [
            {"id": 1, "score": -1.0, "type": "context", "model": "A", "step": 16, "dataset": "dapomath"},
            {"id": 2, "score": 0.6, "type": "context", "model": "A", "step": 64, "dataset": "dapomath"},
            {"id": 1, "score": 1.0, "type": "context", "model": "B", "step": 16, "dataset": "dapomath"},
        ],
    )
    (tmp_path / "prompt_dict.json").write_text(
        json.dumps({"dapomath_1": "Find x if 2x = 4.", "dapomath_2": "求 1+1 的值。"}), encoding="utf-8"
    )
    return tmp_path


_RB_MODELS = ["m-small", "org/m-large"]


def _write_rb_csv(path: Path, rows: list[tuple]) -> None:
    header = ["", "sample_id", "prompt", "eval_name", *_RB_MODELS]
    header += [f"{m}|model_response" for m in _RB_MODELS] + [f"{m}|total_cost" for m in _RB_MODELS]
    header += ["oracle_model_to_route_to"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for k, (sid, parts, task, outs, costs) in enumerate(rows):
            w.writerow([k, sid, repr(parts), task, *outs, *["['x']"] * len(outs), *costs, "m-small"])


@pytest.fixture
def rb_dir(tmp_path):
    big = "x" * 200_000  # larger than csv's default field limit
    _write_rb_csv(
        tmp_path / "arc_train.csv",
        [
            ("arc.1", ["Q1 part a", "Q1 part b"], "arc", ("1.0", "0.0"), ("0.001", "0.01")),
            ("arc.2", ["Q2 'quoted'"], "arc", ("", "1.0"), ("0.002", "0.02")),
        ],
    )
    _write_rb_csv(
        tmp_path / "mbpp_train.csv", [("mbpp.1", ["Write " + big], "mbpp", ("0.0", "1.0"), ("1e-05", "0.03"))]
    )
    _write_rb_csv(
        tmp_path / "arc_test.csv",
        [("arc.3", ["Q3"], "arc", ("", ""), ("0.0", "0.0")), ("arc.4", ["Q4"], "arc", ("1.0", "1.0"), ("0.5", "0.6"))],
    )
    return tmp_path


@pytest.fixture
def dc_dir(tmp_path):
    def item(q, s1, s2):
        return {"question": q, "scores": {"a/m1": s1, "b/m2": s2}}

    (tmp_path / "mmlu_train.json").write_text(json.dumps([item("M1", 0.7, 0.0), item("M2", 0.2, 1.0)]))
    (tmp_path / "mmlu_test.json").write_text(json.dumps([item("M3", 0.9, 0.0), item("M1", 0.7, 0.0)]))
    (tmp_path / "gsm8k-test.json").write_text(json.dumps([item("G1", 0.3, 0.9)]))
    (tmp_path / "arc_easy_train.json").write_text(json.dumps([{**item("A1", 0.4, 0), "cluster_id": 3}]))
    (tmp_path / "MATH_prealgebra.json").write_text(json.dumps([item("P1", 1, 0)]))
    return tmp_path


@pytest.fixture
def oneshot_file(tmp_path):
    return _write_jsonl(
        tmp_path / "dsr_sub_acc_history.jsonl",
        [
            {
                "index": 0,
                "prompt": "P0",
                "ground_truth": "1",
                "data_source": "deepscaler",
                "acc_history": [0.0, 0.125, 0.5],
            },
            {"index": 7, "prompt": "P7", "ground_truth": "2", "data_source": "deepscaler", "acc_history": [1.0]},
        ],
    )


# --------------------------------------------------------------------------- data_dir


def test_data_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("V0LITE_DATA", str(tmp_path))
    assert D.data_dir() == tmp_path
    monkeypatch.setenv("V0LITE_DATA", str(tmp_path / "missing"))
    with pytest.warns(V0liteWarning, match="V0LITE_DATA"):
        assert D.data_dir() is None
    monkeypatch.delenv("V0LITE_DATA")
    d = D.data_dir()
    assert d is None or (d.is_dir() and d.name == "data")


# --------------------------------------------------------------------------- v0


def test_convert_v0(v0_dir):
    df = D.convert_v0(v0_dir / "context.jsonl")
    assert df.columns == ["policy", "prompt", "score", "step", "n", "prompt_id", "task"]
    assert df["score"].to_list() == [0.0, 0.8, 1.0]
    assert df["policy"].to_list() == ["A", "A", "B"]
    assert df["step"].to_list() == [16, 64, 16]
    assert df["n"].to_list() == [10, 10, 10]
    assert df["prompt_id"].to_list() == ["1", "2", "1"]
    assert df["prompt"][1] == "求 1+1 的值。"
    assert set(df["task"]) == {"dapomath"}
    # dict instead of file
    df2 = D.convert_v0(v0_dir / "context.jsonl", prompt_dict={"dapomath_1": "a", "dapomath_2": "b"})
    assert df2["prompt"].to_list() == ["a", "b", "a"]


def test_convert_v0_errors(v0_dir):
    with pytest.raises(DataError, match=r"line 2: prompt id 2 \(key 'dapomath_2'\)"):
        D.convert_v0(v0_dir / "context.jsonl", prompt_dict={"dapomath_1": "a"})
    bad = _write_jsonl(v0_dir / "bad.jsonl", [{"id": 1, "score": 1.5, "model": "A", "step": 1, "dataset": "dapomath"}])
    with pytest.raises(DataError, match=r"line 1: score 1.5 is outside \[-1, 1\]"):
        D.convert_v0(bad)
    nomodel = _write_jsonl(v0_dir / "nomodel.jsonl", [{"id": 1, "score": 1.0, "step": 1, "dataset": "dapomath"}])
    with pytest.raises(DataError, match="'model' is missing"):
        D.convert_v0(nomodel)
    (v0_dir / "broken.jsonl").write_text('{"id": 1}\n{oops\n')
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        D.convert_v0(v0_dir / "broken.jsonl")
    with pytest.raises(DataError, match="not found"):
        D.convert_v0(v0_dir / "absent.jsonl")
    with pytest.raises(DataError, match="prompt_dict.json file not found"):
        D.convert_v0(v0_dir / "context.jsonl", prompt_dict=v0_dir / "nope.json")


# --------------------------------------------------------------------------- routerbench


def test_convert_routerbench(rb_dir):
    with pytest.warns(V0liteWarning) as rec:
        out = D.convert_routerbench(rb_dir)
    msg = " ".join(str(w.message) for w in rec)
    assert "skipped 3 blank outcome cells" in msg
    assert "arc.2" in msg and "arc.3" in msg and "arc.4" not in msg
    train, test = out["train"], out["test"]
    assert set(out) == {"train", "test"}
    assert train.columns == ["policy", "prompt", "score", "n", "cost", "prompt_id", "task"]
    # 3 train rows x 2 models - 1 blank; 2 test rows x 2 models - 2 blanks
    assert train.height == 5 and test.height == 2
    first = train.filter(pl.col("prompt_id") == "arc.1")
    assert first["prompt"].to_list() == ["Q1 part a\nQ1 part b"] * 2
    assert first["policy"].to_list() == _RB_MODELS
    assert first["score"].to_list() == [1.0, 0.0]
    assert first["cost"].to_list() == [0.001, 0.01]
    arc2 = train.filter(pl.col("prompt_id") == "arc.2")
    assert arc2["policy"].to_list() == ["org/m-large"] and arc2["prompt"][0] == "Q2 'quoted'"
    big = train.filter(pl.col("task") == "mbpp")
    assert big.height == 2 and len(big["prompt"][0]) > 200_000
    assert test["prompt_id"].to_list() == ["arc.4", "arc.4"]
    assert set(train["n"]) == {1}


def test_convert_routerbench_errors(tmp_path, rb_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x_test.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"no '\*_train.csv'"):
        D.convert_routerbench(empty)
    _write_rb_csv(rb_dir / "bad_test.csv", [("bad.1", ["Q"], "bad", ("yes", "1.0"), ("0.1", "0.1"))])
    with pytest.raises(DataError, match=r"bad_test.csv, row 0 \(sample_id 'bad.1'\), column 'm-small'"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", V0liteWarning)
            D.convert_routerbench(rb_dir)


def test_routerbench_missing_folder(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        D.convert_routerbench(tmp_path / "nope")


# --------------------------------------------------------------------------- routerdc


def test_convert_routerdc(dc_dir):
    df = D.convert_routerdc(dc_dir)
    assert df.columns == ["policy", "prompt", "score", "prompt_id", "task", "split"]
    assert df.height == 2 * 7
    tasks = dict(zip(df["prompt_id"], zip(df["task"], df["split"])))
    assert tasks["mmlu_train:0"] == ("mmlu", "train")
    assert tasks["gsm8k-test:0"] == ("gsm8k", "test")
    assert tasks["arc_easy_train:0"] == ("arc_easy", "train")
    assert tasks["MATH_prealgebra:0"] == ("MATH_prealgebra", "all")
    # MCQ scores binarised, graded tasks kept
    mmlu = df.filter(pl.col("prompt_id") == "mmlu_train:1")
    assert mmlu["score"].to_list() == [1.0, 1.0]
    arc = df.filter(pl.col("task") == "arc_easy")
    assert arc["score"].to_list() == [1.0, 0.0]
    gsm = df.filter(pl.col("task") == "gsm8k")
    assert gsm["score"].to_list() == [0.3, 0.9]
    assert "cluster_id" not in df.columns


def test_convert_routerdc_errors(tmp_path):
    with pytest.raises(DataError, match="no '\\*.json'"):
        D.convert_routerdc(tmp_path)
    (tmp_path / "x.json").write_text(json.dumps([{"question": "q", "scores": {"m": "high"}}]))
    with pytest.raises(DataError, match=r"x.json, item 0: field \"scores\['m'\]\" = 'high'"):
        D.convert_routerdc(tmp_path)
    (tmp_path / "x.json").write_text(json.dumps([{"question": "q", "scores": {"m": 1.5}}]))
    with pytest.raises(DataError, match=r"item 0, model 'm': score 1.5"):
        D.convert_routerdc(tmp_path)
    (tmp_path / "x.json").write_text(json.dumps({"question": "q"}))
    with pytest.raises(DataError, match="JSON list"):
        D.convert_routerdc(tmp_path)


def test_convert_routerdc_official_split(dc_dir, tmp_path):
    (dc_dir / "mbpp.json").write_text(
        json.dumps(
            [
                {"question": "B1", "scores": {"a/m1": 0.5, "b/m2": 0.1}},
                {"question": "A1", "scores": {"a/m1": 1, "b/m2": 1}},
            ]
        )
    )
    (dc_dir / "notes.json").write_text(json.dumps([{"question": "N1", "scores": {"a/m1": 0.5}}]))
    with pytest.warns(V0liteWarning) as rec:
        out = D.convert_routerdc(dc_dir, split="official")
    msgs = [str(w.message) for w in rec]
    assert set(out) == {"train", "test_id", "test_ood"}
    assert sorted(set(out["train"]["prompt"])) == ["A1", "M1", "M2"]
    # M1 (mmlu train and test) and A1 (arc_easy_train and mbpp) are dropped from the tests, and reported
    assert sorted(set(out["test_id"]["prompt"])) == ["G1", "M3"]
    assert sorted(set(out["test_ood"]["prompt"])) == ["B1", "P1"]
    drop = next(m for m in msgs if "dropped test questions" in m)
    assert "mmlu_test.json 1" in drop and "mbpp.json 1" in drop and "gsm8k-test.json 0" in drop
    assert "2 in all" in drop
    assert any("notes.json" in m and "left out" in m for m in msgs)
    assert any("ceval.json" in m and "absent" in m for m in msgs)
    assert dict(zip(out["test_id"]["prompt"], out["test_id"]["task"]))["G1"] == "gsm8k"
    assert set(out["test_ood"]["task"]) == {"MATH_prealgebra", "mbpp"}
    assert all(set(f["split"]) == {name} for name, f in out.items())
    # without a split: the old single log; notes.json's item lacks a model, which is said
    with pytest.warns(V0liteWarning, match=r"1 of 10 items do not score all 2 models.*'b/m2': \['notes\.json'\]"):
        assert D.convert_routerdc(dc_dir).height == 2 * 9 + 1  # notes.json has one model


def test_convert_routerdc_split_errors(dc_dir, tmp_path):
    with pytest.raises(ValueError, match=r"unknown RouterDC split 'random'.*\['official'\]"):
        D.convert_routerdc(dc_dir, split="random")
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "mmlu_train.json").write_text(json.dumps([{"question": "Q", "scores": {"m": 1}}]))
    with pytest.raises(DataError, match="no test_id file"), warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)
        D.convert_routerdc(tmp_path / "only", split="official")


def test_convert_routerdc_official_writes(dc_dir, tmp_path, capsys):
    from v0lite.cli import main

    assert main(["data", "convert", "routerdc", str(dc_dir), str(tmp_path / "o"), "--split", "official"]) == 0
    err = capsys.readouterr().err
    assert "mmlu_test.json 1" in err
    logs = {n: read_log(tmp_path / "o" / f"{n}.jsonl") for n in ("train", "test_id", "test_ood")}
    assert logs["test_id"]["prompt"].n_unique() == 2 and "task" in logs["test_ood"].columns
    assert main(["data", "convert", "v0", str(dc_dir), str(tmp_path / "x"), "--split", "official"]) == 1
    assert "routerdc format only" in capsys.readouterr().err
    assert main(["data", "convert", "routerdc", str(dc_dir), str(tmp_path / "y"), "--split", "nope"]) == 2
    assert "official" in capsys.readouterr().err


def test_split_by_prompt(dc_dir):
    df = D.convert_routerdc(dc_dir)
    train, test = D.split_by_prompt(df, test_size=0.4, random_state=1)
    assert train.height + test.height == df.height
    assert not set(train["prompt"]) & set(test["prompt"])
    assert test["prompt"].n_unique() == 2  # round(0.4 * 5 unique prompts)
    # duplicated prompt "M1" (mmlu train and test) stays on one side
    side = [s for s in (train, test) if "M1" in set(s["prompt"])]
    assert len(side) == 1 and side[0].filter(pl.col("prompt") == "M1").height == 4
    again = D.split_by_prompt(df, test_size=0.4, random_state=1)
    assert again[0].equals(train) and again[1].equals(test)
    with pytest.raises(DataError, match="test_size"):
        D.split_by_prompt(df, test_size=1.0)
    with pytest.raises(DataError, match="at least 2"):
        D.split_by_prompt({"policy": ["a"], "prompt": ["x"], "score": [1.0]})


# --------------------------------------------------------------------------- oneshot


def test_convert_oneshot(oneshot_file):
    df = D.convert_oneshot_rlvr(oneshot_file)
    assert df.columns == ["policy", "prompt", "score", "step", "n", "prompt_id", "task"]
    assert df.height == 4
    assert df["step"].to_list() == [0, 1, 2, 0]
    assert df["score"].to_list() == [0.0, 0.125, 0.5, 1.0]
    assert df["prompt_id"].to_list() == ["0", "0", "0", "7"]
    assert set(df["policy"]) == {D.ONESHOT_POLICY}
    assert set(df["n"]) == {8} and set(df["task"]) == {"deepscaler"}


def test_convert_oneshot_errors(tmp_path):
    f = _write_jsonl(tmp_path / "h.jsonl", [{"index": 0, "prompt": "P", "data_source": "d", "acc_history": []}])
    with pytest.raises(DataError, match="line 1: 'acc_history'"):
        D.convert_oneshot_rlvr(f)
    ok = {"index": 0, "prompt": "P", "data_source": "d", "acc_history": [0.5]}
    f = _write_jsonl(tmp_path / "h.jsonl", [ok, ok, ok, {**ok, "acc_history": [0.5, 1.5]}])
    # the input's line and field, not the converted log's row
    with pytest.raises(DataError, match=r"h.jsonl, line 4: acc_history\[1\] = 1.5 is not an accuracy in \[0, 1\]"):
        D.convert_oneshot_rlvr(f)


def test_oneshot_takes_its_folder_and_names_the_file_to_pass(tmp_path, oneshot_file, guarantees):
    """routerbench and routerdc take the dataset's folder: so does oneshot-rlvr; another file of the
    dataset (the prompts' parquet, a step's accuracies) is refused naming the acc-history file."""
    assert D.convert_oneshot_rlvr(tmp_path).equals(D.convert_oneshot_rlvr(oneshot_file))
    for other in ("dsr_sub.parquet", "acc_step_500.json"):
        (tmp_path / other).write_bytes(b"PAR1\xf2" if other.endswith("parquet") else b"{'a': 1}")
        with pytest.raises(
            DataError, match=rf"{other}: is not the acc-history JSON-lines file.*Fix: pass {oneshot_file}"
        ):
            D.convert_oneshot_rlvr(tmp_path / other)
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError, match=r"sub: a folder with no \*acc_history\*.jsonl file.*Fix: pass"):
        D.convert_oneshot_rlvr(tmp_path / "sub")
    guarantees.tick("bad-input cases tried", 3)


def test_converters_read_a_bom_and_name_utf16(tmp_path, guarantees):
    """fit reads a UTF-8 byte-order mark (guarantees.md): every converter does too; UTF-16 is named."""
    for d in ("v0", "rd", "rb", "os"):
        (tmp_path / d).mkdir()
    (tmp_path / "v0" / "prompt_dict.json").write_text(json.dumps({"dapomath_1": "Q1"}))
    v0 = _write_jsonl(
        tmp_path / "v0" / "c.jsonl", [{"id": 1, "score": 0.2, "model": "A", "step": 1, "dataset": "dapomath"}]
    )
    rd = tmp_path / "rd" / "mbpp.json"
    rd.write_text(json.dumps([{"question": "Q", "scores": {"a": 0.5, "b": 1.0}}]))
    head = ",sample_id,prompt,eval_name,m1,m1|total_cost\n"
    (tmp_path / "rb" / "t_test.csv").write_text(head + "1,t.2,\"['Q2']\",t,0.0,0.02\n")
    rb = tmp_path / "rb" / "t_train.csv"
    rb.write_text(head + "0,t.1,\"['Q1']\",t,1.0,0.01\n")
    one = _write_jsonl(
        tmp_path / "os" / "h.jsonl", [{"index": 0, "prompt": "P", "data_source": "d", "acc_history": [0.5]}]
    )
    cases = [(D.convert_v0, v0, v0), (D.convert_routerdc, rd, rd.parent), (D.convert_routerbench, rb, rb.parent),
             (D.convert_oneshot_rlvr, one, one)]  # fmt: skip
    for convert, path, src in cases:
        text = path.read_text(encoding="utf-8")
        want = convert(src)
        path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        got = convert(src)
        assert (got["train"] if isinstance(got, dict) else got).equals(
            want["train"] if isinstance(want, dict) else want
        )
        path.write_bytes(text.encode("utf-16"))
        with pytest.raises(DataError, match=rf"{path.name}: the file is UTF-16-encoded.*Fix: re-encode"):
            convert(src)
    guarantees.tick("bad-input cases tried", 2 * len(cases))


# --------------------------------------------------------------------------- convert


def test_convert_writes(tmp_path, v0_dir, rb_dir, oneshot_file):
    out = D.convert("v0", v0_dir / "context.jsonl", tmp_path / "out" / "v0")
    assert out.name == "v0.jsonl"
    assert read_log(out).equals(D.convert_v0(v0_dir / "context.jsonl"))
    out = D.convert("oneshot-rlvr", oneshot_file, tmp_path / "o.parquet")
    assert read_log(out).height == 4
    with pytest.warns(V0liteWarning):
        paths = D.convert("routerbench", rb_dir, tmp_path / "rb")
    assert paths["train"] == tmp_path / "rb" / "train.jsonl" and paths["test"].exists()
    assert read_log(paths["test"]).height == 2
    with pytest.raises(
        ParameterError, match=r"unknown format 'csv'.*\['oneshot-rlvr', 'routerbench', 'routerdc', 'v0'\]"
    ):
        D.convert("csv", v0_dir, tmp_path / "x.jsonl")
    assert set(D.CONVERTERS) == {"v0", "routerbench", "routerdc", "oneshot-rlvr"}


def test_doctests():
    import importlib

    mods = [
        importlib.import_module(f"v0lite.data.{m}")
        for m in ("_convert", "_demo", "_split", "_paths", "_v0", "_routerbench", "_routerdc", "_oneshot", "_prompts")
    ]
    results = [doctest.testmod(m) for m in mods]
    assert sum(r.failed for r in results) == 0 and sum(r.attempted for r in results) > 0


# --------------------------------------------------------------------------- issue 27: undecodable text


def test_converters_refuse_a_lone_surrogate_naming_where(tmp_path, v0_dir, rb_dir, guarantees):
    """JSON's "\\ud800" and Python's '\\ud800' are valid escapes of no character: a DataError with the row,
    never a UnicodeEncodeError from polars."""
    guarantees.tick("bad-input cases tried", 3)
    (v0_dir / "prompt_dict.json").write_text('{"dapomath_1": "ok", "dapomath_2": "x\\ud800"}', encoding="utf-8")
    with pytest.raises(DataError, match=r"prompt_dict.json, entry: 'dapomath_2' holds undecodable text.*Fix"):
        D.convert_v0(v0_dir / "context.jsonl")
    (tmp_path / "one.jsonl").write_text('{"prompt": "ok"}\n{"prompt": "bad \\udc00"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"one.jsonl, line 2: 'prompt' holds undecodable text"):
        D._common._read_jsonl(tmp_path / "one.jsonl")
    _write_rb_csv(rb_dir / "sur_test.csv", [("sur.1", ["Q \ud800"], "sur", ("1.0", "1.0"), ("0.1", "0.1"))])
    with pytest.raises(DataError, match=r"sur_test.csv, row 0 \(sample_id 'sur.1'\): 'prompt' holds undecodable"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", V0liteWarning)
            D.convert_routerbench(rb_dir)


# --------------------------------------------------------------------------- converters check each source value


def _v0_row(**kw):
    return {"id": 1, "score": 0.2, "model": "A", "step": 16, "dataset": "dapomath", **kw}


def _os_row(**kw):
    return {"index": 0, "prompt": "P", "data_source": "d", "acc_history": [0.5], **kw}


def test_converters_refuse_text_fields_that_are_not_text(v0_dir, tmp_path, guarantees):
    """A list, object, number or boolean where a converter expects text is an error naming the file, the
    line, the field and the value, never stringified ("[{user,hi}]", "['x']", "{'a': 1}")."""
    cases = [
        (
            _os_row(prompt=[{"role": "user", "content": "hi"}]),
            r"line 2: field 'prompt' = \[\{'role': 'user'.* is a list",
        ),
        (_os_row(prompt=123), r"line 2: field 'prompt' = 123 is a number, not text"),
        (_os_row(prompt="  "), r"line 2: field 'prompt' = '  ' is empty or whitespace"),
        (_os_row(index={"a": 1}), r"line 2: field 'index' = \{'a': 1\} is not an id"),
        (_os_row(index=True), r"line 2: field 'index' = True is not an id"),
        (_os_row(data_source=["d"]), r"line 2: field 'data_source' = \['d'\] is a list"),
    ]
    for bad, pattern in cases:
        f = _write_jsonl(tmp_path / "dsr_sub_acc_history.jsonl", [_os_row(), bad])
        with pytest.raises(DataError, match=rf"dsr_sub_acc_history.jsonl, {pattern}.*Fix"):
            D.convert_oneshot_rlvr(f)
    # an integer index is an id, as in the real file
    f = _write_jsonl(tmp_path / "dsr_sub_acc_history.jsonl", [_os_row(index=7), _os_row(index="x-1")])
    assert D.convert_oneshot_rlvr(f)["prompt_id"].to_list() == ["7", "x-1"]
    v0_cases = [
        (_v0_row(model=["x"]), r"line 2: field 'model' = \['x'\] is a list, not text"),
        (_v0_row(model=""), r"line 2: field 'model' = '' is empty"),
        (_v0_row(dataset=5), r"line 2: field 'dataset' = 5 is a number, not text"),
        (_v0_row(id=[1]), r"line 2: field 'id' = \[1\] is not an id"),
    ]
    for bad, pattern in v0_cases:
        f = _write_jsonl(v0_dir / "bad.jsonl", [_v0_row(), bad])
        with pytest.raises(DataError, match=rf"bad.jsonl, {pattern}.*Fix"):
            D.convert_v0(f)
    (tmp_path / "dc").mkdir()
    (tmp_path / "dc" / "mbpp.json").write_text(
        json.dumps([{"question": "Q", "scores": {"m": 1}}, {"question": ["Q"], "scores": {"m": 1}}])
    )
    with pytest.raises(DataError, match=r"mbpp.json, item 1: field 'question' = \['Q'\] is a list, not text"):
        D.convert_routerdc(tmp_path / "dc")
    guarantees.tick("bad-input cases tried", len(cases) + len(v0_cases) + 1)


def test_v0_step_must_be_an_integer(v0_dir, guarantees):
    for step, shown in ((True, "True"), ("64", "'64'"), (16.5, "16.5"), ([16], r"\[16\]")):
        f = _write_jsonl(v0_dir / "bad.jsonl", [_v0_row(), _v0_row(step=step)])
        with pytest.raises(DataError, match=rf"bad.jsonl, line 2: field 'step' = {shown} is not an integer.*Fix"):
            D.convert_v0(f)
    f = _write_jsonl(v0_dir / "ok.jsonl", [_v0_row(step=16.0)])  # an integral float is the integer it writes
    assert D.convert_v0(f)["step"].to_list() == [16]
    f = _write_jsonl(v0_dir / "null.jsonl", [_v0_row(step=None)])
    with pytest.raises(DataError, match=r"null.jsonl, line 1: field 'step' is null\. Fix"):
        D.convert_v0(f)
    guarantees.tick("bad-input cases tried", 5)


def _rb_header_csv(path: Path, header: list[str], row: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerow(row)


def test_routerbench_columns_are_never_dropped_silently(tmp_path, rb_dir, guarantees):
    """A model column without its cost column (or a cost without its model) is an error naming the file and
    the column; only the row id, <model>|model_response and oracle_model_to_route_to are skipped."""
    base = [
        "",
        "sample_id",
        "prompt",
        "eval_name",
        "m1",
        "m1|model_response",
        "m1|total_cost",
        "oracle_model_to_route_to",
    ]
    vals = ["0", "t.1", "['Q']", "t", "1.0", "['r']", "0.01", "m1"]
    (tmp_path / "a").mkdir()
    _rb_header_csv(tmp_path / "a" / "t_train.csv", base, vals)
    _rb_header_csv(tmp_path / "a" / "t_test.csv", base, vals)
    assert D.convert_routerbench(tmp_path / "a")["test"].height == 1
    cases = [
        (base + ["m2"], vals + ["1.0"], r"column 'm2' has no 'm2\|total_cost' column"),
        (base + ["m2|total_cost"], vals + ["0.1"], r"column 'm2\|total_cost' has no model column 'm2'"),
        (base + ["m1|latency"], vals + ["3"], r"unknown column 'm1\|latency'"),
    ]
    for header, row, pattern in cases:
        _rb_header_csv(tmp_path / "a" / "t_test.csv", header, row)
        with pytest.raises(DataError, match=rf"t_test.csv: {pattern}.*Fix"):
            D.convert_routerbench(tmp_path / "a")
    guarantees.tick("bad-input cases tried", len(cases))


def test_converter_errors_name_the_source_row_not_the_output_row(tmp_path, rb_dir, dc_dir, v0_dir, guarantees):
    """Values the log check would refuse are refused while converting, at the source file and line/row."""
    ok = ("ok.1", ["Q"], "ok", ("1.0", "0.0"), ("0.1", "0.1"))
    cases = [
        (
            ("bad.1", ["Q"], "bad", ("1.0", "2.0"), ("0.1", "0.1")),
            r"column 'org/m-large': outcome '2.0' is not a number in \[0, 1\]",
        ),
        (("bad.1", ["Q"], "bad", ("1.0", "nan"), ("0.1", "0.1")), r"column 'org/m-large': outcome 'nan'"),
        (
            ("bad.1", ["Q"], "bad", ("1.0", "1.0"), ("0.1", "-1")),
            r"column 'org/m-large\|total_cost': cost '-1' is not a finite number >= 0",
        ),
        (("bad.1", ["Q"], "bad", ("1.0", "1.0"), ("inf", "0.1")), r"column 'm-small\|total_cost': cost 'inf'"),
        (("bad.1", ["  "], "bad", ("1.0", "1.0"), ("0.1", "0.1")), r"column 'prompt' = .* holds no text"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)
        for bad, pattern in cases:
            _write_rb_csv(rb_dir / "bad_test.csv", [ok, bad])
            with pytest.raises(
                DataError,
                match=rf"bad_test.csv, row 1 \(sample_id 'bad.1'\)(, |: ){pattern}.*Fix: (?!.*v0lite data convert)",
            ):
                D.convert_routerbench(rb_dir)
    (dc_dir / "mbpp.json").write_text(
        json.dumps([{"question": "Q", "scores": {"m": 1}}, {"question": "", "scores": {"m": 1}}])
    )
    with pytest.raises(DataError, match=r"mbpp.json, item 1: field 'question' = '' is empty"):
        D.convert_routerdc(dc_dir)
    (dc_dir / "mbpp.json").write_text(json.dumps([{"question": "Q", "scores": {" ": 1}}]))
    with pytest.raises(DataError, match=r"mbpp.json, item 0: 'scores' has an empty model name"):
        D.convert_routerdc(dc_dir)
    (v0_dir / "prompt_dict.json").write_text(json.dumps({"dapomath_1": "Q", "dapomath_2": " "}))
    f = _write_jsonl(v0_dir / "c.jsonl", [_v0_row(), _v0_row(id=2)])
    with pytest.raises(DataError, match=r"c.jsonl, line 2: prompt id 2 \(key 'dapomath_2'\) has an empty prompt"):
        D.convert_v0(f)
    guarantees.tick("bad-input cases tried", len(cases) + 3)


def test_converter_final_check_names_the_source(tmp_path):
    """The last-resort log check of a converted frame reports the source place, not the output row."""
    from v0lite.data._common import _log_of

    cols = {"policy": ["a", "a", "a"], "prompt": ["x", "y", "z"], "score": [0.5, 0.5, 2.0]}
    with pytest.raises(
        DataError, match=r"^src.jsonl, line 9: column 'score': value 2.0 .*Fix: repair that value in the source file"
    ) as e:
        _log_of(cols, ["src.jsonl, line 3", "src.jsonl, line 5", "src.jsonl, line 9"], "src.jsonl")
    assert "row 2" not in str(e.value) and "v0lite data convert" not in str(e.value)


def test_routerbench_header_only_file_is_named(tmp_path, rb_dir, guarantees):
    (rb_dir / "arc_test.csv").write_text((rb_dir / "arc_test.csv").read_text().splitlines()[0] + "\n")
    with pytest.raises(DataError, match=r"arc_test.csv: the CSV has a header but no rows.*Fix"):
        D.convert_routerbench(rb_dir)
    _write_rb_csv(rb_dir / "arc_test.csv", [("arc.3", ["Q3"], "arc", ("", ""), ("0.0", "0.0"))])
    with pytest.raises(DataError, match=r"arc_test.csv \(every outcome cell blank\): no outcome rows"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", V0liteWarning)
            D.convert_routerbench(rb_dir)
    guarantees.tick("bad-input cases tried", 2)


def test_converters_say_folder_or_file(tmp_path, v0_dir, dc_dir, guarantees):
    with pytest.raises(DataError, match=rf"{v0_dir}: is a folder, not a V0 jsonl file. Fix: .*context.jsonl"):
        D.convert_v0(v0_dir)
    with pytest.raises(DataError, match=r"mmlu_test.json: is a file, not a RouterDC folder. Fix: pass the folder"):
        D.convert_routerdc(dc_dir / "mmlu_test.json")
    f = _write_jsonl(v0_dir / "n.jsonl", [_v0_row(model=None)])
    with pytest.raises(DataError, match=r"n.jsonl, line 1: field 'model' is null"):
        D.convert_v0(f)
    guarantees.tick("bad-input cases tried", 3)
