"""The auto head's members that take more than a line to fit: the learned generalists and the logistic member.

:func:`fit_learned` fits gbdt and the transformer on one shared training set and predicts the
comparison's first fold cold from the other folds; :func:`fit_logistic` fits the per-policy
logistic member on every row (its out-of-fold predictions on the comparison's folds), both as a
candidate and as the member ``auto`` keeps for policies it did not fit (its pool prior), and
:func:`keep_pool_member` says which logistic head that is.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_learned", "fit_logistic", "keep_pool_member"]

# gbdt inside auto: fewer query rows per episode and faster trees than the standalone head, so
# that the whole fit stays within a few logistic-regression fits on large logs
_GBDT_DEFAULTS = {"max_rows": 5000, "n_estimators": 400, "learning_rate": 0.06}


def fit_logistic(index, n_folds, folds, routing_like, random_state):
    """The logistic member on every row (its out-of-fold predictions on the comparison's ``folds``)."""
    from .logistic import LogisticHead

    lg = LogisticHead(n_folds=n_folds, select="pairwise" if routing_like else "loss")
    return lg.fit(index, random_state=random_state, folds=folds)


def fit_learned(index, folds, random_state, names, params):
    """The learned members on one shared training set; their cold predictions of the first fold's rows."""
    from ..episodes import row_queries, subindex
    from ..features import fit_pca
    from ._training import build_training_set
    from .gbdt import GBDTHead
    from .transformer import _XP_WIDTH, TransformerHead

    gb = GBDTHead(**{**_GBDT_DEFAULTS, **params["gbdt_params"]})
    gp = gb.params
    pca = fit_pca(index.emb, gp["pca_components"], random_state) if gp["pca_components"] else None
    ts = build_training_set(
        index,
        n_folds=gp["n_folds"],
        max_rows=gp["max_rows"],
        pca=pca,
        k=gp["k"],
        with_context="transformer" in names,
        xp_width=_XP_WIDTH,
        random_state=random_state,
    )
    ts.val = folds[ts.prompt_row] == 0  # early stopping on the comparison's first fold
    # every first-fold row is predicted cold from the other folds, not only the rows the episodes
    # sampled: the comparison then runs on the same rows whatever ``max_rows`` is (at 5,000 rows
    # per episode it had half the rows, and the routerdc choice flipped between logistic and kNN)
    in0 = folds[index.prompt_row] == 0
    te = np.flatnonzero(in0)
    ctx, q = subindex(index, np.flatnonzero(~in0)), row_queries(index, te)
    out = {}
    for name in names:
        if name == "gbdt":
            head = gb
            head.pca_ = pca
            head.fit_training_set(ts, random_state=random_state, refit=False)
        else:
            head = TransformerHead(
                **{
                    "n_folds": gp["n_folds"],
                    "max_rows": gp["max_rows"],
                    "k": gp["k"],
                    "pca_components": gp["pca_components"],
                    **params["transformer_params"],
                }
            )
            head.pca_ = pca
            head.fit_training_set(ts, index.emb, random_state=random_state)
        if head.val_pred_ is None:
            out[name] = (None, None, head)
        else:
            # the paths fitting uses (faiss, the layer call): the comparison and its stacker read
            # exactly the predictions they always did; predict() then takes the faster paths
            out[name] = (te, head.predict(ctx, q, exclude="same_step", fit_paths=True), head)
    return out


def _loss_chosen(lg):
    """Whether logistic head ``lg``'s penalties are each policy's own held-out loss choice."""
    if lg.params["select"] == "loss":
        return True
    return bool(np.array_equal(lg.alpha_, np.asarray(lg.params["alphas"])[np.argmin(lg.cv_loss_, axis=0)]))


def keep_pool_member(index, heads, served, members, folds, n_folds, random_state):
    """``(key, head)``: the logistic head ``auto`` keeps for policies it did not fit, or ``(None, None)``.

    With :data:`~v0lite.heads._pool_items.MIN_POLICIES` or more policies, a served head without
    the logistic member (a stack that weighed it 0, another winner, the ensemble) would leave a
    policy known only by its name at the mean of all history: the pool's difficulty prior is the
    logistic head's. So one fitted on every row is kept, under "logistic" when none is served.

    Its penalty is each policy's own held-out loss choice, even on a routing log, where the member
    that competes to be served (``heads["logistic"]``) takes one penalty for every policy by the
    pairwise choice: the pool's base is the *average* fitted policy, and a new model's outcomes are
    predicted, not compared. On routerdc-7model's official split the loss choice raised a held-out
    model's within-model AUC at n = 0 from 0.650 to 0.654 (RouterBench 0.650 to 0.651), and at
    every n up to 300 added rows (benchmarks/onboarding.py). So when a served logistic member's
    penalties are not the loss choice, a second one is kept under "pool"; the competing member is
    reused when they are. ``served``/``members``: the auto head's ``heads_`` and ``members_``.
    """
    from ._pool_items import MIN_POLICIES

    if len(index.policies) < MIN_POLICIES:
        return None, None
    lg = heads.get("logistic")
    if lg is None or not _loss_chosen(lg):
        lg = fit_logistic(index, n_folds, folds, False, random_state)
    if served.get("logistic") is lg:  # the served member reads them itself
        return None, None
    return ("pool" if "logistic" in members else "logistic"), lg
