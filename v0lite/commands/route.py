"""CLI: ``v0lite route-eval`` (offline routing evaluation) and ``v0lite route`` (route prompts)."""

from __future__ import annotations

import os
import shlex
import warnings

from ..exceptions import DataError, V0liteWarning
from ._common import (
    ENCODER_MOVED_HELP,
    _named,
    add_force_flag,
    add_progress_flags,
    add_seed_flag,
    check_input,
    check_model_dir,
    check_output,
    check_router_dir,
    encoder_flag,
    fallback_flag,
    finite_knob,
    head_choices,
    int_at_least,
    json_bytes,
    model_name,
    note,
    progress,
    progress_lines,
    read_input,
)
from ._prices import PRICES_HELP, check_priced, parse_prices, prices_shown
from ._route_report import TABLE_KEYS as _TABLE_KEYS
from ._route_report import cost_log as _cost_log
from ._route_report import fmt as _fmt
from ._route_report import (
    print_join_gain,
    print_knn_seen,
    print_per_request,
    warn_shared_prompts,
    why_missing,
    write_json_or_undo,
)
from ._route_report import print_per_task as _print_per_task
from ._route_report import print_route_baselines as _print_route_baselines
from ._route_report import warn_unit_costs as _warn_unit_costs

__all__ = ["register", "STRATEGY_NAMES", "why_missing"]

# The names of v0lite.routing.STRATEGIES, spelled out so `--help` and argument errors need no import of
# v0lite.routing (scikit-learn, polars); tests/test_cli.py checks that they match.
STRATEGY_NAMES = ("budget", "quality-target", "threshold", "utility")


def _make_value_model(args):
    from ..estimator import V0Regressor

    kw = {"random_state": args.random_state, "show_progress_bar": progress(args)}
    if args.encoder:
        kw["encoder"] = args.encoder
    if args.head:
        kw["head"] = args.head
    return V0Regressor(**kw)


def _load_value_model(model_dir, show_progress_bar: bool = False, encoder=None, fallback=None):
    from ..estimator import V0Regressor

    model = V0Regressor.load(model_dir, encoder=encoder).set_params(show_progress_bar=show_progress_bar)
    return model.set_params(fallback=fallback) if fallback else model


def _make_embedder(args):
    """The embedder of the cost model and the baselines: the value model's encoder (long prompts: head + tail)."""
    from ..embed import Embedder

    return Embedder(args.encoder, show_progress_bar=progress(args))


def _shrink_arg(value: str):
    """``--shrink``'s type: ``none`` -> None, ``cv`` -> "cv", else a weight in [0, 1] (argparse: exit 2)."""
    import argparse

    if value.strip().lower() == "none":
        return None
    if value.strip().lower() == "cv":
        return "cv"
    try:
        weight = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not 'none', 'cv' or a number (e.g. --shrink cv)") from None
    if not 0.0 <= weight <= 1.0:
        raise argparse.ArgumentTypeError(f"{value}: a weight must be in [0, 1] (or cv, or none)")
    return weight


