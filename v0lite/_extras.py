"""Optional dependencies (extras): import one, or fail with the one-line install hint.

The core install (``pip install v0lite``) brings only what prediction needs; plotting
(``v0lite[plot]``: matplotlib), pandas input (``v0lite[pandas]``: pandas, pyarrow) and the
others are extras, imported lazily where they are used.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .exceptions import V0liteError

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(V0liteError, ImportError):
    """An optional dependency is not installed; the message gives the ``pip install`` line."""


def require(module: str, extra: str, what: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``pip install 'v0lite[extra]'``.

    Examples
    --------
    >>> require("json", "plot").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        need = f" for {what}" if what else ""
        raise MissingExtraError(
            f"{module} is not installed (needed{need}). Fix: pip install 'v0lite[{extra}]'."
        ) from exc
