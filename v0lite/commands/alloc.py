"""CLI: ``v0lite alloc-sim`` (replay a logged RL run; score prompt selection and allocation)."""

from __future__ import annotations

import math

from ._common import (
    add_force_flag,
    add_progress_flags,
    add_seed_flag,
    check_input,
    check_output,
    encoder_flag,
    head_choices,
    int_at_least,
    note,
    number_in,
    progress,
    read_input,
    write_json,
)

__all__ = ["register", "strategies_table"]

_COLUMNS = (
    ("keep-half mixed", "keep_half_mixed_share", 3),
    ("rollouts/mixed", "rollouts_per_mixed_group", 1),
    ("x vs DAPO", "dynamic_sampling_ratio", 2),
    ("zero-adv avoided", "zero_advantage_avoided", 2),
    ("mixed/1k sel.", "mixed_groups_per_1000_rollouts", 1),
    ("mixed/1k alloc.", "allocation_mixed_groups_per_1000_rollouts", 1),
)


def _cell(v, nd: int) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{nd}f}"


def strategies_table(result: dict) -> str:
    """The compact side-by-side table of ``result["strategies"]`` (and of the first-epoch scenario).

    Columns: keep-half mixed share; rollouts per mixed group (rollouts spent / groups that came
    back mixed, half of each step's candidates kept, dynamic sampling and uniform roll out all);
    how many times fewer than DAPO dynamic sampling; share of zero-advantage groups avoided;
    mixed groups per 1,000 rollouts of that selection; and of the budgeted allocation
    (expected, where the strategy allocates). ``*`` marks the causal strategy with the fewest
    rollouts per mixed group; NOT CAUSAL rows are references no strategy can reach; a legend line
    under the tables says what ``*`` and ``-`` mean.
    """
    blocks = [("all evaluated steps", result.get("strategies") or {})]
    fe = result.get("first_epoch")
    if fe:
        blocks.append(
            (
                f"first epoch: step {fe['step']}, each prompt predicted from other prompts only "
                f"({fe['folds']} prompt groups)",
                fe["strategies"],
            )
        )
    width = max([len(k) for _, st in blocks for k in st] + [8]) + 2
    lines = []
    for title, st in blocks:
        if not st:
            continue
        causal = {
            k: v["rollouts_per_mixed_group"]
            for k, v in st.items()
            if v["causal"] and v["rollouts_per_mixed_group"] == v["rollouts_per_mixed_group"]
        }
        best = min(causal, key=causal.get) if causal else None
        lines.append(f"# {title}")
        lines.append(f"{'strategy':<{width}}" + "".join(f"{h:>17}" for h, _, _ in _COLUMNS) + "  what")
        for key, v in st.items():
            name = ("* " if key == best else "  ") + key
            lines.append(
                f"{name:<{width}}" + "".join(f"{_cell(v.get(c), nd):>17}" for _, c, nd in _COLUMNS) + f"  {v['label']}"
            )
    if lines:
        lines.append(
            "legend: * = the causal strategy with the fewest rollouts per mixed group; - = no value: the strategy does "
            "not allocate a budget (mixed/1k alloc.), or no group came back mixed (rollouts/mixed)"
        )
    groups, visits = result.get("n_groups_evaluated"), result.get("n_visits_evaluated")
    merged = f" of {visits} (prompt, step) visits" if groups is not None and groups != visits else ""
    lines.append(
        f"replayed {result.get('n_steps_evaluated')} steps / {groups} groups{merged}; "
        f"{_cell(result.get('seconds_total'), 0)} s. Every key: --json FILE."
    )
    return "\n".join(lines)