def _route_eval(args) -> int:
    if args.plot:  # fail now, not after the evaluation
        from .._extras import require

        require("matplotlib", "plot", "--plot")
    from ..routing._evaluate import UnitCostWarning
    from ..routing._pool import SparseTestError, restrict_pool

    check_input(args.train, "TRAIN")
    check_input(args.test, "TEST")
    check_output(args.json, "--json", (".json",))
    check_output(args.plot, "--plot", (".png",))
    if (args.new_model is None) != (args.n is None):
        raise DataError("--new-model and --n go together. Fix: pass both (e.g. --new-model NAME --n 30), or neither.")
    if args.save_router:  # before the work: a save never deletes what v0lite did not write
        from ..persist import check_save_target

        check_save_target(args.save_router, "v0lite-router", flag="--save-router")  # routing's ROUTER_FORMAT
    prices, shrink = parse_prices(args.prices), args.shrink  # flags first, then the work
    chosen = _pool(args, prices)
    if chosen is not None and args.new_model is not None and args.new_model not in chosen:
        raise DataError(f"--new-model {args.new_model} is not in --pool {args.pool}. Fix: add it to --pool.")
    train, test = read_input(args.train, "TRAIN"), read_input(args.test, "TEST")
    logs = (train, test)  # whole, for route_eval: the models --pool leaves out are no typos in --prices
    train, test = restrict_pool(train, test, chosen, "--pool")
    warn_shared_prompts(args, train, test)  # figures on prompts the routers saw are not held out
    pool = sorted(set(train["policy"].unique().to_list()) & set(test["policy"].unique().to_list()))
    if prices is not None:  # in flag terms, before route_eval says the same of its `prices`
        check_priced(pool, prices, args.prices)
    new_n = None if args.new_model is None else _check_new_model(args, train, test, pool)
    if prices is None:  # in flag terms, in place of route_eval's warning (its fix names prices=)
        _warn_unit_costs(args, train, test)
    # --json, --plot and --save-router are all or nothing: the JSON's bytes are built before anything is
    # written, and a JSON write that fails removes the outputs this run created (not those there before)
    made = {
        f: p for f, p in (("--save-router", args.save_router), ("--plot", args.plot)) if p and not os.path.lexists(p)
    }
    out: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitCostWarning)
        try:
            result = _run_route_eval(args, *logs, prices, shrink, new_n, out, chosen)
        except SparseTestError as exc:  # before any fit: its fix in flag terms
            raise DataError(f"TEST {args.test}: {exc.text(cli=True)}") from exc
    if args.json:
        write_json_or_undo(args, out["json"], made)
    _print_route_eval(args, result, has_task="task" in train.columns and "task" in test.columns)
    return 0


def _run_route_eval(args, train, test, prices, shrink, new_n, out: dict, pool=None):
    from ..routing import route_eval

    def before_writes(result):  # --json's bytes, before the plot and the router are written
        if args.json:
            out["json"] = json_bytes(args.json, result)

    return route_eval(
        train,
        test,
        value_model=_make_value_model(args),
        embedder=_make_embedder(args),
        k_baseline=args.k_baseline,
        strategy=args.strategy,
        plot=args.plot,
        prices=prices,
        shrink=shrink,
        random_state=args.random_state,
        per_task=args.per_task,
        baselines=not args.no_baselines,
        **({"tuned_ks": None} if args.no_baselines else {}),  # the tuned kNN is a baseline too (its CV fits)
        progress=progress_lines(args),
        save_router=args.save_router,
        before_writes=before_writes,
        show_progress_bar=progress(args),
        new_model=args.new_model,
        new_n=new_n,
        pool=pool,
    )


def _print_route_eval(args, result, has_task: bool | None = None) -> None:
    if args.new_model is not None:
        print(
            f"new model {result['new_model']!r}: fitted without it, {result['new_model_n']} of its train outcomes "
            f"added (no refit); its within-model AUC on TEST {_fmt(result['new_model_auc'])}"
        )
    width = max(len(k) for k in _TABLE_KEYS)
    for key in (*_TABLE_KEYS, "within_policy_auc", "within_task_auc", "mean_task_acc"):
        if key in result and not (args.no_baselines and key.startswith("baseline_knn_tuned")):
            v = result[key]
            note = f"  ({why_missing(key, result, has_task=has_task)})" if v is None else ""
            print(f"{key:<{width}}  {_fmt(v)}{note}")
    if args.new_model is not None:  # the comparison that says whether to route to it yet
        print_join_gain(result)
    if result.get("cost_source") in ("log", "prices"):
        print(f"(costs in USD per call, from {'the logs' if result['cost_source'] == 'log' else '--prices'})")
    print_per_request(result)
    print_knn_seen(result, args.k_baseline)
    if args.per_task:
        _print_per_task(result)
    if result.get("baselines"):
        _print_route_baselines(result)
    if args.json:
        print(f"wrote {args.json}")
    if args.plot:
        print(f"wrote {args.plot}")
    if args.save_router:
        print(
            f"saved the router (value model, pool, costs) to {args.save_router}; route with "
            f"`v0lite route PROMPTS --router {shlex.quote(args.save_router)} --out FILE`"
        )


