"""Latent monthly financial health, defaults, contagion and the firm lifecycle (simulation.md §3.2, §5, §6).

h_i,t = mu_i + x_i,t + beta_s M_t + F_s,t + y_i,t ; lambda = sigmoid(a - b h) x pi_t.
The arithmetic is written as pure functions over arrays so that the Monte-Carlo oracle reuses it
with a leading axis of paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from data.simulate.calendar import month_index, year_of
from data.simulate.params import WorldParams
from data.simulate.world import Enterprises

# ent_status codes, in catalog order
ACTIVE, LIQUIDATING, REVOKED, DEREGISTERED, MOVED_OUT = range(5)
STATUS_CODES = ("active", "liquidating", "revoked", "deregistered", "moved_out")


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass
class ContagionLinks:
    """Sparse links, rows = source j, columns = target i (simulation.md §6.2).

    `jump[j, i]`: decrement of x_i in the month j defaults. `spill[j, i]`: weight w_ij of the monthly
    spillover x_i -= c sum_j w_ij max(0, -h_j,t-1 - threshold).
    """

    jump: sp.csr_matrix
    spill: sp.csr_matrix

    @classmethod
    def empty(cls, n: int) -> ContagionLinks:
        z = sp.csr_matrix((n, n), dtype=np.float64)
        return cls(jump=z, spill=z.copy())


def young_penalty(age_months: np.ndarray, params: WorldParams) -> np.ndarray:
    lp = params.latent
    return -lp.young_penalty * np.exp(-np.maximum(age_months, 0) / lp.young_tau_months)


def health(mu: np.ndarray, x: np.ndarray, macro: np.ndarray | float, sector_f: np.ndarray,
           beta: np.ndarray, young: np.ndarray) -> np.ndarray:
    """h = mu + x + beta_s M + F_s + y (broadcasts over a leading path axis)."""
    return mu + x + beta * macro + sector_f + young


def hazard(h: np.ndarray, a: float, b: float, policy: float) -> np.ndarray:
    return sigmoid(a - b * h) * policy


def pushed(links: sp.csr_matrix, v: np.ndarray) -> np.ndarray:
    """links.T @ v, reading only the source rows where v is non-zero.

    Most firms are not in distress and few default in a month, so this skips most of the matrix. The
    sums are bitwise those of the full product: each target still adds its terms in ascending source
    order, and the skipped terms are zeros, which leave a float sum unchanged.
    """
    src = np.flatnonzero(v != 0)     # (a bool mask is three times faster to scan than the floats)
    return links[src].T @ v[src]


def student_eps(rng: np.random.Generator, df: float, size: tuple[int, ...] | int) -> np.ndarray:
    """Unit-variance Student-t innovations."""
    return rng.standard_t(df, size) / np.sqrt(df / (df - 2))


@dataclass
class LatentState:
    """Time-varying state of every slot, updated in place each month."""

    x: np.ndarray
    h: np.ndarray
    lam: np.ndarray
    macro: float
    sector_f: np.ndarray
    status: np.ndarray                 # int8 STATUS codes
    status_change_month: np.ndarray    # int64, -1 if never changed
    born: np.ndarray                   # bool
    performing: np.ndarray             # bool: not absorbed by a default
    tau: np.ndarray                    # first default month, -1
    last_default: np.ndarray           # most recent default month, -1
    cure_month: np.ndarray             # scheduled cure, -1
    exit_month: np.ndarray             # scheduled exit (deregistration / revocation), -1
    exit_status: np.ndarray            # status to take at exit_month
    dormant: np.ndarray                # bool: defaulted, not cured, abandoned
    defaulted_now: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    born_now: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    status_changed_now: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    cured_now: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    next_slot: int = 0
    next_oil_slot: int = 0

    @property
    def alive(self) -> np.ndarray:
        """Born and still registered (active or liquidating)."""
        return self.born & (self.status <= LIQUIDATING)


class LatentProcess:
    """Steps the latent world one month at a time; deterministic for a seed."""

    def __init__(self, params: WorldParams, ent: Enterprises, links: ContagionLinks,
                 rng: np.random.Generator, hazard_a: float | None = None) -> None:
        self.p = params
        self.ent = ent
        self.links = links
        # two streams: fixed-size health draws (factors, shocks, innovations, default uniforms) and
        # variable-size lifecycle draws (births, exits, cures). Keeping them apart means the health path
        # does not shift when the population does, so the default rate is smooth in the hazard intercept
        # (the calibration bisects on it) and firms keep their innovations across parameter changes.
        self.rng, self.rng_life = rng.spawn(2)
        self.a = params.hazard.a if hazard_a is None else hazard_a
        self.beta = params.sector_column("beta_s")[ent.sector]
        self.sector_names = params.sector_names
        self.oil_id = params.sector_id("oil_trading_bunkering")
        n = ent.n_max
        lp = params.latent
        self.state = LatentState(
            x=rng.normal(0.0, lp.x0_sd, n), h=np.zeros(n), lam=np.zeros(n), macro=0.0,
            sector_f=np.zeros(len(self.sector_names)), status=np.zeros(n, dtype=np.int8),
            status_change_month=np.full(n, -1, dtype=np.int64), born=np.zeros(n, dtype=bool),
            performing=np.ones(n, dtype=bool), tau=np.full(n, -1, dtype=np.int64),
            last_default=np.full(n, -1, dtype=np.int64), cure_month=np.full(n, -1, dtype=np.int64),
            exit_month=np.full(n, -1, dtype=np.int64), exit_status=np.zeros(n, dtype=np.int8),
            dormant=np.zeros(n, dtype=bool), next_slot=ent.n0,
        )
        self.mu = ent.mu.copy()
        self.prev_h = np.zeros(n)
        # entrant queues: ordinary entrants take slots in order; the oil wave takes oil slots
        self._entrant_order = np.arange(ent.n0, n)
        self._oil_slots = self._entrant_order[ent.sector[ent.n0:] == self.oil_id]
        self._used = np.zeros(n, dtype=bool)
        self._used[: ent.n0] = True
        self._oil_pos = 0
        self._pos = 0
        self.shocks = {month_index(k): v for k, v in params.shocks.items()}
        f = params.firms    # monthly voluntary-exit probability per slot: fixed, so worked out once
        self._exit_rate = np.where(ent.shell, f.voluntary_exit_annual_shell, f.voluntary_exit_annual) / 12

    # ---------------------------------------------------------------------------------------------
    def step(self, t: int) -> LatentState:
        """Advance to month t: factors, x, h, hazard, defaults, contagion, lifecycle."""
        p, s, ent, rng = self.p, self.state, self.ent, self.rng
        lp = p.latent
        n = ent.n_max
        s.born_now = np.zeros(n, dtype=bool)
        s.status_changed_now = np.zeros(n, dtype=bool)
        s.cured_now = np.zeros(n, dtype=bool)
        self._births(t)

        # factors
        shock = self.shocks.get(t, {})
        s.macro = lp.macro_ar * s.macro + rng.normal(0.0, lp.macro_sd) + shock.get("macro", 0.0)
        sector_shock = np.array([shock.get(name, 0.0) for name in self.sector_names])
        s.sector_f = (lp.sector_ar * s.sector_f + rng.normal(0.0, lp.sector_sd, len(self.sector_names))
                      + sector_shock)

        # idiosyncratic state with jumps and continuous spillover from last month's distress
        eps = student_eps(rng, lp.student_df, n)
        jumps = -lp.jump_size * (rng.random(n) < lp.jump_prob)
        distress = np.maximum(0.0, -self.prev_h - p.contagion.spillover_threshold) * s.alive
        spill = p.contagion.spillover * pushed(self.links.spill, distress) if self.links.spill.nnz else 0.0
        s.x = lp.x_ar * s.x + lp.x_sd * eps + jumps - spill

        age = t - ent.birth_month
        s.h = health(self.mu, s.x, s.macro, s.sector_f[ent.sector], self.beta, young_penalty(age, p))
        s.lam = hazard(s.h, self.a, p.hazard.b, p.policy_multiplier(t))

        # defaults among alive performing firms
        eligible = s.alive & s.performing & ~s.born_now
        d = eligible & (rng.random(n) < s.lam)
        s.defaulted_now = d
        idx = np.flatnonzero(d)
        s.performing[idx] = False
        s.last_default[idx] = t
        first = idx[s.tau[idx] < 0]
        s.tau[first] = t
        if idx.size and self.links.jump.nnz:
            s.x -= pushed(self.links.jump, d.astype(np.float64))
        self._schedule_after_default(idx, t)

        self._cures(t)
        self._exits(t)
        self.prev_h = s.h.copy()
        return s

    # ---------------------------------------------------------------------------------------------
    def _births(self, t: int) -> None:
        s, ent, rng, f = self.state, self.ent, self.rng_life, self.p.firms
        if t == self.p.t_first:
            initial = ent.birth_month[: ent.n0] <= t
            s.born[: ent.n0] = initial
            # initial firms not yet born at burn-in start (none by construction) stay unborn
            return
        active = int((s.alive & (s.status == ACTIVE)).sum())
        n_new = rng.poisson(f.entry_rate_annual / 12 * active)
        wave = f.oil_wave_years[0] <= year_of(t) <= f.oil_wave_years[1]
        n_oil = rng.poisson(f.entry_rate_annual / 12 * active * self.p.sector_column("share")[self.oil_id]) if wave else 0
        slots: list[int] = []
        while len(slots) < n_new and self._pos < len(self._entrant_order):
            k = self._entrant_order[self._pos]
            self._pos += 1
            if not self._used[k]:
                slots.append(k)
        while n_oil > 0 and self._oil_pos < len(self._oil_slots):
            k = self._oil_slots[self._oil_pos]
            self._oil_pos += 1
            if not self._used[k]:
                slots.append(k)
                n_oil -= 1
        if len(slots) < n_new:
            raise RuntimeError(f"ran out of enterprise slots at month {t}: raise n_max_factor in world.yaml")
        if not slots:
            return
        k = np.array(slots, dtype=np.int64)
        self._used[k] = True
        s.born[k] = True
        s.born_now[k] = True
        ent.birth_month[k] = t
        day = rng.integers(0, 28, size=k.size).astype("timedelta64[D]")
        ent.establish_date[k] = (np.array(t - 1970 * 12).astype("datetime64[M]").astype("datetime64[D]") + day)
        s.x[k] = rng.normal(0.0, self.p.latent.x0_sd, k.size)

    def _schedule_after_default(self, idx: np.ndarray, t: int) -> None:
        if idx.size == 0:
            return
        s, rng, ad = self.state, self.rng_life, self.p.after_default
        u = rng.random(idx.size)
        cure = u < ad.cure_prob
        s.cure_month[idx[cure]] = t + rng.integers(ad.cure_window[0], ad.cure_window[1] + 1, cure.sum())
        rest = idx[~cure]
        v = rng.random(rest.size)
        dereg = v < ad.deregister_prob
        revoke = (v >= ad.deregister_prob) & (v < ad.deregister_prob + ad.revoke_prob)
        s.exit_month[rest[dereg]] = t + rng.integers(ad.deregister_lag[0], ad.deregister_lag[1] + 1, dereg.sum())
        s.exit_status[rest[dereg]] = DEREGISTERED
        s.exit_month[rest[revoke]] = t + rng.integers(ad.revoke_lag[0], ad.revoke_lag[1] + 1, revoke.sum())
        s.exit_status[rest[revoke]] = REVOKED
        s.dormant[rest] = True

    def _cures(self, t: int) -> None:
        s, rng, ad = self.state, self.rng_life, self.p.after_default
        idx = np.flatnonzero((s.cure_month == t) & s.alive)
        if idx.size == 0:
            return
        self.mu[idx] -= ad.cure_mu_penalty
        s.x[idx] = rng.normal(ad.cure_x[0], ad.cure_x[1], idx.size)
        s.performing[idx] = True
        s.cure_month[idx] = -1
        s.cured_now[idx] = True

    def _set_status(self, idx: np.ndarray, status: int, t: int) -> None:
        s = self.state
        s.status[idx] = status
        s.status_change_month[idx] = t
        s.status_changed_now[idx] = True

    def _exits(self, t: int) -> None:
        s, rng, f, ent = self.state, self.rng_life, self.p.firms, self.ent
        # scheduled exits (after default, or after 3 liquidating months)
        due = np.flatnonzero((s.exit_month == t) & s.alive)
        for status in (DEREGISTERED, REVOKED):
            sel = due[s.exit_status[due] == status]
            self._set_status(sel, status, t)
        # voluntary exit of performing, active firms
        alive_active = s.alive & (s.status == ACTIVE) & s.performing & (s.exit_month < 0) & ~s.born_now
        quit_ = alive_active & (rng.random(ent.n_max) < self._exit_rate)
        qidx = np.flatnonzero(quit_)
        liq = rng.random(qidx.size) < f.liquidating_before_exit_prob
        self._set_status(qidx[~liq], DEREGISTERED, t)
        self._set_status(qidx[liq], LIQUIDATING, t)
        s.exit_month[qidx[liq]] = t + 3
        s.exit_status[qidx[liq]] = DEREGISTERED
        moved = alive_active & ~quit_ & (rng.random(ent.n_max) < f.moved_out_annual / 12)
        self._set_status(np.flatnonzero(moved), MOVED_OUT, t)

    @property
    def current_mu(self) -> np.ndarray:
        return self.mu


def annual_default_rate(params: WorldParams, ent: Enterprises, links: ContagionLinks, seed: int,
                        hazard_a: float, years: tuple[int, int]) -> float:
    """Mean annual latent default rate of performing firms over `years` (calibration objective)."""
    from data.simulate.world import module_rng

    proc = LatentProcess(params, ent_copy(ent), links, module_rng(seed, "latent"), hazard_a)
    rates = []
    t_stop = (years[1] + 1) * 12 - 1
    cohort: np.ndarray | None = None
    defaults = 0
    for t in range(params.t_first, t_stop + 1):
        if t % 12 == 0 and years[0] * 12 <= t:
            if cohort is not None:
                rates.append(defaults / max(1, cohort.sum()))
            cohort = proc.state.alive & proc.state.performing
            defaults = 0
        st = proc.step(t)
        if cohort is not None:
            defaults += int((st.defaulted_now & cohort).sum())
            cohort = cohort & ~st.defaulted_now
    if cohort is not None:
        rates.append(defaults / max(1, cohort.sum() + defaults))
    return float(np.mean(rates))


def ent_copy(ent: Enterprises) -> Enterprises:
    """Copy of the mutable per-slot arrays (birth months, dates) for a throw-away run."""
    import copy

    out = copy.copy(ent)
    out.birth_month = ent.birth_month.copy()
    out.establish_date = ent.establish_date.copy()
    return out


def calibrate_hazard_intercept(params: WorldParams, ent: Enterprises, links: ContagionLinks, seed: int,
                               iterations: int = 14) -> float:
    """Bisection on a so that the mean annual latent default rate hits the target (simulation.md §6.1).

    Runs use the same random stream as the real run (common random numbers), so the target holds on
    the world actually simulated, whatever its factor path.
    """
    target = params.hazard.target_annual_rate
    lo, hi = params.hazard.a - 3.0, params.hazard.a + 3.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        rate = annual_default_rate(params, ent, links, seed, mid, params.hazard.calibration_years)
        if rate > target:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)
