"""Same-run baselines for benchmarks/speed.py: the simple code a user would write instead of v0lite.

* :func:`brute_knn` / :func:`brute_knn_predict`: exact numpy brute force over the query policy's
  eligible rows (step <= the query's step, the rule v0lite's index applies), ``np.argpartition``
  top-k, prediction = plain mean score of the k neighbours. Beside the "History size" and "Recall"
  tables; :func:`brute_knn` is also the exact top-k that recall is measured against.
* :func:`sklearn_knn_predictor`: scikit-learn ``KNeighborsRegressor(algorithm="brute",
  metric="cosine")`` fitted per policy on the same vectors, with no step rule. Beside the
  "V0Regressor end to end" table.

Neither is v0lite's estimate (similarity-weighted residuals shrunk toward the policy prior): they
time what an exact kNN mean costs, so the ratio says what v0lite's index and head cost or save.
"""

from __future__ import annotations

import time

import numpy as np

# rows gathered (100 MiB at dim 384) and queries multiplied at a time: bounded temporaries, a (128, 65,536)
# similarity block is 32 MiB and its argpartition 64 MiB
ROW_CHUNK = 65_536
QUERY_CHUNK = 128
# above this history size the brute-force baseline is timed on the first BIG_QUERIES queries only:
# 2,000 queries x 1M rows x dim 384 is ~1.5 TFLOP a repeat, minutes on 2 cores
BIG_ROWS = 100_000
BIG_QUERIES = 200


def median_time(fn, repeats: int) -> tuple[float, object]:
    """(median seconds of ``repeats`` calls of ``fn``, the last call's result)."""
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def baseline_queries(n_rows: int, n_queries: int) -> int:
    """How many of the queries (the first ones) the brute-force baseline is timed on at ``n_rows`` rows."""
    return n_queries if n_rows <= BIG_ROWS else min(n_queries, BIG_QUERIES)


def _merge_top(best_s, best_r, s, r, k: int):
    """Keep the k largest of the (sims, rows) columns of two candidate sets (unordered)."""
    s, r = np.concatenate([best_s, s], 1), np.concatenate([best_r, r], 1)
    if s.shape[1] > k:
        top = np.argpartition(s, s.shape[1] - k, axis=1)[:, -k:]
        s, r = np.take_along_axis(s, top, 1), np.take_along_axis(r, top, 1)
    return s, r


