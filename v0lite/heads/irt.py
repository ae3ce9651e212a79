"""Multidimensional IRT head: a prompt's item vector from its embedding, a policy's ability vector.

``logit p(policy, prompt) = offset(policy, step) + b_policy + theta_policy . phi(prompt)``, with
``phi`` a small MLP of the prompt embedding (``384 -> hidden -> dim``) shared by every policy and
``offset`` the policy's prior (as in :mod:`~v0lite.heads.logistic`). All policies are trained
jointly with the log loss (soft labels), so ``phi`` learns the directions along which policies
*differ* on a prompt -- what an argmax router reads -- and every policy's prediction shares
the evidence of the others (a per-policy regression sees its own rows only).

The model is a cross-fitted bag: one network per prompt fold, trained on the other folds with
early stopping on a tenth of its own training prompts. Predictions average the networks;
a query whose own row was trained on (the ``exclude`` rule) is answered by the one network
that never saw its prompt, so out-of-fold scores and hidden-row predictions are exact. A policy
first seen through ``add_history`` gets its ability vector solved in context from its history
(Newton steps on ``phi``, penalised toward the fitted policies' mean): no weight update.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..exceptions import DataError, ParameterError, V0liteError
from ._deviation import OwnRows
from .base import BaseHead
from .logistic import group_means, offset_of, population_prior, solve_in_context
from .prior import policy_prior

__all__ = ["IRTHead"]

_LAYERS = ("W1", "b1", "W2", "b2", "theta", "bias")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def _phi(net, E):
    """The item vectors of embeddings ``E`` under one network (numpy; exact GELU, as torch's default)."""
    from scipy.special import erf

    h = np.asarray(E, np.float64) @ net["W1"].T + net["b1"]
    h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))
    return h @ net["W2"].T + net["b2"]


