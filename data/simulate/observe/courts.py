"""Courts (S12-S16): litigation, enforcement, dishonest debtors, consumption restrictions, equity freezes.

simulation.md §7.5 with the post-default cascade of §6.3 and the contagion rules of §6.2 / §4.3.

Records and their life. Every case party, enforcement case, dishonest listing, restriction order and
equity freeze is a record in an internal columnar store. Its life is a chain of dated actions kept in a
month-indexed queue: a case is filed, gets a hearing notice, is judged; a lost (or unpaid mediated)
case of a defendant becomes an enforcement case, which may lead to a consumption restriction, a
dishonest listing and an equity freeze, and is later concluded, settled or terminated without assets;
listings and orders are removed, freezes unfrozen, renewed or lapse. Each action that changes a
published field emits a **new row with the same key** (uscc + case_id; uscc + holder_id +
freeze_start_date for freezes) carrying the updated fields:

* S12 `litigation_cases`: filing row (outcome pending, hearing/judgment null), hearing-notice row
  (hearing_date set), judgment row (judgment_date, outcome);
* S13 `enforcement_cases`: filing row (in_progress, unfulfilled = target), close row (status, close_date,
  unfulfilled_amount);
* S14 `dishonest_debtors`: publication row, removal row (removal_date);
* S15 `consumption_restrictions`: issue row, removal row (removal_date);
* S16 `judicial_freezes`: start row (frozen), then unfrozen / renewed (new freeze_end_date) / invalid.

The warehouse keeps all rows of a key as versions, bitemporally: business dates are in the row (and in
the Emitter's `valid_from`: the change date), knowledge time is `_available_date` (change date + the
sub-item lag; judgment documents 30-90 days), strictly increasing over the versions of a key. Event lists
get no `_valid_from/_valid_to` columns in the delivery, so a reader resolves versions itself: the row of a
key with the latest `_available_date <= t` is the record's state as of t. Nothing about a record's
future (its outcome, close or removal) is published before it happens.

A case with two platform parties (a platform plaintiff suing a platform defendant, guarantor
co-defendants, supplier plaintiffs of a defaulted firm) yields one row per party with the same case_id.

Emission window: rows are emitted for records whose own key date (filing, enforcement filing, publish,
issue, freeze start) is in or after the first event month (`params.t_events`); earlier records (burn-in)
still evolve internally and feed the board but are never published.

Calibration and interpretation choices:
* st = max(0, -h) enters every hazard capped at `stress_cap` (a few absorbed firms reach huge st through
  the latent spillover); background and stress-driven cases concern firms that still operate (alive and
  not dormant): abandoned firms are sued through the post-default cascade only. With the latent core's st
  distribution the intercepts of §7.5 give about twice the §11 litigation rates, so the yaml intercepts
  are recalibrated (defendant Hz alpha, plaintiff rate) to ~12% / ~6% of firms per year;
* a defaulted debtor's dishonest listing (0.55) is decided once per default episode at its first
  enforcement case (E2 is a firm-level event); further cases of a listed debtor are listed w.p.
  `prob_defaulted_repeat`. Per case, the listings would put ~1.2% of active firms on the list;
* a debtor that defaults while an enforcement case is open gets the defaulted plan (termination without
  assets, listing) from then on;
* labour cases are brought by natural persons; a notice is scheduled for 95% of hearings so that, after
  the cases settled before their hearing, ~20% of cases have no hearing_date (catalog).

Proxies and simplifications:
* administrative cases (the firm sues an authority after a penalty) use a stress hazard, because the
  penalties module steps after courts;
* ring exposure comes from board 'ring_exposed_now' (tax); absent, the module draws its own exposures at
  ~1.5 rings per year at scale 1;
* the legal representative comes from board 'legal_rep' (registration) if present, else the initial
  one of the networks; registered capital from board 'registered_capital', else the §7.1 formula;
* pre-default records (private lending U{-4..0}, supplier suits U{-2..0}) keep their backdated
  filing_date but, with `pre_default_availability: causal`, are available no earlier than the default
  month: nothing in the world knows about a default before it happens (avoids a future-information leak
  that would let models beat the oracle); enforcement filings and freezes derived from them are dated no
  earlier than that month either.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from data.simulate.calendar import add_days, add_months, date_to_month, random_day_in_month
from data.simulate.compact import shared_strings
from data.simulate.context import MonthContext
from data.simulate.emit import Emitter
from data.simulate.latent import sigmoid
from data.simulate.networks import PERSON, PLATFORM_ENT, hex_ids
from data.simulate.params import load_module_params
from kernel.config import FrozenModel

NAT = np.datetime64("NaT", "D")
DAYS_PER_MONTH = 30.44
CLOSED_PAID = ("concluded", "withdrawn_or_settled")
LENDER_CAUSES = ("financial_loan", "private_lending", "guarantee_recourse")
APPLICANT = {"bank": "bank", "non_bank_fi": "non_bank_fi", "guarantee_company": "non_bank_fi",
             "enterprise": "enterprise", "natural_person": "natural_person", "government": "other",
             "none": "other"}
MIRROR = {"lost": "won", "partially_lost": "won", "mediated": "mediated", "won": "lost", "withdrawn": "withdrawn"}

Mix = dict[str, float]


# ------------------------------------------------------------------------------------------------
# parameters (configs/simulation/courts.yaml)
class LagParams(FrozenModel):
    """Publication lags in days."""

    filing_days: tuple[int, int]
    judgment_doc_days: tuple[int, int]
    enforcement_days: tuple[int, int]
    restriction_days: tuple[int, int]
    freeze_days: tuple[int, int]
    pre_default_availability: str

    def model_post_init(self, _context: object) -> None:
        if self.pre_default_availability not in ("causal", "as_filed"):
            raise ValueError("pre_default_availability must be 'causal' or 'as_filed'")


class BackgroundParams(FrozenModel):
    defendant_hz: tuple[float, float]
    defendant_size_exp: float
    plaintiff_rate: float
    plaintiff_size_exp: float
    defendant_causes: Mix
    plaintiff_causes: Mix
    maritime_sectors: tuple[str, ...]
    claim_ln: tuple[float, float]
    counterparty: Mix
    private_lending_counterparty: Mix
    labor_counterparty: Mix
    platform_counterparty_prob: float
    third_party_prob: float
    outside_court_prob: float
    administrative_hz: tuple[float, float]
    criminal_hz: tuple[float, float]
    outcome_defendant: Mix
    outcome_plaintiff: Mix
    outcome_criminal: Mix
    outcome_administrative: Mix
    won_is_partial_prob: float


class CourtParams(FrozenModel):
    hearing_prob: float
    hearing_days: tuple[int, int]
    notice_days_before: tuple[int, int]
    judgment_gamma_days: tuple[float, float]
    judgment_after_hearing_days: tuple[int, int]
    intermediate_claim: float
    intermediate_prob: float
    criminal_intermediate_prob: float


class CascadeParams(FrozenModel):
    financial_loan_prob: float
    financial_loan_lag_gamma: tuple[float, float]
    financial_loan_extra_pois: float
    financial_loan_counterparty: Mix
    financial_loan_claim_ln: tuple[float, float]
    financial_loan_size_exp: float
    guarantor_codefendant_prob: float
    private_lending_prob: float
    private_lending_before_share: float
    private_lending_before_lag: tuple[int, int]
    private_lending_lag_gamma: tuple[float, float]
    private_lending_claim_ln: tuple[float, float]
    sales_prob: float
    sales_extra_pois: float
    sales_lag: tuple[int, int]
    sales_claim_ln: tuple[float, float]
    recourse_prob: float
    recourse_lag_gamma: tuple[float, float]
    recourse_claim_ln: tuple[float, float]
    guarantee_company_backed_prob: float
    bankruptcy_prob: float
    bankruptcy_lag_gamma: tuple[float, float]
    bankruptcy_counterparty: Mix
    outcome_defendant: Mix
    outcome_bankruptcy: Mix


class EnforcementParams(FrozenModel):
    filing_days: tuple[int, int]
    unpaid_mediated_prob: float
    unpaid_mediated_prob_defaulted: float
    create_logit: tuple[float, float]
    create_prob_defaulted: float
    court_region: Mix
    target_factor: tuple[float, float]
    concluded_prob: float
    close_gamma_months: tuple[float, float]
    settled_unfulfilled_share: tuple[float, float]
    terminated_prob: float
    terminated_months: tuple[int, int]
    defaulted_settled_share: float
    defaulted_settle_months: tuple[int, int]
    defaulted_concluded_share: float
    defaulted_concluded_gamma_months: tuple[float, float]


class DishonestParams(FrozenModel):
    prob_defaulted: float
    prob_defaulted_repeat: float
    prob_other: float
    publish_gamma_months: tuple[float, float]
    publish_min_months: float
    settle_after_publish_days: tuple[int, int]
    term_months: int
    early_removal_prob: float
    early_removal_months: tuple[int, int]
    performance: Mix
    behavior: Mix


class RestrictionParams(FrozenModel):
    prob: float
    issue_days: tuple[int, int]
    roles: Mix


class FreezeParams(FrozenModel):
    subsidiary_prob: float
    owner_guarantor_prob: float
    enforcement_prob: float
    start_days: tuple[int, int]
    term_months: int
    amount_share: tuple[float, float]
    invalid_prob: float
    invalid_months: tuple[int, int]
    unfreeze_days: tuple[int, int]
    court_region: Mix


class RingParams(FrozenModel):
    criminal_prob: float
    proxy_rings_per_year_scale1: float
    scale1_enterprises: int


class CapitalProxyParams(FrozenModel):
    median: float
    logsd: float
    size_loading: float
    sector_factor: Mix


class CourtsParams(FrozenModel):
    lags: LagParams
    background: BackgroundParams
    court: CourtParams
    cascade: CascadeParams
    enforcement: EnforcementParams
    dishonest: DishonestParams
    restriction: RestrictionParams
    freeze: FreezeParams
    ring: RingParams
    registered_capital_proxy: CapitalProxyParams
    stress_cap: float


# ------------------------------------------------------------------------------------------------
# small array helpers
def _mix(rng: np.random.Generator, mix: Mapping[str, float], n: int) -> np.ndarray:
    """n categorical draws from relative weights."""
    if n == 0:
        return np.zeros(0, dtype=object)
    keys = np.array(list(mix), dtype=object)
    w = np.array(list(mix.values()), dtype=np.float64)
    return keys[rng.choice(keys.size, size=n, p=w / w.sum())]


def _ln(rng: np.random.Generator, spec: tuple[float, float], n: int) -> np.ndarray:
    """LN(median, log-sd)."""
    return spec[0] * np.exp(spec[1] * rng.standard_normal(n))


def _uint(rng: np.random.Generator, lo_hi: tuple[int, int], n: int) -> np.ndarray:
    """U{lo..hi} integers."""
    return rng.integers(lo_hi[0], lo_hi[1] + 1, n)


def _months_to_days(m: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(m) * DAYS_PER_MONTH).astype(np.int64)


def _pick(rng: np.random.Generator, weights: np.ndarray, k: int) -> np.ndarray:
    """k slot indices drawn with probability proportional to weights (-1 if all weights are 0)."""
    cum = np.cumsum(weights)
    if k == 0 or cum.size == 0 or cum[-1] <= 0:
        return np.full(k, -1, dtype=np.int64)
    return np.searchsorted(cum, rng.random(k) * cum[-1], side="right").astype(np.int64)


def _csr(keys: np.ndarray, vals: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Group vals by key in 0..n-1 (keys < 0 dropped): pointer array and the grouped values."""
    ok = keys >= 0
    keys, vals = keys[ok], vals[ok]
    order = np.argsort(keys, kind="stable")
    return np.searchsorted(keys[order], np.arange(n + 1)), vals[order]