def _check_new_model(args, train, test, pool: list[str]) -> int:
    """``--new-model NAME --n N`` in flag terms: which input lacks NAME, and N beyond its TRAIN outcomes (then
    all of them: the ``--n`` route_eval gets)."""
    lacking = [
        f"{flag} {path}"
        for flag, path, frame in (("TRAIN", args.train, train), ("TEST", args.test, test))
        if not (frame["policy"] == args.new_model).any()
    ]
    if lacking:
        shown = pool[:10] + (["..."] if len(pool) > 10 else [])
        raise DataError(
            f"--new-model {args.new_model}: has no outcomes in {' nor in '.join(lacking)}; it must be a model "
            f"of both (the pool: {shown}). Fix: pass --new-model naming one of the pool's models, or log its "
            f"outcomes in {' and '.join(f.split()[0] for f in lacking)}."
        )
    if len(pool) < 2:
        raise DataError(
            f"--new-model {args.new_model}: needs a pool of at least two models (TRAIN and TEST share {pool}). "
            "Fix: evaluate a larger pool, or leave out --new-model."
        )
    n_rows = int((train["policy"] == args.new_model).sum())
    if args.n > n_rows:
        warnings.warn(
            f"--n {args.n} is more than the {n_rows} TRAIN outcomes of --new-model {args.new_model}: all of them "
            "are added.",
            V0liteWarning,
            stacklevel=2,
        )
    return min(args.n, n_rows)


def _pool(args, prices) -> list[str] | None:
    if args.pool is None:
        return None
    pool = [p.strip() for p in args.pool.split(",") if p.strip()]
    if not pool:
        raise DataError("--pool is empty. Fix: pass model names separated by commas, e.g. --pool a,b.")
    return pool


def _load_router(args, prices, pool):
    """``--router DIR``: the router route-eval saved (value model, pool, costs learned from its log)."""
    from ..routing import Router

    d = check_router_dir(args.router, model_dir_flag="--model-dir")
    router = Router.load(d, encoder=args.encoder)  # a moved encoder folder: checked by fingerprint at load
    vm = router.value_model
    if hasattr(vm, "set_params") and "show_progress_bar" in vm.get_params():
        vm.set_params(show_progress_bar=progress(args))
        if args.fallback:
            vm.set_params(fallback=args.fallback)
    if hasattr(vm, "_get_embedder"):  # the cost model and the prior read prompts as the value model does
        router.embedder_ = vm._get_embedder()
    if pool is not None and sorted(pool) != sorted(router.policies_):
        raise DataError(
            f"--pool {args.pool} differs from the saved router's pool {router.policies_}. Fix: leave "
            "--pool out with --router (a router is tuned for its pool), or use --model-dir."
        )
    if args.strategy is not None:
        router.set_strategy(args.strategy)
    if prices is not None:  # fixed prices per call replace the per-prompt costs learned from the log
        keep = ", or leave out --prices (the router keeps its learned costs)"
        check_priced(list(router.policies_), prices, args.prices, keep)
        before = list(router.policies_)
        router.set_prices(prices)  # as in Python: a priced model the value model holds joins the pool
        joined = router.policies_[len(before) :]
        if joined:
            note(args, f"--prices prices {joined}, which the value model of --router {args.router} has history "
                 "for: they join the router's pool at these prices")  # fmt: skip
    return router


def _check_pool_known(router, args) -> None:
    """A pool model the value model has no history of: name it and the two fixes, not a matrix row."""
    vm = router.value_model
    known = getattr(getattr(vm, "index_", None), "policies", None)
    if known is None or getattr(vm, "fallback", "error") != "error":
        return
    unknown = [p for p in router.policies_ if p not in set(known)]
    if unknown:
        where = f"--router {args.router}" if args.router else f"--model-dir {args.model_dir}"
        raise DataError(
            f"the pool's models {unknown} have no history in the value model of {where} (it knows "
            f"{len(known)}: {list(known)[:8]}). Fix: leave them out of --pool, or pass --fallback global_mean "
            "(they are then predicted at the mean of the whole history)."
        )


