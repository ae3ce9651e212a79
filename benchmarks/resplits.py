"""auto vs the simple routing peers over random prompt resplits of each routing log (issue 16).

benchmarks/peers.py scores every head on one fixed test split per log. A single split is noisy:
RouterBench's test has 945 prompts, and one task of routerdc's in-distribution test (humaneval)
has 49 prompts but a sixth of the headline's weight. This script repeats the comparison on
``--splits`` random 70/30 splits of the prompts of each log and reports, per head, the mean
headline over splits and auto's lead over it with a t interval over splits, and how often auto
won. The "best peer on each split" row takes, split by split, whichever simple peer scored best
on that split's test prompts: a choice no user can make before seeing the test, so it is an
upper bound on the peers.

Logs (``$V0LITE_DATA``, default ../shared/data):

* routerdc-7model, in distribution: RouterDC's official train plus its in-distribution test
  (``*_train`` and ``*_test`` files, questions in both kept once), resplit by prompt. Headline:
  mean over tasks of the chosen (argmax p) model's score.
* routerdc-routerbench: its train plus its test, resplit by prompt; test prompts answered by
  every model. Headline: AIQ of the utility router (kNN cost model fitted on the split's train,
  64-knob sweep), as in peers.py.

    python benchmarks/resplits.py                         # both logs, 10 splits each (~15 min)
    python benchmarks/resplits.py --logs routerbench --splits 3 --no-write
    python benchmarks/resplits.py --quick                 # --splits 2, no RESULTS.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._peers_data import routerbench_with_notes, routerdc_official  # noqa: E402
from benchmarks._results import command_line, machine_info, parse_quick, write_section  # noqa: E402
from benchmarks.peers import (  # noqa: E402
    DEFAULT,
    _aiq_scorer,
    _matrix_query,
    _mean_task_acc,
    _pivot,
    _require_complete,
    _task_of,
    _warm_cache,
)
from benchmarks.peers import HEADS as _ALL_HEADS  # noqa: E402
from v0lite.estimator import V0Regressor  # noqa: E402

# row label -> (head, head_params): the prior as a floor, the three simple peers, the default
HEADS = {k: _ALL_HEADS[k] for k in ("prior", "kNN (k by CV)", "per-model logistic", "per-model ridge", DEFAULT)}
PEERS = ("kNN (k by CV)", "per-model logistic", "per-model ridge")
TEST_FRAC = 0.3
SPLITS, QUICK_SPLITS = 10, 2
LOGS = ("routerdc", "routerbench")


def _t975(df):
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (a two-sided 95% interval)."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def _split(df, seed):
    """Random 70/30 split of the log's prompts (seeded)."""
    prompts = np.array(df["prompt"].unique(maintain_order=True).to_list(), dtype=object)
    rng = np.random.default_rng(seed)
    test = set(prompts[rng.random(len(prompts)) < TEST_FRAC].tolist())
    is_test = df["prompt"].is_in(list(test))
    return df.filter(~is_test), df.filter(is_test)


def _fit_predict(labels, train, query, shape, log, tag):
    out, chosen = {}, None
    for label in labels:
        head, params = HEADS[label]
        t0 = time.perf_counter()
        model = V0Regressor(head=head, head_params=params or None, random_state=0).fit(train)
        fit_s = time.perf_counter() - t0
        out[label] = (model.predict(query).reshape(shape), fit_s)
        if label == DEFAULT:
            chosen = getattr(model.head_, "chosen_", None)
        log(f"{tag} {label}: fit {fit_s:.1f}s")
    return out, chosen


def routerdc_in_distribution():
    d = routerdc_official()
    return pl.concat([d["train"], d["test_id"]], how="diagonal_relaxed")


