"""Reading an outcome log's file (private to ``log``): suffixes, encodings, CSV headers, JSON rows.

polars reads the file; what it hides or reports without a place (a repeated header or key, a late
NUL byte, a type conflict, an undecodable key, a list among text) is found here and named by the
file's line (1-based, as an editor shows it) and the row (0-based). Valid files cost at most a few
linear byte scans; Python parses lines again only on the failure path or for suspicious rows.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .exceptions import DataError

# read as text from every file, whatever they look like (CSV "1.10" is not the number 1.1)
TEXT_COLUMNS = ("policy", "prompt", "prompt_id", "task")
NUMERIC_COLUMNS = ("score", "step", "n", "cost")
# the fix for chat transcripts where a prompt text belongs (v0lite.serve routes on the last user message)
CHAT_FIX = (
    " (chat messages: store the text of the last user message, the text `v0lite serve` routes on, one text per prompt)"
)
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def fmt(value: Any) -> str:
    if isinstance(value, pl.Series):  # a list cell: one line, not a Series table
        value = value.to_list()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _js(value: Any) -> str:
    """``value`` as JSON writes it (``true``, not ``True``), cut to one short line."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, _Marker) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def read_file(path: Path, holds: str, columns=None, text=()) -> pl.DataFrame:
    """The file as a frame, checked for what its parser hides; ``columns``: the only number columns whose
    text cells are checked (a command's unread columns pass as read, e.g. ``predict``'s ``score``);
    ``text``: more CSV columns read as text, as the log's text columns are (``data map``'s own names)."""
    if not path.exists():
        raise DataError(f"{path}: file not found. Fix: pass the path of an existing .jsonl/.csv/.parquet outcome log.")
    if path.is_dir():
        raise DataError(
            f"{path}: is a directory, not a log file. Fix: pass a .jsonl/.csv/.parquet outcome log "
            "(a folder of public data is converted first: v0lite.data.convert)."
        )
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None and path.suffix.lower() in _OTHER_SUFFIXES:
        raise DataError(f"{path}: {_OTHER_SUFFIXES[path.suffix.lower()]}.")
    if kind is None:
        raise DataError(
            f"{path}: unknown file type {path.suffix!r}. Fix: use one of {sorted(SUFFIXES)} "
            "(JSON lines, CSV or Parquet)."
        )
    _check_content(path, kind)  # a gzip or Parquet file under a text name would read as bytes gone wrong
    if kind == "parquet":
        try:
            return pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
            raise _unreadable(path, kind, exc) from exc
    data = sniff_text(path)  # UTF-16, NUL bytes: "re-encode as UTF-8" before any parser guesses
    if not data.strip():  # polars would say "cannot infer types on an empty reader"
        raise DataError(
            f"{path}: the file is empty (no rows, no columns). Fix: write at least one row with a header "
            f"or field names ({holds})."
        )
    _check_text_kind(path, kind, data)  # a JSON array in a .jsonl, JSON lines in a .csv, CSV in a .jsonl
    if kind == "csv":
        _check_csv_header(path, data)  # another separator; a repeated name polars would rename
    try:
        if kind == "csv":
            # text columns stay text: `1.10` and `1.1` are two policies, `007` stays `007`
            text = dict.fromkeys((*TEXT_COLUMNS, *text), pl.String)
            df = pl.read_csv(io.BytesIO(data), infer_schema_length=None, schema_overrides=text)
        else:  # infer over the whole file: a late row of another type must fail here, not be cast away.
            df = (pl.read_ndjson if kind == "jsonl" else pl.read_json)(io.BytesIO(data), infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        bad = not_utf8(path, data)
        if bad is not None:
            raise bad from exc
        if kind == "csv":
            where = _first_bad_csv_line(path, data)
        else:
            where = _first_bad_json_line(path, data, lines=kind == "jsonl")
            if where is None:
                _check_json_text(path, data, pl.DataFrame(), lines=kind == "jsonl")  # polars' json: a lone surrogate
        if where is not None:
            raise DataError(where) from exc
        raise _unreadable(path, kind, exc) from exc
    if kind != "csv":
        _check_json_text(path, data, df, lines=kind == "jsonl", columns=columns)  # what polars' JSON reader hides
    return df


_OTHER_SUFFIXES = {
    ".gz": "compressed (gzip). Fix: gunzip it first (gunzip -k FILE), then pass the .jsonl/.csv/.parquet inside",
    ".tsv": "tab-separated. Fix: save it as CSV (comma-separated, .csv), or as .jsonl",
}
_RENAME = {"jsonl": ".jsonl", "json": ".json", "csv": ".csv", "parquet": ".parquet"}


def _check_content(path: Path, kind: str) -> None:
    """Refuse a file whose first bytes say it is not what its name says: gzip (``1f 8b``) under any name,
    Parquet (``PAR1``) under a text name, text under ``.parquet``; the fix renames or unpacks it."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"\x1f\x8b":
        raise DataError(
            f"{path}: is gzip-compressed, not {kind} text. Fix: gunzip it first (mv it to {path.name}.gz, then "
            f"gunzip -k {path.name}.gz)."
        )
    if head == b"PAR1" and kind != "parquet":
        raise DataError(f"{path}: is a Parquet file, not {kind} text. Fix: rename it to {path.stem}.parquet.")
    if kind == "parquet" and head and head != b"PAR1":
        first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        what = "JSON" if first in (b"{", b"[") else "text (CSV?)"
        raise DataError(
            f"{path}: is {what}, not a Parquet file. Fix: rename it to "
            f"{path.stem}{'.jsonl' if first == b'{' else '.json' if first == b'[' else '.csv'}."
        )


def _check_text_kind(path: Path, kind: str, data: bytes) -> None:
    """Refuse text of another format than the suffix says, judged by the first line (a false alarm would
    need a CSV header starting with ``{`` or a JSON lines file with no ``{``): a JSON array in a
    ``.jsonl`` (``.json``), JSON lines in a ``.json`` (``.jsonl``) or a ``.csv``, CSV in a ``.jsonl``."""
    text = data[:65_536].lstrip()  # the first lines only: no copy of a large file
    first, _, rest = text.partition(b"\n")
    first = first.strip()
    second = rest.lstrip()[:1]
    if kind == "jsonl" and first.startswith(b"["):
        found, want = "one JSON array, not JSON lines", "json"
    elif kind == "json" and first.startswith(b"{") and first.endswith(b"}") and second == b"{":
        found, want = "JSON lines (one object a line), not one JSON document", "jsonl"
    elif kind == "csv" and first[:1] in (b"{", b"["):
        found, want = (
            ("JSON lines" if first.startswith(b"{") else "JSON") + ", not CSV",
            ("jsonl" if first.startswith(b"{") else "json"),
        )
    elif kind == "jsonl" and first and first[:1] not in (b"{", b"[") and b"," in first:
        found, want = "comma-separated (CSV), not JSON lines", "csv"
    else:
        return
    raise DataError(f"{path}: holds {found}. Fix: rename it to {path.stem}{_RENAME[want]}.")


def _unreadable(path: Path, kind: str, exc: Exception) -> DataError:
    return DataError(
        f"{path}: cannot be read as {kind} ({str(exc).splitlines()[0]}). "
        "Fix: check the file is well-formed and each column holds one type."
    )


# -- CSV: the header line, and the first record polars cannot read -------------------------------------


def _check_csv_header(path: Path, data: bytes) -> None:
    """A ``;``/tab/``|``-separated header (no comma, or its parts are our columns) and a repeated name
    (polars would silently read the second ``score`` as ``score_duplicated_0``)."""
    end = data.find(b"\n")
    line = data[: end if end >= 0 else len(data)].decode("utf-8", "replace").rstrip("\r")
    for sep, word in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
        parts = {p.strip().strip('"').strip() for p in line.split(sep)}
        if len(parts) > 1 and ("," not in line or {"policy", "prompt"} <= parts):
            raise DataError(
                f"{path}: the header {fmt(line)} is {word}-separated, not comma-separated. "
                "Fix: write the CSV with commas (pandas: df.to_csv(path, index=False); Excel: 'CSV UTF-8 "
                "(comma delimited)'), or save the log as .jsonl."
            )
    names = next(csv.reader([line]), [])
    dups = list(dict.fromkeys(n for i, n in enumerate(names) if n in names[:i]))
    if dups:
        raise DataError(
            f"{path}, line 1: the header repeats the column(s) {dups}: each column must appear once. "
            f"Fix: rename or remove the repeated {dups[0]!r} in the header."
        )


def _first_bad_csv_line(path: Path, data: bytes) -> str | None:
    """The message for the first CSV record with more fields than the header, or None."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    try:
        header = next(reader, None)
        line = reader.line_num + 1
        for rec in reader:
            start, line = line, reader.line_num + 1
            if header and len(rec) > len(header):
                return (
                    f"{path}, line {start}: {len(rec)} fields where the header has {len(header)} (extra value "
                    f"{fmt(rec[len(header)])} after column {header[-1]!r}). Fix: quote the values that hold "
                    'commas ("a, b"), or remove the extra field.'
                )
    except csv.Error:
        return None
    return None


def row_place(path: Path, row: int) -> str:
    """``" (PATH, line L)"``: where the 0-based ``row`` of a JSON-lines or CSV file starts (1-based, as an
    editor shows it), for a message about that row, as the text-cell errors write it; ``""`` for a JSON
    array or Parquet file, or a row the file does not hold. Reads the file again: for the failure path only."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind not in ("jsonl", "csv"):
        return ""
    try:
        data = sniff_text(path)
    except (DataError, OSError):  # changed since it was read: no line rather than a wrong one
        return ""
    if kind == "jsonl":
        line = next((ln for r, ln, _ in _json_rows(data, lines=True) if r == row), None)
    else:  # records, not lines: a quoted cell may hold a newline (a blank line is a row of nulls to polars too)
        reader = csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline=""))
        line = None
        try:
            next(reader, None)  # the header
            start = reader.line_num + 1
            for r, _ in enumerate(reader):
                if r == row:
                    line = start
                    break
                start = reader.line_num + 1
        except csv.Error:
            line = None
    return "" if line is None else f" ({path}, line {line})"


# -- reading text files: encodings, JSON rows, undecodable text ------------------------------------------

_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
# a JSON escape of a UTF-16 surrogate (\ud800-\udfff): valid only as a high + low pair
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def sniff_text(path: Path) -> bytes:
    """The file's bytes, refused at once when they are not UTF-8 text (a UTF-8 byte-order mark is dropped)."""
    data = path.read_bytes()
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise DataError(
                f"{path}: the file is {name}-encoded (byte-order mark {bom.hex(' ')}), not UTF-8. "
                "Fix: re-encode the file as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8, or save as 'UTF-8' in your editor)."
            )
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    nul = data.find(b"\x00")  # the whole file: one linear scan
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise DataError(
            f"{path}, line {line}: holds a NUL byte, so it is not UTF-8 text (UTF-16 without a byte-order "
            "mark, or a binary file). Fix: re-encode the file as UTF-8."
        )
    return data


def not_utf8(path: Path, data: bytes) -> DataError | None:
    """The error for the first line of ``data`` that is not UTF-8, or None when it all is."""
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError as exc:
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        line = data.count(b"\n", 0, exc.start) + 1
        reason = f"byte 0x{data[exc.start]:02x} at column {column}"
    return DataError(f"{path}, line {line}: not valid UTF-8 ({reason}). Fix: re-encode the file as UTF-8.")


class _Obj(dict):
    """A JSON object that remembers the first key written twice in it (``dup``)."""

    dup: str | None = None


def _pairs(pairs: list) -> _Obj:
    obj = _Obj(pairs)
    if len(obj) < len(pairs):
        seen: set = set()
        obj.dup = next(k for k, _ in pairs if k in seen or seen.add(k))
    return obj


def _json_rows(data: bytes, *, lines: bool):
    """``(row, line, raw line)`` of a JSON-lines file (row: 0-based among non-blank lines, line: 1-based),
    or ``(row, None, object)`` of a JSON array file (where an object starts is not kept by the parser)."""
    if not lines:
        obj = json.loads(data.decode("utf-8"), object_pairs_hook=_pairs)
        for i, o in enumerate(obj if isinstance(obj, list) else [obj]):
            yield i, None, o
        return
    row = 0
    for i, raw in enumerate(data.split(b"\n")):
        if raw.strip():
            yield row, i + 1, raw
            row += 1


class _Marker(str):
    """A JSON number or constant polars cannot read, kept as written."""


class _NotJson(_Marker):
    """``NaN``, ``Infinity`` or ``-Infinity`` where a JSON value belongs (Python's json.dumps writes them)."""


class _TooBig(_Marker):
    """A number beyond a 64-bit float (``1e400``) or a 128-bit integer."""


def _parse_float(text: str) -> Any:
    v = float(text)
    return v if math.isfinite(v) else _TooBig(text)


def _parse_int(text: str) -> Any:  # len first: Python refuses int() of a 4300-digit string
    return int(text) if len(text) <= 40 and -(2**127) <= int(text) < 2**127 else _TooBig(text)


_HOOKS = {"parse_constant": _NotJson, "parse_float": _parse_float, "parse_int": _parse_int}


def _marker(value: Any, where: str = "") -> tuple[str, _Marker] | None:
    """``(field, marker)`` of the first ``_Marker`` inside ``value`` (nested), or None."""
    if isinstance(value, _Marker):
        return where, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, v in items:
        found = _marker(v, f"{where}[{key}]" if isinstance(key, int) or where else str(key))
        if found is not None:
            return found
    return None


def _marker_message(where: str, obj: Any) -> str | None:
    found = _marker(obj)
    if found is None:
        return None
    field, value = found
    if isinstance(value, _TooBig):
        return (
            f"{where}: field {field!r} holds {value}, a number too large to read (beyond a 64-bit float or a "
            "128-bit integer). Fix: write a finite number within 64 bits, or null for a missing value."
        )
    return (
        f"{where}: field {field!r} holds {value}, which is not JSON (Python's json.dumps writes it for a float "
        f"{'NaN' if value == 'NaN' else 'infinity'}). Fix: write null for a missing value, or a number "
        "(in Python: json.dumps(..., allow_nan=False) finds them)."
    )


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "a boolean"
    return {str: "text", list: "a list", _Obj: "an object", dict: "an object"}.get(type(value), "a number")


# the pairs of kinds polars reads into one column: JSON lines read text beside anything as text, a JSON
# array reads a number or boolean beside text as text and a boolean beside numbers as a number (refused
# by _check_json_text, not here)
_LINES_OK = {frozenset(("text", k)) for k in ("a number", "a boolean", "a list", "an object")}
_KINDS = ("text", "a number", "a boolean", "a list", "an object")
_ALL = {frozenset((a, b)) for a in _KINDS for b in _KINDS if a != b}
_ARRAY_OK = {frozenset(p) for p in (("text", "a number"), ("text", "a boolean"), ("a number", "a boolean"))}


def _type_conflict(where: str, obj: dict, first: dict, at: str, ok: set) -> str | None:
    """The message when a field of ``obj`` holds another kind of value than where it first appeared,
    unless the pair of kinds is in ``ok``."""
    for key, value in obj.items():
        kind = _kind(value)
        if kind is None:
            continue
        if key not in first:
            first[key] = (kind, at, value)
            continue
        kind0, at0, value0 = first[key]
        if kind != kind0 and frozenset((kind, kind0)) not in ok:
            hint = " (numbers: 1.0/0.0 for true/false)" if {kind, kind0} == {"a boolean", "a number"} else ""
            return (
                f"{where}: column {key!r} holds {_js(value)} ({kind}), but {at0} holds {_js(value0)} ({kind0}). "
                f"Fix: give every value of {key!r} one type{hint}."
            )
    return None


def _first_bad_json_line(path: Path, data: bytes, *, lines: bool) -> str | None:
    """The message for the first line that is not one JSON object, holds a bare ``NaN`` or a number too
    large, or gives a field another type than an earlier line, with its line number, or None."""
    first: dict = {}
    if not lines:
        try:
            obj = json.loads(data.decode("utf-8"), **_HOOKS)
        except json.JSONDecodeError as exc:
            return f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}). Fix: repair the file."
        for row, o in enumerate(obj if isinstance(obj, list) else [obj]):
            if not isinstance(o, dict):
                return (
                    f"{path}, row {row}: expected a JSON object, got {type(o).__name__}. Fix: write one object per row."
                )
            bad = _marker_message(f"{path}, row {row}", o)
            if bad is None:
                bad = _type_conflict(f"{path}, row {row}", o, first, f"row {row}", _ARRAY_OK)
            if bad is not None:
                return bad
        return None
    for row, line, raw in _json_rows(data, lines=True):
        where = f"{path}, line {line} (row {row})"
        try:
            obj = json.loads(raw, **_HOOKS)
        except json.JSONDecodeError as exc:
            return f"{where}: not valid JSON ({exc.msg} at column {exc.colno}). Fix: repair or remove that line."
        if not isinstance(obj, dict):
            return f"{where}: expected a JSON object, got {type(obj).__name__}. Fix: write one object per line."
        bad = _marker_message(where, obj) or _type_conflict(where, obj, first, f"line {line}", _LINES_OK)
        if bad is not None:
            return bad
    return None


def check_decodable(where: str, text: str) -> None:
    """Refuse a prompt text holding a lone UTF-16 surrogate (the tokenizer would fail on it, unexplained), naming
    ``where`` (its place in the caller's terms: ``"prompts, row 3"``, ``"prompt at row 3"``)."""
    if not text.isascii() and lone_surrogate(text) is not None:
        raise DataError(
            f"{where}: {text[:60]!r} holds undecodable text (a lone UTF-16 surrogate, not a character). "
            "Fix: repair that text at its source (decode it with errors='replace') or remove it."
        )


def lone_surrogate(value: Any) -> str | None:
    """The first text in ``value`` (nested) that is not valid Unicode, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value
        return None
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for v in value:
            bad = lone_surrogate(v)
            if bad is not None:
                return bad
    return None


# a text cell polars may have made of a JSON list or object (a number or boolean among texts is read as
# the text written: documented in docs/guarantees.md)
_NOT_TEXT = r"^[\[{]"


def _check_json_text(path: Path, data: bytes, df: pl.DataFrame, *, lines: bool, columns=None) -> None:
    """What polars' JSON reader hides: a lone surrogate (``"\\ud800"`` silently becomes NUL, in a value or
    a key), a key written twice in one object (polars keeps the first), a list among text prompts (read as
    its JSON text) and a number column holding text (``"0"`` among numbers reads the whole column as text;
    the row is the first string). Lines are parsed again only where a byte scan says one may be."""
    texty = [
        c
        for c in NUMERIC_COLUMNS
        if c in df.columns and df.schema[c] == pl.String and (columns is None or c in columns)
    ]
    keys = {c: json.dumps(c, ensure_ascii=False).encode() for c in df.columns}
    # a key written twice: each row's key once when the file's `":` are as many as its non-null cells
    # (one fast scan); else count each key (still linear), then parse only lines holding one twice
    once = data.count(b'":') == sum(df[c].count() for c in df.columns)
    twice = [] if once else [k for c, k in keys.items() if data.count(k) > df[c].count()]
    odd = {
        c: set(np.flatnonzero(df[c].str.contains(_NOT_TEXT).fill_null(False).to_numpy()).tolist())
        for c in ("policy", "prompt")
        if c in df.columns and df.schema[c] == pl.String
    }
    odd_rows = set().union(*odd.values())
    numbers = [c for c in NUMERIC_COLUMNS if c in df.columns and df.schema[c].is_numeric()]
    if not lines and numbers and re.search(rb":\s*(?:true|false)\b", data):  # polars reads true as 1
        first: dict = {}
        only = {frozenset(("a number", "a boolean"))}
        for row, _, obj in _json_rows(data, lines=False):
            if isinstance(obj, dict):
                pick = {c: obj[c] for c in numbers if c in obj}
                bad = _type_conflict(f"{path}, row {row}", pick, first, f"row {row}", _ALL - only)
                if bad is not None:
                    raise DataError(bad)
    if not texty and not twice and not odd_rows and not _SURROGATE_ESCAPE.search(data):
        return
    for row, line, raw in _json_rows(data, lines=lines):
        if lines and not (
            texty or row in odd_rows or any(raw.count(k) > 1 for k in twice) or _SURROGATE_ESCAPE.search(raw)
        ):
            continue  # only the lines that can hold one are parsed again
        try:
            obj = json.loads(raw, object_pairs_hook=_pairs) if lines else raw
        except ValueError:  # polars read it; what Python's parser refuses is not ours to report here
            continue
        if not isinstance(obj, dict):
            continue
        where = f"{path}, line {line} (row {row})" if lines else f"{path}, row {row}"
        at = f"{path}, line {line}" if lines else str(path)
        for key, value in obj.items():
            bad = lone_surrogate(value)
            if bad is not None or lone_surrogate(key) is not None:
                what = (
                    f"column {key!r} holds undecodable text {fmt(bad)}" if bad else f"the key {fmt(key)} is undecodable"
                )
                raise DataError(
                    f"{where}: {what} (a lone UTF-16 surrogate, not a character). Fix: repair that text at its "
                    "source (re-export it as UTF-8) or remove the row."
                )
        if getattr(obj, "dup", None) is not None:
            raise DataError(
                f"{where}: the key {obj.dup!r} appears twice in one object (polars would keep the first value, "
                f"Python's json the last). Fix: write each key once per {'line' if lines else 'object'}."
            )
        for col, rows in odd.items():
            value = obj.get(col)
            if row in rows and not isinstance(value, str) and value is not None:
                raise DataError(
                    f"{where}: column {col!r} holds {_js(value)} ({_kind(value)}) where text belongs (polars "
                    f"would read it as the text {fmt(df[col][row])}). Fix: write every {col!r} as a string"
                    f"{CHAT_FIX if isinstance(value, list) else ''}."
                )
        for col in texty:
            if isinstance(obj.get(col), str):
                yes_no = col == "score" and obj[col].strip().lower() in ("true", "false", "yes", "no")
                raise DataError(
                    f"column {col!r} must be numeric, found text at row {row}: {fmt(obj[col])} ({at}). "
                    f"Fix: write {col!r} as numbers, not strings"
                    + (
                        " (1.0/0.0 for true/false: `v0lite data map LOG OUT --policy policy --prompt prompt "
                        "--score score` converts yes/no and true/false)."
                        if yes_no
                        else "."
                    )
                )
