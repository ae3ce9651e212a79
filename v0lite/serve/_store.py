"""The outcome store: feedback rows, durable before they are acknowledged.

:class:`OutcomeStore` is the small interface the service needs: append a batch atomically and
durably, read the rows after an id, count. :class:`SqliteStore` is the default, one embedded
SQLite file in WAL mode with ``synchronous=FULL``: every commit is synced, so an acknowledged
batch survives a kill -9 and an OS crash. A server database (Postgres, ...) can replace it on a
cluster by implementing the same four methods; every replica reads the rows in id order. Two more
are optional: ``append_once`` (feedback's ``Idempotency-Key``: the rows and the key in one
transaction), ``has_policy`` (a name stored by another process, not yet applied, is known) and
``check_writes`` (after a full or read-only volume, the server finds out by itself that writes work
again, without waiting for a client's batch).

Rows are dicts with ``policy``, ``prompt``, ``score`` and optional ``step``, ``n`` (None when
absent). Ids increase with every commit; a batch's rows get consecutive ids.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

from .._io import atomic_write_json, read_only_volume
from ..exceptions import DataError, FormatVersionError, V0liteError

__all__ = [
    "OutcomeStore",
    "SqliteStore",
    "StoreUnreadable",
    "StoreUnavailable",
    "STORE_FORMAT",
    "STORE_FORMAT_VERSION",
    "STORE_FILE",
    "check_store_dir",
    "check_writable",
]

STORE_FORMAT = "v0lite-outcome-store"
STORE_FORMAT_VERSION = 1
STORE_FILE = "outcomes.sqlite3"
COLUMNS = ("policy", "prompt", "score", "step", "n")
_SYSTEM = {"lost+found"}  # a fresh ext4 volume's own folder: not data of anyone's
_OWN_TEMP = re.compile(r"\.meta\.json\..+\.tmp")  # meta.json being written by another process creating the store


class StoreUnreadable(DataError):
    """The store's file is damaged or missing: the service cannot read (or write) its outcomes."""


def _damaged(exc: BaseException) -> bool:
    """Whether an SQLite error says the file itself is damaged (not a lock, a full disk, a constraint)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and (
        type(exc) is sqlite3.DatabaseError or "malformed" in text or "not a database" in text
    )


class StoreUnavailable(V0liteError):
    """The store cannot take a batch now: a full disk, a write lock held elsewhere, a read-only or failing
    volume. Nothing of the batch is stored; a retry works once the cause is gone.

    ``code`` names the cause (``store_full``, ``store_busy``, ``store_read_only``, ``store_io_error``),
    ``retry_after`` the seconds a client waits before retrying, ``lasting`` whether the cause outlives a
    retry (the server then says it is not ready until writes work again; a lock is not lasting).
    """

    def __init__(self, message: str, *, code: str, retry_after: int, lasting: bool):
        super().__init__(message)
        self.code, self.retry_after, self.lasting = code, retry_after, lasting


# SQLite's primary result codes (an extended code's low byte) -> the cause, its fix, retry-after seconds, lasting
_FAULTS = {
    13: (  # SQLITE_FULL
        "store_full",
        "the disk is full",
        "free space on the volume that holds the store's folder {folder} (the server's --data-dir)",
        60,
        True,
    ),
    5: (  # SQLITE_BUSY: another connection holds the write lock
        "store_busy",
        "another process has held the store's write lock for over {wait:g} s",
        "retry in a few seconds; if it lasts, end the process that holds {file} open in a transaction (find it "
        "with `fuser {file}`: a backup or an sqlite3 shell; other v0lite servers on the folder hold it for a commit)",
        5,
        False,
    ),
    8: (  # SQLITE_READONLY: the file, its folder or its volume turned read-only under the server
        "store_read_only",
        "the store's file, its folder or its volume is read-only",
        "make {folder} and its files writable by the server's user again (remount the volume read-write)",
        60,
        True,
    ),
    10: (  # SQLITE_IOERR: the OS failed a read, write or sync
        "store_io_error",
        "the disk failed a read or write",
        "check the volume that holds {folder} (the kernel log, `dmesg`; a network volume that went away)",
        60,
        True,
    ),
}
_FAULTS[6] = _FAULTS[5]  # SQLITE_LOCKED: the same lock, met inside this process
_FAULTS[14] = _FAULTS[10]  # SQLITE_CANTOPEN: a -wal or -shm file that cannot be opened any more


def _unavailable(file, exc: BaseException, wait_s: float, errcode: int | None = None) -> StoreUnavailable | None:
    """The fault an SQLite error names (a full disk, a lock, a read-only or failing volume), or None."""
    if errcode is None and isinstance(exc, sqlite3.OperationalError):
        errcode = getattr(exc, "sqlite_errorcode", None)
    fault = _FAULTS.get((errcode or 0) & 0xFF)
    if fault is None:
        return None
    code, what, fix, retry_after, lasting = fault
    names = {"file": file, "folder": Path(file).parent, "wait": wait_s}
    return StoreUnavailable(
        f"{file}: the outcome store cannot take this batch: {what.format(**names)} (SQLite: {exc}), so none of its "
        f"rows were stored. Fix: {fix.format(**names)}; then send the batch again (with its Idempotency-Key, if "
        "it had one).",
        code=code,
        retry_after=retry_after,
        lasting=lasting,
    )


def _store_error(file, exc: BaseException, wait_s: float) -> BaseException:
    """An SQLite error in the store's terms: damage, a fault of the volume or a lock, or ``exc`` itself."""
    if _damaged(exc):
        return _unreadable(file, exc)
    return _unavailable(file, exc, wait_s) or exc


