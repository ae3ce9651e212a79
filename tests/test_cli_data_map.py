"""``v0lite data map``: a spreadsheet export becomes an outcome log, its errors name its flags, and
``fit`` points a boolean or unlabeled log at it."""

from __future__ import annotations

from v0lite.cli import main
from v0lite.log import read_log

# --------------------------------------------------------------------------- data map: your own table


def test_data_map_turns_a_spreadsheet_export_into_a_log(tmp_path, capsys):
    src = tmp_path / "export.csv"
    src.write_text(
        "Model,Question,Correct,Latency ms,Cost ($),Task\n"
        "gpt,What is 2+2?,TRUE,120,0.01,math\n"
        "small,What is 2+2?,FALSE,90,0.001,math\n"
        "gpt,Name a prime.,,200,0.01,math\n"
        "small,Name a prime.,true,80,0.001,math\n",
        encoding="utf-8",
    )
    out = tmp_path / "log.jsonl"
    cmd = ["data", "map", str(src), str(out), "--policy", "Model", "--prompt", "Question", "--score", "Correct"]
    cmd += ["--cost", "Cost ($)", "--task", "Task"]
    assert main(cmd) == 1  # the unlabeled row: an error in flag terms, naming the count and the row
    err = capsys.readouterr().err
    assert f"SRC {src}" in err and "1 of 4 rows have no outcome" in err and "row 2" in err, err
    assert "--drop-unscored" in err and "drop_unscored" not in err
    assert not out.exists()
    assert main([*cmd, "--drop-unscored"]) == 0
    printed = capsys.readouterr().out
    assert "3 rows out of 4 read, 1 without a score dropped" in printed and "'Model' -> 'policy'" in printed
    log = read_log(out)
    assert log["score"].to_list() == [1.0, 0.0, 1.0] and log["cost"].to_list() == [0.01, 0.001, 0.001]
    assert log["task"].to_list() == ["math"] * 3 and log["Latency ms"].to_list() == [120, 90, 80]
    assert main([*cmd, "--drop-unscored"]) == 1  # an existing OUT needs --force, as for the other data commands
    assert "--force" in capsys.readouterr().err
    assert main([*cmd, "--drop-unscored", "--force", "-q"]) == 0


def test_data_map_errors_name_its_flags(tmp_path, capsys):
    src = tmp_path / "pct.csv"
    src.write_text("Model,Question,Pct\na,x,0\nb,x,80\n", encoding="utf-8")
    out = str(tmp_path / "log.csv")
    base = ["data", "map", str(src), out, "--policy", "Model", "--prompt", "Question"]
    assert main([*base, "--score", "Pct"]) == 1
    err = capsys.readouterr().err
    assert "percentages? Fix: divide by 100 (--score-scale 100)" in err and "score_scale" not in err, err
    assert main([*base, "--score", "pct"]) == 1
    err = capsys.readouterr().err
    assert "column 'pct' (--score) is not in the data" in err and "Fix: pass --score Pct." in err, err
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"m": {"name": "a"}, "q": "x", "ok": 1, "chat": [{"role": "user"}]}\n', encoding="utf-8")
    cmd = ["data", "map", str(nested), out, "--prompt", "q", "--score", "ok"]
    assert main([*cmd, "--policy", "m.nme"]) == 1
    assert "column 'm.nme' (--policy): 'm' has no field 'nme'" in capsys.readouterr().err
    assert main([*cmd, "--policy", "chat.role"]) == 1
    err = capsys.readouterr().err
    assert "column 'chat.role' (--policy): 'chat' holds lists" in err and "holds one policy per row" in err, err
    assert main([*base, "--score", "Model"]) == 1
    assert "Fix: give each its own column, or drop --score." in capsys.readouterr().err
    assert main([*base, "--score", "Pct", "--score-scale", "0"]) == 2  # argparse: K > 0
    capsys.readouterr()
    assert main([*base, "--score", "Pct", "--score-scale", "100"]) == 0
    assert read_log(out)["score"].to_list() == [0.0, 0.8]
    assert main(["data", "map", str(src), out, "--policy", "Model", "--score", "Pct"]) == 2  # --prompt is required


def test_fit_points_a_boolean_or_unlabeled_log_at_data_map(tmp_path, capsys):
    """The log's own fixes name `v0lite data map` flags that exist, and a near-miss column is a warning."""
    src = tmp_path / "b.csv"
    src.write_text("policy,prompt,score,Task\na,x,TRUE,m\nb,x,FALSE,m\n", encoding="utf-8")
    assert main(["fit", str(src), "--model-dir", str(tmp_path / "m"), "--head", "prior", "-q"]) == 1
    err = capsys.readouterr().err
    assert "warning: column 'Task' differs from the optional column 'task'" in err and "--task Task" in err, err
    assert "1.0/0.0 for true/false (`v0lite data map LOG OUT --policy policy" in err
    fixed = tmp_path / "fixed.csv"
    argv = ["data", "map", str(src), str(fixed), "--policy", "policy", "--prompt", "prompt", "--score", "score"]
    assert main([*argv, "--task", "Task"]) == 0  # the command the fix names works as written
    assert read_log(fixed)["task"].to_list() == ["m", "m"]


