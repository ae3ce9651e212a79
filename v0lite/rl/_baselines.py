"""The literature's selection baselines for ``alloc-sim`` and the figures every strategy is scored by.

* **Dynamic sampling** (DAPO, Yu et al. 2025): roll out every candidate, then discard the
  groups whose rewards are all equal. It trains on mixed groups only, but pays for every
  candidate's rollouts.
* **GRESO-style skip rule** (:class:`GresoRule`; our reading of Zheng et al. 2025, "Act Only
  When It Pays", arXiv 2506.02177): a prompt whose last ``z`` groups in a row had zero
  variance is skipped before rollout with probability ``1 - p**z``. ``p``, one for prompts
  last seen all-correct (easy) and one for all-wrong (hard), is the probabilistic re-check;
  after every step it moves by ``adjust`` so that the share of zero-variance groups among
  those rolled out tracks a target (GRESO's code: a quarter in all, one third of it easy,
  two thirds hard).
* **MoPPS-style Thompson sampling** (:func:`mopps_scores`; our reading of Qu et al. 2025,
  arXiv 2507.04632): a Beta(1, 1) prior per prompt updated with its own outcomes, discounted
  by ``decay`` per step; each step one success rate is drawn from every posterior and the
  prompts whose draw is closest to 0.5 are kept.

Figures (:class:`SelectionTally`), at a fixed selection budget: a selecting strategy keeps
half of each step's candidates and gives each ``n`` rollouts; dynamic sampling and uniform
roll out every candidate (GRESO's own rule rolls out what it does not skip). A group is
*mixed* when its recorded successes are strictly between 0 and ``n`` (a non-zero GRPO
advantage). Pooled over the evaluated steps unless said otherwise:

``rollouts_per_mixed_group``
    Rollouts spent / groups that came back mixed. Lower is better.
``mixed_groups_per_1000_rollouts``
    ``1000 / rollouts_per_mixed_group``.
``keep_half_mixed_share``
    Share of the rolled-out groups that are mixed, per step, averaged over steps (dynamic
    sampling and uniform: the share among all candidates).
``zero_advantage_avoided``
    Share of the candidates' unmixed (zero-advantage) groups that were not rolled out.
``dynamic_sampling_ratio``
    Dynamic sampling's ``rollouts_per_mixed_group`` / this strategy's: how many times fewer
    rollouts a mixed group costs than with dynamic sampling.
``rolled_out_share``
    Share of the candidates rolled out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["GresoRule", "mopps_scores", "zero_variance_streaks", "SelectionTally", "strategy_entry"]


def zero_variance_streaks(pair: np.ndarray, step: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per visit: how many of the prompt's visits just before it had zero variance in a row, and the last kind.

    ``pair`` is an integer prompt id per visit, ``step`` its step, ``score`` its success rate;
    visits must be sorted by step. Returns ``(streak, last_easy)``: the length of the run of
    all-equal groups that ends at the prompt's previous visit (0 when that one was mixed or
    there is none), and whether that run's last group was all-correct.

    Examples
    --------
    >>> zero_variance_streaks(np.array([0, 0, 0, 0]), np.arange(4), np.array([1.0, 1.0, 0.5, 0.0]))
    (array([0, 1, 2, 0]), array([False,  True,  True, False]))
    """
    size = int(pair.max()) + 1 if pair.size else 0
    run = np.zeros(size, dtype=np.int64)
    easy = np.zeros(size, dtype=bool)
    streak = np.zeros(pair.size, dtype=np.int64)
    last_easy = np.zeros(pair.size, dtype=bool)
    bounds = np.flatnonzero(np.diff(step)) + 1
    for idx in np.split(np.arange(pair.size), bounds):
        pr, s = pair[idx], score[idx]
        streak[idx], last_easy[idx] = run[pr], easy[pr]
        zero = (s <= 0) | (s >= 1)
        run[pr] = np.where(zero, run[pr] + 1, 0)
        easy[pr] = zero & (s >= 1)
    return streak, last_easy


