"""Converter of One-Shot-RLVR's per-prompt accuracy history (one evolving GRPO policy)."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from ..exceptions import DataError
from ._common import _existing, _field, _id_value, _log_of, _number, _read_jsonl, _text_value

__all__ = ["convert_oneshot_rlvr", "ONESHOT_POLICY"]

ONESHOT_POLICY = "Qwen2.5-Math-1.5B-GRPO (one-shot-rlvr dsr_sub)"


_ACC_HISTORY = "*acc_history*.jsonl"  # One-Shot-RLVR ships dsr_sub_acc_history.jsonl


def _acc_history_file(src: str | os.PathLike) -> Path:
    """The acc-history JSON-lines file: ``src`` itself, or the one inside the folder ``src``; another file
    of the dataset (``dsr_sub.parquet``, ``acc_step_500.json``) is refused naming the file to pass."""
    src = Path(src)
    if src.is_dir():
        found = sorted(src.glob(_ACC_HISTORY))
        if len(found) == 1:
            return found[0]
        what = f"several ({', '.join(f.name for f in found)})" if found else f"no {_ACC_HISTORY} file"
        raise DataError(
            f"{src}: a folder with {what}. Fix: pass the acc-history JSON-lines file itself "
            "(One-Shot-RLVR's dsr_sub_acc_history.jsonl)."
        )
    src = _existing(src, "One-Shot-RLVR acc-history jsonl")
    if src.suffix.lower() not in (".jsonl", ".ndjson"):
        near = sorted(src.parent.glob(_ACC_HISTORY))
        fix = f"pass {near[0]}" if len(near) == 1 else "pass One-Shot-RLVR's dsr_sub_acc_history.jsonl"
        raise DataError(
            f"{src}: is not the acc-history JSON-lines file (one line per prompt: index, prompt, data_source, "
            f"acc_history). Fix: {fix}, or its folder."
        )
    return src


def convert_oneshot_rlvr(src: str | os.PathLike) -> pl.DataFrame:
    """Convert One-Shot-RLVR's per-prompt accuracy history to a log.

    Each line ``{index, prompt, data_source, acc_history}`` gives one row per visit
    ``k``: ``policy`` = :data:`ONESHOT_POLICY`, ``step = k`` (0-based visit index,
    roughly the epoch; the exact global step was not recorded), ``n = 8`` rollouts,
    ``score = acc_history[k]``, ``prompt_id = str(index)``, ``task = data_source``.

    Parameters
    ----------
    src : path
        ``dsr_sub_acc_history.jsonl``, or the folder holding it (the one ``*acc_history*.jsonl`` file).

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
    src = _acc_history_file(src)
    cols: dict[str, list] = {k: [] for k in ("policy", "prompt", "score", "step", "n", "prompt_id", "task")}
    places: list[str] = []
    for line, obj in _read_jsonl(src):
        row = f"line {line}"
        index = _id_value(src, row, "index", _field(src, row, obj, "index"))
        prompt = _text_value(src, row, "prompt", _field(src, row, obj, "prompt"))
        source = _text_value(src, row, "data_source", _field(src, row, obj, "data_source"))
        hist = _field(src, row, obj, "acc_history")
        if not isinstance(hist, list) or not hist:
            raise DataError(
                f"{src}, {row}: 'acc_history' = {str(hist)[:60]} is not a non-empty list of accuracies. "
                "Fix: repair or remove that line (acc_history lists the prompt's accuracy at each visit, in [0, 1])."
            )
        for k, value in enumerate(hist):
            score = _number(src, row, f"acc_history[{k}]", value)
            if not 0.0 <= score <= 1.0:
                raise DataError(
                    f"{src}, {row}: acc_history[{k}] = {value!r} is not an accuracy in [0, 1] (the share of the "
                    "visit's 8 rollouts that were correct). Fix: repair or remove that line, or pass the "
                    "dsr_sub_acc_history.jsonl shipped with One-Shot-RLVR."
                )
            cols["score"].append(score)
            cols["step"].append(k)
        m = len(hist)
        cols["policy"].extend([ONESHOT_POLICY] * m)
        cols["prompt"].extend([prompt] * m)
        cols["n"].extend([8] * m)
        cols["prompt_id"].extend([index] * m)
        cols["task"].extend([source] * m)
        places.extend([f"{src}, {row}"] * m)
    return _log_of(cols, places, str(src))


# --------------------------------------------------------------------------- synthetic demo
