"""GPU check of the neural V0 head on v0-dapomath, beside the CPU ensemble head, in one run.

History = ``context.jsonl`` (3,072 rows), queries = ``train.jsonl`` (192 rows, prompts disjoint from
the history). Prints AUC, within-policy AUC, gAUC and throughput of each head; writes
``gpu_check.json`` to ``$OUT`` (or ``--out``) if set. Needs ``.gpu_bundle/`` (make it with
``benchmarks/make_gpu_bundle.py``); runs without faiss (exact numpy search stands in), without
polars (the index is built directly, as ``V0Regressor.fit`` would build it), and without lightgbm
(the baseline falls back to "knn", and says so).

    bash benchmarks/gpu_check.sh                 # the GPU machine (< 8 min on an H100)
    .venv/bin/python benchmarks/gpu_check.py --quick   # CPU smoke test: tiny subset, 3 steps
    .venv/bin/python benchmarks/gpu_check.py --write-results gpu_check.json   # here, after the GPU run

``--write-results JSON`` runs nothing: it renders the ``gpu`` section of benchmarks/RESULTS.md (or
``--results``) from a full run's gpu_check.json (a ``--quick`` one is refused: it is not a result).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GPU_MARKER, GPU_TITLE = "gpu", "GPU path: neural head vs CPU ensemble (issue 6)"  # the section RESULTS.md has


# --------------------------------------------------------------------------- environment


def check_modules() -> dict:
    out = {}
    for name in (
        "torch",
        "transformers",
        "safetensors",
        "sentence_transformers",
        "faiss",
        "polars",
        "lightgbm",
        "sklearn",
        "scipy",
        "tabpfn",
    ):
        try:
            mod = importlib.import_module(name)
            out[name] = getattr(mod, "__version__", "?")
        except Exception as exc:  # noqa: BLE001 - any import failure means "missing"
            out[name] = None
            out[f"{name}_error"] = type(exc).__name__
    return out


def install_faiss_shim() -> None:
    """A tiny exact inner-product stand-in for the faiss calls HistoryIndex makes."""

    class IDSelectorRange:
        def __init__(self, lo, hi):
            self.lo, self.hi = int(lo), int(hi)

    class SearchParameters:
        def __init__(self, sel=None, efSearch=None):
            self.sel = sel

    class IndexFlatIP:
        def __init__(self, d, *args):
            self.d = d
            self.x = np.zeros((0, d), np.float32)

        def add(self, x):
            self.x = np.vstack([self.x, np.asarray(x, np.float32)])

        def search(self, q, k, params=None):
            hi = self.x.shape[0] if params is None or params.sel is None else params.sel.hi
            lo = 0 if params is None or params.sel is None else params.sel.lo
            s = np.asarray(q, np.float32) @ self.x[lo:hi].T
            kk = min(k, s.shape[1])
            idx = np.argsort(-s, axis=1, kind="stable")[:, :kk]
            D = np.full((len(q), k), -np.inf, np.float32)
            I = np.full((len(q), k), -1, np.int64)
            D[:, :kk] = np.take_along_axis(s, idx, 1)
            I[:, :kk] = idx + lo
            return D, I

    class IndexHNSWFlat(IndexFlatIP):
        def __init__(self, d, m=32, metric=None):
            super().__init__(d)
            self.hnsw = types.SimpleNamespace(efSearch=128)

    def knn(q, xb, k, metric=None):
        index = IndexFlatIP(np.asarray(xb).shape[1])
        index.x = np.asarray(xb, np.float32)
        return index.search(q, k)

    shim = types.ModuleType("faiss")
    shim.knn = knn
    shim.IndexFlatIP, shim.IndexHNSWFlat, shim.IDSelectorRange = IndexFlatIP, IndexHNSWFlat, IDSelectorRange
    shim.SearchParameters = shim.SearchParametersHNSW = shim.SearchParametersIVF = SearchParameters
    shim.METRIC_INNER_PRODUCT = 0
    shim.__version__ = "numpy-shim"
    sys.modules["faiss"] = shim


# --------------------------------------------------------------------------- data


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def load_world(bundle: Path, quick: bool):
    """HistoryIndex (context) + Queries (train) with .texts, built as V0Regressor would build them."""
    from safetensors.numpy import load_file

    from v0lite.embed import prompt_key
    from v0lite.index import HistoryIndex, Queries

    ctx = read_jsonl(bundle / "data" / "context.jsonl")
    qry = read_jsonl(bundle / "data" / "train.jsonl")
    if quick:  # a few rows per (policy, step)

        def head_of(rows, n):
            seen, out = {}, []
            for r in rows:
                g = (r["policy"], r["step"])
                if seen.get(g, 0) < n:
                    seen[g] = seen.get(g, 0) + 1
                    out.append(r)
            return out

        ctx, qry = head_of(ctx, 40), head_of(qry, 6)
    a = load_file(str(bundle / "data" / "emb.safetensors"))
    key_to_emb = {bytes(k).hex(): i for i, k in enumerate(a["keys"])}
    emb_all = a["emb"]

    keys, texts, key_row = [], [], {}
    ckeys = [prompt_key(r["prompt"]) for r in ctx]
    for r, k in zip(ctx, ckeys):
        if k not in key_row:
            key_row[k] = len(keys)
            keys.append(k)
            texts.append(r["prompt"])
    policies = sorted({r["policy"] for r in ctx})
    p2c = {p: i for i, p in enumerate(policies)}
    index = HistoryIndex(
        emb_all[[key_to_emb[k] for k in keys]],
        keys,
        policies,
        np.array([p2c[r["policy"]] for r in ctx], np.int32),
        np.array([key_row[k] for k in ckeys], np.int64),
        np.array([r["score"] for r in ctx], np.float64),
        np.array([r["step"] for r in ctx], np.int64),
        np.array([r.get("n", 0) for r in ctx], np.int64),
        np.array([len(t) for t in texts], np.float32),
    )
    index.texts = texts
    qkeys = [prompt_key(r["prompt"]) for r in qry]
    queries = Queries(
        np.array([p2c.get(r["policy"], -1) for r in qry], np.int32),
        np.array([r["step"] for r in qry], np.int64),
        emb_all[[key_to_emb[k] for k in qkeys]],
        np.array([key_row.get(k, -1) for k in qkeys], np.int64),
        np.array([len(r["prompt"]) for r in qry], np.float32),
    )
    queries.texts = [r["prompt"] for r in qry]
    y = np.array([r["score"] for r in qry], np.float64)
    groups = np.array(
        [f"{r['policy']}@{r['step']}" for r in qry]
    )  # (policy, step), as the issue defines within-policy AUC
    steps = np.array([r["step"] for r in qry])
    return index, queries, y, groups, steps


# --------------------------------------------------------------------------- evaluation


def scores(y, p, groups, steps) -> dict:
    from v0lite import metrics

    p = np.clip(np.nan_to_num(p, nan=0.5), 0, 1)
    return {
        "auc": float(metrics.auc(y, p)),
        "within_policy_auc": float(metrics.within_policy_auc(y, p, groups)),
        "gauc": float(metrics.gauc(y, p, steps)),
        "brier": float(metrics.brier(y, p)),
    }


def run_head(name, index, queries, fill, seed, **params) -> dict:
    from v0lite.heads import make_head

    t0 = time.perf_counter()
    head = make_head(name, **params)
    head.fit(index, random_state=seed)
    t1 = time.perf_counter()
    p = head.predict(index, queries)
    t2 = time.perf_counter()
    p = np.clip(np.where(np.isnan(p), fill, p), 0, 1)  # as V0Regressor.predict does
    return {
        "head": name,
        "p": p,
        "fit_s": t1 - t0,
        "predict_s": t2 - t1,
        "obj": head,
        "predict_rows_per_s": len(queries) / max(t2 - t1, 1e-9),
    }


def baseline_only(args) -> int:
    """Child process: the CPU heads on the same index; predictions to a JSON file."""
    if check_modules().get("faiss") is None:
        install_faiss_shim()
    index, queries, y, groups, steps = load_world(Path(args.bundle), args.quick)
    fill = float(index.score.mean())
    out = {}
    for name, params in (("prior", {}), ("knn", {"k": 32})):
        out[name] = run_head(name, index, queries, fill, args.seed, **params)
    try:
        out["baseline"] = run_head(args.baseline, index, queries, fill, args.seed)
    except Exception as exc:  # noqa: BLE001 - report and fall back
        out["note"] = f"{args.baseline!r} unavailable ({type(exc).__name__}: {str(exc)[:200]}); baseline = 'knn'"
        print(f"   NOTE: {out['note']}", flush=True)
        out["baseline"] = dict(out["knn"], head="knn")
    for key in ("prior", "knn", "baseline"):
        r = out[key]
        r.pop("obj", None)
        r["p"] = r["p"].tolist()
        print(f"   [cpu] {r['head']}: fit {r['fit_s']:.1f}s, predict {r['predict_s']:.2f}s", flush=True)
    Path(args.baseline_only).write_text(json.dumps(out), "utf-8")
    return 0


def _cell(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render_section(report: dict, source: str) -> str:
    """The RESULTS.md section body for one gpu_check.json ``report`` (read from ``source``)."""
    env, data = report["env"], report.get("data", {})
    mods = env.get("modules", {})
    have = ", ".join(f"{m} {v}" for m, v in mods.items() if v and not m.endswith("_error") and m != "torch")
    absent = ", ".join(env.get("missing") or []) or "none"
    lines = [
        f"Command: `{report.get('command', 'not recorded in the JSON')}` (rendered from `{source}` by "
        f"`benchmarks/gpu_check.py --write-results`); finished {report.get('finished', 'at a time not recorded')}.  ",
        f"Device {env['device']}{' (' + env['gpu'] + ')' if env.get('gpu') else ''}, {env.get('cpu_threads')} "
        f"CPU threads; Python {env['python']}, torch {env['torch']}; {have}; absent: {absent}"
        + (" (faiss absent: the script's exact numpy search stood in)." if mods.get("faiss") is None else "."),
    ]
    if data:
        lines.append(
            f"v0-dapomath: history {data['history_rows']:,} rows / {data['history_prompts']:,} prompts / "
            f"{data['policies']} policies, queries {data['queries']:,}."
        )
    lines += [
        "",
        "| head | AUC | within-policy AUC | gAUC | Brier | fit s | predict rows/s |",
        "|---|---|---|---|---|---|---|",
    ]
    heads = report["heads"]
    for key in ("prior", "knn", "baseline", "neural"):
        r = heads.get(key)
        if r is None:
            continue
        name = r["head"] + (" (CPU baseline)" if key == "baseline" else "")
        if key == "neural":
            name += f" ({env['device']}, {r.get('stats', {}).get('train_steps', '?')} steps)"
        if "error" in r:
            lines.append(f"| {name} | error: {r['error']} | | | | | |")
            continue
        cells = [_cell(r.get(m), ".3f") for m in ("auc", "within_policy_auc", "gauc")]
        cells += [
            _cell(r.get("brier"), ".4f"),
            _cell(r.get("fit_s"), ".1f"),
            _cell(r.get("predict_rows_per_s"), ",.0f"),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    st = heads.get("neural", {}).get("stats")
    notes = []
    if st:
        peak = heads["neural"].get("peak_gpu_mib")
        notes.append(
            f"Neural throughput: {st.get('encoded_prompts', 0):,} prompts encoded in {st.get('encode_s', 0):.1f} s; "
            f"{st.get('train_steps')} training steps in {st.get('train_s', 0):.0f} s "
            f"({st.get('train_queries_per_s', 0):,.0f} training queries/s, stopped by {st.get('stopped_by', '?')}); "
            f"final training loss {st.get('final_loss')}; "
            + (f"peak GPU memory {peak:,.0f} MiB." if peak is not None else "no GPU memory measured (not a CUDA run).")
        )
    if report.get("curve"):
        pts = ", ".join(
            f"step {c['step']} {c['auc']:.3f} / {c['within_policy_auc']:.3f} / {c['brier']:.3f}"
            for c in report["curve"]
        )
        notes.append(f"Learning curve on the queries (AUC / within-policy / Brier): {pts}.")
    if report.get("baseline_note"):
        notes.append(f"Note: {report['baseline_note']}.")
    notes.append(f"Total {report.get('total_s', '?')} s.")
    return "\n".join(lines) + "\n\n" + " ".join(notes)


def write_results(json_path: str, results: str) -> int:
    """``--write-results``: render ``json_path`` into the ``gpu`` section of ``results``; 2 with a message if unfit."""
    from benchmarks._results import write_section

    try:
        report = json.loads(Path(json_path).read_text("utf-8"))
        env = report["env"]
        report["heads"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(
            f"error: --write-results {json_path}: not a readable gpu_check.json ({type(exc).__name__}: {exc}). "
            "Fix: pass the gpu_check.json that a run of benchmarks/gpu_check.py wrote to $OUT (or --out).",
            file=sys.stderr,
        )
        return 2
    if env.get("quick"):
        print(
            f"error: --write-results {json_path}: the JSON is from a --quick run (tiny subset, 3 steps; not a "
            "result), so RESULTS.md is left alone. Fix: pass the gpu_check.json of a full run.",
            file=sys.stderr,
        )
        return 2
    write_section(GPU_MARKER, GPU_TITLE, render_section(report, Path(json_path).name), Path(results))
    print(f"wrote the {GPU_MARKER!r} section of {results}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="neural V0 head on v0-dapomath vs the CPU ensemble head")
    ap.add_argument("--bundle", default=str(ROOT / ".gpu_bundle"))
    ap.add_argument("--quick", action="store_true", help="CPU smoke test: tiny subset, tiny model, 3 steps")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--max-steps", type=int, default=1200)
    ap.add_argument("--train-seconds", type=float, default=210.0, help="training time cap of the neural head")
    ap.add_argument("--eval-every", type=int, default=200, help="learning curve on the queries every N steps (0: off)")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--baseline", default="ensemble")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--deadline", type=float, default=450.0, help="seconds from start after which the CPU baseline is abandoned"
    )
    ap.add_argument("--out", default=os.environ.get("OUT"))
    ap.add_argument("--baseline-only", default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--write-results", metavar="JSON", default=None, help="render RESULTS.md's gpu section from this gpu_check.json"
    )
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "RESULTS.md"), help="file --write-results writes")
    args = ap.parse_args(argv)
    if args.write_results:
        return write_results(args.write_results, args.results)
    if args.baseline_only:
        return baseline_only(args)
    t_start = time.perf_counter()
    import torch

    mods = check_modules()
    missing = [m for m in ("faiss", "polars", "lightgbm", "sentence_transformers", "tabpfn") if mods.get(m) is None]
    dev = torch.device(
        "cuda"
        if (args.device == "auto" and torch.cuda.is_available())
        else ("cpu" if args.device == "auto" else args.device)
    )
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
        "cpu_threads": torch.get_num_threads(),
        "modules": mods,
        "missing": missing,
        "quick": args.quick,
    }
    print(
        f"== env: python {env['python']}, torch {env['torch']}, device {dev} {env['gpu'] or ''}, "
        f"threads {env['cpu_threads']}"
    )
    print(f"== missing modules: {missing or 'none'}")
    if mods.get("faiss") is None:
        print("   faiss missing: exact numpy search stands in (same results on this data size)")
        install_faiss_shim()
    bundle = Path(args.bundle)
    if not (bundle / "data" / "context.jsonl").exists():
        print(f"error: {bundle} has no data/context.jsonl. Fix: run benchmarks/make_gpu_bundle.py here first.")
        return 2
    index, queries, y, groups, steps = load_world(bundle, args.quick)
    fill = float(index.score.mean())
    print(
        f"== data: history {index.n_rows} rows / {len(index.keys)} prompts / {len(index.policies)} policies; "
        f"queries {len(queries)} ({'QUICK subset' if args.quick else 'full'})"
    )
    results = {}

    # 1. CPU baselines on the same index, in a child process while the GPU trains
    base_json = Path(os.environ.get("TMPDIR", "/tmp")) / f"v0lite_gpu_check_baseline_{os.getpid()}.json"
    child_args = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--bundle",
        str(bundle),
        "--baseline",
        args.baseline,
        "--seed",
        str(args.seed),
        "--baseline-only",
        str(base_json),
    ] + (["--quick"] if args.quick else [])
    import subprocess

    child = subprocess.Popen(child_args)
    base_note = None

    # 2. the neural head
    bundle_minilm = bundle / "minilm"
    nparams = dict(
        encoder_model=str(bundle_minilm),
        device=str(dev),
        max_steps=args.max_steps,
        max_time_s=args.train_seconds,
        max_length=args.max_length,
        verbose=True,
    )
    if args.quick:
        nparams.update(
            max_steps=3,
            max_length=48,
            support_size=32,
            episode_queries=8,
            episodes_per_step=2,
            icl_dim=64,
            icl_layers=1,
            icl_ff=128,
            adapter_batch_size=128,
        )
    curve = []

    def hook(head, step):
        if args.eval_every and (step % args.eval_every == 0 or (args.quick and step == nparams["max_steps"])):
            p = head.predict_live(index, queries)
            s = scores(y, np.where(np.isnan(p), fill, p), groups, steps)
            s["step"], s["elapsed_s"] = step, round(time.perf_counter() - t_fit, 2)
            curve.append(s)
            print(f"   [curve] step {step}: auc {s['auc']:.4f} within-policy {s['within_policy_auc']:.4f}")

    from v0lite.heads.neural import NeuralHead

    neural = NeuralHead(**nparams)
    neural.step_hook = hook
    try:
        t_fit = time.perf_counter()
        neural.fit(index, random_state=args.seed)
        t1 = time.perf_counter()
        p = neural.predict(index, queries)
        t2 = time.perf_counter()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        results["neural"] = {
            "head": "neural",
            "p": np.clip(np.where(np.isnan(p), fill, p), 0, 1),
            "fit_s": t1 - t_fit,
            "predict_s": t2 - t1,
            "predict_rows_per_s": len(queries) / max(t2 - t1, 1e-9),
            "stats": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in neural.stats_.items()},
            "peak_gpu_mib": (torch.cuda.max_memory_allocated() / 2**20) if dev.type == "cuda" else None,
        }
    except Exception as exc:  # noqa: BLE001 - still report the baselines
        traceback.print_exc()
        results["neural"] = {"head": "neural", "error": f"{type(exc).__name__}: {exc}"}

    left = args.deadline - (time.perf_counter() - t_start)
    try:
        child.wait(timeout=max(5.0, left))
        base = json.loads(base_json.read_text("utf-8"))
        base_json.unlink(missing_ok=True)
        base_note = base.pop("note", None)
        for key, r in base.items():
            results[key] = {**r, "p": np.asarray(r["p"], np.float64)}
    except Exception as exc:  # noqa: BLE001 - a baseline that did not finish in time
        child.kill()
        base_note = f"CPU baselines did not finish within the deadline ({type(exc).__name__}: {str(exc)[:200]})"
        for key in ("prior", "knn", "baseline"):
            results.setdefault(key, {"head": args.baseline if key == "baseline" else key, "error": base_note})

    # 3. report
    label = "QUICK (tiny subset, 3 steps; not a result)" if args.quick else "full"
    print(f"\n== results [{label}] on {dev}{' ' + env['gpu'] if env['gpu'] else ''}; queries n={len(y)}")
    print(f"{'head':<22}{'AUC':>8}{'wpAUC':>8}{'gAUC':>8}{'Brier':>8}{'fit s':>9}{'pred rows/s':>13}")
    from benchmarks._results import command_line

    report = {"env": env, "baseline_note": base_note, "curve": curve, "heads": {}}
    report["command"] = command_line("gpu_check.py", argv)
    report["data"] = {
        "history_rows": int(index.n_rows),
        "history_prompts": len(index.keys),
        "policies": len(index.policies),
        "queries": len(y),
    }
    for key in ("prior", "knn", "baseline", "neural"):
        r = results[key]
        if "error" in r:
            print(f"{r['head']:<22} ERROR {r['error']}")
            report["heads"][key] = {"head": r["head"], "error": r["error"]}
            continue
        s = scores(y, r["p"], groups, steps)
        name = r["head"] + (" (baseline)" if key == "baseline" else "")
        print(
            f"{name:<22}{s['auc']:>8.4f}{s['within_policy_auc']:>8.4f}{s['gauc']:>8.4f}{s['brier']:>8.4f}"
            f"{r['fit_s']:>9.1f}{r['predict_rows_per_s']:>13.0f}"
        )
        report["heads"][key] = {
            "head": r["head"],
            **s,
            "fit_s": round(r["fit_s"], 3),
            "predict_s": round(r["predict_s"], 4),
            "predict_rows_per_s": round(r["predict_rows_per_s"], 1),
            **({"stats": r["stats"], "peak_gpu_mib": r["peak_gpu_mib"]} if key == "neural" else {}),
        }
    if "stats" in results["neural"]:
        st = results["neural"]["stats"]
        print(
            f"neural throughput: encode {st.get('encoded_prompts', 0)} prompts in {st.get('encode_s', 0):.1f}s; "
            f"train {st.get('train_steps')} steps, {st.get('train_queries_per_s', 0):.0f} queries/s "
            f"({st.get('train_s', 0):.1f}s); final loss {st.get('final_loss')}"
        )
    if base_note:
        print(f"NOTE: {base_note}")
    report["total_s"] = round(time.perf_counter() - t_start, 1)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"total {report['total_s']}s")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str), "utf-8")
        print(f"wrote {out / 'gpu_check.json'}")
    return 0 if "error" not in results["neural"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
