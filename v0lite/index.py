"""Per-policy retrieval over embedded histories, with the step rule.

A :class:`HistoryIndex` holds every unique prompt's embedding once and, per policy, that
policy's outcome rows sorted by step. The context of a query at (policy p, step t) is p's rows
with step <= t (a prefix of the sorted block, so faiss searches it with an ``IDSelectorRange``),
never the row with the query's own (prompt, step). Growing the history (:meth:`HistoryIndex.add`)
returns a new index and leaves the old one untouched, so an interrupted update is never half-applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from . import _ivf
from ._exact import top_inner_products
from ._own_rows import own_groups, own_rows
from ._registry import unknown_name
from ._step_chain import StepChain
from .exceptions import V0liteError

__all__ = ["HistoryIndex", "Queries", "EXCLUDE_MODES", "own_rows", "policy_prior", "hidden_prior", "top_inner_products"]

EXCLUDE_MODES = ("same_step", "any_step", "none")
# A query whose eligible prefix holds more than this many rows is answered by an approximate
# index (IVF, float16 vectors); smaller prefixes are searched exactly (brute force over the
# contiguous float32 prefix). From benchmarks/speed.py on 2 cores: exact search of 384-d rows
# runs at about 1.6e8 / n queries/s (~8k/s at 20k rows, ~1.6k/s at 100k), IVF at about 5k/s at
# 100k rows with recall@32 ~0.94 and 99.8% of the exact top-k similarity mass on MiniLM
# embeddings. Read at search/build time, so tests may lower it.
APPROX_THRESHOLD = 20_000


@dataclass
class Queries:
    """A batch of queries, already embedded.

    ``policy`` holds codes into ``HistoryIndex.policies`` (-1 = unknown policy), ``prompt_row``
    the row of the prompt in ``HistoryIndex.emb`` (-1 = prompt not in the history); ``texts``
    the prompts themselves, only for heads that re-encode text (``needs_text``), else None.
    """

    policy: np.ndarray
    step: np.ndarray
    emb: np.ndarray
    prompt_row: np.ndarray
    length: np.ndarray = field(default=None)
    texts: list = field(default=None)

    def __len__(self) -> int:
        return len(self.policy)

    def subset(self, idx) -> "Queries":
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return Queries(
            self.policy[idx],
            self.step[idx],
            self.emb[idx],
            self.prompt_row[idx],
            None if self.length is None else self.length[idx],
            None if self.texts is None else [self.texts[i] for i in idx],
        )


def _distinct_queries(emb: np.ndarray, *labels: np.ndarray):
    """(first index of each distinct (embedding, labels...) row, inverse); exact.

    A random projection of the embedding plus the integer labels is the sort key, then every row
    is checked against its representative; any collision falls back to comparing raw bytes.
    """
    m = emb.shape[0]
    if m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    e = np.ascontiguousarray(emb, np.float32)
    lab = [np.asarray(x, np.int64) for x in labels]
    proj = e @ np.random.default_rng(12345).standard_normal(e.shape[1]).astype(np.float32)
    order = np.lexsort([proj, *lab])
    keys = [proj[order], *(x[order] for x in lab)]
    new = np.ones(m, bool)
    new[1:] = np.any([k[1:] != k[:-1] for k in keys], axis=0)
    group = np.cumsum(new) - 1
    first = order[new]
    inv = np.empty(m, np.int64)
    inv[order] = group
    if np.array_equal(e[first][inv], e) and all(np.array_equal(x[first][inv], x) for x in lab):
        return first, inv
    raw = np.concatenate([e.view(np.uint8).reshape(m, -1), *(x.reshape(m, 1).view(np.uint8) for x in lab)], axis=1)
    key = np.ascontiguousarray(raw).view(np.dtype((np.void, raw.shape[1]))).ravel()
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    return first, inv.ravel()


CHECKPOINT_SHRINK = 20.0  # rows' worth of the previous checkpoint's estimate in a checkpoint's level
_OWN_CHUNK = 1 << 20  # own rows per recent_prior chunk when queries' own rows are hidden


class _Block:
    """One policy's rows, sorted by step then prompt, with a lazily built faiss index."""

    def __init__(self, rows: np.ndarray, steps: np.ndarray, prompt_rows: np.ndarray, scores: np.ndarray):
        # step order, then prompt order: policies that answered the same prompts at the same steps get
        # equal layouts whatever the log's row order, so search_queries searches once for all of them
        order = np.lexsort((prompt_rows, steps))
        self.rows = rows[order]
        self.steps = steps[order]
        self.prompt_rows = prompt_rows[order]
        self.scores = scores[order]
        self.cum_score = np.concatenate([[0.0], np.cumsum(self.scores)])
        self.cum_score2 = np.concatenate([[0.0], np.cumsum(self.scores**2)])
        _, counts = np.unique(self.prompt_rows, return_counts=True)
        self.max_dup = int(counts.max()) if len(counts) else 0
        # per-checkpoint means: a neighbour's score is read relative to its own checkpoint
        self.ustep, start, ucount = np.unique(self.steps, return_index=True, return_counts=True)
        sums = np.add.reduceat(self.scores, start) if len(self.scores) else np.zeros(0)
        self.ustep_mean = sums / np.maximum(ucount, 1)
        self.ustep_count = ucount
        self._faiss = None
        self._grows = None  # an older block's IVF index over this block's first rows (adopt), extended once
        self._x = None
        self._x_norm = None  # (the vectors it was computed from, max norm)
        self._max_dup_step = None
        self._layout = None
        self._own = None  # own_rows' sorted (prompt, step) keys and prefix sums, built on first use
        self._chain = None  # recent_prior's StepChain, built on first use

    def chain(self) -> StepChain:
        """Each checkpoint's level, shrunk toward the one before (built on first use)."""
        if self._chain is None:
            self._chain = StepChain(self.ustep_count, self.ustep_count * self.ustep_mean, CHECKPOINT_SHRINK)
        return self._chain

    def global_rows(self, pos: np.ndarray) -> np.ndarray:
        """Global row ids of block positions (-1 stays -1)."""
        if len(self) == 0:
            return np.full(pos.shape, -1, np.int64)
        return np.where(pos >= 0, self.rows[np.maximum(pos, 0)], -1)

    def layout(self) -> bytes:
        """Digest of the block's (prompt, step) sequence: blocks with equal layouts find the same neighbours."""
        if self._layout is None:
            import hashlib

            h = hashlib.sha256(np.ascontiguousarray(self.prompt_rows, np.int64).tobytes())
            h.update(np.ascontiguousarray(self.steps, np.int64).tobytes())
            self._layout = h.digest()
        return self._layout

    def __len__(self) -> int:
        return len(self.rows)

    def cut(self, step: np.ndarray) -> np.ndarray:
        """Number of eligible rows (step <= t) for each query step t."""
        return np.searchsorted(self.steps, step, side="right")

    # -- search storage (built on first search) ------------------------------------------------
    def _gather(self, emb: np.ndarray, lo: int, hi: int) -> np.ndarray:
        return _ivf.gather(emb, self.prompt_rows[lo:hi])

    def exact_vectors(self, emb: np.ndarray) -> np.ndarray:
        """float32 vectors of the block's first rows, contiguous in step order.

        All rows for a block at or under ``APPROX_THRESHOLD``; for a bigger block only the first
        ``APPROX_THRESHOLD`` rows (the prefixes searched exactly), the rest live in the IVF index.
        """
        n = min(len(self), APPROX_THRESHOLD)
        if self._x is None or len(self._x) != n:
            self._x = self._gather(emb, 0, n) if n else np.zeros((0, emb.shape[1]), np.float32)
        return self._x

    def exact_norm(self, emb: np.ndarray) -> float:
        """The largest L2 norm among :meth:`exact_vectors` (a bound for every prefix), computed once per vectors."""
        x = self.exact_vectors(emb)
        if self._x_norm is None or self._x_norm[0] is not x:
            self._x_norm = (x, float(np.sqrt(np.einsum("ij,ij->i", x, x).max())) if len(x) else 0.0)
        return self._x_norm[1]

    def faiss_index(self, emb: np.ndarray):
        """The approximate (IVF, float16, inner product) index of a block over ``APPROX_THRESHOLD`` rows, else None.

        Ids are the block positions, so a step prefix is searched with ``IDSelectorRange(0, cut,
        assume_sorted=True)`` (:mod:`v0lite._ivf`). A block grown at its end adds its new rows to a copy of the
        older block's index where both train on the same rows (:func:`v0lite._ivf.extend`), else trains its own.
        """
        if self._faiss is None and len(self) > APPROX_THRESHOLD:
            old, self._grows = self._grows, None
            if old is not None and _ivf.train_rows(old.ntotal) == _ivf.train_rows(len(self)):
                self._faiss = _ivf.extend(old, emb, self.prompt_rows, old.ntotal)
            else:
                self._faiss = _ivf.build(emb, self.prompt_rows)
        return self._faiss

    def carry(self, n_rows: int):
        """``(n_rows, exact vectors or None, IVF index or None)``: what a grown copy may reuse;
        ``n_rows``: the old index's rows. An IVF index not built yet passes on the one it would grow from."""
        return n_rows, self._x, self._faiss if self._faiss is not None else self._grows

    def adopt(self, n_rows: int, x, ivf=None) -> None:
        """Reuse an older block's exact vectors ``x`` where no row was added among their positions, and
        grow its IVF index ``ivf`` (at the first search) where every added row comes after its rows.

        The older block's rows are this block's rows with a global id below ``n_rows``: where the first
        ``len(older block)`` positions all hold one, they are the older block's rows in its order (the
        sort is stable and the older rows come first in the index).
        """
        if x is not None and len(x) == min(len(self), APPROX_THRESHOLD) and (self.rows[: len(x)] < n_rows).all():
            self._x = x
        if ivf is not None and (self.rows[: ivf.ntotal] < n_rows).all():
            self._grows = ivf

    def max_dup_step(self) -> int:
        """Most rows sharing one (prompt, step): hits to skip under exclude="same_step"."""
        if self._max_dup_step is None:
            if self.max_dup <= 1 or len(self) == 0:
                self._max_dup_step = self.max_dup
            else:  # rows are sorted by (step, prompt): each (prompt, step) is one run, O(n) not a sort
                new = np.flatnonzero((np.diff(self.prompt_rows) != 0) | (np.diff(self.steps) != 0))
                self._max_dup_step = int(np.diff(np.concatenate([[-1], new, [len(self) - 1]])).max())
        return self._max_dup_step

    def knn(self, emb: np.ndarray, q: np.ndarray, kc: int, cut: int, search: str = "faiss"):
        """(sims, block positions) of the kc nearest of the first ``cut`` rows, best first, -1 padded.

        ``search="numpy"``: an exact prefix is searched with :func:`top_inner_products` instead of
        faiss, and a query's answer does not depend on the other queries of its batch; faiss's
        (the fastest for big batches) picks its path by the batch's shape, so its similarities
        may differ by float round-off between a query alone and in a batch.
        """
        import faiss

        if cut <= APPROX_THRESHOLD or len(self) <= APPROX_THRESHOLD:
            x = self.exact_vectors(emb)[:cut]
            if search == "numpy" and kc < faiss.cvar.distance_compute_min_k_reservoir:
                return top_inner_products(q, x, kc, x_norm=self.exact_norm(emb))
            return faiss.knn(q, x, kc, metric=faiss.METRIC_INNER_PRODUCT)
        return _ivf.search(self.faiss_index(emb), q, kc, cut, len(self))


