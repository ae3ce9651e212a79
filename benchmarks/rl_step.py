"""An RL loop's per-step cost on a growing history: predict a batch, then add its outcomes (no refit).

Each GRPO step a trainer asks for the batch's values at the current step, then logs the batch's
outcomes at that step with ``add_history``. The history grows by a batch a step, so what a step
costs as the history grows is what a long run pays.

For each history size and head: one policy whose history holds ``size`` rows (steps 0, 1, ... with
``--batch`` rows each, prompts drawn from a pool of ``size / 50`` so each is visited about 50
times), a ``V0Regressor`` fitted on it, then ``--warm + --steps`` steps of ``predict(batch)`` +
``add_history(batch)`` at the next steps; the median of the last ``--steps`` is shown. Vectors are
random unit vectors of dim 384 (a stand-in encoder: the encoder is not what is measured).

In the same run, on the same history and batches:

* **v0lite, IVF trained per add**: the same loop with the IVF index of a grown block trained again at
  every add (what v0lite did before 2026-12-07: ``_Block.adopt`` given no index to extend);
* **numpy brute force**: the exact kNN mean a user would write (the eligible rows' dot products,
  ``np.argpartition`` top-k, their mean; ``benchmarks/_speed_baselines.py``), the history's vectors
  appended each step. Ratio = its step time / v0lite's (above 1: v0lite is faster).

    python benchmarks/rl_step.py               # sizes 50k, 150k, 500k; heads knn, auto (~15 min here)
    python benchmarks/rl_step.py --quick       # 50k rows, knn: a smoke run (never writes RESULTS.md)

Rewrites the ``## RL loop: per-step cost`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._results import command_line, machine_info, parse_quick, write_section  # noqa: E402
from benchmarks._speed_baselines import brute_knn_predict  # noqa: E402
from benchmarks.speed import _HashEncoder  # noqa: E402

VISITS = 50  # history rows per distinct prompt


def _history(size: int, batch: int, seed: int = 0):
    """(prompt pool, the history frame, rng) for one policy: ``size`` rows, ``batch`` rows per step."""
    import polars as pl

    rng = np.random.default_rng(seed)
    pool = [f"problem {i}: solve for x in topic {i % 37}" for i in range(max(batch, size // VISITS))]
    steps = max(1, size // batch)
    idx = np.concatenate([rng.choice(len(pool), batch, replace=False) for _ in range(steps)])
    hist = pl.DataFrame(
        {
            "policy": "policy",
            "prompt": [pool[i] for i in idx],
            "step": np.repeat(np.arange(steps), batch),
            "n": 8,
            "score": rng.integers(0, 9, len(idx)) / 8,
        }
    )
    return pool, hist, rng


@contextlib.contextmanager
def _ivf_per_add():
    """v0lite before 2026-12-07: a grown block's IVF index trained again at its first search."""
    from v0lite import index as index_mod

    adopt = index_mod._Block.adopt
    index_mod._Block.adopt = lambda self, n_rows, x, ivf=None: adopt(self, n_rows, x)
    try:
        yield
    finally:
        index_mod._Block.adopt = adopt


def v0lite_steps(head: str, size: int, batch: int, warm: int, steps: int, seed: int = 0, served=None) -> list[float]:
    """Seconds of each timed step (predict + add_history) of the loop, after ``warm`` untimed steps;
    ``served`` (a list) gets the head that answers (``auto``'s choice)."""
    import polars as pl

    from v0lite import V0Regressor

    pool, hist, rng = _history(size, batch, seed)
    model = V0Regressor(head=head, encoder=_HashEncoder(), cache_dir=False, random_state=0).fit(hist)
    if served is not None:
        served.append(str(getattr(model.head_, "chosen_", head)))
    t, out = int(hist["step"].max()) + 1, []
    for i in range(warm + steps):
        X = pl.DataFrame({"policy": "policy", "prompt": [pool[j] for j in rng.choice(len(pool), batch, False)]})
        X = X.with_columns(step=pl.lit(t + i))
        t0 = time.perf_counter()
        p = model.predict(X)
        model.add_history(X.with_columns(n=pl.lit(8)), rng.integers(0, 9, batch) / 8)
        if i >= warm:
            out.append(time.perf_counter() - t0)
        assert np.isfinite(p).all()
    return out


