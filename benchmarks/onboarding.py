"""A new model from a few outcomes (issue 29): leave one model out, add n of its outcomes, score it.

Protocol, on each log (``$V0LITE_DATA``, default ../shared/data; benchmarks/_peers_data.py):

* RouterBench (11 models, its train -> its test) and routerdc-7model's official split (train ->
  test_id): hold out one model; on the V0 sample (2 policies x 3 checkpoints, context.jsonl ->
  train.jsonl) hold out one (policy, checkpoint).
* Fit the default ``V0Regressor`` (head ``auto``) on train without the held-out unit (the "pool",
  cached under benchmarks/out/onboarding/), then add n in {0, 10, 30, 100, 300, all} of the unit's
  train outcomes (a seeded random draw per seed, nested in n) with ``add_history`` (no refit),
  and also refit on pool + n rows (seed 0, n in ``--refit-n``). n = 0: the unit is known only by
  its name (``fallback="global_mean"``).
* Score the unit's predictions on up to 1,000 test prompts: within-model AUC and Brier, and the
  pool's routing headline with the unit in it (every other model's column from the same pool,
  the unit's column from each method): RouterBench AIQ (utility router, kNN cost model fitted on
  train), routerdc the mean over tasks of the argmax's outcome (RouterDC's headline).
* Peers on the same MiniLM vectors, no tuning on test: the mean of the n rows; kNN and per-model
  logistic regression on the n rows (k and the L2 strength by leave-one-out / 5-fold CV on the n
  rows); the difficulty prior (the other models' mean outcome on the 32 nearest train prompts,
  Platt-calibrated on the n rows); an IRT / matrix-factorisation peer (item parameters: the
  other models' 32-nearest-prompt logits, their mean and principal components over the train
  prompts; the unit's ability on them fitted on the n rows, ridge toward the other models'
  abilities).
* ``v0lite (today)`` is the same pool with the in-context solve of before issue 29 (``auto``'s
  parameter ``pool_prior=False``), so both come from one run.
* Paired bootstrap 95% intervals (500 resamples of the test prompts, the same draw for every
  held-out model and seed) of v0lite minus the best peer at each n.
* ``suggest_prompts``: AUC after n prompts chosen by ``V0Regressor.suggest_prompts`` vs n random ones.

    python benchmarks/onboarding.py --logs routerbench    # 11 held-out models x 3 seeds: 35 min here
    python benchmarks/onboarding.py --logs routerdc       # 7 held-out models x 3 seeds: ~50 min here
    python benchmarks/onboarding.py --logs v0 --refit-n ""   # 6 (policy, checkpoint)s: 28 min here
    # (2 cores shared with other jobs, load average 6-13; the three ran side by side)
    python benchmarks/onboarding.py --logs routerdc --tune --units 3 --seeds 2 --refit-n "" --no-suggest
    # CV on train only (fold 0 of train as the test): how pool_scale and the selection criterion were chosen
    python benchmarks/onboarding.py --quick --logs routerbench   # 3 held-out models, 1 seed, no refit
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._onboarding_peers import K_NB, _design, peer_predictions  # noqa: E402
from benchmarks._peers_data import routerbench, routerdc_official, v0_sample  # noqa: E402
from benchmarks._results import command_line, machine_info, write_section  # noqa: E402
from v0lite.estimator import V0Regressor  # noqa: E402

OUT = HERE / "out" / "onboarding"
N_GRID = (0, 10, 30, 100, 300, "all")
MAX_TEST = 1000
N_BOOT = 500
POOL_VERSION = "4"  # bump when a change to fit() makes cached pools stale
PEERS = ("mean of n rows", "kNN on n rows", "logistic on n rows", "difficulty prior", "IRT peer")
OURS, TODAY = "v0lite (add_history)", "v0lite today"
WITHOUT = "pool without the new model"  # a routing reference: what joining it is weighed against
TUNE = {"on": False, "scales": (1.0, 4.0, 16.0)}


def fast_auc(y, p):
    """AUC of ``p`` against ``y >= 0.5`` (ties count one half); nan with one class."""
    from scipy.stats import rankdata

    pos = y >= 0.5
    n1 = int(pos.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return np.nan
    r = rankdata(p)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


# -- logs ------------------------------------------------------------------------------------
def load_log(name):
    """``(train, test, units, headline)``: frames with a ``unit`` column (the thing held out)."""
    if name == "routerbench":
        d = routerbench()
        train, test, headline = d["train"], d["test"], "aiq"
    elif name == "routerdc":
        d = routerdc_official()
        train, test, headline = d["train"], d["test_id"], "mean_task_acc"
    elif name == "v0":
        d = v0_sample()
        train, test, headline = d["train"], d["test"], None
    else:
        raise SystemExit(f"unknown log {name!r}; choose from routerbench, routerdc, v0")
    if TUNE["on"]:  # CV on train only: fold 0 of a prompt-grouped 5-fold split of train plays the test
        from v0lite._folds import prompt_folds

        prompts = train["prompt"].unique(maintain_order=True).to_list()
        fold = dict(zip(prompts, prompt_folds(len(prompts), 5, 0)))
        is_val = pl.Series([fold[t] == 0 for t in train["prompt"].to_list()])
        train, test = train.filter(~is_val), train.filter(is_val)
    if name == "v0":  # a (policy, checkpoint) is the unit
        unit = pl.col("policy") + "@" + pl.col("step").cast(pl.Utf8)
    else:
        unit = pl.col("policy")
    train, test = train.with_columns(unit.alias("unit")), test.with_columns(unit.alias("unit"))
    units = sorted(set(train["unit"].unique().to_list()) & set(test["unit"].unique().to_list()))
    return train, test, units, headline


def _matrix(df, prompts, units, col="score"):
    r = {t: i for i, t in enumerate(prompts)}
    c = {u: j for j, u in enumerate(units)}
    M = np.full((len(prompts), len(units)), np.nan)
    sub = df.filter(pl.col("prompt").is_in(prompts) & pl.col("unit").is_in(units))
    M[[r[t] for t in sub["prompt"].to_list()], [c[u] for u in sub["unit"].to_list()]] = sub[col].to_numpy()
    return M


def _neighbours(Eq, Etr, k, exclude_self=False):
    """Indices of the ``k`` most similar train prompts of each query (cosine; embeddings are unit norm)."""
    out = np.empty((len(Eq), k), np.int64)
    for s in range(0, len(Eq), 2048):
        S = Eq[s : s + 2048] @ Etr.T
        if exclude_self:
            S[np.arange(S.shape[0]), np.arange(s, s + S.shape[0])] = -np.inf
        out[s : s + 2048] = np.argpartition(-S, k, axis=1)[:, :k]
    return out


class LogData:
    """Everything one log's runs share: prompts, vectors, outcome matrices, neighbour means."""

    def __init__(self, name, rng_seed=0, log=print):
        self.name = name
        self.train, self.test, self.units, self.headline = load_log(name)
        emb = V0Regressor()._get_embedder()
        self.tr_prompts = self.train["prompt"].unique(maintain_order=True).to_list()
        te_all = self.test["prompt"].unique(maintain_order=True).to_list()
        Yall = _matrix(self.test, te_all, self.units)
        complete = ~np.isnan(Yall).any(1) if self.headline else ~np.isnan(Yall).all(1)
        if self.headline == "aiq":
            Call = _matrix(self.test, te_all, self.units, "cost")
            complete &= ~np.isnan(Call).any(1)
        idx = np.flatnonzero(complete)
        rng = np.random.default_rng(rng_seed)
        if len(idx) > MAX_TEST:
            idx = np.sort(rng.choice(idx, MAX_TEST, replace=False))
        self.te_prompts = [te_all[i] for i in idx]
        self.Y_te = Yall[idx]
        self.C_te = Call[idx] if self.headline == "aiq" else None
        t0 = time.perf_counter()
        self.E_tr = emb.encode(self.tr_prompts)
        self.E_te = emb.encode(self.te_prompts)
        log(
            f"{name}: {len(self.tr_prompts):,} train / {len(self.te_prompts):,} test prompts embedded "
            f"in {time.perf_counter() - t0:.0f} s; units {len(self.units)}"
        )
        self.Y_tr = _matrix(self.train, self.tr_prompts, self.units)
        nb_tr = _neighbours(self.E_tr, self.E_tr, K_NB, exclude_self=True)
        nb_te = _neighbours(self.E_te, self.E_tr, K_NB)
        # each unit's mean outcome over a prompt's 32 nearest train prompts (nan-aware)
        self.NB_tr = np.stack([np.nanmean(self.Y_tr[nb_tr, j], 1) for j in range(len(self.units))], 1)
        self.NB_te = np.stack([np.nanmean(self.Y_tr[nb_te, j], 1) for j in range(len(self.units))], 1)
        if "task" in self.test.columns:
            first = dict(zip(*self.test.unique("prompt", keep="first", maintain_order=True).select("prompt", "task")))
            self.tasks = np.array([first[t] for t in self.te_prompts])
        self.tr_row = {t: i for i, t in enumerate(self.tr_prompts)}

    def unit_rows(self, u):
        return self.train.filter(pl.col("unit") == u)

    def pool_frame(self, u):
        return self.train.filter(pl.col("unit") != u)

    def queries(self, u):
        pol = u.split("@")[0] if self.name == "v0" else u
        q = pl.DataFrame({"policy": [pol] * len(self.te_prompts), "prompt": self.te_prompts})
        if self.name == "v0":
            q = q.with_columns(pl.lit(int(u.split("@")[1])).alias("step"))
        return q