# population shrinkage of a policy's mean (HistoryIndex.population)
_POP_MIN_ROWS = 30
_POP_MIN_TAU2 = 0.05**2


class HistoryIndex:
    """Every policy's embedded history, searchable under the step rule.

    Parameters
    ----------
    emb : ndarray (n_prompts, dim)
        L2-normalised embedding of each unique prompt.
    keys : list of str
        Content key of each unique prompt (same order as ``emb``).
    policies : list of str
        Policy names; ``policy`` holds codes into it.
    policy, prompt_row, score, step : ndarray (n_rows,)
        One entry per outcome row.
    n : ndarray (n_rows,), optional
        Rollouts behind each score (0 = unknown).
    """

    def __init__(self, emb, keys, policies, policy, prompt_row, score, step, n=None, lengths=None):
        # float32 or float16, in RAM or an np.memmap (np.load(path, mmap_mode="r")): kept as given
        emb = np.asarray(emb) if not isinstance(emb, np.memmap) else emb
        if emb.dtype not in (np.float32, np.float16) or not emb.flags.c_contiguous:
            emb = np.ascontiguousarray(emb, dtype=np.float32)
        self.emb = emb
        self.texts: list[str] | None = None  # prompts aligned with keys, kept only for heads with needs_text
        self.keys = list(keys)
        self.key_to_row = {k: i for i, k in enumerate(self.keys)}
        self.policies = list(policies)
        self.policy_to_code = {p: i for i, p in enumerate(self.policies)}
        self.policy = np.asarray(policy, dtype=np.int32)
        self.prompt_row = np.asarray(prompt_row, dtype=np.int64)
        self.score = np.asarray(score, dtype=np.float64)
        self.step = np.asarray(step, dtype=np.int64)
        self.n = np.zeros(len(self.score), np.int64) if n is None else np.asarray(n, dtype=np.int64)
        # characters per unique prompt (a cheap prompt feature); 0 when unknown
        self.lengths = np.zeros(len(self.keys), np.float32) if lengths is None else np.asarray(lengths, np.float32)
        self._blocks: dict[int, _Block] = {}
        self._carry: dict[int, tuple] = {}  # what blocks grown by add may reuse (_Block.carry)
        self._population: tuple[float, float, float] | None | bool = False  # False: not computed yet

    # -- construction ------------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return len(self.score)

    @property
    def dim(self) -> int:
        return self.emb.shape[1]

    def edge_steps(self, policies: Sequence[str], first: bool = False) -> np.ndarray:
        """Each named policy's latest step (``first``: its first), 0 for one without rows. The latest is where an
        outcome without a step is filed (the checkpoint the policy is at, as a query without a step reads every
        one); the first, the step before which a query reads none of its rows."""
        last = {}
        for p in set(policies):
            code = self.policy_to_code.get(p)
            steps = self.block(code).ustep if code is not None else ()
            last[p] = int(steps[0 if first else -1]) if len(steps) else 0
        return np.array([last[p] for p in policies], np.int64)

    def block(self, code: int) -> _Block:
        """The sorted rows of policy ``code`` (built on first use)."""
        b = self._blocks.get(code)
        if b is None:
            rows = np.flatnonzero(self.policy == code)
            b = _Block(rows, self.step[rows], self.prompt_row[rows], self.score[rows])
            carry = self._carry.pop(code, None)  # dropped once used
            if carry is not None:
                b.adopt(*carry)
            self._blocks[code] = b
        return b

    def add(
        self,
        new_keys: Sequence[str],
        new_emb: np.ndarray,
        new_lengths,
        policy_names: Sequence[str],
        prompt_keys: Sequence[str],
        score,
        step,
        n=None,
    ) -> "HistoryIndex":
        """Return a new index with extra rows; unknown policies and prompts are appended.

        Blocks of policies that got no rows are shared with the old index (they are read-only); a
        grown block reuses the old one's exact-search vectors where the added rows leave them unchanged.
        """
        keys = list(self.keys)
        key_to_row = dict(self.key_to_row)
        extra_emb, extra_len = [], []
        for k, v, ln in zip(new_keys, new_emb, new_lengths):
            if k not in key_to_row:
                key_to_row[k] = len(keys)
                keys.append(k)
                extra_emb.append(v)
                extra_len.append(ln)
        emb = np.vstack([self.emb, np.asarray(extra_emb, np.float32).reshape(-1, self.dim)]) if extra_emb else self.emb
        lengths = np.concatenate([self.lengths, np.asarray(extra_len, np.float32)]) if extra_len else self.lengths
        policies = list(self.policies)
        p2c = dict(self.policy_to_code)
        codes = np.empty(len(policy_names), np.int32)
        for i, p in enumerate(policy_names):
            if p not in p2c:
                p2c[p] = len(policies)
                policies.append(p)
            codes[i] = p2c[p]
        try:
            prow = np.fromiter((key_to_row[k] for k in prompt_keys), np.int64, len(prompt_keys))
        except KeyError as exc:
            raise V0liteError(f"prompt key {exc} has no embedding; pass it in new_keys") from exc
        n = np.zeros(len(codes), np.int64) if n is None else np.asarray(n, np.int64)
        out = HistoryIndex(
            emb,
            keys,
            policies,
            np.concatenate([self.policy, codes]),
            np.concatenate([self.prompt_row, prow]),
            np.concatenate([self.score, np.asarray(score, np.float64)]),
            np.concatenate([self.step, np.asarray(step, np.int64)]),
            np.concatenate([self.n, n]),
            lengths,
        )
        touched = set(np.unique(codes).tolist())
        out._blocks = {c: b for c, b in self._blocks.items() if c not in touched}
        # a touched block is rebuilt at its first use; it may reuse the old one's exact-search vectors
        old = {c: b.carry(self.n_rows) for c, b in self._blocks.items() if c in touched}
        out._carry = {c: old.get(c, self._carry.get(c)) for c in touched if c in old or c in self._carry}
        return out

    # -- statistics ------------------------------------------------------------------------------
    def recent_prior(self, code: int, step: np.ndarray, hide=None) -> np.ndarray:
        """The policy's mean at its latest eligible checkpoint, each checkpoint shrunk toward the one before.

        An evolving policy is best described by its latest checkpoint; :data:`CHECKPOINT_SHRINK` rows'
        worth of the previous checkpoint's estimate keeps a thin latest checkpoint stable
        (:meth:`checkpoint_level`). The result is then shrunk toward the other policies by the eligible
        row count (:meth:`shrink_to_population`). NaN where nothing is eligible.
        ``hide=(prompt_rows, mode)``: each query's own rows are left out (:func:`own_rows`).
        """
        level, cnt = self.checkpoint_level(code, step, hide)
        return np.where(cnt > 0, self.shrink_to_population(cnt, np.nan_to_num(level)), np.nan)

    def checkpoint_level(self, code: int, step: np.ndarray, hide=None):
        """``(level, count)``: the policy's level at each query's latest eligible checkpoint
        (:class:`~v0lite._step_chain.StepChain`: one success at a new checkpoint moves it up from the last
        one's), not yet shrunk toward the other policies, and the eligible rows it rests on; with
        ``hide``, without each query's own rows. NaN (count 0) where nothing is eligible.
        """
        b = self.block(code)
        step = np.asarray(step)
        cnt = b.cut(step).astype(np.float64)  # eligible rows
        if len(b.ustep) == 0:
            return np.full(len(step), np.nan), cnt
        jj = np.maximum(np.searchsorted(b.ustep, step, side="right") - 1, 0)
        level = b.chain().value[jj]
        if hide is not None:
            c_own = own_rows(self, code, step, hide[0], hide[1])[0]
            has = np.flatnonzero(c_own > 0)  # only where a query has own rows: every other level stays bit-identical
            if len(has):
                level = level.copy()
                # chunks of about _OWN_CHUNK own rows: a prompt visited at every step of a long run has
                # hundreds of (query, checkpoint) groups, and all of a big batch's at once would not fit
                part = np.cumsum(c_own[has]) // _OWN_CHUNK
                starts = np.flatnonzero(np.r_[True, np.diff(part) > 0])
                for lo, hi in zip(starts, np.r_[starts[1:], len(has)]):
                    h = has[lo:hi]
                    gq, ck, gc, gs = own_groups(self, code, step[h], np.asarray(hide[0])[h], hide[1])
                    level[h] = b.chain().without(jj[h], gq, ck, gc, gs)
            cnt = cnt - c_own
        return np.where(cnt > 0, level, np.nan), cnt

    def population(self):
        """``(mu, tau2, sigma2)``: how the policies' mean scores spread, or None (< 3 policies).

        ``mu`` is the mean over policies of each policy's mean score, ``tau2`` the variance of
        those means beyond their sampling noise (floored at 0.05 ** 2, so a policy with a long
        history is barely moved) and ``sigma2`` the pooled within-policy variance of a row's
        score. Estimated from the policies with at least 30 rows (all, if fewer than 3 have).
        """
        if self._population is not False:
            return self._population
        n_pol = len(self.policies)
        cnt = np.bincount(self.policy, minlength=n_pol).astype(np.float64)
        s1 = np.bincount(self.policy, self.score, n_pol)
        s2 = np.bincount(self.policy, self.score**2, n_pol)
        has = cnt > 0
        use = cnt >= _POP_MIN_ROWS if (cnt >= _POP_MIN_ROWS).sum() >= 3 else has
        out = None
        if use.sum() >= 3:
            c = cnt[use]
            m = s1[use] / c
            v = np.maximum(s2[use] / c - m**2, 0.0)
            sigma2 = float(np.sum(c * v) / np.sum(c))
            tau2 = float(np.var(m, ddof=1) - np.mean(sigma2 / c))
            out = (float(m.mean()), max(tau2, _POP_MIN_TAU2), max(sigma2, 1e-6))
        self._population = out
        return out

    def shrink_to_population(self, count: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """A policy's mean from ``count`` rows, shrunk toward the population of policies.

        Normal-normal empirical Bayes: weight ``count * tau2 / (count * tau2 + sigma2)`` on the
        policy's own mean (see :meth:`population`), so a policy known from 10 outcomes is
        pulled toward the other policies while one with thousands keeps its own mean. With
        fewer than 3 policies nothing is shrunk.
        """
        pop = self.population()
        mean = np.asarray(mean, np.float64)
        if pop is None:
            return mean
        mu, tau2, sigma2 = pop
        c = np.asarray(count, np.float64)
        w = c * tau2 / (c * tau2 + sigma2)
        return w * mean + (1.0 - w) * mu

    def row_base(self, rows: np.ndarray, raw: bool = False) -> np.ndarray:
        """For global row ids, the level of that row's own (policy, checkpoint): a residual's base.

        The checkpoint's mean shrunk toward the checkpoint before it (:meth:`_Block.chain`), as the
        prior a query there starts from, for the heads that add residuals to that prior (knn,
        linear): a thin new checkpoint's one row is read against the last estimate, not against
        itself (a residual of 0, which said nothing of its prompt). ``raw=True``: the checkpoint's
        own mean, what the learned heads' residual features were designed on (on the oneshot replay
        the shrunk level moved alloc-sim's keep-half share by +0.0015 warm and -0.0047 cold).
        """
        out = np.zeros(rows.shape, np.float64)
        valid = rows >= 0
        if not valid.any():
            return out
        r = rows[valid]
        codes = self.policy[r]
        vals = np.empty(len(r))
        for code in np.unique(codes):
            b = self.block(int(code))
            sel = codes == code
            pos = np.searchsorted(b.ustep, self.step[r[sel]])
            vals[sel] = b.ustep_mean[pos] if raw else b.chain().value[pos]
        out[valid] = vals
        return out

    def policy_stats(self, code: int, step: np.ndarray):
        """(count, mean, std) of the policy's eligible rows for each query step."""
        b = self.block(code)
        c = b.cut(step)
        cnt = c.astype(np.float64)
        safe = np.maximum(cnt, 1)
        mean = b.cum_score[c] / safe
        var = np.maximum(b.cum_score2[c] / safe - mean**2, 0)
        return cnt, mean, np.sqrt(var)

    # -- search ------------------------------------------------------------------------------------
    def search(
        self,
        code: int,
        q_emb: np.ndarray,
        q_step: np.ndarray,
        q_prompt_row: np.ndarray,
        k: int,
        exclude: str = "same_step",
    ):
        """k nearest eligible rows of policy ``code`` for each query.

        Returns
        -------
        rows : ndarray (m, k) int64
            Global row ids, -1 where fewer than k rows are eligible.
        sims : ndarray (m, k) float32
            Inner products (cosine similarities), 0 where ``rows`` is -1.
        """
        b = self.block(code)
        pos, sims = self._search_positions(b, q_emb, q_step, q_prompt_row, k, exclude)
        return b.global_rows(pos), sims

    def _search_positions(self, b: _Block, q_emb, q_step, q_prompt_row, k: int, exclude: str, search="faiss"):
        """:meth:`search` in block positions (-1 padded) instead of global row ids."""
        if exclude not in EXCLUDE_MODES:
            raise unknown_name("exclude mode", exclude, EXCLUDE_MODES)
        m = len(q_step)
        out_rows = np.full((m, k), -1, np.int64)
        out_sims = np.zeros((m, k), np.float32)
        if len(b) == 0 or m == 0 or k == 0:
            return out_rows, out_sims
        extra = {"none": 0, "same_step": b.max_dup_step(), "any_step": b.max_dup}[exclude]
        kk = min(k + extra, len(b))
        cuts = b.cut(q_step)
        q = np.ascontiguousarray(q_emb, dtype=np.float32)
        for cut in np.unique(cuts):
            qi = np.flatnonzero(cuts == cut)
            if cut == 0:
                continue
            kc = min(kk, int(cut))
            D, I = b.knn(self.emb, q[qi], kc, int(cut), search)
            valid = I >= 0
            Ic = np.where(valid, I, 0)
            if exclude != "none":
                same_prompt = b.prompt_rows[Ic] == q_prompt_row[qi, None]
                if exclude == "same_step":
                    same_prompt &= b.steps[Ic] == q_step[qi, None]
                valid &= ~same_prompt
            # keep the first k valid hits of each row, in similarity order
            rank = np.cumsum(valid, axis=1) - 1
            keep = valid & (rank < k)
            r_i, c_i = np.nonzero(keep)
            out_rows[qi[r_i], rank[r_i, c_i]] = Ic[r_i, c_i]
            out_sims[qi[r_i], rank[r_i, c_i]] = D[r_i, c_i]
        return out_rows, out_sims

    def search_queries(self, q: Queries, k: int, exclude: str = "same_step", *, search: str = "faiss"):
        """:meth:`search` over a mixed-policy batch; unknown policies (code -1) get no neighbours.

        ``search``: "faiss", or "numpy" for exact prefixes searched by :func:`top_inner_products`
        (the same neighbours up to float round-off; prediction uses it, fitting keeps faiss).
        """
        m = len(q)
        rows = np.full((m, k), -1, np.int64)
        sims = np.zeros((m, k), np.float32)
        codes = [int(c) for c in np.unique(q.policy) if c >= 0]
        # policies scored on the same prompts in the same order (a routing log: every model on every
        # prompt) share one search: neighbours depend on embeddings, steps and exclusion, not scores
        groups: dict = {}
        for code in codes:
            b = self.block(code)
            groups.setdefault(b.layout() if len(b) else ("empty", code), []).append(code)
        for group in groups.values():
            qi = np.flatnonzero(np.isin(q.policy, group))
            b = self.block(group[0])
            if len(group) == 1:
                first, inv = np.arange(len(qi)), np.arange(len(qi))
            else:
                first, inv = _distinct_queries(q.emb[qi], q.step[qi], q.prompt_row[qi])
            u = qi[first]
            pos, s = self._search_positions(b, q.emb[u], q.step[u], q.prompt_row[u], k, exclude, search)
            pos, s = pos[inv], s[inv]
            for code in group:
                sel = q.policy[qi] == code
                rows[qi[sel]] = self.block(code).global_rows(pos[sel])
                sims[qi[sel]] = s[sel]
        return rows, sims


def policy_prior(index: HistoryIndex, queries: Queries, hide: str | None = None) -> np.ndarray:
    """Each query's policy prior at its step (nan if nothing is eligible).

    The mean at the latest eligible checkpoint, shrunk toward the estimate at the checkpoint
    before it (for a static policy, its mean), then toward the other policies by the number of eligible
    rows (see :meth:`HistoryIndex.recent_prior`): a policy added with a handful of
    outcomes is not taken at its word. Used by the features and by every head's fallback,
    so it lives here, below both.

    ``hide`` (``"same_step"`` or ``"any_step"``, an exclude mode): the query's own rows
    (:func:`own_rows`) are left out, so a query never reads its own outcome; None (or "none")
    keeps them. Queries whose prompt is not in the history get the same prior either way.
    """
    out = np.full(len(queries), np.nan)
    for code in np.unique(queries.policy):
        if code < 0:
            continue
        qi = np.flatnonzero(queries.policy == code)
        if hide in ("same_step", "any_step"):
            out[qi] = index.recent_prior(int(code), queries.step[qi], hide=(queries.prompt_row[qi], hide))
        else:
            out[qi] = index.recent_prior(int(code), queries.step[qi])
    return out


def hidden_prior(index: HistoryIndex, queries: Queries, hide: str) -> np.ndarray:
    """:func:`policy_prior` with each query's own rows hidden, and no nan.

    A query whose policy has nothing eligible left once its own rows are out gets the history's
    mean without those rows (0.5 for an empty history): the prior an in-context solve reads when it
    answers a query as if its rows were not there (irt, and the exact hidden-row ridge solves).
    """
    prior = policy_prior(index, queries, hide=hide)
    for i in np.flatnonzero(np.isnan(prior)):  # nothing eligible left: the history's mean, without them
        one = slice(i, i + 1)
        c, s_, _ = own_rows(index, int(queries.policy[i]), queries.step[one], queries.prompt_row[one], hide)
        n = index.n_rows - c[0]
        prior[i] = (float(index.score.sum()) - s_[0]) / n if n > 0 else 0.5
    return prior
