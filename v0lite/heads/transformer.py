"""A small in-context transformer head, trained from scratch on episodes (CPU, minutes).

In the spirit of the V0 paper's TabPFN head, it reads a query and its retrieved context as
tokens and outputs the success probability:

* query token: the projected query embedding + the context features of :mod:`v0lite.features`;
* own-history tokens: each of the k nearest eligible rows of the policy: projected prompt
  embedding, score, difficulty residual, similarity, log step gap;
* cross-policy tokens: the nearest prompts other policies answered: projected embedding,
  their mean residual, similarity.

Self-attention over [query, context] with padding masks; the output is added to the logit
of the policy prior, so an untrained net predicts the prior. Seeded and deterministic.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..features import compute_features, fit_pca
from ._training import build_training_set, pad_context
from .base import BaseHead

__all__ = ["TransformerHead"]

_XP_WIDTH = 33


def _net(n_feat, d, n_layers, n_heads, proj_dim):
    import torch
    from torch import nn

    class ICLNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_in = nn.Linear(proj_dim + n_feat, d)
            self.nn_in = nn.Linear(proj_dim + 4, d)
            self.xp_in = nn.Linear(proj_dim + 2, d)
            self.type_emb = nn.Parameter(torch.zeros(3, d))
            layer = nn.TransformerEncoderLayer(
                d, n_heads, dim_feedforward=2 * d, dropout=0.0, batch_first=True, norm_first=True
            )
            self.enc = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
            self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 1))
            self.skip = nn.Linear(n_feat, 1)
            nn.init.zeros_(self.out[1].weight)
            nn.init.zeros_(self.out[1].bias)
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)

        def forward(self, q_emb, feat, offset, nn_emb, nn_num, nn_valid, xp_emb, xp_num, xp_valid, *, sdpa=False):
            q = self.q_in(torch.cat([q_emb, feat], -1)) + self.type_emb[0]
            a = self.nn_in(torch.cat([nn_emb, nn_num], -1)) + self.type_emb[1]
            b = self.xp_in(torch.cat([xp_emb, xp_num], -1)) + self.type_emb[2]
            x = torch.cat([q[:, None], a, b], 1)
            pad = ~torch.cat([torch.ones_like(nn_valid[:, :1]), nn_valid, xp_valid], 1)
            layers = self.enc.layers
            if sdpa:
                # the layer's own computation (norm first, dropout 0) written out, with the padding as
                # a float mask: attention then runs through scaled_dot_product_attention instead of
                # torch's CPU "fast path" for inference, whose masked softmax and q/k/v rescaling took
                # ~3/4 of the whole forward pass (benchmarks/plan_speed.py). Equal up to float round-off.
                mask = torch.zeros(pad.shape, dtype=x.dtype).masked_fill_(pad, float("-inf"))
                for layer in layers[:-1]:
                    n = layer.norm1(x)
                    x = x + layer.self_attn(n, n, n, key_padding_mask=mask, need_weights=False)[0]
                    x = x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
            else:
                for layer in layers[:-1]:
                    x = layer(x, src_key_padding_mask=pad)
            # the last layer only for the query token (the one read out): the same function as
            # running the full layer and keeping token 0, at about half its cost
            last = layers[-1]
            n = last.norm1(x)
            h = x[:, :1] + last.self_attn(n[:, :1], n, n, key_padding_mask=pad, need_weights=False)[0]
            h = h + last.linear2(last.activation(last.linear1(last.norm2(h))))
            return offset + self.out(h[:, 0]).squeeze(-1) + self.skip(feat).squeeze(-1)

    return ICLNet()


class TransformerHead(BaseHead):
    """Our own in-context transformer head (see module docstring).

    Parameters
    ----------
    d_model : int, default 64
    n_layers : int, default 2
    n_heads : int, default 4
    proj_dim : int, default 32
        Prompt embeddings enter as their first ``proj_dim`` principal components.
    k : int, default 32
        Own-policy neighbours read by the context features.
    n_tokens : int, default 16
        Own-history tokens and cross-policy tokens per query (each).
    max_epochs : int, default 12
    batch_size : int, default 256
    lr : float, default 2e-3
    max_rows : int, default 60000
        Query rows per episode at most.
    rows_per_epoch : int, default 30000
        Training rows sampled per epoch (bounds CPU time on big logs).
    n_folds : int, default 5
    pca_components : int, default 8
    refit : bool, default False
        Retrain on all episodes (validation prompts included) for the early-stopped number of
        epochs. Off by default: it doubles the CPU time, and without it the model used at
        predict time is exactly the one whose out-of-fold predictions the ensemble stacked.
    n_jobs : int, default 1
        Torch CPU threads while training (one is robust on shared cores, as for LightGBM).
        Prediction uses the process's torch setting (``torch.set_num_threads``; all cores by
        default): see ``benchmarks/predict_threads.py`` for what that is worth.

    Examples
    --------
    >>> from v0lite import V0Regressor
    >>> model = V0Regressor(head="transformer")  # doctest: +SKIP
    """

    name = "transformer"

    def __init__(
        self,
        d_model=64,
        n_layers=2,
        n_heads=4,
        proj_dim=32,
        k=32,
        n_tokens=16,
        max_epochs=12,
        batch_size=256,
        lr=2e-3,
        max_rows=60000,
        rows_per_epoch=30000,
        n_folds=5,
        pca_components=8,
        refit=False,
        n_jobs=1,
    ):
        super().__init__(
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            proj_dim=proj_dim,
            k=k,
            n_tokens=n_tokens,
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            max_rows=max_rows,
            rows_per_epoch=rows_per_epoch,
            n_folds=n_folds,
            pca_components=pca_components,
            refit=refit,
            n_jobs=n_jobs,
        )

    # -- tensors ------------------------------------------------------------------------------------
    def _standardize(self, X):
        # clip to the range training saw, as trees do: a growing context (more steps, longer
        # histories, larger step gaps) must not push the linear input layers into extrapolation
        X = np.clip(X, self.lo_, self.hi_) if self.lo_ is not None else X
        Z = (X - self.mu_) / self.sd_
        return np.clip(np.nan_to_num(Z, nan=0.0), -5, 5).astype(np.float32)

    def _project(self, emb):
        """Prompt embeddings -> the token PCA space (fixed: cheaper than a learned 384-d layer)."""
        return ((np.asarray(emb, np.float32) - self.tok_pca_[0]) @ self.tok_pca_[1].T).astype(np.float32)

    def _tensors(self, ptab, X, ctx, q_proj, idx):
        import torch

        t = self.params["n_tokens"]
        prior = np.clip(np.nan_to_num(X[idx, self._prior_col], nan=0.5), 0.02, 0.98)
        gap = ctx["nn_gap"][idx, :t]
        if self.gap_max_ is not None:
            gap = np.minimum(gap, self.gap_max_)
        nn_num = np.stack([ctx["nn_score"][idx, :t], ctx["nn_resid"][idx, :t], ctx["nn_sim"][idx, :t], gap], -1)
        xp_num = np.stack([ctx["xp_resid"][idx, :t], ctx["xp_sim"][idx, :t]], -1)
        return (
            torch.from_numpy(np.ascontiguousarray(q_proj[idx], np.float32)),
            torch.from_numpy(self._standardize(X[idx])),
            torch.from_numpy(np.log(prior / (1 - prior)).astype(np.float32)),
            ptab[torch.from_numpy(np.ascontiguousarray(ctx["nn_prompt"][idx, :t]))],
            torch.from_numpy(nn_num.astype(np.float32)),
            torch.from_numpy(np.ascontiguousarray(ctx["nn_valid"][idx, :t])),
            ptab[torch.from_numpy(np.ascontiguousarray(ctx["xp_prompt"][idx, :t]))],
            torch.from_numpy(xp_num.astype(np.float32)),
            torch.from_numpy(np.ascontiguousarray(ctx["xp_valid"][idx, :t])),
        )

    def _forward_all(self, net, emb, X, ctx, q_prompt_emb, *, sdpa=False):
        """Probabilities of every row, in batches; ``sdpa``: the faster inference path of the net's
        forward (prediction; fitting keeps the path its validation predictions were made with)."""
        import torch

        net.eval()
        out = np.empty(len(X), np.float64)
        bs = 1024
        with torch.inference_mode():
            for s in range(0, len(X), bs):
                idx = np.arange(s, min(s + bs, len(X)))
                out[idx] = torch.sigmoid(net(*self._tensors(emb, X, ctx, q_prompt_emb, idx), sdpa=sdpa)).numpy()
        return out

    def _train(self, emb, X, y, ctx, q_prompt_emb, train_idx, epochs, random_state, val_idx=None):
        import torch

        p = self.params
        torch.manual_seed(random_state)
        rng = np.random.default_rng(random_state)
        net = _net(X.shape[1], p["d_model"], p["n_layers"], p["n_heads"], p["proj_dim"])
        opt = torch.optim.AdamW(net.parameters(), lr=p["lr"], weight_decay=1e-4)
        yt = torch.from_numpy(y.astype(np.float32))
        best, best_ep, best_state, history = np.inf, 0, None, []
        for ep in range(epochs):
            net.train()
            order = rng.permutation(train_idx)[: p["rows_per_epoch"]]
            for s in range(0, len(order), p["batch_size"]):
                idx = order[s : s + p["batch_size"]]
                logit = net(*self._tensors(emb, X, ctx, q_prompt_emb, idx))
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, yt[idx])
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
            if val_idx is not None:
                pv = np.clip(
                    self._forward_all(net, emb, X[val_idx], _take(ctx, val_idx), q_prompt_emb[val_idx]), 1e-6, 1 - 1e-6
                )
                yv = y[val_idx]
                ll = float(-np.mean(yv * np.log(pv) + (1 - yv) * np.log(1 - pv)))
                history.append(ll)
                if ll < best - 1e-5:
                    best, best_ep = ll, ep + 1
                    best_state = {k: v.clone() for k, v in net.state_dict().items()}
                elif ep + 1 - best_ep >= 3:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        return net, best_ep, history

    # -- fit / predict ----------------------------------------------------------------------------
    def fit(self, index, *, random_state=0, show_progress_bar=False):
        p = self.params
        self.pca_ = fit_pca(index.emb, p["pca_components"], random_state) if p["pca_components"] else None
        ts = build_training_set(
            index,
            n_folds=p["n_folds"],
            max_rows=p["max_rows"],
            pca=self.pca_,
            k=p["k"],
            with_context=True,
            xp_width=_XP_WIDTH,
            random_state=random_state,
            show_progress_bar=show_progress_bar,
            head="transformer",
        )
        from .._progress import stage

        with stage("fit: transformer", enabled=show_progress_bar):
            return self.fit_training_set(ts, index.emb, random_state=random_state)

    def fit_training_set(self, ts, emb_table, *, random_state=0):
        """Fit on a prepared training set (with context); sets ``val_pred_`` like the gbdt head."""
        import torch

        # n_jobs threads while training only: the process-wide setting is restored, so
        # prediction runs with the caller's torch threads (all cores by default)
        prev = torch.get_num_threads()
        torch.set_num_threads(self.params["n_jobs"])
        try:
            return self._fit_training_set(ts, emb_table, random_state)
        finally:
            torch.set_num_threads(prev)

    def _fit_training_set(self, ts, emb_table, random_state):
        import torch

        self.feature_names_ = ts.names
        self._prior_col = ts.names.index("prior")
        with warnings.catch_warnings():  # all-NaN columns (e.g. no own-prompt history) are expected
            warnings.simplefilter("ignore", RuntimeWarning)
            self.mu_ = np.nanmean(ts.X, 0).astype(np.float32)
            sd = np.nanstd(ts.X, 0)
            self.lo_ = np.nan_to_num(np.nanmin(ts.X, 0), nan=0.0).astype(np.float32)
            self.hi_ = np.nan_to_num(np.nanmax(ts.X, 0), nan=0.0).astype(np.float32)
        valid_gap = ts.ctx["nn_gap"][ts.ctx["nn_valid"]]
        self.gap_max_ = float(valid_gap.max()) if valid_gap.size else 0.0
        self.sd_ = np.where(np.isfinite(sd) & (sd > 1e-8), sd, 1.0).astype(np.float32)
        self.mu_ = np.nan_to_num(self.mu_, nan=0.0)
        self.tok_pca_ = fit_pca(np.asarray(emb_table, np.float32), self.params["proj_dim"], random_state)
        ptab = self._project(emb_table)
        emb = torch.from_numpy(ptab)
        q_emb = ptab[ts.q_emb_row]
        tr, va = np.flatnonzero(~ts.val), np.flatnonzero(ts.val)
        self.val_pred_ = None
        epochs = self.params["max_epochs"]
        net = None
        if len(va) >= 50 and len(tr) >= 50:
            net, best_ep, self.val_history_ = self._train(emb, ts.X, ts.y, ts.ctx, q_emb, tr, epochs, random_state, va)
            self.val_pred_ = self._forward_all(net, emb, ts.X[va], _take(ts.ctx, va), q_emb[va])
            epochs = max(best_ep, 1)
        if net is None or self.params["refit"]:
            net, _, _ = self._train(emb, ts.X, ts.y, ts.ctx, q_emb, np.arange(len(ts.y)), epochs, random_state)
        self.net_ = net
        self.n_epochs_ = epochs
        return self

    def features(self, index, queries, exclude="same_step", *, search="numpy"):
        """Context features and tokens of the queries (shared with the ensemble's other members)."""
        X, _, ctx = compute_features(
            index, queries, exclude, pca=self.pca_, k=self.params["k"], return_context=True, search=search
        )
        return X, pad_context(ctx, _XP_WIDTH)

    def predict_features(self, index, queries, X, ctx, *, sdpa=True):
        import torch

        # only the token prompts need projecting, not the whole table
        used = np.unique(
            np.concatenate(
                [
                    ctx["nn_prompt"][:, : self.params["n_tokens"]].ravel(),
                    ctx["xp_prompt"][:, : self.params["n_tokens"]].ravel(),
                ]
            )
        )
        ptab = np.zeros((len(index.keys), self.params["proj_dim"]), np.float32)
        ptab[used] = self._project(index.emb[used])
        return self._forward_all(self.net_, torch.from_numpy(ptab), X, ctx, self._project(queries.emb), sdpa=sdpa)

    def predict(self, index, queries, *, exclude="same_step", fit_paths=False):
        """``fit_paths``: faiss searches and the layer call, as fitting computes them (auto's comparison)."""
        X, ctx = self.features(index, queries, exclude, search="faiss" if fit_paths else "numpy")
        return self.predict_features(index, queries, X, ctx, sdpa=not fit_paths)

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path: Path) -> dict:
        from safetensors.torch import save_file

        from .._io import save_arrays

        path = Path(path)
        save_file({k: v.contiguous() for k, v in self.net_.state_dict().items()}, str(path / "transformer.safetensors"))
        arrays = {
            "mu": self.mu_,
            "sd": self.sd_,
            "lo": self.lo_,
            "hi": self.hi_,
            "gap_max": np.asarray([self.gap_max_], np.float32),
            "tok_pca_mean": self.tok_pca_[0],
            "tok_pca_components": self.tok_pca_[1],
        }
        if self.pca_ is not None:
            arrays.update(pca_mean=self.pca_[0], pca_components=self.pca_[1])
        save_arrays(path / "transformer_arrays.safetensors", arrays)
        return {"params": self.params, "feature_names": self.feature_names_, "n_epochs": self.n_epochs_}

    @classmethod
    def load(cls, path: Path, meta: dict):
        from safetensors.torch import load_file

        from .._io import load_arrays

        path = Path(path)
        head = cls(**meta["params"])
        a = load_arrays(path / "transformer_arrays.safetensors")
        head.mu_, head.sd_ = a["mu"], a["sd"]
        # format 1 models saved before range clipping: no clipping, as when they were fitted
        head.lo_, head.hi_ = a.get("lo"), a.get("hi")
        head.gap_max_ = float(a["gap_max"][0]) if "gap_max" in a else None
        head.tok_pca_ = (a["tok_pca_mean"], a["tok_pca_components"])
        head.pca_ = (a["pca_mean"], a["pca_components"]) if "pca_mean" in a else None
        head.feature_names_ = meta["feature_names"]
        head._prior_col = head.feature_names_.index("prior")
        head.n_epochs_ = meta["n_epochs"]
        p = head.params
        head.net_ = _net(len(head.feature_names_), p["d_model"], p["n_layers"], p["n_heads"], p["proj_dim"])
        head.net_.load_state_dict(load_file(str(path / "transformer.safetensors")))
        head.net_.eval()
        return head


def _take(ctx: dict, idx) -> dict:
    return {k: v[idx] for k, v in ctx.items()}
