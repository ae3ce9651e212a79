"""The outcome store: feedback rows, durable before they are acknowledged.

:class:`OutcomeStore` is the small interface the service needs: append a batch atomically and
durably, read the rows after an id, count. :class:`SqliteStore` is the default, one embedded
SQLite file in WAL mode with ``synchronous=FULL``: every commit is synced, so an acknowledged
batch survives a kill -9 and an OS crash. A server database (Postgres, ...) can replace it on a
cluster by implementing the same four methods; every replica reads the rows in id order.

Rows are dicts with ``policy``, ``prompt``, ``score`` and optional ``step``, ``n`` (None when
absent). Ids increase with every commit; a batch's rows get consecutive ids.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

from .._io import atomic_write_json
from ..exceptions import DataError, FormatVersionError

__all__ = ["OutcomeStore", "SqliteStore", "STORE_FORMAT", "STORE_FORMAT_VERSION", "STORE_FILE", "check_store_dir"]

STORE_FORMAT = "v0lite-outcome-store"
STORE_FORMAT_VERSION = 1
STORE_FILE = "outcomes.sqlite3"
COLUMNS = ("policy", "prompt", "score", "step", "n")


@runtime_checkable
class OutcomeStore(Protocol):
    """What the service asks of an outcome store (thread-safe; called from worker threads)."""

    def append(self, rows: Sequence[dict]) -> tuple[int, int]:
        """Store ``rows`` in one transaction, durably, before returning (first id, last id)."""

    def read_since(self, after_id: int, limit: int = 100_000) -> list[tuple[int, dict]]:
        """Up to ``limit`` rows with id > ``after_id``, in id order, as ``(id, row)``."""

    def count(self) -> int:
        """Number of stored rows."""

    def close(self) -> None:
        """Release the store's resources."""


def check_store_dir(path) -> Path:
    """``path`` is usable as an outcome store's folder: new, empty, or holding a v0lite outcome store only.

    The rule of every v0lite save target (:func:`v0lite.persist.check_save_target`): never write
    into a folder holding files v0lite did not write. A store's ``meta.json`` names its format and
    lists its files (the SQLite file and its WAL companions), so an earlier store is accepted.
    """
    from ..persist import check_save_target

    return check_save_target(path, STORE_FORMAT, flag="--data-dir")


class SqliteStore:
    """Outcome rows in one SQLite file (WAL, ``synchronous=FULL``) in folder ``path``.

    Parameters
    ----------
    path : str or Path
        The store's folder (created; must be empty or hold a store, see :func:`check_store_dir`).

    Examples
    --------
    >>> import tempfile
    >>> s = SqliteStore(tempfile.mkdtemp())
    >>> s.append([{"policy": "a", "prompt": "2+2?", "score": 1.0}])
    (1, 1)
    >>> s.read_since(0)[0][1]["policy"], s.count()
    ('a', 1)
    >>> s.close()
    """

    def __init__(self, path):
        self.path = check_store_dir(path)
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / "meta.json").exists():  # the folder's marker: what it is, which files are ours
            atomic_write_json(
                self.path / "meta.json",
                {
                    "format": STORE_FORMAT,
                    "format_version": STORE_FORMAT_VERSION,
                    "files": {f"{STORE_FILE}{s}": "sqlite" for s in ("", "-wal", "-shm", "-journal")},
                },
            )
        self.file = self.path / STORE_FILE
        # one writer connection and one reader connection, each behind its own lock: WAL lets
        # the reader (refresh, stats) run while a feedback batch commits
        self._write = self._connect()
        self._read = self._connect()
        self._wlock, self._rlock = threading.Lock(), threading.Lock()
        with self._wlock, self._write:
            self._write.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._write.execute(
                "CREATE TABLE IF NOT EXISTS outcomes (id INTEGER PRIMARY KEY AUTOINCREMENT, policy TEXT NOT NULL, "
                "prompt TEXT NOT NULL, score REAL NOT NULL, step INTEGER, n INTEGER, "
                "received REAL NOT NULL DEFAULT (julianday('now')))"
            )
            self._write.execute(
                "INSERT OR IGNORE INTO meta VALUES ('format', ?), ('format_version', ?)",
                (STORE_FORMAT, str(STORE_FORMAT_VERSION)),
            )
        meta = dict(self._write.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != STORE_FORMAT or meta.get("format_version") != str(STORE_FORMAT_VERSION):
            raise FormatVersionError(
                f"{self.file}: format {meta.get('format')!r} version {meta.get('format_version')!r}, expected "
                f"{STORE_FORMAT!r} version {STORE_FORMAT_VERSION}. Fix: serve with a v0lite that wrote it, or "
                "give a new data_dir=<path>."
            )

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.file, check_same_thread=False, isolation_level="DEFERRED", timeout=30.0)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")  # NORMAL would lose recent commits on power loss
        return con

    def append(self, rows: Sequence[dict]) -> tuple[int, int]:
        """Insert ``rows`` in one transaction; returns once the commit is synced (first id, last id)."""
        values = [tuple(r.get(c) for c in COLUMNS) for r in rows]
        if not values:
            raise DataError("no rows to store. Fix: send at least one outcome.")
        with self._wlock, self._write:  # the connection's context manager commits, or rolls back on error
            cur = self._write.executemany(
                "INSERT INTO outcomes (policy, prompt, score, step, n) VALUES (?, ?, ?, ?, ?)", values
            )
            last = int(self._write.execute("SELECT last_insert_rowid()").fetchone()[0])
            del cur
        return last - len(values) + 1, last

    def read_since(self, after_id: int, limit: int = 100_000) -> list[tuple[int, dict]]:
        """Rows with id > ``after_id`` (oldest first), at most ``limit``."""
        with self._rlock:
            cur = self._read.execute(
                "SELECT id, policy, prompt, score, step, n FROM outcomes WHERE id > ? ORDER BY id LIMIT ?",
                (int(after_id), int(limit)),
            )
            out = [(r[0], dict(zip(COLUMNS, r[1:]))) for r in cur.fetchall()]
            self._read.commit()  # end the read transaction: the next read sees newer commits
        return out

    def count(self) -> int:
        """Number of stored rows."""
        with self._rlock:
            n = int(self._read.execute("SELECT count(*) FROM outcomes").fetchone()[0])
            self._read.commit()
        return n

    def close(self) -> None:
        """Close both connections (idempotent)."""
        for lock, con in ((self._wlock, self._write), (self._rlock, self._read)):
            with lock:
                con.close()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"
