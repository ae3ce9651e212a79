"""Converters from public outcome datasets to the outcome log, and a synthetic demo log.

Every converter returns validated outcome logs (see :mod:`v0lite.log`) with the columns
``policy, prompt, score`` and, where the source has them, ``step, n, cost, prompt_id,
task``. Nothing is silently dropped: unusable rows raise :class:`~v0lite.exceptions.DataError`
naming the file, row and value; the only cells skipped on purpose (blank RouterBench
outcomes) are counted in a :class:`~v0lite.exceptions.V0liteWarning`.

==================  =====================================================================
format              source (see each folder's PROVENANCE.md under :func:`data_dir`)
==================  =====================================================================
``v0``              V0 paper sample: jsonl rows ``{id, score in [-1, 1], model, step,
                    dataset}`` + ``prompt_dict.json``; 10 rollouts per row
``routerbench``     RouterDC's RouterBench CSVs ``<task>_train.csv`` / ``<task>_test.csv``;
                    11 models, binary outcome and USD cost per call
``routerdc``        RouterDC 7-model JSON files ``[{question, scores{model: float}}]``
``oneshot-rlvr``    One-Shot-RLVR ``dsr_sub_acc_history.jsonl``: one evolving GRPO policy,
                    8 rollouts per visit
==================  =====================================================================

:func:`make_demo_log` / :func:`write_demo_data` build a clearly labelled SYNTHETIC log for
examples and smoke tests.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

from ._io import atomic_write_bytes
from .exceptions import DataError, V0liteWarning
from .log import as_frame, validate_log, write_log

__all__ = [
    "data_dir",
    "convert_v0",
    "convert_routerbench",
    "convert_routerdc",
    "convert_oneshot_rlvr",
    "split_by_prompt",
    "make_demo_log",
    "write_demo_data",
    "CONVERTERS",
    "convert",
    "ONESHOT_POLICY",
]

ONESHOT_POLICY = "Qwen2.5-Math-1.5B-GRPO (one-shot-rlvr dsr_sub)"
_MCQ_TASKS = ("mmlu", "cmmlu", "ceval")
_SPLIT_SUFFIX = re.compile(r"[-_](train|test)$")


def _project_root() -> Path:
    return Path(__file__).resolve().parent.parent


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


def _existing(path: str | os.PathLike, what: str, *, directory: bool = False) -> Path:
    path = Path(path)
    ok = path.is_dir() if directory else path.is_file()
    if not ok:
        kind = "folder" if directory else "file"
        raise DataError(f"{path}: {what} {kind} not found. Fix: pass the path of an existing {what} {kind}.")
    return path


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """``(row, object)`` for every non-blank line; row is the 0-based line number."""
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}, row {i}: not valid JSON ({exc.msg}). Fix: repair or remove that line.") from exc
                if not isinstance(obj, dict):
                    raise DataError(f"{path}, row {i}: expected a JSON object, got {type(obj).__name__}. Fix: write one object per line.")
                out.append((i, obj))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc}). Fix: re-encode the file as UTF-8.") from exc
    if not out:
        raise DataError(f"{path}: no rows. Fix: pass a non-empty JSON-lines file.")
    return out


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}). Fix: repair the file.") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc}). Fix: re-encode the file as UTF-8.") from exc


def _field(path: Path, row: int, obj: dict, key: str) -> Any:
    if key not in obj or obj[key] is None:
        raise DataError(
            f"{path}, row {row}: field {key!r} is missing (fields present: {sorted(obj)}). "
            f"Fix: give every row a {key!r}, or pass the right file."
        )
    return obj[key]


def _number(path: Path, row: int, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{path}, row {row}: field {key!r} = {value!r} is not a finite number. Fix: write it as a number.")
    return float(value)


# --------------------------------------------------------------------------- v0


def convert_v0(src: str | os.PathLike, prompt_dict: str | os.PathLike | dict | None = None) -> pl.DataFrame:
    """Convert the V0 paper's sample rows (``context.jsonl``, ``train.jsonl``, ...) to a log.

    Each row ``{id, score, model, step, dataset}`` becomes ``policy = model``,
    ``step = step``, ``score = (score + 1) / 2`` (the source score is the mean of ±1
    rewards over ``n = 10`` rollouts), ``prompt_id = str(id)``, ``task = dataset``, and
    ``prompt = prompt_dict[f"{dataset}_{id}"]``.

    Parameters
    ----------
    src : path
        A V0 jsonl file.
    prompt_dict : path or dict, optional
        The id → prompt map; default ``prompt_dict.json`` beside ``src``.

    Returns
    -------
    polars.DataFrame
        Validated log: policy, prompt, score, step, n, prompt_id, task.

    Raises
    ------
    DataError
        A missing field, a score outside [-1, 1], or a prompt id absent from the
        dictionary (naming the row and the id).

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "prompt_dict.json").write_text(json.dumps({"dapomath_7": "1+1?"}))
    >>> _ = (d / "ctx.jsonl").write_text(json.dumps(
    ...     {"id": 7, "score": 0.6, "model": "m", "step": 16, "dataset": "dapomath"}) + "\\n")
    >>> convert_v0(d / "ctx.jsonl")["score"].to_list()
    [0.8]
    """
    src = _existing(src, "V0 jsonl")
    if isinstance(prompt_dict, dict):
        prompts, pd_name = prompt_dict, "prompt_dict"
    else:
        pd_path = _existing(prompt_dict if prompt_dict is not None else src.parent / "prompt_dict.json", "prompt_dict.json")
        prompts, pd_name = _read_json(pd_path), str(pd_path)
        if not isinstance(prompts, dict):
            raise DataError(f"{pd_path}: expected a JSON object mapping '<dataset>_<id>' to prompt text. Fix: pass V0's prompt_dict.json.")
    cols: dict[str, list] = {k: [] for k in ("policy", "prompt", "score", "step", "n", "prompt_id", "task")}
    for row, obj in _read_jsonl(src):
        pid = _field(src, row, obj, "id")
        raw = _number(src, row, "score", _field(src, row, obj, "score"))
        if not -1.0 <= raw <= 1.0:
            raise DataError(
                f"{src}, row {row}: score {raw!r} is outside [-1, 1]. "
                "Fix: V0 scores are means of ±1 rewards; pass a V0 sample file."
            )
        dataset = str(_field(src, row, obj, "dataset"))
        key = f"{dataset}_{pid}"
        text = prompts.get(key)
        if not isinstance(text, str):
            raise DataError(
                f"{src}, row {row}: prompt id {pid!r} (key {key!r}) is not in {pd_name}. "
                "Fix: pass the prompt_dict.json that belongs to this file (prompt_dict=...)."
            )
        cols["policy"].append(str(_field(src, row, obj, "model")))
        cols["prompt"].append(text)
        cols["score"].append(round((raw + 1.0) / 2.0, 12))
        cols["step"].append(_field(src, row, obj, "step"))
        cols["n"].append(10)
        cols["prompt_id"].append(str(pid))
        cols["task"].append(dataset)
    return validate_log(pl.DataFrame(cols, strict=False))


# --------------------------------------------------------------------------- routerbench


def _read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    limit = sys.maxsize
    while True:  # csv.field_size_limit rejects values above a C long on some platforms
        try:
            csv.field_size_limit(limit)
            break
        except OverflowError:
            limit //= 2
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc}). Fix: re-encode the file as UTF-8.") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: not a well-formed CSV ({exc}). Fix: repair the file.") from exc
    return header, rows


def _routerbench_file(path: Path, blanks: list[tuple[str, str, str]]) -> dict[str, list]:
    header, rows = _read_csv_rows(path)
    for col in ("sample_id", "prompt", "eval_name"):
        if col not in header:
            raise DataError(f"{path}: missing column {col!r} (columns: {header[:8]}...). Fix: pass a RouterBench CSV as shipped by RouterDC.")
    models = [c for c in header if "|" not in c and f"{c}|total_cost" in header]
    if not models:
        raise DataError(f"{path}: no model columns (a '<model>' column with a '<model>|total_cost' beside it). Fix: pass a RouterBench CSV.")
    cols: dict[str, list] = {k: [] for k in ("policy", "prompt", "score", "n", "cost", "prompt_id", "task")}
    for i, r in enumerate(rows):
        sid = r["sample_id"]
        try:
            parts = ast.literal_eval(r["prompt"])
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise DataError(
                f"{path}, row {i} (sample_id {sid!r}): column 'prompt' is not a Python list literal "
                f"({type(exc).__name__}). Fix: repair that row's prompt."
            ) from exc
        if isinstance(parts, str):
            parts = [parts]
        if not isinstance(parts, (list, tuple)) or not all(isinstance(x, str) for x in parts):
            raise DataError(f"{path}, row {i} (sample_id {sid!r}): column 'prompt' is not a list of strings. Fix: repair that row's prompt.")
        prompt = "\n".join(parts)
        for m in models:
            cell = (r.get(m) or "").strip()
            if cell == "":
                blanks.append((path.name, sid, m))
                continue
            cost_cell = (r.get(f"{m}|total_cost") or "").strip()
            try:
                score = float(cell)
            except ValueError as exc:
                raise DataError(f"{path}, row {i} (sample_id {sid!r}), column {m!r}: outcome {cell!r} is not a number. Fix: write 0.0 or 1.0.") from exc
            try:
                cost = float(cost_cell)
            except ValueError as exc:
                raise DataError(
                    f"{path}, row {i} (sample_id {sid!r}), column '{m}|total_cost': cost {cost_cell!r} is not a number. "
                    "Fix: fill in the cost of that call."
                ) from exc
            cols["policy"].append(m)
            cols["prompt"].append(prompt)
            cols["score"].append(score)
            cols["n"].append(1)
            cols["cost"].append(cost)
            cols["prompt_id"].append(sid)
            cols["task"].append(r["eval_name"])
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
    Six of these pairs straddle the train and test files.

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
            raise DataError(f"{src_dir}: no '*_{split}.csv' file. Fix: pass the folder holding <task>_train.csv and <task>_test.csv.")
        parts = [_routerbench_file(f, blanks) for f in files]
        merged = {k: [v for p in parts for v in p[k]] for k in parts[0]}
        out[split] = validate_log(pl.DataFrame(merged, strict=False))
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
    return out


# --------------------------------------------------------------------------- routerdc


def _routerdc_task(stem: str) -> tuple[str, str]:
    m = _SPLIT_SUFFIX.search(stem)
    if m is None:
        return stem, "all"
    return stem[: m.start()], m.group(1)


def _is_mcq(task: str) -> bool:
    t = task.lower()
    return t in _MCQ_TASKS or t.startswith("arc_")


def convert_routerdc(src_dir: str | os.PathLike) -> pl.DataFrame:
    """Convert RouterDC's 7-model JSON files to one log.

    Every ``*.json`` in ``src_dir`` (a list of ``{question, scores{model: float}}``)
    gives one row per (question, model). ``task`` is the file stem without a
    ``_train``/``_test``/``-train``/``-test`` suffix, and the extra column ``split`` says
    ``"train"``, ``"test"`` or ``"all"`` (no suffix). Multiple-choice tasks (mmlu, cmmlu,
    ceval, arc_*) store the gold option's likelihood when the model is right, so they
    become binary (``1.0`` if score > 0 else ``0.0``); the other tasks keep their graded
    rate. ``prompt_id = f"{file_stem}:{i}"`` (i = position in the file).

    Caveat: the shipped train/test files overlap on a few questions and a few questions
    repeat inside a file (in the RouterDC copy 35 extra copies in all: mmlu train/test
    16, mmlu_test 8 within, arc_easy 4 + 1 within train, arc_challenge 2, cmmlu 1,
    ceval 1, mbpp 1, and one question in both arc_challenge_train and arc_easy_train).
    All rows are kept; to
    evaluate without leakage ignore ``split`` and use :func:`split_by_prompt`, which
    puts every copy of a prompt on the same side.

    Parameters
    ----------
    src_dir : path
        Folder with the JSON files.

    Returns
    -------
    polars.DataFrame
        Validated log: policy, prompt, score, prompt_id, task, split.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "mmlu_test.json").write_text(json.dumps([{"question": "Q", "scores": {"a": 0.7, "b": 0}}]))
    >>> convert_routerdc(d).select("policy", "score", "task", "split").rows()
    [('a', 1.0, 'mmlu', 'test'), ('b', 0.0, 'mmlu', 'test')]
    """
    src_dir = _existing(src_dir, "RouterDC", directory=True)
    files = sorted(src_dir.glob("*.json"))
    if not files:
        raise DataError(f"{src_dir}: no '*.json' file. Fix: pass the folder holding RouterDC's split2_model7 JSON files.")
    cols: dict[str, list] = {k: [] for k in ("policy", "prompt", "score", "prompt_id", "task", "split")}
    for path in files:
        items = _read_json(path)
        if not isinstance(items, list):
            raise DataError(f"{path}: expected a JSON list of {{question, scores}} objects. Fix: pass a RouterDC JSON file.")
        task, split = _routerdc_task(path.stem)
        mcq = _is_mcq(task)
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise DataError(f"{path}, item {i}: expected an object, got {type(item).__name__}. Fix: repair that item.")
            question = _field(path, i, item, "question")
            scores = _field(path, i, item, "scores")
            if not isinstance(question, str) or not isinstance(scores, dict) or not scores:
                raise DataError(f"{path}, item {i}: needs a string 'question' and a non-empty 'scores' object. Fix: repair that item.")
            for model, value in scores.items():
                v = _number(path, i, f"scores[{model!r}]", value)
                if not 0.0 <= v <= 1.0:
                    raise DataError(f"{path}, item {i}, model {model!r}: score {value!r} is outside [0, 1]. Fix: pass RouterDC scores.")
                cols["policy"].append(str(model))
                cols["prompt"].append(question)
                cols["score"].append((1.0 if v > 0 else 0.0) if mcq else v)
                cols["prompt_id"].append(f"{path.stem}:{i}")
                cols["task"].append(task)
                cols["split"].append(split)
    return validate_log(pl.DataFrame(cols, strict=False))


def split_by_prompt(df: Any, test_size: float = 0.2, random_state: int | None = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a log by unique prompt text, so no prompt lands on both sides.

    Parameters
    ----------
    df : polars/pandas DataFrame, path or dict
        A log with a ``prompt`` column.
    test_size : float, default 0.2
        Share of unique prompts in the test side, in (0, 1).
    random_state : int or None, default 0
        Seed of the permutation of the (sorted) unique prompts.

    Returns
    -------
    (train, test) : tuple of polars.DataFrame
        Rows keep their original order; duplicates of one prompt stay together.

    Examples
    --------
    >>> log = {"policy": ["a"] * 4, "prompt": ["x", "y", "x", "z"], "score": [1.0, 0.0, 0.5, 1.0]}
    >>> tr, te = split_by_prompt(log, test_size=0.34)
    >>> set(tr["prompt"]) & set(te["prompt"])
    set()
    """
    frame = as_frame(df)
    if "prompt" not in frame.columns:
        raise DataError(f"missing column 'prompt' (columns present: {frame.columns}). Fix: pass an outcome log.")
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or not 0.0 < test_size < 1.0:
        raise DataError(f"test_size={test_size!r} must be a fraction in (0, 1). Fix: use e.g. test_size=0.2.")
    unique = sorted(frame["prompt"].drop_nulls().unique().to_list())
    if len(unique) < 2:
        raise DataError(f"the log has {len(unique)} unique prompt(s); a split needs at least 2. Fix: pass more prompts.")
    n_test = min(max(int(round(test_size * len(unique))), 1), len(unique) - 1)
    rng = np.random.default_rng(random_state)
    perm = rng.permutation(len(unique))
    test_prompts = [unique[j] for j in perm[:n_test]]
    in_test = frame["prompt"].is_in(test_prompts)
    return frame.filter(~in_test), frame.filter(in_test)


