"""Per-policy logistic regression (or ridge) on the prompt embedding: the routing peer, fitted fast.

``logit p = logit(prior(policy, step)) + b_policy + z(prompt) @ w_policy``, ``z`` the
standardised embedding rotated onto the eigenvectors of the history's Gram matrix. In that
basis the Hessian of every policy is close to diagonal, so all policies are fitted at once by
Jacobi-preconditioned Newton steps with a step-halving line search: each step is a few
(prompts x dim) x (dim x policies) products, shared work in a routing log where every policy
answered the same prompts. The L2 strength of each policy is chosen by prompt-grouped
cross-validation. A policy first seen through ``add_history`` gets its weights solved in
context at predict time (Newton steps from its history, penalised toward the mean of the
fitted policies' weights), cached per index: capability is context, not weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._deviation import LEVEL_VAR, _deviation_prior, _map_glm, _sigmoid, offset_of, population_prior
from ._exact_rows import exact_fitted, hide_exactly, hide_in_context
from ._glm import ALPHAS, Design, NewtonRows, cv_glm, fit_glm
from ._pool_items import (
    NO_ROWS,
    eligible_cut,
    fitted_like,
    like_key,
    pool_base,
    solve_on_items,
    thin_mask,
    thin_policies,
)
from .base import BaseHead
from .prior import policy_prior

__all__ = [
    "LogisticHead",
    "RidgeHead",
    "Design",
    "fit_glm",
    "cv_glm",
    "solve_in_context",
    "population_prior",
    "ALPHAS",
]


def group_means(index, rows):
    """Mean score of each row's own (policy, step) group, over ``rows`` only; falls back to the policy, then all."""
    pol, step, y = index.policy, index.step, index.score
    ustep, srank = np.unique(step, return_inverse=True)
    n_pol = len(index.policies)
    g = pol.astype(np.int64) * len(ustep) + srank
    ng = n_pol * len(ustep)
    c = np.bincount(g[rows], None, ng)
    s = np.bincount(g[rows], y[rows], ng)
    pc = np.bincount(pol[rows], None, n_pol)
    ps = np.bincount(pol[rows], y[rows], n_pol)
    glob = y[rows].mean() if len(rows) else 0.5
    pm = np.where(pc > 0, ps / np.maximum(pc, 1), glob)
    gm = np.where(c > 0, s / np.maximum(c, 1), np.repeat(pm, len(ustep)))
    return gm[g]


def solve_in_context(index, code, step_cut, transform, w0, b0, lam, link="logit", *, prior=None):
    """Weights ``(w, b)`` of one policy, solved from its history rows at steps <= ``step_cut``.

    Newton steps on the penalised GLM (:func:`fit_glm`), started at and pulled toward ``w0`` (the
    fitted policies' mean weights) with strength ``lam``: a policy first seen through
    ``add_history`` is predicted from a few outcomes, without a refit. ``transform`` maps
    embeddings to the head's features. No rows: ``(w0, b0)``.

    ``prior``: ``(precision, b_var)`` of :func:`population_prior` (issue 29): the pull toward
    ``w0`` follows how the fitted policies differ from one another, and the offsets are the
    policy's own shrunk prior (:meth:`~v0lite.index.HistoryIndex.recent_prior`, what prediction
    adds), so a few outcomes move the policy along the pool's directions and many outcomes
    reach a per-policy fit. Without it, the isotropic ``lam`` alone (before issue 29: with the
    fitted policies' ``lam``, thousands of rows' worth, a new policy barely moved from ``w0``).
    """
    rows = np.flatnonzero((index.policy == code) & (index.step <= step_cut))
    if len(rows) == 0:
        return w0, b0
    uprompt, pr = np.unique(index.prompt_row[rows], return_inverse=True)
    if prior is not None and prior[0] is not None:
        base = index.recent_prior(int(code), index.step[rows])
        off = offset_of(np.nan_to_num(base, nan=float(index.score[rows].mean())), link)
        P, b_var = prior[0], prior[1]
        n_fit = prior[2] if len(prior) > 2 else None
        if n_fit:
            # as its history nears a fitted policy's size, the new policy is treated as the fitted ones were
            # (the isotropic ``lam``, their level prior): the pool's spread is a prior for few rows, and
            # kept at every n it under-penalised how the policy differs from the others, which the routing
            # argmax reads (routerdc, a held-out model with all its rows: mean task accuracy 0.69 -> 0.63)
            P, b_var = _deviation_prior(P, b_var, lam, min(1.0, len(rows) / float(n_fit)), link)
        return _map_glm(transform(index.emb[uprompt])[pr], index.score[rows], off, w0, b0, P, b_var, link)
    off = offset_of(group_means(index, rows)[rows], link)
    W, b, _ = fit_glm(
        transform(index.emb[uprompt]),
        pr,
        np.zeros(len(rows), np.int64),
        index.score[rows],
        off,
        1,
        lam,
        link=link,
        W=w0[None],
        b=np.array([b0]),
        center=w0[None],
        max_iter=30,
    )
    return W[0], float(b[0])


