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
