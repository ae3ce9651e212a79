"""benchmarks/quality.py: --quick never writes; a missing dataset folder is skipped with a message."""

import pytest

from benchmarks import quality


def test_quick_implies_no_write():
    assert quality._parse_args(["--quick"]).no_write
    assert not quality._parse_args([]).no_write


def test_unknown_dataset_is_refused(capsys):
    with pytest.raises(SystemExit):
        quality._parse_args(["--datasets", "v0,routerbnch"])
    assert "unknown ['routerbnch']" in capsys.readouterr().err


def test_missing_dataset_folders_are_skipped_with_a_message(tmp_path, monkeypatch, capsys):
    (tmp_path / "v0-dapomath").mkdir()
    assert quality.present_datasets(["v0", "routerdc"], tmp_path) == ["v0"]
    assert "dataset 'routerdc' skipped" in capsys.readouterr().out

    def no_write(*a, **k):
        raise AssertionError("wrote RESULTS.md with no dataset")

    monkeypatch.setattr(quality, "write_section", no_write)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("V0LITE_DATA", str(empty))
    assert quality.main(["--heads", "prior"]) == 0
    out = capsys.readouterr().out
    for name in ("v0", "routerdc", "oneshot"):
        assert f"dataset {name!r} skipped: {empty / quality.FOLDERS[name]} not found" in out
    assert "nothing written" in out


def test_the_default_head_is_read_against_the_best_peer_of_the_same_rows():
    """peer_table: per dataset, auto's AUC and Brier beside the best of the simple peers (highest AUC, lowest
    Brier, each its own head), the difference signed so that positive AUC / negative Brier is auto's lead."""
    rows = [
        {"dataset": "d1", "head": "prior", "auc": 0.70, "brier": 0.10},
        {"dataset": "d1", "head": "knn", "auc": 0.72, "brier": 0.12},
        {"dataset": "d1", "head": "gbdt", "auc": 0.90, "brier": 0.01},  # not a simple peer
        {"dataset": "d1", "head": "auto", "auc": 0.71, "brier": 0.09},
        {"dataset": "d2", "head": "prior", "auc": 0.60, "brier": 0.20},  # no auto row: no line
    ]
    lines = quality.peer_table(rows).splitlines()
    assert lines[2] == "| d1 | 0.710 | 0.720 (knn) | -0.010 | 0.090 | 0.100 (prior) | -0.010 |"
    assert len(lines) == 3
    assert quality.peer_table([r for r in rows if r["head"] != "auto"]) == ""