def test_data_map_names_your_column_and_its_flag_and_counts_repeated_rows(tmp_path, capsys):
    src = tmp_path / "export.csv"
    rows = "m1,What is 2+2?,True,0.01\nm2,What is 2+2?,1,0.02\nm1,Name a prime.,,0.01\nm2,Name a prime.,0.0,$0.016\n"
    src.write_text("Model,Question,is_correct,cost_usd\n" + rows, encoding="utf-8")
    out = tmp_path / "log.jsonl"
    cmd = ["data", "map", str(src), str(out), "--policy", "Model", "--prompt", "Question", "--score", "is_correct"]
    assert main([*cmd, "--cost", "cost_usd", "--drop-unscored"]) == 1
    err = capsys.readouterr().err  # the row as read (3, not 2 once row 2 is dropped), the column and flag named
    assert "column 'cost_usd' (--cost) must be numeric" in err and "(row 3: '$0.016')" in err, err
    assert "strip the currency sign" in err and "drop --cost" in err and "'cost'" not in err
    assert not out.exists()
    dup = tmp_path / "dup.csv"  # 'True', '1' and '0.0' are outcomes; a repeated row is kept and counted
    dup.write_text("Model,Question,is_correct\n" + "a,x,True\na,x,True\nb,x,1\nb,y,0.0\na,x,True\n", encoding="utf-8")
    assert main(["data", "map", str(dup), str(out), *cmd[4:]]) == 0
    said = capsys.readouterr().out
    assert "5 rows out of 5 read, 2 repeating an earlier row exactly (kept" in said, said
    assert read_log(out)["score"].to_list() == [1.0, 1.0, 1.0, 0.0, 1.0]


def test_drop_unscored_refuses_a_truncated_csv_line_or_a_json_row_without_the_score_key(tmp_path, capsys):
    """A short CSV line (a truncated file) and a JSON row that leaves the score key out are errors naming the
    line; only an empty cell, or a key written as null or "", is a row without an outcome."""
    out = tmp_path / "log.jsonl"
    flags = ["--policy", "Model", "--prompt", "Q", "--drop-unscored"]
    for name, score, text, shown in (
        ("t.csv", "C", "Model,Q,C\na,q1,1\nb,q2,0\nc,q3", "t.csv, line 4: 2 fields where the header has 3"),
        (
            "t.jsonl",
            "C",
            '{"Model":"a","Q":"q","C":1}\n{"Model":"c","Q":"q"}\n',
            "line 2: key 'C' (--score) is missing",
        ),
        ("n.json", "C.v", '[{"Model":"a","Q":"q","C":{"v":1}},{"Model":"b","Q":"q","C":{}}]', "row 1: key 'C.v'"),
    ):
        src = tmp_path / name
        src.write_text(text, encoding="utf-8")
        assert main(["data", "map", str(src), str(out), *flags, "--score", score]) == 1
        err = capsys.readouterr().err
        assert f"SRC {src}" in err and shown in err and "Fix:" in err, err
        assert not out.exists()
    ok = tmp_path / "ok.jsonl"  # null, "" and an empty CSV cell: no outcome, dropped and counted
    ok.write_text('{"Model":"a","Q":"q1","C":1}\n{"Model":"b","Q":"q2","C":null}\n{"Model":"c","Q":"q3","C":""}\n')
    blank = tmp_path / "ok.csv"
    blank.write_text("Model,Q,C\na,q1,1\nb,q2,\n", encoding="utf-8")
    for src, n in ((ok, 2), (blank, 1)):
        assert main(["data", "map", str(src), str(out), *flags, "--score", "C", "--force"]) == 0
        assert f"{n} without a score dropped" in capsys.readouterr().out
        assert read_log(out)["policy"].to_list() == ["a"]


def test_data_map_calls_a_stray_score_a_bad_row_not_percentages(tmp_path, capsys):
    """Issue: one 2.0 among success rates was told "percentages? divide by 100", which breaks every other row."""
    src = tmp_path / "rates.csv"
    src.write_text("Model,Question,Rate\na,x,0.5\nb,x,2.0\nc,x,0.25\nd,x,1\n", encoding="utf-8")
    cmd = ["data", "map", str(src), str(tmp_path / "log.csv"), "--policy", "Model", "--prompt", "Question"]
    assert main([*cmd, "--score", "Rate"]) == 1
    err = capsys.readouterr().err
    assert "percentages?" not in err and "row 1: value 2.0" in err and "correct or drop the rows" in err, err
