"""What ``v0lite route-eval`` prints: the headline table (a ``-`` explained on its line), the per-task table
and the baseline routers beside the router; and the route commands' cost inputs, checked in flag terms."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import warnings

from .._io import atomic_write_bytes
from ..exceptions import DataError, V0liteWarning
from ._common import read_input

__all__ = [
    "TABLE_KEYS",
    "fmt",
    "why_missing",
    "print_per_task",
    "print_route_baselines",
    "print_knn_seen",
    "print_per_request",
    "print_join_gain",
    "write_json_or_undo",
    "warn_unit_costs",
    "cost_log",
]

TABLE_KEYS = (
    "strategy",
    "shrink",
    "prior_k",
    "cost_source",
    "n_policies",
    "n_test",
    "n_test_incomplete",
    "aiq",
    "max_acc",
    "best_single_model",
    "best_single_acc",
    "best_single_cost",
    "cost_at_best_single_acc",
    "cost_save",
    "oracle_acc",
    "oracle_cost",
    "random_mix_aiq",
    "baseline_knn_aiq",
    "baseline_knn_k",
    "baseline_knn_max_acc",
    "baseline_knn_tuned_k",
    "baseline_knn_tuned_aiq",
    "baseline_knn_tuned_max_acc",
    "weak_model",
    "strong_model",
    "apgr",
    "cpt_50",
    "cpt_80",
    "baseline_knn_apgr",
    "baseline_knn_tuned_apgr",
)


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def why_missing(key: str, result: dict, has_task: bool | None = None) -> str:
    """Why ``key`` of a route-eval result is None (printed as ``-``), in one short clause.

    ``has_task``: whether both logs have a ``task`` column (None: not known, read from the result).
    """
    r = result
    if key == "prior_k" and r.get("shrink"):
        return "the prior is each model's success rate on all its train prompts (no neighbourhood)"
    if key in ("shrink", "prior_k"):
        return "no shrinkage (pass --shrink cv or a weight to blend toward neighbourhood rates)"
    if key.endswith("aiq") and r.get("aiq") is None and r.get("cost_source") == "unit":
        return "every call costs 1 (no cost column, no --prices): the cost axis is flat, so no area"
    if key.endswith("aiq") and r.get("aiq") is None:
        return "all pool models cost the same: the cost axis is flat, so no area"
    if key.startswith("baseline_knn") and r.get("n_train_complete") == 0:
        return "no train prompt has an outcome for every pool model, so the kNN baseline is skipped"
    if key.startswith("baseline_knn_tuned"):
        return "the tuned kNN baseline is skipped (fewer complete train prompts than CV folds)"
    if key in ("cost_at_best_single_acc", "cost_save") or key.endswith("cost_at_best_single_acc"):
        which = key[: -len("cost_at_best_single_acc")].rstrip("_") or "router"
        curve = {
            "router": r.get("max_acc"),
            "baseline_knn": r.get("baseline_knn_max_acc"),
            "baseline_knn_tuned": r.get("baseline_knn_tuned_max_acc"),
            "baseline_task": r.get("baseline_task_max_acc"),
        }.get(which, r.get("max_acc"))
        best = r.get("best_single_acc")
        reach = f" (its best {curve:.4f} < {best:.4f})" if isinstance(curve, float) and isinstance(best, float) else ""
        return (
            f"the {which.replace('_', ' ')} never reached the best single model's accuracy{reach}, "
            "so no cost to compare"
        )
    if key in ("cpt_50", "cpt_80"):
        return f"the router never recovered {key[-2:]}% of the weak-to-strong accuracy gap"
    if key.endswith("apgr"):
        return "the strong model is not more accurate than the weak one, so no gap to recover"
    if "task" in key:
        if has_task is None:  # the task-mean baseline ran only where both logs name tasks
            has_task = r.get("baseline_task_max_acc") is not None or r.get("task_n") is not None
        if not has_task:
            return "the logs name no task (no 'task' column in both)"
        if r.get("n_train_complete") == 0:
            return "no train prompt has an outcome for every pool model, so the task comparison is skipped"
        if key.endswith("within_task_auc"):
            return (
                f"no model has both a success and a failure among the test prompts of one task ({r.get('n_test')} "
                "test prompts), so no within-task AUC"
            )
    return "not computed for this pool"


def print_per_request(result: dict) -> None:
    """For budget and quality-target: their knob binds one call's mean, so name the per-request equivalent."""
    curve = (result.get("curves") or {}).get("router") or {}
    lams = curve.get("lam")
    if not lams:
        return
    i = len(lams) // 2  # an example from the middle of the sweep; every knob's lam is in the JSON
    print(
        f"(--strategy {result['strategy']} holds its knob on the mean over the prompts of one call, here all "
        f"{result.get('n_test')} TEST prompts; one request at a time it binds each prompt alone) to serve this "
        f"operating point one request at a time, use --strategy utility --knob <lam> with the lam of its knob in "
        f"the --json curves.router.lam, computed on these TEST prompts: e.g. knob {curve['knob'][i]:g} -> "
        f'--knob {lams[i]:.6g} (the service: "strategy": "utility", "knob": <lam>)'
    )


