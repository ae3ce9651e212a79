"""The pool: ``route_eval``'s checks before any fit (``pool=`` restricting both logs, and a test log
whose complete prompts, an outcome and a cost of every model, are too few for an evaluation), and the
default pool without a log (:func:`priced_split`: the priced policies the value model knows), which
``Router`` and ``v0lite route`` share, each saying it in its caller's terms; and the prices a router takes
but cannot use (:func:`warn_unused_prices`, :func:`ignored_prices`), said rather than dropped."""

from __future__ import annotations

import shlex
import warnings
from collections.abc import Iterable

import numpy as np
import polars as pl

from .._log_warnings import meant_name
from ..exceptions import DataError, ParameterError, V0liteWarning

__all__ = ["restrict_pool", "check_test_coverage", "SparseTestError", "MIN_TEST"]

#: fewer complete test prompts than this (of a test log with at least this many) is refused
MIN_TEST = 20


def restrict_pool(train: pl.DataFrame, test: pl.DataFrame, pool, name: str = "pool"):
    """``(train, test)`` with only the rows of the models in ``pool`` (None: unchanged).

    ``name``: how the caller names the pool in errors (``pool``, ``--pool``).

    Raises
    ------
    ParameterError
        ``pool`` is not a non-empty list of model names.
    DataError
        A name is not a model of both logs, naming it and the models of both.
    """
    if pool is None:
        return train, test
    names = list(pool) if isinstance(pool, Iterable) and not isinstance(pool, str) else []
    if not names or not all(isinstance(p, str) for p in names):
        raise ParameterError(
            f"{name} must be a non-empty list of model names, got {pool!r}. Fix: pass e.g. {name}=['a', 'b']."
        )
    both = sorted(set(train["policy"].unique().to_list()) & set(test["policy"].unique().to_list()))
    unknown = [p for p in names if p not in both]
    if unknown:
        raise DataError(
            f"{name} names {unknown}, not models of both logs (the models of both: {both}). "
            f"Fix: name in {name} only models with outcomes in both logs."
        )
    keep = pl.col("policy").is_in(names)
    return train.filter(keep), test.filter(keep)


def _enough(kept: int, n: int) -> bool:
    """At least half the test prompts complete, and at least MIN_TEST of a test log that has them."""
    return 2 * kept >= n and not kept < MIN_TEST <= n


class SparseTestError(DataError):
    """Too few complete test prompts for the pool; :meth:`text` says it in Python or in flag terms."""

    def __init__(self, head: str, out: list[str] | None, others: list[str]):
        self.head, self.out, self.others = head, out, others
        super().__init__(self.text(cli=False), column="policy")

    def text(self, cli: bool) -> str:
        if self.out is None:  # no smaller pool of two or more models has enough complete prompts
            return f"{self.head} Fix: give the test log an outcome (and a cost) of every model on each prompt."
        new = self.out[0]
        if cli:
            leave = f"--pool {shlex.quote(','.join(self.others))}"
            later = f"--new-model {shlex.quote(new)} --n N"
        else:
            leave, later = f"pool={self.others!r}", f"new_model={new!r}, new_n=<n>"
        return (
            f"{self.head} Fix: leave {', '.join(map(repr, self.out))} out with {leave}; to measure adding "
            f"{new!r} with few train outcomes, log its outcomes on the test prompts and pass {later}."
        )


def check_test_coverage(Y: np.ndarray, C: np.ndarray, policies: list[str], complete: np.ndarray) -> None:
    """Warn of the test prompts dropped for lacking some model's outcome or cost, naming each model's
    coverage (the fewest first); refuse (:class:`SparseTestError`) when the rest are too few.

    ``Y``, ``C``: test prompts x ``policies`` outcomes and costs (NaN: missing); ``complete``: the rows kept.
    """
    n, kept = len(complete), int(complete.sum())
    if kept == n:
        return
    has = ~(np.isnan(Y) | np.isnan(C))
    cover = sorted(zip(has.sum(axis=0).tolist(), policies))  # the fewest first
    lacking = [(c, p) for c, p in cover if c < n]
    shown = ", ".join(f"{p!r} {c} of {n}" for c, p in lacking[:5]) + (", ..." if len(lacking) > 5 else "")
    each = f"the test prompts with each model's outcome and cost, the fewest first: {shown}"
    if _enough(kept, n):
        warnings.warn(
            f"{n - kept} test prompts of {n} lack an outcome or cost for some policy and are dropped ({each}).",
            V0liteWarning,
            stacklevel=3,
        )
        return
    out: list[str] | None = None
    for i in range(1, len(cover) - 1):  # leave out the least covered models, keeping two or more
        rest = [j for j, p in enumerate(policies) if p not in {q for _, q in cover[:i]}]
        if _enough(int(has[:, rest].all(axis=1).sum()), n):
            out = [p for _, p in cover[:i]]
            break
    need = f"at least half of them{f' and at least {MIN_TEST}' if n >= MIN_TEST else ''}"
    head = (
        f"only {kept} of {n} test prompts have an outcome and a cost of every model of the pool, and an "
        f"evaluation needs {need} ({each})."
    )
    raise SparseTestError(head, out, [p for p in policies if p not in (out or ())])


