"""Allocation benchmark: ``alloc-sim`` replays of real RL logs, written to benchmarks/RESULTS.md.

Runs :func:`v0lite.rl.alloc_sim` (fit once on the earliest steps, then frozen; context
step < t at every later step t) on

* ``oneshot-rlvr-dsr-sub``: Qwen2.5-Math-1.5B GRPO run, 1,209 prompts x ~53 visits
  (``step`` = visit index), with each requested head;
* ``v0-dapomath``: 2 policies x GRPO checkpoints 16 -> 64 -> 256 (context.jsonl + train.jsonl),
  fitted on step 16, replayed at 64 (context: 16) and 256 (context: 16, 64).

Prints one table per run (the strategies side by side: v0lite, the literature's baselines
and the non-causal references, with the first-epoch scenario below) and replaces the
section between ``<!-- allocation:start -->`` and ``<!-- allocation:end -->`` of
benchmarks/RESULTS.md (the file is created if absent; other sections are left untouched).
``--quick``: knn only, oneshot cut to its first 20 steps; a smoke test that never writes RESULTS.md.

Usage::

    python benchmarks/allocation.py                       # gbdt (the replay's default head)
    python benchmarks/allocation.py --heads knn,gbdt,ensemble
    python benchmarks/allocation.py --quick               # smoke test; prints only (implies --no-write)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._results import parse_quick  # noqa: E402
from v0lite.data import convert_oneshot_rlvr, convert_v0  # noqa: E402
from v0lite.rl import alloc_sim, score_predictions  # noqa: E402


def machine() -> str:
    from benchmarks._results import machine_info

    return machine_info()


def load_oneshot(data: Path, quick: bool) -> pl.DataFrame:
    log = convert_oneshot_rlvr(data / "oneshot-rlvr-dsr-sub" / "dsr_sub_acc_history.jsonl")
    return log.filter(pl.col("step") < 20) if quick else log


def load_v0(data: Path) -> pl.DataFrame:
    d = data / "v0-dapomath"
    return pl.concat([convert_v0(d / "context.jsonl"), convert_v0(d / "train.jsonl")])


def _f(v, nd=3) -> str:
    return "-" if v is None or v != v else f"{v:.{nd}f}"


def _step_counts(log: pl.DataFrame) -> tuple[int, pl.DataFrame]:
    """(number of (policy, prompt) pairs, per step the pairs visited there, sorted by step)."""
    pairs = log.select("policy", "prompt").unique().height
    return pairs, log.group_by("step").agg(pl.struct("policy", "prompt").n_unique().alias("c")).sort("step")


def complete_max_step(log: pl.DataFrame):
    """Last step up to which every (policy, prompt) of the log has a visit at every step (None if all do)."""
    pairs, counts = _step_counts(log)
    full = counts["c"].to_numpy() == pairs
    if full.all():
        return None
    first_gap = int(full.argmin())
    return int(counts["step"][first_gap - 1]) if first_gap > 0 else None


def coverage_note(name: str, log: pl.DataFrame) -> str | None:
    """Where late steps of ``log`` hold only some (policy, prompt) pairs, say so with the log's own figures.

    None when every step holds every pair, or when the first step already misses some.
    """
    last = complete_max_step(log)
    if last is None:
        return None
    pairs, counts = _step_counts(log)
    late = counts.filter(pl.col("step") > last)
    return (
        f"{name}: every one of the {pairs:,} (policy, prompt) pairs has a visit at steps <= {last}; "
        f"from step {int(late['step'][0])} on fewer do, down to {int(late['c'][-1]):,} at step {int(late['step'][-1])}"
    )


def _row(v: dict, w: dict | None) -> list[str]:
    cells = [_f(v["keep_half_mixed_share"])]
    if w is not None:
        cells.append(_f(w["keep_half_mixed_share"]))
    cells.append(_f(v["rollouts_per_mixed_group"], 2))
    if w is not None:
        cells.append(_f(w["rollouts_per_mixed_group"], 2))
    cells += [
        _f(v["dynamic_sampling_ratio"], 2),
        _f(v["zero_advantage_avoided"], 2),
        _f(v["allocation_mixed_groups_per_1000_rollouts"], 1),
    ]
    return cells


def table(res: dict, win: dict | None = None, win_label: str = "") -> str:
    """Markdown table of ``res["strategies"]`` (the CLI's table), the first-epoch block, then the MSE table."""
    head = ["strategy", "keep-half mixed share"] + ([f"keep-half, {win_label}"] if win else [])
    head += ["rollouts per mixed group"] + ([f"rollouts per mixed group, {win_label}"] if win else [])
    head += [
        "x fewer than dynamic sampling",
        "zero-advantage groups avoided",
        "allocation: mixed groups / 1,000 rollouts",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    st = res["strategies"]
    causal = {k: v["rollouts_per_mixed_group"] for k, v in st.items() if v["causal"]}
    best = min(causal, key=causal.get)
    for key, v in st.items():
        name = f"**`{key}`** (best causal)" if key == best else f"`{key}`"
        w = win["strategies"][key] if win else None
        lines.append(f"| {name}: {v['label']} | " + " | ".join(_row(v, w)) + " |")
    fe = res.get("first_epoch")
    if fe:
        lines += [
            "",
            f"First epoch (step {fe['step']}, {fe['n_visits']:,} visits"
            + (f", scored as {fe['n_groups']:,} groups" if fe.get("n_groups", fe["n_visits"]) != fe["n_visits"] else "")
            + "): each prompt's first visit predicted by a value model fitted on the other prompts' first visits "
            f"only ({fe['folds']} prompt groups, cross-fitted).",
            "",
            "| strategy | keep-half mixed share | rollouts per mixed group | x fewer than dynamic sampling "
            "| zero-advantage groups avoided |",
            "|---|---|---|---|---|",
        ]
        for key, v in fe["strategies"].items():
            lines.append(
                f"| `{key}`: {v['label']} | {_f(v['keep_half_mixed_share'])} | "
                f"{_f(v['rollouts_per_mixed_group'], 2)} | {_f(v['dynamic_sampling_ratio'], 2)} | "
                f"{_f(v['zero_advantage_avoided'], 2)} |"
            )
    lines.append("")
    lines.append("| baseline MSE | group mean | V0 prior | fused |")
    lines.append("|---|---|---|---|")
    for g in (2, 4):
        lines.append(
            f"| group size {g} | "
            + " | ".join(_f(res.get(f"baseline_mse_g{g}_{k}"), 4) for k in ("mean", "prior", "fused"))
            + " |"
        )
    lines.append("")
    lines.append(
        f"Fit on {res['fit_steps']} step(s) (cut step {res['fit_cut_step']}, {res['n_visits_fit']:,} visits), "
        f"{res['n_steps_evaluated']} steps / {res['n_visits_evaluated']:,} visits replayed. "
        f"EB means: warm concentration {_f(res['concentration_warm_mean'], 1)}, "
        f"cold {_f(res['concentration_cold_mean'], 1)}, "
        f"posterior strength {_f(res['posterior_strength_mean'], 1)} / decay {_f(res['posterior_decay_mean'], 2)}. "
        f"Time: fit {res['seconds_fit']:.0f} s, add_history {res['seconds_add_history']:.0f} s, predict "
        f"{res['seconds_predict']:.0f} s ({res['predict_calls']} calls, {res['seconds_per_predict_call']:.2f} s each), "
        f"total {res['seconds_total']:.0f} s."
    )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    """The options; ``--quick`` (a smoke test) never writes RESULTS.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="knn only; oneshot cut to its first 20 steps; implies --no-write"
    )
    ap.add_argument("--heads", default=None, help="comma-separated heads for oneshot (default gbdt)")
    ap.add_argument("--v0-heads", default=None, help="heads for v0-dapomath (default: same as --heads)")
    ap.add_argument("--data", default=os.environ.get("V0LITE_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    ap.add_argument("--json", default=None, help="also write every result as JSON here")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch RESULTS.md")
    return parse_quick(ap, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    heads = (args.heads or ("knn" if args.quick else "gbdt")).split(",")
    v0_heads = (args.v0_heads or ",".join(heads)).split(",")
    data = Path(args.data)
    runs = [("oneshot-rlvr-dsr-sub", h, lambda: load_oneshot(data, args.quick)) for h in heads]
    runs += [("v0-dapomath", h, lambda: load_v0(data)) for h in v0_heads]
    started = _dt.datetime.now().astimezone()
    results, parts, notes = {}, [], []
    for name, head, loader in runs:
        t0 = time.perf_counter()
        log = loader()
        res = alloc_sim(log, head=head, return_predictions=True)
        res["wall_seconds"] = time.perf_counter() - t0
        pred = res.pop("predictions")
        results[f"{name}/{head}"] = res
        last = complete_max_step(log)
        win, label = None, ""
        note = coverage_note(name, log)
        if note and note not in notes:
            notes.append(note)
        if last is not None:
            # the same replay's predictions (context < t, so unaffected by later rows), rescored on
            # the steps where every prompt has a visit
            win = score_predictions(pred.filter(pl.col("step") <= last))
            label = f"steps <= {last} (every prompt visited)"
            results[f"{name}/{head}/steps<={last}"] = win
        block = f"### {name}, head `{head}`\n\n{table(res, win, label)}"
        print(block + "\n", flush=True)
        parts.append(block)
    from benchmarks._results import command_line

    cmd = command_line("allocation.py", argv)
    body = "\n\n".join(
        [
            f"Command: `{cmd.strip()}`. Started {started:%Y-%m-%d %H:%M %Z}. {machine()}.",
            "Protocol (v0lite/rl/_replay.py): the head is fitted once on the earliest 10% of the distinct steps, then "
            "frozen; at every later step t it is asked about step t's visits with context = steps < t only "
            "(`add_history` after predicting). Keep-half: keep the half of step t's prompts with the highest "
            "(expected) P(mixed | 8); share of kept prompts whose recorded score is in (0, 1), averaged over steps. "
            "Allocation: budget 8 x prompts split over {0} U [2, 16] rollouts by the hull allocator; scored with "
            "the recorded score as the true p, pooled over steps. Beta beliefs: concentration / strength / decay "
            "fitted by empirical Bayes (beta-binomial likelihood) on the evaluated steps before t (last 10k visits); "
            "4 pseudo-rollouts at the first evaluated step. "
            + (
                "Where late steps hold only some prompts (oneshot: `step` is a per-prompt visit count; "
                + "; ".join(notes)
                + "), the same replay is also scored on the steps where every prompt has a visit. "
                if notes
                else ""
            )
            + "`ceiling` is a reference "
            "that no causal strategy has: it knows each prompt's mean success rate over all its other visits "
            "(future ones too); only the binomial noise of the visit itself separates it from the oracle. "
            "Rollouts per mixed group (v0lite/rl/_baselines.py): rollouts spent / groups that came back mixed, "
            "pooled over steps, at a fixed selection budget: a selecting strategy keeps half of each step's "
            "candidates with 8 rollouts each; dynamic sampling (DAPO) and uniform roll out every candidate (dynamic "
            "sampling then drops the unmixed groups, uniform trains on them); "
            "`greso_rule` rolls out what its skip rule "
            "keeps. 'x fewer than dynamic sampling' is dynamic sampling's rollouts per mixed group "
            "over the strategy's. "
            "GRESO-style and MoPPS-style are our readings of the papers (module docstring), not their code. Every "
            "strategy sees every earlier visit's outcome (the log holds them all).",
            *parts,
        ]
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    if not args.no_write:
        from benchmarks._results import write_section

        write_section("allocation", "Allocation (alloc-sim replay)", body, Path(args.results))
        print(f"wrote section of {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
