"""Speed and scale of v0lite (issue 7): encoder vs end to end, history size, recall, memory.

Run::

    .venv/bin/python benchmarks/speed.py            # full run (~15-25 min on 2 cores)
    .venv/bin/python benchmarks/speed.py --quick    # small run (~2-3 min); prints only (implies --no-write)

Prints tables and rewrites the ``## Speed (issue 7)`` section of ``benchmarks/RESULTS.md``
(between ``<!-- speed:start -->`` and ``<!-- speed:end -->``; other sections are kept).

Each history size runs in its own subprocess so its peak memory (``ru_maxrss``) is its own.
Histories are synthetic: random unit vectors of dim 384 (speed), and jittered real MiniLM
embeddings of the prompts in ``../shared/data`` (recall; random vectors have no neighbour
structure, so their recall says nothing about real data). Timings are medians of repeats.

Every speed table has a baseline from the same run, on the same data and queries, and a ratio
(v0lite / baseline): the encoder alone (cold prompts); exact numpy brute force over the query
policy's eligible rows with a plain kNN mean (history size, recall; also the exact top-k that
recall is measured against); scikit-learn's brute-force cosine ``KNeighborsRegressor`` per policy
(end to end). See ``benchmarks/_speed_baselines.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks._results when run as a script (V0LITE_BENCH_IMPL goes before it)
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
DIM = 384

import benchmarks._speed_baselines as sb  # noqa: E402
from benchmarks._speed_baselines import cold_target_text, empty_prefix_text, median_time  # noqa: E402


# -- helpers --------------------------------------------------------------------------------
def machine() -> str:
    from benchmarks._results import machine_info

    return machine_info()


def maxrss_mib() -> float:
    """Peak RSS of this process: VmHWM (ru_maxrss would include the forking parent's RSS)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def real_prompts(n: int, seed: int = 0) -> tuple[list[str], str]:
    """n distinct real prompts from ../shared/data when present, else generated demo prompts.

    The loaders' warnings (e.g. near-duplicate prompts in the public logs) are recorded and counted in
    one printed line rather than shown one by one (they concern the logs, not the timings); the
    process's warning filters are left as they were.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prompts, src = _real_prompts(n, seed)
    if caught:  # counted by category, e.g. "2 x V0liteWarning"
        from collections import Counter

        counts = Counter(w.category.__name__ for w in caught)
        print("real_prompts: warnings while loading: " + ", ".join(f"{n} x {c}" for c, n in counts.items()))
    return prompts, src


def _real_prompts(n: int, seed: int) -> tuple[list[str], str]:
    from v0lite import data as datasets

    d = datasets.data_dir()
    prompts: list[str] = []
    src = "generated (make_demo_log)"
    if d is not None and (d / "routerdc-7model").exists():
        try:
            prompts = sorted(set(datasets.convert_routerdc(d / "routerdc-7model")["prompt"].to_list()))
            src = "../shared/data/routerdc-7model"
        except Exception:  # noqa: BLE001 - fall back to generated prompts
            prompts = []
    if len(prompts) < n:
        n_topics = 6  # make_demo_log's default: it takes prompts per topic
        log = datasets.make_demo_log(
            n_topics=n_topics, n_prompts_per_topic=-(-max(n, 100) // n_topics), random_state=seed
        )
        prompts = sorted(set(log["prompt"].to_list()))
        src = "generated (make_demo_log)"
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(prompts), n, replace=False)
    return [prompts[i] for i in pick], src


# -- 1. encoder alone vs end to end on cold prompts ------------------------------------------
def bench_cold(n: int, repeats: int) -> dict:
    import polars as pl
    import torch

    from v0lite import V0Regressor
    from v0lite.embed import _load_sentence_transformer, _resolve_model

    torch.set_num_threads(os.cpu_count() or 1)
    prompts, src = real_prompts(n + 300)
    hist, cold = prompts[:300], prompts[300:]
    model = _load_sentence_transformer(_resolve_model(None)[1], None)
    model.encode(["warm up"] * 8)

    def encoder_alone():
        return model.encode(
            cold, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    hist_df = pl.DataFrame({"policy": ["a", "b"] * (len(hist) // 2), "prompt": hist[: len(hist) // 2 * 2]})
    y = np.random.default_rng(0).random(hist_df.height)
    qdf = pl.DataFrame({"policy": ["a"] * len(cold), "prompt": cold})
    t_enc, t_e2e = [], []
    for _ in range(repeats):  # interleaved, so background load hits both alike
        t0 = time.perf_counter()
        encoder_alone()
        t_enc.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as cache:
            reg = V0Regressor(head="knn", cache_dir=cache).fit(hist_df, y)
            t0 = time.perf_counter()
            p = reg.predict(qdf)
            t_e2e.append(time.perf_counter() - t0)
            assert len(p) == len(cold)
    enc, e2e = float(np.median(t_enc)), float(np.median(t_e2e))
    return {
        "n": len(cold),
        "source": src,
        "encoder_s": enc,
        "e2e_s": e2e,
        "encoder_rate": len(cold) / enc,
        "e2e_rate": len(cold) / e2e,
        "ratio": enc / e2e,
        "encoder_runs": t_enc,
        "e2e_runs": t_e2e,
    }


# -- 2. one history size, in a subprocess ----------------------------------------------------
def prepare_real(n: int, out: Path) -> str:
    """Embed n real prompts (v0lite's cache: $V0LITE_CACHE or ~/.cache/v0lite) into ``out`` (.npy)."""
    import torch

    from v0lite.embed import Embedder

    torch.set_num_threads(os.cpu_count() or 1)
    prompts, src = real_prompts(n, seed=1)
    np.save(out, Embedder().encode(prompts))
    return src


def _real_base() -> np.ndarray | None:
    """MiniLM embeddings of real prompts from the v0lite cache of ../shared/data, if there."""
    path = os.environ.get("V0LITE_BENCH_REAL_EMB")
    if path and Path(path).exists():
        return np.load(path).astype(np.float32)
    return None


def _make_vectors(path: Path, n: int, kind: str, seed: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Write n unit vectors to ``path`` (.npy) chunk by chunk; return (memmap, held-out queries)."""
    rng = np.random.default_rng(seed)
    base = _real_base() if kind == "real" else None
    if kind == "real" and base is None:
        kind = "clustered"
    if kind == "clustered":
        base = rng.standard_normal((4000, DIM)).astype(np.float32)
        base /= np.linalg.norm(base, axis=1, keepdims=True)
    if base is not None:
        perm = rng.permutation(len(base))
        qbase, base = base[perm[:500]], base[perm[500:]]
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n, DIM))

    def draw(m):
        if base is None:
            x = rng.standard_normal((m, DIM)).astype(np.float32)
        else:  # a real vector plus noise of norm ~0.35: a paraphrase-like neighbour
            x = base[rng.integers(0, len(base), m)] + rng.standard_normal((m, DIM)).astype(np.float32) * (
                0.35 / np.sqrt(DIM)
            )
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    for lo in range(0, n, 65536):
        out[lo : lo + 65536] = draw(min(65536, n - lo))
    out.flush()
    del out
    q = draw(2000) if base is None else qbase + 0  # queries: held-out real vectors
    if base is not None:
        q = np.concatenate([q, draw(2000 - len(q))]) if len(q) < 2000 else q[:2000]
    return np.load(path, mmap_mode="r"), np.ascontiguousarray(q, np.float32)


def size_worker(args) -> dict:
    """Build a history of ``args.n`` rows, time index build and knn predictions, measure recall."""
    from v0lite import index as index_mod
    from v0lite.heads.knn import KNNHead
    from v0lite.index import HistoryIndex, Queries

    if args.threshold:
        index_mod.APPROX_THRESHOLD = args.threshold
    res = {
        "n": args.n,
        "kind": args.kind,
        "storage": args.storage,
        "policies": args.policies,
        "threshold": index_mod.APPROX_THRESHOLD,
        "rss_start_mib": rss_mib(),
    }
    n, n_pol, n_steps = args.n, args.policies, 10
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        dtype = np.float16 if args.storage == "fp16" else np.float32
        emb, qv = _make_vectors(Path(tmp) / "emb.npy", n, args.kind, args.seed, dtype)
        if args.storage == "ram":
            emb = np.array(emb)
        rng = np.random.default_rng(args.seed + 1)
        policy = (np.arange(n) % n_pol).astype(np.int32)
        step = rng.integers(0, n_steps, n)
        score = rng.random(n)
        keys = [""] * n  # content keys play no part in search; skip hashing 1M strings
        res["rss_data_mib"] = rss_mib()
        t0 = time.perf_counter()
        idx = HistoryIndex(emb, keys, [f"p{i}" for i in range(n_pol)], policy, np.arange(n), score, step)
        for c in range(n_pol):
            b = idx.block(c)
            if hasattr(b, "exact_vectors"):
                b.exact_vectors(idx.emb)
            fi = b.faiss_index(idx.emb)
        res["fit_s"] = time.perf_counter() - t0
        res["approx"] = fi is not None and "IVF" in type(fi).__name__ or "HNSW" in type(fi).__name__
        res["index_type"] = type(fi).__name__ if fi is not None else "exact"
        res["rss_fit_mib"] = rss_mib()
        head = KNNHead(k=args.k)
        m = len(qv)
        qpol = (np.arange(m) % n_pol).astype(np.int32)
        latest = Queries(qpol, np.full(m, n_steps), qv, np.full(m, -1))
        mixed = Queries(qpol, rng.integers(0, n_steps, m), qv, np.full(m, -1))
        for name, q in (("latest", latest), ("mixed", mixed)):
            head.predict(idx, q.subset(np.arange(50)))  # warm
            t, p = median_time(lambda q=q: head.predict(idx, q), args.repeats)
            res[f"pred_{name}_per_s"] = m / t
            assert np.isfinite(p).all()
        res["peak_rss_mib"] = maxrss_mib()  # v0lite's build and predictions; before any baseline work
        # recall@k of the rows the knn head reads, against the brute-force baseline's exact top-k (same prefix)
        sub = np.arange(min(m, 300))
        res["recall_queries"] = len(sub)
        for name, q in (("latest", latest), ("mixed", mixed)):
            qs = q.subset(sub)
            got, _ = idx.search_queries(qs, args.k, "none")
            truth, _ = sb.brute_knn(emb, policy, step, qs.emb, qs.policy, qs.step, args.k)
            has = (truth >= 0).any(1)  # an empty step prefix (no row at or before the step): nothing to recall
            hits = [np.isin(t[t >= 0], g).mean() for t, g in zip(truth[has], got[has], strict=True)]
            res[f"recall_{name}"] = float(np.mean(hits))
            res[f"recall_{name}_empty_prefix"] = int((~has).sum())
        res["queries"], res["baseline_queries"] = m, sb.baseline_queries(n, m)
        for name, q in (("latest", latest), ("mixed", mixed)):
            qs = q.subset(np.arange(res["baseline_queries"]))
            t, p = median_time(
                lambda qs=qs: sb.brute_knn_predict(emb, policy, step, score, qs.emb, qs.policy, qs.step, args.k),
                args.repeats,
            )
            res[f"base_{name}_per_s"] = len(qs) / t
            assert np.isfinite(p).any()
        if args.profile:
            from pyinstrument import Profiler

            prof = Profiler(interval=0.001)
            prof.start()
            head.predict(idx, latest)
            prof.stop()
            Path(args.profile).write_text(prof.output_text(unicode=False, color=False, show_all=False))
    return res


def run_size(
    n: int, *, kind="random", storage="ram", policies=1, k=32, repeats=3, threshold=0, profile="", tmp=None, impl=""
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--n",
        str(n),
        "--kind",
        kind,
        "--storage",
        storage,
        "--policies",
        str(policies),
        "--k",
        str(k),
        "--repeats",
        str(repeats),
        "--threshold",
        str(threshold),
    ]
    if profile:
        cmd += ["--profile", profile]
    if tmp:
        cmd += ["--tmp", tmp]
    env = dict(os.environ)
    if impl:
        env["V0LITE_BENCH_IMPL"] = impl
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"worker n={n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- 3. V0Regressor.fit / predict with a fast fake encoder ------------------------------------
class _HashEncoder:
    """A stand-in encoder: a deterministic random unit vector per text (no model, ~free)."""

    model_id = "bench-hash-384"

    def encode(self, texts):
        import zlib

        out = np.empty((len(texts), DIM), np.float32)
        for i, t in enumerate(texts):
            out[i] = np.random.default_rng(zlib.crc32(t.encode())).standard_normal(DIM)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def estimator_worker(args) -> dict:
    import polars as pl

    from v0lite import V0Regressor

    n = args.n
    rng = np.random.default_rng(0)
    prompts = [f"prompt {i} about topic {i % 97}" for i in range(n)]
    df = pl.DataFrame(
        {
            "policy": [f"p{i % max(args.policies, 1)}" for i in range(n)],
            "prompt": prompts,
            "step": rng.integers(0, 10, n),
        }
    )
    y = rng.random(n)
    res = {"n": n, "policies": args.policies}
    with tempfile.TemporaryDirectory(dir=args.tmp) as cache:
        enc = _HashEncoder()
        reg = V0Regressor(head="knn", encoder=enc, cache_dir=cache)
        reg._get_embedder().encode(prompts)  # embedded before: fit then reads the cache
        reg2 = V0Regressor(head="knn", encoder=enc, cache_dir=cache)
        t0 = time.perf_counter()
        reg2.fit(df, y)
        res["fit_s"] = time.perf_counter() - t0
        m = 2000
        q = pl.DataFrame(
            {
                "policy": [f"p{i % max(args.policies, 1)}" for i in range(m)],
                "prompt": prompts[:m],
                "step": np.full(m, 10),
            }
        )
        reg2.predict(q[:20])
        t, _ = median_time(lambda: reg2.predict(q), args.repeats)
        res["predict_per_s"] = m / t
    res["peak_rss_mib"] = maxrss_mib()  # V0Regressor's own, before the baseline
    # the same vectors (the fake encoder's), the same queries; no step rule
    vec, pol = enc.encode(prompts), np.asarray(df["policy"].to_list())
    res["k"], t0 = reg2.k, time.perf_counter()
    knn = sb.sklearn_knn_predictor(vec, pol, y, reg2.k)
    res["base_fit_s"] = time.perf_counter() - t0
    qvec, qpol = vec[:m], np.asarray(q["policy"].to_list())
    knn(qvec[:20], qpol[:20])
    t, p = median_time(lambda: knn(qvec, qpol), args.repeats)
    assert np.isfinite(p).all()
    res["base_predict_per_s"] = m / t
    return res


def run_estimator(n: int, policies: int, repeats: int, tmp=None) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--estimator-worker",
        "--n",
        str(n),
        "--policies",
        str(policies),
        "--repeats",
        str(repeats),
    ] + (["--tmp", tmp] if tmp else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"estimator worker n={n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_args(argv=None) -> argparse.Namespace:
    """The options; ``--quick`` shrinks the run and, a smoke test, never writes RESULTS.md."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="small run: 100 cold prompts, sizes 10k and 100k; implies --no-write"
    )
    ap.add_argument("--n-cold", type=int, default=500, help="cold prompts for the encoder comparison")
    ap.add_argument("--sizes", default="10000,100000,1000000", help="history sizes (rows)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-real", type=int, default=4000, help="real prompts embedded for the recall table")
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument("--extra", default="", help="markdown appended to the section (e.g. profile notes)")
    # worker modes (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--estimator-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="random", help=argparse.SUPPRESS)
    ap.add_argument("--storage", default="ram", help=argparse.SUPPRESS)
    ap.add_argument("--policies", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--threshold", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--profile", default="", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick and not (args.worker or args.estimator_worker):
        args.no_write = True
        args.n_cold = min(args.n_cold, 100)
        args.sizes = "10000,100000"
        args.repeats = min(args.repeats, 2)
        args.n_real = min(args.n_real, 1500)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    impl = os.environ.get("V0LITE_BENCH_IMPL")
    if impl:  # benchmark another checkout of v0lite (before/after comparisons)
        sys.path.insert(0, impl)
        sys.meta_path[:] = [
            f
            for f in sys.meta_path
            if "editable" not in type(f).__module__.lower() and "editable" not in getattr(f, "__name__", "").lower()
        ]
    if args.worker:
        print(json.dumps(size_worker(args)))
        return 0
    if args.estimator_worker:
        print(json.dumps(estimator_worker(args)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s]
    from benchmarks._results import command_line

    cmd = command_line("speed.py", argv)
    parts = [
        f"Command: `{cmd.strip()}`  \n{machine()}  \n"
        f"Timings are medians of {args.repeats} repeats; the machine is shared, so expect noise.\n"
    ]

    if not args.skip_cold:
        c = bench_cold(args.n_cold, args.repeats)
        t = table(
            ["path", "prompts", "median s", "prompts/s"],
            [
                [
                    "MiniLM via sentence-transformers (encode only)",
                    c["n"],
                    f"{c['encoder_s']:.2f}",
                    f"{c['encoder_rate']:.1f}",
                ],
                [
                    "V0Regressor(head='knn').predict, cold prompts, fresh cache",
                    c["n"],
                    f"{c['e2e_s']:.2f}",
                    f"{c['e2e_rate']:.1f}",
                ],
            ],
        )
        s = (
            f"### Cold prompts: encoder vs end to end\n\nPrompts: {c['source']}. End to end = hashing, cache "
            f"lookup, encoding, shard write, retrieval and the knn head. **End to end runs at "
            f"{100 * c['ratio']:.0f}% of the encoder's rate** {cold_target_text(c['ratio'])}.\n\n{t}\n"
        )
        print(s)
        parts.append(s)

    rows, rec_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        real_src = prepare_real(args.n_real, Path(tmp) / "real.npy")
        os.environ["V0LITE_BENCH_REAL_EMB"] = str(Path(tmp) / "real.npy")
        for n in sizes:
            storage = "memmap" if n >= 1_000_000 else "ram"
            r = run_size(n, storage=storage, repeats=args.repeats, k=args.k, tmp=tmp)
            rows.append(r)
            print(f"n={n}: {json.dumps(r)}", flush=True)
        for n in sizes:
            if n > 100_000 and args.quick:
                continue
            storage = "memmap" if n >= 1_000_000 else "ram"
            r = run_size(n, kind="real", storage=storage, repeats=1, k=args.k, tmp=tmp)
            rec_rows.append(r)
            print(f"recall n={n}: {json.dumps(r)}", flush=True)
        est = []
        for n in sizes:
            if n > 100_000:
                continue
            est.append(run_estimator(n, 4, args.repeats, tmp))
            print(f"estimator n={n}: {json.dumps(est[-1])}", flush=True)

    t = table(
        [
            "history rows",
            "search",
            "emb storage",
            "index build s",
            "knn predict/s (latest step)",
            "knn predict/s (random steps)",
            "recall@%d latest / random steps" % args.k,
            "peak RSS MiB",
            "baseline predict/s latest / random",
            "ratio (v0lite / baseline) latest / random",
        ],
        [
            [
                f"{r['n']:,}",
                "IVF + exact prefix" if r["approx"] else "exact",
                r["storage"],
                f"{r['fit_s']:.2f}",
                f"{r['pred_latest_per_s']:,.0f}",
                f"{r['pred_mixed_per_s']:,.0f}",
                f"{r['recall_latest']:.3f} / {r['recall_mixed']:.3f}",
                f"{r['peak_rss_mib']:,.0f}",
                f"{r['base_latest_per_s']:,.0f} / {r['base_mixed_per_s']:,.0f}",
                f"{sb.rate_ratio(r['pred_latest_per_s'], r['base_latest_per_s'])} / "
                f"{sb.rate_ratio(r['pred_mixed_per_s'], r['base_mixed_per_s'])}",
            ]
            for r in rows
        ],
    )
    s = (
        f"### History size: random unit vectors, dim 384, one policy, 10 checkpoints\n\n"
        f"knn head (k={args.k}), 2,000 queries with prompts already embedded, one policy holding the "
        "whole history (the worst case: a query scans one policy's block). Recall of random vectors is "
        "low by nature (no neighbour structure: all similarities are near 0 and ties); see the next "
        "table for real embeddings. Peak RSS is v0lite's, taken before the baseline runs. "
        f"{empty_prefix_text(rows)}\n\n{sb.brute_text(rows, args.k)}\n\n{t}\n"
    )
    print(s)
    parts.append(s)
    if rec_rows:
        t = table(
            [
                "history rows",
                "search",
                "recall@%d (latest step)" % args.k,
                "recall@%d (random steps)" % args.k,
                "knn predict/s (latest)",
                "index build s",
                "baseline predict/s (latest)",
                "ratio (v0lite / baseline)",
            ],
            [
                [
                    f"{r['n']:,}",
                    "IVF + exact prefix" if r["approx"] else "exact",
                    f"{r['recall_latest']:.3f}",
                    f"{r['recall_mixed']:.3f}",
                    f"{r['pred_latest_per_s']:,.0f}",
                    f"{r['fit_s']:.2f}",
                    f"{r['base_latest_per_s']:,.0f}",
                    sb.rate_ratio(r["pred_latest_per_s"], r["base_latest_per_s"]),
                ]
                for r in rec_rows
            ],
        )
        s = (
            "### Recall on real embeddings\n\nHistory rows are MiniLM embeddings of "
            f"{args.n_real:,} real prompts ({real_src}; 500 held out as queries), each row one of them plus "
            "small noise (norm 0.35); recall@k = share of the exact top-k (same step prefix; the baseline's "
            "neighbours) that the index returns; one timing repeat. "
            f"{empty_prefix_text(rec_rows)}\n\n{sb.brute_text(rec_rows, args.k)}\n\n{t}\n"
        )
        print(s)
        parts.append(s)
    if est:
        t = table(
            [
                "history rows",
                "policies",
                "V0Regressor.fit s",
                "predict/s",
                "peak RSS MiB",
                "baseline predict/s",
                "ratio (v0lite / baseline)",
            ],
            [
                [
                    f"{r['n']:,}",
                    r["policies"],
                    f"{r['fit_s']:.2f}",
                    f"{r['predict_per_s']:,.0f}",
                    f"{r['peak_rss_mib']:,.0f}",
                    f"{r['base_predict_per_s']:,.0f}",
                    sb.rate_ratio(r["predict_per_s"], r["base_predict_per_s"]),
                ]
                for r in est
            ],
        )
        s = (
            "### V0Regressor end to end, prompts already embedded\n\nFake fast encoder, prompts already "
            "in the cache; fit = log validation, hashing, cache read, index, head (knn: none); predict "
            "includes hashing and the DataFrame path; peak RSS is V0Regressor's, taken before the baseline runs."
            "\n\n" + sb.sklearn_text(est[0]["k"]) + "\n\n" + t + "\n"
        )
        print(s)
        parts.append(s)
    if args.extra and Path(args.extra).exists():
        parts.append(Path(args.extra).read_text("utf-8"))
    if not args.no_write:
        from benchmarks._results import write_section

        write_section("speed", "Speed (issue 7)", "\n".join(parts), RESULTS)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
