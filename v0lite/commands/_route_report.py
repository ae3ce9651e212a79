"""What ``v0lite route-eval`` prints: the headline table (a ``-`` explained on its line), the per-task table
and the baseline routers beside the router."""

from __future__ import annotations

__all__ = ["TABLE_KEYS", "fmt", "why_missing", "print_per_task", "print_route_baselines"]

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


def why_missing(key: str, result: dict) -> str:
    """Why ``key`` of a route-eval result is None (printed as ``-``), in one short clause."""
    r = result
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
        return "the logs name no task (no 'task' column in both)"
    return "not computed for this pool"


def print_per_task(result: dict) -> None:
    from .core import print_table

    base = result.get("baselines") or {}
    rows = []
    for task, acc in result["task_acc"].items():
        row = {"task": task, "n": result["task_n"][task], "router": acc}
        row.update({label: r["task_acc"].get(task) for label, r in base.items() if r.get("task_acc")})
        row["oracle"] = result["oracle_task_acc"][task]
        rows.append(row)
    mean = {"task": "mean over tasks", "n": sum(result["task_n"].values()), "router": result["mean_task_acc"]}
    mean.update({label: r["mean_task_acc"] for label, r in base.items() if r.get("task_acc")})
    mean["oracle"] = sum(result["oracle_task_acc"].values()) / len(result["oracle_task_acc"])
    rows.append(mean)
    print("\nper task: accuracy of the top choice (the most likely model, whatever its cost)")
    print_table(rows, list(rows[0]))


def print_route_baselines(result: dict) -> None:
    from .core import _ci, print_table, verdict_lines

    b = result["baselines"]
    metrics = list(next(iter(b.values()))["diff"])
    rows = []
    for label, r in b.items():
        row = {"baseline": label}
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
            "(knn: the tuned kNN router's success predictions with this router's cost predictions; "
            "baseline_knn_tuned_* above score it with its own kNN cost predictions, hence other figures)"
        )
    names = {"aiq": "AIQ", "max_acc": "max accuracy", "mean_task_acc": "mean task accuracy"}
    for line in verdict_lines("router", result.get("within_policy_auc"), b, names):
        print(line)