# --------------------------------------------------------------------------- oneshot-rlvr


def convert_oneshot_rlvr(src: str | os.PathLike) -> pl.DataFrame:
    """Convert One-Shot-RLVR's per-prompt accuracy history to a log.

    Each line ``{index, prompt, data_source, acc_history}`` gives one row per visit
    ``k``: ``policy`` = :data:`ONESHOT_POLICY`, ``step = k`` (0-based visit index,
    roughly the epoch; the exact global step was not recorded), ``n = 8`` rollouts,
    ``score = acc_history[k]``, ``prompt_id = str(index)``, ``task = data_source``.

    Parameters
    ----------
    src : path
        ``dsr_sub_acc_history.jsonl``.

    Returns
    -------
    polars.DataFrame
        Validated log: policy, prompt, score, step, n, prompt_id, task.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "h.jsonl"
    >>> _ = f.write_text(json.dumps({"index": 3, "prompt": "P", "data_source": "d", "acc_history": [0.0, 0.5]}))
    >>> convert_oneshot_rlvr(f).select("step", "score").rows()
    [(0, 0.0), (1, 0.5)]
    """
    src = _existing(src, "One-Shot-RLVR acc-history jsonl")
    cols: dict[str, list] = {k: [] for k in ("policy", "prompt", "score", "step", "n", "prompt_id", "task")}
    for row, obj in _read_jsonl(src):
        index = _field(src, row, obj, "index")
        prompt = _field(src, row, obj, "prompt")
        source = _field(src, row, obj, "data_source")
        hist = _field(src, row, obj, "acc_history")
        if not isinstance(hist, list) or not hist:
            raise DataError(f"{src}, row {row}: 'acc_history' must be a non-empty list of rates. Fix: repair that row.")
        for k, value in enumerate(hist):
            cols["score"].append(_number(src, row, f"acc_history[{k}]", value))
            cols["step"].append(k)
        m = len(hist)
        cols["policy"].extend([ONESHOT_POLICY] * m)
        cols["prompt"].extend([prompt] * m)
        cols["n"].extend([8] * m)
        cols["prompt_id"].extend([str(index)] * m)
        cols["task"].extend([str(source)] * m)
    return validate_log(pl.DataFrame(cols, strict=False))


