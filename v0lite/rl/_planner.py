"""RL-loop hook: pick prompts and group sizes before rollout, fuse baselines after.

One object sits between the prompt sampler and the rollout workers of a GRPO-style loop::

    planner = RolloutPlanner(V0Regressor(head="knn").fit(X_hist, y_hist))
    for step, batch in enumerate(loader):
        plan = planner.plan(batch, step)                     # before rollout
        successes = rollout(plan.kept_prompts, plan.n_rollouts)
        baselines = planner.observe(plan.kept_prompts, step, successes, plan.n_rollouts)

The value model is anything with ``predict(X)`` and ``add_history(X, y)`` where ``X`` holds
``policy``, ``prompt`` and ``step`` (``v0lite.estimator.V0Regressor`` or your own).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from .._registry import has_protocol, normalise
from ..exceptions import ParameterError, V0liteError
from ..log import check_policy_name
from ._allocate import PMixedSelector, _sizes, _value_fn, allocate, get_selector
from ._beliefs import (
    BinnedStrength,
    disagreement_test,
    fit_prior_strength,
    fuse_baseline,
)
from ._common import (
    _check_counts,
    _check_fraction,
    _check_group_sizes,
    _n_keep,
    _prompt_list,
    _rng,
    _whole,
    check_known_policy,
    check_strengths,
    check_whole_count,
    checked_pass_rates,
    warn_no_outcomes,
)

__all__ = ["Plan", "RolloutPlanner"]

# groups the empirical-Bayes fits read: the latest only, as the policy and the value model's context drift
_EB_WINDOW = 10_000
_INT64_MAX = 2**63 - 1


class Plan(NamedTuple):
    """What to roll out at one step.

    Attributes
    ----------
    kept_prompts : list of str
        Prompts to roll out, in the order of the input batch.
    n_rollouts : numpy.ndarray of int
        Group size for each kept prompt (all ``>= n_min``).
    baselines_prior : numpy.ndarray of float
        The value model's predicted success rate of each kept prompt (the V0 baseline).
    """

    kept_prompts: list
    n_rollouts: np.ndarray
    baselines_prior: np.ndarray


def _check_step(step: Any) -> int:
    """``step`` as the int the history stores: a whole number (a bool, 1.5 or "3" is refused, not cast)."""
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
        raise ParameterError(
            f"step must be an integer (the training step the rollouts come from), got {step!r}. "
            "Fix: pass the trainer's global step as an int, e.g. step=trainer.global_step."
        )
    if not -_INT64_MAX - 1 <= int(step) <= _INT64_MAX:
        raise ParameterError(
            f"step={step!r} is outside the 64-bit integers the history stores steps as (-2**63 <= step < 2**63). "
            "Fix: pass the trainer's global step, e.g. step=trainer.global_step."
        )
    return int(step)


def _check_steps(step: Any, k: int) -> np.ndarray:
    """One checked step per prompt: ``step`` is one int for all ``k`` prompts, or a sequence of ``k`` ints."""
    if not isinstance(step, (list, tuple, np.ndarray)) or np.ndim(step) == 0:  # np.array(3): one step too
        return np.full(k, _check_step(step.item() if isinstance(step, np.ndarray) else step), np.int64)
    if len(step) != k:
        raise ParameterError(
            f"step holds {len(step)} steps for {k} prompts. Fix: pass one step for all of them, or one per prompt."
        )
    out = np.zeros(k, np.int64)
    for i, st in enumerate(step.tolist() if isinstance(step, np.ndarray) else step):  # numpy ints as Python's
        try:
            out[i] = _check_step(st)
        except ParameterError as e:
            raise ParameterError(f"step[{i}]: {e}") from None
    return out


def _frame(policy: str, prompts: Sequence[str], step: Any, n: Any = None):
    """The value model's frame; ``step`` is one int or one per prompt (checked by the caller)."""
    import polars as pl

    steps = np.broadcast_to(np.asarray(step, dtype=np.int64), (len(prompts),))
    cols = {"policy": [policy] * len(prompts), "prompt": list(prompts), "step": steps.copy()}
    if n is not None:
        cols["n"] = np.asarray(n, dtype=np.int64)
    return pl.DataFrame(cols)


