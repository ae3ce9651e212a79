"""CLI: ``v0lite alloc-sim`` (replay a logged RL run; score prompt selection and allocation)."""

from __future__ import annotations

import math

from .._io import atomic_write_json, to_jsonable

__all__ = ["register"]

_STRATEGIES = ("warm", "cold", "random", "last_visit", "mean_last3", "oracle", "warm_point", "cold_point",
               "posterior", "history", "ceiling")
_TABLE_GROUPS = (
    ("keep the half with highest (expected) P(mixed | n): share of kept prompts that are mixed",
     tuple(f"keep_half_mixed_share_{s}" for s in _STRATEGIES)),
    ("budgeted allocation: expected mixed groups per 1000 rollouts (no suffix: warm)", (
        "effective_groups_per_1000_rollouts", "effective_groups_per_1000_rollouts_uniform",
        *(f"effective_groups_per_1000_rollouts_{s}" for s in _STRATEGIES if s not in ("warm", "random")),
    )),
    ("baseline MSE vs the recorded success rate", None),
    ("empirical-Bayes belief parameters (means over steps)", (
        "prior_strength_mean", "concentration_warm_mean", "concentration_cold_mean", "posterior_strength_mean",
        "posterior_decay_mean", "history_strength_mean", "history_decay_mean",
    )),
    ("run", (
        "n_steps_evaluated", "fit_steps", "fit_cut_step", "n_visits_fit", "n_visits_evaluated",
        "seconds_fit", "seconds_add_history", "seconds_predict", "predict_calls", "seconds_per_predict_call",
        "seconds_score", "seconds_total",
    )),
)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _table(result: dict) -> str:
    mse_keys = tuple(sorted(k for k in result if k.startswith("baseline_mse_")))
    width = max(len(k) for k in result)
    lines = []
    for title, keys in _TABLE_GROUPS:
        keys = mse_keys if keys is None else keys
        lines.append(f"# {title}")
        lines.extend(f"{k:<{width}}  {_fmt(result[k])}" for k in keys if k in result)
    return "\n".join(lines)


def _alloc_sim(args) -> int:
    from ..log import read_log
    from ..rl import alloc_sim

    result = alloc_sim(
        read_log(args.history), head=args.head, fit_fraction=args.fit_fraction, max_step=args.max_step,
        rollouts_per_prompt=args.rollouts_per_prompt, random_state=args.seed,
        show_progress_bar=args.progress,
    )
    print(_table(result))
    if args.json:
        atomic_write_json(args.json, to_jsonable(result, default=lambda o: o))
        print(f"wrote {args.json}")
    return 0


def register(subparsers) -> None:
    """Add ``alloc-sim`` to an argparse subparsers object (it sets ``func``)."""
    p = subparsers.add_parser(
        "alloc-sim", help="replay a logged RL run: prompt selection and rollout allocation, no look-ahead",
        description="Fit the value model on the earliest steps of HISTORY, then replay every later step "
                    "(context = earlier steps only) and score selection and allocation strategies.")
    p.add_argument("history", metavar="HISTORY", help="outcome log with 'step' and 'n' (.jsonl/.csv/.parquet)")
    p.add_argument("--json", metavar="FILE", help="write the full result as JSON (NaN as null)")
    p.add_argument("--head", default=None, help="V0Regressor head (default: gbdt, see v0lite.rl.DEFAULT_HEAD)")
    p.add_argument("--fit-fraction", type=float, default=0.1, metavar="F",
                   help="share of the earliest distinct steps the value model is fitted on (default 0.1)")
    p.add_argument("--rollouts-per-prompt", type=int, default=8, metavar="N",
                   help="group size of P(mixed | n) and the per-prompt budget (default 8)")
    p.add_argument("--max-step", type=int, default=None, metavar="T",
                   help="replay only rows with step <= T (default: all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=_alloc_sim, inputs=("history",))
