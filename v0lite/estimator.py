"""``V0Regressor``: the scikit-learn face of v0lite (embed -> index -> head)."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, RegressorMixin

from . import _model_params as _mp
from ._log_warnings import near_names, unknown_policy_error, warn_fallback_names, warn_new_names
from ._model_params import FALLBACKS, SEED_MAX, _check_seed  # noqa: F401 (SEED_MAX: re-exported)
from ._registry import normalise
from ._threads import WriterLockMixin, writer_lock
from .embed import Embedder, prompt_keys
from .exceptions import DataError, NotFittedError, ParameterError, V0liteError, V0liteWarning
from .heads._params import plain
from .heads.base import get_head_class, make_head
from .index import HistoryIndex, Queries, policy_prior
from .log import _prompt_list, _with_y, as_frame, check_policy_name, validate_log

__all__ = ["V0Regressor", "FALLBACKS"]

_QUERY_COLUMNS = ("policy", "prompt", "step")
_STEP_LATEST = np.iinfo(np.int64).max


#: the parameters the head and index are fitted with (the others are read at predict time)
_FIT_PARAMS = ("head", "encoder", "k", "head_params", "random_state")


def _canonical_order(df: pl.DataFrame) -> pl.DataFrame:
    """The history's rows in one order whatever order they came in (policy, prompt, step, score, n): every
    head, fold assignment and subsample then sees the same rows in the same places, so predictions do not
    depend on the history's row order."""
    cols = [c for c in ("policy", "prompt", "step", "score", "n") if c in df.columns]
    return df.sort(cols, maintain_order=True)


