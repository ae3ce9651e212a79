"""Faults of the outcome store, through the app: a damaged, missing or half-backed-up file, the folder
rule, idempotency keys, the replay's progress, and the volume failing under a running server (a full
disk, a write lock held by another process, a read-only file system). Servers bind 127.0.0.1 on a
free port (tests/serve_util.py)."""

from __future__ import annotations

import logging
import sqlite3
import time

import httpx
import pytest

from tests.serve_util import serve_in_thread, tiny_router
from v0lite.exceptions import DataError
from v0lite.serve import Limits, SqliteStore, create_app
from v0lite.serve._store import STORE_FILE, StoreUnreadable

# --------------------------------------------------------------------------- a damaged store


def _store_with_rows(path, n=200):
    s = SqliteStore(path)
    s.append([{"policy": "a", "prompt": f"add the numbers case {i} " + "x" * 200, "score": 1.0} for i in range(n)])
    s.close()
    return path / STORE_FILE


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_a_missing_or_empty_store_file_is_refused_not_replaced(tmp_path, damage, guarantees):
    f = _store_with_rows(tmp_path / "s")
    for extra in ("-wal", "-shm"):
        (tmp_path / "s" / (STORE_FILE + extra)).unlink(missing_ok=True)
    if damage == "missing":
        f.unlink()
    else:
        f.write_bytes(b"")
    with pytest.raises(StoreUnreadable, match="missing" if damage == "missing" else r"empty \(0 bytes\)") as e:
        create_app(tiny_router(), data_dir=tmp_path / "s")
    assert "meta.json" in str(e.value) and "backup" in str(e.value) and "Fix:" in str(e.value)
    assert not f.exists() or f.stat().st_size == 0  # nothing was created in its place
    guarantees.tick("corruptions detected")