# -- v0lite ------------------------------------------------------------------------------------
def _slug(s):
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-")


def pool_model(D, u, log=print):
    """The default V0Regressor fitted without unit ``u`` (cached under benchmarks/out/onboarding/)."""
    path = OUT / f"pool-v{POOL_VERSION}{'-tune' if TUNE['on'] else ''}" / D.name / _slug(u)
    if (path / "meta.json").exists():
        return V0Regressor.load(path), 0.0
    t0 = time.perf_counter()
    model = V0Regressor(random_state=0).fit(D.pool_frame(u).drop("unit"))
    fit_s = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    log(f"  pool without {u}: fitted in {fit_s:.1f} s ({getattr(model.head_, 'chosen_', model.head)})")
    return model, fit_s


def _set_pool_prior(model, on):
    """Switch the issue-29 in-context prior of every head of the model (True: the library default)."""
    heads = [model.head_] + list(getattr(model.head_, "heads_", {}).values())
    for h in heads:
        if h is not None and "pool_prior" in getattr(h, "params", {}):
            h.params["pool_prior"] = bool(on)


def _set_pool_scale(model, scale):
    for h in [model.head_] + list(getattr(model.head_, "heads_", {}).values()):
        if h is not None and "pool_scale" in getattr(h, "params", {}):
            h.params["pool_scale"] = float(scale)
            h._population_ = None