# --------------------------------------------------------------------------- synthetic demo

# Each topic: templates (difficulty level 0 easy, 1 medium, 2 hard) and their slot fillers.
_STYLES = ("", "Question: ", "Please answer: ", "Quick one: ", "Exercise: ")
_ENDINGS = ("", " Show your reasoning.", " Answer concisely.", " Explain briefly.")


def _topic_templates() -> dict[str, list[tuple[int, Callable[[np.random.Generator], str]]]]:
    def pick(rng: np.random.Generator, items: tuple) -> Any:
        return items[int(rng.integers(len(items)))]

    def ri(rng: np.random.Generator, lo: int, hi: int) -> int:
        return int(rng.integers(lo, hi + 1))

    events = ("the Berlin Wall fall", "the French Revolution begin", "the Magna Carta get sealed",
              "the First World War end", "Columbus first reach the Americas", "the Roman Empire split in two",
              "the printing press reach England", "India gain independence", "the American Civil War start",
              "the Meiji Restoration begin", "the Ottoman Empire fall", "the Byzantine capital fall")
    eras = ("the collapse of the Western Roman Empire", "the First World War", "the Great Depression",
            "the Thirty Years' War", "the fall of the Qing dynasty", "the Industrial Revolution in Britain",
            "the decline of the Mughal Empire", "the Cold War", "the Reformation", "the Crusades")
    rulers = ("Augustus", "Charlemagne", "Elizabeth I", "Louis XIV", "Peter the Great", "Napoleon",
              "Queen Victoria", "Meiji", "Catherine the Great", "Akbar", "Kangxi", "Suleiman")
    regions = ("Western Europe", "East Asia", "the Mediterranean", "South Asia", "Central Europe", "the Atlantic world")
    elements = ("sodium", "potassium", "iron", "copper", "silver", "gold", "tin", "lead", "mercury", "tungsten",
                "chlorine", "magnesium", "calcium", "zinc", "nickel", "helium", "neon", "argon")
    fuels = ("methane", "ethane", "propane", "butane", "ethanol", "methanol", "octane", "glucose", "acetylene")
    compounds = ("sodium chloride", "water", "carbon dioxide", "calcium carbonate", "sulfuric acid",
                 "glucose", "ammonia", "potassium nitrate", "ethanol")
    acids = ("acetic acid", "formic acid", "hydrofluoric acid", "benzoic acid", "hypochlorous acid", "lactic acid")
    fns = ("sum", "maximum", "minimum", "average", "median", "number of even values")
    things = ("spaces", "punctuation", "letter case", "accents", "digits")
    kinds = ("integers", "strings", "dates", "floating-point numbers", "tuples")
    langs = ("Python", "Java", "Rust", "Go", "C++", "TypeScript")
    algos = ("Dijkstra's shortest-path algorithm", "a topological sort", "Kruskal's minimum spanning tree",
             "the Bellman-Ford algorithm", "an A* search", "Tarjan's strongly connected components")
    organelles = ("mitochondrion", "ribosome", "nucleus", "Golgi apparatus", "chloroplast", "lysosome",
                  "endoplasmic reticulum", "cell membrane", "vacuole")
    processes = ("photosynthesis", "cellular respiration", "osmosis", "mitosis", "meiosis", "protein synthesis",
                 "DNA replication", "the immune response")
    organisms = ("plants", "yeast", "bacteria", "humans", "insects", "fish", "fungi")
    genes = ("p53", "BRCA1", "CFTR", "the insulin receptor", "hemoglobin", "a sodium channel")
    mechanisms = ("enzymes lower activation energy", "neurons propagate action potentials",
                  "antibodies recognise antigens", "hormones regulate blood glucose", "muscles contract")
    countries = ("France", "Japan", "Kenya", "Brazil", "Canada", "Egypt", "Peru", "Norway", "Vietnam",
                 "Australia", "Chile", "Poland", "Morocco", "Thailand", "Mexico", "Ghana")
    cities = ("Paris", "Vienna", "Cairo", "Budapest", "London", "Baghdad", "Prague", "Bangkok", "Khartoum", "Cologne")
    factors = ("ocean currents", "altitude", "the monsoon", "continentality", "prevailing winds", "mountain rain shadows")
    climates = ("the Andes", "West Africa", "South Asia", "Scandinavia", "the Great Plains", "the Mediterranean basin")

    return {
        "arithmetic": [
            (0, lambda r: f"What is {ri(r, 2, 40)} + {ri(r, 2, 40)}?"),
            (0, lambda r: f"Subtract {ri(r, 1, 30)} from {ri(r, 31, 90)}. What do you get?"),
            (1, lambda r: f"Compute {ri(r, 12, 99)} times {ri(r, 12, 99)} without a calculator."),
            (1, lambda r: f"What is {pick(r, (5, 12, 15, 35, 45, 65))}% of {ri(r, 80, 960)}?"),
            (2, lambda r: f"Find the remainder when {ri(r, 3, 19)}^{ri(r, 20, 200)} is divided by {ri(r, 7, 97)}."),
            (2, lambda r: f"Compute the sum of all integers from {ri(r, 1, 50)} to {ri(r, 300, 999)} that are divisible by {ri(r, 3, 13)}."),
        ],
        "geometry": [
            (0, lambda r: f"A rectangle is {ri(r, 2, 30)} cm long and {ri(r, 2, 30)} cm wide. What is its area?"),
            (0, lambda r: f"What is the perimeter of a square whose side is {ri(r, 2, 50)} meters?"),
            (1, lambda r: f"A right triangle has legs of length {ri(r, 3, 40)} and {ri(r, 3, 40)}. How long is the hypotenuse?"),
            (1, lambda r: f"Find the area of a circle with radius {ri(r, 2, 25)} cm, to two decimal places."),
            (2, lambda r: f"A regular polygon has interior angles of {pick(r, (120, 135, 140, 144, 150, 156, 160, 165))} degrees and side length {ri(r, 2, 12)}. How many sides does it have, and what is its area?"),
            (2, lambda r: f"Find the volume of the solid obtained by rotating y = x^{ri(r, 2, 5)} for x between 0 and {ri(r, 2, 6)} about the x-axis."),
        ],
        "coding": [
            (0, lambda r: f"Write a Python function that returns the {pick(r, fns)} of a list of numbers."),
            (0, lambda r: f"Write a {pick(r, langs)} function that reverses a string."),
            (1, lambda r: f"Write a {pick(r, langs)} function that checks whether a string is a palindrome, ignoring {pick(r, things)}."),
            (1, lambda r: f"Implement binary search over a sorted list of {pick(r, kinds)} in {pick(r, langs)} and return the index of a target."),
            (2, lambda r: f"Implement {pick(r, algos)} in {pick(r, langs)} for a graph with {ri(r, 10, 10000)} nodes given as an adjacency list, and state its complexity."),
            (2, lambda r: f"Write a thread-safe LRU cache class in {pick(r, langs)} with capacity {ri(r, 8, 4096)} and O(1) get and put."),
        ],
        "history": [
            (0, lambda r: f"In which year did {pick(r, events)}?"),
            (0, lambda r: f"Who was {pick(r, rulers)}, in one sentence?"),
            (1, lambda r: f"Explain the main causes of {pick(r, eras)}."),
            (1, lambda r: f"What role did trade play in {pick(r, eras)}?"),
            (2, lambda r: f"Compare the policies of {pick(r, rulers)} and {pick(r, rulers)} and assess their long-term consequences for {pick(r, regions)}."),
            (2, lambda r: f"Evaluate competing historiographical interpretations of {pick(r, eras)} and their use of primary sources."),
        ],
        "chemistry": [
            (0, lambda r: f"What is the chemical symbol for {pick(r, elements)}?"),
            (0, lambda r: f"Is {pick(r, elements)} a metal, a non-metal or a noble gas?"),
            (1, lambda r: f"Balance the chemical equation for the complete combustion of {pick(r, fuels)}."),
            (1, lambda r: f"How many moles are in {ri(r, 5, 500)} grams of {pick(r, compounds)}?"),
            (2, lambda r: f"Calculate the pH of a {pick(r, (0.001, 0.01, 0.05, 0.1, 0.25, 0.5))} M solution of {pick(r, acids)} given its Ka, and justify any approximation."),
            (2, lambda r: f"Predict the products and mechanism when {pick(r, fuels)} reacts with {pick(r, ('chlorine', 'bromine', 'oxygen', 'ozone'))} under {pick(r, ('UV light', 'high pressure', 'a platinum catalyst'))}."),
        ],
        "biology": [
            (0, lambda r: f"What is the function of the {pick(r, organelles)} in a cell?"),
            (0, lambda r: f"Do {pick(r, organisms)} carry out {pick(r, processes)}?"),
            (1, lambda r: f"Describe how {pick(r, processes)} works in {pick(r, organisms)}."),
            (1, lambda r: f"Compare {pick(r, processes)} with {pick(r, processes)} in {pick(r, organisms)}."),
            (2, lambda r: f"Explain the molecular mechanism by which {pick(r, mechanisms)}, and predict the effect of a loss-of-function mutation in {pick(r, genes)}."),
            (2, lambda r: f"Design an experiment in {pick(r, organisms)} to test whether {pick(r, genes)} affects {pick(r, processes)}, including controls."),
        ],
        "geography": [
            (0, lambda r: f"What is the capital of {pick(r, countries)}?"),
            (0, lambda r: f"On which continent is {pick(r, countries)}?"),
            (1, lambda r: f"Which river flows through {pick(r, cities)}, and into which body of water does it drain?"),
            (1, lambda r: f"Name three countries that border {pick(r, countries)} or share a sea with it."),
            (2, lambda r: f"Explain how {pick(r, factors)} shapes the climate of {pick(r, climates)} across the seasons."),
            (2, lambda r: f"Analyse how {pick(r, factors)} and {pick(r, factors)} together affect agriculture in {pick(r, climates)}."),
        ],
        "physics": [
            (0, lambda r: f"A car travels {ri(r, 20, 300)} km in {ri(r, 1, 6)} hours. What is its average speed?"),
            (0, lambda r: f"What is the weight of a {ri(r, 1, 120)} kg mass on Earth?"),
            (1, lambda r: f"A ball is thrown upward at {ri(r, 5, 40)} m/s. How high does it rise, ignoring air resistance?"),
            (1, lambda r: f"Two resistors of {ri(r, 2, 200)} ohms and {ri(r, 2, 200)} ohms are in parallel. What is the total resistance?"),
            (2, lambda r: f"Derive the period of a physical pendulum made of a uniform rod of length {ri(r, 1, 5)} m pivoted {ri(r, 5, 45)} cm from one end."),
            (2, lambda r: f"A satellite orbits at {ri(r, 300, 36000)} km altitude. Compute its orbital period and the delta-v needed to circularise from a transfer ellipse."),
        ],
    }


