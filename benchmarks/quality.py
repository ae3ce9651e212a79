"""Prediction quality of every head, side by side, on the real public data (issues 2 and 3).

Datasets (found via $V0LITE_DATA, else ../shared/data; each skipped with a message when its folder is absent):

* v0-dapomath: history = context.jsonl, queries = train.jsonl (the issue's contract), plus a
  4-fold prompt-grouped cross-validation on context.jsonl (3,072 rows: a steadier estimate than
  the 192 query rows);
* routerdc-7model: held-out prompts (split_by_prompt 80/20), and leave-one-policy-out: fit without
  a policy, give it only its train-split history via ``add_history`` (no refit), predict its test rows;
* oneshot-rlvr-dsr-sub: fit on the first visits, then predict visit t from visits < t for cold
  prompts (each prompt's own earlier visits hidden).

Metrics: AUC (positive = score >= 0.5), within-policy AUC, Brier, ECE, fit seconds, predictions/s.
Heads: every head, the default ``auto`` among them; a second table reads ``auto`` against the best
simple peer of the same run (prior, knn, the pooled ridge ``linear``, per-policy ``logistic``) per dataset.

    python benchmarks/quality.py [--quick] [--heads prior,knn,...] [--datasets v0,routerdc,oneshot] [--no-write]

``--quick`` (small subsets) implies ``--no-write``: a smoke run never replaces RESULTS.md's section.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._results import command_line, machine_info, parse_quick, write_section  # noqa: E402
from v0lite.data import (  # noqa: E402
    convert_oneshot_rlvr,
    convert_routerdc,
    convert_v0,
    data_dir,
    prompt_folds,
    split_by_prompt,
)
from v0lite.estimator import V0Regressor  # noqa: E402
from v0lite.metrics import auc, brier, ece, within_policy_auc  # noqa: E402

HEADS = ["prior", "knn", "linear", "logistic", "gbdt", "transformer", "ensemble", "auto"]
DEFAULT = "auto"  # V0Regressor's default head
# the simple peers a user could write (v0lite.baselines.BASELINES' heads at their defaults): the default
# head's figures are read against the best of them on the same rows, from the same run
PEERS = ("prior", "knn", "linear", "logistic")
# --datasets name -> its folder under the data root
FOLDERS = {"v0": "v0-dapomath", "routerdc": "routerdc-7model", "oneshot": "oneshot-rlvr-dsr-sub"}


HEAD_PARAMS: dict = {}  # head -> head_params, from --head-params


def _groups(df):
    return (
        (df["policy"] + "@" + df["step"].cast(pl.String)).to_numpy()
        if "step" in df.columns
        else df["policy"].to_numpy()
    )


def _score(y, p, groups):
    return {
        "n": len(y),
        "auc": auc(y, p),
        "within_policy_auc": within_policy_auc(y, p, groups),
        "brier": brier(y, p),
        "ece": ece(y, p),
    }


def _fit_predict(head, hist, queries, *, exclude_own_prompt=False, add=None):
    t0 = time.perf_counter()
    model = V0Regressor(head=head, head_params=HEAD_PARAMS.get(head), random_state=0).fit(hist)
    fit_s = time.perf_counter() - t0
    if add is not None:
        model.add_history(add)
    model.predict(queries.head(min(64, queries.height)))  # warm-up: embeddings cached, lazy imports done
    t0 = time.perf_counter()
    p = model.predict(queries, exclude_own_prompt=exclude_own_prompt)
    pred_s = time.perf_counter() - t0
    return p, fit_s, len(p) / max(pred_s, 1e-9)


def bench_v0(heads, root, quick):
    H = convert_v0(root / "v0-dapomath" / "context.jsonl")
    Q = convert_v0(root / "v0-dapomath" / "train.jsonl")
    rows = []
    for head in heads:
        p, fit_s, pps = _fit_predict(head, H, Q)
        rows.append(
            {
                "dataset": "v0-dapomath queries",
                "head": head,
                **_score(Q["score"].to_numpy(), p, _groups(Q)),
                "fit_s": fit_s,
                "pred_per_s": pps,
            }
        )
        print(_fmt(rows[-1]), flush=True)
    prompts = sorted(H["prompt"].unique().to_list())
    fold_of = dict(zip(prompts, prompt_folds(len(prompts), 4, 0)))
    fold = np.array([fold_of[p] for p in H["prompt"].to_list()])
    for head in heads:
        P = np.zeros(H.height)
        fit_total = 0.0
        for f in range(2 if quick else 4):
            tr, te = H.filter(pl.Series(fold != f)), H.filter(pl.Series(fold == f))
            p, fit_s, _ = _fit_predict(head, tr, te)
            P[fold == f] = p
            fit_total += fit_s
        mask = fold < (2 if quick else 4)
        y = H["score"].to_numpy()[mask]
        rows.append(
            {
                "dataset": "v0-dapomath context CV",
                "head": head,
                **_score(y, P[mask], _groups(H)[mask]),
                "fit_s": fit_total / (2 if quick else 4),
                "pred_per_s": float("nan"),
            }
        )
        print(_fmt(rows[-1]), flush=True)
    return rows


def bench_routerdc(heads, root, quick, lopo_policies):
    df = convert_routerdc(root / "routerdc-7model").drop("split")
    if quick:
        keep = df["prompt"].unique().sort().sample(3000, seed=0)
        df = df.filter(pl.col("prompt").is_in(keep.implode()))
    tr, te = split_by_prompt(df, test_size=0.2, random_state=0)
    rows = []
    for head in heads:
        p, fit_s, pps = _fit_predict(head, tr, te)
        rows.append(
            {
                "dataset": "routerdc-7model held-out prompts",
                "head": head,
                **_score(te["score"].to_numpy(), p, te["policy"].to_numpy()),
                "fit_s": fit_s,
                "pred_per_s": pps,
            }
        )
        print(_fmt(rows[-1]), flush=True)
    policies = sorted(df["policy"].unique().to_list())[:lopo_policies]
    for head in heads:
        ys, ps, gs, fits = [], [], [], []
        for pol in policies:
            others = tr.filter(pl.col("policy") != pol)
            own_tr = tr.filter(pl.col("policy") == pol)
            own_te = te.filter(pl.col("policy") == pol)
            p, fit_s, _ = _fit_predict(head, others, own_te, add=own_tr)
            ys.append(own_te["score"].to_numpy())
            ps.append(p)
            gs.append(own_te["policy"].to_numpy())
            fits.append(fit_s)
        rows.append(
            {
                "dataset": f"routerdc-7model leave-one-policy-out ({len(policies)} policies)",
                "head": head,
                **_score(np.concatenate(ys), np.concatenate(ps), np.concatenate(gs)),
                "fit_s": float(np.mean(fits)),
                "pred_per_s": float("nan"),
            }
        )
        print(_fmt(rows[-1]), flush=True)
    return rows


def bench_oneshot(heads, root, quick, unseen=False):
    """Cold prompts of the oneshot log; ``unseen``: also a run whose head never saw the queried prompts.

    The issue's protocol fits the head on visits <= cut of all 1,209 prompts, so the weights have
    seen every queried prompt (trees can recognise one from its PCA features). The ``unseen`` rows
    fit the head on the early visits of a seeded half of the prompts only (the other half's early
    visits join the context through ``add_history``) and query the other half.
    """
    df = convert_oneshot_rlvr(root / "oneshot-rlvr-dsr-sub" / "dsr_sub_acc_history.jsonl")
    steps = sorted(df["step"].unique().to_list())
    cut = steps[max(1, int(np.ceil(0.1 * len(steps)))) - 1]
    targets = [t for t in steps if t > cut][:: (20 if quick else 8)]
    prompts = df["prompt"].unique().sort()
    half = prompts.sample(fraction=0.5, seed=0)
    protocols = [("cold prompts", None)] + (
        [("unseen prompts (head fitted on the other half)", half)] if unseen else []
    )
    early = df.filter(pl.col("step") <= cut)
    rows = []
    for label, fit_prompts in protocols:
        held = None if fit_prompts is None else ~pl.col("prompt").is_in(fit_prompts.implode())
        for head in heads:
            t0 = time.perf_counter()
            model = V0Regressor(head=head, head_params=HEAD_PARAMS.get(head), random_state=0)
            if fit_prompts is None:
                model.fit(early)
            else:
                model.fit(early.filter(~held))
                model.add_history(early.filter(held))
            fit_s = time.perf_counter() - t0
            last = cut
            ys, ps, pred_s = [], [], 0.0
            for t in targets:
                new = df.filter((pl.col("step") > last) & (pl.col("step") < t))
                if new.height:
                    model.add_history(new)
                last = t - 1
                q = df.filter(pl.col("step") == t)
                if held is not None:
                    q = q.filter(held)
                t0 = time.perf_counter()
                ps.append(model.predict(q, exclude_own_prompt=True))
                pred_s += time.perf_counter() - t0
                ys.append(q["score"].to_numpy())
            y, p = np.concatenate(ys), np.concatenate(ps)
            g = np.repeat(np.arange(len(targets)), [len(v) for v in ys])
            rows.append(
                {
                    "dataset": f"oneshot-rlvr {label}, visits {targets[0]}..{targets[-1]}",
                    "head": head,
                    **_score(y, p, g),
                    "fit_s": fit_s,
                    "pred_per_s": len(p) / max(pred_s, 1e-9),
                }
            )
            print(_fmt(rows[-1]), flush=True)
    return rows


COLS = ["dataset", "head", "n", "auc", "within_policy_auc", "brier", "ece", "fit_s", "pred_per_s"]


def _fmt(r):
    return "  ".join(
        f"{r[c]:.4f}"
        if isinstance(r[c], float) and c not in ("fit_s", "pred_per_s")
        else f"{r[c]:.1f}"
        if isinstance(r[c], float)
        else str(r[c])
        for c in COLS
    )


def _markdown(rows):
    out = ["| " + " | ".join(COLS) + " |", "|" + "---|" * len(COLS)]
    for r in rows:
        out.append(
            "| "
            + " | ".join(
                (
                    "nan"
                    if not np.isfinite(r[c])
                    else f"{r[c]:.3f}"
                    if c not in ("fit_s", "pred_per_s")
                    else f"{r[c]:.0f}"
                )
                if isinstance(r[c], float)
                else str(r[c])
                for c in COLS
            )
            + " |"
        )
    return "\n".join(out)


def peer_table(rows):
    """Per dataset: the default head against the best simple peer of the same run, on AUC and Brier.

    Empty when the run had no default head or no peer (``--heads``).
    """
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        mine = {r["head"]: r for r in rows if r["dataset"] == ds}
        peers = [mine[h] for h in PEERS if h in mine]
        if DEFAULT not in mine or not peers:
            continue
        d = mine[DEFAULT]
        cells = [ds]
        for metric, best in (("auc", max), ("brier", min)):
            ok = [p for p in peers if np.isfinite(p[metric])]
            if not ok or not np.isfinite(d[metric]):
                cells += ["nan", "-", "nan"]
                continue
            b = best(ok, key=lambda p: p[metric])
            cells += [f"{d[metric]:.3f}", f"{b[metric]:.3f} ({b['head']})", f"{d[metric] - b[metric]:+.3f}"]
        out.append("| " + " | ".join(cells) + " |")
    if not out:
        return ""
    head = f"| dataset | {DEFAULT} AUC | best peer AUC | difference | {DEFAULT} Brier | best peer Brier | difference |"
    return "\n".join([head, "|" + "---|" * 7, *out])


def present_datasets(sets, root, log=print):
    """The names of ``sets`` whose folder is under ``root``; a message for each one skipped."""
    out = []
    for name in sets:
        folder = root / FOLDERS[name]
        if folder.is_dir():
            out.append(name)
        else:
            log(f"quality benchmark: dataset {name!r} skipped: {folder} not found (put it under the data root)")
    return out


def _parse_args(argv=None):
    """Arguments; ``--quick`` implies ``--no-write``, an unknown ``--datasets`` name is refused."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small subsets, for a smoke run")
    ap.add_argument("--heads", default=",".join(HEADS))
    ap.add_argument("--datasets", default="v0,routerdc,oneshot")
    ap.add_argument("--lopo-policies", type=int, default=3, help="policies held out in leave-one-policy-out")
    ap.add_argument(
        "--head-params", default="{}", help='JSON: head -> its head_params, e.g. \'{"transformer": {"n_tokens": 8}}\''
    )
    ap.add_argument(
        "--unseen", action="store_true", help="oneshot: also fit the head on half the prompts and query the other half"
    )
    ap.add_argument("--no-write", action="store_true", help="print only; do not update RESULTS.md")
    args = parse_quick(ap, argv)  # a smoke run never replaces the full run's section
    unknown = [d for d in args.datasets.split(",") if d not in FOLDERS]
    if unknown:
        ap.error(f"--datasets: unknown {unknown}; choose from {list(FOLDERS)}")
    return args


