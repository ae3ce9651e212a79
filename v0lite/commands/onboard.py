"""CLI: ``v0lite onboard LOG --policy NAME --candidates FILE --n N --out FILE``: which prompts to run a model on."""

from __future__ import annotations

from ._common import add_progress_flags, check_input, check_output, head_choices

__all__ = ["register"]


def _onboard(args) -> int:
    from ..exceptions import DataError, ParameterError
    from ..log import as_frame, read_log, write_log

    check_input(args.log, "LOG")
    check_input(args.candidates, "--candidates")
    check_output(args.out, "--out")
    from pathlib import Path

    for flag, src in (("LOG", args.log), ("--candidates", args.candidates)):
        if Path(args.out).resolve() == Path(src).resolve():
            raise DataError(f"--out {args.out}: is also {flag}; it would be overwritten. Fix: name another file.")
    if args.n < 1:
        raise ParameterError(f"--n {args.n}: must be at least 1. Fix: pass --n 1 or more.")
    try:
        holds = "one prompt per row in a 'prompt' column; `v0lite data prompts LOG OUT` makes one"
        cand = as_frame(args.candidates, holds=holds)
    except DataError as exc:
        raise DataError(f"--candidates {exc}") from exc
    if cand.height == 0:
        raise DataError(f"--candidates {args.candidates}: no rows. Fix: pass at least one candidate prompt.")
    if "prompt" not in cand.columns:
        raise DataError(
            f"--candidates {args.candidates}: no 'prompt' column (columns present: {cand.columns}). "
            "Fix: write one prompt per row in a 'prompt' column (`v0lite data prompts LOG OUT` makes such a file)."
        )
    prompts = cand["prompt"].to_list()
    for i, t in enumerate(prompts):
        if not isinstance(t, str) or not t.strip():
            raise DataError(
                f"--candidates {args.candidates}: column 'prompt', row {i}: {t!r} is not a non-empty text. "
                "Fix: give that row its prompt text or remove it."
            )
    history = read_log(args.log)
    if args.model_dir:
        from ..estimator import V0Regressor

        model = V0Regressor.load(args.model_dir)
        model.show_progress_bar = False
        known = set(model.index_.policies)
        extra = history.filter(~history["policy"].is_in(list(known)))
        if extra.height:
            model.add_history(extra)
    else:
        from .core import _model

        model = _model(args).fit(history)
    picks = model.suggest_prompts(args.policy, prompts, args.n, random_state=args.random_state)
    import polars as pl

    first = cand.unique("prompt", keep="first", maintain_order=True)
    keep = [c for c in ("prompt", "prompt_id", "task") if c in first.columns]
    rank = {t: i for i, t in enumerate(picks)}
    out = (
        first.select(keep)
        .filter(pl.col("prompt").is_in(picks))
        .with_columns(pl.col("prompt").replace_strict(rank, return_dtype=pl.Int64).alias("rank"))
        .sort("rank")
    )
    write_log(out, args.out)
    n_seen = int((history["policy"] == args.policy).sum())
    state = f"{n_seen} outcomes in LOG" if n_seen else "no outcomes in LOG: estimated as the pool's average model"
    print(
        f"wrote {args.out}: {out.height} of {len(set(prompts))} candidate prompts for {args.policy!r} ({state}); "
        "run the policy on them and add the outcomes to LOG (or model.add_history)"
    )
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "onboard",
        help="choose which prompts to run a new model on (the most informative n)",
        description="Fit the value model on LOG (or load --model-dir), then pick the N prompts of "
        "--candidates whose outcomes would say most about --policy: its predicted uncertainty "
        "on each prompt, spread over difficulty and topic (a greedy I-optimal design). A policy "
        "with outcomes in LOG gets the prompts that refine it most. Writes --out with columns "
        "prompt (+ prompt_id, task when the candidates have them) and rank (0 = most informative).",
    )
    p.add_argument("log", metavar="LOG", help="outcome log of the pool (.jsonl/.csv/.parquet)")
    p.add_argument("--policy", required=True, metavar="NAME", help="the model to onboard (known to LOG or not)")
    p.add_argument(
        "--candidates",
        required=True,
        metavar="FILE",
        help="prompts it could be run on: any file with a 'prompt' column (`v0lite data prompts` writes one)",
    )
    p.add_argument("--n", required=True, type=int, metavar="N", help="how many prompts to pick (>= 1)")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write (.jsonl/.csv/.parquet)")
    p.add_argument("--model-dir", default=None, help="use a model saved by `v0lite fit` instead of fitting on LOG")
    p.add_argument("--head", choices=head_choices(), default=None, help="head to fit on LOG (default: auto)")
    p.add_argument("--encoder", default=None, metavar="MODEL", help="prompt encoder (default: all-MiniLM-L6-v2)")
    p.add_argument("--random-state", type=int, default=0, help="seed (breaks exact ties only)")
    add_progress_flags(p)
    p.set_defaults(func=_onboard, inputs=("log", "model_dir"), outputs={"out": "--out"})
