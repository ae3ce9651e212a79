"""Prediction speed of the learned heads against the number of torch threads (issue 3's >= 5,000/s).

Fits each head once on routerdc-7model's train split (split_by_prompt 80/20, seed 0; 115k history
rows), then predicts all held-out rows (prompts already embedded) with 1 and with 2 torch threads,
alternating, ``--repeats`` times each; reports the median rows/s. Run it on an otherwise idle
machine: OpenMP threads spin, so a second busy process distorts the 2-thread figures most.

    python benchmarks/predict_threads.py [--heads gbdt,ensemble] [--repeats 3] [--no-write]
    python benchmarks/predict_threads.py --quick    # smoke test: knn, 1 repeat (implies --no-write)

Each head and thread count is judged against the target (>= 5,000 rows/s on the median): "met" or
"NOT met", with the figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._results import command_line, machine_info, parse_quick, write_section  # noqa: E402

TARGET_ROWS_S = 5000  # issue 3: >= 5,000 predictions per second
QUICK = {"heads": "knn", "repeats": 1}


def verdict(rows_s: float) -> str:
    """``met (7,766)`` or ``NOT met (4,561)``: the median rows/s against the issue's target."""
    return f"{'met' if rows_s >= TARGET_ROWS_S else 'NOT met'} ({rows_s:,.0f})"


def parse_args(argv=None) -> argparse.Namespace:
    """The options; ``--quick`` (a smoke test) never writes RESULTS.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", default="gbdt,transformer,ensemble")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--quick", action="store_true", help="smoke test: knn, 1 repeat; implies --no-write")
    return parse_quick(ap, argv, QUICK)


def main(argv=None) -> int:
    args = parse_args(argv)
    from v0lite.data import convert_routerdc, data_dir, split_by_prompt
    from v0lite.estimator import V0Regressor

    root = data_dir()
    if root is None:
        print("predict-threads benchmark skipped: no data (set V0LITE_DATA or put the data in ../shared/data)")
        return 0
    import torch

    df = convert_routerdc(root / "routerdc-7model").drop("split")
    tr, te = split_by_prompt(df, test_size=0.2, random_state=0)
    X = te.drop("score")
    threads = [int(t) for t in args.threads.split(",")]
    before = torch.get_num_threads()
    rows = []
    for head in args.heads.split(","):
        t0 = time.perf_counter()
        model = V0Regressor(head=head, random_state=0).fit(tr)
        fit_s = time.perf_counter() - t0
        model.predict(X.head(256))  # warm-up: lazy imports and per-index caches
        times = {t: [] for t in threads}
        for _ in range(args.repeats):
            for t in threads:
                torch.set_num_threads(t)
                t0 = time.perf_counter()
                model.predict(X)
                times[t].append(time.perf_counter() - t0)
        torch.set_num_threads(before)
        rates = {t: X.height / float(np.median(times[t])) for t in threads}
        row = [head, f"{fit_s:.0f}"] + [f"{rates[t]:,.0f}" for t in threads]
        row.append("; ".join(f"{t} thread{'s' if t > 1 else ''}: {verdict(rates[t])}" for t in threads))
        rows.append(row)
        print("  ".join(row), flush=True)
    header = (
        ["head", "fit s (training threads: n_jobs=1)"]
        + [f"rows/s, {t} torch thread{'s' if t > 1 else ''}" for t in threads]
        + [f"target >= {TARGET_ROWS_S:,} rows/s"]
    )
    table = "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
    )
    print(table)
    if not args.no_write:
        cmd = command_line("predict_threads.py", argv)
        body = (
            f"Command: `{cmd.strip()}`  \n{machine_info()}  \nrouterdc-7model, split_by_prompt 80/20 seed 0: "
            f"{tr.height:,} history rows, {X.height:,} held-out rows predicted per call (prompts already "
            f"embedded), median of {args.repeats} calls per thread count, alternating. LightGBM predicts with "
            f"its own `n_jobs` (1) and faiss with its own default (all cores); only torch (the transformer) "
            f"follows the thread count.\n\n" + table
        )
        write_section("predict-threads", "Prediction speed vs torch threads (issue 3)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