def brute_knn(emb, policy, step, q_emb, q_policy, q_step, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products of each query among the rows of its policy with step <= its step.

    Queries are grouped by (policy, step), so each eligible row set is gathered once; rows are read
    ``ROW_CHUNK`` at a time (``emb`` may be a float16 or memmapped array) and multiplied with
    ``QUERY_CHUNK`` queries at a time, and each block's top-k is taken with ``np.argpartition``.

    Parameters
    ----------
    emb : ndarray (n, d)
        Unit vectors of the history rows.
    policy, step : ndarray (n,)
        Each row's policy code and step.
    q_emb : ndarray (m, d)
        Unit query vectors.
    q_policy, q_step : ndarray (m,)
        Each query's policy code and step.
    k : int
        Neighbours.

    Returns
    -------
    rows : ndarray (m, k) int64
        Row ids (into ``emb``), best first; -1 where fewer than k rows are eligible.
    sims : ndarray (m, k) float32
        Their inner products; -inf where ``rows`` is -1.
    """
    m = len(q_emb)
    rows = np.full((m, k), -1, np.int64)
    sims = np.full((m, k), -np.inf, np.float32)
    for p in np.unique(q_policy):
        mine = np.flatnonzero(policy == p)
        for t in np.unique(q_step[q_policy == p]):
            qi = np.flatnonzero((q_policy == p) & (q_step == t))
            elig = mine[step[mine] <= t]
            if len(elig) == 0:
                continue
            q = np.ascontiguousarray(q_emb[qi], np.float32)
            best_s = np.full((len(qi), 0), -np.inf, np.float32)
            best_r = np.zeros((len(qi), 0), np.int64)
            for lo in range(0, len(elig), ROW_CHUNK):
                ids = elig[lo : lo + ROW_CHUNK]
                x = np.asarray(emb[ids], np.float32)
                kk = min(k, len(ids))
                part_s, part_r = [], []
                for qs in range(0, len(qi), QUERY_CHUNK):
                    s = q[qs : qs + QUERY_CHUNK] @ x.T
                    part = np.argpartition(s, s.shape[1] - kk, axis=1)[:, -kk:]
                    part_s.append(np.take_along_axis(s, part, 1))
                    part_r.append(ids[part])
                best_s, best_r = _merge_top(best_s, best_r, np.concatenate(part_s), np.concatenate(part_r), k)
            order = np.argsort(-best_s, axis=1, kind="stable")
            w = best_s.shape[1]
            sims[qi, :w] = np.take_along_axis(best_s, order, 1)
            rows[qi, :w] = np.take_along_axis(best_r, order, 1)
    return rows, sims


def knn_mean(score: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mean score of each query's neighbours (rows -1 are padding); NaN for a query with none."""
    valid = rows >= 0
    total = np.where(valid, score[np.maximum(rows, 0)], 0.0).sum(1)
    count = valid.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def brute_knn_predict(emb, policy, step, score, q_emb, q_policy, q_step, k: int) -> np.ndarray:
    """The brute-force baseline's prediction: :func:`knn_mean` of :func:`brute_knn`'s neighbours."""
    rows, _ = brute_knn(emb, policy, step, q_emb, q_policy, q_step, k)
    return knn_mean(score, rows)


def sklearn_knn_predictor(vectors, policy, y, k: int):
    """A function ``(q_vectors, q_policy) -> predictions`` from one ``KNeighborsRegressor`` per policy.

    Brute force, cosine metric, ``n_neighbors=min(k, the policy's rows)``, uniform weights (a plain
    kNN mean), fitted on ``vectors[policy == p]``; no step rule. A query of a policy with no rows gets NaN.
    """
    from sklearn.neighbors import KNeighborsRegressor

    models = {}
    for p in np.unique(policy):
        sel = policy == p
        models[p] = KNeighborsRegressor(n_neighbors=min(k, int(sel.sum())), algorithm="brute", metric="cosine").fit(
            vectors[sel], y[sel]
        )

    def predict(q_vectors, q_policy):
        out = np.full(len(q_vectors), np.nan)
        for p, model in models.items():
            sel = q_policy == p
            if sel.any():
                out[sel] = model.predict(q_vectors[sel])
        return out

    return predict


def rate_ratio(v0lite_rate: float, baseline_rate: float) -> str:
    """``v0lite / baseline`` rates as ``"3.20x"`` (above 1: v0lite is faster)."""
    return f"{v0lite_rate / baseline_rate:.2f}x"


def brute_text(rows: list[dict], k: int) -> str:
    """Name and describe the brute-force baseline of a table, with the sizes timed on fewer queries."""
    capped = [
        f"first {r['baseline_queries']:,} at {r['n']:,} rows" for r in rows if r["baseline_queries"] < r["queries"]
    ]
    return (
        f"Baseline (same run, same vectors and queries): numpy brute force, the exact kNN mean a user would "
        f"write: for each query, the dot products with every row of its policy with step <= the query's step "
        f"(queries grouped by step, rows read {ROW_CHUNK:,} at a time), `np.argpartition` top-{k} and the "
        "plain mean of their scores (v0lite's head weighs residuals and shrinks to a prior; the search is the "
        "cost). Timed like v0lite, median of the same repeats"
        + (
            f", on the first queries only where 2,000 would take minutes ({', '.join(capped)}; fewer queries share "
            "each gathered prefix there, so that rate is a lower bound for the baseline on all 2,000)"
            if capped
            else ""
        )
        + ". Ratio = v0lite predict/s / baseline predict/s (above 1: v0lite is faster)."
    )


def sklearn_text(k: int) -> str:
    """Name and describe the scikit-learn baseline of the end-to-end table."""
    return (
        "Baseline (same run, same vectors, same 2,000 queries): scikit-learn "
        f"`KNeighborsRegressor(n_neighbors={k}, algorithm='brute', metric='cosine')` fitted per policy on the "
        "history's vectors, `predict` on the queries' vectors (a plain kNN mean), median of the same repeats; it "
        "has no step rule (every row of the policy is eligible) and skips what V0Regressor.predict adds (hashing, "
        "cache read, the DataFrame path). Ratio = V0Regressor predict/s / baseline predict/s (above 1: v0lite "
        "is faster)."
    )


def empty_prefix_text(rows: list[dict]) -> str:
    """Say how many recall queries had an empty step prefix (no history row at or before their step): left out."""
    parts = [
        f"{r['recall_mixed_empty_prefix']} / {r['recall_latest_empty_prefix']} of {r['recall_queries']} "
        f"at {r['n']:,} rows"
        for r in rows
        if "recall_queries" in r
    ]
    if not parts:
        return ""
    return (
        "Queries with an empty step prefix (no history row at or before their step) have no exact top-k and are "
        f"left out of recall (random steps / latest step): {', '.join(parts)}."
    )


def cold_target_text(ratio: float, target: float = 0.9) -> str:
    """The end-to-end / encoder rate against the target, evaluated: ``(target >= 90%: met)``."""
    return f"(target >= {target:.0%}: {'met' if ratio >= target else 'NOT met'})"
