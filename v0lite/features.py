"""Context features of a query, read from the history: what the learned heads see.

For a query (policy p, step t, prompt u) every feature uses only what the step rule allows
(p's rows with step <= t minus the query's own row; other policies' rows are other models'
logs and always visible):

* **policy profile**: recent prior, mean and spread of eligible rows, history size, steps seen
  (prior and mean shrunk toward the other policies by the history size);
* **own neighbours**: faiss kNN over p's eligible rows: top similarities, similarity-weighted
  difficulty residuals (score minus its checkpoint's mean) at several k and temperatures,
  Beta-smoothed, mean step gap to the neighbours;
* **own history of this prompt**: count, mean and latest score of p on u at earlier steps;
* **cross-policy evidence** (IRT-like shared difficulty): other policies' mean residual on u
  itself and, by kNN over the history's unique prompts, on u's nearest neighbours;
* **prompt**: a low-dimensional PCA projection of the embedding and log length.

Precomputations are cached on the index object (a grown index is a new object).
"""

from __future__ import annotations

import numpy as np

from .index import HistoryIndex, Queries, _distinct_queries, top_inner_products

__all__ = ["compute_features", "fit_pca", "weighted_gram", "FEATURE_K"]

FEATURE_K = 32
_XK = 32


def fit_pca(emb: np.ndarray, n_components: int = 8, random_state: int = 0):
    """(mean, components) of a PCA of the embeddings (at most 20k rows), by eigh of their scatter matrix."""
    rng = np.random.default_rng(random_state)
    x = emb if len(emb) <= 20000 else emb[rng.choice(len(emb), 20000, replace=False)]
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    xc = x - mean
    # the top eigenvectors of the (dim x dim) scatter matrix are the SVD's right singular vectors;
    # an SVD of the (rows x dim) matrix took ~1 s of each auto fit on 14k prompts, this ~0.1 s
    vals, vecs = np.linalg.eigh(xc.T @ xc)
    keep = np.argsort(vals)[::-1][: min(n_components, len(x))]
    comps = vecs[:, keep].T
    # fix each component's sign, so refits give identical features
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])
    comps = comps * signs[:, None]
    if len(comps) < n_components:  # fewer prompts than components: zero-pad, shapes stay fixed
        comps = np.vstack([comps, np.zeros((n_components - len(comps), comps.shape[1]))])
    return mean.astype(np.float32), comps.astype(np.float32)


