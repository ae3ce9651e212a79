"""CLI: ``v0lite onboard LOG --policy NAME --candidates FILE --n N --out FILE``: which prompts to run a model on."""

from __future__ import annotations

from ._common import (
    ENCODER_FIT_HELP,
    add_force_flag,
    add_progress_flags,
    add_seed_flag,
    check_input,
    check_output,
    encoder_flag,
    head_choices,
    int_at_least,
    model_name,
    note,
    read_frame,
    read_input,
)

__all__ = ["register"]


def _rows_not_held(model, history):
    """The rows of ``history`` the model does not hold yet: a row (policy, prompt, step, score, n) it holds k
    times is skipped k times, so adding the rest never counts an outcome twice."""
    import numpy as np
    import polars as pl

    from ..embed import prompt_keys

    index = model.index_
    cols = ["policy", "key", "step", "score", "n"]
    held = pl.DataFrame(
        {
            "policy": np.asarray(index.policies, dtype=object)[index.policy].tolist(),
            "key": np.asarray(index.keys, dtype=object)[index.prompt_row].tolist(),
            "step": index.step,
            "score": index.score,
            "n": index.n,
        },
        schema={"policy": pl.String, "key": pl.String, "step": pl.Int64, "score": pl.Float64, "n": pl.Int64},
    )
    log = history.with_row_index("_row").with_columns(
        pl.Series("key", prompt_keys(history["prompt"].to_list()), dtype=pl.String),
        (pl.col("step") if "step" in history.columns else pl.lit(0)).cast(pl.Int64).alias("step"),
        (pl.col("n") if "n" in history.columns else pl.lit(0)).cast(pl.Int64).alias("n"),
        pl.col("score").cast(pl.Float64),
    )
    nth = pl.int_range(pl.len()).over(cols).alias("_nth")  # the k-th copy of an identical row
    new = log.with_columns(nth).join(held.with_columns(nth), on=[*cols, "_nth"], how="anti")
    return history[new.sort("_row")["_row"].to_list()]


def _onboard(args) -> int:
    from ..exceptions import DataError
    from ..log import write_log

    check_input(args.log, "LOG")
    check_input(args.candidates, "--candidates")
    check_output(args.out, "--out")
    # --out naming LOG or --candidates is refused before this, by cli._check_inputs (check_no_overwrite)
    holds = "one prompt per row in a 'prompt' column; `v0lite data prompts LOG OUT` makes one"
    cand = read_frame(args.candidates, "--candidates", holds)
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
    history = read_input(args.log, "LOG")
    added = None
    if args.model_dir:  # LOG's rows the model does not hold yet join its history (no refit)
        from ..estimator import V0Regressor

        if args.head is not None:  # nothing is fitted: the saved model's head is the one used
            raise DataError(
                f"--head {args.head} with --model-dir {args.model_dir}: a saved model keeps the head it was fitted "
                "with (nothing is refitted). Fix: drop --head, or drop --model-dir to fit LOG with that head."
            )

        model = V0Regressor.load(args.model_dir, encoder=args.encoder)  # --encoder: its folder moved
        model.show_progress_bar = False
        extra = _rows_not_held(model, history)
        if extra.height:
            model.add_history(extra)
        added = int((extra["policy"] == args.policy).sum())
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
    repeated = cand.height - first.height
    if repeated:  # the same prompt twice is one candidate: its first row (prompt_id, task) is the one kept
        note(
            args,
            f"--candidates {args.candidates} holds {repeated} repeated prompt row(s); each prompt counts once, "
            "with its first row's columns",
        )
    write_log(out, args.out)
    code = model.index_.policy_to_code.get(args.policy, -1)
    n_held = int((model.index_.policy == code).sum()) if code >= 0 else 0
    where = "the model" if added is None else f"the model, {added} of them added from LOG"
    from ..heads._pool_items import pool_head

    ph = pool_head(model.head_)
    if ph is not None and ph._mix(model.index_) is not None:  # 3 or more fitted policies: the pool's view
        unseen = "the pool's view of each prompt"
    elif ph is not None:
        unseen = "the average fitted model (fewer than 3: no pool's view)"
    else:
        unseen = "the mean of all history"
    state = f"{n_held} outcomes in {where}" if n_held else f"no outcomes in the model: estimated as {unseen}"
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
        "on each prompt, spread over difficulty and how the pool's models differ there (over topics for a head "
        "without a pool's view; a greedy I-optimal design). A policy "
        "with outcomes gets the prompts that refine it most. With --model-dir, the rows of LOG the model "
        "does not hold yet are added to it first (no refit; a row it holds is not added again), so LOG may be "
        "the log it was fitted on plus the outcomes logged since. Writes --out with columns "
        "prompt (+ prompt_id, task when the candidates have them) and rank (0 = most informative).",
    )
    p.add_argument("log", metavar="LOG", help="outcome log of the pool (.jsonl/.csv/.parquet)")
    p.add_argument(
        "--policy",
        required=True,
        type=model_name,
        metavar="NAME",
        help="the model to onboard (known to LOG or not)",
    )
    p.add_argument(
        "--candidates",
        required=True,
        metavar="FILE",
        help="prompts it could be run on: any file with a 'prompt' column (`v0lite data prompts` writes one)",
    )
    p.add_argument("--n", required=True, type=int_at_least(1), metavar="N", help="how many prompts to pick (>= 1)")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write (.jsonl/.csv/.parquet)")
    p.add_argument(
        "--model-dir",
        default=None,
        metavar="DIR",
        help="use a model saved by `v0lite fit` instead of fitting on LOG; the rows of LOG it does not hold yet "
        "(e.g. the outcomes logged since the fit) are added to it, no refit, none counted twice",
    )
    p.add_argument("--head", choices=head_choices(), default=None, help="head to fit on LOG (default: auto)")
    encoder_flag(
        p,
        ENCODER_FIT_HELP + "; with --model-dir, the fitted encoder's new folder when it has moved (checked by its "
        "files' fingerprint)",
    )
    add_seed_flag(p, "seed (breaks exact ties only; default 0)")
    add_force_flag(p)
    add_progress_flags(p)
    p.set_defaults(func=_onboard, inputs=("log", "model_dir"), outputs={"out": "--out"})
