"""``--prices`` of ``v0lite route`` and ``v0lite route-eval``: read (a JSON file or inline object, each model
named once), and checked against the pool in flag terms."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..exceptions import DataError
from ._common import _named

__all__ = ["PRICES_HELP", "check_priced", "parse_prices", "prices_shown"]

PRICES_HELP = (
    "JSON file (or inline JSON object) mapping model -> price in USD per call, e.g. "
    '{"gpt-4": 0.03, "mixtral-8x7b": 0.0006}; `v0lite data prices LOG prices.json` writes one '
    "from a log's cost column"
)


def parse_prices(text: str | None) -> dict[str, float] | None:
    """``--prices``: a JSON file, or an inline JSON object, of model -> USD per call."""
    if text is None:
        return None
    src = text
    p = Path(text)
    if not text.lstrip().startswith("{"):
        if not p.exists():
            try:  # inline JSON, but not an object ([1, 2], "a", 0.5): say so, not "does not exist"
                other = json.loads(text)
            except json.JSONDecodeError:
                other = None
            if other is not None:
                raise DataError(
                    f"--prices {text[:60]}: inline JSON must be an object model -> USD per call, got a "
                    f'{type(other).__name__}. Fix: pass e.g. \'{{"a": 0.001, "b": 0.01}}\', or a JSON file of them.'
                )
            raise DataError(
                f"--prices {text}: does not exist. Fix: pass a JSON file of model -> USD per call "
                "(`v0lite data prices LOG prices.json` writes one), or an inline JSON object."
            )
        if p.is_dir():
            raise DataError(f"--prices {text}: is a directory. Fix: pass the JSON file of prices inside it.")
        from ..log import read_text  # as a log is read: a UTF-8 BOM dropped, UTF-16 named with its fix

        try:
            src = read_text(p)
        except DataError as exc:
            raise _named(exc, text, "--prices") from exc
    from .._log_files import _pairs  # as a log's rows are read: a key written twice is remembered

    try:
        obj = json.loads(src, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"--prices {text[:60]}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            'Fix: pass e.g. \'{"a": 0.001, "b": 0.01}\' (USD per call).'
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(
            f"--prices must be a JSON object model -> USD per call, got a {type(obj).__name__}. "
            'Fix: pass e.g. \'{"a": 0.001, "b": 0.01}\'.'
        )
    if obj.dup is not None:  # json.loads would keep the last price silently
        raise DataError(
            f"--prices {prices_shown(text)}: model {obj.dup!r} is priced twice (JSON keeps only the last, "
            f"{obj[obj.dup]!r}). Fix: give each model one price in --prices."
        )
    for k, v in obj.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise DataError(
                f"--prices: model {k!r} has price {v!r}, not a number >= 0. "
                "Fix: give every model its price in USD per call."
            )
    return {str(k): float(v) for k, v in obj.items()}


def prices_shown(text: str) -> str:
    """``--prices`` as a message names it: the file, or ``(inline JSON)`` (not the whole object)."""
    return "(inline JSON)" if text.lstrip().startswith("{") else text


def check_priced(pool: list[str], prices: dict[str, float], text: str, also: str = "") -> None:
    """The rule for a pool where some models have no price: stop, naming them (no guessed price).

    ``text``: the ``--prices`` argument as given (a file, or inline JSON); ``also``: the command's other fix.
    """
    from .._log_warnings import meant_name

    missing = [m for m in pool if m not in prices]
    if missing:
        # a misspelt name in the file is the likely cause: say which one was meant
        spare = [p for p in prices if p not in pool]
        meant = {s: m for s in spare if (m := meant_name(s, missing)) is not None}
        said = "; ".join(f"{s!r} is probably {m!r}" for s, m in meant.items())
        raise DataError(
            f"--prices {prices_shown(text)} has no price for {len(missing)} of the {len(pool)} pool models: "
            f"{missing}{f' ({said})' if said else ''}. Fix: add them to the prices file (USD per call){also}."
        )