@pytest.mark.parametrize("damage", ["garbage", "half", "middle"])
def test_a_damaged_store_file_is_a_clear_error_before_the_port_opens(tmp_path, damage, guarantees):
    f = _store_with_rows(tmp_path / "s")
    data = bytearray(f.read_bytes())
    if damage == "garbage":
        data[:100] = b"\x07" * 100
    elif damage == "half":
        data = data[: len(data) // 2 + 1234]
    else:  # a page in the middle overwritten: found by the check at open, not half-way through the replay
        mid = (len(data) // 4096 // 2) * 4096
        data[mid : mid + 4096] = b"\xff" * 4096
    f.write_bytes(bytes(data))
    with pytest.raises(DataError, match="the outcome store is unreadable") as e:
        SqliteStore(tmp_path / "s")
    text = str(e.value)
    assert str(f) in text and "restore" in text and "data_dir=<path>" in text and "Fix:" in text
    guarantees.tick("corruptions detected")


def test_a_store_unreadable_during_the_replay_says_so_and_logs_once(tmp_path, caplog, guarantees):
    _store_with_rows(tmp_path / "s", n=5)

    class Damaged(SqliteStore):
        def read_since(self, after_id, limit=100_000):
            raise StoreUnreadable(
                f"{self.file}: the outcome store is unreadable (database disk image is malformed)."
                " Fix: restore it from a backup, or point --data-dir at a new folder."
            )

    app = create_app(tiny_router(), store=Damaged(tmp_path / "s"), limits=Limits(refresh_seconds=0.05))
    with caplog.at_level(logging.ERROR, logger="v0lite.serve"):
        with serve_in_thread(app, wait_ready=False) as base:
            time.sleep(1.0)  # about 20 refresh periods
            ready = httpx.get(base + "/readyz")
            assert ready.status_code == 503 and ready.json()["replaying"] is False
            assert "unreadable" in ready.json()["refresh_error"] and "backup" in ready.json()["refresh_error"]
            t0 = time.monotonic()
            r = httpx.post(base + "/v1/route", json={"prompt": "x"}, timeout=20)
            err = r.json()["error"]
            assert r.status_code == 503 and err["code"] == "store_unreadable" and "backup" in err["fix"], r.text
            assert "retry when" not in err["message"] and time.monotonic() - t0 < 5  # no 60 s wait first
    assert sum("refresh failed" in rec.getMessage() for rec in caplog.records) == 1
    guarantees.tick("corruptions detected")


def test_the_data_dir_rule_speaks_of_the_store_and_accepts_lost_and_found(tmp_path, guarantees):
    (tmp_path / "vol" / "lost+found").mkdir(parents=True)  # a fresh ext4 volume
    s = SqliteStore(tmp_path / "vol")
    s.append([{"policy": "a", "prompt": "p", "score": 1.0}])
    s.close()
    assert SqliteStore(tmp_path / "vol").count() == 1
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"--data-dir .*busy: holds files v0lite did not write \(notes.txt\)") as e:
        SqliteStore(tmp_path / "busy")
    text = str(e.value)
    assert "a save replaces" not in text and "first" not in text.split("Fix:")[1]
    assert "do not empty" in text and "earlier outcome store" in text
    guarantees.tick("bad-input cases tried")


def test_store_files_check_sqlite_errors_are_not_hidden(tmp_path):
    """A constraint error is the caller's, not a damaged file: it stays a sqlite3 error."""
    s = SqliteStore(tmp_path / "s")
    with pytest.raises(sqlite3.IntegrityError):
        s.append([{"policy": None, "prompt": "p", "score": 0.5}])
    s.close()


def test_a_retried_batch_with_its_idempotency_key_is_stored_once(tmp_path, guarantees):
    rows = [{"policy": "a", "prompt": f"add the numbers case {i}", "score": 1.0} for i in range(3)]
    key = {"Idempotency-Key": "batch-7f3a-0001"}
    with serve_in_thread(create_app(tiny_router(), data_dir=tmp_path / "s")) as base:
        first = httpx.post(base + "/v1/feedback", json={"outcomes": rows}, headers=key).json()
        assert first["stored"] == 3 and first["ids"] == [1, 3] and "replayed" not in first
        again = httpx.post(base + "/v1/feedback", json={"outcomes": rows}, headers=key)  # the answer was lost
        assert again.status_code == 200 and again.json()["ids"] == [1, 3] and again.json()["replayed"] is True
        assert httpx.get(base + "/v1/stats").json()["feedback_rows"] == 3
        other = httpx.post(base + "/v1/feedback", json={"outcomes": rows[:1]}, headers=key)
        err = other.json()["error"]
        assert other.status_code == 422 and err["param"] == "Idempotency-Key" and "another batch" in err["message"]
        bad = httpx.post(base + "/v1/feedback", json={"outcomes": rows}, headers={"Idempotency-Key": "x" * 300})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "Idempotency-Key"
        plain = httpx.post(base + "/v1/feedback", json={"outcomes": rows}).json()  # no key: stored again
        assert plain["ids"] == [4, 6]
    with serve_in_thread(create_app(tiny_router(), data_dir=tmp_path / "s")) as base:  # the keys survive a restart
        again = httpx.post(base + "/v1/feedback", json={"outcomes": rows}, headers=key).json()
        assert again["ids"] == [1, 3] and again["replayed"] is True
        assert httpx.get(base + "/v1/stats").json()["feedback_rows"] == 6
    guarantees.tick("faults injected")


def test_a_store_whose_rows_were_only_in_a_lost_wal_file_is_refused(tmp_path, guarantees):
    """meta.json and a database without its outcomes table (the rows were in the -wal file, now gone)."""
    import shutil

    live = SqliteStore(tmp_path / "live")
    live.append([{"policy": "a", "prompt": "add the numbers case 1", "score": 1.0}])
    (tmp_path / "copy").mkdir()
    for name in ("meta.json", STORE_FILE):  # a backup taken without the -wal file, while the store was open
        shutil.copy(tmp_path / "live" / name, tmp_path / "copy" / name)
    live.close()
    assert (tmp_path / "copy" / STORE_FILE).stat().st_size > 0  # not the 0-byte case
    with pytest.raises(StoreUnreadable, match="no outcomes table") as e:
        SqliteStore(tmp_path / "copy")
    assert "-wal" in str(e.value) and "backup" in str(e.value) and "data_dir=<path>" in str(e.value)
    with pytest.raises(StoreUnreadable, match="no outcomes table"):
        create_app(tiny_router(), data_dir=tmp_path / "copy")
    guarantees.tick("corruptions detected")


def test_creators_of_one_fresh_store_at_once_all_open_it(tmp_path, guarantees):
    import threading

    for i in range(25):
        folder, got, errors = tmp_path / f"s{i}", [], []
        start = threading.Barrier(3)

        def create(folder, start, got, errors):
            start.wait()
            try:
                got.append(SqliteStore(folder))
            except Exception as exc:  # noqa: BLE001 - the test reports it
                errors.append(exc)

        threads = [threading.Thread(target=create, args=(folder, start, got, errors)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors and len(got) == 3, errors
        got[0].append([{"policy": "a", "prompt": "p", "score": 1.0}])
        assert [s.count() for s in got] == [1, 1, 1]
        for s in got:
            s.close()
    guarantees.tick("concurrent cache writers", 25)


def test_several_idempotency_keys_are_refused(tmp_path, guarantees):
    rows = [{"policy": "a", "prompt": "add the numbers case 1", "score": 1.0}]
    with serve_in_thread(create_app(tiny_router(), data_dir=tmp_path / "s")) as base:
        r = httpx.post(
            base + "/v1/feedback",
            json={"outcomes": rows},
            headers=[("Idempotency-Key", "batch-1"), ("Idempotency-Key", "batch-2")],
        )
        err = r.json()["error"]
        assert r.status_code == 422 and err["param"] == "Idempotency-Key" and err["value"] == ["batch-1", "batch-2"]
        assert "send one Idempotency-Key" in err["fix"]
        assert httpx.get(base + "/v1/stats").json()["feedback_rows"] == 0
    guarantees.tick("bad-input cases tried")


def test_a_store_unreadable_on_feedback_turns_readyz_503_and_logs_once(tmp_path, caplog, guarantees):
    class Breaks(SqliteStore):
        broken = False

        def append(self, rows):
            if self.broken:
                raise StoreUnreadable(f"{self.file}: the outcome store is unreadable (disk I/O error). Fix: restore.")
            return super().append(rows)

    store = Breaks(tmp_path / "s")
    rows = [{"policy": "a", "prompt": "add the numbers case 1", "score": 1.0}]
    with caplog.at_level(logging.ERROR, logger="v0lite.serve"):
        with serve_in_thread(create_app(tiny_router(), store=store, limits=Limits(refresh_seconds=0.05))) as base:
            assert httpx.post(base + "/v1/feedback", json={"outcomes": rows}).status_code == 200
            store.broken = True
            for _ in range(3):
                r = httpx.post(base + "/v1/feedback", json={"outcomes": rows})
                assert r.status_code == 503 and r.json()["error"]["code"] == "store_unreadable"
            time.sleep(0.3)  # refresh passes (reads work) do not hide it
            ready = httpx.get(base + "/readyz")
            assert ready.status_code == 503 and "unreadable" in ready.json()["refresh_error"]
            assert "unreadable" in httpx.get(base + "/v1/stats").json()["refresh_error"]
            store.broken = False  # repaired: the next commit works and readiness comes back
            assert httpx.post(base + "/v1/feedback", json={"outcomes": rows}).status_code == 200
            assert httpx.get(base + "/readyz").status_code == 200
    assert sum("could not be stored" in rec.getMessage() for rec in caplog.records) == 1
    guarantees.tick("corruptions detected")


def test_the_replay_reports_its_progress_in_chunks(tmp_path):
    n = 12_000
    s = SqliteStore(tmp_path / "s")
    s.append([{"policy": "a", "prompt": f"add the numbers case {i % 40}", "score": float(i % 2)} for i in range(n)])
    s.close()
    reads = []

    class Slow(SqliteStore):
        def read_since(self, after_id, limit=100_000):
            reads.append((after_id, limit))
            if len(reads) > 1:
                time.sleep(0.4)  # a slow disk: the replay's progress is seen between chunks
            return super().read_since(after_id, limit)

    app = create_app(tiny_router(), store=Slow(tmp_path / "s"), limits=Limits(refresh_seconds=0.05))
    seen = []
    with serve_in_thread(app, wait_ready=False) as base:
        deadline = time.monotonic() + 60
        while (r := httpx.get(base + "/readyz")).status_code == 503:
            assert time.monotonic() < deadline
            if r.json()["replaying"]:
                seen.append((r.json()["applied_rows"], r.json()["store_rows"]))
            time.sleep(0.02)
        assert httpx.get(base + "/v1/stats").json()["applied_rows"] == n
    assert [a for a, _ in reads[:4]] == [0, 5_000, 10_000, 12_000] and reads[0][1] == 5_000
    assert {5_000, 10_000} <= {a for a, _ in seen} and {t for _, t in seen} == {n}


# --------------------------------------------------------------------------- the volume fails under a running server

ROWS = [{"policy": "a", "prompt": f"add the numbers case {i} " + "x" * 300, "score": 1.0} for i in range(40)]


def _feedback(base, rows=ROWS, **kw):
    return httpx.post(base + "/v1/feedback", json={"outcomes": rows}, timeout=kw.pop("timeout", 20), **kw)


def test_a_full_disk_answers_503_naming_the_file_and_readyz_turns_503_until_a_commit_works(tmp_path, guarantees):
    """A real SQLITE_FULL: the store's writer may not grow the file (max_page_count), as on a full volume."""
    store = SqliteStore(tmp_path / "s")
    app = create_app(tiny_router(), store=store, limits=Limits(refresh_seconds=0.05))
    with serve_in_thread(app) as base:
        assert _feedback(base, ROWS[:1]).status_code == 200
        pages = store._write.execute("PRAGMA page_count").fetchone()[0]
        store._write.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
        for key in (None, "batch-full-1"):
            r = _feedback(base, headers={"Idempotency-Key": key} if key else {})
            err = r.json()["error"]
            assert r.status_code == 503 and err["code"] == "store_full" and err["type"] == "server_error", r.text
            assert str(store.file) in err["message"] and "disk is full" in err["message"]
            assert "free space" in err["fix"] and str(tmp_path / "s") in err["fix"] and "--data-dir" in err["fix"]
            assert int(r.headers["retry-after"]) > 0
        ready = httpx.get(base + "/readyz")
        assert ready.status_code == 503 and "disk is full" in ready.json()["refresh_error"]
        time.sleep(0.3)  # refresh passes (reads work) do not hide it
        assert httpx.get(base + "/readyz").status_code == 503
        assert httpx.get(base + "/v1/stats").json()["feedback_rows"] == 1  # nothing of the refused batches
        store._write.execute("PRAGMA max_page_count = 1073741823")  # space freed
        r = _feedback(base, headers={"Idempotency-Key": "batch-full-1"})
        assert r.status_code == 200 and r.json()["ids"] == [2, 41] and "replayed" not in r.json()
        assert httpx.get(base + "/readyz").status_code == 200
        assert [i for i, _ in store.read_since(0)] == list(range(1, 42))  # no half batch, nothing twice
    guarantees.tick("faults injected")


def test_readiness_comes_back_by_itself_once_the_full_volume_takes_writes_again(tmp_path, guarantees):
    """Behind a load balancer no feedback reaches a replica whose /readyz says 503: the refresh loop re-checks
    the store (with backoff) and readiness comes back without a feedback POST, not while the fault lasts."""
    store = SqliteStore(tmp_path / "s")
    app = create_app(tiny_router(), store=store, limits=Limits(refresh_seconds=0.05))

    def max_pages(n):
        with store._wlock:  # the writer connection is the probe's too
            store._write.execute(f"PRAGMA max_page_count = {n}")

    with serve_in_thread(app) as base:
        assert _feedback(base, ROWS[:1]).status_code == 200
        max_pages(store._write.execute("PRAGMA page_count").fetchone()[0])  # the disk is full
        assert _feedback(base).json()["error"]["code"] == "store_full"
        for _ in range(8):  # 1.2 s: about 24 refresh periods, probes at 1, 2, 4, 8 periods after the failure
            time.sleep(0.15)
            ready = httpx.get(base + "/readyz")
            assert ready.status_code == 503 and "disk is full" in ready.json()["refresh_error"]
        max_pages(1073741823)  # space freed; no client sends feedback
        deadline = time.monotonic() + 10
        while (ready := httpx.get(base + "/readyz")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.05)
        assert ready.json()["refresh_error"] is None
        assert [i for i, _ in store.read_since(0)] == [1]  # the probes stored nothing
        assert _feedback(base, ROWS[:2]).json()["ids"] == [2, 3]  # and used no id
    guarantees.tick("faults injected")


@pytest.mark.parametrize("fault", ["read_only", "full", "none"])
def test_check_writes_says_why_a_batch_would_fail_and_stores_nothing(tmp_path, monkeypatch, fault):
    import os

    store = SqliteStore(tmp_path / "s")
    store.append(ROWS[:1])
    real = os.statvfs

    class Faulty:
        def __init__(self, st):
            self.st = st

        def __getattr__(self, name):
            v = getattr(self.st, name)
            if name == "f_flag" and fault == "read_only":
                return v | os.ST_RDONLY
            return 1 if name in ("f_bfree", "f_bavail") and fault == "full" else v

    monkeypatch.setattr(os, "statvfs", lambda p: Faulty(real(p)))
    why = store.check_writes()
    expect = {"read_only": "read-only", "full": "bytes free", "none": None}[fault]
    assert why is None if expect is None else expect in why
    assert store.count() == 1 and store.append(ROWS[1:2]) == (2, 2)
    store.close()


def test_a_write_lock_held_elsewhere_answers_503_busy_after_a_bounded_wait(tmp_path, guarantees):
    """Another process's transaction (BEGIN IMMEDIATE) holds the lock: every queued batch gets its 503 within
    the one bounded wait (not k times SQLite's timeout), readiness stays; a short lock is waited out."""
    import threading

    store = SqliteStore(tmp_path / "s")
    store.busy_wait_s = 1.0
    other = sqlite3.connect(store.file, isolation_level=None, check_same_thread=False)
    with serve_in_thread(create_app(tiny_router(), store=store)) as base:
        other.execute("BEGIN IMMEDIATE")
        answers, took = [None] * 3, [None] * 3

        def send(i):
            t0 = time.monotonic()
            answers[i] = _feedback(base, ROWS[i : i + 1], timeout=8)
            took[i] = time.monotonic() - t0

        threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        for r in answers:
            err = r.json()["error"]
            assert r.status_code == 503 and err["code"] == "store_busy", r.text
            assert str(store.file) in err["message"] and "write lock" in err["message"] and "fuser" in err["fix"]
            assert r.headers["retry-after"].isdigit()
        assert max(took) < 3.0, took  # one bounded wait each, not 1 s, 2 s, 3 s behind each other
        assert httpx.get(base + "/readyz").status_code == 200  # a lock is no reason to leave the pool
        other.execute("ROLLBACK")
        other.execute("BEGIN IMMEDIATE")  # a short lock (0.4 s) is waited out
        threading.Timer(0.4, lambda: other.execute("ROLLBACK")).start()
        assert all(r.status_code == 200 for r in [_feedback(base, ROWS[:2]), _feedback(base, ROWS[2:3])])
        assert httpx.get(base + "/v1/stats").json()["feedback_rows"] == 3
    other.close()
    guarantees.tick("faults injected")


@pytest.mark.parametrize("existing", [True, False])
def test_a_read_only_file_system_is_named_with_a_fix_that_applies(tmp_path, monkeypatch, existing, guarantees):
    """A store on a volume mounted read-only is refused as such (statvfs says ST_RDONLY), not as 'permission denied'."""
    import os

    folder = tmp_path / "vol" / "s"
    if existing:
        SqliteStore(folder).close()
    else:
        folder.parent.mkdir()
    real = os.statvfs
    vol = str(tmp_path / "vol")

    class ReadOnly:
        def __init__(self, st):
            self.st = st

        def __getattr__(self, name):
            return getattr(self.st, name) | (os.ST_RDONLY if name == "f_flag" else 0)

    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly(real(p)) if str(p).startswith(vol) else real(p))
    with pytest.raises(DataError, match="read-only file system") as e:
        create_app(tiny_router(), data_dir=folder)
    text = str(e.value)
    assert f"--data-dir {folder}" in text and "permission denied" not in text and "remount it read-write" in text
    assert ("copy the folder" in text) == existing  # an earlier store: its outcomes go with the copy
    guarantees.tick("bad-input cases tried")


def test_the_store_asks_the_one_read_only_helper(tmp_path, monkeypatch):
    """check_writable (at start) and check_writes (after a failed commit) read ST_RDONLY through _io's helper,
    as the output checks do (each had its own copy)."""
    from v0lite.serve import _store

    store = SqliteStore(tmp_path / "s")
    asked = []
    monkeypatch.setattr(_store, "read_only_volume", lambda where: asked.append(where) or True)
    assert store.check_writes() == "its volume is read-only"
    with pytest.raises(DataError, match=r"cannot write there \(read-only file system\)"):
        _store.check_writable(tmp_path / "s")
    assert len(asked) == 2 and asked[1] == tmp_path / "s"  # the first: what statvfs said of the store's folder
    store.close()
