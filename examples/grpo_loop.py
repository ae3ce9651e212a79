"""A toy GRPO loop wired to v0lite's RolloutPlanner (runs in seconds on CPU).

A simulated policy solves prompt i with probability ``sigmoid(skill_t - difficulty_i)``;
its skill grows with the number of *mixed* groups it trains on (a group of rollouts that
are all right or all wrong gives GRPO no gradient). Three loops with the same rollout budget
are compared:

* uniform: a random half of each batch, 8 rollouts each;
* planner + running mean: the planner keeps the half with the highest predicted P(mixed) and
  splits the same budget over them with the exact knapsack allocator; its value model is a
  per-prompt running mean (a prompt never rolled out gets the mean of all);
* planner + V0: the same planner with ``v0lite.V0Regressor(head="knn")``, which also predicts
  prompts never rolled out, from similar prompts.

The prompts come from ``v0lite.data.make_demo_log`` (templated questions whose wording carries
their topic and level). A warm-up log holds one group of 8 rollouts at step 0 on a fraction of
them (``--warm-fraction``, default 0.5): the rest are new to both value models, as most of an RL
training set is before its first epoch. ``planner.observe`` also returns V0.5 fused baselines,
which a real trainer uses as each group's advantage baseline; this toy's update does not need
them.

Run::

    python examples/grpo_loop.py                        # --steps 12 --batch 64 --prompts 240
    python examples/grpo_loop.py --warm-fraction 1.0    # every prompt rolled out once before
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl

from v0lite import V0Regressor
from v0lite.data import make_demo_log
from v0lite.rl import RolloutPlanner, p_mixed

ARMS = ("uniform", "planner + running mean", "planner + V0")


def _prompts(n_prompts: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``n_prompts`` prompts of the synthetic demo log and their difficulty (one policy's step-0 rate)."""
    per_topic = -(-n_prompts // 8)  # the demo log's 8 topics, enough prompts in each
    log = make_demo_log(n_policies=1, n_topics=8, n_prompts_per_topic=per_topic, n_steps=1, random_state=seed)
    per = log.group_by("prompt", maintain_order=True).agg(pl.col("score").mean()).sample(n=n_prompts, seed=seed)
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


class SettingError(ValueError):
    """A bad loop setting (the command line turns it into argparse's usage error)."""


def _check(steps: int, batch: int, n_prompts: int, warm_fraction: float) -> None:
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
    if not 0 < warm_fraction <= 1:
        raise SettingError(f"--warm-fraction must be in (0, 1], got {warm_fraction}.")


def main(
    steps: int = 12, batch: int = 64, n_prompts: int = 240, warm_fraction: float = 0.5, seed: int = 0, encoder=None
) -> dict:
    """Run the three arms; ``encoder``: V0Regressor's (None: the default MiniLM)."""
    _check(steps, batch, n_prompts, warm_fraction)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    prompts, difficulty = _prompts(n_prompts, seed)

    def success(skill):
        return 1 / (1 + np.exp(-(skill - difficulty)))

    # warm-up log: the initial policy on a fraction of the prompts, one group of 8 rollouts each (step 0)
    p_init = success(0.0)
    warm_idx = rng.choice(n_prompts, size=max(1, round(warm_fraction * n_prompts)), replace=False)
    warm = pl.DataFrame(
        {
            "policy": ["toy"] * len(warm_idx),
            "prompt": [prompts[i] for i in warm_idx],
            "step": [0] * len(warm_idx),
            "n": [8] * len(warm_idx),
            "score": rng.binomial(8, p_init[warm_idx]) / 8,
        }
    )
    models = {"planner + running mean": RunningMean(), "planner + V0": V0Regressor(head="knn", k=16, encoder=encoder)}

    results = {}
    for arm in ARMS:
        planner = None
        if arm in models:
            model = models[arm].fit(warm.drop("score"), warm["score"].to_numpy())
            planner = RolloutPlanner(
                model, strategy="p_mixed", budget_per_prompt=8, n_min=2, n_max=16, policy="toy", random_state=seed
            )
        skill = 0.0
        arm_rng = np.random.default_rng(seed + 1)
        mixed = rollouts = 0
        for step in range(1, steps + 1):
            idx = arm_rng.choice(n_prompts, size=batch, replace=False)
            batch_prompts = [prompts[i] for i in idx]
            p_true = success(skill)[idx]
            if planner is None:
                keep = arm_rng.choice(batch, size=batch // 2, replace=False)
                n = np.full(keep.size, 8)
            else:
                plan = planner.plan(batch_prompts, step)
                pos = {q: j for j, q in enumerate(batch_prompts)}
                keep = np.array([pos[q] for q in plan.kept_prompts], dtype=np.int64)
                n = plan.n_rollouts
            s = arm_rng.binomial(n, p_true[keep])
            if planner is not None:  # also returns the fused baselines a real trainer would use
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
    results["prompts"] = n_prompts
    results["warm_prompts"] = len(warm_idx)
    results["expected_mixed_at_8_initial"] = float(p_mixed(p_init, 8).mean())
    results["seconds"] = time.perf_counter() - t0
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=240)
    ap.add_argument("--warm-fraction", type=float, default=0.5, help="share of the prompts in the warm-up log")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    try:
        out = main(a.steps, a.batch, a.prompts, a.warm_fraction, seed=a.seed)
    except SettingError as e:  # a bad setting: argparse's usage error (exit 2), not a traceback
        ap.error(str(e))
    print(
        f"{out['prompts']} prompts (synthetic demo log), {out['warm_prompts']} of them in the warm-up log; "
        f"{out['seconds']:.1f} s"
    )
    print(f"{'arm':<24} {'mixed/1000 rollouts':>20} {'final mean success':>19} {'rollouts':>9}")
    for arm in ARMS:
        r = out[arm]
        print(
            f"{arm:<24} {r['mixed_groups_per_1000_rollouts']:>20.1f} {r['final_mean_success']:>19.3f} "
            f"{r['rollouts']:>9d}"
        )
