"""``convert``: run a converter by format name and write its log(s)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from .._registry import lookup
from ..log import write_log
from ._oneshot import convert_oneshot_rlvr
from ._routerbench import convert_routerbench
from ._routerdc import convert_routerdc
from ._v0 import convert_v0

__all__ = ["CONVERTERS", "convert"]

CONVERTERS: dict[str, Callable[..., Any]] = {
    "v0": convert_v0,
    "routerbench": convert_routerbench,
    "routerdc": convert_routerdc,
    "oneshot-rlvr": convert_oneshot_rlvr,
}


def convert(format: str, src: str | os.PathLike, out: str | os.PathLike, **kwargs: Any) -> Path | dict[str, Path]:
    """Convert ``src`` with the converter named ``format`` and write the result.

    Parameters
    ----------
    format : str or callable
        One of :data:`CONVERTERS` (``v0``, ``routerbench``, ``routerdc``, ``oneshot-rlvr``;
        ``-``/``_`` alike), or your own converter ``(src, **kwargs) -> frame or dict of frames``.
    src : path
        The source file or folder.
    out : path
        For single-frame formats the output file (its suffix picks .jsonl / .csv /
        .parquet; no suffix means .jsonl). For ``routerbench`` a folder that receives
        ``train.jsonl`` and ``test.jsonl``; for ``routerdc`` with ``split="official"`` a folder
        that receives ``train.jsonl``, ``test_id.jsonl`` and ``test_ood.jsonl``. Each file is
        written atomically.
    **kwargs
        Passed to the converter (e.g. ``prompt_dict=`` for ``v0``, ``split="official"`` for
        ``routerdc``).

    Returns
    -------
    pathlib.Path or dict
        The written file, or ``{name: path}`` for the multi-log outputs.

    Examples
    --------
    >>> convert("nope", "in", "out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    v0lite.exceptions.ParameterError: unknown format 'nope'; valid names: ['oneshot-rlvr', 'routerbench', ...
    """
    return _write(_run(format, src, **kwargs), out)


def _run(format: Any, src: str | os.PathLike, **kwargs: Any) -> Any:
    """The converter's frame, or ``{name: frame}``, not yet written (the CLI counts their rows first)."""
    return lookup(CONVERTERS, format, "format", ("__call__",))(src, **kwargs)


def _write(result: Any, out: str | os.PathLike) -> Path | dict[str, Path]:
    """Write :func:`_run`'s result as :func:`convert` documents."""
    out = Path(out)
    if isinstance(result, dict):
        return {name: write_log(frame, out / f"{name}.jsonl") for name, frame in result.items()}
    if out.suffix == "":
        out = out.with_name(out.name + ".jsonl")
    return write_log(result, out)