def ours_predictions(model, D, u, rows_frame, today=False):
    """The unit's predictions on the test prompts after ``add_history(rows_frame)`` (no refit)."""
    base = model.index_
    q = D.queries(u)
    try:
        _set_pool_prior(model, not today)
        model.fallback = "global_mean"
        if rows_frame is not None and rows_frame.height:
            model.add_history(rows_frame.drop("unit"))
        return model.predict(q)
    finally:
        model.index_ = base
        model.n_history_ = base.n_rows
        _set_pool_prior(model, True)


# -- the routing headline with the unit in the pool ----------------------------------------------
class Headline:
    def __init__(self, D, log=print):
        self.D = D
        if D.headline == "aiq":
            from v0lite.routing import Router, UtilityStrategy
            from v0lite.routing._frontier import best_single

            self.strat = UtilityStrategy()
            prior = V0Regressor(head="prior").fit(D.train.drop("unit"))
            router = Router(prior, policies=D.units, strategy=self.strat, cost_model="knn", k=16).fit(
                D.train.drop("unit")
            )
            self.Cp = router.predict_matrix(D.te_prompts)[1]
            self.c_max = float(max(best_single(D.Y_te, D.C_te, D.units)["costs"]))

    def __call__(self, P, idx=None):
        D = self.D
        idx = np.arange(len(P)) if idx is None else idx
        if D.headline == "aiq":
            from v0lite.routing._frontier import _sweep, aiq

            c = _sweep(self.strat, P[idx], self.Cp[idx], D.Y_te[idx], D.C_te[idx], 48)
            return aiq(c["cost"], c["acc"], self.c_max)
        if D.headline == "mean_task_acc":
            chosen = D.Y_te[idx, np.argmax(P[idx], 1)]
            t = D.tasks[idx]
            return float(np.mean([chosen[t == v].mean() for v in np.unique(t)]))
        return np.nan


