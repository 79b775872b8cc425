"""The oracle: the true 12-month default probability given the full latent state (simulation.md §10).

`oracle_pd12_approx` (every month, cheap): 1 - prod_k (1 - E[lambda_{t+k}]) with E[h] from the AR
forecasts and the probit approximation of E[sigmoid]. `oracle_pd12` (evaluation months): Monte-Carlo
continuation of the whole world — innovations, jumps, factor paths, defaults of all firms and the
contagion they cause over every link, hidden ones included — without the scheduled shocks, which are
surprises. Policy multipliers are public and therefore known.
"""

from __future__ import annotations

import numpy as np

from data.simulate.latent import ContagionLinks, health, sigmoid, student_eps, young_penalty
from data.simulate.params import WorldParams

HORIZON = 12


def _ar_var(phi: float, sd: float, k: int) -> float:
    """Variance of the k-step forecast error of an AR(1) with coefficient phi and innovation sd."""
    return sd**2 * sum(phi ** (2 * j) for j in range(k))


def oracle_pd12_approx(params: WorldParams, t: int, mu: np.ndarray, x: np.ndarray, macro: float,
                       sector_f: np.ndarray, sector: np.ndarray, birth_month: np.ndarray,
                       hazard_a: float) -> np.ndarray:
    """Cheap analytic approximation of P(default in (t, t+12] | state at t) for every slot."""
    lp, b = params.latent, params.hazard.b
    beta = params.sector_column("beta_s")[sector]
    jump_mean = -lp.jump_size * lp.jump_prob
    jump_var = lp.jump_size**2 * lp.jump_prob * (1 - lp.jump_prob)
    survive = np.ones_like(x)
    for k in range(1, HORIZON + 1):
        geo = sum(lp.x_ar**j for j in range(k))
        ex = lp.x_ar**k * x + jump_mean * geo
        vx = _ar_var(lp.x_ar, lp.x_sd, k) + jump_var * sum(lp.x_ar ** (2 * j) for j in range(k))
        em = lp.macro_ar**k * macro
        vm = _ar_var(lp.macro_ar, lp.macro_sd, k)
        ef = lp.sector_ar**k * sector_f[sector]
        vf = _ar_var(lp.sector_ar, lp.sector_sd, k)
        eh = health(mu, ex, em, ef, beta, young_penalty(t + k - birth_month, params))
        vh = vx + beta**2 * vm + vf
        mu_z = hazard_a - b * eh
        var_z = b**2 * vh
        e_lam = sigmoid(mu_z / np.sqrt(1 + np.pi * var_z / 8)) * params.policy_multiplier(t + k)
        survive *= 1 - np.clip(e_lam, 0, 1)
    return 1 - survive


def oracle_pd12_monte_carlo(params: WorldParams, t: int, mu: np.ndarray, x: np.ndarray, macro: float,
                            sector_f: np.ndarray, sector: np.ndarray, birth_month: np.ndarray,
                            alive: np.ndarray, performing: np.ndarray, prev_h: np.ndarray,
                            links: ContagionLinks, hazard_a: float, rng: np.random.Generator,
                            paths: int | None = None, chunk: int | None = None) -> np.ndarray:
    """Monte-Carlo P(first default in (t, t+12]) per slot, continuing the whole network (§10).

    Defaults are sampled on every path to propagate contagion, but each firm's own probability is
    accumulated as 1 - prod(1 - lambda) along the path (a conditional, Rao-Blackwellised estimate), so
    PDs far below 1/paths are resolved instead of rounding to zero.
    """
    lp, c, b = params.latent, params.contagion, params.hazard.b
    paths = paths or params.oracle.paths
    chunk = chunk or params.oracle.chunk
    n = x.size
    n_sectors = sector_f.size
    beta = params.sector_column("beta_s")[sector]
    hits = np.zeros(n)
    jump_t = links.jump.T.tocsr()
    spill_t = links.spill.T.tocsr()
    done = 0
    while done < paths:
        r = min(chunk, paths - done)
        xs = np.repeat(x[None, :], r, axis=0)
        m = np.full(r, macro)
        f = np.repeat(sector_f[None, :], r, axis=0)
        perf = np.repeat((alive & performing)[None, :], r, axis=0)
        survive = np.ones((r, n))
        h_prev = np.repeat(prev_h[None, :], r, axis=0)
        for k in range(1, HORIZON + 1):
            m = lp.macro_ar * m + rng.normal(0, lp.macro_sd, r)
            f = lp.sector_ar * f + rng.normal(0, lp.sector_sd, (r, n_sectors))
            eps = student_eps(rng, lp.student_df, (r, n))
            jumps = -lp.jump_size * (rng.random((r, n)) < lp.jump_prob)
            distress = np.maximum(0.0, -h_prev - c.spillover_threshold) * alive[None, :]
            spill = c.spillover * (spill_t @ distress.T).T if links.spill.nnz else 0.0
            xs = lp.x_ar * xs + lp.x_sd * eps + jumps - spill
            h = health(mu[None, :], xs, m[:, None], f[:, sector], beta[None, :],
                       young_penalty(t + k - birth_month, params)[None, :])
            lam = sigmoid(hazard_a - b * h) * params.policy_multiplier(t + k)
            survive *= 1 - np.clip(lam, 0, 1)
            d = perf & (rng.random((r, n)) < lam)
            perf &= ~d
            if links.jump.nnz and d.any():
                xs -= (jump_t @ d.T.astype(np.float64)).T
            h_prev = h
        hits += (1 - survive).sum(axis=0)
        done += r
    return hits / paths