def main(argv=None):
    args = _parse_args(argv)
    root = data_dir()
    if root is None:
        print("quality benchmark skipped: no data (set V0LITE_DATA or put the data in ../shared/data)")
        return 0
    heads = args.heads.split(",")
    HEAD_PARAMS.update(json.loads(args.head_params))
    sets = present_datasets(args.datasets.split(","), root)
    if not sets:
        print("quality benchmark: no dataset left to run; nothing written")
        return 0
    print("  ".join(COLS))
    rows = []
    if "v0" in sets:
        rows += bench_v0(heads, root, args.quick)
    if "routerdc" in sets:
        rows += bench_routerdc(heads, root, args.quick, args.lopo_policies)
    if "oneshot" in sets:
        rows += bench_oneshot(heads, root, args.quick, unseen=args.unseen)
    peers = peer_table(rows)
    if peers:
        print(peers)
    if not args.no_write:
        cmd = command_line("quality.py", argv)
        body = (
            f"Command: `{cmd.strip()}`  \n{machine_info()}  \nEncoder: all-MiniLM-L6-v2 (offline package); "
            f"positive = score >= 0.5; within-policy AUC groups = (policy, step); fit_s = seconds to fit "
            f"(CV: mean per fold); pred_per_s = predictions per second with prompts already embedded.\n\n"
            + _markdown(rows)
        )
        if peers:
            body += (
                f"\n\nThe default head (`{DEFAULT}`) against the best simple peer of this run (of "
                f"{', '.join(PEERS)}; `linear` is the pooled ridge) on each metric (AUC: higher is better; "
                "Brier: lower is better):\n\n" + peers
            )
        name = "quality-" + "-".join(sets)
        write_section(name, f"Prediction quality (issues 2 and 3): {', '.join(sets)}", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
