"""docs/rl.md's verl recipe, run through verl 0.9.1's own ``python -m verl.trainer.main_ppo`` on a local Ray.

The recipe's overrides are read from docs/rl.md as written; the test replaces only the
placeholders (paths, the model, batch sizes) and adds what a CPU test needs: a local Ray with 2
CPUs, no dashboard, and the probe of ``tests/_verl_probe.py`` in place of the GPU workers' start
(Ray's ``worker_process_setup_hook``). The policy is a random 2-layer Llama saved from a config,
the tokenizer a WordLevel vocabulary trained here, the value model a kNN ``V0Regressor`` fitted on
the demo log (it reads its history, so feedback changes its predictions). Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests._tiny_lm import tiny_llama, tiny_tokenizer

ROOT = Path(__file__).resolve().parents[1]
POLICY = "synthetic-medium"
#: Recipe overrides the test replaces (placeholders and sizes); every other recipe override is used as written.
REPLACED = {
    "data.train_files",
    "data.val_files",
    "actor_rollout_ref.model.path",
    "+data.v0lite.model",
    "+data.v0lite.policy",
    "data.train_batch_size",
    "actor_rollout_ref.rollout.n",
}


def recipe_overrides(marker: str = "verl-recipe") -> list[str]:
    """The Hydra overrides of the docs/rl.md bash block tagged ``<!-- verl-recipe -->``."""
    text = (ROOT / "docs" / "rl.md").read_text()
    m = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```", text, re.S)
    assert m, f"docs/rl.md has no bash block after <!-- {marker} -->"
    words = shlex.split(m.group(1).replace("\\\n", " "))
    assert words[:3] == ["python", "-m", "verl.trainer.main_ppo"], words[:3]
    return [w for w in words[3:] if w != "..."]


def build_fixture(root: Path, n_prompts: int = 64) -> dict:
    """Tiny policy + tokenizer, train/val parquet in verl's format, a saved kNN V0Regressor."""
    import pandas as pd

    from v0lite import V0Regressor
    from v0lite.data import make_demo_log

    log = make_demo_log(n_policies=3, n_topics=4, n_prompts_per_topic=n_prompts // 4, n_steps=2, random_state=0)
    prompts = log.filter(log["policy"] == POLICY)["prompt"].unique(maintain_order=True).to_list()[:n_prompts]
    tok = tiny_tokenizer(prompts + ["system user be brief"])
    tiny_llama(tok).save_pretrained(root / "policy")
    tok.save_pretrained(root / "policy")

    def frame(qs):
        return pd.DataFrame(
            {
                "data_source": ["toy"] * len(qs),
                "prompt": [[{"role": "user", "content": q}] for q in qs],
                "reward_model": [{"style": "rule", "ground_truth": "1"}] * len(qs),
                "extra_info": [{"index": i} for i in range(len(qs))],
            }
        )

    frame(prompts).to_parquet(root / "train.parquet")
    frame(prompts[:4]).to_parquet(root / "val.parquet")
    V0Regressor(head="knn", k=8).fit(log.drop("cost", "task")).save(root / "v0_model")
    return {"prompts": prompts, "root": root}


def run_main_ppo(root: Path, overrides: list[str], timeout: float = 240) -> tuple[dict, subprocess.CompletedProcess]:
    """``python -m verl.trainer.main_ppo`` with the probe; returns the probe's record and the process."""
    probe = root / "probe.json"
    probe.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}  # never an outside cluster
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["V0LITE_VERL_PROBE"] = str(probe)
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["HYDRA_FULL_ERROR"] = "1"
    cmd = [sys.executable, "-m", "verl.trainer.main_ppo", *overrides]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    record = json.loads(probe.read_text()) if probe.exists() else {}
    return record, proc


def cpu_overrides(root: Path, n: int = 2, batch: int = 4) -> list[str]:
    """What the CPU test needs on top of the recipe: placeholders filled, a local 2-CPU Ray, the probe."""
    return [
        f"data.train_files={root / 'train.parquet'}",
        f"data.val_files={root / 'val.parquet'}",
        f"actor_rollout_ref.model.path={root / 'policy'}",
        f"+data.v0lite.model={root / 'v0_model'}",
        f"+data.v0lite.policy={POLICY}",
        f"data.train_batch_size={batch}",
        f"actor_rollout_ref.rollout.n={n}",
        "data.max_prompt_length=64",
        "data.max_response_length=8",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={batch}",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "trainer.n_gpus_per_node=1",
        "trainer.nnodes=1",
        "trainer.total_epochs=1",
        "trainer.logger=[console]",
        "trainer.val_before_train=false",
        f"trainer.default_local_dir={root / 'ckpt'}",
        f"hydra.run.dir={root / 'hydra'}",
        "ray_kwargs.ray_init.num_cpus=2",
        "+ray_kwargs.ray_init.include_dashboard=false",
        "+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=tests._verl_probe.install",
        f"+ray_kwargs.ray_init.runtime_env.env_vars.PYTHONPATH={ROOT}",
        f"+ray_kwargs.ray_init.runtime_env.env_vars.V0LITE_VERL_PROBE={root / 'probe.json'}",
    ]