def _priced_pool(args, value_model, prices: dict[str, float]) -> list[str]:
    """No ``--pool``: the --prices models the value model has history for (``Router(prices=...)``'s rule), or
    with ``--fallback global_mean`` (it answers a model without history) every priced model. The models
    with history but no price are named in a note, in flag terms; the priced ones without history in
    ``Router.fit``'s warning (one check for every caller)."""
    from ..routing._pool import priced_split

    pool, later, unpriced, known = priced_split(value_model, prices)
    where = f"--model-dir {args.model_dir}"
    if known is None:  # a value model that does not say what it knows
        return pool
    if unpriced:
        note(args, f"the value model of {where} has history for {unpriced}, which --prices does not price: left "
             "out of the pool; add them to --prices to route to them")  # fmt: skip
    if args.fallback == "global_mean":
        return sorted(prices)
    if not pool:
        raise DataError(
            f"--prices {prices_shown(args.prices)}: none of its {len(prices)} models has history in the value "
            f"model of {where} (priced: {later[:8]}; it knows {len(known)}: {sorted(known)[:8]}). Fix: add prices "
            "for its models to --prices, or pass --fallback global_mean to route between the priced models."
        )
    return pool  # the priced models without history (`later`): Router.fit's warning names them


def _route(args) -> int:
    import numpy as np
    import polars as pl

    from ..log import as_frame, check_csv_columns, write_log
    from ..routing import Router, get_strategy
    from ..routing._router import _as_prompts

    check_input(args.prompts, "PROMPTS")
    check_output(args.out, "--out")
    if args.cost_log:
        check_input(args.cost_log, "--cost-log")
    if args.knob is not None and (args.strategy or args.router is None):  # else: the saved router's, below
        get_strategy(args.strategy or "utility").check_knob(args.knob)
    prices = parse_prices(args.prices)
    pool = _pool(args, prices)
    frame = as_frame(args.prompts, holds="the prompts to route: a 'prompt' column")  # before any model is loaded
    if "prompt" not in frame.columns:
        raise DataError(f"{args.prompts}: no 'prompt' column (columns present: {frame.columns}). Fix: add one.")
    if frame.height == 0:  # before any model is loaded or --out is written
        raise DataError(f"PROMPTS {args.prompts}: has no rows (only a header). Fix: add the prompts to route.")
    check_csv_columns(frame.schema, args.out, "--out")  # the columns pass through to --out: before any model
    try:  # a blank prompt: before any model, named by its file, column and row
        _as_prompts(frame.select("prompt"))
    except DataError as exc:
        raise _named(exc, args.prompts, "PROMPTS") from exc
    if args.router is not None:
        if args.cost_log:
            raise DataError("--cost-log trains a cost model, but --router brings its own. Fix: use one of them.")
        router = _load_router(args, prices, pool)
        if args.knob is not None:
            router.strategy_.check_knob(args.knob)
    else:
        if pool is None and prices is None:
            raise DataError(
                "--model-dir needs the models to route between. Fix: pass --pool A,B,C, or --prices "
                "FILE (its models are the pool)."
            )
        if pool is not None and prices is not None and not args.cost_log:
            check_priced(pool, prices, args.prices, ", or leave them out of --pool")
        model_dir = check_model_dir(args.model_dir)
        value_model = None  # loaded after --cost-log is checked, unless the default pool needs it first
        if pool is None:  # the priced models with history: the model says which
            value_model = _load_value_model(model_dir, progress(args), args.encoder, args.fallback)
            pool = _priced_pool(args, value_model, prices)
        if args.cost_log:
            cost_model, log = "knn", _cost_log(args, pool, prices)
        elif prices is not None:
            cost_model, log = "fixed", None
        else:
            note(args, "no --prices or --cost-log: every call costs 1 (routing trades success only)")
            cost_model, log = "unit", None
        if value_model is None:
            value_model = _load_value_model(model_dir, progress(args), args.encoder, args.fallback)
        router = Router(
            value_model,
            policies=pool,
            strategy=args.strategy or "utility",
            cost_model=cost_model,
            prices=prices,
        ).fit(log)
    _check_pool_known(router, args)
    clash = [c for c in ("policy", "p_success", "pred_cost") if c in frame.columns]
    if clash:
        note(args, f"input columns {clash} are replaced by the routing output")
        frame = frame.drop(clash)
    P, C = router.predict_matrix(frame["prompt"].to_list())
    knob = {} if args.knob is None else {"knob": args.knob}
    if router.strategy_.name == "utility" and args.knob and C.size:
        spread = float(np.mean(C.max(axis=1) - C.min(axis=1)))
        if 0 < args.knob * spread < 0.01:  # lam is success per unit of cost: tiny costs need a big lam
            note(
                args,
                f"--knob {args.knob:g} x the pool's cost spread {spread:.3g} = {args.knob * spread:.2g} "
                f"success: cost barely counts; a visible trade needs --knob near {0.05 / spread:.3g} or more",
            )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idx = router.choose(P, C, **knob)
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)  # the CLI's one warning format
    rows = np.arange(len(idx))
    out = frame.with_columns(
        pl.Series("policy", np.asarray(router.policies_, dtype=object)[idx].tolist(), dtype=pl.String),
        pl.Series("p_success", P[rows, idx], dtype=pl.Float64),
        pl.Series("pred_cost", C[rows, idx], dtype=pl.Float64),
    )
    write_log(out, args.out)
    counts = out["policy"].value_counts(sort=True)
    share = ", ".join(f"{p}: {n}" for p, n in zip(counts["policy"].to_list(), counts["count"].to_list()))
    print(
        f"routed {out.height} prompts ({share}); mean p_success {float(out['p_success'].mean()):.4f}, "
        f"mean pred_cost {float(out['pred_cost'].mean()):.6g}; wrote {args.out}"
    )
    return 0


