"""Which prompts to evaluate next for a policy: a greedy I-optimal design at its current estimate (issue 29).

A policy's outcomes are informative where its predicted success is uncertain (Bernoulli
variance ``p (1 - p)``, the Fisher information of one outcome about its logit) and in
directions the outcomes it already has do not cover. Each candidate prompt gets an item vector
``phi``: the pool's average logit on it (difficulty) and how the pool's policies differ on it
(the fitted per-policy weights' deviations: the directions in which a new policy's ability is
solved); without a pool's view, its main topic directions (principal components of the
history's embeddings). Prompts are picked one at a time for the largest drop in the summed
predictive variance of every candidate (I-optimal), the information ``A`` being that of the
picks so far plus the policy's own history (as in anchor-point / tinyBenchmarks selection, Polo
et al. 2024), so the picks spread over difficulty and those directions instead of piling onto
the most uncertain region. Why not D-optimal (the gain in ``log det A``, ``criterion="d"``): it favours
extreme prompts, and on train-only CV (routerdc) 100 of its picks ranked a held-out model's
prompts worse than 100 I-optimal ones (0.653 vs 0.674).
"""

from __future__ import annotations

import numpy as np

from ._pool_items import pool_head

__all__ = ["item_features", "greedy_design", "warn_answered"]

_N_TOPICS = 4


def item_features(head, index, emb):
    """``phi`` of each prompt embedding in ``emb`` (rows), before standardisation.

    The directions a new policy's in-context solve moves along (:mod:`~v0lite.heads._pool_items`):
    the pool's difficulty and how each fitted policy departs from the average there. Topic
    directions (the history's principal components) stand in only without them (a head with no
    pool view, or fewer than two pool policies). Why: the solve has no free parameter along a
    topic beyond its weak isotropic prior, so spreading picks over topics spent outcomes on what
    it cannot learn from a few rows. With the topics added to the pool's directions, 10 and 30
    picks ranked a held-out model's test prompts at AUC 0.640 / 0.646 on RouterBench (random
    draws: 0.652 / 0.653) and 0.656 / 0.660 on routerdc-7model (random 0.658 / 0.660); without
    them 0.651 / 0.648 and 0.661 / 0.667 (benchmarks/RESULTS.md, onboarding; one pick per
    held-out model, three random draws).
    """
    emb = np.asarray(emb, np.float64)
    cols = []
    ph = pool_head(head)
    if ph is not None:
        z = ph.design_.transform(emb)
        w0, _, _, _ = ph._population()
        cols.append((z @ w0)[:, None])  # the average policy's logit: difficulty
        D = ph.coef_[ph.pool_codes()] - w0
        if len(D) >= 2:
            return np.column_stack(cols + [z @ D.T])  # how each fitted policy departs from the average
    E = np.asarray(index.emb[:: max(1, index.emb.shape[0] // 4000)], np.float64)
    mu = E.mean(0)
    _, _, Vt = np.linalg.svd(E - mu, full_matrices=False)
    cols.append((emb - mu) @ Vt[:_N_TOPICS].T)  # topic
    return np.column_stack(cols)


def greedy_design(phi, info, n, *, phi_seen=None, info_seen=None, ridge=1.0, criterion="i", random_state=0):
    """Indices of ``n`` rows of ``phi`` picked greedily for the largest information gain.

    ``criterion="i"``: the largest drop in the summed predictive variance of every candidate (on
    the probability scale), which favours prompts like many others; ``"d"``: the largest gain in
    ``log det`` of the information matrix, which favours extreme ones.

    ``info`` is each candidate's Fisher weight (``p (1 - p)``); ``phi_seen`` / ``info_seen``
    the outcomes already known (they start the information matrix, so a policy with history
    gets what refines it). Columns are standardised over the candidates; ties are broken by a
    seeded jitter far below any real difference.
    """
    phi = np.asarray(phi, np.float64)
    mu, sd = phi.mean(0), phi.std(0) + 1e-9
    X = np.column_stack([np.ones(len(phi)), (phi - mu) / sd])
    A = ridge * np.eye(X.shape[1])
    if phi_seen is not None and len(phi_seen):
        Xs = np.column_stack([np.ones(len(phi_seen)), (np.asarray(phi_seen, np.float64) - mu) / sd])
        A += (Xs * np.asarray(info_seen, np.float64)[:, None]).T @ Xs
    Ainv = np.linalg.inv(A)
    w = np.maximum(np.asarray(info, np.float64), 1e-4)
    jitter = np.random.default_rng(random_state).random(len(X)) * 1e-9
    free = np.ones(len(X), bool)
    S = (X * (w**2)[:, None]).T @ X / len(X)  # where predictions are asked: the candidates, on the p scale
    out = []
    for _ in range(min(n, len(X))):
        lev = np.einsum("ij,jk,ik->i", X, Ainv, X)
        if criterion == "d":  # log det: the gain is monotone in w * leverage
            gain = w * lev
        else:  # the drop in the candidates' summed predictive variance (I-optimal)
            M = X @ Ainv
            gain = w * np.einsum("ij,jk,ik->i", M, S, M) / (1.0 + w * lev)
        gain = gain + jitter
        gain[~free] = -np.inf
        i = int(np.argmax(gain))
        out.append(i)
        free[i] = False
        v = Ainv @ X[i]
        Ainv -= np.outer(v, v) * (w[i] / (1.0 + w[i] * X[i] @ v))  # Sherman-Morrison
    return out


def warn_answered(picks, fresh, policy):
    """Warn when some ``picks`` (candidate indices) are prompts ``policy`` already answered (``fresh`` False).

    They are ranked after every unanswered candidate, but a run spent on them re-measures what the
    history holds, and a caller reading only the picks would not know (``v0lite onboard`` said nothing).
    """
    import warnings

    from ..exceptions import V0liteWarning

    again = sum(1 for i in picks if not fresh[i])
    if again:
        warnings.warn(
            f"{again} of the {len(picks)} picks already have outcomes for {policy!r} in the history (every "
            "candidate without one was picked first). Fix: pass candidates it has not answered, or ask for fewer.",
            V0liteWarning,
            stacklevel=3,
        )