# -- one log -----------------------------------------------------------------------------------
def run_log(name, units_limit, seeds, refit_n, with_suggest, log=print):
    D = LogData(name, log=log)
    units = D.units[:units_limit] if units_limit else D.units
    design = _design(D.E_tr)
    head = Headline(D, log)
    records, fit_times = [], []
    for u in units:
        t_u = time.perf_counter()
        j = D.units.index(u)
        model, fit_s = pool_model(D, u, log)
        if fit_s:
            fit_times.append(fit_s)
        # the other units' columns come from the pool, once
        P_pool = np.full(D.Y_te.shape, np.nan)
        if D.headline:
            others = [v for v in D.units if v != u]
            qq = pl.DataFrame({"policy": np.repeat(others, len(D.te_prompts)), "prompt": D.te_prompts * len(others)})
            P_pool[:, [D.units.index(v) for v in others]] = model.predict(qq).reshape(len(others), -1).T
            P_out = P_pool.copy()
            P_out[:, j] = -1.0  # never chosen: the pool as it routes before the unit joins
            alone = head(P_out)
            records += [
                {
                    "log": name,
                    "unit": u,
                    "seed": s,
                    "n": str(n),
                    "n_rows": 0,
                    "method": WITHOUT,
                    "auc": np.nan,
                    "brier": np.nan,
                    "headline": alone,
                }
                for s in seeds
                for n in N_GRID
            ]
        rows_u = D.unit_rows(u)
        y_te = D.Y_te[:, j]
        ok = ~np.isnan(y_te)
        for seed in seeds:
            perm = np.random.default_rng(1000 + seed).permutation(rows_u.height)
            for n in N_GRID:
                nn = rows_u.height if n == "all" else min(int(n), rows_u.height)
                if n == "all" and seed != seeds[0]:
                    continue  # every row: the same draw for every seed
                fr = rows_u[perm[:nn]]
                r_idx = np.array([D.tr_row[t] for t in fr["prompt"].to_list()], np.int64)
                preds = peer_predictions(D, u, r_idx, fr["score"].to_numpy(), design)
                if TUNE["on"]:
                    for sc in TUNE["scales"]:
                        _set_pool_scale(model, sc)
                        preds[f"v0lite pool_scale={sc:g}"] = ours_predictions(model, D, u, fr)
                    _set_pool_scale(model, 1.0)
                preds[OURS] = ours_predictions(model, D, u, fr)
                preds[TODAY] = ours_predictions(model, D, u, fr, today=True)
                if seed == seeds[0] and n in refit_n and nn > 0:
                    m2 = V0Regressor(random_state=0).fit(pl.concat([D.pool_frame(u), fr]).drop("unit"))
                    preds["v0lite refit"] = m2.predict(D.queries(u))
                for meth, p in preds.items():
                    P = P_pool.copy()
                    P[:, j] = p
                    records.append(
                        {
                            "log": name,
                            "unit": u,
                            "seed": seed,
                            "n": str(n),
                            "n_rows": nn,
                            "method": meth,
                            "auc": fast_auc(y_te[ok], p[ok]),
                            "brier": float(np.mean((p[ok] - y_te[ok]) ** 2)),
                            "headline": head(P) if D.headline else np.nan,
                            "_p": p,
                        }
                    )
        if with_suggest:  # the first seed only (time); the targets compare it with random draws over every seed
            records += suggest_records(D, u, model, rows_u, seeds[:1], y_te, ok)
        log(f"  {name} {u}: done in {time.perf_counter() - t_u:.0f} s")
    return D, records, fit_times


SUGGEST_N = (10, 30, 100)


def suggest_records(D, u, model, rows_u, seeds, y_te, ok):
    """AUC after n prompts chosen by ``suggest_prompts`` (from the unit's train prompts) vs n random ones."""
    import functools

    import v0lite.heads._select as sel

    out = []
    pol = u.split("@")[0] if D.name == "v0" else u
    cands = rows_u["prompt"].to_list()
    original = sel.greedy_design
    crits = ("i", "d") if TUNE["on"] else ("i",)  # --tune also scores the D-optimal criterion
    for seed in seeds:
        for n in SUGGEST_N:
            for crit in crits:
                sel.greedy_design = functools.partial(original, criterion=crit)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        chosen = model.suggest_prompts(pol, cands, n, random_state=seed)
                finally:
                    sel.greedy_design = original
                fr = rows_u.filter(pl.col("prompt").is_in(chosen))
                p = ours_predictions(model, D, u, fr)
                label = "chosen (suggest_prompts)" if crit == "i" else "chosen, D-optimal"
                out.append(
                    {
                        "log": D.name,
                        "unit": u,
                        "seed": seed,
                        "n": str(n),
                        "n_rows": fr.height,
                        "method": label,
                        "auc": fast_auc(y_te[ok], p[ok]),
                        "brier": float(np.mean((p[ok] - y_te[ok]) ** 2)),
                        "headline": np.nan,
                        "_p": p,
                    }
                )
    return out