_KNOB_HELP = {
    "utility": "lam >= 0 (default 0): success probability given up per unit of cost, i.e. per USD per call "
    "with USD prices; the router picks argmax p - lam * cost. 0 = most likely model; with prices "
    "near 1e-3 USD a visible trade needs lam in the hundreds",
    "threshold": "tau in [0, 1] (default 0.5): the cheapest model with predicted success >= tau",
    "budget": "mean cost per prompt, in the cost's unit (USD per call with USD prices); required",
    "quality-target": "target mean predicted success in [0, 1]; the cheapest routing reaching it; required",
}


def register(subparsers) -> None:
    """Add ``route-eval`` and ``route`` to an argparse subparsers object (each sets ``func``)."""
    names = list(STRATEGY_NAMES)
    knob_help = "the strategy's knob. " + "; ".join(f"{k}: {v}" for k, v in _KNOB_HELP.items())

    def encoder_flags(p):
        encoder_flag(p)

    p = subparsers.add_parser(
        "route-eval",
        help="offline routing evaluation: AIQ, cost savings, oracle, kNN baseline",
        description="Fit a value model on TRAIN, sweep the routing knob on TEST, report the frontier against "
        "every single model, the oracle and kNN routers. A '-' is explained on its line.",
    )
    p.add_argument(
        "train",
        metavar="TRAIN",
        help="outcome log to learn from (.jsonl/.csv/.parquet), with cost (USD per call) unless --prices",
    )
    p.add_argument("test", metavar="TEST", help="outcome log with every pool model's outcome per prompt")
    p.add_argument("--json", metavar="FILE", help="write the full result (metrics and curves) to FILE (.json)")
    p.add_argument("--plot", metavar="FILE", help="write the cost/accuracy frontier plot to FILE (.png)")
    p.add_argument("--strategy", default="utility", choices=names, help="routing strategy to sweep (default utility)")
    p.add_argument(
        "--head",
        default=None,
        choices=head_choices(),
        metavar="HEAD",
        help=f"value-model head, one of {head_choices()} (default: the estimator's default head)",
    )
    encoder_flags(p)
    p.add_argument("--prices", default=None, metavar="FILE", help=PRICES_HELP + "; replaces the logs' cost column")
    p.add_argument(
        "--k-baseline",
        type=int_at_least(1),
        default=32,
        metavar="K",
        help="neighbours of the plain kNN router baseline (default 32, RouterBench's)",
    )
    p.add_argument(
        "--shrink",
        default=None,
        type=_shrink_arg,
        metavar="none|cv|A",
        help="blend predicted success with the train log's neighbourhood success rate: a weight in "
        "[0, 1], or 'cv' to choose weight and neighbours on prompt-grouped folds of TRAIN "
        "(5 extra value-model fits); default none",
    )
    p.add_argument(
        "--per-task",
        action="store_true",
        help="also report each task's accuracy of the router's top choice (the most likely model, "
        "whatever its cost) and their unweighted mean, mean_task_acc (RouterDC's headline); "
        "needs a 'task' column in TRAIN and TEST",
    )
    p.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the baseline routers printed beside the router (prompt-blind prior, tuned kNN, "
        "per-model logistic, pooled ridge; one more fit on TRAIN each, the tuned kNN's k chosen by CV): "
        "their baseline_knn_tuned_* keys are then null; the fixed-k kNN of --k-baseline is still reported",
    )
    p.add_argument(
        "--save-router",
        default=None,
        metavar="DIR",
        help="save the router fitted on TRAIN (value model, pool, cost model, shrinkage) to folder DIR, "
        "for `v0lite route --router DIR`",
    )
    p.add_argument(
        "--new-model",
        default=None,
        type=model_name,
        metavar="NAME",
        help="a model added later: fit without it, add --n of its TRAIN outcomes (no refit), "
        "report the frontier with it in the pool, its within-model AUC, and the pool's headline before it "
        "joined (whether routing to it pays yet)",
    )
    p.add_argument(
        "--n",
        type=int_at_least(1),
        default=None,
        metavar="N",
        help="with --new-model: how many of its TRAIN outcomes to add (>= 1)",
    )
    p.add_argument(
        "--pool",
        default=None,
        metavar="A,B,C",
        help="comma-separated models to evaluate, each with outcomes in TRAIN and TEST: the other models' rows "
        "of both are left out (default: every model of both; a model with outcomes on few TEST prompts "
        "leaves few complete prompts, so leave it out here)",
    )
    add_seed_flag(p, "seed of every random choice (default 0)")
    add_force_flag(p)
    add_progress_flags(p)
    p.set_defaults(
        func=_route_eval,
        inputs=("train", "test"),
        outputs={"json": "--json", "plot": "--plot"},
        replaces={"save_router": "--save-router"},
    )

    q = subparsers.add_parser(
        "route",
        help="route prompts to policies with a saved value model",
        description="Write PROMPTS plus the chosen policy, its p_success and pred_cost.",
    )
    q.add_argument("prompts", metavar="PROMPTS", help="file with a 'prompt' column (.jsonl/.csv/.parquet)")
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--model-dir", metavar="DIR", help="folder of a model saved by `v0lite fit` (with --pool or --prices)"
    )
    which.add_argument(
        "--router",
        metavar="DIR",
        help="folder of a router saved by `v0lite route-eval --save-router DIR`: its value model, "
        "pool, strategy and per-prompt costs (learned from its train log)",
    )
    q.add_argument(
        "--pool",
        default=None,
        metavar="A,B,C",
        help="comma-separated models to route between, with --model-dir (default: the --prices models the model "
        "has history for; with --fallback global_mean every --prices model); a --router routes between its own pool "
        "(and the --prices models its value model has history for)",
    )
    q.add_argument(
        "--strategy", default=None, choices=names, help="routing strategy (default: the router's, else utility)"
    )
    q.add_argument("--knob", type=finite_knob, default=None, metavar="X", help=knob_help)
    q.add_argument(
        "--prices",
        default=None,
        metavar="FILE",
        help=PRICES_HELP + ". Every pool model needs a price: a missing one stops with its name, "
        "nothing is guessed. With --router, these prices replace its learned costs (and the price a model "
        "added by route-eval --new-model joined at), and a priced model its value model has history for joins "
        "its pool, as Router.set_prices does; with --cost-log, only the pool models it has no cost for",
    )
    q.add_argument(
        "--cost-log",
        default=None,
        metavar="LOG",
        help="outcome log whose 'cost' column (USD per call) trains a per-prompt kNN cost model; with it, "
        "--prices prices only the pool models the log has no cost for (a model in both stops with its name)",
    )
    q.add_argument("--out", required=True, metavar="FILE", help="output file (.jsonl/.csv/.parquet)")
    fallback_flag(q)
    encoder_flag(q, ENCODER_MOVED_HELP.format(what="value model's "))
    add_force_flag(q)
    add_progress_flags(q)
    q.set_defaults(func=_route, inputs=("model_dir", "prompts", "cost_log"), outputs={"out": "--out"})