def print_join_gain(result: dict) -> None:
    """With --new-model: the pool without it as a choice, the gain of routing to it with its interval and what to
    do; and, when the router chose it on no test prompt, that the gain compares the same choices (no measured tie)."""
    before = [
        f"{k} {fmt(result.get('without_new_model_' + k))}"
        for k in ("aiq", "max_acc", "mean_task_acc")
        if result.get("without_new_model_" + k) is not None
    ]
    g, new = result["new_model_join_gain"], result["new_model"]
    if g["ci_high"] < 0:
        verdict = (
            "lower with it: route without it for now, giving its outcomes to the value model only "
            "(Router.add_history(..., join=False); the service: `v0lite serve --pool` naming only the others) "
            "until it has more"
        )
    elif g["ci_low"] > 0:
        verdict = "higher with it: routing to it pays"
    else:
        verdict = "no clear difference on this test log"
    print(
        f"the pool without {new!r} as a choice (its outcomes given to the value model only; same test prompts): "
        f"{', '.join(before)}; with it minus without, {g['metric']} {g['estimate']:+.4f} "
        f"[95% CI {g['ci_low']:+.4f}, {g['ci_high']:+.4f}]: " + verdict
    )
    if result.get("new_model_chosen_n") == 0:
        print(
            f"the router chose {new!r} on none of the {result['n_test']} TEST prompts (at no knob of the sweep, "
            f"nor as the top choice): joining changes nothing at --n {result['new_model_n']}, so the gain above "
            "compares the same choices, not a measured tie; a larger --n says whether it ever pays"
        )


def write_json_or_undo(args, data: bytes, made: dict[str, str]) -> None:
    """Write ``--json`` after the router was saved; if that fails, remove the outputs this command created
    (``made``: flag -> path that did not exist before the run, never one that did), so none is left without
    the others, and say so with the fix."""
    try:
        atomic_write_bytes(args.json, data)
    except OSError as exc:
        for path in made.values():
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
        undone = f"; the {' and '.join(f'{f} {p}' for f, p in made.items())} it wrote removed" if made else ""
        there = [
            f"{f} {p}" for f, p in (("--save-router", args.save_router), ("--plot", args.plot)) if p and f not in made
        ]
        kept = f" ({' and '.join(there)} existed before the run: written by it, not removed)" if there else ""
        reason = str(exc.strerror or exc).rpartition(": ")[2]  # the system's words, not the path again
        raise DataError(
            f"--json {args.json}: cannot be written ({reason}): no report{undone}{kept}. Fix: "
            "pass --json a path in a folder that exists, is writable and has free space, and run again."
        ) from exc


def print_knn_seen(result: dict, k: int) -> None:
    """With --new-model: the train prompts the kNN baselines saw (a model with fewer than k: a prompt-blind mean)."""
    seen = result.get("baseline_knn_train_n")
    if not seen:
        return
    new = result.get("new_model")
    print(
        f"(the kNN baselines fit each model on its own train prompts: the pool before {new!r} on the "
        f"{min(n for p, n in seen.items() if p != new)} complete for it, {new!r} on its {seen.get(new)})"
    )
    few = sorted(p for p, n in seen.items() if n <= k)
    if few and (result.get("curves") or {}).get("baseline_knn") is not None:
        print(
            f"note: {few} had <= k={k} train prompts, so the kNN baseline's estimate for them is the mean of all "
            "of them, the same for every test prompt (prompt-blind)"
        )


def print_per_task(result: dict) -> None:
    from ..baselines import shown
    from .core import print_table

    base = result.get("baselines") or {}
    rows = []
    for task, acc in result["task_acc"].items():
        row = {"task": task, "n": result["task_n"][task], "router": acc}
        row.update({shown(label): r["task_acc"].get(task) for label, r in base.items() if r.get("task_acc")})
        row["oracle"] = result["oracle_task_acc"][task]
        rows.append(row)
    mean = {"task": "mean over tasks", "n": sum(result["task_n"].values()), "router": result["mean_task_acc"]}
    mean.update({shown(label): r["mean_task_acc"] for label, r in base.items() if r.get("task_acc")})
    mean["oracle"] = sum(result["oracle_task_acc"].values()) / len(result["oracle_task_acc"])
    rows.append(mean)
    print("\nper task: accuracy of the top choice (the most likely model, whatever its cost)")
    print_table(rows, list(rows[0]))