# -- summary -----------------------------------------------------------------------------------
def summarise(D, records, n_boot=N_BOOT):
    """Mean over held-out units (and seeds) per (n, method), and v0lite minus the best peer with a bootstrap CI."""
    df = pl.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in records])
    tab = df.group_by(["n", "method"]).agg(pl.col("auc").mean(), pl.col("brier").mean(), pl.col("headline").mean())
    y_all = D.Y_te
    rng = np.random.default_rng(0)
    boots = [rng.integers(0, len(y_all), len(y_all)) for _ in range(n_boot)]
    diffs = {}
    for n in [str(x) for x in N_GRID]:
        sub = tab.filter(pl.col("n") == n)
        peer = sub.filter(pl.col("method").is_in(list(PEERS))).sort("auc", descending=True)
        if not peer.height:
            continue
        best = peer["method"][0]
        pairs = {}
        for r in records:
            if r["n"] == n and r["method"] in (OURS, best):
                pairs.setdefault((r["unit"], r["seed"]), {})[r["method"]] = r["_p"]
        est, bs = [], np.zeros(n_boot)
        for (unit, _), pr in pairs.items():
            if len(pr) < 2:
                continue
            y = y_all[:, D.units.index(unit)]
            est.append(fast_auc(y, pr[OURS]) - fast_auc(y, pr[best]))
            for b, idx in enumerate(boots):
                bs[b] += fast_auc(y[idx], pr[OURS][idx]) - fast_auc(y[idx], pr[best][idx])
        k = max(len(est), 1)
        lo, hi = np.nanpercentile(bs / k, [2.5, 97.5])
        diffs[n] = {"best_peer": best, "diff": float(np.nanmean(est)), "lo": float(lo), "hi": float(hi)}
    return tab, diffs


def format_log(D, tab, diffs, n_units, seeds):
    methods = [OURS, "v0lite refit", TODAY, *PEERS, "chosen (suggest_prompts)", "chosen, D-optimal"]
    methods += sorted({m for m in tab["method"].to_list() if m.startswith("v0lite pool_scale")})
    ns = [str(x) for x in N_GRID]
    lines = [
        f"**{D.name}** ({n_units} held-out {'(policy, checkpoint)s' if D.name == 'v0' else 'models'}, "
        f"seeds {list(seeds)}, {len(D.te_prompts)} test prompts). Within-model AUC, mean over held-out units:",
        "",
        "| method | " + " | ".join(f"n={n}" for n in ns) + " |",
        "|---|" + "---|" * len(ns),
    ]

    def cell(meth, n, col):
        r = tab.filter((pl.col("method") == meth) & (pl.col("n") == n))
        return "-" if not r.height or r[col][0] is None or not np.isfinite(r[col][0]) else f"{r[col][0]:.4f}"

    for meth in methods:
        if tab.filter(pl.col("method") == meth).height:
            lines.append(f"| {meth} | " + " | ".join(cell(meth, n, "auc") for n in ns) + " |")
    lines.append(
        "| v0lite minus the best peer (95% CI) | "
        + " | ".join(
            f"{diffs[n]['diff']:+.4f} [{diffs[n]['lo']:+.4f}, {diffs[n]['hi']:+.4f}] ({diffs[n]['best_peer']})"
            if n in diffs
            else "-"
            for n in ns
        )
        + " |"
    )
    for col, label in (
        ("brier", "Brier"),
        ("headline", {"aiq": "AIQ", "mean_task_acc": "mean task accuracy"}.get(D.headline)),
    ):
        if col == "headline" and not D.headline:
            continue
        lines += [
            "",
            f"{label} (the unit's column from each method, every other model's from the pool):",
            "",
            "| method | " + " | ".join(f"n={n}" for n in ns) + " |",
            "|---|" + "---|" * len(ns),
        ]
        for meth in methods + ([WITHOUT] if col == "headline" else []):
            if tab.filter(pl.col("method") == meth).height:
                lines.append(f"| {meth} | " + " | ".join(cell(meth, n, col) for n in ns) + " |")
    return "\n".join(lines)


