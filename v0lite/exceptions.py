"""Exceptions and warnings raised by v0lite."""

from sklearn.exceptions import NotFittedError as _SkNotFittedError

__all__ = ["V0liteError", "NotFittedError", "V0liteWarning", "DataError", "FormatVersionError", "ParameterError"]


class V0liteError(Exception):
    """Base class of every error v0lite raises on purpose."""


class DataError(V0liteError, ValueError):
    """Bad input data: the message names the column, the row, the value and the fix."""


class FormatVersionError(V0liteError):
    """A saved file comes from an unknown (newer) format version or is corrupt."""


class NotFittedError(V0liteError, _SkNotFittedError):
    """An estimator was used before ``fit``; also a scikit-learn ``NotFittedError``."""


class V0liteWarning(UserWarning):
    """Warnings about questionable but usable input or settings."""


class ParameterError(V0liteError, ValueError):
    """A bad parameter value (e.g. an unknown name in a registry); the message lists the valid values."""
