"""Converter of One-Shot-RLVR's per-prompt accuracy history (one evolving GRPO policy)."""

from __future__ import annotations

import os

import polars as pl

from ..exceptions import DataError
from ..log import validate_log
from ._common import _existing, _field, _number, _read_jsonl

__all__ = ["convert_oneshot_rlvr", "ONESHOT_POLICY"]

ONESHOT_POLICY = "Qwen2.5-Math-1.5B-GRPO (one-shot-rlvr dsr_sub)"


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