def _gather(ptr: np.ndarray, vals: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Members of each key: (position of the key in `keys`, member), positions ascending."""
    lens = ptr[keys + 1] - ptr[keys]
    pos = np.repeat(np.arange(keys.size), lens)
    start = np.repeat(ptr[keys], lens)
    within = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    return pos, vals[start + within]


class _Store:
    """A growable columnar table: one numpy array per field, records addressed by index."""

    def __init__(self, **dtypes: object) -> None:
        self.n = 0
        self._cap = 256
        self._dtypes = dtypes
        self._cols = {k: self._blank(dt, self._cap) for k, dt in dtypes.items()}

    @staticmethod
    def _blank(dt: object, cap: int) -> np.ndarray:
        if dt == "D":
            return np.full(cap, NAT, dtype="datetime64[D]")
        if dt is object:
            return np.full(cap, None, dtype=object)
        if dt is float:
            return np.full(cap, np.nan)
        if dt is bool:
            return np.zeros(cap, dtype=bool)
        return np.full(cap, -1, dtype=np.int64)

    def append(self, k: int, **values: object) -> np.ndarray:
        """Add k records (fields not given take their blank value); returns their indices."""
        if self.n + k > self._cap:
            cap = max(2 * self._cap, self.n + k)
            for name, dt in self._dtypes.items():
                col = self._blank(dt, cap)
                col[: self.n] = self._cols[name][: self.n]
                self._cols[name] = col
            self._cap = cap
        idx = np.arange(self.n, self.n + k)
        for name, v in values.items():
            if self._dtypes[name] is object and isinstance(v, np.ndarray) and v.ndim == 1:
                v = shared_strings(v)          # codes from 'U' arrays would be one str object per record
            self._cols[name][idx] = v
        self.n += k
        return idx

    def __getitem__(self, name: str) -> np.ndarray:
        """A writable view of the first n values of one field."""
        return self._cols[name][: self.n]


class _Queue:
    """Month-indexed action queue: kind -> month -> record indices."""

    def __init__(self) -> None:
        self._q: dict[str, dict[int, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))

    def push(self, kind: str, months: np.ndarray, idx: np.ndarray) -> None:
        if idx.size == 0:
            return
        months = np.asarray(months, dtype=np.int64)
        for m in np.unique(months).tolist():
            self._q[kind][m].append(idx[months == m])

    def pop_due(self, kind: str, t: int) -> np.ndarray:
        q = self._q[kind]
        due = sorted(m for m in q if m <= t)
        if not due:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.concatenate(q.pop(m)) for m in due])


# the order in which due actions are processed within a month
ACTIONS = ("lit_file", "frz_start", "lit_notice", "lit_judgment", "enf_file", "res_issue", "dis_publish",
           "enf_close", "dis_remove", "frz_unfreeze", "frz_end", "frz_invalid")


class CourtsModule:
    """S12 litigation_cases, S13 enforcement_cases, S14 dishonest_debtors, S15 consumption_restrictions,
    S16 judicial_freezes."""

    name = "courts"
    sub_items = ("litigation_cases", "enforcement_cases", "dishonest_debtors", "consumption_restrictions",
                 "judicial_freezes")

    # ---------------------------------------------------------------------------------------------
    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        """Load parameters, draw static per-slot attributes and index the networks."""
        self.rng = rng
        self.p = load_module_params(CourtsParams, self.name)
        ent, net = ctx.ent, ctx.net
        n = ent.n_max
        self.n = n
        self.t_events = ctx.params.t_events
        self.size = np.maximum(ent.sales, 1e-3) / 500.0
        self.maritime = ctx.sector_mask(*self.p.background.maritime_sectors)
        # a guarantee-company-backed loan although no platform firm guarantees the debtor
        self.gc_backed = rng.random(n) < self.p.cascade.guarantee_company_backed_prob
        cp = self.p.registered_capital_proxy
        names = np.array(ctx.params.sector_names, dtype=object)[ent.sector]
        factor = np.array([cp.sector_factor.get(s, 1.0) for s in names])
        self.capital_proxy = np.round(cp.median * np.exp(cp.logsd * rng.standard_normal(n)) * factor
                                      * np.exp(cp.size_loading * ent.z_size), -1)
        # network indexes
        g = net.guarantees
        self.g_ptr, self.g_vals = _csr(g.debtor, g.guarantor, n)
        self.has_guarantor = np.diff(self.g_ptr) > 0
        self.sup_ptr, self.sup_vals = _csr(net.trade_customer, net.trade_supplier, n)
        h = net.holdings
        rows = np.arange(h.target.size)
        sub = h.holder_kind == PLATFORM_ENT
        self.sub_ptr, self.sub_vals = _csr(np.where(sub, h.holder_index, -1), rows, n)
        self.tgt_ptr, self.tgt_vals = _csr(h.target, rows, n)
        # the largest holding of each firm (enforcement freezes) and another responsible person
        order = np.lexsort((-h.share, h.target))
        first = order[np.r_[True, np.diff(h.target[order]) != 0]]
        self.main_holding = np.full(n, -1, dtype=np.int64)
        self.main_holding[h.target[first]] = first
        other = (h.holder_kind == PERSON) & (h.holder_index != net.controller[h.target])
        o = order[other[order]]
        o = o[np.r_[True, np.diff(h.target[o]) != 0]] if o.size else o
        self.other_person = net.legal_rep.copy()
        self.other_person[h.target[o]] = h.holder_index[o]
        # rings (proxy exposure when the tax module does not report it)
        self.ring_exposed = np.zeros(int(net.ring_id.max()) + 1 if net.ring_id.size else 0, dtype=bool)
        n_rings = self.ring_exposed.size
        r = self.p.ring
        self.ring_rate = (r.proxy_rings_per_year_scale1 * ctx.params.enterprises / r.scale1_enterprises
                          / 12 / max(1, n_rings))
        self.list_episode = np.full(n, -1, dtype=np.int64)     # default episode of the listing decision
        self.list_decision = np.zeros(n, dtype=bool)
        self.queue = _Queue()
        self._staged: dict[str, list[tuple[dict[str, np.ndarray], ...]]] = defaultdict(list)
        self.lit = _Store(ent=int, case_id=object, filing="D", case_type=object, cause_cat=object, court=object,
                          role=object, cp=object, claim=float, hearing="D", notice="D", judgment="D",
                          outcome=object, cause=object, emit=bool, filed=bool, judged=bool, enf=int, avail="D")
        self.enf = _Store(ent=int, lit=int, case_id=object, filing="D", region=object, target=float,
                          unfulfilled=float, status=object, close="D", plan_status=object, plan_close="D",
                          defaulted=bool, applicant=object, cause=object, emit=bool, filed=bool, avail="D")
        self.dis = _Store(ent=int, enf=int, filing="D", publish="D", perf=object, behavior=object, rep=object,
                          removal="D", plan_removal="D", term_end="D", published=bool, removed=bool,
                          cancelled=bool, emit=bool, cause=object, avail="D")
        self.res = _Store(ent=int, enf=int, issue="D", person=object, role=object, applicant=object, removal="D",
                          issued=bool, removed=bool, cancelled=bool, emit=bool, cause=object, avail="D")
        self.frz = _Store(ent=int, holder=object, amount=float, start="D", end="D", region=object, status=object,
                          lit=int, enf=int, plan_unfreeze="D", plan_invalid="D", started=bool, closed=bool,
                          cancelled=bool, emit=bool, cause=object, avail="D")

    # ---------------------------------------------------------------------------------------------
    def step(self, ctx: MonthContext, out: Emitter) -> None:
        """New cases of the month (background, stress, ring, post-default cascade), then every due action."""
        self.t = ctx.t
        self.st = np.minimum(ctx.stress, self.p.stress_cap)
        self._background(ctx)
        self._ring_cases(ctx)
        self._cascade(ctx)
        for _ in range(20):                     # actions can schedule further actions due this month
            busy = False
            for kind in ACTIONS:
                idx = self.queue.pop_due(kind, ctx.t)
                if idx.size:
                    busy = True
                    getattr(self, "_do_" + kind)(ctx, out, np.unique(idx))
            if not busy:
                break
        self._flush(out)
        self._write_board(ctx)

    # ---------------------------------------------------------------------------------------------
    # new litigation
    def _background(self, ctx: MonthContext) -> None:
        """Background / stress-driven civil cases, administrative and criminal cases."""
        p, rng, n, t = self.p.background, self.rng, self.n, ctx.t
        alive = ctx.alive & ~ctx.latent.dormant          # abandoned firms are sued through the cascade only
        st = self.st
        hz0 = sigmoid(p.defendant_hz[0] + p.defendant_hz[1] * st)
        hz_def = hz0 * self.size ** p.defendant_size_exp * alive
        stress_driven = hz0 > 2 * sigmoid(p.defendant_hz[0])
        w_plaintiff = self.size ** p.plaintiff_size_exp * alive

        # (a) the firm is sued
        d = np.flatnonzero(rng.random(n) < hz_def)
        cause = self._cause_mix(p.defendant_causes, d)
        cp = self._counterparty(cause)
        outcome = _mix(rng, p.outcome_defendant, d.size)
        other = self._platform_counterparty(cp, d, w_plaintiff)
        rows = self._new_cases(ctx, ent=d, role="defendant", case_type="civil", cause_cat=cause, cp=cp,
                               claim=_ln(rng, p.claim_ln, d.size), outcome=outcome,
                               filing=random_day_in_month(rng, t, d.size),
                               cause=np.where(stress_driven[d], "stress", "background"), platform_other=other >= 0)
        o = other >= 0
        r2 = self._add_parties(rows[o], other[o], "plaintiff", np.array([MIRROR[x] for x in outcome[o]], dtype=object),
                               "enterprise", "background")
        self._third_parties(ctx, rows, alive)
        self._schedule_lit(np.concatenate([rows, r2]))

        # (b) the firm sues
        k = rng.poisson(p.plaintiff_rate * w_plaintiff)
        s = np.repeat(np.arange(n), k)
        cause = self._cause_mix(p.plaintiff_causes, s)
        cp = self._counterparty(cause)
        outcome = _mix(rng, p.outcome_plaintiff, s.size)
        other = self._platform_counterparty(cp, s, hz_def)
        rows = self._new_cases(ctx, ent=s, role="plaintiff", case_type="civil", cause_cat=cause, cp=cp,
                               claim=_ln(rng, p.claim_ln, s.size), outcome=outcome,
                               filing=random_day_in_month(rng, t, s.size), cause="background",
                               platform_other=other >= 0)
        o = other >= 0
        d_out = np.array([MIRROR[x] for x in outcome[o]], dtype=object)
        partial = (d_out == "lost") & (rng.random(d_out.size) < p.won_is_partial_prob)
        d_out[partial] = "partially_lost"
        r2 = self._add_parties(rows[o], other[o], "defendant", d_out, "enterprise",
                               np.where(stress_driven[other[o]], "stress", "background"))
        self._third_parties(ctx, rows, alive)
        self._schedule_lit(np.concatenate([rows, r2]))

        # (c) administrative (the firm sues an authority) and criminal cases
        a = np.flatnonzero(alive & (rng.random(n) < sigmoid(p.administrative_hz[0] + p.administrative_hz[1] * st)))
        rows = self._new_cases(ctx, ent=a, role="plaintiff", case_type="administrative", cause_cat="not_applicable",
                               cp="government", claim=np.full(a.size, np.nan),
                               outcome=_mix(rng, p.outcome_administrative, a.size),
                               filing=random_day_in_month(rng, t, a.size), cause="background")
        self._schedule_lit(rows)
        c = np.flatnonzero(alive & (rng.random(n) < sigmoid(p.criminal_hz[0] + p.criminal_hz[1] * st)))
        rows = self._new_cases(ctx, ent=c, role="defendant", case_type="criminal", cause_cat="not_applicable",
                               cp="government", claim=np.full(c.size, np.nan),
                               outcome=_mix(rng, p.outcome_criminal, c.size),
                               filing=random_day_in_month(rng, t, c.size),
                               cause=np.where(stress_driven[c], "stress", "background"))
        self._schedule_lit(rows)

    def _ring_cases(self, ctx: MonthContext) -> None:
        """Criminal cases against members of an exposed false-invoicing ring (w.p. 0.3 each, §7.4)."""
        rng, ring_id = self.rng, ctx.net.ring_id
        exposed = ctx.board.get("ring_exposed_now")
        if exposed is None:                      # proxy: own exposure draw, each ring at most once
            new = np.flatnonzero(~self.ring_exposed & (rng.random(self.ring_exposed.size) < self.ring_rate))
            self.ring_exposed[new] = True
            exposed = (ring_id >= 0) & np.isin(ring_id, new)
        members = np.flatnonzero(np.asarray(exposed, dtype=bool) & ctx.alive)
        members = members[rng.random(members.size) < self.p.ring.criminal_prob]
        rows = self._new_cases(ctx, ent=members, role="defendant", case_type="criminal",
                               cause_cat="not_applicable", cp="government", claim=np.full(members.size, np.nan),
                               outcome=_mix(rng, self.p.background.outcome_criminal, members.size),
                               filing=random_day_in_month(rng, ctx.t, members.size), cause="ring")
        self._schedule_lit(rows)

    def _cascade(self, ctx: MonthContext) -> None:
        """Post-default suits of §6.3 (lags from the default month), co-defendants, supplier plaintiffs,
        preservation freezes."""
        idx = np.flatnonzero(ctx.latent.defaulted_now)
        if idx.size == 0:
            return
        c, rng, t = self.p.cascade, self.rng, ctx.t
        size = self.size
        lender_rows: list[np.ndarray] = []

        def months_gamma(spec: tuple[float, float], k: int) -> np.ndarray:
            return t + np.rint(rng.gamma(spec[0], spec[1], k)).astype(np.int64)

        # financial loan: 1 + Pois(0.5) bank suits; guarantors join the first as co-defendants (w.p. 0.7)
        fl = idx[rng.random(idx.size) < c.financial_loan_prob]
        k = 1 + rng.poisson(c.financial_loan_extra_pois, fl.size)
        debtor = np.repeat(fl, k)
        m = months_gamma(c.financial_loan_lag_gamma, debtor.size)
        outcome = _mix(rng, c.outcome_defendant, debtor.size)
        cp = _mix(rng, c.financial_loan_counterparty, debtor.size)
        rows = self._new_cases(ctx, ent=debtor, role="defendant", case_type="civil", cause_cat="financial_loan",
                               cp=cp, claim=_ln(rng, c.financial_loan_claim_ln, debtor.size)
                               * size[debtor] ** c.financial_loan_size_exp, outcome=outcome,
                               filing=random_day_in_month(rng, m), cause="cascade")
        first = rows[np.cumsum(k) - k]
        pos, guarantor = _gather(self.g_ptr, self.g_vals, fl)
        ok = ctx.alive[guarantor] & (guarantor != fl[pos]) & (rng.random(guarantor.size) < c.guarantor_codefendant_prob)
        base = first[pos[ok]]
        r2 = self._add_parties(base, guarantor[ok], "defendant", self.lit["outcome"][base], self.lit["cp"][base],
                               "contagion")
        self._schedule_lit(np.concatenate([rows, r2]))
        lender_rows.append(rows)

        # private lending: 40% before the default (U{-4..0}), else Gamma(1.5, 1.5)
        pl = idx[rng.random(idx.size) < c.private_lending_prob]
        before = rng.random(pl.size) < c.private_lending_before_share
        m = np.where(before, t + _uint(rng, c.private_lending_before_lag, pl.size),
                     months_gamma(c.private_lending_lag_gamma, pl.size))
        cp = _mix(rng, self.p.background.private_lending_counterparty, pl.size)
        outcome = _mix(rng, c.outcome_defendant, pl.size)
        other = self._platform_counterparty(cp, pl, size ** self.p.background.plaintiff_size_exp * ctx.alive)
        rows = self._new_cases(ctx, ent=pl, role="defendant", case_type="civil", cause_cat="private_lending", cp=cp,
                               claim=_ln(rng, c.private_lending_claim_ln, pl.size), outcome=outcome,
                               filing=random_day_in_month(rng, m), cause="cascade", platform_other=other >= 0)
        o = other >= 0
        r2 = self._add_parties(rows[o], other[o], "plaintiff", np.array([MIRROR[x] for x in outcome[o]], dtype=object),
                               "enterprise", "contagion")
        self._schedule_lit(np.concatenate([rows, r2]))
        lender_rows.append(rows)

        # sales contracts: w.p. 0.5, 1 + Pois(1) suits at U{-2..6}; platform suppliers are the plaintiffs
        sc = idx[rng.random(idx.size) < c.sales_prob]
        k = 1 + rng.poisson(c.sales_extra_pois, sc.size)
        debtor = np.repeat(sc, k)
        m = t + _uint(rng, c.sales_lag, debtor.size)
        outcome = _mix(rng, c.outcome_defendant, debtor.size)
        pos, sup = _gather(self.sup_ptr, self.sup_vals, sc)
        keep = ctx.alive[sup] & (sup != sc[pos])
        pos, sup = pos[keep], sup[keep]
        rank = np.arange(pos.size) - np.searchsorted(pos, pos, side="left")
        use = rank < k[pos]
        case_pos = (np.cumsum(k) - k)[pos[use]] + rank[use]          # which of the debtor's suits
        has_platform = np.zeros(debtor.size, dtype=bool)
        has_platform[case_pos] = True
        rows = self._new_cases(ctx, ent=debtor, role="defendant", case_type="civil", cause_cat="sales_contract",
                               cp="enterprise", claim=_ln(rng, c.sales_claim_ln, debtor.size), outcome=outcome,
                               filing=random_day_in_month(rng, m), cause="cascade", platform_other=has_platform)
        base = rows[case_pos]
        r2 = self._add_parties(base, sup[use], "plaintiff",
                               np.array([MIRROR[x] for x in outcome[case_pos]], dtype=object), "enterprise", "contagion")
        self._schedule_lit(np.concatenate([rows, r2]))

        # guarantee recourse when a guarantee-backed loan exists
        eligible = idx[self.has_guarantor[idx] | self.gc_backed[idx]]
        gr = eligible[rng.random(eligible.size) < c.recourse_prob]
        m = months_gamma(c.recourse_lag_gamma, gr.size)
        rows = self._new_cases(ctx, ent=gr, role="defendant", case_type="civil", cause_cat="guarantee_recourse",
                               cp="guarantee_company", claim=_ln(rng, c.recourse_claim_ln, gr.size)
                               * size[gr] ** c.financial_loan_size_exp,
                               outcome=_mix(rng, c.outcome_defendant, gr.size), filing=random_day_in_month(rng, m),
                               cause="cascade")
        self._schedule_lit(rows)
        lender_rows.append(rows)

        # bankruptcy (the enterprise is the debtor = defendant)
        bk = idx[rng.random(idx.size) < c.bankruptcy_prob]
        m = months_gamma(c.bankruptcy_lag_gamma, bk.size)
        rows = self._new_cases(ctx, ent=bk, role="defendant", case_type="bankruptcy", cause_cat="not_applicable",
                               cp=_mix(rng, c.bankruptcy_counterparty, bk.size),
                               claim=_ln(rng, c.financial_loan_claim_ln, bk.size) * size[bk] ** c.financial_loan_size_exp,
                               outcome=_mix(rng, c.outcome_bankruptcy, bk.size), filing=random_day_in_month(rng, m),
                               cause="cascade")
        self._schedule_lit(rows)

        self._preservation_freezes(ctx, np.concatenate(lender_rows))

    def _preservation_freezes(self, ctx: MonthContext, lender_rows: np.ndarray) -> None:
        """S16 (i) the debtor's stakes in its subsidiaries, (ii) the owner's stake in the debtor, both tied to
        the debtor's earliest lender suit of this default."""
        if lender_rows.size == 0:
            return
        f, rng, h = self.p.freeze, self.rng, ctx.net.holdings
        L = self.lit
        order = np.lexsort((L["filing"][lender_rows].astype(np.int64), L["ent"][lender_rows]))
        srt = lender_rows[order]
        first = srt[np.r_[True, np.diff(L["ent"][srt]) != 0]]
        debtor = L["ent"][first]
        pos, hold = _gather(self.sub_ptr, self.sub_vals, debtor)
        ok = ctx.alive[h.target[hold]] & (rng.random(hold.size) < f.subsidiary_prob)
        sub_case, sub_hold = first[pos[ok]], hold[ok]
        pos, hold = _gather(self.tgt_ptr, self.tgt_vals, debtor)
        own = (h.holder_kind[hold] == PERSON) & (h.holder_index[hold] == ctx.net.controller[debtor[pos]])
        pos, hold = pos[own], hold[own]
        ok = rng.random(hold.size) < f.owner_guarantor_prob
        own_case, own_hold = first[pos[ok]], hold[ok]
        for case_rows, holds, cause in ((sub_case, sub_hold, "contagion"), (own_case, own_hold, "cascade")):
            start = self._not_before_now(ctx, add_days(L["filing"][case_rows], _uint(rng, f.start_days, case_rows.size)))
            self._new_freezes(ctx, holds, start, lit=case_rows, enf=np.full(case_rows.size, -1),
                              region=_mix(rng, f.court_region, case_rows.size), cause=cause)

    # ---------------------------------------------------------------------------------------------
    # record creation
    def _cause_mix(self, mix: Mix, ent: np.ndarray) -> np.ndarray:
        """Cause of action; maritime_commercial only for shipping and fishing firms."""
        rng = self.rng
        full = _mix(rng, mix, ent.size)
        reduced = _mix(rng, {k: v for k, v in mix.items() if k != "maritime_commercial"}, ent.size)
        return np.where(self.maritime[ent], full, reduced)

    def _counterparty(self, cause: np.ndarray) -> np.ndarray:
        p, rng = self.p.background, self.rng
        out = _mix(rng, p.counterparty, cause.size)
        out = np.where(cause == "private_lending", _mix(rng, p.private_lending_counterparty, cause.size), out)
        return np.where(cause == "labor", _mix(rng, p.labor_counterparty, cause.size), out)

    def _platform_counterparty(self, cp: np.ndarray, ent: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """For enterprise counterparties, w.p. platform_counterparty_prob a platform firm drawn by weight."""
        rng = self.rng
        local = (cp == "enterprise") & (rng.random(ent.size) < self.p.background.platform_counterparty_prob)
        other = np.full(ent.size, -1, dtype=np.int64)
        other[local] = _pick(rng, weights, int(local.sum()))
        other[other == ent] = -1
        return other

    def _third_parties(self, ctx: MonthContext, rows: np.ndarray, alive: np.ndarray) -> None:
        rng = self.rng
        sel = rows[rng.random(rows.size) < self.p.background.third_party_prob]
        who = _pick(rng, alive.astype(np.float64), sel.size)
        ok = (who >= 0) & (who != self.lit["ent"][sel])
        case_out = self.lit["outcome"][sel[ok]]
        third = np.where(np.isin(case_out, ("mediated", "withdrawn")), case_out, "won").astype(object)
        r = self._add_parties(sel[ok], who[ok], "third_party", third, "enterprise", "background")
        self._schedule_lit(r)

    def _new_cases(self, ctx: MonthContext, *, ent: np.ndarray, role: str, case_type: str,
                   cause_cat: str | np.ndarray, cp: str | np.ndarray, claim: np.ndarray, outcome: np.ndarray,
                   filing: np.ndarray, cause: str | np.ndarray,
                   platform_other: np.ndarray | None = None) -> np.ndarray:
        """One case per entry with its first platform party; draws court, hearing and judgment dates."""
        k = ent.size
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        c, rng = self.p.court, self.rng
        cause_arr = np.broadcast_to(np.asarray(cause_cat, dtype=object), (k,))
        claim = np.round(claim, 2)
        court = np.full(k, "basic", dtype=object)
        outside = rng.random(k) < self.p.background.outside_court_prob
        if platform_other is not None:
            outside &= ~platform_other
        court[outside] = "higher_or_other"
        big = (np.nan_to_num(claim, nan=0.0) >= c.intermediate_claim) & (rng.random(k) < c.intermediate_prob)
        court[big] = "intermediate"
        if case_type == "criminal":
            court[rng.random(k) < c.criminal_intermediate_prob] = "intermediate"
        court[cause_arr == "maritime_commercial"] = "maritime"
        # hearing and judgment
        has_hearing = rng.random(k) < c.hearing_prob
        hearing = add_days(filing, _uint(rng, c.hearing_days, k))
        judgment = add_days(filing, np.maximum(1, np.rint(rng.gamma(*c.judgment_gamma_days, k))).astype(np.int64))
        early = has_hearing & (judgment < hearing)
        settled = np.isin(outcome, ("mediated", "withdrawn"))
        has_hearing &= ~(early & settled)                         # settled before the hearing
        push = early & ~settled
        judgment = np.where(push, add_days(hearing, _uint(rng, c.judgment_after_hearing_days, k)), judgment)
        hearing = np.where(has_hearing, hearing, NAT)
        notice = np.where(has_hearing, np.maximum(add_days(filing, 1),
                                                  add_days(hearing, -_uint(rng, c.notice_days_before, k))), NAT)
        return self.lit.append(
            k, ent=ent, case_id=hex_ids(rng, "C_", k), filing=filing, case_type=case_type, cause_cat=cause_arr,
            court=court, role=role, cp=cp, claim=claim, hearing=hearing, notice=notice, judgment=judgment,
            outcome=outcome, cause=cause, emit=date_to_month(filing) >= self.t_events)

    def _add_parties(self, base: np.ndarray, ent: np.ndarray, role: str, outcome: np.ndarray | str,
                     cp: np.ndarray | str, cause: str | np.ndarray) -> np.ndarray:
        """Further platform parties of existing cases (same case_id and dates, own role and outcome)."""
        if base.size == 0:
            return np.zeros(0, dtype=np.int64)
        L = self.lit
        shared = {f: L[f][base] for f in ("case_id", "filing", "case_type", "cause_cat", "court", "claim", "hearing",
                                          "notice", "judgment", "emit")}
        return L.append(base.size, ent=ent, role=role, outcome=outcome, cp=cp, cause=cause, **shared)

    def _schedule_lit(self, rows: np.ndarray) -> None:
        if rows.size == 0:
            return
        L, q = self.lit, self.queue
        q.push("lit_file", date_to_month(L["filing"][rows]), rows)
        h = rows[~np.isnat(L["notice"][rows])]
        q.push("lit_notice", date_to_month(L["notice"][h]), h)
        q.push("lit_judgment", date_to_month(L["judgment"][rows]), rows)

    def _new_freezes(self, ctx: MonthContext, holds: np.ndarray, start: np.ndarray, *, lit: np.ndarray,
                     enf: np.ndarray, region: np.ndarray, cause: str | np.ndarray) -> None:
        if holds.size == 0:
            return
        f, rng, h = self.p.freeze, self.rng, ctx.net.holdings
        target = h.target[holds]
        capital = ctx.board.get("registered_capital", self.capital_proxy)
        capital = np.where(np.isfinite(capital[target]) & (capital[target] > 0), capital[target],
                           self.capital_proxy[target])
        amount = np.round(h.share[holds] * capital * rng.uniform(*f.amount_share, holds.size), 2)
        invalid = rng.random(holds.size) < f.invalid_prob
        plan_invalid = np.where(invalid, add_months(start, _uint(rng, f.invalid_months, holds.size)), NAT)
        idx = self.frz.append(holds.size, ent=target, holder=h.holder_id[holds], amount=amount, start=start,
                              end=add_months(start, f.term_months), region=region, status="frozen", lit=lit, enf=enf,
                              plan_invalid=plan_invalid, cause=cause, emit=date_to_month(start) >= self.t_events)
        self.queue.push("frz_start", date_to_month(start), idx)

    # ---------------------------------------------------------------------------------------------
    # actions (each gets the unique due record indices)
    def _do_lit_file(self, ctx: MonthContext, out: Emitter, rows: np.ndarray) -> None:
        self.lit["filed"][rows] = True
        self._emit_lit(ctx, out, rows, "file")

    def _do_lit_notice(self, ctx: MonthContext, out: Emitter, rows: np.ndarray) -> None:
        self._emit_lit(ctx, out, rows, "notice")

    def _do_lit_judgment(self, ctx: MonthContext, out: Emitter, rows: np.ndarray) -> None:
        """Judgment row; lost or unpaid-mediated civil defendants may become judgment debtors."""
        e, rng, L = self.p.enforcement, self.rng, self.lit
        L["judged"][rows] = True
        self._emit_lit(ctx, out, rows, "judgment")
        slot = L["ent"][rows]
        defaulted = ~ctx.latent.performing[slot]
        outcome = L["outcome"][rows]
        unpaid = rng.random(rows.size) < np.where(defaulted, e.unpaid_mediated_prob_defaulted, e.unpaid_mediated_prob)
        liable = (L["case_type"][rows] == "civil") & (L["role"][rows] == "defendant") & (
            np.isin(outcome, ("lost", "partially_lost")) | ((outcome == "mediated") & unpaid))
        p_create = np.where(defaulted, e.create_prob_defaulted,
                            sigmoid(e.create_logit[0] + e.create_logit[1] * self.st[slot]))
        made = rows[liable & (rng.random(rows.size) < p_create)]
        if made.size:
            filing = self._not_before_now(ctx, add_days(L["judgment"][made], _uint(rng, e.filing_days, made.size)))
            src = L["cause"][made]
            st_cause = np.where(self.st[L["ent"][made]] > 0.5, "stress", "background")
            enf = self.enf.append(made.size, ent=L["ent"][made], lit=made, case_id=hex_ids(rng, "E_", made.size),
                                  filing=filing, applicant=np.array([APPLICANT[x] for x in L["cp"][made]], dtype=object),
                                  status="in_progress",
                                  cause=np.where(np.isin(src, ("cascade", "contagion", "ring")), src, st_cause),
                                  emit=date_to_month(filing) >= self.t_events)
            L["enf"][made] = enf
            self.queue.push("enf_file", date_to_month(filing), enf)
        # preservation freezes follow the case into enforcement, or end after a judgment without one
        F = self.frz
        fz = np.flatnonzero(np.isin(F["lit"], rows) & ~F["closed"] & ~F["cancelled"])
        if fz.size:
            linked = L["enf"][F["lit"][fz]]
            F["enf"][fz] = linked
            free = fz[linked < 0]
            when = add_days(L["judgment"][F["lit"][free]], _uint(rng, self.p.freeze.unfreeze_days, free.size))
            F["plan_unfreeze"][free] = np.maximum(when, add_days(F["start"][free], 1))
            self.queue.push("frz_unfreeze", date_to_month(F["plan_unfreeze"][free]), free)

    def _do_enf_file(self, ctx: MonthContext, out: Emitter, idx: np.ndarray) -> None:
        """Enforcement filing: amounts, the close plan, and the derived listing, order and freeze."""
        e, rng, E = self.p.enforcement, self.rng, self.enf
        E["filed"][idx] = True
        slot = E["ent"][idx]
        E["region"][idx] = _mix(rng, e.court_region, idx.size)
        target = np.round(self.lit["claim"][E["lit"][idx]] * rng.uniform(*e.target_factor, idx.size), 2)
        E["target"][idx] = target
        E["unfulfilled"][idx] = target
        defaulted = ~ctx.latent.performing[slot]
        E["defaulted"][idx] = defaulted
        d, nd = idx[defaulted], idx[~defaulted]
        self._plan_defaulted(d, E["filing"][d])
        g = rng.gamma(*e.close_gamma_months, nd.size)
        E["plan_close"][nd] = add_days(E["filing"][nd], np.maximum(7, _months_to_days(g)))
        E["plan_status"][nd] = np.where(rng.random(nd.size) < e.concluded_prob, "concluded", "withdrawn_or_settled")
        self._derived(ctx, idx, E["filing"][idx], defaulted)
        self._emit_enf(ctx, out, idx, closing=False)
        closes = idx[~np.isnat(E["plan_close"][idx])]
        self.queue.push("enf_close", date_to_month(E["plan_close"][closes]), closes)
        # enforcement freeze of the main holder's stake
        f = self.p.freeze
        hold = self.main_holding[slot]
        fz = (hold >= 0) & (rng.random(idx.size) < f.enforcement_prob)
        start = add_days(E["filing"][idx[fz]], _uint(rng, f.start_days, int(fz.sum())))
        self._new_freezes(ctx, hold[fz], start, lit=np.full(int(fz.sum()), -1), enf=idx[fz], region=E["region"][idx[fz]],
                          cause=E["cause"][idx[fz]])

    def _plan_defaulted(self, idx: np.ndarray, start: np.ndarray) -> None:
        """Defaulted debtor: terminated without assets after U{6..12} months w.p. 0.55, else settled,
        concluded or left in progress."""
        if idx.size == 0:
            return
        e, rng, E = self.p.enforcement, self.rng, self.enf
        k = idx.size
        u, v = rng.random(k), rng.random(k)
        term = u < e.terminated_prob
        settle = ~term & (v < e.defaulted_settled_share)
        concl = ~term & ~settle & (v < e.defaulted_settled_share + e.defaulted_concluded_share)
        t_term = np.maximum(add_months(E["filing"][idx], _uint(rng, e.terminated_months, k)), add_days(start, 7))
        t_settle = add_months(start, _uint(rng, e.defaulted_settle_months, k))
        t_concl = add_days(start, np.maximum(30, _months_to_days(rng.gamma(*e.defaulted_concluded_gamma_months, k))))
        E["plan_status"][idx] = np.select([term, settle, concl],
                                          ["terminated_no_assets", "withdrawn_or_settled", "concluded"], "in_progress")
        E["plan_close"][idx] = np.select([term, settle, concl], [t_term, t_settle, t_concl], NAT)

    def _derived(self, ctx: MonthContext, idx: np.ndarray, start: np.ndarray, defaulted: np.ndarray,
                 restrict: bool = True) -> None:
        """Dishonest listing and consumption restriction of newly filed enforcement cases (the listing only,
        for cases whose debtor defaulted after the filing: restriction orders follow the filing by 20-60 days)."""
        dp, rp, rng, E = self.p.dishonest, self.p.restriction, self.rng, self.enf
        k = idx.size
        if k == 0:
            return
        # dishonest listing: 0.55 for defaulted debtors, 0.10 for other cases still unpaid at publication
        months = np.maximum(dp.publish_min_months, rng.gamma(*dp.publish_gamma_months, k))
        publish = add_days(start, _months_to_days(months))
        listed = self._list_decision(ctx, idx, defaulted)
        plan_close, plan_status = E["plan_close"][idx], E["plan_status"][idx]
        paid_before = np.isin(plan_status, CLOSED_PAID) & (plan_close <= publish)
        push = listed & defaulted & paid_before                    # defaulted debtors settle only after listing
        E["plan_close"][idx[push]] = add_days(publish[push], _uint(rng, dp.settle_after_publish_days, int(push.sum())))
        listed &= ~(paid_before & ~defaulted)
        listed &= ~np.isin(idx, self.dis["enf"])                  # one listing per enforcement case
        sel = idx[listed]
        if sel.size:
            d = self.dis.append(sel.size, ent=E["ent"][sel], enf=sel, filing=E["filing"][sel], publish=publish[listed],
                                perf=_mix(rng, dp.performance, sel.size), behavior=_mix(rng, dp.behavior, sel.size),
                                cause=E["cause"][sel], emit=date_to_month(publish[listed]) >= self.t_events)
            self.queue.push("dis_publish", date_to_month(publish[listed]), d)
        if not restrict:
            return
        # consumption restriction: w.p. 0.7 if still unpaid at the issue date
        issue = add_days(start, _uint(rng, rp.issue_days, k))
        issued = (rng.random(k) < rp.prob) & ~(np.isin(E["plan_status"][idx], CLOSED_PAID)
                                               & (E["plan_close"][idx] <= issue))
        issued &= ~np.isin(idx, self.res["enf"])
        sel = idx[issued]
        if sel.size:
            r = self.res.append(sel.size, ent=E["ent"][sel], enf=sel, issue=issue[issued], applicant=E["applicant"][sel],
                                cause=E["cause"][sel], emit=date_to_month(issue[issued]) >= self.t_events)
            self.queue.push("res_issue", date_to_month(issue[issued]), r)

    def _list_decision(self, ctx: MonthContext, idx: np.ndarray, defaulted: np.ndarray) -> np.ndarray:
        """Whether each enforcement case leads to a listing. Defaulted debtors are listed w.p. prob_defaulted
        once per default episode (decided at the episode's first enforcement case; E2 is a firm-level event);
        further cases of a listed debtor are listed w.p. prob_defaulted_repeat. Others: prob_other per case."""
        dp, rng = self.p.dishonest, self.rng
        slot = self.enf["ent"][idx]
        u, v = rng.random(idx.size), rng.random(idx.size)
        episode = ctx.latent.last_default[slot]
        first = np.zeros(idx.size, dtype=bool)
        first[np.unique(slot, return_index=True)[1]] = True
        decide = defaulted & first & (self.list_episode[slot] != episode)
        self.list_episode[slot[decide]] = episode[decide]
        self.list_decision[slot[decide]] = u[decide] < dp.prob_defaulted
        repeat = self.list_decision[slot] & (v < dp.prob_defaulted_repeat)
        return np.where(defaulted, np.where(decide, self.list_decision[slot], repeat), u < dp.prob_other)

    def _do_enf_close(self, ctx: MonthContext, out: Emitter, idx: np.ndarray) -> None:
        """Close due enforcement cases; a debtor that defaulted since filing gets the defaulted plan instead."""
        e, rng, E = self.p.enforcement, self.rng, self.enf
        due = idx[(E["status"][idx] == "in_progress") & ~np.isnat(E["plan_close"][idx])]
        due = due[date_to_month(E["plan_close"][due]) <= ctx.t]
        replan = due[~E["defaulted"][due] & ~ctx.latent.performing[E["ent"][due]]]
        if replan.size:
            now = random_day_in_month(rng, ctx.t, replan.size)
            E["defaulted"][replan] = True
            self._plan_defaulted(replan, now)
            self._derived(ctx, replan, now, np.ones(replan.size, dtype=bool), restrict=False)
            later = replan[~np.isnat(E["plan_close"][replan])]
            self.queue.push("enf_close", np.maximum(ctx.t, date_to_month(E["plan_close"][later])), later)
            due = due[~np.isin(due, replan)]
        if due.size == 0:
            return
        status = E["plan_status"][due]
        E["status"][due] = status
        E["close"][due] = E["plan_close"][due]
        target = E["target"][due]
        share = rng.uniform(*e.settled_unfulfilled_share, due.size)
        E["unfulfilled"][due] = np.select([status == "concluded", status == "withdrawn_or_settled"],
                                          [0.0, np.round(target * share, 2)], target)
        self._emit_enf(ctx, out, due, closing=True)
        paid = due[np.isin(status, CLOSED_PAID)]
        if paid.size:
            self._release(ctx, out, paid)

    def _release(self, ctx: MonthContext, out: Emitter, paid: np.ndarray) -> None:
        """A concluded or settled enforcement lifts its restriction orders and freezes and may end its
        listing early."""
        rng, E = self.rng, self.enf
        close = dict(zip(paid.tolist(), E["close"][paid].tolist(), strict=True))
        R = self.res
        r = np.flatnonzero(np.isin(R["enf"], paid) & ~R["removed"] & ~R["cancelled"])
        act, pend = r[R["issued"][r]], r[~R["issued"][r]]
        R["cancelled"][pend] = True
        if act.size:
            R["removed"][act] = True
            R["removal"][act] = np.array([close[x] for x in R["enf"][act].tolist()], dtype="datetime64[D]")
            self._emit_res(ctx, out, act, removal=True)
        D, dp = self.dis, self.p.dishonest
        d = np.flatnonzero(np.isin(D["enf"], paid) & ~D["removed"] & ~D["cancelled"])
        D["cancelled"][d[~D["published"][d]]] = True
        act = d[D["published"][d]]
        early = act[rng.random(act.size) < dp.early_removal_prob]
        if early.size:
            c = np.array([close[x] for x in D["enf"][early].tolist()], dtype="datetime64[D]")
            when = np.maximum(c, add_months(D["publish"][early], _uint(rng, dp.early_removal_months, early.size)))
            when = np.maximum(np.minimum(when, D["term_end"][early]), ctx.first_day)
            D["plan_removal"][early] = when
            self.queue.push("dis_remove", date_to_month(when), early)
        F = self.frz
        fz = np.flatnonzero(np.isin(F["enf"], paid) & ~F["closed"] & ~F["cancelled"])
        F["cancelled"][fz[~F["started"][fz]]] = True
        act = fz[F["started"][fz]]
        if act.size:
            F["plan_unfreeze"][act] = np.array([close[x] for x in F["enf"][act].tolist()], dtype="datetime64[D]")
            self._unfreeze(ctx, out, act)

    def _do_dis_publish(self, ctx: MonthContext, out: Emitter, idx: np.ndarray) -> None:
        D, dp = self.dis, self.p.dishonest
        idx = idx[~D["cancelled"][idx] & ~D["published"][idx]]
        if idx.size == 0:
            return
        D["published"][idx] = True
        D["rep"][idx] = self._legal_rep_ids(ctx, D["ent"][idx])
        D["term_end"][idx] = add_months(D["publish"][idx], dp.term_months)
        D["plan_removal"][idx] = D["term_end"][idx]
        self._emit_dis(ctx, out, idx, removal=False)
        self.queue.push("dis_remove", date_to_month(D["plan_removal"][idx]), idx)

    def _do_dis_remove(self, ctx: MonthContext, out: Emitter, idx: np.ndarray) -> None:
        D = self.dis
        idx = idx[D["published"][idx] & ~D["removed"][idx]]
        idx = idx[date_to_month(D["plan_removal"][idx]) <= ctx.t]      # skip superseded schedules
        if idx.size == 0:
            return
        D["removed"][idx] = True
        D["removal"][idx] = D["plan_removal"][idx]
        self._emit_dis(ctx, out, idx, removal=True)

    def _do_res_issue(self, ctx: MonthContext, out: Emitter, idx: np.ndarray) -> None:
        rp, rng, R, E = self.p.restriction, self.rng, self.res, self.enf
        idx = idx[~R["cancelled"][idx] & ~R["issued"][idx]]
        enf = R["enf"][idx]
        paid = np.isin(E["status"][enf], CLOSED_PAID) & (E["close"][enf] <= R["issue"][idx])
        R["cancelled"][idx[paid]] = True
        idx = idx[~paid]
        if idx.size == 0:
            return
        R["issued"][idx] = True
        slot = R["ent"][idx]
        role = _mix(rng, rp.roles, idx.size)
        person = np.where(role == "legal_rep", self._legal_rep_index(ctx)[slot],
                          np.where(role == "actual_controller", ctx.net.controller[slot], self.other_person[slot]))
        R["role"][idx] = role
        R["person"][idx] = ctx.net.persons.person_id[person]
        self._emit_res(ctx, out, idx, removal=False)

    def _do_frz_start(self, ctx: MonthContext, out: Emitter, idx: np.ndarray) -> None:
        F = self.frz
        idx = idx[~F["cancelled"][idx] & ~F["started"][idx]]
        if idx.size == 0:
            return
        F["started"][idx] = True
        self._emit_frz(ctx, out, idx, F["start"][idx])
        self.queue.push("frz_end", date_to_month(F["end"][idx]), idx)
        inv = idx[~np.isnat(F["plan_invalid"][idx])]
        self.queue.push("frz_invalid", date_to_month(F["plan_invalid"][inv]), inv)

    def _do_frz_unfreeze(self, ctx: MonthContext, out: Emitter, idx: np.ndarray) -> None:
        F = self.frz
        idx = idx[F["started"][idx] & ~F["closed"][idx] & (F["enf"][idx] < 0)]
        self._unfreeze(ctx, out, idx)

    def _unfreeze(self, ctx: MonthContext, out: Emitter, idx: np.ndarray) -> None:
        if idx.size == 0:
            return
        F = self.frz
        F["closed"][idx] = True
        F["status"][idx] = "unfrozen"
        self._emit_frz(ctx, out, idx, F["plan_unfreeze"][idx])

    def _do_frz_end(self, ctx: MonthContext, out: Emitter, idx: np.ndarray) -> None:
        """At the end of the term a freeze is renewed while its case is open, else it lapses (invalid)."""
        F, E, L = self.frz, self.enf, self.lit
        idx = idx[F["started"][idx] & ~F["closed"][idx]]
        idx = idx[date_to_month(F["end"][idx]) <= ctx.t]
        if idx.size == 0:
            return
        enf, lit = F["enf"][idx], F["lit"][idx]
        open_enf = (enf >= 0) & ~np.isin(E["status"][np.maximum(enf, 0)], CLOSED_PAID)
        open_lit = (enf < 0) & (lit >= 0) & ~L["judged"][np.maximum(lit, 0)]
        renew = idx[open_enf | open_lit]
        lapse = idx[~(open_enf | open_lit)]
        when = F["end"][idx].copy()
        if renew.size:
            F["status"][renew] = "renewed"
            F["end"][renew] = add_months(F["end"][renew], self.p.freeze.term_months)
            self._emit_frz(ctx, out, renew, when[np.isin(idx, renew)])
            self.queue.push("frz_end", date_to_month(F["end"][renew]), renew)
        if lapse.size:
            F["status"][lapse] = "invalid"
            F["closed"][lapse] = True
            self._emit_frz(ctx, out, lapse, when[np.isin(idx, lapse)])

    def _do_frz_invalid(self, ctx: MonthContext, out: Emitter, idx: np.ndarray) -> None:
        F = self.frz
        idx = idx[F["started"][idx] & ~F["closed"][idx]]
        if idx.size == 0:
            return
        F["status"][idx] = "invalid"
        F["closed"][idx] = True
        self._emit_frz(ctx, out, idx, F["plan_invalid"][idx])

    # ---------------------------------------------------------------------------------------------
    # emission
    def _stage(self, sub_item: str, columns: dict[str, np.ndarray], *, ent: np.ndarray, available: np.ndarray,
               cause: np.ndarray, valid_from: np.ndarray) -> None:
        """Collect rows; `_flush` hands them to the Emitter in one call per sub-item and month."""
        self._staged[sub_item].append((columns, ent, available, np.asarray(cause, dtype=object), valid_from))

    def _flush(self, out: Emitter) -> None:
        for sub_item in self.sub_items:
            parts = self._staged.pop(sub_item, [])
            if not parts:
                continue
            cols = {k: np.concatenate([np.asarray(p[0][k]) for p in parts]) for k in parts[0][0]}
            out.emit(sub_item, cols, ent=np.concatenate([p[1] for p in parts]),
                     available=np.concatenate([p[2] for p in parts]), cause=np.concatenate([p[3] for p in parts]),
                     valid_from=np.concatenate([p[4] for p in parts]))

    def _not_before_now(self, ctx: MonthContext, dates: np.ndarray) -> np.ndarray:
        """Causal rule for records derived from backdated pre-default suits: an enforcement filing or a freeze
        cannot happen before the default that caused it, so past dates move into the current month."""
        if self.p.lags.pre_default_availability == "as_filed":
            return dates
        past = dates < ctx.first_day
        if not past.any():
            return dates
        return np.where(past, random_day_in_month(self.rng, ctx.t, dates.size), dates)

    def _avail(self, ctx: MonthContext, biz: np.ndarray, lag: tuple[int, int], store: _Store,
               idx: np.ndarray) -> np.ndarray:
        """Business date + a lag in days; with the causal rule never before the current month; a record's
        versions become available in the order they happened (each after the previous one)."""
        base = biz if self.p.lags.pre_default_availability == "as_filed" else np.maximum(biz, ctx.first_day)
        avail = add_days(base, _uint(self.rng, lag, biz.size))
        prev = store["avail"][idx]
        avail = np.where(np.isnat(prev), avail, np.maximum(avail, add_days(prev, 1)))
        store["avail"][idx] = avail
        return avail

    def _emit_lit(self, ctx: MonthContext, out: Emitter, rows: np.ndarray, version: str) -> None:
        L, lags = self.lit, self.p.lags
        rows = rows[L["emit"][rows]]
        k = rows.size
        if k == 0:
            return
        nat = np.full(k, NAT, dtype="datetime64[D]")
        if version == "file":
            biz, hearing, judgment, outcome, lag = L["filing"][rows], nat, nat, "pending", lags.filing_days
        elif version == "notice":
            biz, hearing, judgment, outcome, lag = L["notice"][rows], L["hearing"][rows], nat, "pending", lags.filing_days
        else:
            biz, hearing, judgment = L["judgment"][rows], L["hearing"][rows], L["judgment"][rows]
            outcome, lag = L["outcome"][rows], lags.judgment_doc_days
        slot = L["ent"][rows]
        self._stage("litigation_cases", {
            "uscc": ctx.ent.uscc[slot], "case_id": L["case_id"][rows], "filing_date": L["filing"][rows],
            "case_type": L["case_type"][rows], "cause_category": L["cause_cat"][rows], "court_type": L["court"][rows],
            "party_role": L["role"][rows], "counterparty_type": L["cp"][rows], "claim_amount": L["claim"][rows],
            "hearing_date": hearing, "judgment_date": judgment,
            "outcome": np.broadcast_to(np.asarray(outcome, dtype=object), (k,)),
        }, ent=slot, available=self._avail(ctx, biz, lag, L, rows), cause=L["cause"][rows], valid_from=biz)

    def _emit_enf(self, ctx: MonthContext, out: Emitter, idx: np.ndarray, closing: bool) -> None:
        E = self.enf
        idx = idx[E["emit"][idx]]
        if idx.size == 0:
            return
        biz = E["close"][idx] if closing else E["filing"][idx]
        slot = E["ent"][idx]
        self._stage("enforcement_cases", {
            "uscc": ctx.ent.uscc[slot], "case_id": E["case_id"][idx], "filing_date": E["filing"][idx],
            "court_region": E["region"][idx], "execution_target_amount": E["target"][idx],
            "unfulfilled_amount": E["unfulfilled"][idx], "status": E["status"][idx], "close_date": E["close"][idx],
        }, ent=slot, available=self._avail(ctx, biz, self.p.lags.enforcement_days, E, idx), cause=E["cause"][idx],
            valid_from=biz)

    def _emit_dis(self, ctx: MonthContext, out: Emitter, idx: np.ndarray, removal: bool) -> None:
        D = self.dis
        idx = idx[D["emit"][idx]]
        if idx.size == 0:
            return
        biz = D["removal"][idx] if removal else D["publish"][idx]
        slot = D["ent"][idx]
        self._stage("dishonest_debtors", {
            "uscc": ctx.ent.uscc[slot], "case_id": self.enf["case_id"][D["enf"][idx]], "filing_date": D["filing"][idx],
            "publish_date": D["publish"][idx], "performance_status": D["perf"][idx],
            "dishonest_behavior": D["behavior"][idx], "legal_rep_person_id": D["rep"][idx],
            "removal_date": D["removal"][idx],
        }, ent=slot, available=self._avail(ctx, biz, (0, 0), D, idx), cause=D["cause"][idx], valid_from=biz)

    def _emit_res(self, ctx: MonthContext, out: Emitter, idx: np.ndarray, removal: bool) -> None:
        R = self.res
        idx = idx[R["emit"][idx]]
        if idx.size == 0:
            return
        biz = R["removal"][idx] if removal else R["issue"][idx]
        slot = R["ent"][idx]
        self._stage("consumption_restrictions", {
            "uscc": ctx.ent.uscc[slot], "case_id": self.enf["case_id"][R["enf"][idx]], "issue_date": R["issue"][idx],
            "restricted_person_id": R["person"][idx], "restricted_role": R["role"][idx],
            "applicant_type": R["applicant"][idx], "removal_date": R["removal"][idx],
        }, ent=slot, available=self._avail(ctx, biz, self.p.lags.restriction_days, R, idx), cause=R["cause"][idx],
            valid_from=biz)

    def _emit_frz(self, ctx: MonthContext, out: Emitter, idx: np.ndarray, biz: np.ndarray) -> None:
        F = self.frz
        keep = F["emit"][idx]
        idx, biz = idx[keep], biz[keep]
        if idx.size == 0:
            return
        slot = F["ent"][idx]
        self._stage("judicial_freezes", {
            "uscc": ctx.ent.uscc[slot], "holder_id": F["holder"][idx], "frozen_equity_amount": F["amount"][idx],
            "freeze_start_date": F["start"][idx], "freeze_end_date": F["end"][idx], "court_region": F["region"][idx],
            "status": F["status"][idx],
        }, ent=slot, available=self._avail(ctx, biz, self.p.lags.freeze_days, F, idx), cause=F["cause"][idx],
            valid_from=biz)

    # ---------------------------------------------------------------------------------------------
    # people and the board
    def _legal_rep_index(self, ctx: MonthContext) -> np.ndarray:
        rep = ctx.board.get("legal_rep")
        return ctx.net.legal_rep if rep is None else np.asarray(rep, dtype=np.int64)

    def _legal_rep_ids(self, ctx: MonthContext, slot: np.ndarray) -> np.ndarray:
        return ctx.net.persons.person_id[self._legal_rep_index(ctx)[slot]]

    def _write_board(self, ctx: MonthContext) -> None:
        """State at the end of month t from the records' business dates."""
        n = self.n

        def flag(slots: np.ndarray) -> np.ndarray:
            return np.bincount(slots, minlength=n)[:n] > 0

        L, E, D, R = self.lit, self.enf, self.dis, self.res
        pending = L["filed"] & ~L["judged"] & (L["role"] == "defendant")
        ctx.board["in_litigation"] = flag(L["ent"][pending])
        ctx.board["active_dishonest"] = flag(D["ent"][D["published"] & ~D["removed"]])
        ctx.board["active_restriction"] = flag(R["ent"][R["issued"] & ~R["removed"]])
        term = (E["status"] == "terminated_no_assets") & (date_to_month(E["close"]) > ctx.t - 24)
        ctx.board["enforcement_terminated_24m"] = flag(E["ent"][term])

