"""CLI: ``v0lite route-eval`` (offline routing evaluation) and ``v0lite route`` (route prompts)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from .._io import atomic_write_json
from ..exceptions import DataError

__all__ = ["register", "STRATEGY_NAMES"]

# The names of v0lite.routing.STRATEGIES, spelled out so `--help` and argument errors need no import of
# v0lite.routing (scikit-learn, polars); tests/test_cli.py checks that they match.
STRATEGY_NAMES = ("budget", "quality-target", "threshold", "utility")

_TABLE_KEYS = (
    "strategy", "shrink", "prior_k", "cost_source", "n_policies", "n_test", "n_test_incomplete", "aiq", "max_acc",
    "best_single_model", "best_single_acc", "best_single_cost", "cost_at_best_single_acc", "cost_save",
    "oracle_acc", "oracle_cost", "random_mix_aiq", "baseline_knn_aiq", "baseline_knn_max_acc",
    "baseline_knn_tuned_k", "baseline_knn_tuned_aiq", "baseline_knn_tuned_max_acc",
    "weak_model", "strong_model", "apgr", "cpt_50", "cpt_80", "baseline_knn_apgr", "baseline_knn_tuned_apgr",
)


def _parse_prices(text: str | None) -> dict[str, float] | None:
    """``--prices``: a JSON object, or the path of a file holding one."""
    if text is None:
        return None
    src = text
    p = Path(text)
    if not text.lstrip().startswith("{") and p.exists():
        src = p.read_text(encoding="utf-8")
    try:
        obj = json.loads(src)
    except json.JSONDecodeError as exc:
        raise DataError(f"--prices is neither a JSON object nor a readable JSON file ({exc}). "
                        "Fix: pass e.g. '{\"a\": 0.001, \"b\": 0.01}'.") from exc
    if not isinstance(obj, dict):
        raise DataError("--prices must be a JSON object policy -> cost per call.")
    return obj


def _make_value_model(head: str | None, random_state: int = 0):
    from ..estimator import V0Regressor

    kw = {"random_state": random_state}
    return V0Regressor(**kw) if head is None else V0Regressor(head=head, **kw)


def _load_value_model(model_dir: str):
    from ..estimator import V0Regressor

    return V0Regressor.load(model_dir)


def _make_embedder():
    return None  # route_eval builds the default Embedder (long prompts: head + tail) lazily


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _parse_shrink(value: str | None):
    """``none`` -> None, ``cv`` -> "cv", else a weight in [0, 1]."""
    if value is None or value.strip().lower() == "none":
        return None
    if value.strip().lower() == "cv":
        return "cv"
    try:
        return float(value)
    except ValueError as exc:
        raise DataError(f"--shrink {value!r} is not 'none', 'cv' or a number. Fix: e.g. --shrink cv.") from exc


def _route_eval(args) -> int:
    if args.plot:  # fail now, not after the evaluation
        from .._extras import require

        require("matplotlib", "plot", "--plot")
    from ..log import read_log
    from ..routing import route_eval

    result = route_eval(
        read_log(args.train), read_log(args.test),
        value_model=_make_value_model(args.head), embedder=_make_embedder(),
        k_baseline=args.k_baseline, strategy=args.strategy, plot=args.plot,
        prices=_parse_prices(args.prices), shrink=_parse_shrink(args.shrink),
        per_task=args.per_task, baselines=not args.no_baselines,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )
    width = max(len(k) for k in _TABLE_KEYS)
    for key in (*_TABLE_KEYS, "within_policy_auc", "within_task_auc", "mean_task_acc"):
        if key in result:
            print(f"{key:<{width}}  {_fmt(result[key])}")
    if args.per_task:
        _print_per_task(result)
    if result.get("baselines"):
        _print_route_baselines(result)
    if args.json:
        atomic_write_json(args.json, result)
        print(f"wrote {args.json}")
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


def _print_per_task(result: dict) -> None:
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


def _print_route_baselines(result: dict) -> None:
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
    print("\nbaselines (same cost predictions and strategy as the router; d = router minus baseline, paired "
          "bootstrap over test prompts, 1000 resamples):")
    print_table(rows, list(rows[0]))
    names = {"aiq": "AIQ", "max_acc": "max accuracy", "mean_task_acc": "mean task accuracy"}
    for line in verdict_lines("router", result.get("within_policy_auc"), b, names):
        print(line)


def _route(args) -> int:
    import numpy as np
    import polars as pl

    from ..log import as_frame, write_log
    from ..routing import Router

    pool = [p.strip() for p in args.pool.split(",") if p.strip()]
    if not pool:
        raise DataError("--pool is empty. Fix: pass policy names separated by commas, e.g. --pool a,b.")
    prices = _parse_prices(args.prices)
    frame = as_frame(args.prompts)
    if "prompt" not in frame.columns:
        raise DataError(f"{args.prompts}: no 'prompt' column (columns present: {frame.columns}). Fix: add one.")
    clash = [c for c in ("policy", "p_success", "pred_cost") if c in frame.columns]
    if clash:
        print(f"note: input columns {clash} are replaced by the routing output", file=sys.stderr)
        frame = frame.drop(clash)
    if args.cost_log:
        cost_model, log = "knn", args.cost_log
    elif prices is not None:
        cost_model, log = "fixed", None
    else:
        print("note: no --prices or --cost-log: every call costs 1 (routing trades success only)", file=sys.stderr)
        cost_model, log = "unit", None
    router = Router(_load_value_model(args.model_dir), policies=pool, strategy=args.strategy,
                    cost_model=cost_model, prices=prices).fit(log)
    P, C = router.predict_matrix(frame["prompt"].to_list())
    knob = {} if args.knob is None else {"knob": args.knob}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idx = router.choose(P, C, **knob)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    rows = np.arange(len(idx))
    out = frame.with_columns(
        pl.Series("policy", np.asarray(router.policies_, dtype=object)[idx].tolist(), dtype=pl.String),
        pl.Series("p_success", P[rows, idx], dtype=pl.Float64),
        pl.Series("pred_cost", C[rows, idx], dtype=pl.Float64),
    )
    write_log(out, args.out)
    counts = out["policy"].value_counts(sort=True)
    share = ", ".join(f"{p}: {n}" for p, n in zip(counts["policy"].to_list(), counts["count"].to_list()))
    print(f"routed {out.height} prompts ({share}); mean p_success {float(out['p_success'].mean()):.4f}, "
          f"mean pred_cost {float(out['pred_cost'].mean()):.6g}; wrote {args.out}")
    return 0


def register(subparsers) -> None:
    """Add ``route-eval`` and ``route`` to an argparse subparsers object (each sets ``func``)."""
    names = list(STRATEGY_NAMES)
    p = subparsers.add_parser("route-eval", help="offline routing evaluation: AIQ, cost savings, oracle, kNN baseline",
                              description="Fit a value model on TRAIN, sweep the routing knob on TEST, report metrics.")
    p.add_argument("train", metavar="TRAIN", help="outcome log to learn from (.jsonl/.csv/.parquet)")
    p.add_argument("test", metavar="TEST", help="outcome log with every pool policy's outcome per prompt")
    p.add_argument("--json", metavar="FILE", help="write the full result (metrics and curves) as JSON")
    p.add_argument("--plot", metavar="FILE", help="write the frontier plot as PNG")
    p.add_argument("--strategy", default="utility", choices=names, help="routing strategy to sweep (default utility)")
    p.add_argument("--head", default=None, help="V0Regressor head (default: its default head)")
    p.add_argument("--prices", default=None,
                   help="JSON object (or file) policy -> cost per call, instead of the logs' cost")
    p.add_argument("--k-baseline", type=int, default=32, help="neighbours of the kNN router baseline (default 32)")
    p.add_argument("--shrink", default=None, metavar="none|cv|A",
                   help="blend predicted success with the train log's neighbourhood success rate: a weight in "
                        "[0, 1], or 'cv' to choose weight and neighbours on prompt-grouped folds of TRAIN "
                        "(5 extra value-model fits); default none")
    p.add_argument("--per-task", action="store_true",
                   help="also report each task's accuracy of the router's top choice (the most likely model, "
                        "whatever its cost) and their unweighted mean, mean_task_acc (RouterDC's headline); "
                        "needs a 'task' column in TRAIN and TEST")
    p.add_argument("--no-baselines", action="store_true",
                   help="skip the baseline routers printed beside the router (prompt-blind prior, tuned kNN, "
                        "per-model logistic, pooled ridge; one more fit on TRAIN each)")
    p.set_defaults(func=_route_eval, inputs=("train", "test"))

    q = subparsers.add_parser("route", help="route prompts to policies with a saved value model",
                              description="Write PROMPTS plus the chosen policy, its p_success and pred_cost.")
    q.add_argument("prompts", metavar="PROMPTS", help="log-like file with a 'prompt' column")
    q.add_argument("--model-dir", required=True, metavar="DIR", help="directory of a saved V0Regressor")
    q.add_argument("--pool", required=True, metavar="A,B,C", help="comma-separated policies to route between")
    q.add_argument("--strategy", default="utility", choices=names, help="routing strategy (default utility)")
    q.add_argument("--knob", type=float, default=None,
                   help="the strategy's knob: lam (utility), tau (threshold), budget (budget), target (quality-target)")
    q.add_argument("--prices", default=None, help="JSON object (or file) policy -> cost per call")
    q.add_argument("--cost-log", default=None, metavar="LOG",
                   help="outcome log whose 'cost' column trains a kNN cost model")
    q.add_argument("--out", required=True, metavar="FILE", help="output file (.jsonl/.csv/.parquet)")
    q.set_defaults(func=_route, inputs=("model_dir", "prompts", "cost_log"))