def print_route_baselines(result: dict) -> None:
    from ..baselines import shown
    from .core import _ci, print_table, verdict_lines

    b = result["baselines"]
    metrics = list(next(iter(b.values()))["diff"])
    rows = []
    for label, r in b.items():
        row = {"baseline": shown(label)}
        for m in metrics:
            row[m] = r.get(m)
            row[f"d_{m} [95% CI]"] = _ci(r["diff"].get(m))
        row["within_policy_auc"] = r.get("within_policy_auc")
        row["within_task_auc"] = r.get("within_task_auc")
        rows.append(row)
    print(
        "\nbaselines (same cost predictions and strategy as the router; d = router minus baseline, paired "
        "bootstrap over test prompts, 1000 resamples):"
    )
    print_table(rows, list(rows[0]))
    if "knn" in b and result.get("baseline_knn_tuned_k") is not None:
        # the same success predictions as baseline_knn_tuned_* above, priced differently: say so
        print(
            f"({shown('knn')}: the tuned kNN router's success predictions with this router's cost predictions; "
            "baseline_knn_tuned_* above score it with its own kNN cost predictions, hence other figures)"
        )
    names = {"aiq": "AIQ", "max_acc": "max accuracy", "mean_task_acc": "mean task accuracy"}
    for line in verdict_lines("router", result.get("within_policy_auc"), b, names):
        print(line)


def warn_unit_costs(args, train, test) -> None:
    """No --prices and a log without a 'cost' column: every call costs 1. Say which log, and the flag."""
    logs = (("TRAIN", args.train, train), ("TEST", args.test, test))
    lack = [(name, path) for name, path, f in logs if "cost" not in f.columns]
    has = [path for _, path, f in logs if "cost" in f.columns]
    if not lack:
        return
    which = " and ".join(f"{name} {path}" for name, path in lack)
    writes = f" (`v0lite data prices {shlex.quote(str(has[0]))} prices.json` writes one from its costs)" if has else ""
    warnings.warn(
        f"{which} {'has' if len(lack) == 1 else 'have'} no 'cost' column{' (the other log has one)' if has else ''} "
        f"and no --prices was given: every call costs 1, AIQ is undefined. Fix: add a 'cost' column (USD per "
        f"call) to {' and '.join(name for name, _ in lack)}, or pass --prices FILE{writes}.",
        V0liteWarning,
        stacklevel=2,
    )


def warn_shared_prompts(args, train, test) -> None:
    """TEST prompts that are TRAIN prompts too: the value model and the baselines saw their outcomes, so the
    figures on them are not held out. Say how many, a few of them, and the split that avoids it."""
    shared = test["prompt"].unique(maintain_order=True)
    shared = shared.filter(shared.is_in(train["prompt"].unique().implode()))
    if shared.is_empty():
        return
    n, of = len(shared), test["prompt"].n_unique()
    shown = [p if len(p) <= 40 else p[:37] + "..." for p in shared.head(3).to_list()]
    warnings.warn(
        f"TEST {args.test}: {n} of its {of} prompts {'is' if n == 1 else 'are'} also in TRAIN {args.train} (e.g. "
        f"{shown}): the routers were fit on their outcomes, so the figures on them are not held out. Fix: split "
        f"one log by prompt (`v0lite data split LOG TRAIN TEST`), or remove those prompts from TEST.",
        V0liteWarning,
        stacklevel=2,
    )


def cost_log(args, pool: list[str], prices: dict[str, float] | None):
    """``--cost-log LOG``, read and checked in flag terms: a 'cost' column, a cost for every pool model (from
    LOG, else from --prices), and --prices only for the pool models LOG has no cost for (never overridden)."""
    import polars as pl

    log = read_input(args.cost_log, "--cost-log", require_score=False)
    if "cost" not in log.columns:
        raise DataError(
            f"--cost-log {args.cost_log}: has no 'cost' column (USD per call) to learn costs from. Fix: pass a "
            "log with one, or pass --prices FILE instead of --cost-log."
        )
    logged = set(log.filter(pl.col("cost").is_not_null())["policy"].unique().to_list())
    prices = prices or {}
    overlap = sorted(p for p in prices if p in logged)
    if overlap:
        raise DataError(
            f"--prices gives a price for {overlap}, whose cost --cost-log {args.cost_log} learns per prompt; with "
            "--cost-log, --prices prices only the pool models that log has no cost for. Fix: pass one of --prices "
            "/ --cost-log, or leave those models out of --prices."
        )
    missing = [p for p in pool if p not in logged and p not in prices]
    if missing:
        example = json.dumps({p: 0.001 for p in missing[:3]})
        raise DataError(
            f"--cost-log {args.cost_log} has no cost for the pool models {missing}. Fix: pass --prices with their "
            f"price (USD per call), e.g. --prices '{example}', or leave them out of --pool."
        )
    return log
