"""Converter of the V0 paper sample (jsonl rows + ``prompt_dict.json``)."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from ..exceptions import DataError
from ..log import validate_log
from ._common import _existing, _field, _number, _read_json, _read_jsonl

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
        pd_path = Path(prompt_dict) if prompt_dict is not None else src.parent / "prompt_dict.json"
        if not pd_path.is_file():
            raise DataError(
                f"{pd_path}: prompt_dict.json file not found (V0 rows name their prompts by id). "
                "Fix: put V0's prompt_dict.json beside the jsonl file, or pass its path (prompt_dict=<path>)."
            )
        prompts, pd_name = _read_json(pd_path), str(pd_path)
        if not isinstance(prompts, dict):
            raise DataError(f"{pd_path}: expected a JSON object mapping '<dataset>_<id>' to prompt text. Fix: pass V0's prompt_dict.json.")
    cols: dict[str, list] = {k: [] for k in ("policy", "prompt", "score", "step", "n", "prompt_id", "task")}
    for line, obj in _read_jsonl(src):
        row = f"line {line}"
        pid = _field(src, row, obj, "id")
        raw = _number(src, row, "score", _field(src, row, obj, "score"))
        if not -1.0 <= raw <= 1.0:
            raise DataError(
                f"{src}, {row}: score {raw!r} is outside [-1, 1]. "
                "Fix: V0 scores are means of ±1 rewards; pass a V0 sample file."
            )
        dataset = str(_field(src, row, obj, "dataset"))
        key = f"{dataset}_{pid}"
        text = prompts.get(key)
        if not isinstance(text, str):
            raise DataError(
                f"{src}, {row}: prompt id {pid!r} (key {key!r}) is not in {pd_name}. "
                "Fix: pass the prompt_dict.json that belongs to this file (prompt_dict=<path>)."
            )
        cols["policy"].append(str(_field(src, row, obj, "model")))
        cols["prompt"].append(text)
        cols["score"].append(round((raw + 1.0) / 2.0, 12))
        cols["step"].append(_field(src, row, obj, "step"))
        cols["n"].append(10)
        cols["prompt_id"].append(str(pid))
        cols["task"].append(dataset)
    return validate_log(pl.DataFrame(cols, strict=False))