class LogisticHead(BaseHead):
    """Per-policy logistic regression on the prompt embedding, L2 strength by prompt-grouped CV.

    Parameters
    ----------
    alphas : sequence of float, default :data:`ALPHAS`
        Candidate penalties per row of the policy (``lam = alpha * n_rows``), on standardised
        embeddings; each policy takes the one with the smallest held-out loss.
    n_folds : int, default 5
        Prompt folds of the cross-validation.
    select : {"loss", "choice", "pairwise"}, default "loss"
        How alpha is chosen: each policy's held-out loss; or one alpha for every policy by a
        held-out routing score, "choice" the true score of the argmax-p policy per prompt (what an
        argmax router at equal costs uses), "pairwise" the concordance of p with the outcomes
        between every two policies on a prompt (:func:`~v0lite.heads._oof.pairwise_accuracy`:
        what a router trading accuracy for cost uses, since cheaper policies then compete with the
        best one). On routerdc-7model the loss picks a weaker penalty than routing wants; on
        RouterBench the argmax always picks the same dominant model, so "choice" ties every
        penalty from 3.0 up.
    n_jobs : int, default 1
        BLAS threads during fit: the fit is many small products, which extra threads slow
        down on shared cores (measured 14x slower with the default threads under load).
    pool_prior : bool, default True
        How a policy added later (``add_history``) is solved in context: pulled toward the
        fitted policies' weights along the directions in which they differ from one another
        (:func:`population_prior`, empirical Bayes), and a policy known only by its name gets
        the average policy on the prompt (:meth:`predict_unseen`). False: the isotropic pull of
        before issue 29 (a new policy barely moved from the average weights).
    pool_scale : float, default 1.0
        Multiplies the fitted policies' weight covariance in that prior (1: their spread, the empirical
        Bayes choice; 4 and 16 were worse on a train-only CV of routerdc-7model, onboarding.py --tune).
    pool_items : bool, default True
        (logit link, ``pool_prior`` on, 3 or more fitted policies) A policy added later starts
        from what the pool says about each prompt, the fitted policies' consensus and their
        nearest neighbours' outcomes, mixed by a leave-one-policy-out fit at fit time
        (:mod:`~v0lite.heads._pool_items`); its own rows fit how it differs. False: it starts
        from the average policy's weights alone.

    Attributes
    ----------
    alpha_ : ndarray (n_policies,)
        The chosen penalty of each fitted policy.
    oof_ : ndarray (n_rows,)
        Out-of-fold predicted probability of every training row at the chosen alpha (for stacking).

    Examples
    --------
    >>> from v0lite import V0Regressor
    >>> model = V0Regressor(head="logistic")  # doctest: +SKIP
    """

    name = "logistic"
    link = "logit"

    def __init__(
        self, alphas=ALPHAS, n_folds=5, select="loss", n_jobs=1, pool_prior=True, pool_scale=1.0, pool_items=True
    ):
        super().__init__(
            alphas=[float(a) for a in alphas],
            n_folds=n_folds,
            select=select,
            n_jobs=n_jobs,
            pool_prior=bool(pool_prior),
            pool_scale=float(pool_scale),
            pool_items=bool(pool_items),
        )

    def _validate(self):
        from ._params import check_head_params  # ParameterError naming the key, the value and the range

        check_head_params(self.name, {k: self.params[k] for k in ("alphas", "n_folds", "select")})

    def fit(self, index, *, random_state=0, show_progress_bar=False, folds=None):
        """Fit every policy; ``folds`` (fold id per prompt) overrides the CV folds."""
        from threadpoolctl import threadpool_limits

        self._validate()
        with threadpool_limits(int(self.params["n_jobs"])):
            return self._fit(index, random_state, folds)

    def _fit(self, index, random_state, folds):
        from .._folds import prompt_folds
        from ..episodes import subindex

        link = self.link
        n_pol = len(index.policies)
        counts = np.bincount(index.prompt_row, None, len(index.keys))
        self.design_ = Design.fit(index.emb, counts)
        Z = self.design_.transform(index.emb)
        pr, pol, y = index.prompt_row, index.policy.astype(np.int64), index.score
        alphas = np.asarray(self.params["alphas"])
        fold_of_prompt = (
            prompt_folds(len(index.keys), int(self.params["n_folds"]), random_state + 1) if folds is None else folds
        )
        all_rows = np.arange(index.n_rows)
        off_tr, off_te = {}, {}
        for f in np.unique(fold_of_prompt[pr]):
            tr = np.flatnonzero(fold_of_prompt[pr] != f)
            te = np.flatnonzero(fold_of_prompt[pr] == f)
            if not len(tr):  # one prompt: nothing to fit the fold from, so cv_glm skips it (its rows: no oof)
                continue
            off_tr[f] = offset_of(group_means(index, tr), link)
            ctx = subindex(index, tr)
            q = _row_queries(index, te)
            o = np.zeros(index.n_rows)
            o[te] = offset_of(np.nan_to_num(policy_prior(ctx, q), nan=float(y[tr].mean())), link)
            off_te[f] = o
        oof, loss = cv_glm(Z, pr, pol, y, off_tr, off_te, n_pol, fold_of_prompt, alphas, link=link)
        # no fold held out (one prompt): every loss is 0 and the first alpha is taken, which does not
        # matter there: that prompt's standardised embedding is 0, so no penalty moves the weights from 0
        best = np.argmin(loss, axis=0)
        self.cv_choice_ = None
        if self.params["select"] in ("choice", "pairwise"):
            from ._oof import choice_accuracy, pairwise_accuracy

            # routing compares policies on a prompt: one alpha for all, the best by a held-out routing score
            score = choice_accuracy if self.params["select"] == "choice" else pairwise_accuracy
            ch = np.array([score(y, oof[a], pr, pol, index.step) for a in range(len(alphas))])
            if np.isfinite(ch).any():
                self.cv_choice_ = ch
                best = np.full(n_pol, int(np.nanargmax(ch)))
        self.alpha_ = alphas[best]
        self.cv_loss_ = loss
        lin = oof[best[pol], all_rows]
        self.oof_ = lin if link == "identity" else _sigmoid(lin)
        self.oof_folds_ = fold_of_prompt
        n = np.bincount(pol, None, n_pol).astype(np.float64)
        off = offset_of(group_means(index, all_rows), link)
        self.lam_ = self.alpha_ * np.maximum(n, 1)
        self.coef_, self.intercept_, _ = fit_glm(Z, pr, pol, y, off, n_pol, self.lam_, link=link)
        self.n_fitted_ = n_pol
        # a policy with a few rows is read as one added later, from the pool's base (issue 29)
        self.thin_ = thin_policies(n) if self._uses_items() else np.zeros(n_pol, bool)
        # per (policy, prompt[, step]) residual and weight sums at the solution (and per step, the rows'
        # count and score sum): a query whose own rows must be hidden is predicted as if they had
        # been left out (one Newton step on the full Hessian, NewtonRows)
        lin_all = (Z @ self.coef_.T)[pr, pol] + self.intercept_[pol] + off
        p = lin_all if link == "identity" else _sigmoid(lin_all)
        r = y - p
        h = np.ones_like(p) if link == "identity" else p * (1 - p)
        self._loo_tables(index, r, h)
        self.pool_mix_ = None
        if self._uses_items():
            from ._pool_items import fit_mix

            self.pool_mix_ = fit_mix(self.decision, index, self.pool_codes(), random_state)
        thin_rows = np.flatnonzero(self.thin_[pol])
        if thin_rows.size and self.pool_mix_ is not None:  # out of fold as they are predicted: in context, cold
            self.oof_[thin_rows] = self.predict(index, _row_queries(index, thin_rows), exclude="any_step")
        return self

    def pool_codes(self):
        """Codes of the fitted policies the pool's base and prior are made of (all but the thin ones)."""
        thin = getattr(self, "thin_", None)
        return np.arange(self.n_fitted_) if thin is None else np.flatnonzero(~thin)

    def _is_thin(self, code):
        """Whether fitted policy ``code`` is read as one added later (a thin policy, the pool's base in use)."""
        thin = getattr(self, "thin_", None)
        return thin is not None and code < len(thin) and bool(thin[code]) and self._uses_items()

    def _uses_items(self):
        p = self.params
        return self.link == "logit" and bool(p.get("pool_prior", True)) and bool(p.get("pool_items", True))

    def _loo_tables(self, index, r, h):
        n_prompts = len(index.keys)
        k1 = index.policy.astype(np.int64) * n_prompts + index.prompt_row
        u1, inv1 = np.unique(k1, return_inverse=True)
        self.loo_pair_ = np.column_stack([u1.astype(np.float64), np.bincount(inv1, r), np.bincount(inv1, h)])
        self.loo_ustep_, srank = np.unique(index.step, return_inverse=True)
        k2 = k1 * len(self.loo_ustep_) + srank  # (policy, prompt, step rank), exact in int64
        u2, inv2 = np.unique(k2, return_inverse=True)
        cells = [np.bincount(inv2, r), np.bincount(inv2, h), np.bincount(inv2), np.bincount(inv2, index.score)]
        self.loo_step_ = np.column_stack([u2.astype(np.float64), *cells])
        self.loo_n_prompts_ = n_prompts

    def _cell_pos(self, policy, prompt_row, step):
        """Row of ``loo_step_`` of each (policy, prompt, step), and whether that cell was fitted."""
        tab, ns = self.loo_step_, len(self.loo_ustep_)
        ok = (prompt_row >= 0) & (prompt_row < self.loo_n_prompts_) & (policy >= 0) & (policy < self.n_fitted_)
        rank = np.clip(np.searchsorted(self.loo_ustep_, step), 0, ns - 1)
        ok &= self.loo_ustep_[rank] == step
        key = (policy.astype(np.int64) * self.loo_n_prompts_ + np.maximum(prompt_row, 0)) * ns + rank
        pos = np.clip(np.searchsorted(tab[:, 0], key.astype(np.float64)), 0, len(tab) - 1)
        return pos, ok & (tab[pos, 0] == key)

    def _newton_rows(self, index, code):
        """``(prompt, NewtonRows)`` of fitted policy ``code``: its fitted cells' prompts, sorted; built once."""
        cache = self.__dict__.setdefault("_newton_cache", {})
        if code not in cache:
            if self.loo_step_.shape[1] < 5:
                # saved before the cells' counts were kept: counted from the history's rows in those
                # cells (the fitted ones, and any add_history put in the same cell since)
                pos, hit = self._cell_pos(index.policy, index.prompt_row, index.step)
                m = len(self.loo_step_)
                n, ys = np.bincount(pos[hit], None, m), np.bincount(pos[hit], index.score[hit], m)
                self.loo_step_ = np.column_stack([self.loo_step_[:, :3], n, ys])
            n_p, ns = self.loo_n_prompts_, len(self.loo_ustep_)
            tab = self.loo_step_
            lo, hi = np.searchsorted(tab[:, 0], [float(code * n_p * ns), float((code + 1) * n_p * ns)])
            key = tab[lo:hi, 0].astype(np.int64)
            prompt, rank = key // ns - code * n_p, key % ns
            b_prec = 0.0 if self.link == "identity" else 1.0 / LEVEL_VAR  # fit_glm's prior on the level
            z = self.design_.transform(index.emb[prompt])
            theta = np.r_[self.coef_[code], self.intercept_[code]]  # where fit_glm stopped: its gradient is read
            cells = tab[lo:hi, 1:5].T
            cache[code] = (prompt, NewtonRows(z, rank, *cells, float(self.lam_[code]), b_prec, self.link, theta))
        return cache[code]

    def _hide_fitted(self, index, queries, code, hit, z, exclude, out):
        """Queries ``hit`` of fitted policy ``code`` answered without their own rows (:class:`NewtonRows`).

        The solve loses them by one Newton step; the prior offset ``off`` already hides them (:meth:`decision`
        reads the policy prior with ``hide=exclude`` for every query).
        """
        prompt, newton = self._newton_rows(index, code)
        qp = queries.prompt_row[hit]
        if exclude == "any_step":  # every step's cell of the prompt: one run of the sorted cells
            a, b = np.searchsorted(prompt, qp), np.searchsorted(prompt, qp, side="right")
        else:
            pos, ok = self._cell_pos(queries.policy[hit], qp, queries.step[hit])
            a = pos - np.searchsorted(self.loo_step_[:, 0], float(code * self.loo_n_prompts_ * len(self.loo_ustep_)))
            b = a + ok
        k = b - a
        owner = np.repeat(np.arange(len(hit)), k)
        cells = a[owner] + np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k)
        out[hit] -= newton.shift(z, cells, owner)

    def _own_weight(self, queries, exclude):
        """Each query's summed weight ``p (1 - p)`` of its own fitted rows (> 0: rows to hide; NewtonRows hides
        them). The tables' residual column (1) is kept in saved folders but read by nothing since NewtonRows."""
        m = len(queries)
        if exclude not in ("any_step", "same_step") or not hasattr(self, "loo_pair_"):
            return np.zeros(m)
        if exclude == "any_step":
            ok = (queries.prompt_row >= 0) & (queries.prompt_row < self.loo_n_prompts_)
            ok &= queries.policy < self.n_fitted_
            key = queries.policy.astype(np.int64) * self.loo_n_prompts_ + np.maximum(queries.prompt_row, 0)
            tab = self.loo_pair_
            pos = np.clip(np.searchsorted(tab[:, 0], key), 0, len(tab) - 1)
            hit = ok & (tab[pos, 0] == key)
            return np.where(hit, tab[pos, 2], 0.0)
        pos, hit = self._cell_pos(queries.policy, queries.prompt_row, queries.step)
        return np.where(hit, self.loo_step_[pos, 2], 0.0)

    # -- prediction --------------------------------------------------------------------------
    def _population(self):
        """``(w0, b0, precision, b_var)`` of the fitted policies (:func:`population_prior`), computed once."""
        if getattr(self, "_population_", None) is None:
            scale = float(self.params.get("pool_scale", 1.0))
            c = self.pool_codes()
            self._population_ = population_prior(self.coef_[c], self.intercept_[c], self._pool_scales()[0], scale=scale)
        return self._population_

    def _pool_scales(self):
        """``(lam, n_fit)``: the pool policies' median penalty (an added policy's isotropic prior) and row count."""
        c = self.pool_codes()
        return float(np.median(self.lam_[c])), float(np.median(self.lam_[c] / self.alpha_[c]))

    def _mix(self, index):
        """The pool-item mix (:func:`~v0lite.heads._pool_items.fit_mix`) or None; fitted once if saved without it."""
        if not self._uses_items():
            return None
        if not hasattr(self, "pool_mix_"):  # saved before the mix existed: fit it from the loaded history
            from ._pool_items import fit_mix

            self.pool_mix_ = fit_mix(self.decision, index, self.pool_codes())
        return self.pool_mix_

    def _in_context(self, index, code, step_cut):
        """Weights of a policy unseen at fit time, solved from its eligible history (cached per index).

        Keyed on the policy's eligible cut (:func:`~v0lite.heads._pool_items.eligible_cut`): every
        solve reads only the rows at or before it, so queries at any later step share it.
        """
        cache = index.__dict__.setdefault("_glm_context_cache", {})
        step_cut = int(eligible_cut(index, code, [step_cut])[0])
        pool = bool(self.params.get("pool_prior", True))
        mix = self._mix(index) if pool else None
        key = (id(self), int(code), int(step_cut), pool, mix is not None, like_key(self))
        if key not in cache:
            w0, b0, prec, b_var = self._population()
            lam, n_fit = self._pool_scales()
            like = fitted_like(self, index, code, step_cut, n_fit, items=mix is not None)
            if like is not None:  # a fitted policy's rows: read as auto's served member reads it
                cache[key] = like._in_context(index, code, step_cut)
            elif mix is not None and prec is not None:
                cache[key] = solve_on_items(self, index, code, step_cut, (w0, b0, prec, b_var), lam, n_fit)
            else:
                cache[key] = solve_in_context(
                    index,
                    code,
                    step_cut,
                    self.design_.transform,
                    w0,
                    b0,
                    lam,
                    self.link,
                    prior=(prec, b_var, n_fit) if pool else None,
                )
        return cache[key]

    def predict_unseen(self, index, queries):
        """A policy known only by its name: the pool's difficulty prior (issue 29).

        With the pool-item mix (``pool_items``, the default): the fitted policies' consensus and
        nearest-neighbour outcomes on each prompt, mixed as fitted leave one policy out
        (:mod:`~v0lite.heads._pool_items`). Otherwise the average fitted policy's weights (the
        centre of :func:`population_prior`) on the query prompts, at the population's mean
        success (:meth:`~v0lite.index.HistoryIndex.population`; the mean of all history with
        fewer than 3 policies). ``V0Regressor`` uses it for unknown policies under
        ``fallback="global_mean"``.
        """
        from ..index import _distinct_queries

        if not self.params.get("pool_prior", True):
            return np.full(len(queries), np.nan)
        first, inv = _distinct_queries(queries.emb, queries.prompt_row, queries.step)
        if self._mix(index) is not None:
            e, st, pr = queries.emb[first], queries.step[first], queries.prompt_row[first]
            return _sigmoid(pool_base(self, index, e, st, pr, "same_step")[inv])
        w0, b0, _, _ = self._population()
        lin = (self.design_.transform(queries.emb[first]) @ w0 + b0)[inv] + offset_of(
            np.full(len(queries), _unseen_level(index)), self.link
        )
        return np.clip(lin, 0.0, 1.0) if self.link == "identity" else _sigmoid(lin)

    def decision(self, index, queries, *, exclude="same_step"):
        """The linear predictor (logit, or the success rate itself for the identity link)."""
        from ..index import _distinct_queries

        first, inv = _distinct_queries(queries.emb, queries.prompt_row)
        zu = self.design_.transform(queries.emb[first])  # prompt-level work once per distinct prompt
        # hidden like every head's prior (the step rule): a fitted policy's rows added after fit are in no
        # table of its solve, so without this a query read its own (prompt, step) outcome through the offset
        prior = policy_prior(index, queries, hide=exclude)
        # no eligible row: the level predict_unseen gives a policy known only by its name
        off = offset_of(np.nan_to_num(prior, nan=_unseen_level(index)), self.link)
        out = np.zeros(len(queries))
        s_h = self._own_weight(queries, exclude)  # > 0: the query has own rows to hide
        for code in np.unique(queries.policy):
            qi = np.flatnonzero(queries.policy == code)
            cuts = eligible_cut(index, code, queries.step[qi])
            if code < self.n_fitted_ and not self._is_thin(code):
                # a query before the policy's first step reads none of its rows, and its weights were fitted
                # on later ones: it is answered below as a policy added later with no row yet is (the pool's
                # base, what predict_unseen says); a query between its steps keeps the all-steps weights
                early = cuts == NO_ROWS
                qi, cuts, seen = qi[early], cuts[early], qi[~early]
                ui, uinv = np.unique(inv[seen], return_inverse=True)
                out[seen] = (zu[ui] @ self.coef_[code])[uinv] + self.intercept_[code]
                hit = seen[s_h[seen] > 0]
                if hit.size and self.link == "identity":  # the ridge: its solve without the hidden rows, exactly
                    ex = exact_fitted(self, index, code)
                    hide_exactly(self, index, queries, hit, zu[inv[hit]], exclude, out, off, ex)
                elif hit.size:
                    self._hide_fitted(index, queries, code, hit, zu[inv[hit]], exclude, out)
                if not qi.size:
                    continue
            items = self.params.get("pool_prior", True) and self._mix(index) is not None
            if items:  # the pool's base replaces the policy-prior offset (added back below)
                qf, qinv = _distinct_queries(queries.emb[qi], queries.prompt_row[qi], queries.step[qi])
                g = qi[qf]
                base = pool_base(self, index, queries.emb[g], queries.step[g], queries.prompt_row[g], exclude)
                off[qi[cuts == NO_ROWS]] = 0.0  # no row yet: the base alone, bit for bit what predict_unseen says
                out[qi] = base[qinv] - off[qi]
            for cut in np.unique(cuts):  # one solve per eligible cut, not per query step
                qj = qi[cuts == cut]
                w, b, *rest = self._in_context(index, code, cut)
                if items:  # (1 - t) base + t prior: the fitted policies' own offset as its rows near theirs
                    out[qj] *= 1.0 - rest[0]
                out[qj] += zu[inv[qj]] @ w + b
                if len(rest) > 1 and rest[1] is not None:  # a query's own rows hidden from its solve too
                    out[qj] -= rest[1].correction(zu[inv[qj]], queries.prompt_row[qj], queries.step[qj], exclude)
                if self.link == "identity":  # the ridge: its solve without a query's own rows, exactly
                    hide_in_context(self, index, queries, qj, code, cut, zu[inv[qj]], exclude, out, off)
        return out + off

    def predict(self, index, queries, *, exclude="same_step"):
        lin = self.decision(index, queries, exclude=exclude)
        return np.clip(lin, 0.0, 1.0) if self.link == "identity" else _sigmoid(lin)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: Path) -> dict:
        from .._io import save_arrays

        save_arrays(
            Path(path) / f"{self.name}.safetensors",
            {
                "mean": self.design_.mean,
                "sd": self.design_.sd,
                "V": self.design_.V,
                "coef": self.coef_,
                "intercept": self.intercept_,
                "lam": self.lam_,
                "alpha": self.alpha_,
                "loo_pair": self.loo_pair_,
                "loo_step": self.loo_step_,
                "loo_ustep": self.loo_ustep_,
            },
        )
        mix = getattr(self, "pool_mix_", None)
        return {
            "params": self.params,
            "n_fitted": int(self.n_fitted_),
            "thin": [int(c) for c in np.flatnonzero(getattr(self, "thin_", np.zeros(0, bool)))],
            "loo_n_prompts": int(self.loo_n_prompts_),
            "pool_mix": None if mix is None else [float(x) for x in mix],
        }

    @classmethod
    def load(cls, path: Path, meta: dict):
        from .._io import load_arrays

        head = cls(**meta["params"])
        a = load_arrays(Path(path) / f"{cls.name}.safetensors")
        head.design_ = Design(a["mean"], a["sd"], a["V"])
        # a folder saved before NewtonRows also holds "hdiag" (the Gram-diagonal leverage's): nothing reads it
        head.coef_, head.intercept_ = a["coef"], a["intercept"]
        head.lam_, head.alpha_ = a["lam"], a["alpha"]
        head.loo_pair_, head.loo_step_, head.loo_ustep_ = a["loo_pair"], a["loo_step"], a["loo_ustep"]
        head.n_fitted_, head.loo_n_prompts_ = int(meta["n_fitted"]), int(meta["loo_n_prompts"])
        head.thin_ = thin_mask(meta.get("thin", []), head.n_fitted_)  # absent before thin policies existed: none
        if "pool_mix" in meta:  # absent in models saved before it existed: fitted on first use (_mix)
            mix = meta["pool_mix"]
            head.pool_mix_ = None if mix is None else np.asarray(mix, np.float64)
        return head


class RidgeHead(LogisticHead):
    """Per-policy ridge regression on the prompt embedding (:class:`LogisticHead` with the identity link).

    Examples
    --------
    >>> from v0lite import V0Regressor
    >>> model = V0Regressor(head="ridge")  # doctest: +SKIP
    """

    name = "ridge"
    link = "identity"

    def __init__(
        self,
        alphas=(1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0),
        n_folds=5,
        select="loss",
        n_jobs=1,
        pool_prior=True,
        pool_scale=1.0,
        pool_items=True,
    ):
        super().__init__(
            alphas=alphas,
            n_folds=n_folds,
            select=select,
            n_jobs=n_jobs,
            pool_prior=pool_prior,
            pool_scale=pool_scale,
            pool_items=pool_items,
        )


def _unseen_level(index):
    """A policy's success rate before any eligible row: the population's mean, else the history's.

    See :meth:`~v0lite.index.HistoryIndex.population`.
    """
    pop = index.population()
    return pop[0] if pop is not None else (float(index.score.mean()) if index.n_rows else 0.5)


def _row_queries(index, rows):
    from ..episodes import row_queries

    return row_queries(index, rows)
