"""Converter of RouterDC's 7-model JSON files."""

from __future__ import annotations

import os
import re

import polars as pl

from ..exceptions import DataError
from ..log import validate_log
from ._common import _existing, _field, _number, _read_json

__all__ = ["convert_routerdc"]

_MCQ_TASKS = ("mmlu", "cmmlu", "ceval")
_SPLIT_SUFFIX = re.compile(r"[-_](train|test)$")


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
