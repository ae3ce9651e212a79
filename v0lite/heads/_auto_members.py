"""The auto head's members that take more than a line to fit: the learned generalists and the logistic member.

:func:`fit_learned` fits gbdt and the transformer on one shared training set and predicts the
comparison's first fold cold from the other folds; :func:`fit_logistic` fits the per-policy
logistic member on every row (its out-of-fold predictions on the comparison's folds), both as a
candidate and as the member ``auto`` keeps for policies it did not fit (its pool prior).
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_learned", "fit_logistic"]

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