def brute_steps(size: int, batch: int, warm: int, steps: int, k: int = 32, seed: int = 0) -> list[float]:
    """The same loop with :func:`brute_knn_predict` over vectors appended each step."""
    pool, hist, rng = _history(size, batch, seed)
    enc = _HashEncoder()
    vec_pool = enc.encode(pool)
    prompt_row = {t: i for i, t in enumerate(pool)}
    n, cap = hist.height, hist.height + (warm + steps) * batch  # room for every step: appends copy nothing
    emb = np.empty((cap, vec_pool.shape[1]), np.float32)
    emb[:n] = vec_pool[[prompt_row[t] for t in hist["prompt"].to_list()]]
    step, score, policy = np.empty(cap, np.int64), np.empty(cap), np.zeros(cap, np.int64)
    step[:n], score[:n] = hist["step"].to_numpy(), hist["score"].to_numpy()
    t, out = int(step[:n].max()) + 1, []
    for i in range(warm + steps):
        idx = rng.choice(len(pool), batch, False)
        t0 = time.perf_counter()
        q = vec_pool[idx]
        p = brute_knn_predict(
            emb[:n], policy[:n], step[:n], score[:n], q, np.zeros(batch, np.int64), np.full(batch, t + i), k
        )
        emb[n : n + batch], step[n : n + batch] = q, t + i
        score[n : n + batch] = rng.integers(0, 9, batch) / 8
        n += batch
        if i >= warm:
            out.append(time.perf_counter() - t0)
        assert np.isfinite(p).all()
    return out


def run(sizes, heads, batch, warm, steps, log=print) -> list[dict]:
    rows = []
    for size in sizes:
        brute = float(np.median(brute_steps(size, batch, warm, steps)))
        for head in heads:
            served = []
            now = float(np.median(v0lite_steps(head, size, batch, warm, steps, served=served)))
            with _ivf_per_add():
                before = float(np.median(v0lite_steps(head, size, batch, warm, steps)))
            row = {"size": size, "head": head, "served": served[0], "v0lite": now, "per_add": before, "brute": brute}
            rows.append(row)
            log(f"{size:,} rows, head {head} ({served[0]}): {1e3 * now:.1f} ms a step ({1e3 * before:.1f} with the IVF "
                f"trained per add; numpy brute force {1e3 * brute:.1f})")  # fmt: skip
    return rows


def markdown(rows) -> str:
    out = [
        "| history rows | head (serving) | v0lite step (ms) | v0lite, IVF trained per add (ms) "
        "| numpy brute force (ms) | ratio (brute force / v0lite) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        head = r["head"] if r.get("served", r["head"]) == r["head"] else f"{r['head']} ({r['served']})"
        out.append(
            f"| {r['size']:,} | {head} | {1e3 * r['v0lite']:.1f} | {1e3 * r['per_add']:.1f} | "
            f"{1e3 * r['brute']:.1f} | {r['brute'] / r['v0lite']:.2f}x |"
        )
    return "\n".join(out)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50000,150000,500000", help="history rows before the timed steps")
    ap.add_argument("--heads", default="knn,auto")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--warm", type=int, default=3, help="untimed steps first")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (their median is shown)")
    ap.add_argument("--quick", action="store_true", help="50k rows, head knn, 5 steps; never writes")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    return parse_quick(ap, argv, {"sizes": "50000", "heads": "knn", "steps": 5})


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    rows = run([int(s) for s in args.sizes.split(",")], args.heads.split(","), args.batch, args.warm, args.steps)
    text = markdown(rows)
    print(text)
    if not args.no_write:
        body = (
            f"Command: `{command_line('rl_step.py', argv).strip()}`  \n{machine_info()}; "
            f"total {time.perf_counter() - t0:.0f} s.\n\nOne policy; each step predicts {args.batch} prompts at "
            f"the next step and adds their outcomes (`add_history`, no refit); median of {args.steps} steps after "
            f"{args.warm} untimed ones. Protocol and baselines: `benchmarks/rl_step.py`'s docstring.\n\n" + text
        )
        write_section("rl-step", "RL loop: per-step cost", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
