"""The approximate (IVF) index of a big policy block: build, extend and prefix search.

A block over ``index.APPROX_THRESHOLD`` rows is searched with a faiss ``IndexIVFScalarQuantizer``
(float16 codes, inner product). Its ids are the block positions (rows in step order), added in
order, so each inverted list is sorted by id and the rows with step <= t hold the ids
``0 .. cut - 1``: a step prefix is searched with ``IDSelectorRange(0, cut, assume_sorted=True)``,
which scans only the eligible part of each probed list.

The index is a function of the block's rows alone, so a grown model, its saved copy and a restarted
service find the same neighbours: its lists are trained on a sample of the block's first
:func:`train_rows` rows (the largest power of two not above the block's length), then every row is
added in order. A block grown by ``HistoryIndex.add`` at its end (new rows after every old one in
step order: an RL run adding its latest step) within the same power of two therefore gets the old
index with the new rows added (:func:`extend`), which is what :func:`build` would give, without the
k-means: at 100k rows that is most of an RL step's predict (0.12 of 0.16 s on this 2-core machine).
A block that doubled, or that got rows among its old ones, is built again. Adding one row and adding
a batch assign it to a list by the same inner products, up to float round-off between faiss's code
paths, which could only move a row that is equally near two lists' centroids.

The price: ``sqrt(train_rows(n))`` lists, not ``sqrt(n)``, so a list holds up to 1.4x the rows, and a
search scans up to 1.4x more for a little more recall. Measured at 100k rows (``speed.py --quick``,
one repeat, 2026-12-07): real-vector recall@32 0.936 -> 0.944 (latest step), 0.970 -> 0.970 (random
steps); 9,053 -> 8,301 predictions/s; an RL step of predict(256) + add_history(256) at 150k rows,
head knn, 238 -> 53 ms (64-dim vectors, same run, the code before in a worktree).
"""

from __future__ import annotations

import numpy as np

# nlist = IVF_LISTS_PER_SQRT * sqrt(n) lists, nprobe lists probed for a query that sees the whole
# block (scaled up by 1 / eligible fraction for a prefix, whose lists are scanned only over their
# eligible ids), k-means on at most IVF_TRAIN_PER_LIST points per list.
IVF_LISTS_PER_SQRT = 1.0
IVF_NPROBE = 8
IVF_TRAIN_PER_LIST = 32
IVF_TRAIN_ITER = 10
_CHUNK = 65_536  # rows gathered at a time, so no full (n, dim) temporary exists


def gather(emb: np.ndarray, prompt_rows: np.ndarray) -> np.ndarray:
    """float32, C-contiguous embeddings of ``prompt_rows`` (emb may be float16 or a memmap)."""
    return np.ascontiguousarray(emb[prompt_rows], dtype=np.float32)


def _add(index, emb: np.ndarray, prompt_rows: np.ndarray) -> None:
    for lo in range(0, len(prompt_rows), _CHUNK):
        index.add(gather(emb, prompt_rows[lo : lo + _CHUNK]))


def train_rows(n: int) -> int:
    """The rows an IVF index over ``n`` rows is trained on: the block's first ``2**floor(log2(n))``."""
    return 1 << (int(n).bit_length() - 1)


def build(emb: np.ndarray, prompt_rows: np.ndarray):
    """A trained IVF index over the rows ``prompt_rows`` (in block order), ids = block positions."""
    import faiss

    d, p = emb.shape[1], train_rows(len(prompt_rows))
    nlist = max(16, int(IVF_LISTS_PER_SQRT * np.sqrt(p)))
    # float16 codes: half the memory of float32 and faster scans, recall as with IVFFlat
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.niter = IVF_TRAIN_ITER
    index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
    index.cp.min_points_per_centroid = 1  # we train on a deliberate sample: no warning per build
    index.cp.seed = 1234
    n_train = min(p, IVF_TRAIN_PER_LIST * nlist)
    sample = np.sort(np.random.default_rng(0).choice(p, n_train, replace=False))
    index.train(gather(emb, prompt_rows[sample]))
    _add(index, emb, prompt_rows)
    index.nprobe = IVF_NPROBE
    return index


def extend(index, emb: np.ndarray, prompt_rows: np.ndarray, n_old: int):
    """:func:`build` ``(emb, prompt_rows)`` from ``index``, the one built over their first ``n_old`` rows.

    A copy (the old index may be searched meanwhile, by the index it belongs to) with the rows from
    ``n_old`` on added; only where both lengths have the same :func:`train_rows` (else ``ValueError``).
    """
    import faiss

    if train_rows(n_old) != train_rows(len(prompt_rows)) or index.ntotal != n_old:
        raise ValueError(f"an index over {index.ntotal} rows cannot grow to {len(prompt_rows)}; build it")
    out = faiss.clone_index(index)
    _add(out, emb, prompt_rows[n_old:])
    out.nprobe = IVF_NPROBE
    return out


def search(index, q: np.ndarray, kc: int, cut: int, n: int):
    """(sims, block positions) of the ``kc`` nearest of a block's first ``cut`` of ``n`` rows in ``index``.

    A prefix probes ``IVF_NPROBE / (cut / n)`` lists, scanning only their eligible ids.
    """
    import faiss

    frac = cut / n
    nprobe = int(min(index.nlist, np.ceil(IVF_NPROBE / frac)))
    if cut < n:
        params = faiss.SearchParametersIVF(sel=faiss.IDSelectorRange(0, int(cut), True), nprobe=nprobe)
    else:
        params = faiss.SearchParametersIVF(nprobe=nprobe)
    return index.search(q, kc, params=params)
