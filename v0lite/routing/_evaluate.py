"""``route_eval``: offline evaluation of a router against single models, the oracle and baseline routers.

The metrics are defined in :mod:`._frontier`, the baselines in :mod:`._baselines`.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np
import polars as pl

from .._io import to_jsonable
from ..exceptions import DataError, ParameterError, V0liteWarning
from ..log import read_log, split_xy
from ..metrics import paired_bootstrap
from ._baselines import (
    TUNED_KS,
    _within_group_auc,
    group_router_baseline,
    knn_router_baseline,
    tune_knn_router,
)
from ._compare import _metric_fn, _Scored, _within_policy, route_baselines, task_accuracy, top_choice
from ._frontier import (
    _hull_dict,
    _sweep,
    aiq,
    apgr,
    best_single,
    cost_at_accuracy,
    cpt,
    critical_lams,
    oracle,
)
from ._plot import plot_frontiers
from ._pool import check_test_coverage, restrict_pool
from ._router import Router
from ._strategies import UtilityStrategy, _cost_tie, get_strategy

__all__ = ["route_eval", "UnitCostWarning"]


class UnitCostWarning(V0liteWarning):
    """route_eval's warning that a log has no ``cost`` column and no prices: every call costs 1 (the CLI
    says it in flag terms instead)."""


# --------------------------------------------------------------------------- end-to-end evaluation


def _pivot(frame: pl.DataFrame, policies: list[str], prices: dict[str, float] | None):
    """Complete-able prompt x policy tables: prompts (first-seen order), outcomes, costs (NaN = missing)."""
    aggs = [pl.col("score").mean().alias("score")]
    if prices is None:
        aggs.append(pl.col("cost").mean().alias("cost"))
    agg = frame.filter(pl.col("policy").is_in(policies)).group_by(["prompt", "policy"]).agg(aggs)
    prompts = frame["prompt"].unique(maintain_order=True)
    pidx = pl.DataFrame({"prompt": prompts, "_r": np.arange(prompts.len(), dtype=np.int64)})
    cidx = pl.DataFrame({"policy": policies, "_c": np.arange(len(policies), dtype=np.int64)})
    agg = agg.join(pidx, on="prompt").join(cidx, on="policy")
    r, c = agg["_r"].to_numpy(), agg["_c"].to_numpy()
    Y = np.full((prompts.len(), len(policies)), np.nan)
    Y[r, c] = agg["score"].to_numpy()
    if prices is None:
        C = np.full_like(Y, np.nan)
        C[r, c] = agg["cost"].to_numpy()
    else:
        C = np.tile(np.array([prices[p] for p in policies], dtype=np.float64), (Y.shape[0], 1))
        C[np.isnan(Y)] = np.nan
    return prompts.to_list(), Y, C


def _cost_save(cost: float | None, reference: float) -> float | None:
    """``1 - cost / reference``; None when undefined; float noise below 1e-12 reads as 0."""
    if cost is None or reference <= 0:
        return None
    save = 1.0 - cost / reference
    return 0.0 if abs(save) < 1e-12 else save


def _first_task(frame: pl.DataFrame) -> dict[str, str]:
    """Prompt -> the first non-null task the log gives it."""
    sub = frame.select("prompt", "task").drop_nulls("task").unique(subset="prompt", keep="first", maintain_order=True)
    return dict(zip(sub["prompt"].to_list(), sub["task"].cast(pl.Utf8).to_list()))


def _baseline_model_kwargs(value_model, embedder) -> dict[str, Any]:
    """The baselines read the value model's prompt vectors, else the given embedder's (uncached: its id is unknown)."""
    if hasattr(value_model, "encoder") and hasattr(value_model, "cache_dir"):
        return {"encoder": value_model.encoder, "cache_dir": value_model.cache_dir}
    if embedder is not None:
        return {"encoder": embedder, "cache_dir": False}
    return {}


def _default_value_model(random_state: int):
    from ..estimator import V0Regressor

    return V0Regressor(random_state=random_state)


def _default_embedder():
    from ..embed import Embedder

    return Embedder()


def _hold_out(train, policies, new_model, n, random_state, in_test=True):
    """``(train without new_model's other rows, its n drawn rows)``; clear errors for a bad name or n.

    ``in_test``: whether the test log has outcomes of ``new_model`` (the error says which log lacks it).
    """
    if new_model not in policies:
        in_train = bool((train["policy"] == new_model).any())
        lack = (
            "neither log has"
            if not (in_train or in_test)
            else "the test log has no"
            if in_train
            else "the train log has no"
        )
        raise DataError(
            f"new_model {new_model!r} is not a model of both logs: {lack} outcomes of it (pool: {policies}). "
            "Fix: name one of the pool's models, or log its outcomes in both."
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"new_n must be an integer >= 1, got {n!r}. Fix: add at least one outcome of {new_model!r}.")
    if len(policies) < 2:
        raise DataError("new_model needs a pool of at least two models. Fix: evaluate a larger pool.")
    rows = train.filter(pl.col("policy") == new_model)
    if n > rows.height:
        warnings.warn(
            f"new_n={n} is more than the {rows.height} train outcomes of {new_model!r}: all of them are added.",
            V0liteWarning,
            stacklevel=3,
        )
    pick = np.sort(np.random.default_rng(random_state).permutation(rows.height)[: min(n, rows.height)])
    added = rows[pick]
    return pl.concat([train.filter(pl.col("policy") != new_model), added], how="diagonal_relaxed"), added


def route_eval(
    train_log,
    test_log,
    *,
    value_model=None,
    embedder=None,
    k_baseline: int = 32,
    strategy: str = "utility",
    plot=None,
    random_state: int = 0,
    prices=None,
    cost_model: str = "knn",
    k_cost: int = 16,
    n_knobs: int = 64,
    fit_value_model: bool = True,
    shrink=None,
    cv: int = 5,
    tuned_ks: Sequence[int] | None = TUNED_KS,
    per_task: bool = False,
    baselines: bool = True,
    n_boot: int = 1000,
    progress=None,
    save_router=None,
    before_writes: Callable[[dict], Any] | None = None,
    show_progress_bar: bool = False,
    new_model: str | None = None,
    new_n: int | None = None,
    pool: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Offline routing evaluation: router frontier vs single models, oracle and a kNN router.

    Parameters
    ----------
    train_log, test_log : path or DataFrame
        Outcome logs (``policy``, ``prompt``, ``score``; ``cost`` unless ``prices``).
    value_model : object with ``fit``/``predict``, optional
        Default :class:`v0lite.estimator.V0Regressor` with its default head. Fitted on the
        train log unless ``fit_value_model=False``.
    embedder : object with ``encode(texts)``, optional
        For the kNN baseline and the ``knn`` cost model; default :class:`v0lite.embed.Embedder`.
    k_baseline : int, default 32
        Neighbours of the plain kNN router baseline (RouterBench's setting).
    strategy : str, default "utility"
        The router's strategy; its ``knob_grid`` gives the sweep. The baseline always uses
        ``utility``.
    plot : path, optional
        Write :func:`plot_frontiers` there.
    random_state : int, default 0
    prices : dict, optional
        Policy -> cost per call, used for both logs instead of their ``cost`` columns. Logs
        without ``cost`` and no ``prices``: every call costs 1 (a :class:`V0liteWarning`;
        accuracy against the best single model and the oracle are still reported, AIQ is
        None because the cost axis is degenerate).
    cost_model : str, default "knn"
        The router's cost model (``fixed`` is used with ``prices`` or unit costs).
    k_cost : int, default 16
    n_knobs : int, default 64
    fit_value_model : bool, default True
    shrink : None, float or "cv", default None
        The router's shrinkage of predicted success toward a prior from the train log
        (:class:`v0lite.routing.Router`); ``"cv"`` chooses it on prompt-grouped folds of the
        train log only (``cv`` extra fits of a clone of the value model).
    cv : int, default 5
        Folds of ``shrink="cv"`` and of the tuned kNN baseline.
    tuned_ks : sequence of int or None, default (8, 16, 32, ..., 2048)
        Candidate ``k`` of the tuned kNN router baseline, chosen by :func:`tune_knn_router` on
        the train log only (``cv`` folds, seeded by ``random_state``); None skips it.
    per_task : bool, default False
        Also report ``mean_task_acc`` and ``task_acc`` (see :mod:`._compare`: per task of the
        test log, the mean true outcome of the router's top choice, i.e. the most likely policy
        whatever its cost; ``mean_task_acc`` is the unweighted mean over tasks, RouterDC's
        headline). Needs a ``task`` column in both logs.
    baselines : bool, default True
        Also score the baseline routers of :data:`v0lite.baselines.BASELINES` (prompt-blind
        prior, tuned kNN, per-policy logistic, pooled ridge; one more value-model fit each,
        except kNN) through this router's cost predictions and strategy, with the router's lead
        over each and its paired bootstrap 95% interval over test prompts.
    n_boot : int, default 1000
        Resamples of that bootstrap (seeded by ``random_state``).
    progress : callable, optional
        Receives one line per baseline.
    save_router : path, optional
        Save the router fitted on the train log there (:meth:`Router.save`), to route with later
        (``Router.load``, ``v0lite route --router DIR``). Saved last, once everything else
        (the plot too) succeeded: a run that fails leaves no router there, and a router saved
        there before as it was.
    before_writes : callable, optional
        Called with the finished, JSON-ready result before the plot and the router are written
        (the CLI builds its ``--json`` text there: a result that cannot be serialised stops the
        run before any output exists).
    show_progress_bar : bool, default False
        Progress of the baselines and CV folds on stderr (:mod:`v0lite._progress`); the value
        model and the embedder show their own by their ``show_progress_bar``.
    new_model, new_n : str and int, optional
        A model added later (issue 29): the value model and the router are fitted on the train
        log without ``new_model``, then ``new_n`` of its train outcomes (a seeded draw) join
        through :meth:`Router.add_history` (no refit; its price from ``prices`` or its rows'
        mean cost). The frontier is that of the pool with it; the baselines see the same rows
        (the train log without the rest of its outcomes). The kNN and task-mean baselines are the
        simple router a user would write once it joined: each model of the pool before it fitted
        on the train prompts complete for that pool, the new model on its ``new_n`` prompts (its
        ``k`` nearest of those: with ``new_n <= k`` its estimate is their mean, prompt-blind);
        the tuned kNN's ``k`` is chosen on the pool before it. ``baseline_knn_train_n``: per
        model, the train prompts these baselines saw. ``new_model_auc`` is its
        within-model AUC on the test prompts; ``without_new_model_aiq``, ``..._max_acc`` (and
        ``..._mean_task_acc`` with ``per_task``) are the pool's without it as a choice, read by the
        same value model after its rows were added (what ``Router.add_history(..., join=False)``
        keeps), on the same test prompts and cost scale: whether routing to it already pays, or its
        outcomes should reach the value model only until it has more; the only difference is its
        column. ``new_model_join_gain``: the headline with it minus without it (``aiq``; ``max_acc`` with
        equal costs or with one model before it, which has no frontier and so no AIQ:
        ``without_new_model_aiq`` is None then; ``mean_task_acc`` with ``per_task``), ``estimate``,
        ``ci_low``, ``ci_high``
        (paired bootstrap over test prompts, ``n_boot`` resamples). ``new_model_chosen_n``: on how
        many test prompts the router chose it (at one knob of the sweep, or as its top choice);
        0: joining changed no choice at this ``new_n``, so its gain compares the same choices.
    pool : list of str, optional
        Evaluate only these models (each must have outcomes in both logs): the other rows of both
        logs are left out. By default the pool is every model of both logs. Test prompts without
        an outcome (or cost) of every pool model are dropped, with a warning naming each model's
        coverage; when fewer than half remain (or fewer than 20 of 20 or more), a ``DataError``
        before any fit names the models to leave out.

    Returns
    -------
    dict
        JSON-ready (NaN as None): ``aiq``, ``max_acc``, ``best_single_acc``,
        ``best_single_model``, ``best_single_cost``, ``cost_at_best_single_acc``, ``cost_save``,
        ``oracle_acc``, ``oracle_cost``, ``baseline_knn_aiq``, ``baseline_knn_max_acc``,
        ``baseline_knn_tuned_aiq``, ``baseline_knn_tuned_k``, ``baseline_knn_tuned_max_acc``,
        ``baseline_knn_tuned_cv`` (every candidate's cross-validation score), and when both logs
        have a ``task`` column ``baseline_task_aiq``, ``baseline_task_max_acc``,
        ``baseline_task_cost_at_best_single_acc`` (:func:`group_router_baseline`: per task, each
        model's mean train outcome), ``within_task_auc`` and ``baseline_knn_tuned_within_task_auc``
        (mean over models of the AUC of predicted success inside each task: the prompt-level
        signal beyond the task; 0.5 = none), else None,
        ``random_mix_aiq``, ``c_max``, ``n_test``, ``n_test_incomplete``, ``n_train_complete``,
        ``n_train_incomplete``, ``n_policies``, ``policies``, ``policies_dropped``,
        ``cost_source``, ``strategy``, ``shrink``, ``prior_k``, ``curves`` (``curves["router"]`` has per
        knob ``knob``, ``cost``, ``acc``, ``share`` and, for ``budget`` and ``quality-target``, ``lam``: the
        utility ``lam`` that routes these test prompts one at a time as the knob routes them together, see
        :meth:`BudgetStrategy.critical_lam`) and, for two policies, ``apgr``, ``cpt_50``,
        ``cpt_80``, ``baseline_knn_apgr``, ``baseline_knn_tuned_apgr``, ``weak_model``, ``strong_model``;
        ``within_policy_auc`` (per model, the AUC of predicted success over the test prompts,
        size-weighted); with ``per_task`` ``mean_task_acc`` and ``task_acc``; with ``baselines``
        ``baselines`` (label -> its ``aiq``, ``max_acc``, ``mean_task_acc``, ``task_acc``,
        ``within_policy_auc``, ``within_task_auc``, ``diff`` = router minus baseline with
        ``ci_low``/``ci_high``, ``loses``, ``chance``; see :func:`route_baselines`),
        ``loses_to`` (the baselines whose interval says the router is worse) and ``chance``
        (the router's within-policy AUC is <= 0.5).
    """
    if plot is not None:  # before the work, not after it
        from .._extras import require

        require("matplotlib", "plot", "route_eval(plot=...)")
    if save_router is not None:  # before the work: a save never deletes what v0lite did not write
        from ..persist import check_save_target
        from ._router_folder import ROUTER_FORMAT

        check_save_target(save_router, ROUTER_FORMAT)
    train, test = read_log(train_log), read_log(test_log)
    logged = {*train["policy"].unique().to_list(), *test["policy"].unique().to_list()}  # names that are no typo
    train, test = restrict_pool(train, test, pool)
    if pool is not None and new_model is not None and new_model not in pool:  # its rows are gone with the pool
        raise ParameterError(f"new_model {new_model!r} is not in pool {list(pool)}. Fix: add it to pool.")
    if per_task:
        lacking = [name for name, f in (("TRAIN", train), ("TEST", test)) if "task" not in f.columns]
        if lacking:
            raise DataError(
                f"per-task accuracy needs a 'task' column in both logs; missing in "
                f"{' and '.join(lacking)}. Fix: convert with a converter that writes 'task' (e.g. "
                "`v0lite data convert routerdc DIR OUT --split official`), or set per_task=False."
            )
    strat = get_strategy(strategy)
    train_pol = set(train["policy"].unique().to_list())
    test_pol = sorted(test["policy"].unique().to_list())
    policies = [p for p in test_pol if p in train_pol]
    dropped = [p for p in test_pol if p not in train_pol]
    if dropped:
        warnings.warn(
            f"test policies absent from the train log are left out of the pool: {dropped}", V0liteWarning, stacklevel=2
        )
    if not policies:
        raise DataError("no policy is in both the train and the test log. Fix: evaluate on the same pool.")

    if prices is not None:
        prices = {str(k): float(v) for k, v in prices.items()}
        missing = [p for p in policies if p not in prices]
        if missing:
            raise DataError(f"prices lacks policies {missing}. Fix: give a price for every policy of the pool.")
        cost_source = "prices"
    elif "cost" in train.columns and "cost" in test.columns:
        cost_source = "log"
    else:
        lack = [name for name, f in (("train", train), ("test", test)) if "cost" not in f.columns]
        where = "the train and the test log have" if len(lack) == 2 else f"the {lack[0]} log has"
        warnings.warn(
            f"{where} no 'cost' column and no prices were given: every call costs 1, AIQ is undefined. Fix: add "
            f"a 'cost' column (USD per call) to the {' and '.join(lack)} log, or pass prices={{model: USD per call}}.",
            UnitCostWarning,
            stacklevel=2,
        )
        prices = {p: 1.0 for p in policies}
        cost_source = "unit"

    te_prompts, Y, Ctrue = _pivot(test, policies, prices if cost_source != "log" else None)
    complete = ~(np.isnan(Y).any(axis=1) | np.isnan(Ctrue).any(axis=1))
    n_incomplete = int((~complete).sum())
    check_test_coverage(Y, Ctrue, policies, complete)  # a warning naming the sparse models, or too few: refused
    te_prompts = [t for t, ok in zip(te_prompts, complete) if ok]
    Y, Ctrue = Y[complete], Ctrue[complete]
    from .._progress import stage

    if value_model is None:
        value_model = _default_value_model(random_state)
    added = None
    if new_model is not None:  # fit without it; its n rows arrive through Router.add_history below
        in_test = new_model in test_pol
        train, added = _hold_out(train, policies, new_model, new_n, random_state, in_test)
    fit_log = train if added is None else train.filter(pl.col("policy") != new_model)
    if fit_value_model:
        X_tr, y_tr = split_xy(fit_log)
        value_model.fit(X_tr, y_tr)
    embed_holder: dict[str, Any] = {"e": embedder}

    def embedder_lazy():
        if embed_holder["e"] is None:
            embed_holder["e"] = _default_embedder()
        return embed_holder["e"]

    class _LazyEmbedder:  # builds the default encoder only if some step needs embeddings
        def encode(self, texts):
            return embedder_lazy().encode(texts)

    router_cost_model = cost_model if cost_source == "log" else "fixed"
    fitted = policies if added is None else [p for p in policies if p != new_model]
    router = Router(
        value_model,
        policies=fitted,
        strategy=strat,
        cost_model=router_cost_model,
        prices=None if cost_source == "log" else prices,  # all of them: a model left out may join later
        embedder=_LazyEmbedder(),
        k=k_cost,
        shrink=shrink,
        cv=cv,
        random_state=random_state,
    )
    # the logs' other models (left out by pool, or the new model, priced as it joins below) are no typos
    router._also_known = tuple(logged)
    router.fit(fit_log)
    if added is not None:
        router.add_history(added, prices={new_model: prices[new_model]} if prices and new_model in prices else None)
    P, Cpred = router.predict_matrix(te_prompts)
    if added is not None:  # the pool's column order, the new model last -> the logs' order
        order = [router.policies_.index(p) for p in policies]
        P, Cpred = P[:, order], Cpred[:, order]
    with stage(f"route-eval: sweeping the {strat.name} knob", enabled=show_progress_bar):
        curve = _sweep(strat, P, Cpred, Y, Ctrue, n_knobs)
        lams = critical_lams(strat, P, Cpred, curve["knob"])  # budget/target bind a call's mean, not a prompt
        if lams is not None:
            curve["lam"] = lams

    single = best_single(Y, Ctrue, policies)
    c_max = float(max(single["costs"]))
    degenerate = float(np.ptp(single["costs"])) <= _cost_tie(np.asarray(single["costs"], float)[None, :])  # any unit
    _, or_acc, or_cost = oracle(Y, Ctrue)

    # kNN baseline on the complete train prompts; with new_model, that pool's and the new model's own (docstring)
    tr_prompts, Ytr, Ctr = _pivot(train, policies, prices if cost_source != "log" else None)
    has = ~(np.isnan(Ytr) | np.isnan(Ctr))
    tr_ok = has.all(axis=1)
    cols = list(range(len(policies)))
    parts = [(tr_ok, cols)]
    if added is not None:
        j_new = policies.index(new_model)
        rest = [c for c in cols if c != j_new]
        parts = [(has[:, rest].all(axis=1), rest), (has[:, j_new], [j_new])]
    fit_ok, fit_cols = parts[0]  # the rows (and models) the tuned kNN's k is chosen on
    used = np.logical_or.reduce([rows for rows, _ in parts])
    pos = np.cumsum(used) - 1  # train row -> its row among the used prompts

    def by_parts(fn):  # a baseline fitted on each part's rows and models, its columns put together
        out = [(c, fn(pos[rows], rows, c)) for rows, c in parts]
        P_, C_ = (np.empty((len(te_prompts), len(policies))) for _ in range(2))
        for c, (p_, c_) in out:
            P_[:, c], C_[:, c] = p_, c_
        return P_, C_

    base = tuned = tuned_k = tuned_cv = None
    if fit_ok.any():
        used_prompts = [t for t, ok in zip(tr_prompts, used) if ok]
        enc = embedder_lazy()
        e_tr, e_te = enc.encode(used_prompts), enc.encode(te_prompts)

        def knn(k):
            return by_parts(lambda i, r, c: knn_router_baseline(e_tr[i], Ytr[r][:, c], Ctr[r][:, c], e_te, k=k))

        with stage(f"route-eval: kNN router baseline (k={k_baseline})", enabled=show_progress_bar):
            Pk, Ck = knn(k_baseline)
            base = _sweep(UtilityStrategy(), Pk, Ck, Y, Ctrue, n_knobs)
        if tuned_ks is not None:
            if int(fit_ok.sum()) < max(2, int(cv)):
                warnings.warn(
                    f"only {int(fit_ok.sum())} complete train prompts: the tuned kNN baseline is skipped.",
                    V0liteWarning,
                    stacklevel=2,
                )
            else:
                tuned_k, tuned_cv = tune_knn_router(
                    e_tr[pos[fit_ok]],
                    Ytr[fit_ok][:, fit_cols],
                    Ctr[fit_ok][:, fit_cols],
                    tuned_ks,
                    cv=cv,
                    random_state=random_state,
                    n_knobs=n_knobs,
                    show_progress_bar=show_progress_bar,
                )
                with stage(f"route-eval: tuned kNN router (k={tuned_k})", enabled=show_progress_bar):
                    Pt, Cpt = knn(tuned_k)
                    tuned = _sweep(UtilityStrategy(), Pt, Cpt, Y, Ctrue, n_knobs)
    else:
        warnings.warn("no train prompt has every policy: the kNN baseline is skipped.", V0liteWarning, stacklevel=2)

    # what knowing the task alone gives, when both logs name it
    task_curve = within_task = tuned_within_task = g_te = None
    if "task" in train.columns and "task" in test.columns:
        task_of = _first_task(test)
        g_te = np.array([task_of.get(t) for t in te_prompts], dtype=object).astype(str)
    if g_te is not None and fit_ok.any():
        tr_task = _first_task(train)
        g_tr = np.array([tr_task.get(t) for t in used_prompts], dtype=object).astype(str)
        with stage("route-eval: task-mean router baseline", enabled=show_progress_bar):
            Pg, Cg = by_parts(lambda i, rows, c: group_router_baseline(g_tr[i], Ytr[rows][:, c], Ctr[rows][:, c], g_te))
            task_curve = _sweep(UtilityStrategy(), Pg, Cg, Y, Ctrue, n_knobs)
        within_task = _within_group_auc(Y, P, g_te)
        if tuned is not None:
            tuned_within_task = _within_group_auc(Y, Pt, g_te)

    def _aiq(c):
        return None if degenerate or c is None else aiq(c["cost"], c["acc"], c_max)

    extra: dict[str, Any] = {"within_policy_auc": _within_policy(Y, P)}
    if per_task:
        extra["mean_task_acc"], extra["task_acc"] = task_accuracy(Y, top_choice(P, Cpred), g_te)
        extra["task_n"] = {str(t): int(n) for t, n in zip(*np.unique(g_te, return_counts=True))}
        _, extra["oracle_task_acc"] = task_accuracy(Y, Y.argmax(axis=1), g_te)
    if baselines:
        b = route_baselines(
            train,
            te_prompts,
            policies,
            strategy=strat,
            P=P,
            Cpred=Cpred,
            Y=Y,
            Ctrue=Ctrue,
            n_knobs=n_knobs,
            c_max=None if degenerate else c_max,
            tasks=g_te if per_task else None,
            knn_P=Pt if tuned is not None else None,
            knn_params={"k": tuned_k, "k_cv": tuned_cv, "cost": "this router's cost predictions"},
            model_kwargs=_baseline_model_kwargs(value_model, embedder),
            random_state=random_state,
            n_boot=n_boot,
            within_task=(lambda M: _within_group_auc(Y, M, g_te)) if g_te is not None else None,
            log=progress,
        )
        extra["baselines"] = b
        extra["loses_to"] = sorted(label for label, r in b.items() if r.get("loses"))
    from ..baselines import no_better_than_chance, ranks_within

    # one rule with evaluate and the baselines: no verdict on fewer prompts, none for a column constant in p
    extra["ranks_within"] = ranks_within(np.tile(np.arange(P.shape[1]), P.shape[0]), np.clip(P, 0.0, 1.0))
    extra["chance"] = no_better_than_chance(extra["within_policy_auc"], len(Y), ranks=extra["ranks_within"])

    cab = cost_at_accuracy(curve, single["acc"])
    result: dict[str, Any] = {
        "strategy": strat.name,
        "shrink": router.shrink_,
        "prior_k": router.prior_k_,
        "cost_source": cost_source,
        "policies": policies,
        "policies_dropped": dropped,
        "n_policies": len(policies),
        "n_test": int(Y.shape[0]),
        "n_test_incomplete": n_incomplete,
        "n_train_complete": int(tr_ok.sum()),
        "n_train_incomplete": int((~tr_ok).sum()),
        "c_max": c_max,
        "aiq": _aiq(curve),
        "max_acc": float(max(curve["acc"])),
        "best_single_model": single["model"],
        "best_single_acc": single["acc"],
        "best_single_cost": single["cost"],
        "cost_at_best_single_acc": cab,
        "cost_save": _cost_save(cab, single["cost"]),
        "oracle_acc": or_acc,
        "oracle_cost": or_cost,
        "random_mix_aiq": None if degenerate else aiq(single["costs"], single["accs"], c_max),
        "baseline_knn_aiq": _aiq(base),
        "baseline_knn_k": None if base is None else int(k_baseline),
        "baseline_knn_max_acc": None if base is None else float(max(base["acc"])),
        "baseline_knn_cost_at_best_single_acc": None if base is None else cost_at_accuracy(base, single["acc"]),
        "baseline_knn_tuned_aiq": _aiq(tuned),
        "baseline_knn_tuned_k": tuned_k,
        "baseline_knn_tuned_max_acc": None if tuned is None else float(max(tuned["acc"])),
        "baseline_knn_tuned_cost_at_best_single_acc": (
            None if tuned is None else cost_at_accuracy(tuned, single["acc"])
        ),
        "baseline_knn_tuned_cv": tuned_cv,
        "baseline_task_aiq": _aiq(task_curve),
        "baseline_task_max_acc": None if task_curve is None else float(max(task_curve["acc"])),
        "baseline_task_cost_at_best_single_acc": (
            None if task_curve is None else cost_at_accuracy(task_curve, single["acc"])
        ),
        "within_task_auc": within_task,
        "baseline_knn_tuned_within_task_auc": tuned_within_task,
        "curves": {
            "router": curve,
            "router_hull": _hull_dict(curve["cost"], curve["acc"]),
            "baseline_knn": base,
            "baseline_knn_hull": None if base is None else _hull_dict(base["cost"], base["acc"]),
            "baseline_knn_tuned": tuned,
            "baseline_knn_tuned_hull": None if tuned is None else _hull_dict(tuned["cost"], tuned["acc"]),
            "baseline_task": task_curve,
            "single": {"policy": policies, "cost": single["costs"], "acc": single["accs"]},
            "random_mix": _hull_dict(single["costs"], single["accs"]),
            "oracle": {"cost": or_cost, "acc": or_acc},
        },
    }
    if len(policies) == 2:
        accs, costs = np.asarray(single["accs"]), np.asarray(single["costs"])
        s = int(np.lexsort((costs, accs))[-1])  # more accurate, dearer on ties
        w = 1 - s
        result.update({"strong_model": policies[s], "weak_model": policies[w]})
        for key, c in (("", curve), ("baseline_knn_", base), ("baseline_knn_tuned_", tuned)):
            if c is None:
                result[f"{key}apgr"] = None
                continue
            x = np.asarray(c["share"])[:, s]
            result[f"{key}apgr"] = apgr(x, c["acc"], accs[w], accs[s])
            if not key:
                result["cpt_50"] = cpt(x, c["acc"], accs[w], accs[s], 0.5)
                result["cpt_80"] = cpt(x, c["acc"], accs[w], accs[s], 0.8)
    result.update(extra)
    if added is not None:
        j = policies.index(new_model)
        result["new_model"] = new_model
        result["new_model_n"] = int(added.height)
        result["baseline_knn_train_n"] = {policies[c]: int(rows.sum()) for rows, cs in parts for c in cs}
        result["new_model_auc"] = _within_policy(Y[:, [j]], P[:, [j]])
        rest = [i for i in range(len(policies)) if i != j]  # the pool's columns, in the logs' order
        # the pool without it as a choice, read by the same value model (its rows added, as
        # Router.add_history(join=False) keeps them): the only difference is the new model's column. Read
        # before its rows were added, the other models' predictions moved too (by up to 0.002), and a
        # model chosen on no prompt showed a non-zero "gain"
        P0, C0 = P[:, rest], Cpred[:, rest]
        before = _Scored(strat, P0, C0, Y[:, rest], Ctrue[:, rest], n_knobs)  # its curve is the tables' means
        cost0, acc0 = before.C.mean(axis=1), before.A.mean(axis=1)
        # on the whole pool's cost scale (c_max), comparable to aiq
        # one model before it joined: no frontier, so no AIQ to compare (its area came out 0, and the
        # "gain" of any second model looked large)
        alone = len(rest) < 2
        result["without_new_model_aiq"] = None if degenerate or alone else aiq(cost0, acc0, c_max)
        result["without_new_model_max_acc"] = float(acc0.max())
        if per_task:
            result["without_new_model_mean_task_acc"] = task_accuracy(Y[:, rest], top_choice(P0, C0), g_te)[0]
        # with it minus without it as a choice, paired over test prompts: whether routing to it pays beyond noise
        metric = "mean_task_acc" if per_task else ("max_acc" if degenerate or alone else "aiq")
        scored = _Scored(strat, P, Cpred, Y, Ctrue, n_knobs)
        # chosen on no test prompt: joining changed no choice, and a gain of 0 [0, 0] is no measured tie
        result["new_model_chosen_n"] = scored.chosen_n(j)
        result["new_model_join_gain"] = {
            "metric": metric,
            **paired_bootstrap(
                _metric_fn(metric, None if degenerate else c_max, g_te if per_task else None),
                scored,
                before,
                n_rows=Y.shape[0],
                n_boot=n_boot,
                random_state=random_state,
            ),
        }
    result = to_jsonable(result, default=lambda o: o)
    if before_writes is not None:
        before_writes(result)
    if plot is not None:
        plot_frontiers(result, plot)
    if save_router is not None:  # last: a run that fails leaves no router (and an earlier one at the path as it was)
        router.save(save_router)
    return result
