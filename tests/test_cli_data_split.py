"""``v0lite data split LOG TRAIN TEST``: a log split by prompt (no prompt on both sides, seeded), with the
output checks of the other data commands."""

from __future__ import annotations

import polars as pl
from conftest import make_log

from v0lite.cli import main
from v0lite.log import read_log, write_log


def test_data_split_writes_train_and_test_with_no_prompt_on_both_sides(tmp_path, capsys):
    log = write_log(make_log(3, 20, seed=1), tmp_path / "log.csv")
    tr, te = tmp_path / "train.jsonl", tmp_path / "test.parquet"
    assert main(["data", "split", str(log), str(tr), str(te), "--test-size", "0.3", "--random-state", "4"]) == 0
    said = capsys.readouterr().out
    train, test = read_log(tr), read_log(te)
    assert not set(train["prompt"]) & set(test["prompt"])
    assert test["prompt"].n_unique() == 6 and train.height + test.height == 60  # 30% of 20 prompts, every row
    assert f"wrote {te}: 18 rows, 6 prompts" in said and f"wrote {tr}: 42 rows, 14 prompts" in said
    whole = read_log(log)
    assert pl.concat([train, test]).sort("policy", "prompt").equals(whole.sort("policy", "prompt"))
    assert main(["data", "split", str(log), str(tr), str(te), "--test-size", "0.3", "--random-state", "4"]) == 1
    err = capsys.readouterr().err
    assert f"TRAIN {tr}: exists" in err and "--force" in err
    again = tmp_path / "again"
    assert main(["data", "split", str(log), str(again / "tr.jsonl"), str(again / "te.jsonl"), "--test-size", "0.3",
                 "--random-state", "4", "-q"]) == 0  # fmt: skip
    assert read_log(again / "te.jsonl").equals(test)  # seeded: the same split again
    assert main(["data", "split", str(log), str(tr), str(te), "--force"]) == 0  # default: a fifth, as split_by_prompt
    assert read_log(te)["prompt"].n_unique() == 4


def test_data_split_refuses_before_writing(tmp_path, capsys):
    log = write_log(make_log(2, 6), tmp_path / "log.jsonl")
    tr, te = tmp_path / "tr.jsonl", tmp_path / "te.jsonl"
    tr.write_text("keep me\n", encoding="utf-8")
    assert main(["data", "split", str(log), str(tr), str(te)]) == 1
    err = capsys.readouterr().err
    assert f"TRAIN {tr}: exists" in err and "Fix: pass --force" in err
    assert tr.read_text(encoding="utf-8") == "keep me\n" and not te.exists()
    assert main(["data", "split", str(log), str(log), str(te), "--force"]) == 1  # an output is never the input
    assert "would overwrite the input" in capsys.readouterr().err and not te.exists()
    assert main(["data", "split", str(log), str(te), str(te)]) == 1
    assert "one output would overwrite the other" in capsys.readouterr().err
    assert main(["data", "split", str(log), str(te), str(tmp_path / "te.txt")]) == 1
    assert "TEST" in capsys.readouterr().err and not te.exists()
    for size in ("0", "1", "x"):
        assert main(["data", "split", str(log), str(te), str(tmp_path / "t2.jsonl"), "--test-size", size]) == 2
        assert "--test-size" in capsys.readouterr().err
    one = write_log(make_log(2, 1), tmp_path / "one.jsonl")  # one prompt: nothing to split
    assert main(["data", "split", str(one), str(te), str(tmp_path / "t2.jsonl")]) == 1
    err = capsys.readouterr().err
    assert f"LOG {one}: the log has 1 distinct prompt; a split needs at least 2. Fix: pass more prompts." in err
    assert not te.exists()
    bad = tmp_path / "bad.jsonl"  # LOG is checked as an outcome log, naming the file
    bad.write_text('{"policy": "a", "prompt": "x", "score": 2.0}\n{"policy": "a", "prompt": "y", "score": 0}\n')
    assert main(["data", "split", str(bad), str(te), str(tmp_path / "t2.jsonl")]) == 1
    assert f"LOG {bad}" in capsys.readouterr().err and not te.exists()
    assert main(["data", "split", "--help"]) == 0
    assert "no prompt is on both sides" in capsys.readouterr().out.replace("\n", " ")


def test_data_split_keeps_near_duplicate_prompts_on_one_side(tmp_path, capsys):
    """Prompts that differ only by case or spaces (the log's twin warning's key) are drawn as one; a log with
    no such twins splits as before groups existed (the same seed draws the same prompts)."""
    log = make_log(3, 20, seed=1)
    src = write_log(log, tmp_path / "log.jsonl")
    tr, te = tmp_path / "tr.jsonl", tmp_path / "te.jsonl"
    cmd = ["data", "split", str(src), str(tr), str(te), "--test-size", "0.3", "--random-state", "4", "--force"]
    assert main(cmd) == 0
    drawn = sorted(read_log(te)["prompt"].unique().str.extract(r"case (\d+)").cast(pl.Int64).to_list())
    assert drawn == [0, 1, 2, 3, 5, 10]  # the draw of this seed before near-duplicates were grouped
    twin = log.with_columns(pl.col("prompt").str.to_uppercase() + "  ").with_columns(policy=pl.lit("pol9"))
    write_log(pl.concat([log, twin]), src)  # each prompt beside its upper-case, space-padded twin
    for seed in range(5):
        assert main([*cmd[:-2], str(seed), "--force", "-q"]) == 0
        capsys.readouterr()
        key = lambda f: set(read_log(f)["prompt"].str.to_lowercase().str.strip_chars())  # noqa: E731
        assert not key(tr) & key(te), seed
        assert read_log(te)["prompt"].n_unique() == 12  # 30% of the 20 twin pairs: 6 pairs, both of each


def test_data_split_of_one_prompt_and_its_twins_says_why_they_count_as_one(tmp_path, capsys):
    """The message read "the log has 3 unique prompt(s) (1 once prompts that differ only by case or spaces count
    as one)": it now says what counts as one, in plain words, with the plurals right."""
    src = tmp_path / "twins.jsonl"
    twins = ["add 2 and 3", "ADD 2 AND 3  ", "add \uff12 and 3"]  # case, spaces, Unicode form (a wide 2)
    write_log(pl.DataFrame({"policy": ["a"] * 3, "prompt": twins, "score": [1.0, 0.0, 1.0]}), src)
    tr, te = tmp_path / "tr.jsonl", tmp_path / "te.jsonl"
    assert main(["data", "split", str(src), str(tr), str(te)]) == 1
    err = capsys.readouterr().err
    assert (
        f"LOG {src}: the log has 3 distinct prompts, but they are one once case, spaces and Unicode form are "
        "ignored (the split keeps those together); a split needs at least 2. Fix: pass more prompts."
    ) in err
    assert not tr.exists() and not te.exists()
