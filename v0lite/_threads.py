"""Thread safety helpers: a per-object writer lock and a shared cap on the native thread pools.

Readers (``predict``, ``route``) take no lock: every writer builds its new state aside and
publishes it by assignment, and a reader reads that state once per call. Writers (``fit``'s
commit, ``add_history``) of one object are serialised by :func:`writer_lock`, so no update is lost.
Where a reader needs several attributes that one writer changes together, the writer assigns them
and the reader reads them under :func:`publish_lock` (held for the assignments only, never for work).
Where a change reaches readers through two objects, one after the other, the writer :func:`pinned` the
state before it for the second object's readers until its own publication ends the pin (:func:`unpin`).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext

__all__ = ["writer_lock", "publish_lock", "pinned", "pin_of", "unpin", "WriterLockMixin", "capped_threads"]

_LOCK_ATTR = "_v0lite_writer_lock"
_PUBLISH_ATTR = "_v0lite_publish_lock"
_PIN_ATTR = "_v0lite_pinned"


def writer_lock(obj) -> threading.RLock:
    """The lock that serialises ``obj``'s writers, created on first use.

    Per object (two models never wait for each other) and outside the constructor's parameters,
    so ``get_params``/``clone`` never see it. ``dict.setdefault`` is atomic, so two threads
    asking at once get the same lock. Reentrant: a writer may call another writer of the same object.
    """
    lock = obj.__dict__.get(_LOCK_ATTR)
    if lock is None:
        lock = obj.__dict__.setdefault(_LOCK_ATTR, threading.RLock())
    return lock


def publish_lock(obj) -> threading.Lock:
    """The lock under which ``obj``'s writers assign, and its readers read, attributes that go together.

    Not :func:`writer_lock`: a writer holds that one while it merges (``add_history`` merges its rows), and a
    reader must not wait for the work, only for the few assignments that publish its result. Held
    for assignments and reads only (nothing inside calls out), so a plain lock: it never nests.
    """
    lock = obj.__dict__.get(_PUBLISH_ATTR)
    if lock is None:
        lock = obj.__dict__.setdefault(_PUBLISH_ATTR, threading.Lock())
    return lock


@contextmanager
def pinned(obj, read=None):
    """Let ``obj``'s readers read the state ``read()`` returns (:func:`pin_of`) while the block publishes a change
    in two steps.

    For a change that reaches readers through another object first (a Router's value model publishes its new
    index, then the router its pool): a reader between the two publications must still read the state before,
    so the writer pins that state first, and ends the pin with :func:`unpin` in the same :func:`publish_lock`
    block as its own publication. ``read`` runs under that lock too, so no reader reads a newer state before
    the pin than after it. The block's end unpins in any case (a failed write published nothing); ``read``
    None pins nothing.
    """
    if read is not None:
        with publish_lock(obj):
            obj.__dict__[_PIN_ATTR] = read()
    try:
        yield
    finally:
        obj.__dict__.pop(_PIN_ATTR, None)  # one atomic store: a reader reads the pin or its absence


def pin_of(obj):
    """The state pinned by a writer of ``obj`` amid its publications (:func:`pinned`), or None; read it under
    :func:`publish_lock` with the attributes it goes with."""
    return obj.__dict__.get(_PIN_ATTR)


def unpin(obj) -> None:
    """End the pin of :func:`pinned`, under :func:`publish_lock` with the writer's last assignments."""
    obj.__dict__.pop(_PIN_ATTR, None)


class WriterLockMixin:
    """Leaves the locks out of the object's state: ``copy.deepcopy`` (a lock cannot be copied)
    gives the copy its own locks on first use, instead of failing or sharing the original's. A pin
    (:func:`pinned`) stays out too: no writer of the copy would ever end it."""

    def __getstate__(self):
        parent = getattr(super(), "__getstate__", None)  # BaseEstimator's, object's (3.11+), or none (a head)
        state = parent() if parent is not None else None  # object's: None for an empty __dict__
        state = dict(self.__dict__ if state is None else state)
        state.pop(_LOCK_ATTR, None)
        state.pop(_PUBLISH_ATTR, None)
        state.pop(_PIN_ATTR, None)
        return state


# the process-wide BLAS pools are capped once for every thread inside a capped section: the first
# thread in applies the cap, the last one out restores what was set before (entering and leaving
# in any interleaving); OpenMP's setting is per thread, so each thread caps and restores its own
_CAP_LOCK = threading.Lock()
_cap_depth = 0
_cap_blas = None  # the threadpoolctl limiter of the BLAS cap in force, restored by the last thread out


def _limits(info, cap: int, *, openmp: bool) -> dict:
    """At most ``cap`` threads per library, never more than it has now (a caller's lower setting is kept)."""
    out: dict = {}
    for lib in info:
        if (lib["user_api"] == "openmp") == openmp:
            out[lib["prefix"]] = min(out.get(lib["prefix"], cap), int(lib["num_threads"]))
    return out


@contextmanager
def capped_threads(cap: int):
    """Run the block with at most ``cap`` threads per native thread pool (BLAS, OpenMP), from any thread.

    ``threadpoolctl.threadpool_limits`` alone is not safe across threads: the BLAS setting is
    process-wide, so two threads whose sections overlap but do not nest restore each other's cap
    and leave it behind. Here the first thread in caps BLAS and the last one out restores it; a
    thread entering while the cap is in force runs under it (the first thread's ``cap``).
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    global _cap_depth, _cap_blas
    info = threadpool_info()
    with _CAP_LOCK:
        if _cap_depth == 0:
            blas = _limits(info, cap, openmp=False)
            _cap_blas = threadpool_limits(blas) if blas else None
        _cap_depth += 1
    try:
        omp = _limits(info, cap, openmp=True)
        with threadpool_limits(omp) if omp else nullcontext():
            yield
    finally:
        with _CAP_LOCK:
            _cap_depth -= 1
            if _cap_depth == 0 and _cap_blas is not None:
                _cap_blas.restore_original_limits()
                _cap_blas = None