def targets(tab, diffs):
    """The issue's targets on one log, each with the figure that decides it."""
    ns = [str(x) for x in N_GRID]

    def a(meth, n):
        r = tab.filter((pl.col("method") == meth) & (pl.col("n") == n))
        return float(r["auc"][0]) if r.height else np.nan

    out = []
    ok = all(diffs[n]["diff"] >= 0 for n in ns if n in diffs)
    out.append(
        ("at least the best peer at every n", ok, ", ".join(f"{n}: {diffs[n]['diff']:+.4f}" for n in ns if n in diffs))
    )
    small = [n for n in ns if n in ("0", "10", "30")]
    g = {n: a(OURS, n) - a("difficulty prior", n) for n in small}
    out.append(
        (
            "difficulty prior + 0.01 at n <= 30",
            all(v >= 0.01 for v in g.values()),
            ", ".join(f"{n}: {v:+.4f}" for n, v in g.items()),
        )
    )
    seq = [a(OURS, n) for n in ns]
    out.append(("AUC grows with n", all(np.diff(seq) >= 0), " -> ".join(f"{v:.4f}" for v in seq)))
    big = [n for n in ns if n in ("100", "300", "all") and n in diffs]
    out.append(
        (
            "best peer + 0.02 at n >= 100",
            all(diffs[n]["diff"] >= 0.02 for n in big),
            ", ".join(f"{n}: {diffs[n]['diff']:+.4f}" for n in big),
        )
    )
    d_all = a(OURS, "all") - a(TODAY, "all")
    # the same path at n = all (an added model with every row is read as a fitted one): a check of that path
    # (at the printed precision: the two paths differ in float rounding only)
    out.append(("n = all no worse than today (the same path)", round(d_all, 4) >= 0, f"{d_all:+.4f}"))
    if tab.filter(pl.col("method") == "chosen (suggest_prompts)").height:
        c30 = tab.filter((pl.col("method") == "chosen (suggest_prompts)") & (pl.col("n") == "30"))["auc"][0]
        r100 = a(OURS, "100")
        out.append(("30 chosen >= 100 random", c30 >= r100, f"{c30:.4f} vs {r100:.4f}"))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--logs", default="routerbench,routerdc,v0")
    ap.add_argument("--quick", action="store_true", help="3 held-out units, 1 seed, no refit: for iterating")
    ap.add_argument("--units", type=int, default=0, help="held-out units per log (0: all)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--refit-n", default="30,300", help="n values refitted (seed 0); '' for none")
    ap.add_argument("--no-suggest", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    ap.add_argument("--tune", action="store_true", help="CV on train only (fold 0 of train as the test): pool_scale")
    args = ap.parse_args(argv)
    TUNE["on"] = args.tune
    if args.tune:
        args.no_write = True
    units = 3 if args.quick and not args.units else args.units
    seeds = tuple(range(1 if args.quick else args.seeds))
    refit_n = () if args.quick else tuple(x if x == "all" else int(x) for x in args.refit_n.split(",") if x)
    t0 = time.perf_counter()
    sections, summary = [], {}
    for name in args.logs.split(","):
        D, records, fit_times = run_log(name, units, seeds, refit_n, not args.no_suggest)
        tab, diffs = summarise(D, records)
        n_units = len({r["unit"] for r in records})
        text = format_log(D, tab, diffs, n_units, seeds)
        tg = targets(tab, diffs)
        text += "\n\nTargets (issue 29): " + "; ".join(f"{t}: {'met' if ok else 'NOT met'} ({v})" for t, ok, v in tg)
        if fit_times:
            text += f"\n\nPool fits (auto, without the held-out unit): {np.mean(fit_times):.1f} s each on average."
        print("\n" + text + "\n", flush=True)
        sections.append(text)
        summary[name] = {"table": tab.to_dicts(), "diffs": diffs, "targets": [(t, bool(ok), v) for t, ok, v in tg]}
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"summary-{name}.json").write_text(json.dumps(summary[name], indent=1, default=str))
        cmd = command_line("onboarding.py", argv)
        body = (
            f"Command: `{cmd.strip()}` ({time.perf_counter() - t0:.0f} s since the run began)\n\n{machine_info()}\n\n"
            + (
                "Protocol: see benchmarks/onboarding.py's docstring (the routerbench section quotes it).\n\n"
                if name != "routerbench"
                else _protocol() + "\n\n"
            )
            + text
        )
        if not args.no_write and not args.quick:
            write_section(f"onboarding-{name}", f"A new model from a few outcomes (issue 29): {name}", body)
    print(f"total {time.perf_counter() - t0:.0f} s")


def _protocol() -> str:
    """The docstring's protocol (its heading and bullets, up to the commands) as RESULTS.md quotes it."""
    return __doc__[__doc__.index("Protocol, on each log") : __doc__.index("\n\n    python ")]


if __name__ == "__main__":
    main()
