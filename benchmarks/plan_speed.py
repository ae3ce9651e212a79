"""How long a trainer waits for v0lite's plan: cold (prompts never embedded) and warm (pre-embedded).

Run::

    PYTHONPATH=. .venv/bin/python benchmarks/plan_speed.py            # ~4-6 min on 2 cores
    PYTHONPATH=. .venv/bin/python benchmarks/plan_speed.py --no-write # print only

The value model is a ``V0Regressor`` fitted on the V0 sample's histories
(``v0-dapomath/context.jsonl``: DAPO-Math prompts, 2 policies x steps 16/64/256; ``--head``,
default the default head); the candidates are prompts it has never seen: the DeepScaleR math
prompts of ``oneshot-rlvr-dsr-sub`` (1,207). Each cold measurement uses its own empty embedding
cache; the encoder (all-MiniLM-L6-v2, CPU) is loaded once beforehand and its load time is shown
apart.

1. ``RolloutPlanner.plan()`` on 512 and 1,024 new prompts: cold, then warm (after
   ``RolloutPlanner.warm`` on the same prompts; its own time is shown, it is off the critical path).
2. The first-batch wait through verl 0.9.1's loader (``StatefulDataLoader`` with verl's
   ``collate_fn``, ``data.train_batch_size=512``, 0 workers): verl's ``RLHFDataset`` with its
   ``RandomSampler`` (the peer: no planning), and ``PlannedRLHFDataset`` (oversample 2: 1,024
   candidates) without and with ``data.v0lite.warm``; building the dataset (warming included) is
   timed apart from ``next(iter(loader))``.

Rewrites the ``## Plan speed (RL adapters)`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine_info, write_section  # noqa: E402

POLICY = "Qwen3-4B-Instruct"
STEP = 256  # the policy's latest checkpoint in the history


def _data_dir() -> Path:
    from v0lite.data import data_dir

    return Path(data_dir())


def _value_model(head: str, folder: Path):
    from v0lite import V0Regressor
    from v0lite.data import convert_v0

    ctx = convert_v0(str(_data_dir() / "v0-dapomath" / "context.jsonl"))
    t0 = time.perf_counter()
    V0Regressor(head=head).fit(ctx).save(folder)
    return time.perf_counter() - t0, ctx


def _new_prompts(known: set) -> list[str]:
    from v0lite.data import convert_oneshot_rlvr

    log = convert_oneshot_rlvr(str(_data_dir() / "oneshot-rlvr-dsr-sub" / "dsr_sub_acc_history.jsonl"))
    return [q for q in log["prompt"].unique(maintain_order=True).to_list() if q not in known]


def _load(folder: Path, cache: Path):
    from v0lite import V0Regressor

    model = V0Regressor.load(folder, device="cpu")
    model.set_params(cache_dir=str(cache))  # before any embedding: this model's cache is that folder
    return model


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def bench_plan(folder: Path, prompts: list[str], sizes=(512, 1024)) -> list[tuple]:
    from v0lite import RolloutPlanner

    rows = []
    for n in sizes:
        qs = prompts[:n]
        with tempfile.TemporaryDirectory() as cache:
            planner = RolloutPlanner(_load(folder, Path(cache)), policy=POLICY)
            cold, _ = _timed(planner.plan, qs, STEP)
        with tempfile.TemporaryDirectory() as cache:
            planner = RolloutPlanner(_load(folder, Path(cache)), policy=POLICY)
            warm_cost, _ = _timed(planner.warm, qs)
            warm, _ = _timed(planner.plan, qs, STEP)
        rows.append((n, cold, warm_cost, warm))
    return rows


def _verl_files(root: Path, prompts: list[str]):
    import pandas as pd
    from omegaconf import OmegaConf
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    pd.DataFrame(
        {
            "data_source": ["dsr"] * len(prompts),
            "prompt": [[{"role": "user", "content": q}] for q in prompts],
            "reward_model": [{"style": "rule", "ground_truth": "1"}] * len(prompts),
            "extra_info": [{"index": i} for i in range(len(prompts))],
        }
    ).to_parquet(root / "train.parquet")
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(prompts + ["user"], trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    fast.chat_template = "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
    cfg = OmegaConf.create(
        {
            "train_files": str(root / "train.parquet"),
            "val_files": str(root / "val.parquet"),
            "prompt_key": "prompt",
            "max_prompt_length": 4096,
            "cache_dir": str(root / "cache"),
            "filter_overlong_prompts": False,
            "truncation": "left",
            "train_batch_size": 512,
            "seed": 0,
            "shuffle": True,
            "dataloader_num_workers": 0,
        }
    )
    return str(root / "train.parquet"), fast, cfg


def bench_loader(folder: Path, prompts: list[str]) -> list[tuple]:
    from omegaconf import OmegaConf
    from torchdata.stateful_dataloader import StatefulDataLoader
    from verl.trainer.ppo.utils import create_rl_sampler
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    from v0lite.rl.integrations import PlannedRLHFDataset

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path, tok, cfg = _verl_files(Path(tmp), prompts)

        def first_batch(ds, sampler):
            loader = StatefulDataLoader(
                ds, batch_size=512, num_workers=0, drop_last=True, collate_fn=collate_fn, sampler=sampler
            )
            return _timed(next, iter(loader))[0]

        build, ds = _timed(RLHFDataset, path, tok, cfg)
        wait = first_batch(ds, create_rl_sampler(cfg, ds))
        rows.append(("verl RLHFDataset + RandomSampler (no planning)", build, wait))
        for warm in (False, True):
            with tempfile.TemporaryDirectory() as cache:
                # the dataset loads the model itself; point the default cache at an empty folder
                old = os.environ.get("V0LITE_CACHE")
                os.environ["V0LITE_CACHE"] = cache
                try:
                    planned = OmegaConf.merge(
                        cfg,
                        {
                            "shuffle": False,
                            "v0lite": {"model": str(folder), "policy": POLICY, "step_offset": STEP, "warm": warm},
                        },
                    )
                    build, ds = _timed(PlannedRLHFDataset, path, tok, planned)
                    wait = first_batch(ds, create_rl_sampler(planned, ds))
                finally:
                    if old is None:
                        os.environ.pop("V0LITE_CACHE", None)
                    else:
                        os.environ["V0LITE_CACHE"] = old
            label = "PlannedRLHFDataset, " + ("data.v0lite.warm=true" if warm else "warm=false (cold cache)")
            rows.append((label, build, wait))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--head", default="auto")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    from v0lite.embed import Embedder

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "v0_model"
        fit_s, ctx = _value_model(args.head, folder)
        prompts = _new_prompts(set(ctx["prompt"].to_list()))
        enc_s, _ = _timed(lambda: Embedder(device="cpu", cache_dir=False).encode(["load the encoder"]))
        plan_rows = bench_plan(folder, prompts)
        loader_rows = bench_loader(folder, prompts)
    lines = [
        f"Value model: `V0Regressor(head={args.head!r})` fitted on the V0 sample's histories "
        f"({ctx.height:,} rows, fit {fit_s:.0f} s, not timed below); candidates: {len(prompts):,} DeepScaleR prompts "
        f"it has never seen; policy {POLICY}, step {STEP}. Encoder all-MiniLM-L6-v2 on CPU, loaded once "
        f"beforehand ({enc_s:.1f} s, not in the figures).",
        "",
        "| candidates | plan(), cold cache (s) | warm(prompts), ahead (s) | plan(), pre-embedded (s) | target |",
        "|---|---|---|---|---|",
    ]
    for n, cold, warm_cost, warm in plan_rows:
        target = "" if n != 1024 else ("met (< 1 s)" if warm < 1.0 else "NOT met (>= 1 s)")
        lines.append(f"| {n:,} | {cold:.2f} | {warm_cost:.2f} | {warm:.3f} | {target} |")
    lines += [
        "",
        "First batch through verl 0.9.1's loader (`data.train_batch_size=512`, 0 workers; planned: 1,024 candidates):",
        "",
        "| train dataset | build, warming included (s) | first batch wait (s) |",
        "|---|---|---|",
    ]
    lines += [f"| {label} | {build:.2f} | {wait:.2f} |" for label, build, wait in loader_rows]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        cmd = "PYTHONPATH=. .venv/bin/python benchmarks/plan_speed.py" + (
            f" --head {args.head}" if args.head != "auto" else ""
        )
        write_section(
            "plan-speed",
            "Plan speed (RL adapters)",
            f"Command: `{cmd}`  \n{machine_info()}; total {time.perf_counter() - t_start:.0f} s.\n\n{body}",
        )


if __name__ == "__main__":
    main()
