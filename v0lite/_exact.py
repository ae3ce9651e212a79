"""Exact inner-product search whose answer for a query does not depend on the other queries of its batch.

BLAS rounds ``q @ x.T`` differently by the batch's shape (gemv for one row, a small-matrix kernel
for small products, gemm otherwise), so near-tied neighbours can swap between a query alone and
the same query in a batch, and the heads amplify the swap (a gbdt prediction moved by 0.009).
Here BLAS only screens candidates; every similarity reported, and so every choice between
neighbours, comes from a per-pair computation that sees only the pair's two vectors. Used by every
numpy-mode search (the learned heads' predictions); faiss-mode searches stay on faiss's own exact
search, fastest, whose path depends on the batch's shape (docs/guarantees.md).
"""

from __future__ import annotations

import numpy as np

__all__ = ["top_inner_products"]

# unit roundoff of float32: a float32 dot product of length d, in any summation order, errs by at most
# gamma_d * sum |q_i x_i| <= gamma_d * |q| * |x|, gamma_d = d u / (1 - d u) (Higham, Accuracy and Stability, 3.1)
_U32 = 2.0**-24
_GATHER = 1 << 22  # candidate vector elements recomputed at a time (16 MiB of float32)
_SPARE = 8  # screened places beyond the k-th; a row with more candidates than that is rescanned


def _faiss_tie_cut(s: np.ndarray, v, k: int) -> np.ndarray:
    """The ids faiss's heap keeps when more than k similarities are >= the k-th one, ``v``.

    faiss reads the rows in id order and admits a row only if it beats the heap's current
    minimum (strictly); once full of rows >= v, a better row evicts the lowest id among the
    ties at v. So the tied rows kept are the highest ids among those admitted, the tied rows
    that came before k rows >= v had been seen.
    """
    above = np.flatnonzero(s > v)
    ge = s >= v
    seen_before = np.cumsum(ge) - ge
    ties = np.flatnonzero(s == v)
    admitted = ties[seen_before[ties] < k]
    return np.concatenate([above, admitted[len(admitted) - (k - len(above)) :]])


def _exact_dots(q: np.ndarray, x: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``ip[i, j] = q[i] . x[ids[i, j]]`` (-inf where ``ids`` is -1); a pair's value depends on its two vectors only."""
    ids = np.ascontiguousarray(ids, np.int64)
    ip = np.empty(ids.shape, np.float32)
    rows = max(1, _GATHER // max(ids.shape[1] * q.shape[1], 1))  # bounds the gathered copy
    for s in range(0, len(ids), rows):
        ip[s : s + rows] = np.einsum("ikd,id->ik", x[np.maximum(ids[s : s + rows], 0)], q[s : s + rows])
    ip[ids < 0] = -np.inf
    return ip


def _top_k(S: np.ndarray, ids: np.ndarray, k: int):
    """(sims, ids) of the k best columns of each row of ``S``, best first, ties as faiss's heap keeps them.

    ``ids``: the id of each column, ascending along a row (-1 padding, with -inf similarity, at the end).
    """
    c = S.shape[1]
    if k < c:
        part = np.argpartition(S, c - k, axis=1)[:, c - k :]
        # argpartition keeps arbitrary members of a tie at the k-th place: keep faiss's
        kth = np.take_along_axis(S, part, 1).min(1, keepdims=True)
        for r in np.flatnonzero((S >= kth).sum(1) > k):
            part[r] = _faiss_tie_cut(S[r], kth[r, 0], k)
    else:
        part = np.broadcast_to(np.arange(c), S.shape)
    sims = np.take_along_axis(S, part, 1)
    got = np.take_along_axis(ids, part, 1)
    order = np.lexsort((-got, -sims), axis=1)
    return np.take_along_axis(sims, order, 1), np.take_along_axis(got, order, 1)


def _candidates(S: np.ndarray, k: int, tol: np.ndarray) -> np.ndarray:
    """Ids (ascending, -1 padded) of each row's columns within ``tol`` of its k-th largest value."""
    m, n = S.shape
    kk = min(n, k + _SPARE)
    part = np.argpartition(S, n - kk, axis=1)[:, n - kk :]
    top = np.take_along_axis(S, part, 1)
    kth = np.partition(top, kk - k, axis=1)[:, kk - k]
    thr = np.nextafter((kth - tol).astype(np.float32), -np.inf)  # rounded down: never narrower than tol
    cand = top >= thr[:, None]
    ids = np.sort(np.where(cand, part, n), axis=1)
    full = np.flatnonzero(cand.all(1)) if kk < n else []  # every spare place a candidate: there may be more
    rescan = [np.flatnonzero(S[r] >= thr[r]) for r in full]
    width = max([int(cand.sum(1).max())] + [len(a) for a in rescan])
    out = np.full((m, width), -1, np.int64)
    out[:, : min(width, kk)] = np.where(ids < n, ids, -1)[:, :width]
    for r, a in zip(full, rescan):
        out[r, : len(a)] = a
    return out


def top_inner_products(q: np.ndarray, x: np.ndarray, k: int, chunk: int = 4_000_000, x_norm: float | None = None):
    """The ``k`` (<= len(x)) largest inner products of each query with the rows of ``x``: (sims, ids), best first.

    One BLAS product per block of queries (``chunk`` similarities at a time) screens: every row
    within twice the float32 error bound (``x_norm``: a bound on the rows' L2 norms, computed if
    None) of the k-th is recomputed by :func:`_exact_dots`, and those values pick and rank the
    neighbours, so a query's answer is the same alone or at any place of any batch. The
    neighbours are faiss's (``faiss.IndexFlatIP(x).search(q, k)``) up to float round-off: two
    different similarities within it of each other may trade places. Equal similarities (a
    prompt's rows at several steps share its vector) are ordered as faiss orders them, the higher
    id first, and a tie cut at the k-th place keeps the rows faiss's heap keeps
    (:func:`_faiss_tie_cut`; faiss uses that heap for k below
    ``faiss.cvar.distance_compute_min_k_reservoir``, 100, and a reservoir above). The exact pass
    costs: single-threaded, 1,536 rows x 1,024 queries at k = 32 took 42 ms against 29 ms for the
    plain BLAS product and partial sort it replaced (28 ms for faiss's flat search), 2,537 x 256 at
    k = 64 22 ms against 12: the price of a query's answer not depending on its batch.
    """
    q = np.ascontiguousarray(q, np.float32)
    x = np.ascontiguousarray(x, np.float32)
    m, n = len(q), len(x)
    D = np.empty((m, k), np.float32)
    I = np.empty((m, k), np.int64)
    if m == 0 or k == 0:
        return D, I
    if k >= n:  # every row is a hit: nothing to screen
        ids = np.broadcast_to(np.arange(n, dtype=np.int64), (m, n))
        D[:], I[:] = _top_k(_exact_dots(q, x, ids), ids, k)
        return D, I
    if x_norm is None:
        x_norm = float(np.sqrt(np.einsum("ij,ij->i", x, x).max()))
    gamma = x.shape[1] * _U32 / (1 - x.shape[1] * _U32)
    step = max(1, chunk // n)
    for s in range(0, m, step):
        qb = q[s : s + step]
        # screen and exact values each err by <= gamma |q| |x|: a row of the exact top k is within
        # 2x their sum of the screen's k-th (another 2x of slack)
        ids = _candidates(qb @ x.T, k, 8 * gamma * np.linalg.norm(qb, axis=1) * x_norm)
        D[s : s + step], I[s : s + step] = _top_k(_exact_dots(qb, x, ids), ids, k)
    return D, I
