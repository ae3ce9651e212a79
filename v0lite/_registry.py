"""One lookup for every name table (heads, routing strategies, cost models, RL selectors and values, converters).

Names are matched after normalisation (case, surrounding blanks, ``-`` vs ``_``), so
``"p-mixed"`` and ``"p_mixed"`` are the same entry; an unknown name raises one
:class:`~v0lite.exceptions.ParameterError` with one phrasing that lists the valid names; and
any object that has the protocol's methods passes through unchanged (duck typing: no
subclass of a v0lite base class is needed).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .exceptions import ParameterError

__all__ = ["normalise", "lookup", "canonical", "unknown_name", "has_protocol"]


def normalise(name: str) -> str:
    """The matching key of a name: lower case, no surrounding blanks, ``-`` read as ``_``."""
    return name.strip().lower().replace("-", "_")


def has_protocol(obj: Any, protocol: Sequence[str]) -> bool:
    """Whether ``obj`` has every method named in ``protocol`` (a non-empty protocol)."""
    return bool(protocol) and all(callable(getattr(obj, m, None)) for m in protocol)


def unknown_name(kind: str, name: Any, valid: Mapping | Sequence, protocol: Sequence[str] = ()) -> ParameterError:
    """The one error for a name that is not in a table (or an object without the protocol)."""
    extra = f", or an object with {', '.join(f'{m}()' for m in protocol)}" if protocol else ""
    return ParameterError(f"unknown {kind} {name!r}; valid names: {sorted(valid)}{extra}.")


def canonical(table: Mapping[str, Any], name: str, kind: str) -> str:
    """The table's own spelling of ``name`` (raises :class:`ParameterError` when unknown).

    Examples
    --------
    >>> canonical({"p_mixed": 1, "quality-target": 2}, "P-Mixed", "value")
    'p_mixed'
    >>> canonical({"p_mixed": 1}, "nope", "value")
    Traceback (most recent call last):
    ...
    v0lite.exceptions.ParameterError: unknown value 'nope'; valid names: ['p_mixed'].
    """
    if isinstance(name, str):
        index = {normalise(k): k for k in table}
        key = index.get(normalise(name))
        if key is not None:
            return key
    raise unknown_name(kind, name, table)


def lookup(table: Mapping[str, Any], name: Any, kind: str, protocol: Sequence[str] = ()) -> Any:
    """``table``'s entry for ``name``; an object with every method of ``protocol`` passes through.

    Parameters
    ----------
    table : mapping
        Name -> entry (a class, a function, a ``"module:attr"`` string...).
    name : str or object
    kind : str
        What the table holds, for the error message (``"head"``, ``"routing strategy"``...).
    protocol : sequence of str
        Method names an object must have to be used as is.

    Raises
    ------
    ParameterError
        An unknown name, or an object lacking the protocol; the message lists the valid names.
    """
    if not isinstance(name, str):
        if has_protocol(name, protocol):
            return name
        raise unknown_name(kind, name, table, protocol)
    return table[canonical(table, name, kind)]
