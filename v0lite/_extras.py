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

    Parameters
    ----------
    module : str
        The module to import (``"matplotlib"``, ``"verl"``).
    extra : str
        The extra that installs it (``pip install 'v0lite[extra]'``).
    what : str, optional
        What needs it, in the caller's terms (``"--plot"``, ``"PlannedGRPOTrainer"``): the message
        says "(needed for WHAT)"; without it, just that ``module`` is not installed.

    Examples
    --------
    >>> require("json", "plot").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        need = f" (needed for {what})" if what else ""  # never a bare "(needed)": say for what, or nothing
        raise MissingExtraError(f"{module} is not installed{need}. Fix: pip install 'v0lite[{extra}]'.") from exc
