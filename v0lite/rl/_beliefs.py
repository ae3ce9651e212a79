"""Beliefs about a prompt's success rate: Beta posteriors and V0.5-style fusion.

* :class:`BetaPosterior` -- per-prompt Beta posterior from own history with exponential
  decay for an evolving policy, the V0 prediction as its prior.
* :func:`fuse_baseline`, :func:`fit_prior_strength`, :class:`BinnedStrength`,
  :func:`disagreement_test` -- V0.5-style fusion of the V0 prior with a sparse group mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..exceptions import V0liteError
from ._common import _as_p, _check_counts

__all__ = ["BetaPosterior", "fuse_baseline", "fit_prior_strength", "BinnedStrength", "disagreement_test"]


class BetaPosterior:
    """Per-prompt Beta posterior of the success rate from own (decayed) history.

    The prior for prompt ``x`` is ``Beta(a * prior_p, a * (1 - prior_p))`` with
    ``a = prior_strength`` and ``prior_p`` the value model's prediction (so a cold prompt
    gets exactly the V0 prediction). Observed successes and trials are discounted by
    ``decay ** (t - t_obs)`` when read at step ``t``, so an evolving policy forgets old
    outcomes; ``decay=1`` is a static policy.

    Parameters
    ----------
    prior_strength : float, default 4.0
        Pseudo-rollouts the prior is worth.
    decay : float in (0, 1], default 0.9
        Per-step discount of past outcomes.

    Examples
    --------
    >>> post = BetaPosterior(prior_strength=2.0, decay=1.0)
    >>> post.update(["q1"], [3], [4], step=0)
    >>> post.mean(["q1", "cold"], prior_p=[0.5, 0.3], step=1).tolist()
    [0.6666666666666666, 0.3]
    """

    def __init__(self, prior_strength: float = 4.0, decay: float = 0.9):
        if not prior_strength >= 0:
            raise V0liteError(f"prior_strength must be >= 0, got {prior_strength}.")
        if not 0 < decay <= 1:
            raise V0liteError(f"decay must be in (0, 1], got {decay}.")
        self.prior_strength = float(prior_strength)
        self.decay = float(decay)
        self._index: dict[Any, int] = {}
        self._s = np.zeros(0)
        self._n = np.zeros(0)
        self._t = np.zeros(0)

    def _rows(self, keys, *, create: bool) -> np.ndarray:
        out = np.empty(len(keys), dtype=np.int64)
        for j, k in enumerate(keys):
            r = self._index.get(k)
            if r is None:
                if create:
                    r = self._index[k] = len(self._index)
                else:
                    r = -1
            out[j] = r
        grow = len(self._index) - self._s.size
        if grow > 0:
            self._s = np.concatenate([self._s, np.zeros(grow)])
            self._n = np.concatenate([self._n, np.zeros(grow)])
            self._t = np.concatenate([self._t, np.zeros(grow)])
        return out

    def update(self, prompts, successes, n, *, step: int = 0) -> None:
        """Add ``successes`` out of ``n`` rollouts for each prompt, observed at ``step``."""
        s, m = _check_counts(prompts, successes, n, min_n=0)
        rows = self._rows(list(prompts), create=True)
        # decay each touched prompt to this step once, then add (duplicates accumulate).
        uniq = np.unique(rows)
        age = np.maximum(step - self._t[uniq], 0)
        f = self.decay**age
        self._s[uniq] *= f
        self._n[uniq] *= f
        self._t[uniq] = np.maximum(self._t[uniq], step)
        np.add.at(self._s, rows, s)
        np.add.at(self._n, rows, m)

    def counts(self, prompts, *, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Decayed (successes, trials) of each prompt as seen at ``step`` (0 for unseen)."""
        rows = self._rows(list(prompts), create=False)
        seen = rows >= 0
        r = np.where(seen, rows, 0)
        if self._s.size == 0:
            return np.zeros(len(rows)), np.zeros(len(rows))
        f = np.where(seen, self.decay ** np.maximum(step - self._t[r], 0), 0.0)
        return self._s[r] * f, self._n[r] * f

    def params(self, prompts, prior_p, *, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Posterior Beta parameters ``(alpha, beta)``."""
        prior = _as_p(prior_p, "prior_p")
        s, m = self.counts(prompts, step=step)
        a = self.prior_strength
        return a * prior + s, a * (1 - prior) + (m - s)

    def mean(self, prompts, prior_p, *, step: int) -> np.ndarray:
        """Posterior mean; the prior itself for prompts without own history (or a = n = 0)."""
        prior = _as_p(prior_p, "prior_p")
        s, m = self.counts(prompts, step=step)
        a = self.prior_strength
        den = a + m
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (a * prior + s) / den
        return np.where(den > 0, out, prior)


# ----------------------------------------------------------------------------- fusion
def fuse_baseline(prior_p: Any, group_mean: Any, n: Any, prior_strength: float) -> np.ndarray:
    """Shrink a sparse group mean toward the V0 prior (V0.5-style baseline).

    ``(a * prior + n * mean) / (a + n)``: the posterior mean under a
    ``Beta(a * prior, a * (1 - prior))`` prior after ``n * mean`` successes in ``n``
    rollouts. Choose ``a`` with :func:`fit_prior_strength` or give it.

    Examples
    --------
    >>> fuse_baseline([0.3], [1.0], [2], prior_strength=2.0).tolist()
    [0.65]
    """
    prior = np.asarray(prior_p, dtype=np.float64)
    mean = np.asarray(group_mean, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    a = float(prior_strength)
    if a < 0:
        raise V0liteError(f"prior_strength must be >= 0, got {a}.")
    den = a + m
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a * prior + m * mean) / den
    return np.where(den > 0, out, prior)


def fit_prior_strength(
    prior_p: Any,
    successes: Any,
    n: Any,
    *,
    grid: Any = None,
    eps: float = 1e-3,
) -> float:
    """Empirical-Bayes prior strength: maximise the beta-binomial marginal likelihood.

    Each group's successes are modelled as BetaBinomial(n, a * prior, a * (1 - prior)).
    By default ``a`` is searched in [0.1, 1000]: a 13-point log grid, then a bounded 1-D
    refinement (in log ``a``) around the best grid point. With ``grid`` given, the best
    grid value is returned. A large ``a`` means the prior predicts groups well, a small one
    that the group mean should dominate.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> prior = rng.uniform(0.1, 0.9, 2000)
    >>> s = rng.binomial(8, prior)  # outcomes drawn from exactly the prior
    >>> fit_prior_strength(prior, s, np.full(2000, 8)) > 50
    True
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import betaln

    prior = np.clip(np.asarray(prior_p, dtype=np.float64).ravel(), eps, 1 - eps)
    s = np.asarray(successes, dtype=np.float64).ravel()
    m = np.asarray(n, dtype=np.float64).ravel()
    keep = np.isfinite(prior) & np.isfinite(s) & (m > 0)
    prior, s, m = prior[keep], s[keep], m[keep]
    if prior.size == 0:
        raise V0liteError("fit_prior_strength needs at least one group with n > 0.")

    def loglik(a: np.ndarray) -> np.ndarray:
        # beta-binomial log-likelihood up to the binomial coefficient (constant in a)
        alpha = a[:, None] * prior[None, :]
        beta = a[:, None] * (1 - prior[None, :])
        return (betaln(alpha + s, beta + m - s) - betaln(alpha, beta)).sum(axis=1)

    if grid is not None:
        grid = np.asarray(grid, dtype=np.float64)
        return float(grid[int(np.argmax(loglik(grid)))])
    logs = np.linspace(np.log(0.1), np.log(1000.0), 13)
    j = int(np.argmax(loglik(np.exp(logs))))
    lo, hi = logs[max(j - 1, 0)], logs[min(j + 1, logs.size - 1)]
    res = minimize_scalar(
        lambda x: -loglik(np.exp(np.array([x])))[0], bounds=(lo, hi), method="bounded", options={"xatol": 1e-3}
    )
    return float(np.exp(res.x))


class BinnedStrength:
    """Empirical-Bayes Beta strength per quantile bin of the prediction (heteroscedastic belief).

    How sure a prediction is depends on its value (e.g. a prediction near 0 from a prompt
    that never succeeded is surer than one at 0.4). The predictions of earlier groups are
    cut into ``n_bins`` quantile bins and :func:`fit_prior_strength` is fitted in each; a
    bin with fewer than ``min_groups`` groups gets the strength fitted on all groups.
    Calling the fitted object maps new predictions to their bin's strength, ready for
    ``allocate(..., concentration=...)`` or ``PMixedSelector(concentration=...)``.

    Parameters
    ----------
    n_bins : int, default 4
    min_groups : int, default 200

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> prior = rng.uniform(0, 1, 4000)
    >>> s = rng.binomial(8, prior)
    >>> bs = BinnedStrength().fit(prior, s, np.full(4000, 8))
    >>> bs([0.1, 0.9]).shape
    (2,)
    """

    def __init__(self, n_bins: int = 4, min_groups: int = 200):
        if int(n_bins) < 1:
            raise V0liteError(f"n_bins must be >= 1, got {n_bins}.")
        self.n_bins = int(n_bins)
        self.min_groups = int(min_groups)

    def fit(self, prior_p: Any, successes: Any, n: Any) -> "BinnedStrength":
        prior = np.asarray(prior_p, dtype=np.float64).ravel()
        s = np.asarray(successes, dtype=np.float64).ravel()
        m = np.asarray(n, dtype=np.float64).ravel()
        self.overall_ = fit_prior_strength(prior, s, m)
        self.edges_ = (
            np.unique(np.quantile(prior, np.linspace(0, 1, self.n_bins + 1)[1:-1])) if self.n_bins > 1 else np.zeros(0)
        )
        z = np.searchsorted(self.edges_, prior)
        self.strengths_ = np.array(
            [
                fit_prior_strength(prior[z == b], s[z == b], m[z == b])
                if (z == b).sum() >= self.min_groups
                else self.overall_
                for b in range(self.edges_.size + 1)
            ]
        )
        return self

    def __call__(self, prior_p: Any) -> np.ndarray:
        if not hasattr(self, "strengths_"):
            raise V0liteError("BinnedStrength is not fitted. Call fit(prior_p, successes, n) first.")
        return self.strengths_[np.searchsorted(self.edges_, np.asarray(prior_p, dtype=np.float64))]


def disagreement_test(prior_p: Any, successes: Any, n: Any, alpha: float = 0.05, *, return_pvalue: bool = False):
    """Flag groups whose outcomes are improbable under the prior (two-sided binomial test).

    The p-value is ``min(1, 2 * min(P(X <= s), P(X >= s)))`` for
    ``X ~ Binomial(n, prior_p)``; a group is flagged when it is below ``alpha``, i.e. the V0
    prior and the rollouts disagree and more rollouts (or trusting the group mean) are
    warranted.

    Returns
    -------
    flags : numpy.ndarray of bool
    pvalue : numpy.ndarray of float, only with ``return_pvalue=True``

    Examples
    --------
    >>> disagreement_test([0.05, 0.5], [4, 2], [4, 4]).tolist()
    [True, False]
    """
    from scipy.stats import binom

    prior = np.asarray(prior_p, dtype=np.float64)
    s = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    if not 0 < alpha < 1:
        raise V0liteError(f"alpha must be in (0, 1), got {alpha}.")
    lower = binom.cdf(s, m, prior)
    upper = binom.sf(s - 1, m, prior)
    pval = np.minimum(1.0, 2.0 * np.minimum(lower, upper))
    pval = np.where(m > 0, pval, 1.0)
    flags = pval < alpha
    return (flags, pval) if return_pvalue else flags
