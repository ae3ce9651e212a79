"""Scoring of a replay's predictions: keep-half mixed shares, allocation, and the strategies side by side.

:func:`score_predictions` turns per-group predictions (warm, cold, history baselines) into the
figures ``alloc_sim`` reports; :mod:`v0lite.rl._replay` documents the protocol.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from ._allocate import PMixedSelector, RandomSelector, _top_m, allocate, p_mixed
from ._baselines import GresoRule, SelectionTally, mopps_scores, strategy_entry
from ._beliefs import BinnedStrength, fuse_baseline
from ._common import _n_keep, _rng

__all__ = ["score_predictions", "STRATEGIES"]

_DECAYS = (0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
_SHARE_NAMES = (
    "warm",
    "cold",
    "random",
    "last_visit",
    "mean_last3",
    "oracle",
    "warm_point",
    "cold_point",
    "posterior",
    "history",
    "ceiling",
)
_ALLOC_NAMES = (
    "warm",
    "cold",
    "uniform",
    "oracle",
    "warm_point",
    "cold_point",
    "posterior",
    "history",
    "last_visit",
    "mean_last3",
    "ceiling",
)
_EB_WINDOW = 10_000
# MoPPS-style baseline's per-step discount: the best of 0.5, 0.7, 0.9 and 1 on the oneshot replay
# (keep-half 0.74 / 0.77 / 0.81 / 0.80), so the baseline is not handicapped by our choice
_MOPPS_DECAY = 0.9
# (key in `strategies`, internal name, label, causal)
STRATEGIES = (
    ("v0_warm", "warm", "V0 warm prediction, Beta belief", True),
    ("v0_posterior", "posterior", "V0 cold prior + own decayed history", True),
    ("v0_cold", "cold", "V0 cold (own rows hidden at every step), Beta belief", True),
    ("history", "history", "own decayed history, Beta posterior (no V0)", True),
    ("mean_last3", "mean_last3", "mean of own last 3 visits", True),
    ("last_visit", "last_visit", "own last visit", True),
    ("mopps", "mopps", "MoPPS-style: own Beta posterior, Thompson draw nearest 0.5", True),
    ("greso", "greso", "GRESO-style: keep the highest re-check probability", True),
    ("greso_rule", "greso_rule", "GRESO-style skip rule, its own budget", True),
    ("random", "random", "random half", True),
    ("dynamic_sampling", "dynamic_sampling", "DAPO dynamic sampling: roll out all, drop unmixed", True),
    ("uniform", "uniform", "uniform: roll out all, train on all", True),
    ("ceiling", "ceiling", "NOT CAUSAL: Beta belief around the prompt's mean over its other visits", False),
    ("oracle", "oracle", "NOT CAUSAL: the recorded score itself", False),
)


_A_GRID = np.exp(np.linspace(np.log(0.1), np.log(1000.0), 13))


def _fit_posterior(prior: np.ndarray, own: np.ndarray, s: np.ndarray, n: np.ndarray, decays: tuple, eps: float = 1e-3):
    """Empirical Bayes of (prior strength a, decay d) of the posterior.

    The posterior is ``Beta(a prior + s_d, a (1 - prior) + m_d - s_d)``.

    Maximises the beta-binomial likelihood of the recorded outcomes (``s`` of ``n``): a
    13-point log grid of ``a`` in [0.1, 1000] for every decay, then a bounded 1-D
    refinement of log ``a`` around the best grid point of the best decay. ``own`` is
    (len(decays), 2, m).
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import betaln

    pr = np.clip(prior, eps, 1 - eps)

    def loglik(a, j):
        a = np.atleast_1d(a)[:, None]
        alpha = a * pr + own[j, 0]
        beta = a * (1 - pr) + own[j, 1] - own[j, 0]
        return (betaln(alpha + s, beta + n - s) - betaln(alpha, beta)).sum(axis=1)

    best = (-np.inf, 6, len(decays) - 1)
    for j in range(len(decays)):
        ll = loglik(_A_GRID, j)
        i = int(np.argmax(ll))
        if ll[i] > best[0]:
            best = (float(ll[i]), i, j)
    _, i, j = best
    logs = np.log(_A_GRID)
    lo, hi = logs[max(i - 1, 0)], logs[min(i + 1, logs.size - 1)]
    res = minimize_scalar(
        lambda x: -loglik(np.exp(x), j)[0], bounds=(lo, hi), method="bounded", options={"xatol": 1e-2}
    )
    return float(np.exp(res.x)), float(decays[j])


class _Window:
    """The last ``_EB_WINDOW`` visits of the evaluated steps before t (for empirical Bayes)."""

    def __init__(self):
        self.parts: list[dict] = []

    def push(self, **arrays) -> None:
        self.parts.append(arrays)
        while sum(len(p["s"]) for p in self.parts) - len(self.parts[0]["s"]) >= _EB_WINDOW:
            self.parts.pop(0)

    def get(self, key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in self.parts], axis=-1)

    def __bool__(self) -> bool:
        return bool(self.parts)


