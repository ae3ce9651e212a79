"""CLI: ``fit``, ``predict``, ``evaluate`` and ``demo``."""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from pathlib import Path

from ..exceptions import DataError
from ._common import (
    ENCODER_MOVED_HELP,
    add_force_flag,
    add_progress_flags,
    add_seed_flag,
    check_input,
    check_model_dir,
    check_output,
    encoder_flag,
    fallback_flag,
    head_choices,
    note,
    progress,
    progress_lines,
    read_frame,
    read_input,
    write_json,
)
from ._common import _named as _named_error

QUERY_COLUMNS = ("policy", "prompt", "step")  # what predict reads of a query file
QUERIES_HOLD = "queries: policy, prompt[, step]"

__all__ = ["register", "print_table"]


@contextmanager
def _about_queries(path: str):
    """A query naming a policy the model has no history of: the error names QUERIES and its file (the
    library's names only the column and the row)."""
    from ..exceptions import UnknownPolicyError

    try:
        yield
    except UnknownPolicyError as exc:  # a CLI run is no cross-validation: that hint is the library's
        text = str(exc).replace(
            " (in cross-validation, a training fold held none of its rows: group or shuffle the folds)", ""
        )
        raise _named_error(UnknownPolicyError(text), path, "QUERIES") from exc


# how the auto head chose, in words (its ``criterion_``; ``criterion_reason_`` says why that one)
_CRITERIA = {
    "cv_pairwise_acc": "a routing log: the highest cv_cluster_pairwise_acc (mean over up to 20 prompt clusters); "
    "candidates within two standard errors of it are tied, and the tie goes to the first of {prefer}",
    "cv_choice_acc": "a routing log: the highest cv_cluster_choice_acc (a model saved before 2026-12-05)",
    "cv_brier": "the lowest cv_brier ({reason})",
    "too little history": "too few held-out rows to compare: the prompt-blind prior",
}


def print_table(rows: list[dict], cols: list[str]) -> None:
    """Print rows as an aligned text table."""

    def fmt(v):
        if isinstance(v, float):
            return "nan" if not math.isfinite(v) else f"{v:.4f}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    for r in [cols, *cells]:  # the last column unpadded: no trailing spaces for a diff or a copy to trip on
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def _model(args):
    from ..estimator import V0Regressor

    kw = {"random_state": args.random_state, "show_progress_bar": progress(args)}
    if getattr(args, "head", None):
        kw["head"] = args.head
    if getattr(args, "encoder", None):
        kw["encoder"] = args.encoder
    if getattr(args, "fallback", None):
        kw["fallback"] = args.fallback
    return V0Regressor(**kw)


def evaluate_model(model, history, queries) -> dict:
    """Fit ``model`` on ``history``, predict ``queries`` (with true scores) and score it."""
    from ..metrics import evaluate_predictions

    t0 = time.perf_counter()
    model.fit(history)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = model.predict(queries)
    pred_s = time.perf_counter() - t0
    step = queries["step"].to_numpy() if "step" in queries.columns else None
    res = evaluate_predictions(queries["score"].to_numpy(), p, policy=queries["policy"].to_numpy(), step=step)
    res.update(head=model.head, fit_s=fit_s, predict_s=pred_s, predictions_per_s=len(p) / max(pred_s, 1e-9))
    res["_p"] = p  # for the baselines' paired comparison; callers drop it
    return res


