"""A toy GRPO loop wired to v0lite's RolloutPlanner (runs in well under a minute on CPU).

A simulated policy solves prompt i with probability ``sigmoid(skill_t - difficulty_i)``;
its skill grows with the number of *mixed* groups it trains on (a group of rollouts that
are all right or all wrong gives GRPO no gradient). Two loops with the same rollout budget
are compared:

* uniform: a random half of each batch, 8 rollouts each;
* v0lite: the planner keeps the half with the highest predicted P(mixed), splits the same
  budget over them with the exact knapsack allocator, and returns V0.5 fused baselines.

The value model is ``v0lite.V0Regressor(head="knn")`` fitted on a warm-up log (the synthetic
demo log's prompts when ``v0lite.data.make_demo_log`` exists); with ``--no-v0`` (or when
the estimator is not importable) a tiny per-prompt running-mean model stands in.

Run::

    python examples/grpo_loop.py            # defaults: --steps 12 --batch 64 --prompts 240, V0 on
    python examples/grpo_loop.py --no-v0    # the running-mean stand-in instead
"""

from __future__ import annotations

import argparse
import importlib
import time

import numpy as np
import polars as pl

from v0lite.rl import RolloutPlanner, p_mixed

TOPICS = ["algebra", "geometry", "counting", "probability", "number theory", "calculus", "sequences", "inequalities"]


