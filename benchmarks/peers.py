"""Side-by-side of v0lite's heads and the simple routing peers on every log we have (issue 16).

Logs (``$V0LITE_DATA``, default ../shared/data; see benchmarks/_peers_data.py):

* routerdc-7model, RouterDC's official split: train = ``*_train`` files; in-distribution test =
  ``*_test`` files; out-of-distribution test = MATH_prealgebra, mbpp, ceval, javascript (test
  questions also in train dropped). Headline: mean over tasks of the chosen model's score,
  chosen = argmax p (no cost).
* routerdc-routerbench (its train -> its test). Headline: AIQ of the utility router (v0lite's
  Router with the kNN cost model, route_eval's sweep and AIQ).
* the V0 sample (v0-dapomath): history = context.jsonl, queries = train.jsonl (192 rows), and a 4-fold
  prompt-grouped CV on context.jsonl (3,072 rows, steadier). Headline: AUC.

Rows: prior, kNN (k by CV), per-model logistic, per-model ridge, pooled ridge, multidimensional IRT
(``irt``: an MLP item vector per prompt, an ability vector per model, trained jointly), gbdt, ensemble
(the old default), auto (the new default). ``irt`` is one of v0lite's heads (v0lite/heads/irt.py; ``auto``
may use it, not by default), so it is a row of ours, not one of the simple peers (``PEERS``);
benchmarks/onboarding.py's "IRT peer" is a different model (benchmarks/_onboarding_peers.py: item
parameters from the other models' outcomes, an ability fitted on a new model's n rows).
Columns: headline, within-task AUC (within (policy, step) for the V0 sample), choice accuracy (mean
over prompts of the true score of the argmax-p model), fit seconds, predictions per second; then
auto minus the best simple peer on test with a paired bootstrap 95% interval over test prompts
(within task for routerdc) and, on the routing logs, auto minus the issue's reference: the peer
(tuned kNN, per-model logistic or ridge) whose headline is best over 5 prompt-grouped folds of
train. The speed section fits ``logistic`` and ``auto`` on the same 100k rows of routerdc-7model in
one run.

    python benchmarks/peers.py                  # everything (tens of minutes on 2 shared cores)
    python benchmarks/peers.py --logs v0 --heads prior,logistic,auto
    python benchmarks/peers.py --quick          # --logs v0,v0cv --heads prior,logistic,auto; no RESULTS.md
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

from benchmarks._peers_data import routerbench_with_notes, routerdc_official, v0_sample  # noqa: E402
from benchmarks._results import command_line, machine_info, parse_quick, write_section  # noqa: E402
from v0lite.estimator import V0Regressor  # noqa: E402
from v0lite.metrics import auc, within_policy_auc  # noqa: E402

HEADS = {  # row label -> (head, head_params)
    "prior": ("prior", {}),
    "kNN (k by CV)": ("knn", {"k": "cv"}),
    "per-model logistic": ("logistic", {}),
    "per-model ridge": ("ridge", {}),
    "pooled ridge": ("linear", {}),
    "multidim. IRT (irt)": ("irt", {}),
    "gbdt": ("gbdt", {}),
    "ensemble (old default)": ("ensemble", {}),
    "auto (new default)": ("auto", {}),
}
PEERS = ("prior", "kNN (k by CV)", "per-model logistic", "per-model ridge", "pooled ridge")
# the reference on a routing log: of these, the one whose headline is best by 5-fold CV on train
CV_PEERS = ("kNN (k by CV)", "per-model logistic", "per-model ridge")
CV_FOLDS = 5
DEFAULT = "auto (new default)"
N_BOOT = 1000
LOGS = ("routerdc", "routerbench", "v0", "v0cv", "speed")
QUICK = {"logs": "v0,v0cv", "heads": "prior,logistic,auto"}  # --quick: the small logs, three rows


def _pivot(df, policies, P=None):
    """prompts (first-seen order), Y (prompts x policies) and, with P (one per row of df), predictions."""
    prompts = df["prompt"].unique(maintain_order=True).to_list()
    r = {t: i for i, t in enumerate(prompts)}
    c = {p: j for j, p in enumerate(policies)}
    ri = np.array([r[t] for t in df["prompt"].to_list()])
    ci = np.array([c[p] for p in df["policy"].to_list()])
    Y = np.full((len(prompts), len(policies)), np.nan)
    Y[ri, ci] = df["score"].to_numpy()
    out = [prompts, Y]
    if P is not None:
        Pm = np.full_like(Y, np.nan)
        Pm[ri, ci] = P
        out.append(Pm)
    return out


def _require_complete(Y, prompts, policies, where):
    """Refuse a missing outcome: the headline would score it as 0 (or as NaN), not leave it out."""
    missing = np.argwhere(np.isnan(Y))
    if len(missing):
        i, j = missing[0]
        raise ValueError(
            f"{where}: {len(missing)} (prompt, policy) outcomes missing, first policy {policies[j]!r} on prompt "
            f"{str(prompts[i])[:80]!r}; this headline needs every policy's outcome on every prompt. Fix: check "
            "the log under $V0LITE_DATA (benchmarks/_peers_data.py)."
        )


def _task_of(df, prompts):
    first = dict(zip(*df.unique("prompt", keep="first", maintain_order=True).select("prompt", "task")))
    return np.array([first[t] for t in prompts])


def _mean_task_acc(Y, P, tasks, idx=None):
    idx = np.arange(len(Y)) if idx is None else idx
    chosen = Y[idx, np.argmax(P[idx], axis=1)]
    t = tasks[idx]
    return float(np.mean([chosen[t == u].mean() for u in np.unique(t)]))


def _within_task(Y, P, tasks):
    from v0lite.routing._baselines import _within_group_auc

    return _within_group_auc(Y, P, tasks)


def _boot(stat, n, strata=None, seed=0):
    """Paired bootstrap of ``stat(idx)`` over prompts (resampled within each stratum)."""
    rng = np.random.default_rng(seed)
    out = []
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    for _ in range(N_BOOT):
        idx = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        out.append(stat(idx))
    return np.percentile(out, [2.5, 97.5])


def _warm_cache(frames, log=print):
    """Embed every prompt of ``frames`` once, untimed, so that no head's fit time includes the encoder."""
    texts = pl.concat([f.select("prompt") for f in frames]).unique(maintain_order=True)["prompt"].to_list()
    t0 = time.perf_counter()
    V0Regressor()._get_embedder().encode(texts)
    log(f"embedding cache: {len(texts):,} prompts ready in {time.perf_counter() - t0:.0f} s (not part of any fit)")