def _ci(d: dict | None) -> str:
    if not d or d.get("estimate") is None or not math.isfinite(d["estimate"]):
        return "-"
    lo, hi = d["ci_low"], d["ci_high"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{d['estimate']:+.4f}"
    return f"{d['estimate']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def verdict_lines(
    chosen: str, chosen_within: float | None, baselines: dict, what: dict[str, str], *, chosen_ranks: bool = True
) -> list[str]:
    """The flags of a comparison: ``LOSES to <baseline>`` and "no better than chance"; none, and a line
    saying why, when the queries hold too few prompts for the intervals to mean anything.

    ``chosen_ranks``: whether the chosen head's predictions rank within a group (``baselines.ranks_within``);
    the one rule of :func:`chance_lines` judges the chosen head and each baseline alike."""
    from ..baselines import MIN_VERDICT_PROMPTS, fewest_prompts, no_better_than_chance, shown

    named = [(chosen, chosen_within, chosen_ranks)] + [
        # route-eval's baselines may lack ranks_within: they rank then
        (f"baseline {shown(label)}", r.get("within_policy_auc"), r.get("ranks_within", True))
        for label, r in baselines.items()
    ]
    few = fewest_prompts(baselines)
    if few is not None:  # no verdict; that one cannot rank is a fact, said at any size
        return [
            f"no verdict: the comparison rests on {few} query prompt(s), and a verdict needs "
            f"{MIN_VERDICT_PROMPTS} at least (the 95% intervals resample prompts; with fewer they have no real "
            "spread). Score more query prompts for one.",
            *(line for name, within, ranks in named for line in chance_lines(name, within, ranks, False)),
        ]
    out = []
    for label, r in baselines.items():
        for metric in r.get("loses", []):
            out.append(
                f"{chosen} LOSES to {shown(label)} on {what.get(metric, metric)}: {_ci(r['diff'][metric])} "
                "(95% interval of chosen minus baseline entirely on the losing side)"
            )
    if not out:
        out.append(f"{chosen} loses to no baseline (no 95% interval entirely on the losing side)")
    chances = [no_better_than_chance(chosen_within, ranks=chosen_ranks)] + [r.get("chance") for r in baselines.values()]
    for (name, within, ranks), chance in zip(named, chances):
        out += chance_lines(name, within, ranks, bool(chance))
    return out


def chance_lines(name: str, within: float | None, ranks: bool, chance: bool) -> list[str]:
    """What to say of one prediction's within-policy AUC, the chosen head's and a baseline's alike: the fact
    that it cannot rank (``ranks`` False: 0.5 by construction, no finding), or "no better than chance"
    when ``chance`` (``baselines.no_better_than_chance``) holds, else nothing."""
    if not ranks and within is not None and math.isfinite(within):
        return [
            f"{name}: within-policy AUC {within:.4f} (its predictions do not rank prompts within a policy: "
            "0.5 by construction)"
        ]
    return [chance_line(name, within)] if chance else []


def chance_line(name: str, within: float) -> str:
    """The one wording of "no better than chance", for the chosen head and for a baseline alike."""
    return f"{name}: within-policy AUC {within:.4f} <= 0.5, no better than chance"


def metric_legend(cols) -> str:
    """One line under a metrics table saying which way each of its ``cols`` is better (``v0lite.metrics``'s
    definitions): the AUCs binarise the score at 0.5; Brier, ECE and log loss compare p with the score itself."""
    lower = [{"ece": "ece (10 equal-width bins)"}.get(c, c) for c in ("brier", "ece", "log_loss") if c in cols]
    return (
        "auc, within_policy_auc (AUC within each (policy, step), or policy where the log has no step; "
        "0.5 = chance; a row counts as a success when score >= 0.5): higher is better; "
        f"{', '.join(lower)}: lower is better (they compare p with the score itself)."
    )


