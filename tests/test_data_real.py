"""The converters on the real public data sets under ``V0LITE_DATA`` (skipped when absent)."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

import v0lite.data as D
from v0lite.exceptions import V0liteWarning

# --------------------------------------------------------------------------- real data (skipped when absent)


def _real(sub: str) -> Path:
    d = D.data_dir()
    if d is None or not (d / sub).is_dir():
        reason = f"{sub} not found: set V0LITE_DATA to the folder holding it"
        print(reason)
        pytest.skip(reason)
    return d / sub


def test_real_v0():
    d = _real("v0-dapomath")
    ctx = D.convert_v0(d / "context.jsonl")
    assert ctx.height == 3072
    assert ctx.group_by("policy", "step").len()["len"].to_list() == [512] * 6
    assert set(ctx["step"]) == {16, 64, 256}
    assert D.convert_v0(d / "train.jsonl").height == 192
    assert D.convert_v0(d / "validity.jsonl").height == 27
    assert ((ctx["score"] * 10).round(6) % 1 == 0).all()  # (score + 1) / 2 on a 0.2 grid -> tenths


def test_real_routerbench():
    d = _real("routerdc-routerbench")
    with pytest.warns(V0liteWarning) as caught:
        out = D.convert_routerbench(d)
    said = " ".join(str(w.message) for w in caught)
    assert re.search(r"skipped 154 blank outcome cells .* in 14 sample_ids", said), said
    # kept and counted: 2 mbpp prompts in both files, 6 ARC pairs whose doubled text straddles them
    assert "8 test sample_ids have a prompt that is also a train prompt (2 the same text, 6 as" in said
    # 3,178 prompts x 11 models, minus 154 blank cells (92 train + 62 test)
    assert out["train"].height == (1039 + 299 + 887) * 11 - 92
    assert out["test"].height == (445 + 128 + 380) * 11 - 62
    assert out["train"]["policy"].n_unique() == 11
    assert set(out["train"]["task"]) == {"arc-challenge", "mbpp", "winogrande"}


def test_real_routerdc():
    d = _real("routerdc-7model")
    df = D.convert_routerdc(d)
    assert df.height == 20_600 * 7
    assert df["prompt_id"].n_unique() == 20_600
    assert df["policy"].n_unique() == 7
    mcq = df.filter(pl.col("task").is_in(["mmlu", "cmmlu", "ceval"]) | pl.col("task").str.starts_with("arc_"))
    assert set(mcq["score"].unique()) <= {0.0, 1.0}
    gsm = df.filter(pl.col("task") == "gsm8k")
    assert gsm["score"].n_unique() == 11
    tr, te = D.split_by_prompt(df)
    assert not set(tr["prompt"]) & set(te["prompt"])


def test_real_oneshot():
    d = _real("oneshot-rlvr-dsr-sub")
    df = D.convert_oneshot_rlvr(d / "dsr_sub_acc_history.jsonl")
    assert df.height == 64_000  # 500 steps x 128 prompts
    assert df["prompt_id"].n_unique() == 1209
    visits = df.group_by("prompt_id").len()["len"]
    assert visits.min() == 44 and visits.max() == 57
    first = df.filter(pl.col("step") == 0)["score"].mean()
    assert abs(first - 0.335) < 1e-3
    assert re.search("GRPO", df["policy"][0])