def _unreadable(file, exc: BaseException) -> StoreUnreadable:
    return StoreUnreadable(
        f"{file}: the outcome store is unreadable ({exc}): the file is damaged (truncated, overwritten or "
        "corrupted), so its outcomes cannot be replayed or added to. Fix: stop the server and restore the folder "
        f"{Path(file).parent} from a backup, or point data_dir=<path> at a new folder to start "
        "an empty store (the damaged one is left as it is)."
    )


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

    The service never deletes or replaces anything in the folder; it refuses one holding files it
    did not write, so that the store's files are never mixed with others (and nobody empties the
    folder to make room, deleting outcomes). A store's ``meta.json`` names its format and lists
    its files (the SQLite file and its WAL companions), so an earlier store is accepted. A
    ``lost+found/`` folder (a fresh ext4 volume's) is ignored.
    """
    p = Path(path)
    label = f"--data-dir {path}"
    fix = (
        f"Fix: point data_dir=<path> at a new or empty folder, or at the folder of an earlier "
        f"outcome store; move the other files elsewhere (do not empty {path} to make room: an outcome store in it "
        "would be lost with them)."
    )
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            raise DataError(f"{label}: is a file, not a folder. {fix}")
        try:
            entries = sorted(e for e in os.listdir(p) if e not in _SYSTEM and not _OWN_TEMP.fullmatch(e))
        except OSError as exc:
            raise DataError(f"{label}: cannot be read ({exc.strerror}). {fix}") from None
        if entries:
            from .._io import read_json_file

            meta = None
            try:  # a regular file only (a FIFO would block); deep nesting or a huge integer is a ValueError too
                meta = read_json_file(p / "meta.json") if "meta.json" in entries else None
            except (OSError, ValueError):
                pass
            fmt = meta.get("format") if isinstance(meta, dict) else None
            files = meta.get("files") if isinstance(meta, dict) and isinstance(meta.get("files"), dict) else None
            ours = {"meta.json", *(files or ())} if fmt == STORE_FORMAT else {"meta.json"}
            foreign = [e + ("/" if (p / e).is_dir() else "") for e in entries if e not in ours]
            if fmt != STORE_FORMAT or files is None:
                foreign = foreign or ["meta.json"]
            if foreign:
                what = (
                    f"holds a {fmt} folder, not an outcome store"
                    if isinstance(fmt, str) and fmt.startswith("v0lite") and fmt != STORE_FORMAT
                    else f"holds files v0lite did not write ({', '.join(foreign[:3])})"
                )
                raise DataError(f"{label}: {what}; the outcome store needs a folder of its own. {fix}")
    at = p if p.exists() else _nearest_existing(p.resolve().parent)
    if not at.is_dir():  # q.jsonl/store: a folder cannot be made inside a file
        raise DataError(f"{label}: {at} is a file, not a folder, so the store's folder cannot be made in it. {fix}")
    if not os.access(at, os.W_OK | os.X_OK):
        raise DataError(f"{label}: cannot write there (permission denied). {fix}")
    return p


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor: where a folder still to be created would be made."""
    while not path.exists():
        path = path.parent
    return path


def check_writable(path) -> None:
    """Refuse a ``path`` on a read-only file system (or whose nearest existing folder is on one), saying so.

    A permission check alone would say "permission denied", with a fix that does not apply. A
    path that is a file is left to :func:`check_store_dir`.
    """
    p = Path(path)
    at = p
    if not p.is_dir():
        if p.exists() or p.is_symlink():
            return
        at = _nearest_existing(p.resolve().parent)
    if read_only_volume(at):  # None (not POSIX, or not readable): check_store_dir's own check speaks
        fix = (
            "copy the folder somewhere writable and point data_dir=<path> at the copy"
            if (p / "meta.json").exists()  # an earlier store: its outcomes go with the copy
            else "point data_dir=<path> at a folder on a writable volume"
        )
        where = "" if at == p else f" at {at}"
        label = f"--data-dir {path}"  # where, as check_store_dir names it; the fix in Python terms (cli_text maps it)
        raise DataError(
            f"{label}: cannot write there (read-only file system{where}). Fix: remount it read-write, or {fix}."
        )


@contextlib.contextmanager
def _folder_lock(path):
    """An exclusive lock on the store's folder while a store is created or checked (flock; none where absent)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


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

    # the longest a batch waits for the store's write lock in all (behind this process's other batches, then
    # another process's transaction) before it is refused as busy (503 store_busy, retried by the client)
    busy_wait_s = 10.0

    def __init__(self, path):
        check_writable(path)
        if not Path(path).is_dir():
            check_store_dir(path)  # a file, or a folder that cannot be made, is refused before mkdir
        Path(path).mkdir(parents=True, exist_ok=True)
        with _folder_lock(path):  # two processes creating one fresh store: one creates, the other opens it
            self.path = check_store_dir(path)
            self.file = self.path / STORE_FILE
            existing = (self.path / "meta.json").exists()
            if existing:
                # an earlier store: its database must be there. SQLite would silently make a new empty one,
                # and every acknowledged outcome would be gone without a word
                size = self.file.stat().st_size if self.file.exists() else None
                if not size:
                    raise self._lost(f"{STORE_FILE} is {'missing' if size is None else 'empty (0 bytes)'}")
            else:  # the folder's marker: what it is, which files are ours
                atomic_write_json(
                    self.path / "meta.json",
                    {
                        "format": STORE_FORMAT,
                        "format_version": STORE_FORMAT_VERSION,
                        "files": {f"{STORE_FILE}{s}": "sqlite" for s in ("", "-wal", "-shm", "-journal")},
                    },
                )
            # one writer connection and one reader connection, each behind its own lock: WAL lets
            # the reader (refresh, stats) run while a feedback batch commits
            self._wlock, self._rlock = threading.Lock(), threading.Lock()
            self._write = self._read = None
            try:
                self._open(existing)
            except BaseException as exc:
                for con in (self._write, self._read):
                    if con is not None:
                        con.close()
                if _damaged(exc):
                    raise _unreadable(self.file, exc) from None
                raise

    def _lost(self, what: str) -> StoreUnreadable:
        return StoreUnreadable(
            f"{self.path}: {what}, but meta.json says this folder holds an outcome store, so its outcomes are not "
            "there (SQLite would silently start an empty store in its place). Fix: restore "
            f"{self.file} (and its -wal file) from a backup; or, to start an empty store, point data_dir=<path> at "
            f"a new folder (or, if this store never acknowledged any feedback, delete {self.path / 'meta.json'})."
        )

    def _open(self, existing: bool) -> None:
        self._write = self._connect()
        self._read = self._connect()
        # a damaged file is found now, before the port opens, not half-way through the replay
        problems = [r[0] for r in self._read.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(problems[:3]))
        tables = {r[0] for r in self._read.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        self._read.commit()
        if existing and "outcomes" not in tables:
            # its rows were in a -wal file that is gone or damaged: the database alone is an empty shell
            raise self._lost(
                f"{STORE_FILE} holds no outcomes table (its rows were in a -wal file that is missing or damaged)"
            )
        with self._wlock, self._write:
            self._write.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._write.execute(
                "CREATE TABLE IF NOT EXISTS outcomes (id INTEGER PRIMARY KEY AUTOINCREMENT, policy TEXT NOT NULL, "
                "prompt TEXT NOT NULL, score REAL NOT NULL, step INTEGER, n INTEGER, "
                "received REAL NOT NULL DEFAULT (julianday('now')))"
            )
            # feedback's Idempotency-Key: the ids its batch got, and a digest of the batch (a retry of it)
            self._write.execute(
                "CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, first INTEGER NOT NULL, "
                "last INTEGER NOT NULL, digest TEXT NOT NULL, received REAL NOT NULL DEFAULT (julianday('now')))"
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
        with self._writing():
            return self._insert(values)

    @contextlib.contextmanager
    def _writing(self):
        """The writer connection for one transaction: committed, or rolled back on error.

        The wait for it is bounded in all (``busy_wait_s``): the batches queued before this one,
        then SQLite's busy timeout, set to what is left. Without that each queued batch would wait
        its own full timeout behind a lock held elsewhere. SQLite errors come out in the store's terms.
        """
        deadline = time.monotonic() + self.busy_wait_s
        try:
            if not self._wlock.acquire(timeout=self.busy_wait_s):  # the batches before this one used the wait up
                raise _unavailable(self.file, sqlite3.OperationalError("database is locked"), self.busy_wait_s, 5)
            try:
                left = max(deadline - time.monotonic(), 0.05)
                self._write.execute(f"PRAGMA busy_timeout = {int(left * 1000)}")
                with self._write:  # the connection's context manager commits, or rolls back on error
                    yield self._write
            finally:
                self._wlock.release()
        except sqlite3.DatabaseError as exc:
            err = _store_error(self.file, exc, self.busy_wait_s)
            if err is exc:
                raise
            raise err from None

    def _insert(self, values: list[tuple]) -> tuple[int, int]:
        self._write.executemany("INSERT INTO outcomes (policy, prompt, score, step, n) VALUES (?, ?, ?, ?, ?)", values)
        last = int(self._write.execute("SELECT last_insert_rowid()").fetchone()[0])
        return last - len(values) + 1, last

    def append_once(self, rows: Sequence[dict], key: str, digest: str) -> tuple[int, int, bool, str]:
        """``append`` under an idempotency key: the rows and the key in one transaction.

        Returns ``(first id, last id, stored now, digest)``: a key already stored returns its batch's
        ids and digest, and stores nothing (optional; the service asks it of a store that has it).
        """
        values = [tuple(r.get(c) for c in COLUMNS) for r in rows]
        if not values:
            raise DataError("no rows to store. Fix: send at least one outcome.")
        with self._writing():
            self._write.execute("BEGIN IMMEDIATE")  # the lookup and the insert see no other writer between
            sql = "SELECT first, last, digest FROM idempotency WHERE key = ?"
            got = self._write.execute(sql, (key,)).fetchone()
            if got is not None:
                return int(got[0]), int(got[1]), False, str(got[2])
            first, last = self._insert(values)
            self._write.execute(
                "INSERT INTO idempotency (key, first, last, digest) VALUES (?, ?, ?, ?)", (key, first, last, digest)
            )
            return first, last, True, digest

    # free space a batch needs before a full volume counts as fixed: one batch of the default --max-body-bytes
    min_free_bytes = 1 << 20

    def check_writes(self) -> str | None:
        """Why a batch would not be stored now (a full or read-only volume, a lock, a failing disk), or None.

        Optional (the service asks it of a store that has it, after a commit failed for a lasting
        cause, so that readiness comes back without a client's batch). It stores nothing: the volume's
        read-only flag and free space (a real full disk only shows at a commit), then a write
        transaction that takes the write lock and inserts a row needing new pages (SQLite's own size
        limit), rolled back (no row and no id is used).
        """
        try:
            st = os.statvfs(self.path)
        except AttributeError:  # not POSIX: the SQLite probe alone
            st = None
        except OSError as exc:  # the volume went away
            return f"the store's folder cannot be read ({exc.strerror})"
        if st is not None:
            free = (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize  # root may use the reserve
            if read_only_volume(st):
                return "its volume is read-only"
            if free < self.min_free_bytes:
                return f"its volume has {free:,} bytes free (under {self.min_free_bytes:,})"
        try:
            with self._writing() as con:
                con.execute("BEGIN IMMEDIATE")
                con.execute(
                    "INSERT INTO outcomes (policy, prompt, score) VALUES (?, ?, ?)",
                    ("v0lite write probe", "x" * 2 * self._page_size(), 0.0),
                )
                con.rollback()  # the probe row never commits; the context's commit then has nothing to do
        except (StoreUnavailable, StoreUnreadable, sqlite3.Error) as exc:
            return str(exc)
        return None

    def _page_size(self) -> int:
        return int(self._query("PRAGMA page_size")[0][0])

    def _query(self, sql: str, args=()) -> list:
        """Rows of one read (its transaction ended after: the next read sees newer commits)."""
        try:
            with self._rlock:
                try:
                    return self._read.execute(sql, args).fetchall()
                finally:
                    self._read.commit()
        except sqlite3.DatabaseError as exc:
            if _damaged(exc):
                raise _unreadable(self.file, exc) from None
            raise

    def read_since(self, after_id: int, limit: int = 100_000) -> list[tuple[int, dict]]:
        """Rows with id > ``after_id`` (oldest first), at most ``limit``."""
        rows = self._query(
            "SELECT id, policy, prompt, score, step, n FROM outcomes WHERE id > ? ORDER BY id LIMIT ?",
            (int(after_id), int(limit)),
        )
        return [(r[0], dict(zip(COLUMNS, r[1:]))) for r in rows]

    def count(self) -> int:
        """Number of stored rows."""
        return int(self._query("SELECT count(*) FROM outcomes")[0][0])

    def has_policy(self, policy: str, after_id: int = 0) -> bool:
        """Whether a row with id > ``after_id`` names ``policy`` (optional; the service asks it of a store
        that has it, for names stored by another process and not yet applied)."""
        return bool(self._query("SELECT 1 FROM outcomes WHERE id > ? AND policy = ? LIMIT 1", (int(after_id), policy)))

    def close(self) -> None:
        """Close both connections (idempotent)."""
        for lock, con in ((self._wlock, self._write), (self._rlock, self._read)):
            with lock:
                con.close()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"