def _history_policies(value_model) -> set[str] | None:
    """The policies a value model has history for, when it says (a fitted ``V0Regressor``); else None."""
    known = getattr(getattr(value_model, "index_", None), "policies", None)
    return None if known is None else {str(p) for p in known}


def priced_split(value_model, prices) -> tuple[list, list, list, set | None]:
    """``(pool, later, unpriced, known)`` of the default pool without a log (``Router`` and ``v0lite route``).

    ``pool``: the priced policies the value model has history for; ``later``: the priced ones it has
    none for (kept for ``add_history``); ``unpriced``: those with history but no price; ``known``: what
    it has history for, or None when it does not say (then every priced policy is the pool).
    """
    known = _history_policies(value_model)
    if known is None:
        return sorted(prices), [], [], None
    pool = sorted(p for p in prices if p in known)
    return pool, sorted(p for p in prices if p not in known), sorted(p for p in known if p not in prices), known


def default_pool(value_model, prices: dict) -> list[str]:
    """``Router.fit``'s pool without a log: the priced policies the value model has history for (every priced
    one when it does not say), warning of those with history but no price (:class:`V0liteWarning`)."""
    pool, later, unpriced, known = priced_split(value_model, prices)
    if known is None:  # a value model that does not say what it knows: every priced policy
        return pool
    if not pool:
        raise DataError(
            f"none of the {len(prices)} priced policies has history in the value model (priced: "
            f"{later[:8]}; it knows {len(known)}: {sorted(known)[:8]}). Fix: pass prices for the value "
            "model's policies, or name the pool with policies=[...]."
        )
    if unpriced:
        wanted = ", ".join(f"{p!r}: <cost per call>" for p in unpriced)
        warnings.warn(  # the priced ones without history: warn_unused_prices says them
            f"policies {unpriced} have history in the value model but no price, so they are not in the pool "
            f"(it is the {len(pool)} priced ones). Fix: pass prices={{{wanted}}} to route to them too, "
            f"or policies=[...] to name the pool.",
            V0liteWarning,
            stacklevel=3,
        )
    return pool


def warn_unused_prices(prices: dict, pool, value_model, stacklevel: int = 3, also_known=()) -> None:
    """Warn (:class:`V0liteWarning`) of the names of ``prices`` in neither ``pool`` nor the value model's
    history (only the pool when it does not say) nor ``also_known``: a typo, a case variant or an unknown
    model prices nothing, and saying so, with the known name meant, is the one check of ``Router.fit`` and
    ``Router.set_prices`` (the CLI prints it as its ``warning:`` line). ``also_known``: names known
    elsewhere (route-eval: the logs' models that ``pool=`` left out, kept priced for a later join)."""
    held = _history_policies(value_model)
    known = {*pool, *(held or ()), *also_known}
    unused = [p for p in prices if p not in known]
    if not unused:
        return
    near = {u: m for u in unused if (m := meant_name(u, known)) is not None}
    meant = "; ".join(f"{u!r}: did you mean {m!r}?" for u, m in near.items())
    where = "in neither the pool nor the value model's history" if held is not None else "not in the pool"
    warnings.warn(
        f"the prices name {len(unused)} {'policy' if len(unused) == 1 else 'policies'} {where}, which price "
        f"nothing: {unused[:8]}{'' if len(unused) <= 8 else ' ...'}{f' ({meant})' if meant else ''}. Fix: "
        "correct a misspelt name in prices; a name of a model with no outcomes yet is kept: it joins the pool at "
        "its price once add_history brings them.",
        V0liteWarning,
        stacklevel=stacklevel,
    )


def ignored_prices(router, prices: dict, seen: list, join: bool) -> list[str]:
    """What ``Router.add_history`` does not use of ``prices``, each with why (for its warning)."""
    added = getattr(router, "added_prices_", {})
    pool = router.policies_
    pooled = [p for p in prices if p in pool and p not in added]
    joined = [p for p in prices if p in added]
    absent = [p for p in prices if p not in pool and p not in seen]
    new = [p for p in prices if p not in pool and p in seen]
    why = []
    if pooled:
        why.append(f"{pooled} are already in the pool (their cost comes from the cost model)")
    if joined:
        at = ", ".join(f"{p!r} at {added[p]:g}" for p in joined)
        why.append(f"{joined} are already in the pool (they joined at a price per call: {at})")
    if absent:
        why.append(f"{absent} have no rows in this log (nothing to join)")
    if new and not join:
        why.append(f"{new} do not join with join=False (their outcomes reach the value model only)")
    return why
