"""Exceptions and warnings raised by v0lite.

:class:`NotFittedError` is also scikit-learn's ``NotFittedError``. It is built on first access
(module ``__getattr__``), so importing this module, as the CLI does on every call, never imports
scikit-learn; the class is created once and cached, so ``except``/``isinstance`` always see the
same object.
"""

from __future__ import annotations

import threading

# NotFittedError is defined by __getattr__ below
__all__ = [  # noqa: F822
    "V0liteError",
    "NotFittedError",
    "V0liteWarning",
    "UnpricedPolicyWarning",
    "DataError",
    "UnknownPolicyError",
    "FormatVersionError",
    "ParameterError",
    "EncoderMismatchError",
    "EncoderLoadError",
]


class V0liteError(Exception):
    """Base class of every error v0lite raises on purpose."""


class DataError(V0liteError, ValueError):
    """Bad input data: the message names the column, the row, the value and the fix.

    Parameters
    ----------
    *args
        The message, as for any exception.
    column : str, optional
        The column the error is about, where it is about one (the outcome-log checks of
        :func:`v0lite.log.validate_log` set it), so that a caller names it in its own terms (the
        service's ``outcomes[i].<field>``) without parsing the message. ``None`` otherwise.
    """

    column: str | None = None

    def __init__(self, *args, column: str | None = None):
        super().__init__(*args)
        self.column = column


class UnknownPolicyError(DataError):
    """A query names a policy the model has no history of (and ``fallback="error"``).

    Its own class so that a caller can tell it from other bad input without reading the message:
    the CLI names its QUERIES file, the service names the model.
    """


class FormatVersionError(V0liteError):
    """A saved file comes from an unknown (newer) format version or is corrupt."""


class V0liteWarning(UserWarning):
    """Warnings about questionable but usable input or settings."""


class UnpricedPolicyWarning(V0liteWarning):
    """A router's ``add_history`` got outcomes of a policy with no known cost: it did not join the pool.

    Its own class so that a caller with its own way of pricing (the service's upstreams file) can
    say it in its terms and filter this one out.
    """


class ParameterError(V0liteError, ValueError):
    """A bad parameter value (e.g. an unknown name in a registry); the message lists the valid values."""


class EncoderMismatchError(V0liteError):
    """A fitted model's encoder is not the one it was fitted with (another one, or its folder moved).

    Its own class so that a service can tell its own state from a client's bad request.
    """


class EncoderLoadError(V0liteError):
    """An encoder name or folder that sentence-transformers cannot load (no model there, damaged files).

    Its own class for the same reason as :class:`EncoderMismatchError`: to a service it is the
    server's state (its router's encoder folder), not the client's request.
    """


def _make_not_fitted_error() -> type:
    from sklearn.exceptions import NotFittedError as _SkNotFittedError

    class NotFittedError(V0liteError, _SkNotFittedError):
        """An estimator was used before ``fit``; also a scikit-learn ``NotFittedError``."""

    NotFittedError.__module__ = __name__
    NotFittedError.__qualname__ = "NotFittedError"
    return NotFittedError


_LOCK = threading.Lock()


def __getattr__(name: str):
    if name == "NotFittedError":
        with _LOCK:  # two threads racing here must not build two different classes
            cls = globals().get("NotFittedError")
            if cls is None:
                cls = _make_not_fitted_error()
                globals()["NotFittedError"] = cls  # cached: later lookups never reach __getattr__
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
