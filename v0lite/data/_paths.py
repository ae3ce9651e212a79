"""Where the public datasets live: ``V0LITE_DATA``, else ``../shared/data`` beside the project."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..exceptions import V0liteWarning

__all__ = ["data_dir"]


def _project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def data_dir() -> Path | None:
    """Folder holding the public datasets, or ``None`` if there is none.

    Looks at the environment variable ``V0LITE_DATA`` first, then at
    ``<project root>/../shared/data`` (the project root is the folder above the
    ``v0lite`` package).

    Returns
    -------
    pathlib.Path or None
        An existing directory, or ``None``. A ``V0LITE_DATA`` that is not a directory
        gives ``None`` and a :class:`~v0lite.exceptions.V0liteWarning`.

    Examples
    --------
    >>> d = data_dir()
    >>> d is None or d.is_dir()
    True
    """
    env = os.environ.get("V0LITE_DATA")
    if env:
        path = Path(env).expanduser()
        if path.is_dir():
            return path
        warnings.warn(
            f"V0LITE_DATA={env!r} is not a directory; no data folder used. "
            "Fix: point V0LITE_DATA at the folder holding v0-dapomath/, routerdc-*/ etc.",
            V0liteWarning,
            stacklevel=2,
        )
        return None
    candidate = _project_root().parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


# --------------------------------------------------------------------------- helpers
