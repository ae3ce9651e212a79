"""LightGBM on context features: one generalist model for every policy."""

from __future__ import annotations

from pathlib import Path

from ..features import compute_features, fit_pca
from ._training import build_training_set
from .base import BaseHead

__all__ = ["GBDTHead"]


class GBDTHead(BaseHead):
    """Gradient-boosted trees (LightGBM, cross-entropy on success rates) over context features.

    Trained on leakage-free episodes from all policies (see :mod:`v0lite.episodes`), so it
    learns how to read a history, not a particular policy. The number of trees is chosen by
    early stopping on held-out prompts, then the model is refitted on all episodes.

    Parameters
    ----------
    n_estimators : int, default 600
        Upper bound on boosting rounds.
    learning_rate : float, default 0.03
    num_leaves : int, default 15
    min_child_samples : int, default 40
    n_folds : int, default 5
        Prompt folds of the cold episodes.
    max_rows : int, default 100000
        Query rows per episode at most (subsampled, seeded).
    pca_components : int, default 8
    k : int, default 32
        Own-policy neighbours read per query.
    n_jobs : int, default 1
        LightGBM threads. One thread is the robust default: OpenMP threads spin and slow down
        by several times when the cores are shared with other work (measured here: 8x).

    Examples
    --------
    >>> from v0lite import V0Regressor
    >>> model = V0Regressor(head="gbdt")  # doctest: +SKIP
    """

    name = "gbdt"

    def __init__(
        self,
        n_estimators=600,
        learning_rate=0.03,
        num_leaves=15,
        min_child_samples=40,
        n_folds=5,
        max_rows=100000,
        pca_components=8,
        k=32,
        n_jobs=1,
    ):
        super().__init__(
            n_estimators=n_estimators,
            learning_rate=learning_rate,
            num_leaves=num_leaves,
            min_child_samples=min_child_samples,
            n_folds=n_folds,
            max_rows=max_rows,
            pca_components=pca_components,
            k=k,
            n_jobs=n_jobs,
        )

    def _lgb_params(self, random_state):
        p = self.params
        return {
            "objective": "cross_entropy",
            "learning_rate": p["learning_rate"],
            "num_leaves": p["num_leaves"],
            "min_data_in_leaf": p["min_child_samples"],
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
            "seed": random_state,
            "deterministic": True,
            "num_threads": p["n_jobs"],
            "verbosity": -1,
            "force_row_wise": True,
        }

    def fit(self, index, *, random_state=0, show_progress_bar=False):
        p = self.params
        self.pca_ = fit_pca(index.emb, p["pca_components"], random_state) if p["pca_components"] else None
        ts = build_training_set(
            index,
            n_folds=p["n_folds"],
            max_rows=p["max_rows"],
            pca=self.pca_,
            k=p["k"],
            random_state=random_state,
            show_progress_bar=show_progress_bar,
            head="gbdt",
        )
        from .._progress import stage

        with stage("fit: gbdt", enabled=show_progress_bar):
            return self.fit_training_set(ts, random_state=random_state)

    def fit_training_set(self, ts, *, random_state=0, refit=True):
        """Fit on a prepared :class:`~v0lite.heads._training.TrainingSet`.

        Sets ``val_pred_``: predictions on the held-out prompts of a model trained without
        them (used for early stopping here, and for stacking by the ensemble). With
        ``refit=False`` that early-stopped model is kept instead of one refitted on every row.
        """
        import lightgbm as lgb

        p = self.params
        self.feature_names_ = ts.names
        params = self._lgb_params(random_state)
        X, y, val = ts.X, ts.y, ts.val
        n_rounds = p["n_estimators"]
        self.val_pred_ = None
        if val.sum() >= 50 and (~val).sum() >= 50:
            dtr = lgb.Dataset(X[~val], y[~val], free_raw_data=False)
            dva = lgb.Dataset(X[val], y[val], reference=dtr)
            b = lgb.train(
                params, dtr, p["n_estimators"], valid_sets=[dva], callbacks=[lgb.early_stopping(50, verbose=False)]
            )
            n_rounds = max(int(b.best_iteration or p["n_estimators"]), 20)
            self.val_pred_ = b.predict(X[val], num_iteration=n_rounds)
        if refit or self.val_pred_ is None:
            self.booster_ = lgb.train(params, lgb.Dataset(X, y), n_rounds)
        else:  # keep the early-stopped model: the one whose held-out predictions were seen
            self.booster_ = b
        self.n_rounds_ = n_rounds
        return self

    def features(self, index, queries, exclude="same_step", *, search="numpy"):
        return compute_features(index, queries, exclude, pca=self.pca_, k=self.params["k"], search=search)[0]

    def predict(self, index, queries, *, exclude="same_step", fit_paths=False):
        """``fit_paths``: compute the features as fitting does (faiss), for auto's out-of-fold comparison."""
        return self.booster_.predict(self.features(index, queries, exclude, search="faiss" if fit_paths else "numpy"))

    def save(self, path: Path) -> dict:
        from .._io import save_arrays

        path = Path(path)
        (path / "gbdt.txt").write_text(self.booster_.model_to_string(), encoding="utf-8")
        if self.pca_ is not None:
            save_arrays(path / "gbdt_pca.safetensors", {"mean": self.pca_[0], "components": self.pca_[1]})
        return {
            "params": self.params,
            "feature_names": self.feature_names_,
            "n_rounds": self.n_rounds_,
            "has_pca": self.pca_ is not None,
        }

    @classmethod
    def load(cls, path: Path, meta: dict):
        import lightgbm as lgb

        from .._io import load_arrays
        from ._lgb_text import check_lightgbm_text

        path = Path(path)
        head = cls(**meta["params"])
        names = meta["feature_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"feature_names must be a list of names, got {type(names).__name__}")
        # checked first: LightGBM ends the process (no exception) on some malformed trees
        text = check_lightgbm_text((path / "gbdt.txt").read_bytes(), len(names), path / "gbdt.txt")
        head.booster_ = lgb.Booster(model_str=text)
        head.feature_names_ = names
        head.n_rounds_ = meta["n_rounds"]
        head.pca_ = None
        if meta.get("has_pca"):
            a = load_arrays(path / "gbdt_pca.safetensors")
            head.pca_ = (a["mean"], a["components"])
        return head