class GresoRule:
    """GRESO-style pre-rollout skip rule with its probabilistic re-check (see the module docstring).

    Parameters
    ----------
    p_start : float in (0, 1], default 0.5
        Initial re-check probability per streak step, easy and hard alike.
    target_zero_variance : float in (0, 1), default 0.25
        Target share of zero-variance groups among those rolled out.
    adjust : float >= 0, default 0.05
        Change of ``p`` after each step. GRESO adjusts per trainer step; one replay step is
        about one epoch, several trainer steps, hence a larger default than GRESO's.
    p_min : float in (0, 1], default 0.05
        Smallest ``p``, so no prompt is skipped for good.

    Examples
    --------
    >>> rule = GresoRule()
    >>> rule.keep_probability(np.array([0, 1, 2]), np.array([False, True, False])).tolist()
    [1.0, 0.5, 0.25]
    """

    def __init__(
        self, p_start: float = 0.5, target_zero_variance: float = 0.25, adjust: float = 0.05, p_min: float = 0.05
    ):
        if not (0 < p_start <= 1 and 0 < target_zero_variance < 1 and 0 < p_min <= 1 and adjust >= 0):
            raise ValueError(
                "GresoRule needs 0 < p_start <= 1, 0 < target_zero_variance < 1, 0 < p_min <= 1 "
                f"and adjust >= 0; got {p_start}, {target_zero_variance}, {p_min}, {adjust}."
            )
        self.p_start = float(p_start)
        self.target_zero_variance = float(target_zero_variance)
        self.adjust = float(adjust)
        self.p_min = float(p_min)
        self.p_easy_ = self.p_hard_ = self.p_start

    def keep_probability(self, streak: np.ndarray, last_easy: np.ndarray) -> np.ndarray:
        """``p**z``: 1 for a prompt whose previous group was mixed (or that has none)."""
        p = np.where(last_easy, self.p_easy_, self.p_hard_)
        return np.where(streak > 0, p ** np.asarray(streak, dtype=np.float64), 1.0)

    def select(self, streak: np.ndarray, last_easy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Boolean mask of the prompts rolled out (each skipped with probability ``1 - p**z``)."""
        return rng.random(np.size(streak)) < self.keep_probability(streak, last_easy)

    def adapt(self, rolled_out_scores: np.ndarray) -> None:
        """Nudge ``p_easy_`` / ``p_hard_`` from the success rates of the groups just rolled out."""
        s = np.asarray(rolled_out_scores, dtype=np.float64)
        if s.size == 0:
            return
        for kind, share, target in (
            ("easy", (s >= 1).mean(), self.target_zero_variance / 3),
            ("hard", (s <= 0).mean(), self.target_zero_variance * 2 / 3),
        ):
            p = getattr(self, f"p_{kind}_") + (self.adjust if share < target else -self.adjust)
            setattr(self, f"p_{kind}_", float(np.clip(p, self.p_min, 1.0)))


def mopps_scores(
    successes: np.ndarray,
    trials: np.ndarray,
    rng: np.random.Generator,
    *,
    target: float = 0.5,
    prior: tuple = (1.0, 1.0),
) -> np.ndarray:
    """MoPPS-style ranking score (higher = keep): minus the distance of a posterior draw to ``target``.

    ``successes`` / ``trials`` are the prompt's own (decayed) counts; the posterior is
    ``Beta(prior[0] + successes, prior[1] + trials - successes)``.

    Examples
    --------
    >>> s = mopps_scores(np.array([4.0, 0.0]), np.array([8.0, 40.0]), np.random.default_rng(0))
    >>> bool(s[0] > s[1])
    True
    """
    s = np.asarray(successes, dtype=np.float64)
    m = np.asarray(trials, dtype=np.float64)
    return -np.abs(rng.beta(prior[0] + s, prior[1] + np.maximum(m - s, 0.0)) - target)


class SelectionTally:
    """Pooled selection figures of one strategy (see the module docstring).

    Examples
    --------
    >>> t = SelectionTally()
    >>> t.add(np.array([True, True, False, False]), np.array([True, False, True, False]), 8)
    >>> t.figures()["rollouts_per_mixed_group"], t.figures()["zero_advantage_avoided"]
    (16.0, 0.5)
    """

    def __init__(self):
        self.rollouts = 0.0
        self.mixed = 0.0
        self.rolled = 0.0
        self.candidates = 0.0
        self.unmixed_rolled = 0.0
        self.unmixed_all = 0.0
        self.shares: list[float] = []

    def add(self, rolled_out: np.ndarray, mixed: np.ndarray, n: int) -> None:
        """One step: ``rolled_out`` and ``mixed`` are boolean masks over its candidates."""
        rolled_out = np.asarray(rolled_out, dtype=bool)
        mixed = np.asarray(mixed, dtype=bool)
        k = int(rolled_out.sum())
        self.rollouts += n * k
        self.rolled += k
        self.candidates += rolled_out.size
        self.mixed += float(mixed[rolled_out].sum())
        self.unmixed_rolled += float((~mixed[rolled_out]).sum())
        self.unmixed_all += float((~mixed).sum())
        self.shares.append(float(mixed[rolled_out].mean()) if k else float("nan"))

    def figures(self) -> dict:
        nan = float("nan")
        rpm = self.rollouts / self.mixed if self.mixed else nan
        sh = np.asarray(self.shares, dtype=np.float64)
        return {
            "keep_half_mixed_share": float(np.nanmean(sh)) if np.isfinite(sh).any() else float("nan"),
            "rollouts_per_mixed_group": rpm,
            "mixed_groups_per_1000_rollouts": 1000.0 * self.mixed / self.rollouts if self.rollouts else float("nan"),
            "zero_advantage_avoided": 1.0 - self.unmixed_rolled / self.unmixed_all if self.unmixed_all else nan,
            "rolled_out_share": self.rolled / self.candidates if self.candidates else float("nan"),
        }


def strategy_entry(
    tally: SelectionTally, label: str, causal: bool, dynamic_rpm: float, allocation: Any = None, spent: Any = None
) -> dict:
    """One value of the ``strategies`` mapping: the tally's figures plus label, causality and ratios.

    ``spent``: the rollouts the budgeted allocation spent (``allocation_rollouts_spent``; None where the
    strategy has no allocation), so that allocations are compared at the same spend as uniform's.
    """
    out = {"label": label, "causal": bool(causal), **tally.figures()}
    rpm = out["rollouts_per_mixed_group"]
    out["dynamic_sampling_ratio"] = dynamic_rpm / rpm if rpm == rpm and rpm > 0 else float("nan")
    out["allocation_mixed_groups_per_1000_rollouts"] = float("nan") if allocation is None else float(allocation)
    out["allocation_rollouts_spent"] = None if spent is None else int(spent)
    return out
