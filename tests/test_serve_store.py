"""The outcome store: durable, all-or-nothing batches, id order, and the folder rule."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from v0lite.exceptions import DataError, FormatVersionError
from v0lite.serve import OutcomeStore, SqliteStore
from v0lite.serve._store import STORE_FILE


def rows(n, policy="a", start=0):
    return [{"policy": policy, "prompt": f"prompt {start + i}", "score": (i % 5) / 4} for i in range(n)]


def test_append_read_count_and_settings(tmp_path):
    s = SqliteStore(tmp_path / "store")
    assert isinstance(s, OutcomeStore)
    assert s.append(rows(3)) == (1, 3)
    assert s.append([{"policy": "b", "prompt": "x", "score": 1.0, "step": 4, "n": 8}]) == (4, 4)
    got = s.read_since(0)
    assert [i for i, _ in got] == [1, 2, 3, 4]
    assert got[3][1] == {"policy": "b", "prompt": "x", "score": 1.0, "step": 4, "n": 8}
    assert got[0][1]["step"] is None and got[0][1]["n"] is None
    assert [i for i, _ in s.read_since(2)] == [3, 4] and s.read_since(1, limit=1)[0][0] == 2
    assert s.count() == 4
    con = s._write
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: every commit synced
    s.close()
    again = SqliteStore(tmp_path / "store")  # reopening an existing store keeps its rows
    assert again.count() == 4
    again.close()


def test_a_failing_batch_stores_nothing(tmp_path, guarantees):
    s = SqliteStore(tmp_path)
    s.append(rows(2))
    bad = rows(3) + [{"policy": None, "prompt": "p", "score": 0.5}]  # NOT NULL fails on the 4th row
    with pytest.raises(sqlite3.IntegrityError):
        s.append(bad)
    guarantees.tick("faults injected")
    assert s.count() == 2
    with pytest.raises(DataError, match="no rows"):
        s.append([])
    s.close()


def test_folder_rule(tmp_path, guarantees):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"--data-dir .*busy: holds files v0lite did not write \(notes.txt\).*Fix"):
        SqliteStore(tmp_path / "busy")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        SqliteStore(tmp_path / "file")
    s = SqliteStore(tmp_path / "ok")
    s.append(rows(2))
    s.close()
    again = SqliteStore(tmp_path / "ok")  # its own folder (meta.json lists the SQLite files) is accepted
    assert again.count() == 2
    again.close()
    (tmp_path / "ok" / "stray.json").write_text("{}")
    with pytest.raises(DataError, match=r"did not write \(stray.json\)"):
        SqliteStore(tmp_path / "ok")
    guarantees.tick("bad-input cases tried", 3)


def test_foreign_sqlite_file_is_refused(tmp_path, guarantees):
    # a lone SQLite file by that name is not ours: refused by the folder rule
    (tmp_path / "a").mkdir()
    sqlite3.connect(tmp_path / "a" / STORE_FILE).close()
    with pytest.raises(DataError, match=f"did not write \\({STORE_FILE}\\)"):
        SqliteStore(tmp_path / "a")
    # a store folder whose database says another format or version: refused, naming both
    s = SqliteStore(tmp_path / "b")
    s.close()
    con = sqlite3.connect(tmp_path / "b" / STORE_FILE)
    con.execute("UPDATE meta SET value = '9' WHERE key = 'format_version'")
    con.commit()
    con.close()
    with pytest.raises(FormatVersionError, match="version '9', expected 'v0lite-outcome-store' version 1"):
        SqliteStore(tmp_path / "b")
    guarantees.tick("corruptions detected", 2)


def test_concurrent_writers_and_reader(tmp_path, guarantees):
    s = SqliteStore(tmp_path)
    seen = []

    def write(k):
        for j in range(20):
            s.append(rows(5, policy=f"p{k}", start=j * 5))

    def read():
        for _ in range(50):
            seen.append(len(s.read_since(0)))

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    got = s.read_since(0)
    assert len(got) == 400 and [i for i, _ in got] == list(range(1, 401))
    assert all(n % 5 == 0 for n in seen)  # a reader never sees part of a batch
    guarantees.tick("concurrent cache writers", 4)
    s.close()