def merged(recipe: list[str], ours: list[str]) -> list[str]:
    """The recipe's overrides with the replaced keys taken from ``ours``; ``ours``' other keys appended."""
    keys = [o.split("=", 1)[0] for o in ours]
    out = [r for r in recipe if r.split("=", 1)[0] not in keys]
    return out + ours


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    import verl.trainer.main_ppo  # noqa: F401  ([dev] installs verl: a missing one fails, never skips)

    root = tmp_path_factory.mktemp("verl_main")
    build_fixture(root)
    return root


@pytest.mark.slow
def test_recipe_runs_v0lite_inside_main_ppo(fixture_dir):
    recipe = recipe_overrides()
    for key in ("data.custom_cls.path", "data.custom_cls.name", "data.shuffle", "data.dataloader_num_workers"):
        assert any(r.startswith(key + "=") for r in recipe), f"the recipe does not set {key}"
    assert REPLACED <= {r.split("=", 1)[0] for r in recipe}, "the test would replace something the recipe lacks"
    ours = cpu_overrides(fixture_dir)
    assert {o.split("=", 1)[0] for o in ours} & {r.split("=", 1)[0] for r in recipe} == REPLACED
    record, proc = run_main_ppo(fixture_dir, merged(recipe, ours))
    assert proc.returncode == 0 and record, proc.stdout[-3000:] + proc.stderr[-6000:]

    # the trainer's dataset is v0lite's, read by verl's sequential sampler; validation is verl's own
    assert record["dataset"].endswith("PlannedRLHFDataset")
    assert record["sampler"] == "torch.utils.data.sampler.SequentialSampler"
    assert record["val_dataset"].endswith("RLHFDataset") and "v0lite" not in record["val_dataset"]
    assert record["num_workers"] == 0 and record["batch_size"] == 4
    assert record["steps_per_epoch"] == 64 // 8  # 8 candidates (oversample 2) per step of 4
    # every batch is the planned one: its rows are the chosen candidates, nearest the band first
    assert len(record["batches"]) == 8
    for rows, plan in zip(record["batches"], record["planned"]):
        assert rows == plan["rows"]
        p = np.array(plan["p"])
        gap = np.maximum(np.maximum(0.2 - p, p - 0.8), 0)
        dropped = np.setdiff1d(np.arange(p.size), plan["chosen"])
        assert gap[plan["chosen"]].max() <= gap[dropped].min()
    assert len({r for rows in record["batches"] for r in rows}) == 32  # each prompt a candidate once
    # feedback: the outcomes of step t reach add_history before step t + 1 is planned (k = 1)
    ev = record["events"]
    offset = next(int(r.split("=", 1)[1]) for r in recipe if r.startswith("+data.v0lite.step_offset="))
    adds = {e["steps"][0]: i for i, e in enumerate(ev) if e["event"] == "add_history"}
    assert sorted(adds) == [offset + t for t in range(8)]
    batches = [i for i, e in enumerate(ev) if e["event"] == "batch"]
    for t in range(7):
        plan_next = next(
            i for i, e in enumerate(ev) if e["event"] == "predict" and e["steps"] == [offset + t + 1] and e["n"] == 8
        )
        assert adds[offset + t] < plan_next < batches[t + 1]


@pytest.mark.slow
def test_recipe_fails_before_workers_without_its_loader_settings(fixture_dir):
    """With verl's default dataloader_num_workers=8 the dataset refuses to run, naming the setting."""
    recipe = [r for r in recipe_overrides() if not r.startswith("data.dataloader_num_workers=")]
    record, proc = run_main_ppo(fixture_dir, merged(recipe, cpu_overrides(fixture_dir)))
    assert proc.returncode != 0 and not record
    assert "data.dataloader_num_workers=0" in proc.stdout + proc.stderr