def bench_routerdc(labels, n_splits, log=print):
    full = routerdc_in_distribution()
    _warm_cache([full], log)
    policies = sorted(full["policy"].unique().to_list())
    runs = []
    for s in range(n_splits):
        train, test = _split(full, 1000 + s)  # the seeds main() prints
        prompts, Y = _pivot(test, policies)
        _require_complete(Y, prompts, policies, f"routerdc split {s + 1} test")  # refused, never scored as 0
        tasks = _task_of(test, prompts)
        preds, chosen = _fit_predict(
            labels, train, _matrix_query(prompts, policies), Y.shape, log, f"routerdc split {s + 1}/{n_splits}"
        )
        runs.append({"scores": {k: _mean_task_acc(Y, P, tasks) for k, (P, _) in preds.items()}, "chosen": chosen})
        runs[-1]["fit_s"] = {k: f for k, (_, f) in preds.items()}
        log(f"routerdc split {s + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in runs[-1]["scores"].items()))
    return {"runs": runs, "n_prompts": full["prompt"].n_unique(), "n_policies": len(policies)}


def bench_routerbench(labels, n_splits, log=print):
    from v0lite.embed import Embedder
    from v0lite.routing import UtilityStrategy

    d, notes = routerbench_with_notes()
    for n in notes:
        log(f"routerbench converter: {n}")
    both = pl.concat([d["train"], d["test"]], how="diagonal_relaxed")
    full = both.unique(["policy", "prompt"], keep="first", maintain_order=True)
    log(f"routerbench: {both.height - full.height:,} repeated (policy, prompt) rows dropped (first kept)")
    _warm_cache([full], log)
    policies = sorted(full["policy"].unique().to_list())
    strat, emb = UtilityStrategy(), Embedder()
    runs = []
    for s in range(n_splits):
        train, test = _split(full, 2000 + s)
        prompts, Y, score = _aiq_scorer(train, test, policies, strat, emb)
        log(f"routerbench split {s + 1}: {test['prompt'].n_unique() - len(prompts)} incomplete test prompts left out")
        preds, chosen = _fit_predict(
            labels, train, _matrix_query(prompts, policies), Y.shape, log, f"routerbench split {s + 1}/{n_splits}"
        )
        scores = {k: score(P) for k, (P, _) in preds.items()}
        runs.append({"scores": scores, "chosen": chosen})
        runs[-1]["fit_s"] = {k: f for k, (_, f) in preds.items()}
        log(f"routerbench split {s + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in runs[-1]["scores"].items()))
    notes = [f"routerbench converter: {n}" for n in notes]
    return {"runs": runs, "n_prompts": full["prompt"].n_unique(), "n_policies": len(policies), "notes": notes}


def _interval(d):
    """Mean of ``d`` and its two-sided 95% t interval over splits (None with one split)."""
    d = np.asarray(d, np.float64)
    m = float(d.mean())
    if len(d) < 2:
        return m, None, None
    half = _t975(len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return m, m - half, m + half


def _table(name, headline, res):
    runs = res["runs"]
    labels = list(runs[0]["scores"])
    A = {k: np.array([r["scores"][k] for r in runs]) for k in labels}
    peers = [p for p in PEERS if p in A]
    if peers:
        A["best peer on each split (upper bound)"] = np.max([A[p] for p in peers], axis=0)
    fit = {k: float(np.median([r["fit_s"][k] for r in runs])) for k in labels}
    lines = [
        f"| {name} | mean {headline} | sd over splits | auto minus it [95% CI over splits] | auto ahead on "
        "| median fit s |",
        "|---|---|---|---|---|---|",
    ]
    for k, v in A.items():
        cell, wins = "-", "-"
        if DEFAULT in A and k != DEFAULT:
            m, lo, hi = _interval(A[DEFAULT] - v)
            cell = f"{m:+.4f}" + ("" if lo is None else f" [{lo:+.4f}, {hi:+.4f}]")
            wins = f"{int((A[DEFAULT] > v).sum())} of {len(v)}"
        sd = v.std(ddof=1) if len(v) > 1 else 0.0
        fit_cell = f"{fit[k]:.1f}" if k in fit else "-"
        lines.append(f"| {k} | {v.mean():.4f} | {sd:.4f} | {cell} | {wins} | {fit_cell} |")
    chosen = [r["chosen"] for r in runs if r["chosen"]]
    if chosen:
        counts = {c: chosen.count(c) for c in dict.fromkeys(chosen)}
        lines += ["", "auto chose: " + ", ".join(f"{c} ({n} of {len(chosen)})" for c, n in counts.items())]
    return "\n".join(lines)


def _parse_args(argv=None):
    """Arguments, ``--quick`` resolved (``--splits 2``, no write); bad values refused."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logs", default="routerdc,routerbench")
    ap.add_argument("--splits", type=int, default=SPLITS, help="random splits per log")
    ap.add_argument("--heads", default=",".join(h for h, _ in HEADS.values()), help="head names, comma-separated")
    ap.add_argument("--quick", action="store_true", help=f"--splits {QUICK_SPLITS}; leave RESULTS.md alone")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parse_quick(ap, argv, {"splits": QUICK_SPLITS})  # an explicit --splits wins; --quick never writes
    if args.splits < 1:
        ap.error(f"--splits must be >= 1, got {args.splits}")
    by_head = {h: label for label, (h, _) in HEADS.items()}
    unknown = [h for h in args.heads.split(",") if h and h not in by_head]
    if unknown:
        ap.error(f"--heads: unknown {unknown}; choose from {sorted(by_head)}")
    args.labels = [by_head[h] for h in args.heads.split(",") if h]
    for log in args.logs.split(","):
        if log not in LOGS:
            ap.error(f"--logs: unknown {log!r}; choose from {sorted(LOGS)}")
    return args


def main(argv=None):
    args = _parse_args(argv)
    labels = args.labels
    t_start = time.perf_counter()
    logs = {
        "routerdc": (bench_routerdc, "routerdc-7model", "task acc", "official train + test_id", 1000),
        "routerbench": (bench_routerbench, "routerbench", "AIQ", "train + test", 2000),
    }
    parts = []
    for log in args.logs.split(","):
        bench, name, headline, source, seed = logs[log]
        res = bench(labels, args.splits)
        parts.append(
            f"{name} ({source}, {res['n_prompts']:,} prompts, {res['n_policies']} models), {args.splits} random "
            f"70/30 prompt splits (seeds {seed}+; test prompts answered by every model):\n\n"
            + _table(name, headline, res)
        )
        parts += res.get("notes", [])
    body = "\n\n".join(parts)
    print(body)
    if not args.no_write:
        cmd = command_line("resplits.py", argv)
        write_section(
            "resplits",
            "Peers over random prompt resplits (issue 16)",
            f"Command: `{cmd.strip()}`  \n{machine_info()}; total {time.perf_counter() - t_start:.0f} s.\n\n"
            "Per log: the mean headline over splits, its standard deviation, auto's lead over each row "
            "with a t 95% interval over splits, and on how many splits auto scored higher. The last row "
            "picks the best simple peer on each split's test prompts, which no user can do: an upper "
            "bound on the peers.\n\n" + body,
        )


if __name__ == "__main__":
    main()
