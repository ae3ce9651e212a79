"""Checks ``v0lite serve`` makes before anything else: the ``serve`` extra, the bind address.

Kept apart from :mod:`._app`, which imports FastAPI at module level: a core-only install must
reach these checks (and their one-line fixes) without importing what it lacks.
"""

from __future__ import annotations

import ipaddress

from ..exceptions import DataError

__all__ = ["SERVE_MODULES", "check_bind", "require_serve"]

#: What the ``serve`` extra installs and the service imports.
SERVE_MODULES = ("fastapi", "uvicorn", "httpx", "prometheus_client")


def require_serve(what: str = "v0lite serve") -> None:
    """Import every module of the ``serve`` extra, or raise the ``pip install 'v0lite[serve]'`` line.

    Parameters
    ----------
    what : str, default "v0lite serve"
        What needs them, as the message says it.

    Raises
    ------
    v0lite._extras.MissingExtraError
        The first of :data:`SERVE_MODULES` that is not installed.
    """
    from .._extras import require

    for module in SERVE_MODULES:
        require(module, "serve", what)


def check_bind(host: str, has_keys: bool, *, flag: str = "--host") -> None:
    """Refuse a non-loopback address without API keys (the message gives the fix).

    Parameters
    ----------
    host : str
        The address to bind.
    has_keys : bool
        Whether API keys are set.
    flag : str, default "--host"
        The address's name in the message.

    Raises
    ------
    DataError
        ``host`` is not a loopback address and there are no keys.
    """
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not has_keys:
        raise DataError(
            f"{flag} {host}: serving beyond this machine without API keys would let anyone route, read "
            "predictions and write feedback. Fix: pass api_keys=<path> (a file, one key a line), or bind "
            "host='127.0.0.1'."
        )
