"""A probe in place of verl's GPU workers, installed in the Ray workers of a test's ``main_ppo`` run.

``tests/test_integrations_verl_main.py`` starts ``python -m verl.trainer.main_ppo`` with Ray's
``runtime_env.worker_process_setup_hook`` pointing at :func:`install`. In the task-runner actor
that hook replaces ``RayPPOTrainer.init_workers`` (starting FSDP and vLLM workers needs GPUs) with a
no-op and ``RayPPOTrainer.fit`` with :func:`probe_fit`, which walks the trainer's own train
dataloader the way ``fit`` does up to ``on_batch_end`` (DataProto from the batch, a uid per
prompt, ``rollout.n`` interleaved copies, a 0/1 rule reward at the last token) and writes what it
saw to the JSON file named by ``$V0LITE_VERL_PROBE``, with every ``predict`` / ``add_history``
call the value model received, in order. Everything before ``init_workers`` (config checks,
tokenizer, datasets, sampler, dataloader) is verl's own code.
"""

from __future__ import annotations

import json
import os

EVENTS: list = []


def _name(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _wrap_value_model() -> None:
    from v0lite.estimator import V0Regressor

    predict, add_history = V0Regressor.predict, V0Regressor.add_history

    def logged_predict(self, X, **kw):
        EVENTS.append({"event": "predict", "steps": sorted(set(X["step"].to_list())), "n": X.height})
        return predict(self, X, **kw)

    def logged_add_history(self, X, y=None):
        EVENTS.append({"event": "add_history", "steps": sorted(set(X["step"].to_list())), "n": X.height})
        return add_history(self, X, y)

    V0Regressor.predict, V0Regressor.add_history = logged_predict, logged_add_history


def probe_fit(self) -> None:
    import numpy as np
    import torch
    from verl.protocol import DataProto

    loader, dataset = self.train_dataloader, self.train_dataset
    rollout_n = int(self.config.actor_rollout_ref.rollout.n)
    rng = np.random.default_rng(0)
    out = {
        "dataset": _name(dataset),
        "sampler": _name(loader.sampler),
        "val_dataset": _name(self.val_dataset),
        "num_workers": loader.num_workers,
        "batch_size": loader.batch_size,
        "steps_per_epoch": len(loader),
        "total_training_steps": self.total_training_steps,
        "batches": [],
        "planned": [],
    }
    step = 0
    for _epoch in range(self.config.trainer.total_epochs):
        for batch_dict in loader:
            step += 1
            batch = DataProto.from_single_dict(batch_dict)
            rows = [
                int(e["v0lite_index"]) if isinstance(e, dict) and "v0lite_index" in e else None
                for e in batch.non_tensor_batch.get("extra_info", [None] * len(batch))
            ]
            EVENTS.append({"event": "batch", "step": step})
            out["batches"].append(rows)
            sampler = getattr(dataset, "sampler", None)
            if sampler is not None:
                chunk = max(sampler.planned_)
                out["planned"].append(
                    {
                        "rows": sampler.planned_[chunk].tolist(),
                        "p": sampler.selector_.last_p_.tolist(),
                        "chosen": sampler.selector_.last_chosen_.tolist(),
                    }
                )
            batch.non_tensor_batch["uid"] = np.array([f"u{step}-{i}" for i in range(len(batch))], dtype=object)
            batch = batch.repeat(repeat_times=rollout_n, interleave=True)
            scores = torch.zeros(len(batch), 4)
            scores[:, -1] = torch.as_tensor(rng.random(len(batch)) < 0.5, dtype=torch.float32)
            batch.batch["token_level_scores"] = scores
            if hasattr(dataset, "on_batch_end"):
                dataset.on_batch_end(batch=batch)
            if step >= self.total_training_steps:
                break
    out["events"] = EVENTS
    with open(os.environ["V0LITE_VERL_PROBE"], "w") as f:
        json.dump(out, f)


def install() -> None:
    """Ray's worker_process_setup_hook: replace the GPU workers' start by the probe (when asked to)."""
    if not os.environ.get("V0LITE_VERL_PROBE"):
        return
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    RayPPOTrainer.init_workers = lambda self: None
    RayPPOTrainer.fit = probe_fit
    _wrap_value_model()