def _check_steps(log, args) -> None:
    """What the replay needs of HISTORY's steps, in the command's flags, before any work: --max-step keeps
    some rows, two distinct steps at least, and --fit-fraction leaves one or more of them to replay."""
    from ..exceptions import DataError

    if "step" not in log.columns:
        return  # alloc_sim names the missing column and the fix
    every = sorted(set(log["step"].to_list()))
    steps = every if args.max_step is None else [s for s in every if s <= args.max_step]
    need = f"--max-step {every[1 if len(every) > 1 else 0]} or more"  # two steps where the log has them
    if not steps:
        raise DataError(
            f"--max-step {args.max_step} keeps none of HISTORY {args.history}'s {log.height} rows (its steps run "
            f"from {every[0]} to {every[-1]}). Fix: pass {need}, or drop --max-step."
        )
    if len(steps) < 2:
        cut = f" up to --max-step {args.max_step}" if len(every) > 1 else ""
        raise DataError(
            f"HISTORY {args.history}: has one distinct step{cut} (step {steps[0]}); alloc-sim fits the value model "
            "on the earliest steps and replays the later ones, so it needs rows from two steps at least. Fix: "
            + (f"pass {need}, or drop --max-step." if cut else "pass a log with rows from two or more steps.")
        )
    from ..rl._replay import fit_steps, largest_fit_fraction

    n_fit = fit_steps(args.fit_fraction, len(steps))
    if n_fit >= len(steps):
        most = largest_fit_fraction(len(steps))
        raise DataError(
            f"--fit-fraction {args.fit_fraction} fits on {n_fit} of HISTORY's {len(steps)} distinct steps, leaving "
            f"none to replay. Fix: pass --fit-fraction {most:g} or less."
        )


def _alloc_sim(args) -> int:
    from ..rl import alloc_sim

    check_input(args.history, "HISTORY")
    check_output(args.json, "--json", (".json",))
    log = read_input(args.history, "HISTORY")  # validated: checked below as it is, not validated again
    _check_steps(log, args)
    from ..rl._replay import check_groups

    # in the command's terms, before any work, as alloc_sim checks it (rows after --max-step are not replayed,
    # so not checked); alloc_sim names every other problem
    check_groups(log, args.rollouts_per_prompt, "--rollouts-per-prompt", max_step=args.max_step)
    if "n" not in log.columns:  # said, not assumed silently: n weighs every score in the replay
        note(
            args,
            f"HISTORY {args.history} has no 'n' column: each row is read as the mean of "
            f"--rollouts-per-prompt {args.rollouts_per_prompt} rollouts",
        )
    result = alloc_sim(
        log,
        head=args.head,
        encoder=args.encoder,
        fit_fraction=args.fit_fraction,
        max_step=args.max_step,
        rollouts_per_prompt=args.rollouts_per_prompt,
        random_state=args.random_state,
        show_progress_bar=progress(args),
    )
    print(strategies_table(result))
    if args.json:
        write_json(args.json, result)
    return 0


def register(subparsers) -> None:
    """Add ``alloc-sim`` to an argparse subparsers object (it sets ``func``)."""
    p = subparsers.add_parser(
        "alloc-sim",
        help="replay a logged RL run: prompt selection and rollout allocation, no look-ahead",
        description="Fit the value model on the earliest steps of HISTORY, then replay every later step "
        "(context = earlier steps only) and score selection and allocation strategies.",
    )
    p.add_argument(
        "history",
        metavar="HISTORY",
        help="outcome log with 'step' and 'n' (.jsonl/.csv/.parquet); without 'n', each row counts "
        "--rollouts-per-prompt rollouts",
    )
    p.add_argument("--json", metavar="FILE", help="write the full result as JSON (NaN as null)")
    p.add_argument(
        "--head",
        default=None,
        choices=head_choices(),
        metavar="HEAD",
        help=f"value-model head, one of {head_choices()} (default: gbdt, v0lite.rl.DEFAULT_HEAD)",
    )
    p.add_argument(
        "--fit-fraction",
        type=number_in(0.0, 1.0, open_lo=True, open_hi=True),
        default=0.1,
        metavar="F",
        help="share of the earliest distinct steps the value model is fitted on, in (0, 1) (default 0.1)",
    )
    p.add_argument(
        "--rollouts-per-prompt",
        type=int_at_least(2, " (a group of one rollout is never mixed)"),
        default=8,
        metavar="N",
        help="group size of P(mixed | n) and the per-prompt budget, at least 2 (default 8)",
    )
    p.add_argument(
        "--max-step", type=int, default=None, metavar="T", help="replay only rows with step <= T (default: all)"
    )
    encoder_flag(p)
    add_seed_flag(p, "seed of the random strategies (default 0)", alias="--seed")  # its earlier spelling
    add_force_flag(p)
    add_progress_flags(p)
    p.set_defaults(func=_alloc_sim, inputs=("history",), outputs={"json": "--json"})