def within_report(queries, p) -> tuple[dict, str | None, str | None]:
    """What within_policy_auc leaves out: ``within_policy_auc_groups`` (``used``, ``skipped``, ``rows_used``),
    the reason it is undefined (None when defined) and a line naming up to 3 skipped groups (None if none)."""
    from ..metrics import within_groups

    keys = ["policy", "step"] if "step" in queries.columns else ["policy"]
    g = within_groups(queries["score"].to_numpy(), p, [queries[k].to_numpy() for k in keys])
    skipped = g.pop("skipped_groups")
    if not skipped:
        return g, None, None
    what = "(policy, step)" if len(keys) > 1 else "policy"

    def name(s):
        vals = [str(queries[k][s["row"]]) for k in keys]
        return f"{'(' + ', '.join(vals) + ')' if len(vals) > 1 else vals[0]} (all {s['rows']} rows {s['why'][4:]})"

    named = ", ".join(name(s) for s in skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
    if g["used"] == 0:
        reason = f"no {what} group holds both a success (score >= 0.5) and a failure, so no pair to rank"
        return (
            g,
            reason,
            f"within_policy_auc nan: {reason}: {named}. Fix: score queries a policy both passes and fails.",
        )
    n_out = sum(s["rows"] for s in skipped)
    line = (
        f"within_policy_auc leaves out {len(skipped)} of {len(skipped) + g['used']} {what} groups ({n_out} of "
        f"{n_out + g['rows_used']} rows), where every row is on one side of score 0.5 (no pair to rank): {named}"
    )
    return g, None, line


def auc_reason(queries) -> str | None:
    """Why the AUC of ``queries`` is undefined (``auc`` null, ``d_auc`` '-'), else None: every row is on one
    side of score 0.5, the success line of the AUCs (``v0lite.metrics.auc``), so there is no pair to rank."""
    y = queries["score"].to_numpy()
    wins = int((y >= 0.5).sum())
    if 0 < wins < len(y):
        return None
    side = "a success (score >= 0.5)" if wins else "a failure (score < 0.5)"
    return f"every one of the {len(y)} query rows is {side}, so no success and failure pair to rank"


def _print_eval_baselines(res: dict) -> None:
    from ..baselines import shown

    b = res["baselines"]
    if not b:
        return
    rows = [
        {
            "baseline": shown(label),
            "head": r["head"],
            "auc": r["auc"],
            "within_policy_auc": r["within_policy_auc"],
            "brier": r["brier"],
            "d_auc [95% CI]": _ci(r["diff"].get("auc")),
            "d_within_policy_auc [95% CI]": _ci(r["diff"].get("within_policy_auc")),
            "d_brier [95% CI]": _ci(r["diff"].get("brier")),
        }
        for label, r in b.items()
    ]
    print(
        f"\nbaselines (d = {res['head']} minus baseline; paired bootstrap over query prompts, 1000 resamples; "
        "brier: lower is better):"
    )
    print_table(rows, list(rows[0]))
    lines = verdict_lines(
        res["head"],
        res.get("within_policy_auc"),
        b,
        {"auc": "AUC", "within_policy_auc": "within-policy AUC", "brier": "Brier"},
        chosen_ranks=res["ranks_within"],
    )
    for line in lines:
        print(line)
    for key in ("auc", "within_policy_auc"):  # the same rows for every prediction: one reason for all
        if res.get(f"{key}_reason"):
            what = "AUC" if key == "auc" else "within-policy AUC"
            print(f"d_{key} '-': {what} is undefined ({res[f'{key}_reason']})")


def _fit(args) -> int:
    from ..persist import FORMAT_NAME, check_save_target

    check_input(args.history, "HISTORY")
    check_save_target(args.model_dir, FORMAT_NAME, flag="--model-dir")  # before the work: nothing is deleted
    history = read_input(args.history, "HISTORY")  # errors name the file, the row and the value
    model = _model(args).fit(history)
    model.save(args.model_dir)
    print(
        f"fitted head={model.head} on {history.height} rows, {len(model.index_.policies)} policies; "
        f"saved to {args.model_dir}"
    )
    report = getattr(model.head_, "cv_report_", None)
    if report:  # the auto head: what it compared out of fold on this log, and what it chose
        what = served(model.head_)
        print(f"chosen: {what['served']} (out-of-fold, prompt-grouped CV on the history):")
        cols = ["member", "cv_brier", "cv_auc", "cv_within_policy_auc", "cv_choice_acc", "cv_pairwise_acc"]
        if any("cv_cluster_pairwise_acc" in r for r in report):
            cols.append("cv_cluster_pairwise_acc")
        rows = [
            {**{k: "-" if v is None else v for k, v in r.items()}, "chosen": "yes" if r["chosen"] else ""}
            for r in report
        ]
        print_table(rows, [*cols, "weight", "chosen"])
        crit = getattr(model.head_, "criterion_", None)
        from ..heads.auto import _PREFER

        reason = getattr(model.head_, "criterion_reason_", None) or "not judged as a routing log"
        print(f"criterion: {_CRITERIA.get(crit, str(crit)).format(prefer=', '.join(_PREFER), reason=reason)}")
        if what["served_from"]:
            print(
                f"served: ensemble (gbdt + transformer, fitted on every row), because a learned candidate "
                f"({what['served_from']}) won the comparison; the comparison's learned members are fitted "
                "without its fold"
            )
        for member, why in getattr(model.head_, "skipped_", {}).items():
            print(f"not compared: {member} ({why})")
    thin = _thin_report(model)
    if thin:
        print(
            "read as added later (fewer than a quarter of the median policy's rows: the pool's view of each "
            f"prompt and their own rows, as add_history would): {thin}"
        )
    return 0


def _thin_report(model) -> str:
    """``name (n rows), ...`` of the policies the served logistic reading treats as thin, or ''."""
    import numpy as np

    from ..heads._pool_items import pool_head

    head = model.head_
    member = pool_head(head)
    if member is None:  # auto serving no logistic keeps one, and reads its thin policies through it
        return ""
    thin = np.flatnonzero(getattr(member, "thin_", np.zeros(0, bool)))
    counts = np.bincount(model.index_.policy, None, len(model.index_.policies))
    return ", ".join(f"{model.index_.policies[c]} ({counts[c]} rows)" for c in thin)


def query_notes(args, model, queries) -> int:
    """What predict and evaluate note of their ``queries`` on stderr: the rows naming a policy with no history in
    the fitted ``model`` (reaching here, ``--fallback`` answered them; their number is returned), and the rows
    asked at a step before their policy's first checkpoint."""
    import polars as pl

    index = model.index_
    unknown = sum(pol not in index.policy_to_code for pol in queries["policy"].to_list())
    if unknown:
        why = f"name a policy with no history: answered by --fallback {model.fallback}"
        note(args, f"{unknown} of {queries.height} rows {why}")
    if "step" in queries.columns:  # a known policy asked before its first checkpoint reads none of its rows
        known = queries.filter(pl.col("policy").is_in(list(index.policy_to_code)))
        first = index.edge_steps(known["policy"].to_list(), first=True)
        early = int((known["step"].to_numpy() < first).sum())
        if early:
            note(
                args,
                f"{early} of {queries.height} rows ask at a step before their policy's first checkpoint in the "
                "history: none of its rows is visible there, so they are predicted as for a policy with no history",
            )
    return unknown


def served(head) -> dict:
    """What a fitted head serves: ``served`` (the auto head's chosen member, ``ensemble`` where it replaced a
    learned winner; any other head serves itself) and ``served_from`` (that winner, else None); fit and
    evaluate report these."""
    return {"served": getattr(head, "chosen_", head.name), "served_from": getattr(head, "served_from_", None)}


def _refuse_no_query_rows(path: str) -> None:
    """Refuse a query file with a header but no rows in the queries' terms (predict reads no outcomes); return
    where it holds rows or lacks a column, so the caller's own error stands."""
    frame = read_frame(path, "QUERIES", QUERIES_HOLD)
    if frame.height == 0 and {"policy", "prompt"} <= set(frame.columns):
        raise DataError(
            f"QUERIES {path}: has no rows (only a header). Fix: add at least one query row (policy, prompt[, step])."
        )


def _predict(args) -> int:
    import polars as pl

    from ..estimator import V0Regressor
    from ..log import check_csv_columns, write_log

    check_input(args.queries, "QUERIES")
    check_output(args.out, "--out")
    # the input's errors before the model is loaded; the columns predict does not read (a score, a task)
    # are not checked, and pass through to --out as they are (so --out must be able to hold them)
    try:
        queries = read_input(args.queries, "QUERIES", require_score=False, columns=QUERY_COLUMNS)
    except DataError:
        _refuse_no_query_rows(args.queries)  # the library's "the log has no rows" asks for outcome rows
        raise
    check_csv_columns(queries.schema, args.out, "--out")
    model = V0Regressor.load(check_model_dir(args.model_dir), encoder=args.encoder)
    model.set_params(show_progress_bar=progress(args))
    if args.fallback:
        model.set_params(fallback=args.fallback)
    with _about_queries(args.queries):
        p = model.predict(queries.select([c for c in QUERY_COLUMNS if c in queries.columns]))
    if "p_success" in queries.columns:  # copied through otherwise: a rerun on an earlier --out would look kept
        note(args, f"QUERIES {args.queries} has a 'p_success' column: --out {args.out} holds the new predictions in it")
    query_notes(args, model, queries)
    write_log(queries.with_columns(pl.Series("p_success", p)), args.out)
    print(f"wrote {len(p)} predictions (mean p_success {p.mean():.3f}) to {args.out}")
    return 0


def _evaluate(args) -> int:
    check_input(args.history, "HISTORY")
    check_input(args.queries, "QUERIES")
    check_output(args.json, "--json", (".json",))
    history = read_input(args.history, "HISTORY")
    queries = read_input(args.queries, "QUERIES")
    model = _model(args)
    with _about_queries(args.queries):
        res = evaluate_model(model, history, queries)
    res.update(served(model.head_))  # the auto head: which member made the predictions, as fit says
    res["fallback_rows"] = query_notes(args, model, queries)
    cols = ["head", "n", "auc", "within_policy_auc", "brier", "ece", "log_loss", "fit_s", "predictions_per_s"]
    if res["served"] != res["head"]:
        cols.insert(1, "served")
    print_table([res], cols)
    print(metric_legend(cols))
    res["auc_reason"] = auc_reason(queries)
    if res["auc_reason"]:
        print(f"auc nan: {res['auc_reason']}. Fix: score queries holding both successes and failures.")
    res["within_policy_auc_groups"], res["within_policy_auc_reason"], line = within_report(queries, res["_p"])
    if line:
        print(line)
    from ..baselines import MIN_VERDICT_PROMPTS, no_better_than_chance, query_groups, ranks_within

    # the head's own verdict needs no baseline: present with --no-baselines too, and no verdict on fewer
    # query prompts than the intervals need (route-eval's rule); the baselines' rule: predictions that do
    # not rank within a group (a prompt-blind prior, a --fallback constant) are 0.5 by construction
    res["ranks_within"] = ranks_within(query_groups(queries), res["_p"])
    within, n_prompts = res.get("within_policy_auc"), queries["prompt"].n_unique()
    res["chance"] = no_better_than_chance(within, n_prompts, ranks=res["ranks_within"])
    if args.no_baselines:  # with baselines, verdict_lines says it beside theirs
        for line in chance_lines(res["head"], within, res["ranks_within"], res["chance"]):
            print(line)
    if not args.no_baselines:
        from ..baselines import evaluate_baselines, fewest_prompts

        # each baseline predicts QUERIES as the head did: its errors (an unknown policy) name that file
        with _about_queries(args.queries):
            res["baselines"] = evaluate_baselines(
                history,
                queries,
                res.pop("_p"),
                encoder=getattr(args, "encoder", None),
                random_state=args.random_state,
                log=progress_lines(args),
                fallback=args.fallback or "error",
            )
        res["loses_to"] = sorted(label for label, r in res["baselines"].items() if r.get("loses"))
        few = fewest_prompts(res["baselines"])  # loses_to is empty then: no verdict
        if few is not None:
            res["no_verdict"] = f"{few} query prompt(s), fewer than {MIN_VERDICT_PROMPTS}"
        _print_eval_baselines(res)
    res.pop("_p", None)
    if args.json:
        write_json(args.json, res)
    return 0


def _demo_grpo(model, history, last) -> None:
    """Demo section 3: rollouts per mixed group of v0lite selection vs dynamic sampling, and the budget split."""
    import numpy as np
    import polars as pl

    from ..data import split_by_prompt
    from ..estimator import V0Regressor
    from ..rl import allocate, beta_p_mixed, beta_params, fit_prior_strength, p_mixed

    cols = ["policy", "prompt", *(["step"] if "step" in last.columns else [])]
    p = model.predict(last.select(cols))
    # How far to trust a prediction on a NEW prompt, fitted out of sample: a second model fitted on
    # three quarters of the history's prompts predicts the held-out quarter. Fitted on the model's
    # own training rows instead, the predictions look far surer than they are on new prompts
    # (concentration ~90 vs ~10), the budget trusts them too much and lands below uniform.
    conc = None
    if "n" in history.columns:
        fit_part, held = split_by_prompt(history, test_size=0.25, random_state=0)
        held = held.filter(pl.col("step") == held["step"].max()) if "step" in held.columns else held
        hp = V0Regressor(head=model.head, random_state=0).fit(fit_part).predict(held.select(cols))
        hn = held["n"].to_numpy()
        conc = fit_prior_strength(hp, np.round(held["score"].to_numpy() * hn), hn)
    truth = last["score"].to_numpy()
    mixed = (truth > 0) & (truth < 1)
    k = len(p)
    score = p_mixed(p, 8) if conc is None else beta_p_mixed(*beta_params(p, conc), 8)
    keep = np.argsort(-score, kind="stable")[: k // 2]
    print(
        f"\n3. GRPO on {k} new (policy, prompt) pairs, 8 rollouts per group; a group is mixed (non-zero "
        "advantage) when its recorded rate is strictly between 0 and 1:"
    )
    every = 8 * k / max(mixed.sum(), 1)
    print(
        f"   rollouts per mixed group: roll out all (uniform, or DAPO's dynamic sampling, which drops the unmixed "
        f"groups after rollout) {every:.1f} | v0lite selection (keep the half most likely mixed) "
        f"{8 * len(keep) / max(mixed[keep].sum(), 1):.1f}"
    )
    n = allocate(p, budget=8 * k, n_min=2, n_max=16, concentration=conc)
    uniform, ours = 1000 * p_mixed(truth, 8).sum() / (8 * k), 1000 * p_mixed(truth, n).sum() / max(n.sum(), 1)
    print(
        f"   budget of 8 x {k} rollouts, expected mixed groups per 1,000 rollouts (true p = recorded rate): "
        f"uniform 8 each {uniform:.1f} | v0lite allocation {ours:.1f}"
    )
    if ours < uniform:
        print(
            "   (the allocation loses here: on new prompts the predictions are too unsure for moving rollouts "
            "between prompts to pay: fitted out of sample, a prediction is worth "
            f"{conc if conc is not None else float('nan'):.1f} rollouts of evidence, the Beta concentration)"
        )


def _demo_data():
    """``(history, queries, source)`` of ``v0lite demo``: the repository's ``data/`` files, or the same
    frames built in memory where the package is installed without them (``write_demo_data``'s split)."""
    from ..data._demo import demo_frames
    from ..log import read_log

    root = Path(__file__).resolve().parents[2] / "data"
    if (root / "demo_log.jsonl").exists():
        history, queries = read_log(root / "demo_log.jsonl"), read_log(root / "demo_queries.jsonl")
        return history, queries, f"{root}/demo_log.jsonl (SYNTHETIC)"
    history, queries = demo_frames()  # the same rows as data/, whose files write_demo_data() writes from these
    return history, queries, "the demo log write_demo_data() writes, built in memory (SYNTHETIC)"


def _demo(args) -> int:
    import polars as pl

    from ..estimator import V0Regressor

    history, queries, src = _demo_data()
    print(
        f"v0lite demo: history {history.height} rows from {src}; {history['policy'].n_unique()} policies, "
        f"queries {queries.height} rows on prompts never seen in the history.\n"
    )
    rows = []
    for head in ("prior", "knn", V0Regressor().head):
        model = V0Regressor(head=head, random_state=0, show_progress_bar=progress(args))
        rows.append(evaluate_model(model, history, queries))
        rows[-1].pop("_p")
    print("1. How well does each head predict success on unseen prompts?")
    cols = ["head", "n", "auc", "within_policy_auc", "brier", "ece", "fit_s", "predictions_per_s"]
    print_table(rows, cols)
    print(metric_legend(cols))
    # `model` is now the default head, fitted on the history
    last = queries.filter(pl.col("step") == queries["step"].max()) if "step" in queries.columns else queries
    sample = last.unique("prompt", maintain_order=True).head(3)
    print("\n2. Predicted success of each policy on three new prompts (latest checkpoint):")
    pols = sorted(history["policy"].unique().to_list())
    for prompt in sample["prompt"].to_list():
        X = pl.DataFrame({"policy": pols, "prompt": [prompt] * len(pols)})
        if "step" in last.columns:
            X = X.with_columns(pl.lit(int(last["step"].max())).alias("step"))
        p = model.predict(X)
        print(f"   {prompt[:70]!r}")
        print("      " + "  ".join(f"{pol}: {v:.2f}" for pol, v in zip(pols, p)))
    _demo_grpo(model, history, last)
    print(
        "\nNext: `v0lite evaluate HISTORY QUERIES`, `v0lite fit HISTORY --model-dir DIR`, "
        "`v0lite route-eval TRAIN TEST`, `v0lite alloc-sim HISTORY` (see README)."
    )
    return 0


def register(sub) -> None:
    def common(p):
        p.add_argument(
            "--head",
            choices=head_choices(),
            metavar="HEAD",
            help=f"prediction head, one of {head_choices()} (default: the estimator's default head)",
        )
        encoder_flag(p)
        add_seed_flag(p, "seed of every random choice (default 0)")
        add_progress_flags(p)

    p = sub.add_parser(
        "fit",
        help="fit on an outcome log and save the model",
        description="Fit a V0Regressor on HISTORY and save it to --model-dir (no pickle).",
    )
    p.add_argument(
        "history", metavar="HISTORY", help="outcome log: policy, prompt, score[, step, n] (.jsonl/.csv/.parquet)"
    )
    p.add_argument("--model-dir", required=True, metavar="DIR", help="folder to save the model to (created)")
    common(p)
    p.set_defaults(func=_fit, inputs=("history",), replaces={"model_dir": "--model-dir"})

    p = sub.add_parser(
        "predict",
        help="predict p_success for queries with a saved model",
        description="Write QUERIES plus a p_success column, predicted by the model in --model-dir.",
    )
    p.add_argument(
        "queries",
        metavar="QUERIES",
        help="queries: policy, prompt[, step] (.jsonl/.csv/.parquet); other columns are not read, and are "
        "copied to --out as they are",
    )
    p.add_argument("--model-dir", required=True, metavar="DIR", help="folder of a model saved by `v0lite fit`")
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="output file (.jsonl/.csv/.parquet): the queries plus p_success in [0, 1]",
    )
    fallback_flag(p)
    encoder_flag(p, ENCODER_MOVED_HELP.format(what=""))
    add_force_flag(p)
    add_progress_flags(p)
    p.set_defaults(func=_predict, inputs=("model_dir", "queries"), outputs={"out": "--out"})

    p = sub.add_parser(
        "evaluate",
        help="fit on HISTORY, predict QUERIES (with true scores), print metrics",
        description="Fit on HISTORY, predict QUERIES and compare with their true scores.",
    )
    p.add_argument("history", metavar="HISTORY", help="outcome log to fit on (.jsonl/.csv/.parquet)")
    p.add_argument("queries", metavar="QUERIES", help="outcome log to score, with true 'score' (.jsonl/.csv/.parquet)")
    p.add_argument(
        "--json",
        metavar="FILE",
        help="also write the metrics to FILE (.json; NaN as null): the head's, 'served' and 'served_from' (the "
        "member the auto head served, else the head), 'fallback_rows' (query rows --fallback answered), "
        "'ranks_within' (its predictions vary within a (policy, step)), 'chance' (they do, and its within-policy "
        "AUC is <= 0.5 on 10 query prompts or more), 'within_policy_auc_groups' (groups used and skipped for "
        "holding one class, rows used), 'auc_reason' and 'within_policy_auc_reason' (why that AUC is null, else "
        "null), and without --no-baselines 'baselines' and 'loses_to'",
    )
    p.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the baselines printed beside the head (prior, kNN with k by CV, logistic, pooled "
        "ridge; each is one more fit on HISTORY)",
    )
    fallback_flag(p)
    add_force_flag(p)
    common(p)
    p.set_defaults(func=_evaluate, inputs=("history", "queries"), outputs={"json": "--json"})

    p = sub.add_parser("demo", help="run the main job on the embedded synthetic demo data")
    add_progress_flags(p)
    p.set_defaults(func=_demo)