class V0Regressor(WriterLockMixin, RegressorMixin, BaseEstimator):
    """Predict a policy's success rate on a prompt from that policy's history.

    The policy's capability is context, not weights: ``fit`` indexes the histories and
    trains the head on how to read them; ``add_history`` adds outcomes (also of new
    policies) without touching any learned parameter.

    Parameters
    ----------
    head : str, default "auto"
        One of ``v0lite.heads.HEADS``: "auto" (compares the simple predictors and, except on a
        routing log, gbdt out of fold on the history and uses the best or their stack), "prior", "knn", "linear",
        "logistic", "ridge", "irt", "gbdt", "transformer", "ensemble", "neural".
    encoder : str or object, optional
        Sentence-transformers name/path, or an object with ``encode(list[str])``.
        Default: the offline all-MiniLM-L6-v2. An object's vectors are cached on disk under its
        ``model_id`` attribute; a ``SentenceTransformer`` is known by the model it was loaded from;
        any other object without ``model_id`` is cached in memory only (see :class:`v0lite.embed.Embedder`).
        A fitted model embeds new prompts only with the encoder it was fitted with (another is an error).
        It embeds for retrieval; the ``neural`` head reads tokens with its own ``head_params['encoder_model']``
        (default: the packaged MiniLM), whatever ``encoder`` is.
    k : int, default 32
        Neighbours retrieved per query for the "knn" head (k chosen by cross-validation:
        ``head_params={"k": "cv"}``).
    head_params : dict, optional
        Extra parameters of the head, checked by ``fit``: a key the head does not take, a NaN or
        infinite number, or a value outside the head's range is a ``ParameterError``.
    fallback : {"error", "global_mean"}, default "error"
        What to predict for a policy with no history: raise (default), or the pool's difficulty
        prior: with a head that has one (``auto`` with its logistic member, ``logistic``,
        ``ridge``), the average fitted policy on the prompt at the policies' mean success
        (issue 29); with other heads, the mean score of all history.
    cache_dir : str, optional
        Embedding cache root (default ``$V0LITE_CACHE`` or ``~/.cache/v0lite``); False disables it.
    batch_size : int, default 64
        Encoder batch size: an integer in [1, 2**20] (checked by ``fit``).
    show_progress_bar : bool, default False
        Progress on stderr: encoder load, embedding (per batch, prompts/s), each fit stage
        (episodes, features, each member, stacking) and prediction, with elapsed times; a wait
        under a second shows nothing. The CLI turns it on in a terminal (off with ``--quiet``).
    random_state : int, default 0
        Seed of every random choice: an integer in [0, 2**31 - 16] (checked by ``fit``).
    device : str, optional
        Torch device of the sentence encoder (``"cuda"``, ``"cpu"``; default: let
        sentence-transformers choose). Not saved: pass it again to :meth:`load`.

    Notes
    -----
    Cross-validation: a plain ``KFold`` leaves the other policies' outcomes on a test prompt in the
    training history, so its scores are optimistic; group the folds by prompt,
    ``cross_val_score(model, X, y, cv=GroupKFold(5), groups=X["prompt"])``, for honest scores. Every
    policy must also be in each training fold (a policy a fold lacks has no history): shuffle a log
    sorted by policy, or group by prompt, rather than pass an integer ``cv`` (unshuffled folds).

    Examples
    --------
    >>> import polars as pl
    >>> from v0lite import V0Regressor
    >>> class Symbols:  # a stand-in encoder for the example (the default is all-MiniLM-L6-v2)
    ...     def encode(self, texts):
    ...         return np.array([[t.count(c) + 0.5 for c in "+?P"] for t in texts], np.float32)
    >>> X = pl.DataFrame({"policy": ["a", "a", "b", "b"], "prompt": ["2+2?", "Prove FLT.", "2+2?", "Prove FLT."]})
    >>> model = V0Regressor(head="knn", encoder=Symbols(), cache_dir=False).fit(X, [1.0, 0.0, 1.0, 1.0])
    >>> model.predict(pl.DataFrame({"policy": ["a", "b"], "prompt": ["3+3?", "Prove RH."]})).round(2).tolist()
    [0.7, 1.0]
    """

    def __init__(
        self,
        *,
        head="auto",
        encoder=None,
        k=32,
        head_params=None,
        fallback="error",
        cache_dir=None,
        batch_size=64,
        show_progress_bar=False,
        random_state=0,
        device=None,
    ):
        self.head = head
        self.encoder = encoder
        self.k = k
        self.head_params = head_params
        self.fallback = fallback
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self.random_state = random_state
        self.device = device

    def __sklearn_clone__(self):
        """An unfitted copy that shares an encoder *object* (a loaded model: copying its weights per clone,
        e.g. per ``GridSearchCV`` fold, costs time and memory; encoding never changes it); a name or
        path, and every other parameter, is cloned as usual."""
        from sklearn.base import clone

        params = self.get_params(deep=False)
        enc = params.pop("encoder")
        enc = clone(enc, safe=False) if enc is None or isinstance(enc, (str, os.PathLike)) else enc
        return _mp.keep_sklearn_config(
            self, type(self)(encoder=enc, **{k: clone(v, safe=False) for k, v in params.items()})
        )

    # -- helpers -------------------------------------------------------------------------------
    def _get_embedder(self) -> Embedder:
        """The embedder of the current parameters: set_params after fit takes effect at the next embedding."""
        emb = getattr(self, "_embedder", None)
        if emb is None or emb.model is not self.encoder or (emb.cache_dir, emb.device) != (self.cache_dir, self.device):
            _mp.check_embed_settings(self)
            emb = Embedder(
                self.encoder,
                cache_dir=self.cache_dir,
                batch_size=self.batch_size,
                show_progress_bar=self.show_progress_bar,
                device=self.device,
            )
            self._embedder = emb
        elif (emb.batch_size, emb.show_progress_bar) != (self.batch_size, self.show_progress_bar):
            _mp.check_embed_settings(self)  # read at each encoder call: set in place, the vectors in memory kept
            emb.batch_size, emb.show_progress_bar = self.batch_size, self.show_progress_bar
        if hasattr(self, "index_"):  # cached vectors of another size are not this model's
            emb._expected_dim = self.index_.dim
        return emb

    def _encode(self, texts: list[str], tkeys: list[str], frame: pl.DataFrame, *, fitting: bool = False):
        """Embed ``texts``; an encoder failure names the row of ``frame`` (the log in the caller's row order)."""
        from .embed import EncoderOutputError

        emb = self._get_embedder()
        if fitting:
            emb._expected_dim = None
        else:
            self._check_encoder(emb)
        try:
            return emb.encode(texts, tkeys)
        except EncoderOutputError as exc:
            if exc.row is None:
                raise
            row = prompt_keys(frame["prompt"].to_list()).index(tkeys[exc.row])  # only on failure
            raise EncoderOutputError(f"column 'prompt', row {row}: {exc}", key=exc.key) from exc

    def _check_encoder(self, emb: Embedder) -> None:
        """A fitted model embeds with the encoder it was fitted with (see :func:`._encoder_check.check_encoder`)."""
        from ._encoder_check import check_encoder

        check_encoder(self, emb)

    def _check_params(self) -> None:
        _mp.check_fit_params(self)

    def _head_kwargs(self) -> dict:
        kw = dict(self.head_params or {})
        if isinstance(self.head, str) and normalise(self.head) == "knn":
            kw.setdefault("k", self.k)
        return plain(kw)  # numpy scalars (GridSearchCV's grids) as Python numbers: the head saves them as JSON

    def _embed_frame(self, df: pl.DataFrame):
        """Per-row prompt keys, the unique keys, their texts (first seen) and text lengths."""
        prompts = df["prompt"].to_list()
        keys = prompt_keys(prompts)
        first = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        ukeys = list(first)
        utexts = [prompts[first[k]] for k in ukeys]
        lengths = np.array([len(t) for t in utexts], np.float32)
        return keys, ukeys, utexts, lengths

    def _steps(self, df: pl.DataFrame, *, for_query: bool) -> np.ndarray:
        if "step" in df.columns:
            return df["step"].to_numpy().astype(np.int64)
        # a query without a step sees the whole history (the latest checkpoint)
        return np.full(df.height, _STEP_LATEST if for_query else 0, np.int64)

    # -- fit / predict ----------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Index the history (X, y) and train the head on it.

        Parameters
        ----------
        X : DataFrame (polars or pandas) or path
            Columns ``policy``, ``prompt`` and optionally ``step``, ``n``. If ``y`` is None, X
            must hold a ``score`` column (a whole outcome log).
        y : array-like of float in [0, 1], optional
            Success rates.

        Returns
        -------
        self
        """
        self._check_params()
        given = validate_log(_with_y(X, y))
        df = _canonical_order(given)
        keys, ukeys, utexts, lengths = self._embed_frame(df)
        emb = self._encode(utexts, ukeys, given, fitting=True)
        key_to_row = {k: i for i, k in enumerate(ukeys)}
        policies = sorted(set(df["policy"].to_list()))
        p2c = {p: i for i, p in enumerate(policies)}
        index = HistoryIndex(
            emb,
            ukeys,
            policies,
            np.array([p2c[p] for p in df["policy"].to_list()], np.int32),
            np.array([key_to_row[k] for k in keys], np.int64),
            df["score"].to_numpy(),
            self._steps(df, for_query=False),
            df["n"].to_numpy() if "n" in df.columns else None,
            lengths,
        )
        if getattr(get_head_class(self.head), "needs_text", False):
            index.texts = utexts  # only heads that re-encode text (neural) need the prompts kept
        head = make_head(self.head, **self._head_kwargs())
        head.fit(index, random_state=self.random_state, show_progress_bar=self.show_progress_bar)
        enc = self.encoder  # its folder, to name it if it moves or another is passed
        is_dir = isinstance(enc, (str, os.PathLike)) and os.path.isdir(enc)
        with writer_lock(self):  # the commit only: an add_history waits for it, then adds to the new history
            self.index_ = index
            self.head_ = head
            self.encoder_id_ = self._get_embedder().model_id
            self.n_history_ = index.n_rows
            self._embedder._expected_dim = index.dim
            self._fit_encoder = self.encoder
            self._fitted_encoder_path = str(Path(enc).resolve()) if is_dir else None
            params = self.get_params().items()
            self._fitted_params = {k: copy.deepcopy(v) if k == "head_params" else v for k, v in params}
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet. Call 'fit' with a history first.")

    def _queries(self, df: pl.DataFrame, index: HistoryIndex | None = None) -> Queries:
        """The queries of ``df`` against ``index`` (default ``self.index_``): a caller that reads the index again
        passes its one read of it (an add_history in another thread publishes a new index; one call reads one)."""
        index = self.index_ if index is None else index
        keys, ukeys, utexts, lengths = self._embed_frame(df)
        rows = np.array([index.key_to_row.get(k, -1) for k in ukeys], np.int64)
        uemb = np.empty((len(ukeys), index.dim), np.float32)
        known = rows >= 0
        uemb[known] = index.emb[rows[known]]
        if (~known).any():
            new = np.flatnonzero(~known)
            uemb[new] = self._encode([utexts[i] for i in new], [ukeys[i] for i in new], df)
        pos = {k: i for i, k in enumerate(ukeys)}
        qpos = np.fromiter((pos[k] for k in keys), np.int64, len(keys))
        codes = np.array([index.policy_to_code.get(p, -1) for p in df["policy"].to_list()], np.int32)
        q = Queries(codes, self._steps(df, for_query=True), uemb[qpos], rows[qpos], lengths[qpos])
        if getattr(self.head_, "needs_text", False):
            q.texts = df["prompt"].to_list()
        return q

    def predict(self, X, *, exclude_own_prompt: bool = False) -> np.ndarray:
        """Predicted success probability of each (policy, prompt[, step]) row of X.

        Parameters
        ----------
        X : DataFrame or path
            Columns ``policy``, ``prompt`` and optionally ``step``; no other column is read or checked.
        exclude_own_prompt : bool, default False
            Hide every history row of the query's own prompt (any step) from its context,
            i.e. predict as if the prompt had no outcomes (a cold prompt). It is not "never seen"
            for heads fitted on the prompt: gbdt's trees (and the ensemble and auto serving them)
            can recognise a prompt they were trained on from its embedding features (docs/design.md,
            "Cold" is not "unseen"); for a prompt truly unseen, fit on a log without it.

        Returns
        -------
        ndarray of shape (n_rows,), values in [0, 1]
        """
        self._check_fitted()
        # read once: a concurrent add_history publishes a new index (a Router passes the one it read with its pool)
        return self._predict_on(X, self.index_, self.head_, exclude_own_prompt)

    def _predict_on(self, X, index: HistoryIndex, head, exclude_own_prompt: bool = False) -> np.ndarray:
        """:meth:`predict` on the ``index`` and ``head`` its caller read once (Router._pool reads them)."""
        _mp.check_fallback(self.fallback)  # set_params after fit: anything but "error" would read as global_mean
        # only the columns predict reads are checked (score, n, cost and the rest are never read)
        df = validate_log(as_frame(X, columns=_QUERY_COLUMNS), require_score=False, allow_empty=True)
        if df.height == 0:
            return np.zeros(0, np.float64)
        q = self._queries(df, index)
        unknown = q.policy < 0
        if unknown.any() and self.fallback == "error":
            raise unknown_policy_error(
                df["policy"],
                unknown,
                index.policies,
                "call add_history with some of its outcomes, or set fallback='global_mean' (in cross-validation, a "
                "training fold held none of its rows: group or shuffle the folds).",
            )
        if unknown.any():  # the fallback answers for a name that is a known one written another way: say so
            near = near_names(df["policy"].filter(pl.Series(unknown)).unique().to_list(), index.policies)
            if near:
                warn_fallback_names(near)
        p = np.full(len(q), np.nan)
        known = ~unknown
        exclude = "any_step" if exclude_own_prompt else "same_step"
        if known.any():
            from ._progress import stage

            with stage(f"predicting {int(known.sum()):,} rows", enabled=self.show_progress_bar):
                p[known] = head.predict(index, q.subset(known), exclude=exclude)
        unseen = getattr(head, "predict_unseen", None)
        if unknown.any() and unseen is not None:  # fallback="global_mean": the pool's difficulty prior
            qu = q.subset(unknown)
            qu.policy = np.full(len(qu), len(index.policies), np.int32)  # a code with no rows
            p[unknown] = unseen(index, qu)
        # a NaN left for a known policy with no eligible row (a head without a pool base; logistic and ridge
        # answer it as an unseen policy) or an unknown one: the mean of all history; any other is the head's failure
        # (asked only of the NaN rows: hiding a prompt's rows at every step costs one pass per visit)
        bad = np.isnan(p) & ~unknown
        if bad.any():
            sub = np.flatnonzero(bad)
            bad[sub[np.isnan(policy_prior(index, q.subset(sub), hide=exclude))]] = False
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise V0liteError(
                f"row {r}: the {head.name!r} head predicted NaN for policy {df['policy'][r]!r} "
                f"({int(bad.sum())} such rows), though it has history. Fix: check head_params "
                f"({self.head_params!r}) and refit; report it if they are the defaults."
            )
        p = np.where(np.isnan(p), float(index.score.mean()), p)
        return np.clip(p, 0.0, 1.0)

    def _n_cached(self, texts, *, read_disk: bool = False) -> int:
        """How many of ``texts`` need no encoder call: in the history, or in the embedder's cache
        (``read_disk``: its disk shards read first; off on hot paths, where memory is enough)."""
        emb = getattr(self, "_embedder", None)
        if read_disk and emb is not None and hasattr(emb, "_read_shards"):
            emb._read_shards()
        memory = getattr(emb, "_memory", {})
        known = self.index_.key_to_row
        texts = list(texts)
        # the history is keyed by prompt; the cache by the embedder's key (a long prompt's differs)
        cached = emb._cache_keys(texts) if hasattr(emb, "_cache_keys") else prompt_keys(texts)
        return sum(1 for k, c in zip(prompt_keys(texts), cached) if k in known or c in memory)

    def warm(self, prompts) -> "V0Regressor":
        """Embed prompts ahead of time (disk and memory cache), so later predictions skip the encoder.

        Prompts already in the history or the cache cost nothing. Use it before an RL run
        (:meth:`v0lite.RolloutPlanner.warm`), off the trainer's critical path.

        Parameters
        ----------
        prompts : sequence of str
        """
        texts = _prompt_list(prompts)
        keys = prompt_keys(texts)
        known = getattr(self, "index_", None)
        first: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if known is None or k not in known.key_to_row:
                first.setdefault(k, t)
        if first:
            emb = self._get_embedder()
            if known is not None:
                self._check_encoder(emb)
            emb.encode(list(first.values()), list(first))
        return self

    def add_history(self, X, y=None) -> "V0Regressor":
        """Add outcomes (of known or new policies) as context; no learned parameter changes.

        The model is updated all at once at the end: if this call fails midway, the model
        is exactly as before.

        Rows are appended as they are, never matched against the history: the same rows added
        twice count twice, as duplicate rows of a log do (docs/guarantees.md). An RL run that
        visits a prompt again at the same step logs a second observation on purpose; a caller
        that may resend a batch keeps its own record of what it sent (the service stores a batch
        once per ``Idempotency-Key``).
        """
        self._check_fitted()
        given = validate_log(_with_y(X, y))
        warn_new_names(given["policy"].unique(maintain_order=True).to_list(), self.index_.policy_to_code)
        df = _canonical_order(given)
        keys, ukeys, utexts, lengths = self._embed_frame(df)

        def embed(ids: list) -> dict:  # unique prompt position -> its vector
            return dict(zip(ids, self._encode([utexts[i] for i in ids], [ukeys[i] for i in ids], given))) if ids else {}

        # embed before the lock, so two writers' encoder calls overlap; under it, the prompts another writer
        # published meanwhile are left out, and any that a fit's new index lacks are embedded there (rare)
        done = embed([i for i, k in enumerate(ukeys) if k not in self.index_.key_to_row])
        with writer_lock(self):  # writers one at a time: each adds to the index the last one published
            old = self.index_
            new = [i for i, k in enumerate(ukeys) if k not in old.key_to_row]
            done.update(embed([i for i in new if i not in done]))
            emb = np.stack([done[i] for i in new]) if new else np.zeros((0, old.dim), np.float32)
            index = old.add(
                [ukeys[i] for i in new],
                emb,
                lengths[new] if new else [],
                df["policy"].to_list(),
                keys,
                df["score"].to_numpy(),
                # no step: each policy's latest checkpoint (0 for a new or static one), not step 0 before them all
                self._steps(df, for_query=False) if "step" in df.columns else old.edge_steps(df["policy"].to_list()),
                df["n"].to_numpy() if "n" in df.columns else None,
            )
            if old.texts is not None:
                index.texts = list(old.texts) + [utexts[i] for i in new]
            self.index_ = index
            self.n_history_ = index.n_rows
        return self

    def suggest_prompts(self, policy, prompts, n, random_state=0) -> list:
        """The ``n`` candidate prompts whose outcomes would say most about ``policy`` (issue 29).

        Run ``policy`` on them and pass the outcomes to :meth:`add_history`. Picked greedily for
        the largest information about the policy at its current estimate (each prompt's
        ``p (1 - p)`` times its item vector: the pool's difficulty and how the fitted policies
        differ on it, or its topic without a pool), so the picks spread over those; a policy known
        only by its name is estimated as the average policy, one with outcomes gets the prompts
        that refine what it has (candidates it already answered come last).

        Parameters
        ----------
        policy : str
            The policy to evaluate (known or not); an int is read as its text, as a log's ``policy`` column is.
        prompts : sequence of str
            Candidate prompts; repeats count once.
        n : int
            How many to pick (>= 1). More than there are candidates: all of them, with a
            ``V0liteWarning``.
        random_state : int, default 0
            Breaks exact ties only; an integer in [0, 2**31 - 16].

        Returns
        -------
        list of str
            The picks, most informative first.
        """
        from .heads._select import greedy_design, item_features, warn_answered

        self._check_fitted()
        prompts = _prompt_list(prompts)
        if not prompts:
            raise DataError(
                "prompts is empty: there is nothing to choose from. Fix: pass at least one candidate prompt."
            )
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ParameterError(f"n must be an integer >= 1, got {n!r}. Fix: ask for at least one prompt.")
        index = self.index_  # read once (see predict)
        example = "'my-model' (a name the history knows, or a new one)"
        policy = check_policy_name(policy, example, allow_int=True, known=index.policy_to_code)
        warn_new_names([policy], index.policy_to_code)
        _check_seed(random_state)
        uniq = list(dict.fromkeys(prompts))
        if n > len(uniq):
            warnings.warn(
                f"n={n} is more than the {len(uniq)} distinct candidate prompts: all of them are returned, "
                "most informative first.",
                V0liteWarning,
                stacklevel=2,
            )
        n = min(n, len(uniq))  # all of them, still ranked: "run everything, in this order"
        q = self._queries(pl.DataFrame({"policy": [policy] * len(uniq), "prompt": uniq}), index)
        code = index.policy_to_code.get(policy, -1)
        seen_rows = np.flatnonzero(index.policy == code) if code >= 0 else np.zeros(0, np.int64)
        p = self._estimate(index, q, code)
        phi = item_features(self.head_, index, q.emb)
        phi_seen = info_seen = None
        if len(seen_rows):
            from .episodes import row_queries

            hq = row_queries(index, seen_rows)
            ps = self._estimate(index, hq, code)
            phi_seen, info_seen = item_features(self.head_, index, hq.emb), ps * (1 - ps)
        answered = set(index.prompt_row[seen_rows].tolist())
        fresh = np.array([r not in answered or r < 0 for r in q.prompt_row])
        picks = []
        for part in (np.flatnonzero(fresh), np.flatnonzero(~fresh)):  # answered candidates come last
            if len(picks) >= n or not len(part):
                continue
            got = greedy_design(
                phi[part],
                p[part] * (1 - p[part]),
                n - len(picks),
                phi_seen=phi_seen,
                info_seen=info_seen,
                random_state=random_state,
            )
            picks += [int(part[i]) for i in got]
        warn_answered(picks, fresh, policy)
        return [uniq[i] for i in picks]

    def _estimate(self, index, q, code):
        """The current estimate for queries of one policy (``code`` -1: the pool's prior for an unseen one)."""
        qq = q.subset(np.arange(len(q)))
        if code >= 0:
            qq.policy = np.full(len(q), code, np.int32)
            p = self.head_.predict(index, qq, exclude="same_step")
        else:
            unseen = getattr(self.head_, "predict_unseen", None)
            qq.policy = np.full(len(q), len(index.policies), np.int32)
            p = unseen(index, qq) if unseen is not None else np.full(len(q), np.nan)
        return np.clip(np.where(np.isnan(p), float(index.score.mean()), p), 0.0, 1.0)

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Save to folder ``path`` without pickle (the folder format is :mod:`v0lite.persist`)."""
        self._check_fitted()
        _mp.check_fallback(self.fallback)  # the settings saved as they are now: never a folder that load refuses
        _mp.check_embed_settings(self)
        from .persist import save_model_folder

        idx = self.index_
        keys = np.frombuffer(b"".join(bytes.fromhex(k) for k in idx.keys), np.uint8).reshape(-1, 32)
        arrays = {
            "emb": idx.emb,
            "keys": keys,
            "lengths": idx.lengths,
            "policy": idx.policy,
            "prompt_row": idx.prompt_row,
            "score": idx.score,
            "step": idx.step,
            "n": idx.n,
        }
        # the parameters the head was fitted with: set_params after fit changes them only at the next fit
        params = _mp._saved_params(getattr(self, "_fitted_params", None) or self.get_params())
        now = _mp._saved_params(self.get_params())
        changed = [k for k in _FIT_PARAMS if k in params and now.get(k) != params[k]]
        if changed:
            shown = ", ".join(f"{k}={now.get(k)!r} (fitted: {params[k]!r})" for k in changed)
            warnings.warn(
                f"set_params changed {shown} after fit: they take effect at the next fit and are not saved; the "
                "folder keeps the parameters the model was fitted with. Fix: call fit before save to use them.",
                V0liteWarning,
                stacklevel=2,
            )
        params.update({k: v for k, v in now.items() if k not in _FIT_PARAMS})  # settings read at predict
        save_model_folder(
            path,
            arrays=arrays,
            texts=idx.texts,
            head=self.head_,
            meta={"params": params, "encoder_id": self.encoder_id_, "policies": idx.policies},
        )

    @classmethod
    def load(cls, path, *, encoder=None, cache_dir=None, device=None) -> "V0Regressor":
        """Load a model saved with :meth:`save`; loading runs no code from the files.

        Parameters
        ----------
        path : str or Path
        encoder : object, optional
            The encoder object, when the model was fitted with a custom encoder object; or the new
            location of the encoder folder it was fitted with, when that folder has moved.
        cache_dir : str, Path or False, optional
            The embedding cache of this process (default ``$V0LITE_CACHE`` or ``~/.cache/v0lite``);
            a ``cache_dir`` found in an older folder's meta.json is ignored.
        device : str, optional
            Torch device of the encoder (e.g. the trainer's GPU, ``"cuda"``).
        """
        from pathlib import Path

        from .persist import check_model_meta, load_head_safely, read_model_folder, smoke_predict

        path = Path(path)
        meta, a, texts = read_model_folder(path)
        check_model_meta(meta, a, texts, path)  # every value, before any is used: loading is total
        params = dict(meta["params"])
        if params.get("fallback") == "prior":  # older folders: 'prior' was an alias of the global mean
            params["fallback"] = "global_mean"
        if encoder is not None:
            _mp.check_encoder_value(encoder)
            params["encoder"] = encoder
        params.pop("show_progress_bar", None)
        params["cache_dir"] = cache_dir  # a run-time setting: never the one an older folder saved
        params["device"] = device
        model = cls(**params)
        _mp.check_embed_settings(model)  # load's cache_dir (batch_size was checked with meta.json)
        keys = [bytes(r).hex() for r in a["keys"]]
        model.index_ = HistoryIndex(
            a["emb"], keys, meta["policies"], a["policy"], a["prompt_row"], a["score"], a["step"], a["n"], a["lengths"]
        )
        if texts is not None:
            model.index_.texts = texts

        def head_class(name):
            if "head" in params:
                get_head_class(params["head"])  # the parameter must name a registered head too
            return get_head_class(name)

        model.head_ = load_head_safely(
            head_class,
            meta["head"]["name"],
            path / "head",
            meta["head"]["meta"],
            lambda head: smoke_predict(head, model.index_),
        )
        model.encoder_id_ = meta["encoder_id"]
        saved = meta["params"].get("encoder")
        model._fitted_encoder_path = saved if isinstance(saved, str) and os.path.isabs(saved) else None
        model.n_history_ = model.index_.n_rows
        model._fitted_params = model.get_params()
        return model
