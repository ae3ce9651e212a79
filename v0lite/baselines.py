"""Simple baselines beside a chosen head: are its predictions better than a prior, a kNN, a linear model?

:data:`BASELINES` is the one table of the baselines that ``v0lite evaluate`` and ``v0lite
route-eval`` print beside the chosen head: ``(label, head name, params)``. A head that this
build does not register is skipped with a note (:func:`available_baselines`), never an error.

:func:`evaluate_baselines` fits each baseline on the same history, scores it on the same
queries, and gives the chosen head's lead over it with a paired bootstrap 95% interval over
query prompts (:func:`v0lite.metrics.paired_bootstrap`). A head **loses** to a baseline on a
metric when that interval lies entirely on the losing side of 0 (below 0 for an AUC, above 0
for the Brier score); a within-policy AUC <= 0.5 is **no better than chance**. Below
:data:`MIN_VERDICT_PROMPTS` query prompts neither is said: the intervals have no real spread.

This module imports only numpy and the standard library at import time.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

__all__ = [
    "BASELINES",
    "MIN_VERDICT_PROMPTS",
    "no_better_than_chance",
    "available_baselines",
    "evaluate_baselines",
    "flags",
    "query_groups",
    "ranks_within",
    "too_few_prompts",
    "fewest_prompts",
    "shown",
]

# (label, head, params); the knn head's own ``k="cv"``: k and temperature chosen together by its prompt-grouped
# CV on the history (``heads._oof.KNN_GRID``), what a user's ``head_params={"k": "cv"}`` fits, so the report
# compares against the kNN a user would get
BASELINES: tuple[tuple[str, str, dict], ...] = (
    ("prior", "prior", {}),
    ("knn", "knn", {"k": "cv"}),
    ("logistic", "logistic", {}),
    ("ridge", "linear", {}),
)
# a baseline's name in printed tables and verdicts, where its bare label reads as the head a user chose
# (``evaluate --head knn`` printed "knn LOSES to knn"; ``--head ridge``, the per-policy ridge head, printed
# "ridge LOSES to ridge" of the pooled ``linear`` head); JSON keys keep the bare label
SHOWN = {"knn": "knn (k by CV)", "ridge": "ridge (pooled)"}

# metric -> +1 if higher is better, -1 if lower is better
EVAL_METRICS = {"auc": 1, "within_policy_auc": 1, "brier": -1}
# below this many query prompts no flag is raised: the interval resamples prompts, and a handful of them
# gives it no real spread (one prompt: every resample is the same, the interval a single point)
MIN_VERDICT_PROMPTS = 10


def available_baselines(note: Callable[[str], Any] | None = None) -> list[tuple[str, str, dict]]:
    """The rows of :data:`BASELINES` whose head is registered; ``note`` gets one line per skipped row.

    Examples
    --------
    >>> [label for label, _, _ in available_baselines()][:2]
    ['prior', 'knn']
    """
    from .heads.base import HEADS

    out = []
    for label, head, params in BASELINES:
        if head in HEADS:
            out.append((label, head, dict(params)))
        elif note is not None:
            note(f"baseline {label!r} skipped: head {head!r} is not registered in this build")
    return out


def shown(label: str) -> str:
    """The name a baseline ``label`` is printed under (:data:`SHOWN`; the JSON keeps ``label``).

    Examples
    --------
    >>> shown("knn"), shown("ridge"), shown("prior")
    ('knn (k by CV)', 'ridge (pooled)', 'prior')
    """
    return SHOWN.get(label, label)


def ranks_within(groups, p) -> bool:
    """Whether the predictions ``p`` take more than one value inside any group of ``groups`` (one code per
    row: the (policy, step) or policy the within-policy AUC ranks in). False for the prompt-blind prior,
    one value per group: its within-policy AUC is 0.5 by construction, which is no finding.

    >>> ranks_within([0, 0, 1, 1], [0.3, 0.3, 0.6, 0.6]), ranks_within([0, 0, 1, 1], [0.3, 0.4, 0.6, 0.6])
    (False, True)
    """
    codes = np.asarray(groups).reshape(-1)
    values = np.asarray(p, dtype=np.float64).reshape(-1)
    return bool(np.unique(np.c_[codes, values], axis=0).shape[0] > np.unique(codes).shape[0])


def query_groups(queries) -> np.ndarray:
    """Each row's group code in ``queries`` (a polars frame): its (policy, step), or its policy where there is
    no step column; the groups the within-policy AUC ranks in, and :func:`ranks_within` reads.

    >>> import polars as pl
    >>> query_groups(pl.DataFrame({"policy": ["a", "a", "b"], "step": [0, 1, 0]})).tolist()
    [0, 1, 2]
    """
    from .metrics import _group_codes

    policy = queries["policy"].to_numpy()
    keys = policy if "step" not in queries.columns else [policy, queries["step"].to_numpy()]
    return _group_codes(keys, len(policy))


def flags(diff: dict[str, dict], within_auc: float | None, signs: dict[str, int], ranks: bool = True) -> dict[str, Any]:
    """``loses``: the metrics whose interval lies wholly on the losing side; ``chance``: AUC <= 0.5.

    Neither is raised when the intervals rest on fewer than :data:`MIN_VERDICT_PROMPTS` query prompts
    (their ``n_groups``): see :func:`too_few_prompts`. ``chance`` is never raised for predictions that do
    not rank within a group (``ranks`` False, :func:`ranks_within`): 0.5 by construction is no finding.

    Examples
    --------
    >>> flags({"auc": {"ci_low": -0.3, "ci_high": -0.1}}, 0.5, {"auc": 1})
    {'loses': ['auc'], 'chance': True}
    >>> flags({"auc": {"ci_low": -0.3, "ci_high": -0.1, "n_groups": 1}}, 0.5, {"auc": 1})
    {'loses': [], 'chance': False}
    """
    if too_few_prompts(diff) is not None:
        return {"loses": [], "chance": False}
    loses = []
    for metric, d in diff.items():
        lo, hi = d.get("ci_low"), d.get("ci_high")
        if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
            continue
        if (signs[metric] > 0 and hi < 0) or (signs[metric] < 0 and lo > 0):
            loses.append(metric)
    return {"loses": loses, "chance": no_better_than_chance(within_auc, ranks=ranks)}


def no_better_than_chance(within_auc, n_prompts: int | None = None, *, ranks: bool = True) -> bool:
    """The one "no better than chance" rule, for a chosen head and a baseline alike: a finite within-policy
    AUC <= 0.5 of predictions that rank within a group (``ranks``, :func:`ranks_within`: one value per group
    is 0.5 by construction, no finding), on at least :data:`MIN_VERDICT_PROMPTS` query prompts when
    ``n_prompts`` is given (no verdict below).

    >>> no_better_than_chance(0.5), no_better_than_chance(0.4, n_prompts=3), no_better_than_chance(float("nan"))
    (True, False, False)
    >>> no_better_than_chance(0.5, ranks=False)
    False
    """
    if not ranks or (n_prompts is not None and n_prompts < MIN_VERDICT_PROMPTS):
        return False
    return bool(within_auc is not None and math.isfinite(within_auc) and within_auc <= 0.5)


def fewest_prompts(baselines: dict) -> int | None:
    """The fewest query prompts behind any baseline's intervals when below :data:`MIN_VERDICT_PROMPTS` (no
    verdict then), else None: the one rule the evaluate and route-eval reports use."""
    few = [n for r in baselines.values() if (n := too_few_prompts(r.get("diff", {}))) is not None]
    return min(few) if few else None


def too_few_prompts(diff: dict[str, dict]) -> int | None:
    """The number of query prompts behind ``diff``'s intervals when it is below :data:`MIN_VERDICT_PROMPTS`
    (too few for a verdict), else None (enough, or not recorded)."""
    n = min((d["n_groups"] for d in diff.values() if d.get("n_groups") is not None), default=None)
    return n if n is not None and n < MIN_VERDICT_PROMPTS else None


def _chosen_params(head, params: dict) -> dict:
    """``params`` with each ``"cv"`` value replaced by what the head's CV chose (its ``<name>_``; for the knn
    head's ``k`` the ``temperature_`` chosen with it too): the values the baseline's predictions used."""
    out = {}
    for name, value in params.items():
        if value != "cv":
            out[name] = value
            continue
        out[name] = getattr(head, f"{name}_")
        if head.name == "knn" and name == "k":  # k and temperature are one grid point of KNN_GRID
            out["temperature"] = head.temperature_
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in out.items()}


def _score_fn(metric: str, y, policy_codes):
    from .metrics import auc, brier, within_policy_auc

    def fn(p, rows):
        if metric == "auc":
            return auc(y[rows], p[rows])
        if metric == "brier":
            return brier(y[rows], p[rows])
        return within_policy_auc(y[rows], p[rows], policy_codes[rows])

    return fn


def evaluate_baselines(
    history,
    queries,
    p_chosen,
    *,
    encoder=None,
    random_state: int = 0,
    n_boot: int = 1000,
    log: Callable[[str], Any] | None = None,
    fallback: str = "error",
) -> dict[str, dict]:
    """Fit every available baseline on ``history``, score it on ``queries``, compare with ``p_chosen``.

    Parameters
    ----------
    history, queries : polars.DataFrame
        Validated outcome logs (``queries`` with true scores).
    p_chosen : ndarray
        The chosen head's predictions of ``queries``' rows.
    encoder : optional
        The chosen model's encoder, so the baselines read the same prompt vectors.
    random_state : int, default 0
        Seeds the baselines and the bootstrap.
    n_boot : int, default 1000
        Bootstrap resamples of the query prompts.
    log : callable, optional
        Receives one progress line per baseline (and notes of skipped ones).
    fallback : {"error", "global_mean"}, default "error"
        The chosen model's ``fallback``, given to every baseline: a query policy with no history in
        ``history`` is answered by each the way the chosen head answered it, or stops every one alike.

    Returns
    -------
    dict
        ``label -> {head, params, n, auc, within_policy_auc, brier, ece, fit_s, ranks_within, diff,
        loses, chance}`` where ``ranks_within`` says whether its predictions vary inside any (policy,
        step) group (:func:`ranks_within`; False for the prior: its within-policy AUC is 0.5 by
        construction, and its ``chance`` is False), and
        ``diff[metric] = {estimate, ci_low, ci_high, n_boot, n_groups}`` is the chosen head minus the
        baseline (``auc``, ``within_policy_auc``, ``brier``), ``loses`` the
        metrics on which the chosen head loses, ``chance`` whether the baseline's
        within-policy AUC is <= 0.5 (:func:`no_better_than_chance`). A baseline's ``params`` are the ones
        its predictions used: for kNN the ``k`` and ``temperature`` its own CV chose (``k="cv"``).
    """
    from .estimator import V0Regressor
    from .log import split_xy
    from .metrics import evaluate_predictions, paired_bootstrap

    say = log or (lambda _m: None)
    rows = available_baselines(say)
    y = queries["score"].to_numpy().astype(np.float64)
    policy = queries["policy"].to_numpy()
    step = queries["step"].to_numpy() if "step" in queries.columns else None
    pcodes = query_groups(queries)
    prompt_ids = queries["prompt"].to_numpy()
    X_h, y_h = split_xy(history)
    preds: dict[str, np.ndarray] = {}
    out: dict[str, dict] = {}
    for i, (label, head, params) in enumerate(rows, 1):
        say(f"baseline {i}/{len(rows)}: {shown(label)} (head {head}) ...")
        t0 = time.perf_counter()
        kw: dict[str, Any] = {"head_params": dict(params)} if params else {}
        model = V0Regressor(head=head, encoder=encoder, random_state=random_state, fallback=fallback, **kw)
        model.fit(X_h, y_h)
        p = model.predict(queries.select([c for c in ("policy", "prompt", "step") if c in queries.columns]))
        fit_s = time.perf_counter() - t0
        preds[label] = p
        m = evaluate_predictions(y, p, policy=policy, step=step)
        out[label] = {
            "head": head,
            "params": _chosen_params(model.head_, params),
            "n": m["n"],
            "auc": m["auc"],
            "within_policy_auc": m["within_policy_auc"],
            "brier": m["brier"],
            "ece": m["ece"],
            "fit_s": fit_s,
            "ranks_within": ranks_within(pcodes, p),
        }
        say(
            f"  {shown(label)}: AUC {m['auc']:.4f}, within-policy AUC {m['within_policy_auc']:.4f}, "
            f"Brier {m['brier']:.4f} ({fit_s:.1f} s)"
        )
    if not preds:
        return out
    p_chosen = np.asarray(p_chosen, dtype=np.float64)
    for metric in EVAL_METRICS:
        diffs = paired_bootstrap(
            _score_fn(metric, y, pcodes), p_chosen, preds, groups=prompt_ids, n_boot=n_boot, random_state=random_state
        )
        for label, d in diffs.items():
            out[label].setdefault("diff", {})[metric] = d
    for r in out.values():
        r.update(flags(r["diff"], r["within_policy_auc"], EVAL_METRICS, r["ranks_within"]))
    return out
