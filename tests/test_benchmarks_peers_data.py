"""benchmarks/_peers_data.py: RouterBench's converter warnings are returned and printed, not hidden."""

from benchmarks import _peers_data
from tests.test_data import _write_rb_csv


def test_routerbench_notes_name_the_skipped_blank_cells(tmp_path, capsys):
    src = tmp_path / "routerdc-routerbench"
    src.mkdir()
    _write_rb_csv(
        src / "arc_train.csv",
        [
            ("arc.1", ["Q1"], "arc", ("1.0", "0.0"), ("0.001", "0.01")),
            ("arc.2", ["Q2"], "arc", ("", "1.0"), ("0.002", "0.02")),
        ],
    )
    _write_rb_csv(src / "arc_test.csv", [("arc.3", ["Q3"], "arc", ("1.0", "1.0"), ("0.5", "0.6"))])
    out, notes = _peers_data.routerbench_with_notes(tmp_path)
    assert out["train"].height == 3 and out["test"].height == 2
    assert len(notes) == 1 and "skipped 1 blank outcome cells" in notes[0] and "arc.2" in notes[0]
    # the public function keeps its return value and prints the note
    again = _peers_data.routerbench(tmp_path)
    assert set(again) == {"train", "test"} and again["train"].equals(out["train"])
    assert "routerbench: RouterBench: skipped 1 blank outcome cells" in capsys.readouterr().out