class IRTHead(BaseHead):
    """Multidimensional IRT on the prompt embedding: item vectors by an MLP, ability vectors per policy.

    Parameters
    ----------
    dim : int, default 32
        Dimensions of the item / ability vectors.
    hidden : int, default 256
        Width of the MLP's hidden layer.
    dropout : float, default 0.3
        Dropout on the embedding and on the hidden layer while training.
    n_folds : int, default 5
        Prompt folds, one network each (the bag).
    lr, weight_decay : float, default 2e-3, 1e-4
        AdamW.
    batch_size : int, default 256
        Prompts per step (with all their rows).
    max_epochs, patience : int, default 200, 10
        Early stopping on the held-out log loss of a tenth of each network's training prompts.
    context_l2 : float, default 10.0
        Penalty (in rows' worth of evidence) pulling a policy solved in context toward the fitted
        policies' mean ability vector, beside the fitted policies' spread of abilities
        (:func:`~v0lite.heads.logistic.population_prior`: it moves freely along the directions
        in which they differ).
    n_jobs : int, default 1
        Torch threads while training (restored afterwards).

    Attributes
    ----------
    nets_ : list of dict
        Each fold's network as numpy arrays.
    oof_ : ndarray (n_rows,)
        Out-of-fold predicted probability of every training row (its prompt's fold network).
    epochs_ : list of int
        The early-stopped epoch count of each network.

    Examples
    --------
    >>> from v0lite import V0Regressor
    >>> model = V0Regressor(head="irt")  # doctest: +SKIP
    """

    name = "irt"

    def __init__(
        self,
        dim=32,
        hidden=256,
        dropout=0.3,
        n_folds=5,
        lr=2e-3,
        weight_decay=1e-4,
        batch_size=256,
        max_epochs=200,
        patience=10,
        context_l2=10.0,
        n_jobs=1,
    ):
        super().__init__(
            dim=dim,
            hidden=hidden,
            dropout=dropout,
            n_folds=n_folds,
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            max_epochs=max_epochs,
            patience=patience,
            context_l2=context_l2,
            n_jobs=n_jobs,
        )

    def _validate(self):
        p = self.params
        for k in ("dim", "hidden", "batch_size", "max_epochs", "patience", "n_jobs"):
            if isinstance(p[k], bool) or int(p[k]) != p[k] or p[k] < 1:
                raise ParameterError(f"irt head: {k} must be an int >= 1, got {p[k]!r}.")
        if isinstance(p["n_folds"], bool) or int(p["n_folds"]) != p["n_folds"] or p["n_folds"] < 2:
            raise ParameterError(f"irt head: n_folds must be an int >= 2, got {p['n_folds']!r}.")
        if not 0.0 <= float(p["dropout"]) < 1.0:
            raise ParameterError(f"irt head: dropout must be in [0, 1), got {p['dropout']!r}.")
        for k in ("lr", "context_l2"):
            if not float(p[k]) > 0:
                raise ParameterError(f"irt head: {k} must be > 0, got {p[k]!r}.")
        if not float(p["weight_decay"]) >= 0:
            raise ParameterError(f"irt head: weight_decay must be >= 0, got {p['weight_decay']!r}.")

    # -- training ------------------------------------------------------------------------------
    def fit(self, index, *, random_state=0, show_progress_bar=False, folds=None):
        """Fit one network per prompt fold; ``folds`` (fold id per prompt) overrides the folds."""
        import torch

        self._validate()
        prev = torch.get_num_threads()
        torch.set_num_threads(int(self.params["n_jobs"]))
        try:
            return self._fit(index, random_state, folds, show_progress_bar)
        finally:
            torch.set_num_threads(prev)

    def _fit(self, index, random_state, folds, show_progress_bar):
        from .._folds import prompt_folds
        from .._progress import bar
        from ._training import check_enough_prompts

        if index.n_rows == 0:
            raise V0liteError("irt head: the history is empty. Fix: fit on a log with outcomes.")
        check_enough_prompts(index, "irt")
        n_prompts, n_pol = len(index.keys), len(index.policies)
        pr, pol = index.prompt_row, index.policy.astype(np.int64)
        fold = prompt_folds(n_prompts, int(self.params["n_folds"]), random_state + 1) if folds is None else folds
        fold = np.asarray(fold, np.int64)
        rng = np.random.default_rng(random_state)
        self.nets_, self.epochs_, self.net_folds_ = [], [], []
        oof = np.full(index.n_rows, np.nan)
        for f in bar(np.unique(fold[pr]), desc="irt folds", unit="net", enabled=show_progress_bar):
            te = np.flatnonzero(fold[pr] == f)
            tr = np.flatnonzero(fold[pr] != f)
            if len(tr) == 0:
                continue
            off = offset_of(group_means(index, tr), "logit")
            net, ep = self._train(index, tr, off, n_pol, rng)
            self.nets_.append(net)
            self.epochs_.append(ep)
            self.net_folds_.append(int(f))
            oof[te] = _sigmoid(self._logits(net, index.emb[pr[te]], pol[te]) + off[te])
        if not self.nets_:
            raise DataError(
                f"head 'irt': every prompt of the history ({len(np.unique(pr))} distinct) fell in one fold, so no "
                "network has training prompts; it holds prompt folds out of each network, so it needs at least 2 "
                "distinct prompts. Fix: fit on a log with more distinct prompts, or choose a head that holds none "
                "out (head='knn', 'prior', 'linear' or 'logistic')."
            )
        self.oof_ = oof  # with two or more folds holding rows, every fold has its network: no gap
        self.fold_of_prompt_ = fold
        self.n_fitted_ = n_pol
        self._pair_tables(index)
        return self

    def _train(self, index, rows, off, n_pol, rng):
        import torch

        p = self.params
        seed = int(rng.integers(2**31 - 1))
        torch.manual_seed(seed)
        pr, pol, y = index.prompt_row[rows], index.policy[rows].astype(np.int64), index.score[rows]
        prompts = np.unique(pr)
        n_val = max(1, len(prompts) // 10) if len(prompts) >= 20 else 0
        val_prompts = rng.choice(prompts, n_val, replace=False) if n_val else prompts[:0]
        is_val = np.isin(pr, val_prompts)
        # rows grouped by prompt, so a batch of prompts gathers its rows with one repeat
        order = np.argsort(pr, kind="stable")
        order = order[~is_val[order]]
        cnt = np.bincount(pr[order], minlength=len(index.keys))
        start = np.cumsum(cnt) - cnt
        train_prompts = np.flatnonzero(cnt)
        d_in = index.emb.shape[1]
        drop = float(p["dropout"])
        trunk = torch.nn.Sequential(
            torch.nn.Dropout(drop),
            torch.nn.Linear(d_in, int(p["hidden"])),
            torch.nn.GELU(),
            torch.nn.Dropout(drop),
            torch.nn.Linear(int(p["hidden"]), int(p["dim"])),
        )
        theta = torch.nn.Linear(int(p["dim"]), n_pol)
        params = list(trunk.parameters()) + list(theta.parameters())
        opt = torch.optim.AdamW(params, lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
        E = torch.from_numpy(np.ascontiguousarray(index.emb, np.float32))
        Y = torch.from_numpy(y.astype(np.float32))
        O = torch.from_numpy(off[rows].astype(np.float32))
        Pt = torch.from_numpy(pol)
        loc = {int(q): i for i, q in enumerate(val_prompts)}
        v_rows = np.flatnonzero(is_val)
        v_lp = torch.from_numpy(np.array([loc[int(q)] for q in pr[v_rows]], np.int64))
        v_E = E[torch.from_numpy(val_prompts.astype(np.int64))]
        v_rows_t = torch.from_numpy(v_rows)

        def logits(Eb, lp, r):
            phi = trunk(Eb)[lp]
            w = theta.weight[Pt[r]]
            return (phi * w).sum(1) + theta.bias[Pt[r]] + O[r]

        best, best_state, bad, best_ep = np.inf, None, 0, 0
        bs = int(p["batch_size"])
        ep = 0
        for ep in range(1, int(p["max_epochs"]) + 1):
            trunk.train()
            perm = rng.permutation(train_prompts)
            for s in range(0, len(perm), bs):
                B = perm[s : s + bs]
                c = cnt[B]
                tot = int(c.sum())
                rel = np.arange(tot) - np.repeat(np.cumsum(c) - c, c)
                r = torch.from_numpy(order[np.repeat(start[B], c) + rel])
                lp = torch.from_numpy(np.repeat(np.arange(len(B)), c))
                z = logits(E[torch.from_numpy(B)], lp, r)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(z, Y[r])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if not n_val:
                best_ep = ep
                continue
            trunk.eval()
            with torch.no_grad():
                vl = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits(v_E, v_lp, v_rows_t), Y[v_rows_t]
                ).item()
            if vl < best - 1e-5:
                best, bad, best_ep = vl, 0, ep
                best_state = [t.detach().clone() for t in params]
            else:
                bad += 1
                if bad >= int(p["patience"]):
                    break
        if best_state is not None:
            with torch.no_grad():
                for t, b in zip(params, best_state):
                    t.copy_(b)
        lin1, lin2 = trunk[1], trunk[4]
        net = {
            "W1": lin1.weight.detach().numpy().astype(np.float64),
            "b1": lin1.bias.detach().numpy().astype(np.float64),
            "W2": lin2.weight.detach().numpy().astype(np.float64),
            "b2": lin2.bias.detach().numpy().astype(np.float64),
            "theta": theta.weight.detach().numpy().astype(np.float64),
            "bias": theta.bias.detach().numpy().astype(np.float64),
        }
        # a policy with no training rows in this fold keeps its random start: use the others' mean
        seen = np.bincount(pol, minlength=n_pol) > 0
        if seen.any() and not seen.all():
            net["theta"][~seen] = net["theta"][seen].mean(0)
            net["bias"][~seen] = net["bias"][seen].mean()
        return net, best_ep

    @staticmethod
    def _logits(net, E, code):
        return (_phi(net, E) * net["theta"][code]).sum(1) + net["bias"][code]

    def _pair_tables(self, index):
        """Sorted keys of the fitted (policy, prompt) and (policy, prompt, step) rows, for ``exclude``."""
        n_prompts = len(index.keys)
        k1 = index.policy.astype(np.int64) * n_prompts + index.prompt_row
        self.pair_keys_ = np.unique(k1)
        self.ustep_, srank = np.unique(index.step, return_inverse=True)
        self.step_keys_ = np.unique(k1 * len(self.ustep_) + srank)
        self.n_prompts_ = n_prompts

    def _hidden(self, queries, exclude):
        """Queries whose own row was trained on and must be hidden (answered by their fold's network)."""
        m = len(queries)
        if exclude not in ("any_step", "same_step"):
            return np.zeros(m, bool)
        ok = (queries.prompt_row >= 0) & (queries.prompt_row < self.n_prompts_) & (queries.policy < self.n_fitted_)
        ok &= queries.policy >= 0
        key = queries.policy.astype(np.int64) * self.n_prompts_ + np.maximum(queries.prompt_row, 0)
        if exclude == "any_step":
            tab = self.pair_keys_
        else:
            ns = len(self.ustep_)
            rank = np.clip(np.searchsorted(self.ustep_, queries.step), 0, ns - 1)
            ok &= self.ustep_[rank] == queries.step
            key = key * ns + rank
            tab = self.step_keys_
        pos = np.clip(np.searchsorted(tab, key), 0, max(len(tab) - 1, 0))
        return ok & (len(tab) > 0) & (tab[pos] == key)

    # -- prediction ----------------------------------------------------------------------------
    def _in_context(self, index, j, code, step_cut):
        """``(w, b, own)``: ability vector of a policy unseen at fit time under network ``j`` (cached per index).

        ``own`` (:class:`~v0lite.heads._deviation.OwnRows`, None without rows) hides a query's own rows
        from that solve, one Newton step as the logistic head's added policies do.
        """
        from ._pool_items import eligible_cut

        cache = index.__dict__.setdefault("_irt_context_cache", {})
        # keyed on the eligible cut: every solve reads the rows at or before it, whatever the query's step
        step_cut = int(eligible_cut(index, code, [step_cut])[0])
        key = (id(self), j, int(code), step_cut)
        if key not in cache:
            net = self.nets_[j]
            lam = float(self.params["context_l2"])
            # the fitted policies' abilities as the prior (issue 29's shared mechanism, as in the logistic head)
            w0, b0, prec, b_var = population_prior(net["theta"][: self.n_fitted_], net["bias"][: self.n_fitted_], lam)
            w, b = solve_in_context(index, code, step_cut, lambda e: _phi(net, e), w0, b0, lam, prior=(prec, b_var))
            cache[key] = (w, b, self._own_rows(index, net, code, step_cut, w, b, lam, prec, b_var))
        return cache[key]

    @staticmethod
    def _own_rows(index, net, code, step_cut, w, b, lam, prec, b_var):
        """:class:`OwnRows` of :func:`solve_in_context`'s solution: its rows, offsets and prior, as it solved them."""
        rows = np.flatnonzero((index.policy == code) & (index.step <= step_cut))
        if not len(rows):
            return None
        Z = _phi(net, index.emb[index.prompt_row[rows]])
        y = index.score[rows]
        if prec is not None:
            base = index.recent_prior(int(code), index.step[rows])
            off = offset_of(np.nan_to_num(base, nan=float(y.mean())), "logit")
        else:  # fewer than 3 fitted policies: the isotropic pull, an unpenalised level
            off = offset_of(group_means(index, rows)[rows], "logit")
            prec, b_var = lam * np.eye(Z.shape[1]), 1e12
        p = _sigmoid(Z @ w + b + off)
        return OwnRows(Z, y, p, index.prompt_row[rows], index.step[rows], prec, b_var)

    def _hidden_offsets(self, index, queries, idx, exclude):
        """The prior offset of queries ``idx`` with their own rows hidden (``exclude``), as their networks read it."""
        from ..index import hidden_prior

        return offset_of(hidden_prior(index, queries.subset(idx), exclude), "logit")

    def predict(self, index, queries, *, exclude="same_step"):
        from ..index import _distinct_queries

        m = len(queries)
        if m == 0:
            return np.zeros(0)
        first, inv = _distinct_queries(queries.emb, queries.prompt_row)
        # the step rule: a query's own rows added after fit (in no table of the fit) leave its prior too
        prior = policy_prior(index, queries, hide=exclude)
        off = offset_of(np.nan_to_num(prior, nan=float(index.score.mean()) if index.n_rows else 0.5), "logit")
        code = queries.policy.astype(np.int64)
        known = (code >= 0) & (code < self.n_fitted_)
        P = np.zeros((len(self.nets_), m))
        Zs = np.zeros((len(self.nets_), m))
        own = np.zeros(m, bool)  # queries of a policy solved in context whose own rows that solve read
        for j, net in enumerate(self.nets_):
            phi = _phi(net, queries.emb[first])  # prompt-level work once per distinct prompt
            z = np.zeros(m)
            k = np.flatnonzero(known)
            z[k] = (phi[inv[k]] * net["theta"][code[k]]).sum(1) + net["bias"][code[k]]
            for c in np.unique(code[~known]):
                qi = np.flatnonzero(code == c)
                for cut in np.unique(queries.step[qi]):
                    qj = qi[queries.step[qi] == cut]
                    w, b, rows = self._in_context(index, j, c, cut)
                    z[qj] = phi[inv[qj]] @ w + b
                    if rows is not None and exclude in ("any_step", "same_step"):
                        corr = rows.correction(phi[inv[qj]], queries.prompt_row[qj], queries.step[qj], exclude)
                        z[qj] -= corr
                        own[qj] |= corr != 0
            Zs[j] = z
            P[j] = _sigmoid(z + off)
        out = P.mean(0)
        hid = np.flatnonzero(self._hidden(queries, exclude))
        if hid.size:
            # the network that never saw the prompt, at the policy's prior without the hidden rows either
            net_of_fold = {f: j for j, f in enumerate(self.net_folds_)}
            j = np.array([net_of_fold.get(int(f), -1) for f in self.fold_of_prompt_[queries.prompt_row[hid]]])
            have = j >= 0
            out[hid[have]] = _sigmoid(Zs[j[have], hid[have]] + self._hidden_offsets(index, queries, hid[have], exclude))
        own = np.flatnonzero(own)
        if own.size:  # an added policy's query: its solve's own rows stepped out above, its prior's here
            out[own] = _sigmoid(Zs[:, own] + self._hidden_offsets(index, queries, own, exclude)).mean(0)
        return out

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: Path) -> dict:
        from .._io import save_arrays

        arrays = {f"net{j}_{k}": net[k] for j, net in enumerate(self.nets_) for k in _LAYERS}
        arrays.update(
            fold_of_prompt=self.fold_of_prompt_,
            pair_keys=self.pair_keys_,
            step_keys=self.step_keys_,
            ustep=self.ustep_,
        )
        save_arrays(Path(path) / "irt.safetensors", arrays)
        return {
            "params": self.params,
            "n_nets": len(self.nets_),
            "net_folds": [int(f) for f in self.net_folds_],
            "epochs": [int(e) for e in self.epochs_],
            "n_fitted": int(self.n_fitted_),
            "n_prompts": int(self.n_prompts_),
        }

    @classmethod
    def load(cls, path: Path, meta: dict):
        from .._io import load_arrays

        head = cls(**meta["params"])
        a = load_arrays(Path(path) / "irt.safetensors")
        head.nets_ = [{k: a[f"net{j}_{k}"] for k in _LAYERS} for j in range(int(meta["n_nets"]))]
        head.net_folds_ = list(meta["net_folds"])
        head.epochs_ = list(meta["epochs"])
        head.fold_of_prompt_ = a["fold_of_prompt"]
        head.pair_keys_, head.step_keys_, head.ustep_ = a["pair_keys"], a["step_keys"], a["ustep"]
        head.n_fitted_, head.n_prompts_ = int(meta["n_fitted"]), int(meta["n_prompts"])
        head._validate()  # the check fit runs, on the saved parameters
        dim, hidden = int(head.params["dim"]), int(head.params["hidden"])
        for net in head.nets_:  # the saved sizes must be the networks' (a dim of 10^9 would pass _validate)
            if net["W1"].shape[0] != hidden or net["W2"].shape != (dim, hidden) or net["theta"].shape[1:] != (dim,):
                raise ValueError(
                    f"irt head: saved dim={dim}, hidden={hidden} do not match its networks "
                    f"(W1 {net['W1'].shape}, W2 {net['W2'].shape}, theta {net['theta'].shape})"
                )
        return head