def weighted_gram(emb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``emb.T @ diag(weight) @ emb`` (float64 result) for non-negative weights.

    Computed as ``Z.T @ Z`` with ``Z = emb * sqrt(weight)`` in float32, which numpy hands to
    BLAS ``syrk`` (half the products of a general matmul, in single precision): ~3x faster than
    the float64 product. The ridges that use it add ``0.03 n`` to the diagonal, so their
    systems are well conditioned (condition number below ~35 for unit embeddings) and float32
    sums lose nothing that matters (largest error ~3e-7 of the Gram's largest entry, 11k prompts).
    """
    z = np.asarray(emb, np.float32) * np.sqrt(np.asarray(weight, np.float64)).astype(np.float32)[:, None]
    return (z.T @ z).astype(np.float64)


class _Cache:
    """Per-index precomputations: residuals, per-(policy, prompt) and per-prompt sums."""

    def __init__(self, index: HistoryIndex):
        n_p = len(index.keys)
        self.resid = index.score - index.row_base(np.arange(index.n_rows), raw=True)  # learned inputs: as designed
        self.ustep = np.unique(index.step)
        self.srank = np.searchsorted(self.ustep, index.step)
        ns = len(self.ustep)
        pair = index.policy.astype(np.int64) * n_p + index.prompt_row
        # (policy, prompt, step) sorted: prefix sums answer "rows of p on u with step <= t"
        comb = pair * ns + self.srank
        order = np.argsort(comb, kind="stable")
        self.comb = comb[order]
        self.comb_score = index.score[order]
        self.comb_step = index.step[order]
        self.comb_cs = np.concatenate([[0.0], np.cumsum(self.comb_score)])
        self.comb_resid = self.resid[order]
        self.comb_rcs = np.concatenate([[0.0], np.cumsum(self.comb_resid)])
        # per (policy, prompt) residual sums, all steps
        upair, inv = np.unique(pair, return_inverse=True)
        self.upair = upair
        self.pair_s = np.bincount(inv, self.resid, len(upair))
        self.pair_c = np.bincount(inv, None, len(upair)).astype(np.float64)
        self.prompt_s = np.bincount(index.prompt_row, self.resid, n_p)
        self.prompt_c = np.bincount(index.prompt_row, None, n_p).astype(np.float64)
        self.prompt_score = np.bincount(index.prompt_row, index.score, n_p)
        self.n_prompts = n_p
        self.ns = ns
        self.max_step = int(index.step.max()) if index.n_rows else 0
        seen = np.flatnonzero(self.prompt_c > 0)
        self.seen_prompts = seen
        self._xindex = None
        self._xvec = None
        self._emb = index.emb
        self._ridge = None
        self._index = index

    def ridge(self, lam_scale: float = 0.03):
        """Pooled ridge: embedding -> difficulty residual, shared by every policy.

        Returns (weights, inverse of the regularised Gram matrix, per-prompt row count and
        residual sum of the rows used). The penalty scales with the row count (lam = lam_scale *
        n), so its strength does not drift with the history's size; at most 200k rows are used.
        """
        if self._ridge is None:
            idx = self._index
            rows = np.arange(idx.n_rows)
            if len(rows) > 200_000:
                rows = np.random.default_rng(0).choice(rows, 200_000, replace=False)
            n_p = len(idx.keys)
            cnt = np.bincount(idx.prompt_row[rows], None, n_p).astype(np.float64)
            ssum = np.bincount(idx.prompt_row[rows], self.resid[rows], n_p)
            # the rows' Gram matrix and X'r from per-prompt sums: the same matrices, built over distinct
            # prompts (a routing log repeats each prompt once per policy)
            seen = np.flatnonzero(cnt > 0)
            X = idx.emb[seen].astype(np.float64)
            d = X.shape[1]
            lam = lam_scale * max(len(rows), 1)
            a_inv = np.linalg.inv(weighted_gram(idx.emb[seen], cnt[seen]) + lam * np.eye(d))
            w = a_inv @ (X.T @ ssum[seen])
            self._ridge = (w, a_inv, cnt, ssum)
        return self._ridge

    def ridge_predict(self, emb: np.ndarray, prompt_row: np.ndarray, hide_own_prompt: bool) -> np.ndarray:
        """Ridge prediction; with ``hide_own_prompt``, exactly as if the prompt's rows were left out.

        Leaving out the c rows of a prompt with embedding x and residual sum s (Sherman-Morrison):
        pred = (x.w - h s) / (1 - c h), h = x' A^-1 x. So a cold query never reads itself.
        """
        w, a_inv, cnt, ssum = self.ridge()
        x = emb.astype(np.float64)
        pred = x @ w
        if not hide_own_prompt:
            return pred
        known = prompt_row >= 0
        pr = np.where(known, prompt_row, 0)
        c = np.where(known, cnt[pr], 0.0)
        s = np.where(known, ssum[pr], 0.0)
        out = pred.copy()
        hit = np.flatnonzero(c > 0)
        if hit.size:
            xh = x[hit]
            # h = x' A^-1 x through BLAS (an einsum over "ij,jk,ik" runs as a plain C loop: ~20x slower)
            h = np.sum((xh @ a_inv) * xh, axis=1)
            out[hit] = (pred[hit] - h * s[hit]) / np.maximum(1 - c[hit] * h, 1e-6)
        return out

    def pair_lookup(self, policy: np.ndarray, prompt_row: np.ndarray):
        """(residual sum, count) of each policy's rows on each prompt; 0 where none."""
        key = policy.astype(np.int64) * self.n_prompts + prompt_row
        pos = np.searchsorted(self.upair, key)
        pos_c = np.minimum(pos, len(self.upair) - 1)
        hit = (len(self.upair) > 0) & (self.upair[pos_c] == key) & (prompt_row >= 0)
        return np.where(hit, self.pair_s[pos_c], 0.0), np.where(hit, self.pair_c[pos_c], 0.0)

    def xsearch(self, q: np.ndarray, k: int, search: str = "faiss"):
        """(sims, ids into ``seen_prompts``) of the k nearest seen prompts of each query (see compute_features)."""
        import faiss

        q = np.ascontiguousarray(q, np.float32)
        if search == "faiss" or k >= faiss.cvar.distance_compute_min_k_reservoir:  # ties as faiss's heap only
            return self.xindex().search(q, k)
        if self._xvec is None:
            self._xvec = np.ascontiguousarray(self._emb[self.seen_prompts], dtype=np.float32)
            self._xnorm = float(np.sqrt(np.einsum("ij,ij->i", self._xvec, self._xvec).max(initial=0.0)))
        return top_inner_products(q, self._xvec, k, x_norm=self._xnorm)

    def xindex(self):
        """Inner-product index over the unique prompts that have any outcome."""
        if self._xindex is None:
            import faiss

            x = np.ascontiguousarray(self._emb[self.seen_prompts], dtype=np.float32)
            idx = faiss.IndexFlatIP(x.shape[1])
            idx.add(x)
            self._xindex = idx
        return self._xindex


def _cache(index: HistoryIndex) -> _Cache:
    c = getattr(index, "_feature_cache", None)
    if c is None:
        c = _Cache(index)
        index._feature_cache = c
    return c


def _unique_queries(emb: np.ndarray, prompt_row: np.ndarray):
    """(first index of each distinct (embedding, prompt row), inverse): prompt-only work runs once per prompt."""
    return _distinct_queries(emb, prompt_row)


def _weighted(vals, sims, valid, temperature, alpha):
    s = sims.astype(np.float64)
    top = np.where(valid, s, -np.inf).max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    w = np.exp((s - top) / temperature) * valid
    return (w * vals).sum(1) / (w.sum(1) + alpha), w.sum(1)


def _hide_own(index, code, step, prompt_row, cnt, mean, std):
    """(count, mean, std) of the policy's eligible rows without each query's prompt's rows (any step).

    Changed only where a query has such rows, so every other value stays bit-identical.
    """
    from .index import own_rows

    c, s, s2 = own_rows(index, code, step, prompt_row, "any_step")
    n = cnt - c
    m2 = np.where(n > 0, (cnt * mean - s) / np.maximum(n, 1), 0.0)
    v2 = np.where(n > 0, (cnt * (std**2 + mean**2) - s2) / np.maximum(n, 1) - m2**2, 0.0)
    hit = c > 0
    return np.where(hit, n, cnt), np.where(hit, m2, mean), np.where(hit, np.sqrt(np.maximum(v2, 0.0)), std)


def _own_prompt(index, c: _Cache, q: Queries, qstep, exclude):
    """Count, mean and latest score of the policy's earlier rows on the query's own prompt."""
    m = len(q)
    out_cnt = np.zeros(m)
    out_mean = np.full(m, np.nan)
    out_last = np.full(m, np.nan)
    out_gap = np.full(m, np.nan)
    nan = np.full(m, np.nan)
    if exclude == "any_step" or index.n_rows == 0:
        return out_cnt, out_mean, out_last, out_gap, nan, nan
    ok = q.prompt_row >= 0
    pair = q.policy.astype(np.int64) * c.n_prompts + np.maximum(q.prompt_row, 0)
    le = np.searchsorted(c.ustep, qstep, side="right")  # unique steps <= t
    lo = np.searchsorted(c.comb, pair * c.ns)
    hi = np.searchsorted(c.comb, pair * c.ns + le)
    if exclude == "same_step":
        same = (le > 0) & (c.ustep[np.maximum(le - 1, 0)] == q.step)
        lo_same = np.searchsorted(c.comb, pair * c.ns + le - 1)
        hi = np.where(same, lo_same, hi)
    cnt = np.where(ok, hi - lo, 0)
    has = cnt > 0
    s = c.comb_cs[hi] - c.comb_cs[lo]
    last = np.maximum(hi - 1, 0)
    out_cnt = cnt.astype(np.float64)
    out_mean = np.where(has, s / np.maximum(cnt, 1), np.nan)
    out_last = np.where(has, c.comb_score[last], np.nan)
    out_gap = np.where(has, np.log1p(np.maximum(qstep - c.comb_step[last], 0)), np.nan)
    # residuals (score minus its checkpoint's mean) stay comparable while the policy improves
    out_rmean = np.where(has, (c.comb_rcs[hi] - c.comb_rcs[lo]) / np.maximum(cnt, 1), np.nan)
    out_rlast = np.where(has, c.comb_resid[last], np.nan)
    return out_cnt, out_mean, out_last, out_gap, out_rmean, out_rlast


def compute_features(
    index: HistoryIndex,
    q: Queries,
    exclude: str = "same_step",
    *,
    pca=None,
    k: int = FEATURE_K,
    return_context: bool = False,
    search: str = "faiss",
):
    """Feature matrix (m, n_features) float32 and the feature names.

    Parameters
    ----------
    index : HistoryIndex
        The context.
    q : Queries
        Queries (policy codes into ``index.policies``; all known).
    exclude : {"same_step", "any_step", "none"}
        Which of the history's rows on the query's own prompt are hidden.
    pca : (mean, components), optional
        Projection for the prompt features (see :func:`fit_pca`).
    k : int
        Own-policy neighbours retrieved.
    return_context : bool, default False
        Also return the retrieved context as token arrays (for the transformer head): own
        neighbours' prompt rows, scores, residuals, similarities, log step gaps, validity, and
        cross-policy neighbour prompts, their other-policy residuals, similarities, validity.
    search : {"faiss", "numpy"}, default "faiss"
        How the exact (brute-force) neighbour searches run: faiss, or
        :func:`v0lite.index.top_inner_products` (the same neighbours up to float round-off
        in the similarities, at a fraction of the CPU). The heads predict with "numpy"; training
        episodes and auto's out-of-fold comparison keep "faiss", so fitting computes exactly
        what it always did.
    """
    if search not in ("faiss", "numpy"):
        raise ValueError(f"search must be 'faiss' or 'numpy', got {search!r}")
    from .index import policy_prior

    c = _cache(index)
    m = len(q)
    qstep = np.minimum(q.step, c.max_step)
    qq = Queries(q.policy, qstep, q.emb, q.prompt_row, q.length)
    cols: dict[str, np.ndarray] = {}

    # policy profile; a cold query (any_step) hides its prompt's rows from it too (the same_step
    # profile is what the learned heads were trained on: warm episodes read it so)
    cold = exclude == "any_step"
    prior = policy_prior(index, qq, hide="any_step" if cold else None)
    cols["prior"] = prior
    cnt = np.zeros(m)
    mean = np.zeros(m)
    std = np.zeros(m)
    nsteps = np.zeros(m)
    for code in np.unique(q.policy):
        qi = np.flatnonzero(q.policy == code)
        cnt[qi], mean[qi], std[qi] = index.policy_stats(int(code), qstep[qi])
        if cold:
            cnt[qi], mean[qi], std[qi] = _hide_own(
                index, int(code), qstep[qi], q.prompt_row[qi], cnt[qi], mean[qi], std[qi]
            )
        b = index.block(int(code))
        nsteps[qi] = np.searchsorted(b.ustep, qstep[qi], side="right")
    cols["policy_mean"] = index.shrink_to_population(cnt, mean)
    cols["policy_std"] = std
    cols["policy_log_n"] = np.log1p(cnt)
    cols["policy_n_steps"] = nsteps
    cols["log_step"] = np.log1p(np.maximum(qstep, 0))

    # own-policy neighbours (the original steps: exclusion compares the query's real step)
    rows, sims = index.search_queries(q, k, exclude, search=search)
    valid = rows >= 0
    rc = np.where(valid, rows, 0)
    resid = np.where(valid, c.resid[rc], 0.0)
    score = np.where(valid, index.score[rc], 0.0)
    nval = valid.sum(1)
    cols["nn_count"] = np.log1p(nval)
    cols["sim_top1"] = np.where(nval > 0, sims[:, 0], 0.0)
    cols["sim_top5"] = (sims[:, :5] * valid[:, :5]).sum(1) / np.maximum(valid[:, :5].sum(1), 1)
    cols["sim_mean"] = (sims * valid).sum(1) / np.maximum(nval, 1)
    for kk, t, a in ((8, 0.05, 1.0), (32, 0.02, 1.0), (32, 0.05, 1.0), (32, 0.2, 4.0)):
        est, wsum = _weighted(resid[:, :kk], sims[:, :kk], valid[:, :kk], t, a)
        cols[f"nn_resid_k{kk}_t{t}"] = est
    cols["nn_wsum_t0.05"] = wsum
    cols["nn_mean_score8"] = (score[:, :8] * valid[:, :8]).sum(1) / np.maximum(valid[:, :8].sum(1), 1)
    mu = (score * valid).sum(1) / np.maximum(nval, 1)
    cols["nn_std_score"] = np.sqrt(((score - mu[:, None]) ** 2 * valid).sum(1) / np.maximum(nval, 1))
    gap = np.where(valid, qstep[:, None] - np.where(valid, index.step[rc], 0), 0)
    cols["nn_log_step_gap8"] = np.log1p(
        (np.maximum(gap[:, :8], 0) * valid[:, :8]).sum(1) / np.maximum(valid[:, :8].sum(1), 1)
    )

    # the policy's own earlier outcomes on this very prompt
    o_cnt, o_mean, o_last, o_gap, o_rmean, o_rlast = _own_prompt(index, c, q, qstep, exclude)
    cols["own_prompt_n"] = o_cnt
    cols["own_prompt_mean"] = o_mean
    cols["own_prompt_last"] = o_last
    cols["own_prompt_log_gap"] = o_gap
    cols["own_prompt_resid_mean"] = o_rmean
    cols["own_prompt_resid_last"] = o_rlast
    cols["own_prompt_adjusted"] = prior + np.nan_to_num(o_rmean, nan=0.0)

    # cross-policy evidence on this prompt (other policies' residuals)
    pr = np.maximum(q.prompt_row, 0)
    known = q.prompt_row >= 0
    ps, pc = c.pair_lookup(q.policy, q.prompt_row)
    xs = np.where(known, c.prompt_s[pr] - ps, 0.0)
    xc = np.where(known, c.prompt_c[pr] - pc, 0.0)
    if exclude == "any_step":  # a cold prompt: hide every row of it
        xs, xc = np.zeros(m), np.zeros(m)
    cols["xp_same_n"] = np.log1p(xc)
    cols["xp_same_resid"] = np.where(xc > 0, xs / np.maximum(xc, 1), np.nan)

    # cross-policy evidence on the prompt's nearest neighbours
    if len(c.seen_prompts):
        kx = min(_XK + 1, len(c.seen_prompts))
        first, inv = _unique_queries(q.emb, q.prompt_row)
        D, I = c.xsearch(q.emb[first], kx, search)
        D, I = D[inv], I[inv]
        nb = c.seen_prompts[np.maximum(I, 0)]
        ok = (I >= 0) & (nb != q.prompt_row[:, None])
        nps, npc = c.pair_lookup(np.repeat(q.policy, kx), nb.ravel())
        ns_ = c.prompt_s[nb] - nps.reshape(nb.shape)
        nc_ = c.prompt_c[nb] - npc.reshape(nb.shape)
        ok &= nc_ > 0
        nres = np.where(ok, ns_ / np.maximum(nc_, 1), 0.0)
        for t, a in ((0.02, 1.0), (0.05, 1.0), (0.2, 4.0)):
            cols[f"xp_nn_resid_t{t}"] = _weighted(nres, D, ok, t, a)[0]
        cols["xp_nn_sim_top1"] = np.where(ok.any(1), np.where(ok, D, -1).max(1), 0.0)
    else:
        nb = np.zeros((m, 0), np.int64)
        D = nres = np.zeros((m, 0), np.float32)
        ok = np.zeros((m, 0), bool)
        for name in ("xp_nn_resid_t0.02", "xp_nn_resid_t0.05", "xp_nn_resid_t0.2", "xp_nn_sim_top1"):
            cols[name] = np.zeros(m)

    # pooled linear difficulty: a direction of the embedding shared by all policies
    if not len(c.seen_prompts):
        first, inv = _unique_queries(q.emb, q.prompt_row)
    cols["ridge_resid"] = c.ridge_predict(q.emb[first], q.prompt_row[first], hide_own_prompt=exclude == "any_step")[inv]

    # prompt
    cols["log_len"] = np.log1p(q.length if q.length is not None else np.zeros(m))
    if pca is not None:
        # per-row sums (einsum without BLAS): a BLAS product rounds a row by its batch's shape, and a 9e-8
        # change of a projection flipped tree splits (a row predicted alone moved by 0.013)
        proj = np.einsum("ij,kj->ik", q.emb - pca[0], pca[1])
        for i in range(proj.shape[1]):
            cols[f"pca{i}"] = proj[:, i]
    names = list(cols)
    X = np.column_stack([np.asarray(cols[n], np.float64) for n in names]).astype(np.float32)
    if not return_context:
        return X, names
    ctx = {
        "nn_prompt": np.where(valid, index.prompt_row[rc], 0),
        "nn_score": score.astype(np.float32),
        "nn_resid": resid.astype(np.float32),
        "nn_sim": sims.astype(np.float32),
        "nn_gap": np.log1p(np.maximum(gap, 0)).astype(np.float32),
        "nn_valid": valid,
        "xp_prompt": nb,
        "xp_resid": nres.astype(np.float32),
        "xp_sim": np.asarray(D, np.float32),
        "xp_valid": ok,
    }
    return X, names, ctx