class RolloutPlanner:
    """Choose which prompts to roll out and how many rollouts each gets, from V0 predictions.

    At each step the value model predicts every candidate prompt; ``strategy`` keeps
    ``keep_fraction`` of them (see :data:`v0lite.rl.SELECTORS`); the rollout budget
    ``budget_per_prompt x kept`` is then split over the kept prompts with
    :func:`v0lite.rl.allocate` (``n`` in ``{0} U [n_min, n_max]``, value ``value``; never more
    than the budget, and all of it unless a rollout would add no value, e.g. to a prompt
    predicted certain). Kept prompts allocated 0 rollouts (predicted certain success or failure
    when the budget is better spent elsewhere) are dropped from the plan.

    After rollout, :meth:`observe` feeds the outcomes to ``value_model.add_history`` (no
    refit) and returns V0.5-style fused baselines: the group mean shrunk toward the V0
    prior with strength ``prior_strength`` (``"auto"``: empirical Bayes over the latest
    10,000 groups observed before, as the policy drifts; ``default_prior_strength`` until
    ``min_groups_for_fit`` groups have been seen).

    Parameters
    ----------
    value_model : object
        Has ``predict(X) -> p`` (pass rates in [0, 1]) and ``add_history(X, y)`` (checked here).
    strategy : {"p_mixed", "target", "random"} or selector object, default "p_mixed"
        A name of :data:`v0lite.rl.SELECTORS` (``-`` and ``_`` alike, like every name here) or
        any object with ``select`` (see :class:`v0lite.rl.Selector`).
    budget_per_prompt : int >= 1, default 8
        Mean rollouts per kept prompt; at most ``n_max`` (a larger one could never be spent, as no
        prompt gets more than ``n_max``: refused).
    n_min, n_max : int, default 2 and 16
        Smallest and largest group size: whole numbers, ``0 <= n_min <= n_max``. ``n_min=0``
        and ``n_min=1`` are alike (a kept prompt may get a single rollout); the built-in values
        give a group of one rollout no value (it is never mixed), so they never choose one and
        plan as ``n_min=2`` does. Settings under which no group size has any value (e.g.
        ``n_max=1``) would make every plan empty, and are refused.
    keep_fraction : float in (0, 1], default 0.5
        ``1``: every candidate is kept by the selector and only the allocation chooses (it
        drops the prompts it gives 0 rollouts).
    policy : str, default "policy"
        Policy name written into ``X``: the name the value model's history knows the trained
        policy by (non-empty, no leading or trailing spaces: a padded name is another policy).
        A policy the value model has no history of is refused here when its predictions would
        fail on it (a :class:`v0lite.V0Regressor` with ``fallback="error"``, the default; raises
        :class:`~v0lite.exceptions.UnknownPolicyError` naming the policies it knows).
    random_state : int, numpy Generator or None, default 0
        Seeds the selector's tie-breaking / random choice (an int in ``[0, 2**31 - 16]``).
    value : {"p_mixed", "knapsack"}, default "p_mixed"
        Allocation value (see :data:`v0lite.rl.VALUES`).
    prior_strength : float > 0 or "auto", default "auto"
    default_prior_strength : float > 0, default 4.0
    min_groups_for_fit : int >= 1, default 64
    uncertainty : {"beta", None}, default "beta"
        ``"beta"``: rank ("p_mixed" strategy) and allocate by the value expected under a
        ``Beta(c p, c (1 - p))`` belief around each prediction, ``c`` fitted by empirical
        Bayes per quartile of the prediction (:class:`v0lite.rl.BinnedStrength`) on
        the groups observed so far (``prior_strength`` / ``default_prior_strength`` until
        ``min_groups_for_fit`` groups). A prediction near 0 that is often an always-failing
        prompt then gets fewer rollouts. ``None``: trust the point prediction. Measured in
        benchmarks/RESULTS.md (allocation section).
    alpha : float in (0, 1), default 0.05
        Level of the disagreement test recorded in ``last_disagreement_``.

    Notes
    -----
    A planner that has made 3 non-empty plans and was never given an outcome (:meth:`observe`)
    warns once (:class:`~v0lite.exceptions.V0liteWarning`): its value model does not learn from
    the run.

    Attributes
    ----------
    last_plan_ : Plan or None
    last_disagreement_ : numpy.ndarray of bool or None
        From :meth:`observe`: groups whose outcomes are improbable under the prior.
    prior_strength_ : float
        The strength used by the last :meth:`observe`.

    Examples
    --------
    >>> class Const:
    ...     def predict(self, X): return np.linspace(0.05, 0.95, len(X))
    ...     def add_history(self, X, y): return self
    >>> planner = RolloutPlanner(Const(), budget_per_prompt=4, n_max=8)
    >>> plan = planner.plan([f"q{i}" for i in range(6)], step=0)
    >>> len(plan.kept_prompts), int(plan.n_rollouts.sum()) <= 12
    (3, True)
    """

    def __init__(
        self,
        value_model: Any,
        *,
        strategy: Any = "p_mixed",
        budget_per_prompt: int = 8,
        n_min: int = 2,
        n_max: int = 16,
        keep_fraction: float = 0.5,
        policy: str = "policy",
        random_state: Any = 0,
        value: str = "p_mixed",
        prior_strength: Any = "auto",
        default_prior_strength: float = 4.0,
        min_groups_for_fit: int = 64,
        uncertainty: Any = "beta",
        alpha: float = 0.05,
    ):
        missing = [m for m in ("predict", "add_history") if not has_protocol(value_model, (m,))]
        if missing:
            raise ParameterError(
                f"value_model must have predict(X) and add_history(X, y); {type(value_model).__name__} has no "
                f"{' and no '.join(f'{m}()' for m in missing)} (observe() feeds each step's outcomes to "
                "add_history). Fix: pass a v0lite.V0Regressor (v0lite.load(folder) for a saved one), or give your "
                "model the missing method (an add_history that returns self is enough for a model that does not "
                "learn online)."
            )
        budget_per_prompt = check_whole_count(
            "budget_per_prompt",
            budget_per_prompt,
            1,
            "mean rollouts per kept prompt",
            "budget_per_prompt=8 (the default) or your trainer's group size.",
            ": every plan would be empty" if _whole(budget_per_prompt) and budget_per_prompt == 0 else "",
        )
        n_min, n_max = _check_group_sizes(n_min, n_max)
        # a padded name the fitted model holds exactly is that policy (a log may have held 'pol0 ')
        check_policy_name(policy, known=getattr(getattr(value_model, "index_", None), "policy_to_code", ()))
        check_known_policy(value_model, policy)  # now, not at the first plan (nothing is embedded to know it)
        _check_random_state(random_state)
        _check_fraction("keep_fraction", keep_fraction, 0.5, closed_hi=True)
        _check_fraction("alpha", alpha, 0.05, closed_hi=False)
        min_groups_for_fit = check_whole_count(
            "min_groups_for_fit",
            min_groups_for_fit,
            1,
            "the groups observed before the prior strength is fitted on them",
            "min_groups_for_fit=64 (the default).",
        )
        check_strengths(prior_strength, default_prior_strength)
        self.value_model = value_model
        self.strategy = strategy
        self.budget_per_prompt = budget_per_prompt
        self.n_min = n_min
        self.n_max = n_max
        self.keep_fraction = keep_fraction
        self.policy = policy
        self.random_state = random_state
        self.value = value
        self.prior_strength = prior_strength
        self.default_prior_strength = default_prior_strength
        self.min_groups_for_fit = min_groups_for_fit
        if uncertainty not in ("beta", None):
            raise ParameterError(
                f"uncertainty must be 'beta' or None, got {uncertainty!r}. Fix: uncertainty='beta' (the default) or "
                "uncertainty=None (trust the point predictions)."
            )
        self.uncertainty = uncertainty
        self.alpha = alpha
        self._selector = self._make_selector()
        self._check_sizes()
        b, top = self.budget_per_prompt, self.n_max
        if b > top:  # no prompt gets more than n_max: the budget could never be spent
            raise ParameterError(
                f"budget_per_prompt={b} is more than n_max={top}: no prompt gets more than n_max rollouts, so at most "
                f"{top} of the {b} rollouts per kept prompt could be spent. Fix: n_max={b} (or more), or "
                f"budget_per_prompt={top} (or less)."
            )
        self._rng = _rng(random_state)
        self._n_plans = 0  # non-empty plans made (for the no-outcome warning)
        self._priors: dict[tuple[str, int], float] = {}
        self._hist_prior: list[np.ndarray] = []
        self._hist_s: list[np.ndarray] = []
        self._hist_n: list[np.ndarray] = []
        self.last_plan_: Plan | None = None
        self.last_disagreement_: np.ndarray | None = None
        self.prior_strength_ = float(default_prior_strength)

    def _check_sizes(self) -> None:
        """Refuse group sizes under which the allocator gives every prompt 0 rollouts (every plan empty)."""
        sizes = _sizes(self.n_min, self.n_max)
        grid = np.linspace(0.0, 1.0, 101)
        v = np.asarray(_value_fn(self.value)(grid[:, None], sizes[None, :]), dtype=np.float64)
        if not np.any(v[:, 1:] - v[:, :1] > 0):
            raise ParameterError(
                f"with n_min={self.n_min}, n_max={self.n_max} every plan would be empty: no group size allowed "
                f"({sizes[1:].tolist()}) has any value {self.value!r} (a group of 1 rollout is never mixed), so "
                "the allocator gives every prompt 0 rollouts. Fix: n_max >= 2 (default n_min=2, n_max=16)."
            )

    def _make_selector(self):
        pmixed = isinstance(self.strategy, str) and normalise(self.strategy) == "p_mixed"
        params = {"n": self.budget_per_prompt} if pmixed else {}
        return get_selector(self.strategy, **params)

    def _predict(self, prompts: Sequence[str], step: int) -> np.ndarray:
        p = self.value_model.predict(_frame(self.policy, prompts, step))
        return checked_pass_rates(p, len(prompts), self.value_model, lambda i: f"prompt {i} ({str(prompts[i])[:40]!r})")

    def plan(self, prompts: Sequence[str], step: int) -> Plan:
        """Predict, select and allocate for one step's candidate prompts.

        A prompt listed k times is k candidates, and each kept copy is its own group: observe
        every copy, in one :meth:`observe` call (the planned prior of a (prompt, step) is used up
        by the call that observes it; a copy observed in a later call is predicted anew). Steps
        may go backwards: a :class:`v0lite.V0Regressor` predicts step t from its history rows
        with step <= t, whenever they were added. Planned priors are kept until observed or until
        a plan at a later step.

        Parameters
        ----------
        prompts : sequence of str
            Candidate prompts of this step, each a non-empty text (a number, ``None`` or ``""`` is
            refused with a :class:`~v0lite.exceptions.DataError` naming its position).
        step : int
            Training step (the policy's checkpoint) the rollouts will come from (within int64).

        Returns
        -------
        Plan
        """
        prompts = _prompt_list(prompts)
        step = _check_step(step)
        if not prompts:
            return Plan([], np.zeros(0, dtype=np.int64), np.zeros(0))
        warn_no_outcomes(
            self,
            self._n_plans,
            len(self._hist_prior),
            "after each step's rollouts call planner.observe(plan.kept_prompts, step, successes, plan.n_rollouts) "
            "with each kept prompt's successes out of its rollouts.",
        )
        p = self._predict(prompts, step)
        m = _n_keep(len(prompts), self.keep_fraction)
        conc = self._concentration(p)
        if conc is not None and isinstance(self._selector, PMixedSelector):
            keep = np.sort(self._selector.select(p, m, random_state=self._rng, concentration=conc))
        else:
            keep = np.sort(self._selector.select(p, m, random_state=self._rng))
        n = allocate(
            p[keep],
            self.budget_per_prompt * keep.size,
            self.n_min,
            self.n_max,
            self.value,
            concentration=None if conc is None else conc[keep],
        )
        keep, n = keep[n > 0], n[n > 0]
        kept = [prompts[i] for i in keep]
        self._priors = {k: v for k, v in self._priors.items() if k[1] >= int(step)}  # forget old steps
        for q, pi in zip(kept, p[keep]):
            self._priors[(q, int(step))] = float(pi)
        self.last_plan_ = Plan(kept, n, p[keep])
        self._n_plans += bool(kept)
        return self.last_plan_

    def _concentration(self, p: np.ndarray):
        """Per-prompt Beta strength of the belief around ``p`` (None: point predictions)."""
        if self.uncertainty is None:
            return None
        if sum(a.size for a in self._hist_prior) < self.min_groups_for_fit:
            c = float(self.prior_strength) if self.prior_strength != "auto" else float(self.default_prior_strength)
            return np.full(p.size, c)
        return BinnedStrength(min_groups=max(self.min_groups_for_fit, 50)).fit(*self._recent())(p)

    def _strength(self) -> float:
        if self.prior_strength != "auto":
            return float(self.prior_strength)
        if sum(a.size for a in self._hist_prior) < self.min_groups_for_fit:
            return float(self.default_prior_strength)
        return fit_prior_strength(*self._recent())

    def _recent(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prior, successes, n) of the latest ``_EB_WINDOW`` observed groups, for the empirical-Bayes fits."""
        return tuple(np.concatenate(h)[-_EB_WINDOW:] for h in (self._hist_prior, self._hist_s, self._hist_n))

    def _remember(self, prior: np.ndarray, s: np.ndarray, m: np.ndarray) -> None:
        """Keep the observed groups the fits may read: the window, or ``min_groups_for_fit`` if more.

        Older observe calls are forgotten whole once the later ones hold that many groups, so the
        stored count never falls back under ``min_groups_for_fit`` and memory stays bounded.
        """
        for h, a in ((self._hist_prior, prior), (self._hist_s, s), (self._hist_n, m)):
            h.append(a)
        keep = max(_EB_WINDOW, self.min_groups_for_fit)
        while sum(a.size for a in self._hist_prior) - self._hist_prior[0].size >= keep:
            for h in (self._hist_prior, self._hist_s, self._hist_n):
                del h[0]

    def warm(self, prompts: Sequence[str]) -> "RolloutPlanner":
        """Embed a training set ahead of time, so that :meth:`plan` does not wait for the encoder.

        Calls ``value_model.warm(prompts)`` (:meth:`v0lite.V0Regressor.warm` fills the
        embedding cache, on disk and in memory); a value model without ``warm`` has nothing to
        prepare and is left alone. Call it once before training, e.g. on the trainer's GPU
        (``V0Regressor(device="cuda")`` or ``load(folder, device="cuda")``).

        Parameters
        ----------
        prompts : sequence of str
            The prompt texts the value model will be asked about (as the adapter reads them), checked
            as :meth:`plan` checks them.

        Returns
        -------
        self
        """
        prompts = _prompt_list(prompts)  # a str would be warmed character by character
        warm = getattr(self.value_model, "warm", None)
        if warm is not None and prompts:
            warm(prompts)
        return self

    def observe(self, prompts: Sequence[str], step: Any, successes: Any, n: Any, *, prior: Any = None) -> np.ndarray:
        """Record rollout outcomes and return fused per-prompt baselines.

        Calls ``value_model.add_history(X, score)`` with ``score = successes / n`` (the
        value model's context grows; nothing is refitted). The prior is the prediction made
        by :meth:`plan` at this step (predicted now, before adding, if the prompt was not
        planned).

        Parameters
        ----------
        prompts : sequence of str
            Checked as :meth:`plan` checks them, before anything is recorded.
        step : int or sequence of int
            The step the rollouts came from, or one step per prompt: a batch that spans steps
            (an asynchronous trainer) is then recorded by one ``add_history`` call, whole or not
            at all.
        successes : array-like of int
            Successful rollouts per prompt: whole counts out of ``n``, not rates (checked).
        n : array-like of int
            Rollouts per prompt (whole numbers ``>= 1``).
        prior : array-like of float, optional
            The prediction each prompt was planned with (NaN: unknown), for callers that plan
            without :meth:`plan` (the trainer adapters); predicted now where missing.

        Returns
        -------
        numpy.ndarray of float
            ``fuse_baseline(prior, successes / n, n, prior_strength)``, the baseline for the
            group's advantages.
        """
        prompts = _prompt_list(prompts)
        steps = _check_steps(step, len(prompts))
        s, m = _check_counts(prompts, successes, n, min_n=1, whole=True)
        if not prompts:
            return np.zeros(0)
        if prior is None:
            prior = np.array([self._priors.get((q, int(st)), np.nan) for q, st in zip(prompts, steps)])
        else:
            try:
                prior = np.array(prior, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise ParameterError(f"prior must be numbers, got {str(prior)[:60]}. Fix: one p per prompt.") from None
            if prior.size != len(prompts):
                raise V0liteError(f"prior has {prior.size} values for {len(prompts)} prompts; pass one per prompt.")
            bad = ~np.isnan(prior) & ~((prior >= 0) & (prior <= 1))  # NaN means "unknown: predict it now"
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ParameterError(
                    f"prior[{i}] = {prior[i]!r} is not a probability in [0, 1] (a baseline from it would leave the "
                    "rewards' range). Fix: pass the p each prompt was planned with, or NaN to have it predicted now."
                )
        missing = np.isnan(prior)
        for st in np.unique(steps[missing]):  # predicted before anything is added, one call per step
            idx = np.flatnonzero(missing & (steps == st))
            prior[idx] = self._predict([prompts[i] for i in idx], int(st))
        a = self._strength()
        fused = fuse_baseline(prior, s / m, m, a)
        disagreement = disagreement_test(prior, s, m, self.alpha)
        self.value_model.add_history(_frame(self.policy, prompts, steps, m.astype(np.int64)), s / m)
        # the planner's own state moves only once the value model took the groups: a refused
        # add_history leaves both as they were, so the caller's retry is not counted twice
        self.prior_strength_ = a
        self.last_disagreement_ = disagreement
        self._remember(prior, s, m)
        for q, st in zip(prompts, steps):
            self._priors.pop((q, int(st)), None)
        return fused


def _check_random_state(random_state: Any) -> None:
    """``None``, a numpy generator, or the estimator's seeds (an int in [0, SEED_MAX])."""
    if random_state is None or isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return
    from ..estimator import _check_seed

    _check_seed(random_state)
