"""How long a trainer waits for v0lite's plan: cold (prompts never embedded) and warm (pre-embedded).

Run::

    PYTHONPATH=. .venv/bin/python benchmarks/plan_speed.py            # ~8-12 min on 2 shared cores
    PYTHONPATH=. .venv/bin/python benchmarks/plan_speed.py --no-write # print only
    PYTHONPATH=. .venv/bin/python benchmarks/plan_speed.py --quick    # smoke test (implies --no-write)

``--quick``: head knn only, 128 and 256 candidates, no verl loader; it never writes RESULTS.md (the
< 1 s target is judged at 1,024 candidates only, so a quick run gives no verdict).

The value models are ``V0Regressor`` s fitted on the V0 sample's histories
(``v0-dapomath/context.jsonl``: DAPO-Math prompts, 2 policies x steps 16/64/256; ``--heads``,
default the default head "auto" and "knn"); the candidates are prompts it has never seen: the DeepScaleR math
prompts of ``oneshot-rlvr-dsr-sub`` (1,207). Each cold measurement uses its own empty embedding
cache; the encoder (all-MiniLM-L6-v2, CPU) is loaded once beforehand and its load time is shown
apart.

1. ``RolloutPlanner.plan()`` on 512 and 1,024 new prompts: cold (the plan embeds them), then
   pre-embedded (the cache that run filled, read into memory by ``RolloutPlanner.warm``, untimed;
   median of 3, each repeat shown; the target verdict holds only if every repeat is under 1 s), for
   every head; for the first head also with one torch and BLAS thread (on shared cores, OpenMP
   threads wait on each other). What warming costs is the build time of the warmed verl
   dataset below (1,207 prompts), off the critical path.
2. The first-batch wait through verl's loader (its installed version is written; skipped when verl
   is absent): ``StatefulDataLoader`` with verl's
   ``collate_fn``, ``data.train_batch_size=512``, 0 workers; verl's ``RLHFDataset`` with its
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
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import command_with_env, machine_info, parse_quick, write_section  # noqa: E402

POLICY = "Qwen3-4B-Instruct"
STEP = 256  # the policy's latest checkpoint in the history
SIZES, QUICK_SIZES = (512, 1024), (128, 256)
TARGET_N, TARGET_S = 1024, 1.0  # the target: plan() on 1,024 pre-embedded candidates in < 1 s


def verl_version() -> str | None:
    """The installed verl's version (imported lazily), None when verl is absent."""
    try:
        import verl
    except ImportError:
        return None
    return str(getattr(verl, "__version__", "unknown version"))


def target(n: int, times) -> str:
    """The < 1 s verdict at 1,024 candidates, judged on the worst repeat: one fast median is not enough."""
    if n != TARGET_N:
        return ""
    worst = max(times)
    return f"{'met' if worst < TARGET_S else 'NOT met'} (worst of {len(times)}: {worst:.3f} s)"


def _repeats(times) -> str:
    """Median and every repeat, e.g. ``0.984 (0.95, 0.98, 1.10)``."""
    import numpy as np

    return f"{float(np.median(times)):.3f} ({', '.join(f'{t:.2f}' for t in times)})"


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


def _warm_plan(folder: Path, cache: Path, qs: list[str], repeats: int = 3, threads: int | None = None) -> list:
    """Times of ``repeats`` plan() calls on prompts already in ``cache`` (read into memory first, untimed).

    ``threads``: run plan() with that many torch and BLAS/OpenMP threads (default: the process's).
    """
    import torch
    from threadpoolctl import threadpool_limits

    from v0lite import RolloutPlanner

    planner = RolloutPlanner(_load(folder, cache), policy=POLICY).warm(qs)
    if threads is None:
        return [_timed(planner.plan, qs, STEP)[0] for _ in range(repeats)]
    before = torch.get_num_threads()
    try:
        with threadpool_limits(threads):
            torch.set_num_threads(threads)
            return [_timed(planner.plan, qs, STEP)[0] for _ in range(repeats)]
    finally:
        torch.set_num_threads(before)


def bench_plan(folder: Path, prompts: list[str], cache_root: Path, sizes=SIZES) -> list[tuple]:
    """Per size, in a fresh cache: plan() cold (the prompts get embedded), then plan() on the filled cache."""
    from v0lite import RolloutPlanner

    rows = []
    for n in sizes:
        qs, cache = prompts[:n], cache_root / f"cache_{n}"
        planner = RolloutPlanner(_load(folder, cache), policy=POLICY)
        cold, _ = _timed(planner.plan, qs, STEP)
        rows.append((n, cold, _warm_plan(folder, cache, qs), _warm_plan(folder, cache, qs, threads=1)))
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


