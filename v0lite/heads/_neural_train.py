"""Training of the neural V0 head: episodes, early stopping on held-out prompts, the optimiser loop.

Kept apart from :mod:`v0lite.heads.neural` (the head: encoder, features, predict, save/load);
:class:`NeuralTraining` is its mixin and reads the head's parameters and modules.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..episodes import subindex
from ..exceptions import ParameterError, V0liteError
from ._neural_nets import _v0_loss

__all__ = ["NeuralTraining"]


class _EpisodeSampler:
    """Training episodes: a (policy, step) group's rows, or (``compare_frac``) several policies'
    rows of the same prompts, so the pairwise loss also ranks policies on one prompt (routing)."""

    def __init__(self, index, rng, n_queries: int, compare_frac: float):
        self.rng, self.nq = rng, n_queries
        keys = index.policy.astype(np.int64) * (2**40) + (index.step - index.step.min())
        _, gid = np.unique(keys, return_inverse=True)
        order = np.argsort(gid, kind="stable")
        self.groups = np.split(order, np.flatnonzero(np.diff(gid[order])) + 1)
        self.sizes = np.array([len(g) for g in self.groups], np.float64)
        # prompts answered by two or more policies -> their rows
        order = np.argsort(index.prompt_row, kind="stable")
        by_prompt = np.split(order, np.flatnonzero(np.diff(index.prompt_row[order])) + 1)
        self.shared = [r for r in by_prompt if len(np.unique(index.policy[r])) >= 2]
        self.compare_frac = float(compare_frac) if self.shared else 0.0

    def draw(self) -> np.ndarray:
        rng = self.rng
        if self.compare_frac and rng.random() < self.compare_frac:
            rows = []
            while sum(len(r) for r in rows) < self.nq and len(rows) < len(self.shared):
                rows.append(self.shared[int(rng.integers(len(self.shared)))])
            q = np.concatenate(rows)
            return q if len(q) <= self.nq else rng.choice(q, size=self.nq, replace=False)
        g = self.groups[int(rng.choice(len(self.groups), p=self.sizes / self.sizes.sum()))]
        return rng.choice(g, size=min(self.nq, len(g)), replace=False)


class NeuralTraining:
    """The ``fit`` of :class:`~v0lite.heads.neural.NeuralHead` and its helpers."""

    # -- fit --------------------------------------------------------------------------------------
    def fit(self, index, *, random_state: int = 0, show_progress_bar: bool = False):
        p, dev = self.params, self.device_
        if p["device"] in (None, "auto") and dev.type != "cuda":
            # measured on 2 idle-ish cores, V0 sample: 570 s to fit within the CPU budget and AUC 0.47 (chance);
            # a silent CPU fallback would hand users a slow head that is worse than the prior
            raise ParameterError(
                "the 'neural' head is the GPU path and no CUDA device is visible. On a CPU its fit of the V0 "
                "sample (3.2k rows) takes ~10 min within its 240 s training budget and stays near chance (AUC "
                "0.47). Fix: run it on a machine with a CUDA GPU (benchmarks/gpu_check.py is the prepared check), "
                "use a CPU head (head='auto', the default), or, from Python, force the CPU anyway with "
                "head_params={'device': 'cpu'}."
            )
        self._progress = bool(show_progress_bar)
        torch.manual_seed(random_state)
        rng = np.random.default_rng(random_state)
        self.stats_ = {}
        self.encoder_ = None
        self._tokens = None
        self._feat_keys, self._feats = {}, None
        self._encoder_path = None
        if index.n_rows == 0:
            raise V0liteError("cannot fit the 'neural' head on an empty history.")
        # 1. the frozen encoder, each unique prompt once
        prompt_rows = np.unique(index.prompt_row)
        texts = self._index_texts(index, prompt_rows)
        self._load_encoder(seed=random_state)
        keys = [index.keys[int(r)] for r in prompt_rows]
        self._encode_into_cache(keys, texts)
        key_to_cache = torch.tensor([self._tokens.key_to_id.get(k, -1) for k in index.keys], dtype=torch.long)
        torch.manual_seed(random_state)
        self._build_trainable(self.hidden_size_)
        # 2. held-out prompts for early stopping; episodes come from the other prompts only
        val_rows, train = self._validation_split(index, rng)
        tindex = subindex(index, train) if len(val_rows) else index
        episodes = _EpisodeSampler(tindex, rng, p["episode_queries"], p["compare_frac"])
        eq, ep = p["episode_queries"], p["episodes_per_step"]
        if p["max_steps"] is not None:
            n_steps = int(p["max_steps"])
        else:
            n_steps = max(1, int(math.ceil(p["n_epochs"] * tindex.n_rows / (eq * ep))))
        every = int(p["eval_every"] or max(5, n_steps // 20))
        params = list(self.adapter_.parameters()) + list(self.icl_.parameters())
        opt = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
        warm = max(1, int(p["warmup_frac"] * n_steps))

        def lr_at(s):  # linear warm-up, then cosine down to 10%
            if s < warm:
                return (s + 1) / warm
            return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, n_steps - warm))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        val = self._validation_episodes(index, tindex, val_rows) if len(val_rows) else None
        budget = self._time_budget()
        if budget is not None and dev.type != "cuda":
            self._log(f"CPU: training capped at {budget:.0f} s (cpu_time_s); use device='cuda' for the full run")
        self.adapter_.train()
        self.icl_.train()
        t0 = time.perf_counter()
        done, seen_q, losses = 0, 0, []
        best, best_state, since_best, val_curve = float("inf"), None, 0, []
        stop = "planned steps"
        for step in range(n_steps):
            if budget is not None and time.perf_counter() - t0 > budget:
                stop = "time budget"
                self._log(f"time budget reached after {step} steps")
                break
            ep_q, ep_sup = [], []
            for _ in range(ep):
                q = episodes.draw()
                exclude = p["train_exclude"]
                if exclude == "mixed":
                    exclude = "any_step" if rng.random() < 0.5 else "same_step"
                ep_q.append(q)
                ep_sup.append(self._support_for(tindex, q, exclude))
            loss = self._train_step(tindex, ep_q, tindex, ep_sup, key_to_cache, opt, params)
            sched.step()
            losses.append(loss)
            if self.step_hook is not None:
                self.step_hook(self, step + 1)
            done += 1
            seen_q += sum(len(q) for q in ep_q)
            if done % max(1, n_steps // 10) == 0:
                self._log(f"step {done}/{n_steps} loss {np.mean(losses[-max(1, n_steps // 10) :]):.4f}")
            if val is not None and (done % every == 0 or done == n_steps):
                v = self._validation_loss(index, tindex, val, key_to_cache)
                val_curve.append((done, v))
                if v < best - 1e-4:
                    best, since_best = v, 0
                    best_state = {k: t.detach().clone() for k, t in self._trainable_state().items()}
                else:
                    since_best += 1
                    if since_best >= p["patience"]:
                        stop = "early stopping"
                        self._log(f"early stop at step {done}: held-out loss {v:.4f}, best {best:.4f}")
                        break
        if best_state is not None:
            self._load_trainable_state(best_state)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        self.stats_.update(
            train_steps=done,
            train_s=dt,
            train_queries=seen_q,
            train_queries_per_s=seen_q / max(dt, 1e-9),
            stopped_by=stop,
            val_prompts=int(len(np.unique(index.prompt_row[val_rows]))) if len(val_rows) else 0,
            best_val_loss=best if best_state is not None else None,
            val_curve=[[int(a), float(b)] for a, b in val_curve],
            final_loss=float(np.mean(losses[-10:])) if losses else float("nan"),
        )
        self.adapter_.eval()
        self.icl_.eval()
        # 3. freeze every history prompt's features; the token states are no longer needed
        self._features_for(keys, texts=None)
        self._tokens = None
        return self

    def _support_for(self, index, q, exclude):
        """Support rows (in ``index``) of queries ``q`` (rows of ``index``), each from its own policy."""
        sup = np.full((len(q), self.support_size_), -1, np.int64)
        for code in np.unique(index.policy[q]):
            i = np.flatnonzero(index.policy[q] == code)
            prow = index.prompt_row[q[i]]
            sup[i] = self._support_rows(index, int(code), index.emb[prow], index.step[q[i]], prow, exclude)
        return sup

    def _trainable_state(self) -> dict:
        return {
            **{f"adapter.{k}": v for k, v in self.adapter_.state_dict().items()},
            **{f"icl.{k}": v for k, v in self.icl_.state_dict().items()},
        }

    def _load_trainable_state(self, state: dict) -> None:
        self.adapter_.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("adapter.")})
        self.icl_.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("icl.")})

    def _validation_split(self, index, rng):
        """(held-out rows, training rows): whole prompts, ``val_frac`` of them, if enough remain."""
        frac = float(self.params["val_frac"])
        n_prompts = len(np.unique(index.prompt_row))
        n_val = int(round(frac * n_prompts))
        all_rows = np.arange(index.n_rows)
        if frac <= 0 or n_val < 8 or n_prompts - n_val < 16:
            return all_rows[:0], all_rows
        val_prompts = rng.choice(np.unique(index.prompt_row), size=n_val, replace=False)
        is_val = np.isin(index.prompt_row, val_prompts)
        return all_rows[is_val], all_rows[~is_val]

    def _validation_episodes(self, index, tindex, val_rows, max_rows: int = 1024):
        """Fixed held-out episodes: rows of held-out prompts (by policy), support from ``tindex``."""
        rng = np.random.default_rng(0)
        rows = val_rows if len(val_rows) <= max_rows else np.sort(rng.choice(val_rows, max_rows, replace=False))
        eq = self.params["episode_queries"]
        out = []
        for code in np.unique(index.policy[rows]):
            r = rows[index.policy[rows] == code]
            for i in range(0, len(r), eq):
                q = r[i : i + eq]
                prow = index.prompt_row[q]
                out.append((q, self._support_rows(tindex, int(code), index.emb[prow], index.step[q], prow, "any_step")))
        return out

    @torch.no_grad()
    def _validation_loss(self, index, tindex, val, key_to_cache) -> float:
        self.adapter_.eval()
        self.icl_.eval()
        bs = self.params["episodes_per_step"]
        total, count = 0.0, 0
        for i in range(0, len(val), bs):
            chunk = val[i : i + bs]
            loss = self._episode_loss(
                index, [c[0] for c in chunk], tindex, [c[1] for c in chunk], key_to_cache, grad=False
            )
            total += float(loss) * len(chunk)
            count += len(chunk)
        self.adapter_.train()
        self.icl_.train()
        return total / max(count, 1)

    def _train_step(self, qindex, ep_q, sindex, ep_sup, key_to_cache, opt, params) -> float:
        opt.zero_grad(set_to_none=True)
        loss = self._episode_loss(qindex, ep_q, sindex, ep_sup, key_to_cache, grad=True)
        loss.backward()
        if self.params["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(params, self.params["grad_clip"])
        opt.step()
        return float(loss.detach())

    def _episode_loss(self, qindex, ep_q, sindex, ep_sup, key_to_cache, *, grad: bool):
        """The V0 loss of episodes: queries are rows of ``qindex``, their support rows of ``sindex``."""
        dev = self.device_
        e = len(ep_q)
        nq = max(len(q) for q in ep_q)
        s = ep_sup[0].shape[1]
        q_rows = np.full((e, nq), -1, np.int64)
        sup_rows = np.full((e, nq, s), -1, np.int64)
        for i, (q, sup) in enumerate(zip(ep_q, ep_sup)):
            q_rows[i, : len(q)] = q
            sup_rows[i, : len(q)] = sup
        qmask = q_rows >= 0
        smask = sup_rows >= 0
        # unique prompts of the step -> adapter features once
        q_prompt = np.where(qmask, qindex.prompt_row[np.maximum(q_rows, 0)], -1)
        s_prompt = np.where(smask, sindex.prompt_row[np.maximum(sup_rows, 0)], -1)
        uniq, inv = np.unique(np.concatenate([q_prompt.ravel(), s_prompt.ravel()]), return_inverse=True)
        has_pad = uniq[0] < 0
        real = uniq[1:] if has_pad else uniq
        cache_ids = key_to_cache[torch.from_numpy(real)].to(dev)
        feats = self._adapter_features(cache_ids, grad=grad)
        with self._autocast():
            tok = self.icl_.embed(feats)
            if has_pad:
                tok = torch.cat([tok.new_zeros(1, tok.shape[1]), tok], 0)
            inv = torch.from_numpy(inv).to(dev)
            qe = tok[inv[: e * nq]].view(e * nq, 1, -1)
            se = tok[inv[e * nq :]].view(e * nq, s, -1)
            sy = np.where(smask, sindex.score[np.maximum(sup_rows, 0)], 0.0)
            sy = torch.from_numpy(sy).float().to(dev).view(e * nq, s)
            sv = torch.from_numpy(smask).to(dev).view(e * nq, s)
            logits = self.icl_(se, sy, sv, qe).float().view(e, nq)
        y = torch.from_numpy(np.where(qmask, qindex.score[np.maximum(q_rows, 0)], 0.0)).float().to(dev)
        qm = torch.from_numpy(qmask).to(dev)
        return _v0_loss(logits, y, qm, self.params["rank_weight"])
