"""Converter of the V0 paper sample (jsonl rows + ``prompt_dict.json``)."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from ..exceptions import DataError
from ._common import _existing, _field, _id_value, _int_value, _log_of, _number, _read_json, _read_jsonl, _text_value

__all__ = ["convert_v0"]


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
        A missing or null field, a score outside [-1, 1], a ``model`` or ``dataset`` that is not
        text, an ``id`` that is not a string or integer, a ``step`` that is not an integer, or a
        prompt id absent from the dictionary (naming the file, the line and the value).

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
        pd_path = Path(prompt_dict) if prompt_dict is not None else src.parent / "prompt_dict.json"
        if not pd_path.is_file():
            raise DataError(
                f"{pd_path}: prompt_dict.json file not found (V0 rows name their prompts by id). "
                "Fix: put V0's prompt_dict.json beside the jsonl file, or pass its path (prompt_dict=<path>)."
            )
        prompts, pd_name = _read_json(pd_path), str(pd_path)
        if not isinstance(prompts, dict):
            raise DataError(
                f"{pd_path}: expected a JSON object mapping '<dataset>_<id>' to prompt text. "
                "Fix: pass V0's prompt_dict.json."
            )
    cols: dict[str, list] = {k: [] for k in ("policy", "prompt", "score", "step", "n", "prompt_id", "task")}
    places: list[str] = []
    for line, obj in _read_jsonl(src):
        row = f"line {line}"
        pid = _id_value(src, row, "id", _field(src, row, obj, "id"))
        raw = _number(src, row, "score", _field(src, row, obj, "score"))
        if not -1.0 <= raw <= 1.0:
            raise DataError(
                f"{src}, {row}: score {raw!r} is outside [-1, 1]. "
                "Fix: V0 scores are means of ±1 rewards; pass a V0 sample file."
            )
        dataset = _text_value(src, row, "dataset", _field(src, row, obj, "dataset"))
        policy = _text_value(src, row, "model", _field(src, row, obj, "model"))
        step = _int_value(src, row, "step", _field(src, row, obj, "step"))
        key = f"{dataset}_{pid}"
        text = prompts.get(key)
        if not isinstance(text, str):
            got = "is not in" if key not in prompts else f"maps to {type(text).__name__}, not text, in"
            raise DataError(
                f"{src}, {row}: prompt id {obj['id']!r} (key {key!r}) {got} {pd_name}. "
                "Fix: pass the prompt_dict.json that belongs to this file (prompt_dict=<path>)."
            )
        if not text.strip():
            raise DataError(
                f"{src}, {row}: prompt id {obj['id']!r} (key {key!r}) has an empty prompt in {pd_name}. "
                "Fix: give that key its prompt text in the prompt dictionary, or remove the row."
            )
        cols["policy"].append(policy)
        cols["prompt"].append(text)
        cols["score"].append(round((raw + 1.0) / 2.0, 12))
        cols["step"].append(step)
        cols["n"].append(10)
        cols["prompt_id"].append(pid)
        cols["task"].append(dataset)
        places.append(f"{src}, {row}")
    return _log_of(cols, places, str(src))
