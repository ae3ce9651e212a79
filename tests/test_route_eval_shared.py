"""``route-eval TRAIN TEST`` warns when TEST prompts are TRAIN prompts too (commands/_route_report.py
``warn_shared_prompts``): its figures on them read outcomes the routers were fit on."""

from __future__ import annotations

import polars as pl
from conftest import make_log

from v0lite.cli import main
from v0lite.log import write_log


def test_route_eval_warns_when_test_prompts_are_in_train(tmp_path, capsys, fake_minilm):
    log = make_log(3, 40, seed=3).with_columns(cost=pl.lit(0.001))
    odd = pl.col("prompt").str.extract(r"case (\d+)").cast(pl.Int64) % 2 == 1
    train, test = log.filter(~odd), log.filter(odd)
    shared = test["prompt"].unique(maintain_order=True)[:2]
    leaky = pl.concat([train, test.filter(pl.col("prompt").is_in(shared.implode()))])
    te = write_log(test, tmp_path / "test.jsonl")
    base = ["route-eval", "--head", "prior", "--no-baselines", "--quiet"]
    for tr, said in (
        (write_log(leaky, tmp_path / "leaky.jsonl"), True),
        (write_log(train, tmp_path / "t.jsonl"), False),
    ):
        assert main([base[0], str(tr), str(te), *base[1:]]) == 0
        err = capsys.readouterr().err
        warned = f"TEST {te}: 2 of its 20 prompts are also in TRAIN {tr}" in err
        assert warned == said, err
        assert ("not held out" in err and "v0lite data split" in err) == said
