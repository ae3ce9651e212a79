"""Progress on long waits, one way everywhere: tqdm on stderr, shown only past a short delay.

Two shapes: :func:`bar` for a countable loop (prompts embedded, folds, steps) and
:func:`stage` for one opaque wait (loading the encoder, fitting a member) that shows its
elapsed time while it runs and once more when it ends. Both are silent unless enabled, and
even when enabled a wait shorter than ``DELAY_S`` prints nothing, so cached or tiny calls stay
quiet. The CLI decides ``enabled`` once (:func:`resolve`): on in a terminal, off with
``--quiet`` or when stderr is not a TTY.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time

__all__ = ["DELAY_S", "resolve", "bar", "stage", "quiet_third_party"]

DELAY_S = 1.0  # a wait shorter than this shows nothing


def resolve(quiet: bool = False, force: bool = False) -> bool:
    """Whether to show progress: ``force`` wins, then ``quiet``, else only if stderr is a terminal."""
    if force:
        return True
    if quiet:
        return False
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stderr
        return False


def _shape() -> dict:
    """tqdm's size arguments: follow the terminal, but a terminal that reports 0 x 0 (a bare pty, e.g.
    under `script` or a CI runner) would hide every bar (tqdm hides bars past the screen's height)."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        size = os.terminal_size((0, 0))
    if size.columns and size.lines:
        return {"dynamic_ncols": True}
    return {"ncols": 100, "nrows": 50}


class _Null:
    """The disabled bar: every call is a no-op, iteration passes through."""

    def __init__(self, iterable=None):
        self._it = iterable

    def __iter__(self):
        return iter(self._it if self._it is not None else ())

    def update(self, n=1):
        pass

    def set_postfix_str(self, s="", refresh=True):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def bar(iterable=None, *, total=None, desc: str = "", unit: str = "it", enabled: bool = False):
    """A tqdm bar on stderr (or a no-op when disabled); use as an iterator or call ``update(n)``.

    Examples
    --------
    >>> with bar(total=3, desc="folds", enabled=False) as b:
    ...     b.update(3)
    """
    if not enabled:
        return _Null(iterable)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, delay=DELAY_S, file=sys.stderr, leave=True, **_shape())


@contextlib.contextmanager
def stage(desc: str, *, enabled: bool = False):
    """Show ``desc`` with a live elapsed time while the block runs; ``done in X s`` at the end.

    Examples
    --------
    >>> with stage("fit: gbdt", enabled=False):
    ...     pass
    """
    if not enabled:
        yield
        return
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    b = tqdm(
        total=None, desc=desc, bar_format="{desc} [{elapsed}]", delay=DELAY_S, file=sys.stderr, leave=True, **_shape()
    )
    stop = threading.Event()

    def tick():  # tqdm redraws only on update(); an opaque wait has none, so redraw the clock
        while not stop.wait(0.5):
            if time.perf_counter() - t0 >= DELAY_S:
                b.refresh()
                b.last_print_t = b._time()  # so close() knows it was shown and draws the last line

    th = threading.Thread(target=tick, daemon=True)
    th.start()
    ok = False
    try:
        yield
        ok = True
    finally:
        stop.set()
        th.join()
        elapsed = time.perf_counter() - t0
        if elapsed >= DELAY_S:
            b.bar_format = "{desc}"  # the last line states the time once
            b.set_description_str(f"{desc}: {'done' if ok else 'stopped'} in {elapsed:.1f} s", refresh=False)
        b.close()  # draws the last state once (only if it was ever shown)


#: the loggers whose warnings an encoder load silences (see :func:`quiet_third_party`)
_NOISY_LOGGERS = ("huggingface_hub", "urllib3")


def quiet_third_party():
    """Silence other libraries' bars (transformers' "Loading weights", hub downloads) for a block, and
    their log lines below errors (huggingface_hub's and urllib3's retries of an unreachable hub: some
    30 lines a minute, then the error says it once).

    Returns a context manager; the previous settings are restored on exit (huggingface_hub's
    per-group bar switches included), so a library user's own choice survives. With
    ``HF_HUB_DISABLE_PROGRESS_BARS=0`` (the user's explicit choice) the hub's bars stay on.
    """
    return _Quiet()


class _Quiet:
    def __enter__(self):
        # huggingface_hub sets its logger's level and reads the bars' variable once, when first imported:
        # imported before both are set (else the level is overwritten and the variable outlives this block)
        self._hub, self._env = None, os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")
        with contextlib.suppress(ImportError):
            import huggingface_hub.utils as hub
            import huggingface_hub.utils.logging  # noqa: F401 (sets the level on import: done before ours)
            import huggingface_hub.utils.tqdm  # noqa: F401 (a module whose name the package's tqdm class hides)

            hub_tqdm = sys.modules["huggingface_hub.utils.tqdm"]
            # disable/enable_progress_bars() clear the per-group states (a user's disable("group")), and
            # transformers' switches call them too: keep a copy to put back exactly on exit (hub < 0.21
            # has one global flag instead)
            self._hub, self._hub_states = hub, getattr(hub_tqdm, "progress_bar_states", None)
            self._hub_saved = (
                dict(self._hub_states) if isinstance(self._hub_states, dict) else hub.are_progress_bars_disabled()
            )
            # HF_HUB_DISABLE_PROGRESS_BARS=0 is the user's explicit choice, which the hub ranks above any call
            # (a call only warns): leave its bars on
            self._hub_forced_on = self._env == "0" or getattr(hub_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", None) is False
            if not self._hub_forced_on:
                hub.disable_progress_bars()
        if self._env != "0":
            os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        self._levels = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        self._tf = None
        try:
            from transformers.utils import logging as tf_logging
        except ImportError:
            return self
        self._tf = tf_logging
        self._tf_bar = tf_logging.is_progress_bar_enabled()
        self._tf_level = tf_logging.get_verbosity()
        with _hub_bar_warnings_off():  # its own bars (e.g. "Loading weights"); it switches the hub's too
            tf_logging.disable_progress_bar()
        tf_logging.set_verbosity_error()
        return self

    def __exit__(self, *exc):
        if self._env is None:
            os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
        else:
            os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = self._env
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        if self._tf is not None:
            if self._tf_bar:
                with _hub_bar_warnings_off():
                    self._tf.enable_progress_bar()
            self._tf.set_verbosity(self._tf_level)
        if self._hub is not None:  # last: transformers' enable_progress_bar() resets the hub's states too
            if isinstance(self._hub_states, dict):
                self._hub_states.clear()
                self._hub_states.update(self._hub_saved)
            elif not self._hub_saved and not self._hub_forced_on:
                self._hub.enable_progress_bars()
        return False


@contextlib.contextmanager
def _hub_bar_warnings_off():
    """Drop only huggingface_hub's "Cannot disable/enable progress bars" warning: under its variable a
    switch changes nothing, and the variable's value is the user's choice, not news to them."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot (disable|enable) progress bars", category=UserWarning)
        yield
