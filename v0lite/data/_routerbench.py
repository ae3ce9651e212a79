"""Converter of RouterDC's RouterBench CSVs (11 models, binary outcome, USD cost per call)."""

from __future__ import annotations

import ast
import csv
import io
import math
import os
import sys
import warnings
from pathlib import Path

import polars as pl

from ..exceptions import DataError, V0liteWarning
from ._common import _check_text, _existing, _log_of, _text

__all__ = ["convert_routerbench"]


def _read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    limit = sys.maxsize
    while True:  # csv.field_size_limit rejects values above a C long on some platforms
        try:
            csv.field_size_limit(limit)
            break
        except OverflowError:
            limit //= 2
    text = _text(path)  # a UTF-8 byte-order mark dropped; UTF-16 and bytes that are not UTF-8 named
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
        header = list(reader.fieldnames or [])
    except csv.Error as exc:
        raise DataError(f"{path}: not a well-formed CSV ({exc}). Fix: repair the file.") from exc
    return header, rows


# RouterBench's columns that are no outcome: the row id (blank header), the raw responses, the oracle's pick
_SKIPPED = ("", "oracle_model_to_route_to")
_META = ("sample_id", "prompt", "eval_name")


def _model_columns(path: Path, header: list[str]) -> list[str]:
    """The model columns: each ``<model>`` beside its ``<model>|total_cost``. Every other column must be
    one RouterBench ships and v0lite skips (:data:`_SKIPPED`, ``<model>|model_response``)."""
    for col in _META:
        if col not in header:
            raise DataError(
                f"{path}: missing column {col!r} (columns: {header[:8]}...). "
                "Fix: pass a RouterBench CSV as shipped by RouterDC."
            )
    models = [c for c in header if "|" not in c and c not in _META and c not in _SKIPPED]
    for col in header:
        base, _, suffix = col.rpartition("|") if "|" in col else (col, "", "")
        if col in models and f"{col}|total_cost" not in header:
            raise DataError(
                f"{path}: column {col!r} has no {col + '|total_cost'!r} column beside it, so its outcomes have no "
                "cost. Fix: add that cost column, or remove the column (RouterBench's columns are sample_id, "
                "prompt, eval_name, <model>, <model>|model_response, <model>|total_cost, oracle_model_to_route_to)."
            )
        if suffix in ("total_cost", "model_response") and base not in models:
            raise DataError(
                f"{path}: column {col!r} has no model column {base!r} beside it. Fix: add the outcome column "
                f"{base!r}, or remove {col!r}."
            )
        if "|" in col and suffix not in ("total_cost", "model_response"):
            raise DataError(
                f"{path}: unknown column {col!r} (a RouterBench model column is '<model>', "
                "'<model>|model_response' or '<model>|total_cost'). Fix: remove or rename that column."
            )
    if not models:
        raise DataError(
            f"{path}: no model columns (a '<model>' column with a '<model>|total_cost' beside it). "
            "Fix: pass a RouterBench CSV."
        )
    return models


def _float(path: Path, where: str, col: str, what: str, cell: str, lo: float, hi: float, fix: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and lo <= value <= hi):
        raise DataError(f"{path}, {where}, column {col!r}: {what} {cell!r} {fix}")
    return value


def _routerbench_file(path: Path, blanks: list[tuple[str, str, str]], places: list[str]) -> dict[str, list]:
    header, rows = _read_csv_rows(path)
    models = _model_columns(path, header)
    if not rows:
        raise DataError(f"{path}: the CSV has a header but no rows. Fix: pass the file with its rows, or remove it.")
    cols: dict[str, list] = {k: [] for k in ("policy", "prompt", "score", "n", "cost", "prompt_id", "task")}
    for i, r in enumerate(rows):
        for col, what in (("sample_id", "the prompt's id"), ("eval_name", "its task")):  # "" is no id, no task
            if not (r[col] or "").strip():
                raise DataError(
                    f"{path}, row {i}, column {col!r}: empty. Fix: fill in that row's {col} ({what}), or remove "
                    "the row."
                )
        sid = r["sample_id"]
        where = f"row {i} (sample_id {sid!r})"
        try:
            parts = ast.literal_eval(r["prompt"])
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise DataError(
                f"{path}, {where}: column 'prompt' is not a Python list literal "
                f"({type(exc).__name__}). Fix: repair that row's prompt."
            ) from exc
        if isinstance(parts, str):
            parts = [parts]
        if not isinstance(parts, (list, tuple)) or not all(isinstance(x, str) for x in parts):
            raise DataError(
                f"{path}, {where}: column 'prompt' is not a list of strings. Fix: repair that row's prompt."
            )
        prompt = "\n".join(parts)
        _check_text(path, where, {"prompt": prompt})  # an escaped lone surrogate
        if not prompt.strip():
            raise DataError(
                f"{path}, {where}: column 'prompt' = {r['prompt'][:60]!r} holds no text. "
                "Fix: fill in that row's prompt."
            )
        for m in models:
            cell = (r.get(m) or "").strip()
            if cell == "":
                blanks.append((path.name, sid, m))
                continue
            cost_cell = (r.get(f"{m}|total_cost") or "").strip()
            score = _float(
                path, where, m, "outcome", cell, 0.0, 1.0, "is not a number in [0, 1]. Fix: write 0.0 or 1.0."
            )
            cost = _float(path, where, f"{m}|total_cost", "cost", cost_cell, 0.0, math.inf,
                          "is not a finite number >= 0. Fix: fill in the USD cost of that call.")  # fmt: skip
            cols["policy"].append(m)
            cols["prompt"].append(prompt)
            cols["score"].append(score)
            cols["n"].append(1)
            cols["cost"].append(cost)
            cols["prompt_id"].append(sid)
            cols["task"].append(r["eval_name"])
            places.append(f"{path}, {where}")
    return cols


