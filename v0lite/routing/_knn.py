"""Cosine kNN means over L2-normalised embeddings (shared by the router, its cost model and the baselines)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..exceptions import V0liteError

_KNN_BLOCK = 2048  # query rows per similarity block (bounds memory to block x n_train)


def _normalise(emb) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2:
        raise V0liteError(f"embeddings must be a 2-D array, got shape {emb.shape}.")
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.maximum(norm, 1e-12)


def _knn_mean(q: np.ndarray, train: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``values`` (n_train, d) over each query's ``k`` most similar train rows."""
    k = int(min(max(k, 1), train.shape[0]))
    out = np.empty((q.shape[0], values.shape[1]), dtype=np.float64)
    for s in range(0, q.shape[0], _KNN_BLOCK):
        sims = q[s : s + _KNN_BLOCK] @ train.T
        if k < train.shape[0]:
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(train.shape[0]), sims.shape)
        out[s : s + _KNN_BLOCK] = values[top].mean(axis=1)
    return out


def _knn_prefix_means(q: np.ndarray, train: np.ndarray, values: np.ndarray, ks: Sequence[int]) -> dict[int, np.ndarray]:
    """Per query and each ``k``, the mean of ``values`` over its ``k`` most similar train rows.

    ``values`` is (n_train,) or (n_train, m).

    One similarity pass and one partial sort serve every ``k`` (each capped at ``n_train``).
    """
    n = train.shape[0]
    ks = sorted({int(min(max(k, 1), n)) for k in ks})
    kmax = ks[-1]
    out = {k: np.empty((q.shape[0], *values.shape[1:]), dtype=np.float64) for k in ks}
    for s in range(0, q.shape[0], _KNN_BLOCK):
        sims = q[s : s + _KNN_BLOCK] @ train.T
        if kmax < n:
            top = np.argpartition(-sims, kmax - 1, axis=1)[:, :kmax]
        else:
            top = np.broadcast_to(np.arange(n), sims.shape)
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        csum = np.cumsum(values[np.take_along_axis(top, order, axis=1)], axis=1)
        for k in ks:
            out[k][s : s + _KNN_BLOCK] = csum[:, k - 1] / k
    return out