def _cv_peer(train, fold_scorer, tag, log=print):
    """The routing peer the issue compares against: best headline over 5 prompt-grouped folds of train.

    ``fold_scorer(fit_part, held_out)`` returns ``(query, shape, score)``: the (prompt, policy)
    frame to predict, the shape of its prediction matrix and the headline of a matrix.
    Returns ``(chosen label, {label: mean headline over folds})``.
    """
    from v0lite._folds import prompt_folds

    prompts = train["prompt"].unique(maintain_order=True).to_list()
    fold_of = dict(zip(prompts, prompt_folds(len(prompts), CV_FOLDS, 0)))
    fold = pl.Series([fold_of[t] for t in train["prompt"].to_list()])
    scores = {label: [] for label in CV_PEERS}
    for f in range(CV_FOLDS):
        query, shape, score = fold_scorer(train.filter(fold != f), train.filter(fold == f))
        for label in CV_PEERS:
            model, _ = _fit(label, train.filter(fold != f))
            scores[label].append(score(model.predict(query).reshape(shape)))
        log(f"{tag} CV fold {f + 1}/{CV_FOLDS}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in scores.items()))
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    return max(mean, key=mean.get), mean


def _matrix_query(prompts, policies):
    return pl.DataFrame({"prompt": np.repeat(prompts, len(policies)), "policy": np.tile(policies, len(prompts))})


def _complete(df, policies):
    """Prompts answered by every policy with a cost: ``(prompts, Y, C)``, outcomes and costs."""
    prompts, Y = _pivot(df, policies)
    _, C = _pivot(df.with_columns(pl.col("cost").alias("score")), policies)
    ok = ~(np.isnan(Y).any(1) | np.isnan(C).any(1))
    return [t for t, k in zip(prompts, ok) if k], Y[ok], C[ok]


def _aiq_scorer(fit_part, held_out, policies, strat, emb):
    """``(prompts, Y, score)``: ``score(P)`` is the AIQ of ``P`` on the complete held-out prompts.

    The kNN cost model is fitted on ``fit_part``; it does not depend on the value model, so a
    prompt-blind prior stands in for it.
    """
    from v0lite.routing import Router
    from v0lite.routing._frontier import _sweep, aiq, best_single

    prompts, Y, C = _complete(held_out, policies)
    prior = V0Regressor(head="prior").fit(fit_part)
    Cp = Router(prior, policies=policies, strategy=strat, cost_model="knn", embedder=emb, k=16).fit(fit_part)
    Cp = Cp.predict_matrix(prompts)[1]
    c_max = float(max(best_single(Y, C, policies)["costs"]))

    def score(P):
        c = _sweep(strat, P, Cp, Y, C, 64)
        return aiq(c["cost"], c["acc"], c_max)

    return prompts, Y, score


def _fit(label, train):
    head, params = HEADS[label]
    t0 = time.perf_counter()
    model = V0Regressor(head=head, head_params=params or None, random_state=0).fit(train)
    return model, time.perf_counter() - t0


def _predict(model, df):
    model.predict(df.head(min(64, df.height)))  # warm-up (lazy imports)
    t0 = time.perf_counter()
    p = model.predict(df)
    return p, df.height / max(time.perf_counter() - t0, 1e-9)


def _auto_note(model):
    rep = getattr(model.head_, "cv_report_", None)
    if not rep:
        return ""
    cells = ", ".join(
        f"{r['member']} "
        + ("-" if r["cv_brier"] is None else f"{r['cv_brier']:.4f}")
        + ("*" if r["member"] == model.head_.chosen_ else "")
        for r in rep
    )
    won = getattr(model.head_, "served_from_", None)
    served = f"; served: the ensemble fitted on every row, because {won} (a learned candidate) won" if won else ""
    return f"auto's CV Brier (train folds; * = chosen): {cells}{served}"


def bench_routerdc(labels, log=print):
    d = routerdc_official()
    _warm_cache(d.values(), log)
    policies = sorted(d["train"]["policy"].unique().to_list())
    out = {}
    for split in ("test_id", "test_ood"):
        out[split] = {"rows": {}, "n_prompts": d[split]["prompt"].n_unique()}
    notes = []

    def fold_scorer(fit_part, held_out):
        prompts, Y = _pivot(held_out, policies)
        _require_complete(Y, prompts, policies, "routerdc train (CV fold)")
        tasks = _task_of(held_out, prompts)
        return _matrix_query(prompts, policies), Y.shape, lambda P: _mean_task_acc(Y, P, tasks)

    cv_peer = _cv_peer(d["train"], fold_scorer, "routerdc", log)
    for split in ("test_id", "test_ood"):
        out[split]["cv_peer"] = cv_peer
    for label in labels:
        model, fit_s = _fit(label, d["train"])
        if label == DEFAULT:
            notes.append(_auto_note(model))
        for split in ("test_id", "test_ood"):
            te = d[split]
            p, pps = _predict(model, te)
            prompts, Y, P = _pivot(te, policies, p)
            _require_complete(Y, prompts, policies, f"routerdc {split}")
            tasks = _task_of(te, prompts)
            out[split]["rows"][label] = {
                "headline": _mean_task_acc(Y, P, tasks),
                "within": _within_task(Y, P, tasks),
                "choice": float(Y[np.arange(len(Y)), P.argmax(1)].mean()),
                "fit_s": fit_s,
                "pps": pps,
                "_stat": (lambda idx, Y=Y, P=P, tasks=tasks: _mean_task_acc(Y, P, tasks, idx)),
                "_strata": tasks,
            }
            log(f"routerdc {split} {label}: {out[split]['rows'][label]['headline']:.4f} fit {fit_s:.1f}s")
    return out, notes


def bench_routerbench(labels, log=print):
    from v0lite.embed import Embedder
    from v0lite.routing import Router, UtilityStrategy
    from v0lite.routing._frontier import _sweep, aiq, best_single

    d, notes = routerbench_with_notes()
    notes = [f"routerbench converter: {n}" for n in notes]  # e.g. the blank outcome cells it skipped
    for n in notes:
        log(n)
    _warm_cache(d.values(), log)
    train, test = d["train"], d["test"]
    policies = sorted(set(train["policy"].unique().to_list()) & set(test["policy"].unique().to_list()))
    prompts, Y, Ctrue = _complete(test, policies)
    n_incomplete = test["prompt"].n_unique() - len(prompts)
    log(f"routerbench: {len(prompts)} complete test prompts, {n_incomplete} incomplete left out")
    tasks = _task_of(test, prompts)
    c_max = float(max(best_single(Y, Ctrue, policies)["costs"]))
    strat = UtilityStrategy()
    emb = Embedder()
    out = {"test": {"rows": {}, "n_prompts": len(prompts), "n_incomplete": n_incomplete}}

    def fold_scorer(fit_part, held_out):
        q_prompts, Yf, score = _aiq_scorer(fit_part, held_out, policies, strat, emb)
        return _matrix_query(q_prompts, policies), Yf.shape, score

    out["test"]["cv_peer"] = _cv_peer(train, fold_scorer, "routerbench", log)
    for label in labels:
        model, fit_s = _fit(label, train)
        if label == DEFAULT:
            notes.append(_auto_note(model))
        router = Router(model, policies=policies, strategy=strat, cost_model="knn", embedder=emb, k=16).fit(train)
        t0 = time.perf_counter()
        P, Cp = router.predict_matrix(prompts)
        pps = P.size / max(time.perf_counter() - t0, 1e-9)

        def stat(idx, P=P, Cp=Cp):
            c = _sweep(strat, P[idx], Cp[idx], Y[idx], Ctrue[idx], 64)
            return aiq(c["cost"], c["acc"], c_max)

        out["test"]["rows"][label] = {
            "headline": stat(np.arange(len(Y))),
            "within": _within_task(Y, P, tasks),
            "choice": float(Y[np.arange(len(Y)), P.argmax(1)].mean()),
            "fit_s": fit_s,
            "pps": pps,
            "_stat": stat,
            "_strata": None,
        }
        log(f"routerbench {label}: AIQ {out['test']['rows'][label]['headline']:.4f} fit {fit_s:.1f}s")
    return out, notes


def bench_v0(labels, log=print):
    d = v0_sample()
    _warm_cache(d.values(), log)
    te = d["test"]
    y = te["score"].to_numpy()
    groups = [te["policy"].to_numpy(), te["step"].to_numpy()]
    prompt_codes = np.unique(te["prompt"].to_numpy(), return_inverse=True)[1]
    out = {"test": {"rows": {}, "n_prompts": te["prompt"].n_unique()}}
    notes = []
    for label in labels:
        model, fit_s = _fit(label, d["train"])
        if label == DEFAULT:
            notes.append(_auto_note(model))
        p, pps = _predict(model, te)

        def stat(idx_prompts, p=p):
            rows = np.concatenate([np.flatnonzero(prompt_codes == i) for i in idx_prompts])
            return auc(y[rows], p[rows])

        out["test"]["rows"][label] = {
            "headline": auc(y, p),
            "within": within_policy_auc(y, p, groups),
            "choice": None,
            "fit_s": fit_s,
            "pps": pps,
            "_stat": stat,
            "_strata": None,
            "_n": prompt_codes.max() + 1,
        }
        log(f"v0 {label}: AUC {out['test']['rows'][label]['headline']:.4f} fit {fit_s:.1f}s")
    return out, notes


def bench_v0_cv(labels, log=print, n_folds=4):
    """The V0 sample's context.jsonl, 4-fold prompt-grouped CV (3,072 rows: steadier than the 192 queries)."""
    from v0lite._folds import prompt_folds

    H = v0_sample()["train"]
    prompts = sorted(H["prompt"].unique().to_list())
    fold_of = dict(zip(prompts, prompt_folds(len(prompts), n_folds, 0)))
    fold = np.array([fold_of[t] for t in H["prompt"].to_list()])
    y = H["score"].to_numpy()
    groups = [H["policy"].to_numpy(), H["step"].to_numpy()]
    codes = {t: i for i, t in enumerate(prompts)}
    prompt_codes = np.array([codes[t] for t in H["prompt"].to_list()])
    order = np.argsort(prompt_codes, kind="stable")
    bounds = np.searchsorted(prompt_codes[order], np.arange(len(prompts) + 1))
    out = {"test": {"rows": {}, "n_prompts": len(prompts)}}
    for label in labels:
        P = np.zeros(H.height)
        fit_total = 0.0
        for f in range(n_folds):
            tr, te = H.filter(pl.Series(fold != f)), H.filter(pl.Series(fold == f))
            model, fit_s = _fit(label, tr)
            P[fold == f] = model.predict(te)
            fit_total += fit_s

        def stat(idx, P=P):
            rows = np.concatenate([order[bounds[i] : bounds[i + 1]] for i in idx])
            return auc(y[rows], P[rows])

        out["test"]["rows"][label] = {
            "headline": auc(y, P),
            "within": within_policy_auc(y, P, groups),
            "choice": None,
            "fit_s": fit_total / n_folds,
            "pps": float("nan"),
            "_stat": stat,
            "_strata": None,
            "_n": len(prompts),
        }
        log(
            f"v0 CV {label}: AUC {out['test']['rows'][label]['headline']:.4f} within "
            f"{out['test']['rows'][label]['within']:.4f} fit {fit_total / n_folds:.1f}s"
        )
    return out


def bench_speed(log=print, n_rows=100_000, repeats=3):
    """``logistic`` and ``auto`` fitted on the same ~100k rows of routerdc-7model, alternately, ``repeats`` times.

    Each fit time is the median of its repeats (a shared 2-core machine: one fit alone moved by
    15% between runs), the ratio that of the medians; every repeat's time is reported.
    """
    from benchmarks._peers_data import data_root
    from v0lite.data import convert_routerdc

    df = convert_routerdc(data_root() / "routerdc-7model").drop("split")
    prompts = df["prompt"].unique(maintain_order=True).to_list()
    n_pol = df["policy"].n_unique()
    rng = np.random.default_rng(0)
    keep = set(rng.choice(prompts, min(len(prompts), n_rows // n_pol), replace=False).tolist())
    sub = df.filter(pl.col("prompt").is_in(list(keep)))
    n_sampled = sub.height
    sub = sub.unique(["policy", "prompt"], keep="first")
    log(f"speed: {n_sampled - sub.height:,} repeated (policy, prompt) rows dropped (first kept), {sub.height:,} left")
    res = {"n_rows": sub.height, "n_dropped": n_sampled - sub.height, "logistic_fits": [], "auto_fits": []}
    for r in range(repeats):
        for head in ("logistic", "auto"):
            t0 = time.perf_counter()
            model = V0Regressor(head=head, random_state=0).fit(sub)
            res[f"{head}_fits"].append(time.perf_counter() - t0)
            if r == 0:
                _, res[f"{head}_pps"] = _predict(model, sub.head(20000))
            if head == "auto":
                res["auto_chosen"] = model.head_.chosen_
            log(f"speed {head} (repeat {r + 1}/{repeats}): fit {res[f'{head}_fits'][-1]:.1f}s")
    for head in ("logistic", "auto"):
        res[f"{head}_fit_s"] = float(np.median(res[f"{head}_fits"]))
        log(f"speed {head}: median fit {res[f'{head}_fit_s']:.1f}s, predict {res[f'{head}_pps']:.0f} rows/s")
    return res


def _verdict(ok):
    return "met" if ok else "NOT met"


def _n_test(block):
    """``"945 complete test prompts (8 incomplete left out)"``, or ``"N test prompts"`` where none is dropped."""
    n, left = block["n_prompts"], block.get("n_incomplete")
    return f"{n:,} test prompts" if left is None else f"{n:,} complete test prompts ({left:,} incomplete left out)"


def _speed_text(s):
    """The speed paragraph, each target evaluated (fit ratio <= 5; >= 5,000 predictions per second)."""
    ratio = s["auto_fit_s"] / s["logistic_fit_s"]
    pps = ", ".join(
        f"{h} {s[f'{h}_pps']:,.0f} rows/s ({_verdict(s[f'{h}_pps'] >= 5000)})" for h in ("logistic", "auto")
    )
    return (
        f"Speed, routerdc-7model, {s['n_rows']:,} rows (a prompt sample of the whole log; "
        f"{s.get('n_dropped', 0):,} repeated (policy, prompt) rows dropped, first kept), one run, "
        f"the two fits alternated {len(s['auto_fits'])} times, medians: "
        f"logistic fit {s['logistic_fit_s']:.1f} s ({', '.join(f'{t:.1f}' for t in s['logistic_fits'])}), "
        f"auto fit {s['auto_fit_s']:.1f} s ({', '.join(f'{t:.1f}' for t in s['auto_fits'])}) "
        f"(ratio {ratio:.1f}, target <= 5: {_verdict(ratio <= 5)}; auto chose {s['auto_chosen']}); "
        f"predictions (target >= 5,000 rows/s): {pps}."
    )


def _table(name, block, headline):
    rows = block["rows"]
    if block.get("n_incomplete") is not None:
        name = f"{name} ({_n_test(block)})"
    lines = [
        f"| {name} | {headline} | within-task AUC | choice acc | fit s | predict rows/s |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        lines.append(
            f"| {label} | {fmt(r['headline'])} | {fmt(r['within'])} | {fmt(r['choice'])} | "
            f"{r['fit_s']:.1f} | {'-' if not np.isfinite(r['pps']) else format(r['pps'], ',.0f')} |"
        )
    peers = [p for p in PEERS if p in rows]
    if DEFAULT in rows and peers:
        best = max(peers, key=lambda p: rows[p]["headline"])
        a, b = rows[DEFAULT], rows[best]
        n = a.get("_n", len(a["_strata"]) if a["_strata"] is not None else None)
        if n is None:
            n = block["n_prompts"]
        lo, hi = _boot(lambda idx: a["_stat"](idx) - b["_stat"](idx), n, a["_strata"])
        diff = a["headline"] - b["headline"]
        flag = "" if diff >= 0 else " (auto loses)"
        lines.append("")
        lines.append(
            f"auto minus the best simple peer on test ({best}): {diff:+.4f} [95% CI {lo:+.4f}, {hi:+.4f}]{flag}; "
            f"{_n_test(block)}, paired bootstrap ({N_BOOT} resamples"
            + (", within task)" if a["_strata"] is not None else ")")
        )
    if DEFAULT in rows and block.get("cv_peer") and block["cv_peer"][0] in rows:
        label, cv = block["cv_peer"]
        a, b = rows[DEFAULT], rows[label]
        n = len(a["_strata"]) if a["_strata"] is not None else block["n_prompts"]
        lo, hi = _boot(lambda idx: a["_stat"](idx) - b["_stat"](idx), n, a["_strata"])
        diff = a["headline"] - b["headline"]
        lines.append(
            f"auto minus the peer chosen by {CV_FOLDS}-fold prompt-grouped CV on train, the issue's reference "
            f"({label}; CV " + ", ".join(f"{k} {v:.4f}" for k, v in cv.items()) + f"): {diff:+.4f} "
            f"[95% CI {lo:+.4f}, {hi:+.4f}] (target +0.005: {_verdict(diff >= 0.005)})"
        )
    return "\n".join(lines)


def _parse_args(argv=None):
    """Arguments, ``--quick`` resolved (small logs and heads, no write); unknown logs or heads refused."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logs", default=",".join(LOGS), help="comma-separated (default: all)")
    ap.add_argument("--heads", default=",".join(HEADS), help="row labels or head names, comma-separated")
    ap.add_argument("--quick", action="store_true", help=f"--logs {QUICK['logs']} --heads {QUICK['heads']}; no write")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parse_quick(ap, argv, QUICK)  # flags given win over the quick defaults; --quick never writes
    args.logs = args.logs.split(",")
    heads = args.heads.split(",")
    unknown = [g for g in args.logs if g not in LOGS]
    if unknown:
        ap.error(f"--logs: unknown {unknown}; choose from {list(LOGS)}")
    by_head = {h: label for label, (h, _) in HEADS.items()}
    unknown = [h for h in heads if h and h not in by_head and h not in HEADS]
    if unknown:
        ap.error(f"--heads: unknown {unknown}; choose from {sorted(by_head)} (or their row labels)")
    args.labels = [by_head.get(h, h) for h in heads if h]
    return args


def main(argv=None):
    args = _parse_args(argv)
    labels, logs = args.labels, args.logs
    t_start = time.perf_counter()
    parts = []
    if "routerdc" in logs:
        res, notes = bench_routerdc(labels)
        parts.append(_table("routerdc-7model, official split, in-distribution", res["test_id"], "mean task acc"))
        parts.append(_table("routerdc-7model, out-of-distribution", res["test_ood"], "mean task acc"))
        parts += notes
    if "routerbench" in logs:
        res, notes = bench_routerbench(labels)
        parts.append(_table("routerdc-routerbench", res["test"], "AIQ"))
        parts += notes
    if "v0" in logs:
        res, notes = bench_v0(labels)
        parts.append(_table("v0-dapomath, context -> train.jsonl", res["test"], "AUC"))
        parts += notes
    if "v0cv" in logs:
        res = bench_v0_cv(labels)
        parts.append(_table("v0-dapomath, context.jsonl 4-fold prompt-grouped CV", res["test"], "AUC"))
    if "speed" in logs:
        parts.append(_speed_text(bench_speed()))
    body = "\n\n".join(parts)
    print(body)
    if not args.no_write:
        cmd = command_line("peers.py", argv or None)
        write_section(
            "peers",
            "Peers: v0lite's heads vs the simple routing baselines (issue 16)",
            f"Command: `{cmd.strip()}`  \n{machine_info()}; total {time.perf_counter() - t_start:.0f} s.\n\n{body}",
        )


if __name__ == "__main__":
    main()