def _own_prompts(n_prompts: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Prompts whose wording carries their topic; each topic has its own difficulty."""
    topic_level = np.linspace(-2.0, 2.5, len(TOPICS))
    topic = rng.integers(0, len(TOPICS), n_prompts)
    difficulty = topic_level[topic] + rng.normal(0, 0.7, n_prompts)
    prompts = [f"Problem {i} ({TOPICS[t]}): solve the {TOPICS[t]} exercise number {i}." for i, t in enumerate(topic)]
    return prompts, difficulty


def _demo_prompts(n_prompts: int, seed: int):
    """Prompts and difficulties from v0lite's synthetic demo log, or None if it is not available."""
    try:
        datasets = importlib.import_module("v0lite.data")
    except ImportError:
        return None
    make = getattr(datasets, "make_demo_log", None)
    if make is None:
        return None
    log = make(random_state=seed)
    if not {"policy", "prompt", "score"} <= set(log.columns):
        return None
    first = sorted(set(log["policy"].to_list()))[0]  # one policy's view of the prompts
    per = log.filter(pl.col("policy") == first).group_by("prompt", maintain_order=True).agg(pl.col("score").mean())
    if per.height < 50:
        return None
    per = per.sample(n=min(n_prompts, per.height), seed=seed)
    p0 = per["score"].to_numpy().clip(0.03, 0.97)
    return per["prompt"].to_list(), -np.log(p0 / (1 - p0))


class RunningMean:
    """Stand-in value model: decayed per-prompt mean with the global mean for unseen prompts."""

    def __init__(self, decay: float = 0.7):
        self.decay = decay

    def fit(self, X, y):
        self.s_, self.w_ = {}, {}
        return self.add_history(X, y)

    def add_history(self, X, y):
        for q, v in zip(X["prompt"].to_list(), np.asarray(y, dtype=float)):
            self.s_[q] = self.decay * self.s_.get(q, 0.0) + v
            self.w_[q] = self.decay * self.w_.get(q, 0.0) + 1.0
        total = sum(self.w_.values())
        self.mean_ = sum(self.s_.values()) / total if total else 0.5
        return self

    def predict(self, X):
        return np.array([self.s_[q] / self.w_[q] if q in self.w_ else self.mean_ for q in X["prompt"].to_list()])


def _value_model(use_v0: bool):
    if use_v0:
        try:
            from v0lite.estimator import V0Regressor
        except ImportError:
            print("v0lite.estimator not importable: using the running-mean stand-in")
        else:
            return V0Regressor(head="knn", k=16), "V0Regressor(head='knn')"
    return RunningMean(), "running mean (stand-in)"


class SettingError(ValueError):
    """A bad loop setting (the command line turns it into argparse's usage error)."""


def _check(steps: int, batch: int, n_prompts: int) -> None:
    """The loop's settings, refused (naming the flag) before any work."""
    if steps < 1:
        raise SettingError(f"--steps must be >= 1, got {steps}.")
    if batch < 2 or batch % 2:
        raise SettingError(
            f"--batch must be an even number >= 2 (each arm keeps half of a batch, on the same budget), got {batch}."
        )
    if n_prompts < 2:
        raise SettingError(f"--prompts must be >= 2 (a batch is drawn from them), got {n_prompts}.")
    if batch > n_prompts:
        raise SettingError(
            f"--batch {batch} is more than the {n_prompts} prompts a batch is drawn from; lower --batch."
        )


def main(steps: int = 12, batch: int = 64, n_prompts: int = 240, use_v0: bool = True, seed: int = 0) -> dict:
    _check(steps, batch, n_prompts)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    demo = _demo_prompts(n_prompts, seed)
    prompts, difficulty = demo if demo is not None else _own_prompts(n_prompts, rng)
    source = "v0lite.data.make_demo_log" if demo is not None else "built-in generator"
    prompts = list(prompts)
    n_prompts = len(prompts)
    _check(steps, batch, n_prompts)  # the demo log may hold fewer prompts than asked for

    def success(skill):
        return 1 / (1 + np.exp(-(skill - difficulty)))

    # warm-up log: the initial policy on every prompt once, 8 rollouts each (step 0)
    p_init = success(0.0)
    warm = pl.DataFrame(
        {
            "policy": ["toy"] * n_prompts,
            "prompt": prompts,
            "step": [0] * n_prompts,
            "n": [8] * n_prompts,
            "score": rng.binomial(8, p_init) / 8,
        }
    )
    model, model_name = _value_model(use_v0)
    model.fit(warm.drop("score"), warm["score"].to_numpy())
    planner = RolloutPlanner(
        model, strategy="p_mixed", budget_per_prompt=8, n_min=2, n_max=16, policy="toy", random_state=seed
    )

    results = {}
    for arm in ("uniform", "v0lite"):
        skill = 0.0
        arm_rng = np.random.default_rng(seed + 1)
        mixed = rollouts = 0
        for step in range(1, steps + 1):
            idx = arm_rng.choice(n_prompts, size=batch, replace=False)
            batch_prompts = [prompts[i] for i in idx]
            p_true = success(skill)[idx]
            if arm == "uniform":
                keep = arm_rng.choice(batch, size=batch // 2, replace=False)
                n = np.full(keep.size, 8)
            else:
                plan = planner.plan(batch_prompts, step)
                pos = {q: j for j, q in enumerate(batch_prompts)}
                keep = np.array([pos[q] for q in plan.kept_prompts], dtype=np.int64)
                n = plan.n_rollouts
            s = arm_rng.binomial(n, p_true[keep])
            if arm == "v0lite":
                planner.observe([batch_prompts[j] for j in keep], step, s, n)
            is_mixed = (s > 0) & (s < n)
            mixed += int(is_mixed.sum())
            rollouts += int(n.sum())
            skill += 0.005 * is_mixed.sum()  # learning needs non-zero gradients
        results[arm] = {
            "mixed_groups_per_1000_rollouts": 1000 * mixed / rollouts,
            "final_mean_success": float(success(skill).mean()),
            "rollouts": rollouts,
        }
    results["value_model"] = model_name
    results["prompts_source"] = source
    results["expected_mixed_at_8_initial"] = float(p_mixed(p_init, 8).mean())
    results["seconds"] = time.perf_counter() - t0
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=240)
    ap.add_argument("--no-v0", action="store_true", help="use the running-mean stand-in value model")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    try:
        out = main(a.steps, a.batch, a.prompts, use_v0=not a.no_v0, seed=a.seed)
    except SettingError as e:  # a bad setting: argparse's usage error (exit 2), not a traceback
        ap.error(str(e))
    print(f"prompts: {out['prompts_source']}   value model: {out['value_model']}   ({out['seconds']:.1f} s)")
    print(f"{'arm':<8} {'mixed/1000 rollouts':>20} {'final mean success':>19} {'rollouts':>9}")
    for arm in ("uniform", "v0lite"):
        r = out[arm]
        print(
            f"{arm:<8} {r['mixed_groups_per_1000_rollouts']:>20.1f} {r['final_mean_success']:>19.3f} "
            f"{r['rollouts']:>9d}"
        )