def convert_routerbench(src_dir: str | os.PathLike) -> dict[str, pl.DataFrame]:
    """Convert RouterDC's RouterBench CSVs to a train and a test log.

    Reads every ``<task>_train.csv`` and ``<task>_test.csv`` in ``src_dir``. Each
    (prompt, model) cell becomes one row: ``policy`` = model column, ``score`` = its 0/1
    outcome (one call, so ``n = 1``), ``cost`` = ``<model>|total_cost`` (USD),
    ``prompt`` = the stringified list in ``prompt`` parsed with :func:`ast.literal_eval`
    and joined with ``"\\n"``, ``prompt_id`` = ``sample_id``, ``task`` = ``eval_name``.

    Blank outcome cells (some ARC-Challenge rows) are skipped cell by cell, never whole
    rows, and reported in one :class:`~v0lite.exceptions.V0liteWarning` with their count
    and sample_ids. In the RouterDC copy each such sample_id appears as two rows: one
    with only ``gpt-3.5-turbo-1106`` filled, whose prompt list holds the same text twice
    (so its joined prompt is that text repeated), and one with the other ten models.
    Six of these pairs straddle the train and test files. Test rows whose prompt is also a train
    prompt (the same text, or one of those doubled texts) are kept, as shipped, and counted, with a
    few sample_ids, in another :class:`~v0lite.exceptions.V0liteWarning` (in the RouterDC copy: 8
    sample_ids, 2 of them the same text).

    Parameters
    ----------
    src_dir : path
        Folder with the CSV files.

    Returns
    -------
    dict
        ``{"train": DataFrame, "test": DataFrame}``: validated logs with policy, prompt,
        score, n, cost, prompt_id, task.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> head = ",sample_id,prompt,eval_name,m1,m1|total_cost\\n"
    >>> _ = (d / "t_train.csv").write_text(head + "0,t.1,\\"['Q1']\\",t,1.0,0.01\\n")
    >>> _ = (d / "t_test.csv").write_text(head + "1,t.2,\\"['Q2', 'more']\\",t,0.0,0.02\\n")
    >>> convert_routerbench(d)["test"]["prompt"].to_list()
    ['Q2\\nmore']
    """
    src_dir = _existing(src_dir, "RouterBench", directory=True)
    out: dict[str, pl.DataFrame] = {}
    blanks: list[tuple[str, str, str]] = []
    for split in ("train", "test"):
        files = sorted(src_dir.glob(f"*_{split}.csv"))
        if not files:
            raise DataError(
                f"{src_dir}: no '*_{split}.csv' file. "
                "Fix: pass the folder holding <task>_train.csv and <task>_test.csv."
            )
        places: list[str] = []
        parts = [_routerbench_file(f, blanks, places) for f in files]
        merged = {k: [v for p in parts for v in p[k]] for k in parts[0]}
        where = ", ".join(str(f) for f in files)
        out[split] = _log_of(merged, places, f"{where} (every outcome cell blank)" if not places else where)
    if blanks:
        ids = sorted({sid for _, sid, _ in blanks})
        per_file: dict[str, int] = {}
        for fname, _, _ in blanks:
            per_file[fname] = per_file.get(fname, 0) + 1
        warnings.warn(
            f"RouterBench: skipped {len(blanks)} blank outcome cells (per file: {per_file}) "
            f"in {len(ids)} sample_ids: {ids}. The other cells of those rows are kept.",
            V0liteWarning,
            stacklevel=2,
        )
    _note_shared_prompts(out["train"], out["test"])
    return out


def _note_shared_prompts(train: pl.DataFrame, test: pl.DataFrame) -> None:
    """Say how many test prompts are also train prompts (kept: the published figures use RouterDC's files
    as shipped), so that a test score that read their train outcomes is not taken for a held-out one."""

    def undoubled(frame: pl.DataFrame) -> pl.Series:  # "X\nX" (a gpt-3.5 row's doubled list, see above) -> "X"
        p = frame["prompt"]
        half = p.str.slice(0, (p.str.len_chars() - 1) // 2)
        return pl.select(pl.when(p == half + "\n" + half).then(half).otherwise(p)).to_series()

    key = undoubled(test)
    same = test["prompt"].is_in(train["prompt"].unique().implode())
    shared = test.filter(key.is_in(undoubled(train).unique().implode()))
    if shared.is_empty():
        return
    ids = shared["prompt_id"].unique(maintain_order=True).to_list()
    exact = test.filter(same)["prompt_id"].n_unique()
    warnings.warn(
        f"RouterBench: {len(ids)} test sample_id{'s have' if len(ids) > 1 else ' has'} a prompt that is also a "
        f"train prompt ({exact} the same "
        f"text, {len(ids) - exact} as RouterBench's doubled text 'X\\nX' of X), e.g. {ids[:5]}. They are kept "
        "(as shipped); a router fit on train has seen outcomes of their prompt. To leave them out, remove those "
        "sample_ids from the test file, or merge the files and split by prompt (`v0lite data split`).",
        V0liteWarning,
        stacklevel=2,
    )