def _keep(score_or_idx, k: int) -> np.ndarray:
    mask = np.zeros(k, dtype=bool)
    mask[score_or_idx] = True
    return mask


def _shares_and_alloc(name, mean, conc, true, mixed, m, rng, budget, n_min, n_max, n, shares, eff, tallies):
    """Keep-half share, selection tally and budgeted allocation of one strategy (point when ``conc`` is None)."""
    sel = PMixedSelector(n)
    kept = sel.select(mean, m, random_state=rng, concentration=conc)
    shares[name].append(float(mixed[kept].mean()))
    tallies[name].add(_keep(kept, true.size), mixed, n)
    if name in eff:
        n_i = allocate(mean, budget, n_min, n_max, "p_mixed", method="hull", concentration=conc)
        eff[name][0] += float(p_mixed(true, n_i).sum())
        eff[name][1] += int(n_i.sum())


def score_predictions(
    pred: pl.DataFrame,
    *,
    rollouts_per_prompt: int = 8,
    group_sizes: tuple = (2, 4),
    n_min: int = 2,
    n_max: Any = None,
    prior_strength: Any = "auto",
    default_prior_strength: float = 4.0,
    decays: tuple = _DECAYS,
    n_bins: int = 4,
    random_state: Any = 0,
) -> dict:
    """Score replayed predictions (the second half of :func:`alloc_sim`).

    ``pred`` holds one row per evaluated group (its own ``score`` and ``n``; rows of one
    (policy, prompt, step) are separate groups), sorted by step, with ``policy``, ``prompt``,
    ``step``, ``score``, ``n`` and its visit's ``warm``, ``cold`` (NaN when not available),
    ``last_visit``, ``mean_last3``, and the own-history columns of :func:`alloc_sim`
    (``own_s``/``own_m``: arrays over ``decays``). Every empirical-Bayes fit at step t uses
    evaluated steps before t only. See the module docstring for the keys.
    """
    rng = _rng(random_state)
    n = int(rollouts_per_prompt)
    n_max = 2 * n if n_max is None else n_max  # room to spend the uniform budget (alloc_sim's default)
    own = np.stack(
        [np.stack([np.asarray(pred[f"own_s_{j}"]), np.asarray(pred[f"own_m_{j}"])]) for j in range(len(decays))]
    )
    steps = pred["step"].to_numpy()
    bounds = np.flatnonzero(np.diff(steps)) + 1
    shares = {k: [] for k in _SHARE_NAMES}
    eff = {k: [0.0, 0] for k in _ALLOC_NAMES}
    mse = {(g, k): [] for g in group_sizes for k in ("mean", "prior", "fused")}
    trace = {
        k: []
        for k in (
            "prior_strength",
            "concentration_warm",
            "concentration_cold",
            "posterior_strength",
            "posterior_decay",
            "history_strength",
            "history_decay",
        )
    }
    win = _Window()
    has_cold = bool(np.isfinite(pred["cold"].to_numpy()).all())
    has_ceiling = "other_visits_mean" in pred.columns
    tallies = {name: SelectionTally() for name in {*(s[1] for s in STRATEGIES), *_SHARE_NAMES}}
    has_streak = "zv_streak" in pred.columns
    greso_half, greso_rule = GresoRule(), GresoRule()
    j_mopps = decays.index(_MOPPS_DECAY) if _MOPPS_DECAY in decays else len(decays) - 1
    for idx in np.split(np.arange(pred.height), bounds):
        cur = pred[idx]
        true = cur["score"].to_numpy()
        n_obs = cur["n"].to_numpy().astype(np.float64)
        s_obs = true * n_obs
        warm = cur["warm"].to_numpy()
        cold = cur["cold"].to_numpy()
        base = cur["prev_mean"].to_numpy()
        own_t = own[:, :, idx]
        mixed = (true > 0) & (true < 1)
        k = true.size
        m = _n_keep(k, 0.5)
        budget = n * k

        # empirical Bayes on the evaluated steps before t
        if win:
            ws, wn = win.get("s"), win.get("n")
            bs_warm = BinnedStrength(n_bins).fit(win.get("warm"), ws, wn)
            c_warm, conc_warm = bs_warm.overall_, bs_warm(warm)
            if has_cold:
                bs_cold = BinnedStrength(n_bins).fit(win.get("cold"), ws, wn)
                c_cold, conc_cold = bs_cold.overall_, bs_cold(cold)
            else:
                c_cold = conc_cold = np.nan
            if has_ceiling:
                conc_ceil = BinnedStrength(n_bins).fit(win.get("ceil"), ws, wn)(cur["other_visits_mean"].to_numpy())
            a_post, d_post = _fit_posterior(
                win.get("cold") if has_cold else win.get("base"), win.get("own"), ws, wn, decays
            )
            a_hist, d_hist = _fit_posterior(win.get("base"), win.get("own"), ws, wn, decays)
        else:
            c_warm = c_cold = conc_warm = conc_cold = conc_ceil = a_post = a_hist = float(default_prior_strength)
            d_post = d_hist = float(decays[-1]) if 0.9 not in decays else 0.9
        a_fuse = float(prior_strength) if prior_strength != "auto" else c_warm
        for key, val in (
            ("prior_strength", a_fuse),
            ("concentration_warm", c_warm),
            ("concentration_cold", c_cold),
            ("posterior_strength", a_post),
            ("posterior_decay", d_post),
            ("history_strength", a_hist),
            ("history_decay", d_hist),
        ):
            trace[key].append(float(val))

        def posterior(prior, a, d, own_t=own_t):
            j = decays.index(d)
            alpha = a * prior + own_t[j, 0]
            beta = a * (1 - prior) + own_t[j, 1] - own_t[j, 0]
            return alpha / (alpha + beta), alpha + beta

        args = (true, mixed, m, rng, budget, n_min, n_max, n, shares, eff, tallies)
        _shares_and_alloc("warm", warm, conc_warm, *args)
        _shares_and_alloc("warm_point", warm, None, *args)
        if has_cold:
            _shares_and_alloc("cold", cold, conc_cold, *args)
            _shares_and_alloc("cold_point", cold, None, *args)
        else:
            for key in ("cold", "cold_point"):
                shares[key].append(np.nan)
        _shares_and_alloc("posterior", *posterior(cold if has_cold else base, a_post, d_post), *args)
        _shares_and_alloc("history", *posterior(base, a_hist, d_hist), *args)
        for key in ("last_visit", "mean_last3"):
            _shares_and_alloc(key, cur[key].to_numpy(), None, *args)
        if has_ceiling:
            _shares_and_alloc("ceiling", cur["other_visits_mean"].to_numpy(), conc_ceil, *args)
        else:
            shares["ceiling"].append(np.nan)
        _shares_and_alloc("oracle", true, None, *args)
        kept = RandomSelector().select(true, m, random_state=rng)
        shares["random"].append(float(mixed[kept].mean()))
        tallies["random"].add(_keep(kept, k), mixed, n)
        eff["uniform"][0] += float(p_mixed(true, n).sum())
        eff["uniform"][1] += budget
        everything = np.ones(k, dtype=bool)
        tallies["dynamic_sampling"].add(everything, mixed, n)
        tallies["uniform"].add(everything, mixed, n)
        # MoPPS-style: own counts discounted per step; the latest visit is not yet discounted in MoPPS
        d = decays[j_mopps]
        kept = _top_m(mopps_scores(own_t[j_mopps, 0] / d, own_t[j_mopps, 1] / d, rng), m, rng)
        tallies["mopps"].add(_keep(kept, k), mixed, n)
        if has_streak:
            z, easy = cur["zv_streak"].to_numpy(), cur["zv_last_easy"].to_numpy()
            kept = _keep(_top_m(greso_half.keep_probability(z, easy), m, rng), k)
            tallies["greso"].add(kept, mixed, n)
            greso_half.adapt(true[kept])
            rolled = greso_rule.select(z, easy, rng)
            tallies["greso_rule"].add(rolled, mixed, n)
            greso_rule.adapt(true[rolled])

        for g in group_sizes:
            sg = rng.binomial(int(g), true)
            gm = sg / g
            fused = fuse_baseline(warm, gm, g, a_fuse)
            mse[(g, "mean")].append(float(np.mean((gm - true) ** 2)))
            mse[(g, "prior")].append(float(np.mean((warm - true) ** 2)))
            mse[(g, "fused")].append(float(np.mean((fused - true) ** 2)))
        win.push(
            s=s_obs,
            n=n_obs,
            warm=warm,
            cold=cold,
            base=base,
            own=own_t,
            ceil=cur["other_visits_mean"].to_numpy() if has_ceiling else base,
        )

    out: dict[str, Any] = {}
    for name in _SHARE_NAMES:
        vals = np.asarray(shares[name], dtype=np.float64)
        out[f"keep_half_mixed_share_{name}"] = (
            float(np.mean(vals)) if vals.size and np.isfinite(vals).all() else float("nan")
        )
    for name in _ALLOC_NAMES:
        key = "effective_groups_per_1000_rollouts" + ("" if name == "warm" else f"_{name}")
        groups, spent = eff[name]
        out[key] = 1000.0 * groups / spent if spent else float("nan")
    for (g, kind), vals in mse.items():
        out[f"baseline_mse_g{g}_{kind}"] = float(np.mean(vals))
    for key, vals in trace.items():
        out[f"{key}_mean"] = float(np.mean(vals)) if vals else float("nan")
    dyn = tallies["dynamic_sampling"].figures()["rollouts_per_mixed_group"]
    out["strategies"] = {
        key: strategy_entry(
            tallies[name],
            label,
            causal,
            dyn,
            out.get("effective_groups_per_1000_rollouts" + ("" if name == "warm" else f"_{name}")),
            eff[name][1] if name in eff else None,
        )
        for key, name, label, causal in STRATEGIES
    }
    out["n_steps_evaluated"] = len(bounds) + 1 if pred.height else 0
    out["n_groups_evaluated"] = int(pred.height)
    out["n_visits_evaluated"] = int(pred.select(*("policy", "prompt", "step")).n_unique()) if pred.height else 0
    out["rollouts_per_prompt"] = n
    return out
