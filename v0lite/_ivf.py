"""The approximate (IVF) index of a big policy block: build and prefix search.

A block over ``index.APPROX_THRESHOLD`` rows is searched with a faiss ``IndexIVFScalarQuantizer``
(float16 codes, inner product). Its ids are the block positions (rows in step order), added in
order, so each inverted list is sorted by id and the rows with step <= t hold the ids
``0 .. cut - 1``: a step prefix is searched with ``IDSelectorRange(0, cut, assume_sorted=True)``,
which scans only the eligible part of each probed list.

A block grown by ``HistoryIndex.add`` trains its own index, as a fresh one would: the index is a
function of the block's rows alone, so a grown model, its saved copy and a restarted service find
the same neighbours. Extending the old block's trained index instead (a copy, the added rows
appended) was measured 8x faster per add at 100k rows (0.5 s -> 0.06 s on this 2-core machine) and
not kept: its neighbours then depend on the order of adds and searches, which ``save``/``load``
cannot reproduce, and half a second per RL step or background refresh is small next to a rollout.
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


def build(emb: np.ndarray, prompt_rows: np.ndarray):
    """A trained IVF index over the rows ``prompt_rows`` (in block order), ids = block positions."""
    import faiss

    n, d = len(prompt_rows), emb.shape[1]
    nlist = max(16, int(IVF_LISTS_PER_SQRT * np.sqrt(n)))
    # float16 codes: half the memory of float32 and faster scans, recall as with IVFFlat
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.niter = IVF_TRAIN_ITER
    index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
    index.cp.min_points_per_centroid = 1  # we train on a deliberate sample: no warning per build
    index.cp.seed = 1234
    n_train = min(n, IVF_TRAIN_PER_LIST * nlist)
    sample = np.sort(np.random.default_rng(0).choice(n, n_train, replace=False))
    index.train(gather(emb, prompt_rows[sample]))
    _add(index, emb, prompt_rows)
    index.nprobe = IVF_NPROBE
    return index


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