_TOPIC_NAMES = ("arithmetic", "geometry", "coding", "history", "chemistry", "biology", "geography", "physics")
_POLICY_NAMES = ("synthetic-tiny", "synthetic-small", "synthetic-medium", "synthetic-large",
                 "synthetic-xl", "synthetic-xxl")
_DEMO_N = 8  # rollouts behind each synthetic score


def _demo_prompts(rng: np.random.Generator, count: int, templates: list) -> list[tuple[str, int]]:
    seen: set[str] = set()
    out: list[tuple[str, int]] = []
    attempts = 0
    while len(out) < count:
        level, make = templates[int(rng.integers(len(templates)))]
        text = _STYLES[int(rng.integers(len(_STYLES)))] + make(rng) + _ENDINGS[int(rng.integers(len(_ENDINGS)))]
        attempts += 1
        if text in seen:
            if attempts < 200 * count:
                continue
            text = f"{text} (variant {attempts})"
        seen.add(text)
        out.append((text, level))
    return out


def _check_count(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (hi is not None and value > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise DataError(f"{name}={value!r} must be an integer {rng}. Fix: pass an integer in that range.")
    return int(value)


def make_demo_log(
    n_policies: int = 4,
    n_topics: int = 6,
    n_prompts_per_topic: int = 40,
    n_steps: int = 3,
    random_state: int = 0,
) -> pl.DataFrame:
    """Generate a SYNTHETIC outcome log (for examples and tests; no real model was run).

    Prompts are templated English questions in several topics (arithmetic, geometry,
    coding, history, chemistry, biology, geography, physics) with varied wording, so a
    sentence encoder sees the topic structure. Each template has a difficulty level
    (easy / medium / hard); a prompt's latent difficulty is its level's offset plus
    noise. Policy ``i`` has a base skill rising with ``i``, a per-topic offset and a
    per-topic improvement per step. ``score = successes / 8`` with successes drawn from
    ``Binomial(8, sigmoid(skill + gain * step - difficulty))``. ``cost`` is a fixed
    per-policy price per call (USD, larger policies cost more).

    Parameters
    ----------
    n_policies : int, default 4
        Number of policies (``synthetic-tiny``, ``synthetic-small``, ...).
    n_topics : int, default 6
        Number of topics, at most 8.
    n_prompts_per_topic : int, default 40
        Distinct prompts per topic.
    n_steps : int, default 3
        Checkpoints 0 .. n_steps - 1; every policy answers every prompt at every step.
    random_state : int, default 0
        Seed; the same seed gives the same log.

    Returns
    -------
    polars.DataFrame
        Validated log with policy, prompt, score, step, n, cost, task; rows ordered by
        policy, step, topic, prompt.

    Examples
    --------
    >>> log = make_demo_log(n_policies=2, n_topics=2, n_prompts_per_topic=5, n_steps=2)
    >>> log.shape
    (40, 7)
    """
    n_policies = _check_count("n_policies", n_policies, 1)
    n_topics = _check_count("n_topics", n_topics, 1, len(_TOPIC_NAMES))
    n_prompts = _check_count("n_prompts_per_topic", n_prompts_per_topic, 1)
    n_steps = _check_count("n_steps", n_steps, 1)
    rng = np.random.default_rng(random_state)
    templates = _topic_templates()
    topics = list(_TOPIC_NAMES[:n_topics])
    level_offset = np.array([-1.6, 0.0, 1.6])
    prompts: list[tuple[str, str, float]] = []  # (topic, text, difficulty)
    for topic in topics:
        for text, level in _demo_prompts(rng, n_prompts, templates[topic]):
            prompts.append((topic, text, float(level_offset[level] + rng.normal(0.0, 0.6))))
    policies = [_POLICY_NAMES[i] if i < len(_POLICY_NAMES) else f"synthetic-{i}" for i in range(n_policies)]
    base = np.linspace(-0.6, 1.4, n_policies) if n_policies > 1 else np.array([0.4])
    topic_offset = rng.normal(0.0, 0.7, size=(n_policies, n_topics))
    gain = rng.uniform(0.1, 0.5, size=(n_policies, n_topics))
    price = 1e-4 * 3.0 ** np.arange(n_policies)
    t_index = {t: j for j, t in enumerate(topics)}
    p_topic = np.array([t_index[t] for t, _, _ in prompts])
    p_diff = np.array([d for _, _, d in prompts])
    cols: dict[str, list] = {k: [] for k in ("policy", "prompt", "score", "step", "n", "cost", "task")}
    texts = [t for _, t, _ in prompts]
    tasks = [t for t, _, _ in prompts]
    for i, pol in enumerate(policies):
        for s in range(n_steps):
            logit = base[i] + topic_offset[i, p_topic] + gain[i, p_topic] * s - p_diff
            prob = 1.0 / (1.0 + np.exp(-logit))
            succ = rng.binomial(_DEMO_N, prob)
            m = len(prompts)
            cols["policy"].extend([pol] * m)
            cols["prompt"].extend(texts)
            cols["score"].extend((succ / _DEMO_N).tolist())
            cols["step"].extend([s] * m)
            cols["n"].extend([_DEMO_N] * m)
            cols["cost"].extend([float(price[i])] * m)
            cols["task"].extend(tasks)
    return validate_log(pl.DataFrame(cols, strict=False))


_DEMO_README = """# data/ — SYNTHETIC demo outcome logs

**These files are synthetic.** No language model was run to make them. They exist so
that examples, docs and smoke tests have a small, realistic-looking outcome log.

| file | rows | what |
|---|---|---|
| demo_log.jsonl | {n_log} | history: {n_pol} policies x {n_hist} prompts x {n_steps} steps |
| demo_queries.jsonl | {n_q} | held-out prompts (never in the history), every policy and step, with their true scores |

Columns: policy, prompt, score (= successes / 8), step, n (= 8), cost (USD per call,
a fixed per-policy price), task (the topic).

## How it was generated
`v0lite.datasets.make_demo_log(n_policies={n_pol}, n_topics={n_topics},
n_prompts_per_topic={n_ppt}, n_steps={n_steps}, random_state={seed})`, then
{n_qpt} prompts per topic were held out at random (same seed) as queries:

- prompts: templated English questions in the topics {topics}, with
  easy / medium / hard templates and varied wording;
- difficulty of a prompt = its template level's offset (-1.6 / 0 / +1.6) + N(0, 0.6);
- skill of policy i on topic t at step s = base_i (rising with i) + offset_(i,t) ~ N(0, 0.7)
  + gain_(i,t) * s, gain ~ U(0.1, 0.5);
- successes ~ Binomial(8, sigmoid(skill - difficulty)); score = successes / 8.

Regenerate (byte-identical for the same seed):

    python -c "from v0lite.datasets import write_demo_data; write_demo_data()"
"""


def write_demo_data(
    out_dir: str | os.PathLike | None = None,
    *,
    n_policies: int = 4,
    n_topics: int = 6,
    n_prompts_per_topic: int = 32,
    n_query_prompts_per_topic: int = 8,
    n_steps: int = 3,
    random_state: int = 0,
) -> dict[str, Path]:
    """Write the SYNTHETIC demo files: ``demo_log.jsonl``, ``demo_queries.jsonl``, ``README.md``.

    The log comes from :func:`make_demo_log`; ``n_query_prompts_per_topic`` prompts of
    each topic are held out (chosen with ``random_state``) and written, for every policy
    and step, to ``demo_queries.jsonl`` with their true scores. The history holds the
    other prompts only, so the two files share no prompt.

    Parameters
    ----------
    out_dir : path, optional
        Destination folder; default ``<project root>/data``.
    n_policies, n_topics, n_prompts_per_topic, n_steps, random_state
        Passed to :func:`make_demo_log` (``n_prompts_per_topic`` counts history and
        query prompts together).
    n_query_prompts_per_topic : int, default 8
        Held-out prompts per topic, fewer than ``n_prompts_per_topic``.

    Returns
    -------
    dict
        ``{"log": path, "queries": path, "readme": path}``.

    Examples
    --------
    >>> import tempfile
    >>> paths = write_demo_data(tempfile.mkdtemp(), n_policies=2, n_topics=2, n_prompts_per_topic=4,
    ...                         n_query_prompts_per_topic=1, n_steps=1)
    >>> sorted(paths)
    ['log', 'queries', 'readme']
    """
    n_q = _check_count("n_query_prompts_per_topic", n_query_prompts_per_topic, 1)
    if not isinstance(n_prompts_per_topic, int) or n_q >= n_prompts_per_topic:
        raise DataError(
            f"n_query_prompts_per_topic={n_q} must be smaller than n_prompts_per_topic={n_prompts_per_topic!r}. "
            "Fix: hold out fewer prompts or generate more."
        )
    log = make_demo_log(n_policies, n_topics, n_prompts_per_topic, n_steps, random_state)
    rng = np.random.default_rng([random_state, 1])
    held: list[str] = []
    for task in _TOPIC_NAMES[:n_topics]:
        texts = log.filter(pl.col("task") == task)["prompt"].unique(maintain_order=True).to_list()
        held.extend(texts[j] for j in sorted(rng.choice(len(texts), n_q, replace=False)))
    is_q = log["prompt"].is_in(held)
    out = Path(out_dir) if out_dir is not None else _project_root() / "data"
    paths = {
        "log": write_log(log.filter(~is_q), out / "demo_log.jsonl"),
        "queries": write_log(log.filter(is_q), out / "demo_queries.jsonl"),
    }
    readme = _DEMO_README.format(
        n_log=int((~is_q).sum()), n_q=int(is_q.sum()), n_pol=n_policies, n_topics=n_topics,
        n_hist=n_topics * (n_prompts_per_topic - n_q), n_steps=n_steps, n_ppt=n_prompts_per_topic,
        n_qpt=n_q, seed=random_state, topics=", ".join(_TOPIC_NAMES[:n_topics]),
    )
    atomic_write_bytes(out / "README.md", readme.encode("utf-8"))
    paths["readme"] = out / "README.md"
    return paths


# --------------------------------------------------------------------------- registry

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
    format : str
        One of :data:`CONVERTERS` (``v0``, ``routerbench``, ``routerdc``, ``oneshot-rlvr``).
    src : path
        The source file or folder.
    out : path
        For single-frame formats the output file (its suffix picks .jsonl / .csv /
        .parquet; no suffix means .jsonl). For ``routerbench`` a folder that receives
        ``train.jsonl`` and ``test.jsonl``.
    **kwargs
        Passed to the converter (e.g. ``prompt_dict=`` for ``v0``).

    Returns
    -------
    pathlib.Path or dict
        The written file, or ``{"train": path, "test": path}`` for ``routerbench``.

    Examples
    --------
    >>> convert("nope", "in", "out")
    Traceback (most recent call last):
    ...
    v0lite.exceptions.DataError: unknown format 'nope'. Fix: use one of ['oneshot-rlvr', 'routerbench', 'routerdc', 'v0'].
    """
    if format not in CONVERTERS:
        raise DataError(f"unknown format {format!r}. Fix: use one of {sorted(CONVERTERS)}.")
    result = CONVERTERS[format](src, **kwargs)
    out = Path(out)
    if isinstance(result, dict):
        return {name: write_log(frame, out / f"{name}.jsonl") for name, frame in result.items()}
    if out.suffix == "":
        out = out.with_name(out.name + ".jsonl")
    return write_log(result, out)