def parse_args(argv=None) -> argparse.Namespace:
    """The options; ``--quick`` (a smoke test) never writes RESULTS.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", default="auto,knn", help="value-model heads; the first gets the cold runs too")
    ap.add_argument("--quick", action="store_true", help="smoke test: knn, 128/256 candidates, no verl loader")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    return parse_quick(ap, argv, {"heads": "knn"})


def main(argv=None) -> None:
    args = parse_args(argv)
    heads = args.heads.split(",")
    sizes = QUICK_SIZES if args.quick else SIZES
    verl = None if args.quick else verl_version()
    t_start = time.perf_counter()
    from v0lite.embed import Embedder
    from v0lite.exceptions import V0liteWarning

    # the benchmark times plan() alone and feeds no outcomes back on purpose: the planner's
    # "no outcomes came back" warning is about training runs, not this one
    warnings.filterwarnings("ignore", message=".*no outcome came back.*", category=V0liteWarning)

    with tempfile.TemporaryDirectory() as tmp:
        folders, fits = {}, {}
        for head in heads:
            folders[head] = Path(tmp) / f"v0_{head}"
            fits[head], ctx = _value_model(head, folders[head])
        prompts = _new_prompts(set(ctx["prompt"].to_list()))
        enc_s, _ = _timed(lambda: Embedder(device="cpu", cache_dir=False).encode(["load the encoder"]))
        plan_rows = bench_plan(folders[heads[0]], prompts, Path(tmp), sizes)
        other_rows = {
            h: [(n, _warm_plan(folders[h], Path(tmp) / f"cache_{n}", prompts[:n])) for n in sizes] for h in heads[1:]
        }
        loader_rows = bench_loader(folders[heads[0]], prompts) if verl else []
    fit_text = ", ".join(f"{h} {fits[h]:.0f} s" for h in heads)
    lines = [
        f"Value models: `V0Regressor(head=...)` fitted on the V0 sample's histories ({ctx.height:,} rows; fit: "
        f"{fit_text}; not timed below); candidates: {len(prompts):,} DeepScaleR prompts they have never seen; "
        f"policy {POLICY}, step {STEP}. Encoder all-MiniLM-L6-v2 on CPU, loaded once beforehand ({enc_s:.1f} s, "
        "not in the figures). Pre-embedded plan(): median of 3 (each repeat in brackets), with the process's "
        "threads (torch's default: all cores) and, last column, with `torch.set_num_threads(1)` and one "
        "BLAS/OpenMP thread. The target verdict is judged on the worst of the repeats.",
        "",
        "| head | candidates | plan(), cold cache (s) | plan(), pre-embedded (s) | target < 1 s at 1,024 "
        "| pre-embedded, 1 thread (s) |",
        "|---|---|---|---|---|---|",
    ]
    for n, cold, warm, warm1 in plan_rows:
        lines.append(f"| {heads[0]} | {n:,} | {cold:.2f} | {_repeats(warm)} | {target(n, warm)} | {_repeats(warm1)} |")
    for h, rows in other_rows.items():
        lines += [f"| {h} | {n:,} | | {_repeats(t)} | {target(n, t)} | |" for n, t in rows]
    if TARGET_N not in sizes:
        lines += ["", f"Quick run: no size of {TARGET_N:,} candidates, so no target verdict."]
    if verl:
        lines += [
            "",
            f"First batch through verl {verl}'s loader (head {heads[0]}; `data.train_batch_size=512`, 0 workers; "
            "planned: 1,024 candidates):",
            "",
            "| train dataset | build, warming included (s) | first batch wait (s) |",
            "|---|---|---|",
        ]
        lines += [f"| {label} | {build:.2f} | {wait:.2f} |" for label, build, wait in loader_rows]
    else:
        lines += ["", "verl loader not measured: " + ("quick run." if args.quick else "verl absent.")]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        cmd = command_with_env("plan_speed.py", argv, ("PYTHONPATH", "V0LITE_DATA"))
        write_section(
            "plan-speed",
            "Plan speed (RL adapters)",
            f"Command: `{cmd}`  \n{machine_info()}; total {time.perf_counter() - t_start:.0f} s.\n\n{body}",
        )


if __name__ == "__main__":
    main()
