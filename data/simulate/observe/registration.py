"""Registration, ownership, personnel, registration changes and equity pledges (simulation.md §7.1, §7.3).

S01 `ent_registration` is a per-enterprise snapshot with SCD-2 versions at birth, on every status change
and on every S04 change that touches one of its fields. S02 `shareholders` and S03 `key_personnel` are
lists: the holdings and the governance template drawn at set-up, then each S04 change closes a row
(the same key re-emitted with `valid_to`) and opens another. S04 `registration_changes` are monthly
Bernoulli draws with stress terms plus the control reshuffle ('escape') around default. S08
`equity_pledges` is an event list: a registration row, and the same key again with status 'cancelled'
and `cancel_date` when the pledge is released (an updated record, not a second pledge).

The escape pattern of §6.3 sits at tau + U{-6..+3}. Months before tau cannot be drawn once tau is known
without back-dating rows, so the pre-default part is a monthly hazard kappa x lambda_t on the true default
hazard (distressed firms reshuffle; most of them default soon after, some never do) and the post-default
part is scheduled at default.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
from pydantic import field_validator, model_validator

from data.simulate.calendar import add_months, month_end, month_start, random_day_in_month
from data.simulate.compact import full_object, shared_strings
from data.simulate.context import MonthContext
from data.simulate.draws import choice_by_weights, lognormal
from data.simulate.latent import ACTIVE, LIQUIDATING, STATUS_CODES, sigmoid
from data.simulate.networks import (
    FOREIGN,
    FUND,
    GOV,
    HOLDER_TYPES,
    OUTSIDE_ENT,
    PERSON,
    PLATFORM_ENT,
    hex_ids,
)
from data.simulate.params import load_module_params
from kernel.catalog import load_catalog
from kernel.config import FrozenModel
from kernel.uscc import generate_usccs

if TYPE_CHECKING:
    from data.simulate.emit import Emitter

NAT = np.datetime64("NaT", "D")
ITEMS = ("legal_rep", "shareholder", "registered_capital", "business_scope", "address", "name",
         "key_personnel", "ent_type", "operating_term")
LEGAL_REP, SHAREHOLDER, CAPITAL, SCOPE, ADDRESS, NAME, PERSONNEL, ENT_TYPE, TERM = range(len(ITEMS))
# items whose change gives a new S01 version (address only when it crosses districts)
S01_ITEMS = (LEGAL_REP, CAPITAL, SCOPE, NAME, ENT_TYPE, TERM)
DISTRICTS = ("330902", "330903", "330921", "330922")
AGE_BANDS = ((30, "lt30"), (40, "30_39"), (50, "40_49"), (60, "50_59"), (999, "ge60"))
PLEDGEE_TYPES = ("bank", "non_bank_fi", "enterprise", "natural_person")


# --------------------------------------------------------------------------------------------------
# parameters (configs/simulation/registration.yaml)
class NameParams(FrozenModel):
    district_word_prob: float
    district_words: dict[str, str]
    syllables: str
    sector_words: dict[str, tuple[str, ...]]
    suffix: dict[str, str]


class CapitalParams(FrozenModel):
    median: float
    logsd: float
    size_loading: float
    sector_factor: dict[str, float]
    rounding: tuple[tuple[float, float], ...]
    increase: tuple[float, float]
    decrease: tuple[float, float]
    decrease_base: float
    decrease_stress: float
    decrease_max: float


class TermParams(FrozenModel):
    indefinite_prob: float
    years: tuple[int, ...]
    extension_years: tuple[int, ...]
    to_indefinite_prob: float
    renew_lead_months: int


class ScopeParams(FrozenModel):
    items: tuple[int, int]
    min_chars: int
    separator: str
    oil_sectors: tuple[str, ...]
    oil_items: tuple[str, ...]
    unlicensed_suffix: str
    hazchem_item: str
    hazchem_licensed: dict[str, float]
    hazchem_industry_codes: tuple[str, ...]
    vocab: dict[str, tuple[str, ...]]

    @model_validator(mode="after")
    def _items_split_back(self) -> ScopeParams:
        """A scope is stored as its joined string and split back into items, so no item may hold the separator."""
        items = [*self.oil_items, *(o + self.unlicensed_suffix for o in self.oil_items), self.hazchem_item,
                 *(v for words in self.vocab.values() for v in words)]
        bad = [v for v in items if not v or self.separator in v]
        if bad:
            raise ValueError(f"scope items empty or containing the separator {self.separator!r}: {bad[:3]}")
        return self


class ScaleParams(FrozenModel):
    small: tuple[float, float]      # lower bounds (employees, sales); a class needs both, else micro
    medium: tuple[float, float]
    large: tuple[float, float]


class PaidParams(FrozenModel):
    zero_prob: float
    zero_prob_shell: float
    fraction: tuple[float, float]
    mu_loading: float
    age_loading: float
    paid_months: tuple[int, int]
    due_years: tuple[int, int]


class PersonnelParams(FrozenModel):
    big_employees: float
    gm_same_small: float
    gm_same_big: float
    directors: tuple[int, int]
    financial_officer_prob: float


class ChangeParams(FrozenModel):
    annual: dict[str, float]
    stress: dict[str, float]
    stress_ref: float
    stress_cap: float
    cross_district_base: float
    cross_district_stress: float
    new_legal_rep: dict[str, float]
    new_holder_existing_person: float
    new_holder_platform_enterprise: float
    scope_add_prob: float

    @field_validator("annual")
    @classmethod
    def _all_items(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != set(ITEMS):
            raise ValueError(f"annual rates must cover exactly {ITEMS}")
        return v


class EscapeParams(FrozenModel):
    pre_kappa: float
    pre_cap: float
    post_prob: float
    post_lag: tuple[int, int]
    address_prob: float
    nominee_prob: float
    cooldown_months: int


class PledgeParams(FrozenModel):
    hazard: tuple[float, float]
    controller_prob: float
    pledgee_types: dict[str, float]
    stressed_natural_person: float
    stress_threshold: float
    amount_fraction: tuple[float, float]
    duration_median_months: float
    duration_logsd: float
    invalid_prob: float
    banks: int
    non_bank_fis: int
    platform_enterprise_prob: float
    existing_person_prob: float


class RegistrationParams(FrozenModel):
    names: NameParams
    ent_type: dict[str, dict[str, float]]
    ent_type_changes: dict[str, dict[str, float]]
    capital: CapitalParams
    operating_term: TermParams
    scope: ScopeParams
    scale: ScaleParams
    paid: PaidParams
    personnel: PersonnelParams
    changes: ChangeParams
    escape: EscapeParams
    pledges: PledgeParams


# --------------------------------------------------------------------------------------------------
class _Table:
    """Column arrays that grow by doubling: holdings and personnel rows, appended as changes happen."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self.n = len(next(iter(columns.values())))
        self.cols = {k: v.copy() for k, v in columns.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    def append(self, **values: object) -> int:
        """Add one row; returns its index. Grows by 1/8: the initial rows are most of the table."""
        if self.n == len(self.cols["target"]):
            for k, v in self.cols.items():
                grown = np.empty(len(v) + max(16, len(v) // 8), dtype=v.dtype)
                grown[: len(v)] = v
                self.cols[k] = grown
        i = self.n
        for k, v in self.cols.items():
            v[i] = values[k]
        self.n += 1
        return i






def age_band(years: np.ndarray) -> np.ndarray:
    """Catalog age band codes for ages in years."""
    out = np.empty(len(years), dtype=object)
    lo = -np.inf
    for hi, code in AGE_BANDS:
        out[(years >= lo) & (years < hi)] = code
        lo = hi
    return out


class RegistrationModule:
    """S01 ent_registration, S02 shareholders, S03 key_personnel, S04 registration_changes, S08 equity_pledges."""

    name = "registration"
    sub_items = ("ent_registration", "shareholders", "key_personnel", "registration_changes", "equity_pledges")

    # ------------------------------------------------------------------------------------------------
    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        """Draw the static S01 attributes, the shareholding and personnel rows and the pledgee roster."""
        self.rng = rng
        self.p: RegistrationParams = load_module_params(RegistrationParams, self.name)
        cat = load_catalog()
        self.lags = {code: cat.sub_item(code).lag_days for code in self.sub_items}
        self.ent = ent = ctx.ent
        self.net = ctx.net
        n = ent.n_max
        self.sector_name = np.array(ctx.params.sector_names, dtype=object)[ent.sector]
        self.t_events = ctx.params.t_events
        self.t_first = ctx.params.t_first

        self.t_now = ctx.t
        self.district = ent.district.copy()        # my copies: address changes move firms
        self.ftz = ent.ftz_area.copy()
        self.legal_rep = self.net.legal_rep.astype(np.int64).copy()
        self._setup_holdings()
        self._draw_ent_type()
        self._draw_names()
        self._draw_capital()
        self._draw_scope()
        self._draw_scale()
        self._setup_personnel()

        self.status = np.zeros(n, dtype=np.int8)              # my copy: the status as last emitted
        self.status_date = np.full(n, NAT, dtype="datetime64[D]")
        self.s01_since = np.full(n, NAT, dtype="datetime64[D]")
        self.s01_emitted = np.zeros(n, dtype=bool)
        self.s01_avail = np.full(n, NAT, dtype="datetime64[D]")
        self.dumped = False
        self.last_escape = np.full(n, -10_000, dtype=np.int64)
        self.escape_queue: dict[int, list[int]] = defaultdict(list)
        self.paid_queue: dict[int, list[int]] = defaultdict(list)
        self.nominees = np.flatnonzero(self.net.persons.is_nominee)
        self._person_buf: list[int] = []
        self._pending: dict[str, list[tuple]] = defaultdict(list)

        self._setup_pledges()
        self._on_birth(np.flatnonzero(~ent.is_entrant))
        self._write_board(ctx)

    # --- static S01 attributes -----------------------------------------------------------------------
    def _setup_holdings(self) -> None:
        """Holding rows from the ownership network (a copy: the network keeps the initial edges)."""
        h = self.net.holdings
        n = self.ent.n_max
        k = len(h.target)
        self.hold = _Table({
            "target": h.target.astype(np.int64), "kind": h.holder_kind.astype(np.int8),
            "index": h.holder_index.astype(np.int64), "hid": h.holder_id.astype(object),
            "share": h.share.astype(np.float64), "subscribed": np.zeros(k), "due": np.full(k, NAT),
            "paid": np.zeros(k), "paid_date": np.full(k, NAT), "valid_from": np.full(k, NAT),
            "valid_to": np.full(k, NAT), "current": np.ones(k, dtype=bool), "emitted": np.zeros(k, dtype=bool),
            "paid_shown": np.zeros(k, dtype=bool), "avail": np.full(k, NAT)})
        order = np.argsort(h.target, kind="stable")
        if not np.array_equal(order, np.arange(k)):
            for col in self.hold.cols.values():
                col[:k] = col[:k][order]
        counts = np.bincount(self.hold["target"][:k], minlength=n)
        self.h_start = np.r_[0, np.cumsum(counts)[:-1]]
        self.h_end = np.cumsum(counts)
        self.h_extra: dict[int, list[int]] = defaultdict(list)
        first = self.h_start[counts > 0]
        self.major_kind = np.full(n, PERSON, dtype=np.int8)
        self.major_kind[self.hold["target"][first]] = self.hold["kind"][first]
        self.has_foreign = np.zeros(n, dtype=bool)
        self.has_foreign[self.hold["target"][:k][self.hold["kind"][:k] == FOREIGN]] = True

    def _draw_ent_type(self) -> None:
        rng, n = self.rng, self.ent.n_max
        et = np.empty(n, dtype=object)
        for s in np.unique(self.sector_name):
            idx = np.flatnonzero(self.sector_name == s)
            et[idx] = choice_by_weights(rng, self.p.ent_type.get(s, self.p.ent_type["default"]), idx.size)
        et[self.has_foreign] = "foreign_invested"
        et[self.major_kind == PLATFORM_ENT] = "llc_legal_person_owned"
        et[self.major_kind == GOV] = "llc_state_controlled"
        self.ent_type = et

    def _draw_names(self) -> None:
        np_ = self.p.names
        self.syllables = np.array(list(dict.fromkeys(np_.syllables)), dtype=object)
        self.stem = np.empty(self.ent.n_max, dtype=object)
        self.used_stems: set[str] = set()
        self.stem[:] = self._new_stems(np.arange(self.ent.n_max))

    def _new_stems(self, idx: np.ndarray) -> np.ndarray:
        """'舟山' + optional district word + 2-character trade name + sector word, unique over the run."""
        rng, np_ = self.rng, self.p.names
        out = np.empty(idx.size, dtype=object)
        todo = np.arange(idx.size)
        prefix = "\u821f\u5c71"   # 舟山
        while todo.size:
            slots = idx[todo]
            use_dw = rng.random(todo.size) < np_.district_word_prob
            a = self.syllables[rng.integers(0, self.syllables.size, todo.size)]
            b = self.syllables[rng.integers(0, self.syllables.size, todo.size)]
            u = rng.random(todo.size)
            retry = []
            for j, slot in enumerate(slots.tolist()):
                words = np_.sector_words[self.sector_name[slot]]
                dw = np_.district_words[self.ent.district[slot]] if use_dw[j] else ""
                stem = prefix + dw + a[j] + b[j] + words[int(u[j] * len(words))]
                if a[j] == b[j] or stem in self.used_stems:
                    retry.append(todo[j])
                    continue
                self.used_stems.add(stem)
                out[todo[j]] = stem
            todo = np.array(retry, dtype=np.int64)
        return out

    def _compose_names(self, idx: np.ndarray) -> np.ndarray:
        """Current names, composed when emitted: stem, type and district are kept, not a name per slot."""
        suffix, dw = self.p.names.suffix, self.p.names.district_words
        return np.array([self.stem[i] + suffix[self.ent_type[i]].replace("{district}", dw[self.district[i]])
                         for i in idx.tolist()], dtype=object)

    def _draw_capital(self) -> None:
        c, rng, ent = self.p.capital, self.rng, self.ent
        factor = np.array([c.sector_factor.get(s, 1.0) for s in self.sector_name])
        raw = lognormal(rng, c.median, c.logsd, ent.n_max) * factor * np.exp(c.size_loading * ent.z_size)
        self.reg_cap = self.round_capital(raw)

    def round_capital(self, x: np.ndarray) -> np.ndarray:
        """Round registered capital to 10 / 50 / 100 万元 by size (at least one step)."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty_like(x)
        lo = -np.inf
        for hi, step in self.p.capital.rounding:
            sel = (x >= lo) & (x < hi)
            out[sel] = np.maximum(step, np.round(x[sel] / step) * step)
            lo = hi
        return out

    def _draw_scope(self) -> None:
        sp, rng, ent = self.p.scope, self.rng, self.ent
        n = ent.n_max
        lic_p = np.array([sp.hazchem_licensed.get(s, 0.0) for s in self.sector_name])
        self.hazchem = (rng.random(n) < lic_p) & ~ent.shell
        self.hazchem |= np.isin(ent.industry_code, sp.hazchem_industry_codes)
        oil = np.isin(self.sector_name, sp.oil_sectors)
        k = rng.integers(sp.items[0], sp.items[1] + 1, n)
        self.oil_code = rng.integers(0, len(sp.oil_items), n).astype(np.int8)
        oil_item = np.array(sp.oil_items, dtype=object)[self.oil_code]
        # a random subset of the sector vocabulary per slot: the first m of a random order
        rank = np.zeros((n, max(len(v) for v in sp.vocab.values())), dtype=np.int64)
        for s in np.unique(self.sector_name):
            idx = np.flatnonzero(self.sector_name == s)
            rank[idx, : len(sp.vocab[s])] = np.argsort(rng.random((idx.size, len(sp.vocab[s]))), axis=1)
        scopes: list[str] = []
        for i in range(n):
            must: list[str] = []
            if oil[i]:
                must.append(oil_item[i] if self.hazchem[i] else oil_item[i] + sp.unlicensed_suffix)
            if self.hazchem[i]:
                must.append(sp.hazchem_item)
            vocab = sp.vocab[self.sector_name[i]]
            m = int(min(len(vocab), max(0, k[i] - len(must))))
            while m < len(vocab) and len(sp.separator.join(must + [vocab[j] for j in rank[i, :m]])) < sp.min_chars:
                m += 1
            scopes.append(sp.separator.join(must + [vocab[j] for j in sorted(rank[i, :m].tolist())]))
        self.scope = shared_strings(scopes)

    def _scope_items(self, i: int) -> list[str]:
        """Slot i's scope items: its scope string is the only copy kept (items never hold the separator)."""
        scope = self.scope[i]
        return scope.split(self.p.scope.separator) if scope else []

    def _mandatory(self, i: int) -> list[str]:
        """Scope items slot i may never drop, as drawn at setup: its oil item and the hazchem item."""
        sp = self.p.scope
        must: list[str] = []
        if self.sector_name[i] in sp.oil_sectors:
            item = sp.oil_items[self.oil_code[i]]
            must.append(item if self.hazchem[i] else item + sp.unlicensed_suffix)
        if self.hazchem[i]:
            must.append(sp.hazchem_item)
        return must

    def _draw_scale(self) -> None:
        s, ent = self.p.scale, self.ent
        e, sales = ent.employees, ent.sales
        scale = full_object(ent.n_max, "micro")
        for code in ("small", "medium", "large"):
            lo_e, lo_s = getattr(s, code)
            scale[(e >= lo_e) & (sales >= lo_s)] = code
        self.scale = scale
        t = self.p.operating_term
        self.term_years = np.where(self.rng.random(ent.n_max) < t.indefinite_prob, 0,
                                   np.array(t.years)[self.rng.integers(0, len(t.years), ent.n_max)])
        self.term_end = np.full(ent.n_max, NAT, dtype="datetime64[D]")
        # paid-in: per enterprise (a shell signal is zero paid-in for the whole firm)
        pp = self.p.paid
        zero_p = np.where(ent.shell, pp.zero_prob_shell, pp.zero_prob)
        self.pays = self.rng.random(ent.n_max) >= zero_p
        self.paid_u = self.rng.random(ent.n_max)
        self.paid_offset = self.rng.integers(pp.paid_months[0], pp.paid_months[1] + 1, ent.n_max)

    # --- personnel -----------------------------------------------------------------------------------
    def _setup_personnel(self) -> None:
        """Governance template: small LLC (executive director, manager, supervisor) or board template."""
        pp, rng, ent, net = self.p.personnel, self.rng, self.ent, self.net
        n = ent.n_max
        big = (ent.employees >= pp.big_employees) | (self.ent_type == "joint_stock")
        hired = net.legal_rep_kind == "hired"
        rep, ctrl = net.legal_rep.astype(np.int64), net.controller.astype(np.int64)
        gm_same = rng.random(n) < np.where(big, pp.gm_same_big, pp.gm_same_small)
        new_gm = ~hired & ~gm_same
        n_dir = np.where(big, rng.integers(pp.directors[0], pp.directors[1] + 1, n), 0)
        fo = big & (rng.random(n) < pp.financial_officer_prob)
        total = int(new_gm.sum() + n + n_dir.sum() + fo.sum())
        new = net.persons.add(rng, total)
        pos = 0

        def take(k: int) -> np.ndarray:
            nonlocal pos
            out = new[pos:pos + k]
            pos += k
            return out

        all_i = np.arange(n)
        top_pos = shared_strings(np.where(big, "chairman", "executive_director"))
        gm_person = rep.copy()
        gm_person[new_gm] = take(int(new_gm.sum()))
        parts = [
            (all_i, np.where(hired, ctrl, rep), top_pos, ~hired),
            (all_i, gm_person, full_object(n, "general_manager"), hired),
            (all_i, take(n), full_object(n, "supervisor"), np.zeros(n, dtype=bool)),
        ]
        dir_t = np.repeat(all_i, n_dir)
        parts.append((dir_t, take(dir_t.size), full_object(dir_t.size, "director"),
                      np.zeros(dir_t.size, dtype=bool)))
        fo_t = np.flatnonzero(fo)
        parts.append((fo_t, take(fo_t.size), full_object(fo_t.size, "financial_officer"),
                      np.zeros(fo_t.size, dtype=bool)))
        target = np.concatenate([p[0] for p in parts])
        order = np.argsort(target, kind="stable")
        k = target.size
        self.pers = _Table({
            "target": target[order].astype(np.int64),
            "person": np.concatenate([p[1] for p in parts])[order].astype(np.int64),
            "position": np.concatenate([p[2] for p in parts])[order].astype(object),
            "is_rep": np.concatenate([p[3] for p in parts])[order].astype(bool),
            "valid_from": np.full(k, NAT), "valid_to": np.full(k, NAT),
            "current": np.ones(k, dtype=bool), "emitted": np.zeros(k, dtype=bool), "avail": np.full(k, NAT)})
        counts = np.bincount(self.pers["target"][:k], minlength=n)
        self.p_start = np.r_[0, np.cumsum(counts)[:-1]]
        self.p_end = np.cumsum(counts)
        self.p_extra: dict[int, list[int]] = defaultdict(list)

    # --- pledges -------------------------------------------------------------------------------------
    def _setup_pledges(self) -> None:
        pl, rng, n = self.p.pledges, self.rng, self.ent.n_max
        self.banks = generate_usccs(rng, np.full(pl.banks, "330900", dtype=object), np.ones(pl.banks, dtype=bool))
        self.bank_w = rng.dirichlet(np.full(pl.banks, 2.0))
        self.non_banks = generate_usccs(rng, np.full(pl.non_bank_fis, "330900", dtype=object),
                                        np.zeros(pl.non_bank_fis, dtype=bool))
        self.pl_active = np.zeros(n, dtype=bool)
        self.pl_emitted = np.zeros(n, dtype=bool)
        self.pl_cancel = np.full(n, -1, dtype=np.int64)
        self.pl_reg_month = np.full(n, -1, dtype=np.int64)
        self.pl_avail = np.full(n, NAT, dtype="datetime64[D]")
        self.pl_cols: dict[str, np.ndarray] = {
            "pledgor_id": np.empty(n, dtype=object), "pledgee_id": np.empty(n, dtype=object),
            "pledgee_type": np.empty(n, dtype=object), "pledged_equity_amount": np.zeros(n),
            "registration_date": np.full(n, NAT, dtype="datetime64[D]")}

    # ------------------------------------------------------------------------------------------------
    # helpers
    def _rows_of(self, kind: str, i: int) -> list[int]:
        if kind == "hold":
            return list(range(self.h_start[i], self.h_end[i])) + self.h_extra.get(i, [])
        return list(range(self.p_start[i], self.p_end[i])) + self.p_extra.get(i, [])

    def _current_rows(self, kind: str, i: int) -> list[int]:
        tab = self.hold if kind == "hold" else self.pers
        return [r for r in self._rows_of(kind, i) if tab["current"][r]]

    def _rows_mask(self, tab: _Table, firms: np.ndarray) -> np.ndarray:
        """Row ids of the current rows of `firms` (vectorised over the table)."""
        fm = np.zeros(self.ent.n_max, dtype=bool)
        fm[firms] = True
        return np.flatnonzero(tab["current"][: tab.n] & fm[tab["target"][: tab.n]])

    def _queue(self, out: Emitter, code: str, columns: dict[str, np.ndarray], *, ent: np.ndarray,
               available: np.ndarray, cause: str | np.ndarray, valid_from: np.ndarray | None = None) -> None:
        """Collect a month's rows per sub-item: one Emitter call each at the end of the step."""
        k = len(ent)
        if k == 0:
            return
        cause_arr = np.full(k, cause, dtype=object) if isinstance(cause, str) else np.asarray(cause, dtype=object)
        vf = np.broadcast_to(np.asarray(NAT if valid_from is None else valid_from, dtype="datetime64[D]"), (k,))
        self._pending[code].append(({c: np.asarray(v) for c, v in columns.items()}, np.asarray(ent),
                                    np.asarray(available, dtype="datetime64[D]"), cause_arr, vf))

    def _flush(self, out: Emitter) -> None:
        for code in self.sub_items:
            parts = self._pending.pop(code, [])
            if not parts:
                continue
            cols = {c: np.concatenate([p[0][c] for p in parts]) for c in parts[0][0]}
            out.emit(code, cols, ent=np.concatenate([p[1] for p in parts]),
                     available=np.concatenate([p[2] for p in parts]), cause=np.concatenate([p[3] for p in parts]),
                     valid_from=np.concatenate([p[4] for p in parts]))

    @staticmethod
    def _monotone(last: np.ndarray, keys: np.ndarray, avail: np.ndarray) -> np.ndarray:
        """A new version of a key is never available before its previous version (random lags could invert)."""
        prev = last[keys]
        avail = np.where(np.isnat(prev), avail, np.maximum(avail, prev))
        last[keys] = avail      # keys are unique within one call
        return avail

    def _lag(self, code: str, k: int) -> np.ndarray:
        lo, hi = self.lags[code]
        return self.rng.integers(lo, hi + 1, k).astype("timedelta64[D]")

    def _new_persons(self, k: int) -> np.ndarray:
        """Persons for appointments and transfers, added to the pool in chunks (one concat per chunk)."""
        while len(self._person_buf) < k:
            self._person_buf.extend(self.net.persons.add(self.rng, max(256, k, self.ent.n_max // 100)).tolist())
        out, self._person_buf = self._person_buf[:k], self._person_buf[k:]
        return np.array(out, dtype=np.int64)

    def _outside_usccs(self, k: int) -> np.ndarray:
        regions = np.array(["310000", "330100", "330200", "320500", "440300"], dtype=object)
        return generate_usccs(self.rng, regions[self.rng.integers(0, regions.size, k)], np.zeros(k, dtype=bool))

    def _on_birth(self, idx: np.ndarray) -> None:
        """Dates that depend on the establishment date (known only at birth for entrants)."""
        if idx.size == 0:
            return
        ent, pp = self.ent, self.p.paid
        est = ent.establish_date[idx]
        self.s01_since[idx] = est
        # operating term: establish + 20/30 years, rolled forward as if extended before the simulation
        yrs = self.term_years[idx]
        end = add_months(est, 12 * yrs)
        t0 = month_start(self.t_first)[()]
        for _ in range(5):
            late = (yrs > 0) & (end < t0)
            if not late.any():
                break
            end[late] = add_months(end[late], 12 * yrs[late])
        self.term_end[idx] = np.where(yrs > 0, end, NAT)
        # holdings
        hr = self._rows_mask(self.hold, idx)
        tgt = self.hold["target"][hr]
        self.hold["valid_from"][hr] = ent.establish_date[tgt]
        self.hold["subscribed"][hr] = np.round(self.hold["share"][hr] * self.reg_cap[tgt], 2)
        due_y = self.rng.integers(pp.due_years[0], pp.due_years[1] + 1, hr.size)
        self.hold["due"][hr] = add_months(ent.establish_date[tgt], 12 * due_y)
        age_y = np.clip((month_start(self.t_first)[()] - ent.establish_date[tgt]).astype(np.int64) / 365.25, 0, 20)
        a = np.exp(pp.mu_loading * ent.mu[tgt] + pp.age_loading * age_y)
        frac = pp.fraction[0] + (pp.fraction[1] - pp.fraction[0]) * self.paid_u[tgt] ** (1.0 / a)
        pays = self.pays[tgt]
        self.hold["paid"][hr] = np.where(pays, np.round(frac * self.hold["subscribed"][hr], 2), 0.0)
        pdate = add_months(ent.establish_date[tgt], self.paid_offset[tgt])
        self.hold["paid_date"][hr] = np.where(pays, pdate, NAT)
        for r, d in zip(hr[pays].tolist(), pdate[pays].tolist(), strict=True):
            self.paid_queue[d.year * 12 + d.month - 1].append(r)
        pr = self._rows_mask(self.pers, idx)
        self.pers["valid_from"][pr] = ent.establish_date[self.pers["target"][pr]]

    # ------------------------------------------------------------------------------------------------
    # emission of rows
    def _s01(self, out: Emitter, idx: np.ndarray, vfrom: np.ndarray, avail: np.ndarray,
             cause: str | np.ndarray) -> None:
        if idx.size == 0:
            return
        ent = self.ent
        cols = {
            "uscc": ent.uscc[idx], "ent_name": self._compose_names(idx), "ent_type": self.ent_type[idx],
            "ent_status": np.array(STATUS_CODES, dtype=object)[self.status[idx]],
            "status_change_date": self.status_date[idx], "establish_date": ent.establish_date[idx],
            "registered_capital": self.reg_cap[idx], "industry_code": ent.industry_code[idx],
            "district_code": self.district[idx], "ftz_area": self.ftz[idx],
            "legal_rep_person_id": self.net.persons.person_id[self.legal_rep[idx]],
            "operating_term_end": self.term_end[idx], "business_scope": self.scope[idx],
            "enterprise_scale": self.scale[idx], "address_is_cluster_registration": ent.cluster[idx]}
        avail = self._monotone(self.s01_avail, idx, avail)
        self._queue(out, "ent_registration", cols, ent=idx, available=avail, cause=cause, valid_from=vfrom)
        self.s01_emitted[idx] = True

    def _s02(self, out: Emitter, rows: np.ndarray, vfrom: np.ndarray, avail: np.ndarray,
             cause: str | np.ndarray, asof: np.ndarray | None = None) -> None:
        """Holding rows; a paid-in contribution shows once its date is reached (`asof`, default `vfrom`)."""
        if rows.size == 0:
            return
        h = self.hold
        tgt = h["target"][rows]
        asof = vfrom if asof is None else asof
        shown = ~np.isnat(h["paid_date"][rows]) & (h["paid_date"][rows] <= asof)
        cols = {
            "uscc": self.ent.uscc[tgt], "shareholder_id": h["hid"][rows],
            "shareholder_type": np.array(HOLDER_TYPES, dtype=object)[h["kind"][rows]],
            "share_ratio": h["share"][rows], "subscribed_capital": h["subscribed"][rows],
            "subscribed_due_date": h["due"][rows], "paid_capital": np.where(shown, h["paid"][rows], 0.0),
            "paid_date": np.where(shown, h["paid_date"][rows], NAT), "valid_from": h["valid_from"][rows],
            "valid_to": h["valid_to"][rows]}
        avail = self._monotone(h["avail"], rows, avail)
        self._queue(out, "shareholders", cols, ent=tgt, available=avail, cause=cause, valid_from=vfrom)
        h["emitted"][rows] = True
        h["paid_shown"][rows] = shown

    def _s03(self, out: Emitter, rows: np.ndarray, vfrom: np.ndarray, avail: np.ndarray,
             cause: str | np.ndarray) -> None:
        if rows.size == 0:
            return
        pr = self.pers
        tgt, person = pr["target"][rows], pr["person"][rows]
        year = avail.astype("datetime64[Y]").astype(np.int64) + 1970
        cols = {
            "uscc": self.ent.uscc[tgt], "person_id": self.net.persons.person_id[person],
            "position": pr["position"][rows], "is_legal_rep": pr["is_rep"][rows],
            "age_band": age_band(year - self.net.persons.birth_year[person]),
            "valid_from": pr["valid_from"][rows], "valid_to": pr["valid_to"][rows]}
        avail = self._monotone(pr["avail"], rows, avail)
        self._queue(out, "key_personnel", cols, ent=tgt, available=avail, cause=cause, valid_from=vfrom)
        pr["emitted"][rows] = True

    def _emit_full(self, out: Emitter, idx: np.ndarray, date: np.ndarray | np.datetime64,
                   cause: str = "background") -> None:
        """Current S01, S02 and S03 rows of firms `idx`, available from `date` + lag."""
        if idx.size == 0:
            return
        date_by_firm = np.full(self.ent.n_max, NAT, dtype="datetime64[D]")
        date_by_firm[idx] = date
        self._s01(out, idx, self.s01_since[idx], date_by_firm[idx] + self._lag("ent_registration", idx.size), cause)
        hr = self._rows_mask(self.hold, idx)
        d = date_by_firm[self.hold["target"][hr]]
        self._s02(out, hr, self.hold["valid_from"][hr], d + self._lag("shareholders", hr.size), cause, asof=d)
        pr = self._rows_mask(self.pers, idx)
        d = date_by_firm[self.pers["target"][pr]]
        self._s03(out, pr, self.pers["valid_from"][pr], d + self._lag("key_personnel", pr.size), cause)

    # ------------------------------------------------------------------------------------------------
    def step(self, ctx: MonthContext, out: Emitter) -> None:
        """Births, the first-emission snapshot, status versions, changes, pledges, paid-in versions, board."""
        lat, t = ctx.latent, ctx.t
        self.t_now = t
        emit = ctx.emit_events
        born_now = np.flatnonzero(lat.born_now)
        self._on_birth(born_now)
        if emit and not self.dumped:
            # first emission month: the state at the start of the month of every registered firm
            was_alive = lat.born & ~lat.born_now & (self.status <= LIQUIDATING)
            self._emit_full(out, np.flatnonzero(was_alive), ctx.first_day)
            self.dumped = True
        if emit and born_now.size:
            self._emit_full(out, born_now, self.ent.establish_date[born_now])
        self._status_changes(ctx, out)
        self._changes(ctx, out)
        self._pledges(ctx, out)
        self._paid_in(ctx, out)
        self._flush(out)
        self._write_board(ctx)

    def _write_board(self, ctx: MonthContext) -> None:
        ctx.board["registered_capital"] = self.reg_cap.copy()
        ctx.board["legal_rep"] = self.legal_rep.copy()

    # --- status --------------------------------------------------------------------------------------
    def _status_changes(self, ctx: MonthContext, out: Emitter) -> None:
        lat = ctx.latent
        idx = np.flatnonzero(lat.status_changed_now & lat.born)
        if idx.size == 0:
            return
        d = random_day_in_month(self.rng, ctx.t, idx.size)
        d = np.maximum(d, self.ent.establish_date[idx])
        self.status[idx] = lat.status[idx]
        self.status_date[idx] = d
        self.s01_since[idx] = d
        # a released firm's valid pledge is cancelled at exit unless it defaulted while pledged
        gone = idx[(lat.status[idx] > LIQUIDATING) & self.pl_active[idx]
                   & ~(lat.last_default[idx] >= self.pl_reg_month[idx])]
        if gone.size:
            self._cancel_pledges(ctx, out, gone, d[np.searchsorted(idx, gone)])
        if ctx.emit_events:
            em = self.s01_emitted[idx]
            after_default = (lat.last_default[idx] >= 0) & ~lat.performing[idx]
            cause = np.where(after_default, "cascade", "background").astype(object)
            self._s01(out, idx[em], d[em], d[em] + self._lag("ent_registration", int(em.sum())), cause[em])

    # --- registration changes ------------------------------------------------------------------------
    def _changes(self, ctx: MonthContext, out: Emitter) -> None:
        lat, t, rng = ctx.latent, ctx.t, self.rng
        n = self.ent.n_max
        cp, ep = self.p.changes, self.p.escape
        st = np.minimum(ctx.stress, cp.stress_cap)
        eligible = lat.alive & (lat.status == ACTIVE) & ~lat.born_now & ~lat.status_changed_now
        firms, items, causes, escape = [], [], [], []

        # background and stress draws per item
        elig = np.flatnonzero(eligible)
        u = rng.random((elig.size, len(ITEMS)))
        for k, item in enumerate(ITEMS):
            k_st = cp.stress.get(item, 0.0)
            base = cp.annual[item] / 12 / (1 + k_st * cp.stress_ref)
            p = base * (1 + k_st * st[elig])
            hit = u[:, k] < p
            f = elig[hit]
            firms.append(f)
            items.append(np.full(f.size, k))
            causes.append(np.where(u[hit, k] < base, "background", "stress").astype(object))
            escape.append(np.zeros(f.size, dtype=bool))
        # operating terms about to run out are extended by active firms
        lead_end = month_end(t + self.p.operating_term.renew_lead_months)[()]
        due = np.flatnonzero(eligible & ~np.isnat(self.term_end) & (self.term_end <= lead_end))
        firms.append(due)
        items.append(np.full(due.size, TERM))
        causes.append(np.full(due.size, "background", dtype=object))
        escape.append(np.ones(due.size, dtype=bool))     # flag: forced extension

        # escape: post-default part scheduled at default, pre-default part from the current hazard
        d_now = np.flatnonzero(lat.defaulted_now & (t - self.last_escape > 6))
        sched = d_now[rng.random(d_now.size) < ep.post_prob]
        lag = rng.integers(ep.post_lag[0], ep.post_lag[1] + 1, sched.size)
        for i, k in zip(sched.tolist(), lag.tolist(), strict=True):
            self.escape_queue[t + k].append(i)
        post = np.array(sorted(set(self.escape_queue.pop(t, []))), dtype=np.int64)
        post = post[eligible[post]] if post.size else post
        pre_ok = eligible & lat.performing & (t - self.last_escape >= ep.cooldown_months)
        pre = np.flatnonzero(pre_ok & (rng.random(n) < np.minimum(ep.pre_cap, ep.pre_kappa * lat.lam)))
        esc = np.concatenate([post, np.setdiff1d(pre, post)])
        esc_cause = np.concatenate([np.full(post.size, "cascade", dtype=object),
                                    np.full(esc.size - post.size, "stress", dtype=object)])
        self.last_escape[esc] = t
        addr = rng.random(esc.size) < ep.address_prob
        for arr_f, item in ((esc, LEGAL_REP), (esc[~addr], SHAREHOLDER), (esc[addr], ADDRESS)):
            firms.append(arr_f)
            items.append(np.full(arr_f.size, item))
            sel = np.isin(esc, arr_f)
            causes.append(esc_cause[sel])
            escape.append(np.ones(arr_f.size, dtype=bool))

        f = np.concatenate(firms).astype(np.int64)
        it = np.concatenate(items).astype(np.int64)
        ca = np.concatenate(causes).astype(object)
        es = np.concatenate(escape)
        if f.size == 0:
            return
        # one change per (firm, item) a month, escape / forced first
        order = np.lexsort((~es, it, f))
        f, it, ca, es = f[order], it[order], ca[order], es[order]
        keep = np.r_[True, (np.diff(f) != 0) | (np.diff(it) != 0)]
        f, it, ca, es = f[keep], it[keep], ca[keep], es[keep]
        # one filing date per firm and month
        uf, inv = np.unique(f, return_inverse=True)
        day = np.maximum(random_day_in_month(rng, t, uf.size), self.ent.establish_date[uf])
        date = day[inv]
        cap_before = np.full(f.size, np.nan)
        cap_after = np.full(f.size, np.nan)
        cross = np.full(f.size, None, dtype=object)
        s01_touch = np.zeros(f.size, dtype=bool)
        hold_rows: list[tuple[int, np.datetime64, str]] = []
        pers_rows: list[tuple[int, np.datetime64, str]] = []

        for k in range(len(ITEMS)):
            sel = np.flatnonzero(it == k)
            if sel.size == 0:
                continue
            fi, di = f[sel], date[sel]
            if k == CAPITAL:
                b, a = self._change_capital(fi, st[fi])
                cap_before[sel], cap_after[sel] = b, a
                for j, i in enumerate(fi.tolist()):
                    for r in self._current_rows("hold", i):
                        self.hold["subscribed"][r] = np.round(self.hold["share"][r] * self.reg_cap[i], 2)
                        self.hold["paid"][r] = min(self.hold["paid"][r], self.hold["subscribed"][r])
                        hold_rows.append((r, di[j], ca[sel][j]))
                s01_touch[sel] = True
            elif k == SCOPE:
                self._change_scope(fi)
                s01_touch[sel] = True
            elif k == ADDRESS:
                p_cross = self.p.changes.cross_district_base + self.p.changes.cross_district_stress * np.minimum(
                    1.0, st[fi])
                c = (rng.random(fi.size) < p_cross) | es[sel]
                self._move_district(fi[c])
                cross[sel] = c
                s01_touch[sel] = c
            elif k == NAME:
                self.stem[fi] = self._new_stems(fi)
                s01_touch[sel] = True
            elif k == ENT_TYPE:
                for i in fi.tolist():
                    self.ent_type[i] = choice_by_weights(rng, self.p.ent_type_changes[self.ent_type[i]], 1)[0]
                s01_touch[sel] = True
            elif k == TERM:
                self._change_term(fi, di, es[sel])
                s01_touch[sel] = True
            elif k == LEGAL_REP:
                new = self._choose_new_reps(fi, es[sel])
                for j, i in enumerate(fi.tolist()):
                    pers_rows += [(r, di[j], ca[sel][j]) for r in self._replace_rep(i, int(new[j]), di[j])]
                s01_touch[sel] = True
            elif k == SHAREHOLDER:
                for j, i in enumerate(fi.tolist()):
                    hold_rows += [(r, di[j], ca[sel][j]) for r in self._transfer(i, di[j], bool(es[sel][j]))]
            elif k == PERSONNEL:
                new = self._new_persons(fi.size)
                for j, i in enumerate(fi.tolist()):
                    pers_rows += [(r, di[j], ca[sel][j]) for r in self._replace_officer(i, int(new[j]), di[j])]

        tf, first = np.unique(f[s01_touch], return_index=True)
        vd = date[s01_touch][first]
        self.s01_since[tf] = vd
        if not ctx.emit_events:
            return
        lag = self._lag("registration_changes", f.size)
        self._queue(out, "registration_changes", {
            "uscc": self.ent.uscc[f], "change_date": date, "change_item": np.array(ITEMS, dtype=object)[it],
            "capital_before": cap_before, "capital_after": cap_after, "cross_district_move": cross},
            ent=f, available=date + lag, cause=ca)
        # S01 versions: one per firm with an S01 field changed, dated at the filing, cause of its first item
        if tf.size:
            self._s01(out, tf, vd, vd + self._lag("ent_registration", tf.size), ca[s01_touch][first])
        for code, rows, emitter in (("shareholders", hold_rows, self._s02), ("key_personnel", pers_rows, self._s03)):
            if rows:
                rows = list({x[0]: x for x in reversed(rows)}.values())[::-1]   # a row once, first entry wins
                r = np.array([x[0] for x in rows], dtype=np.int64)
                d = np.array([x[1] for x in rows], dtype="datetime64[D]")
                c = np.array([x[2] for x in rows], dtype=object)
                emitter(out, r, d, d + self._lag(code, r.size), c)

    # individual change kinds ------------------------------------------------------------------------
    def _change_capital(self, fi: np.ndarray, st: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, rng = self.p.capital, self.rng
        before = self.reg_cap[fi].copy()
        ref = 1 + c.decrease_stress * self.p.changes.stress_ref
        p_dec = np.minimum(c.decrease_max, c.decrease_base * (1 + c.decrease_stress * st) / ref)
        dec = rng.random(fi.size) < p_dec
        mult = np.where(dec, rng.uniform(*c.decrease, fi.size), rng.uniform(*c.increase, fi.size))
        after = self.round_capital(before * mult)
        # a change too small to survive the rounding moves by one rounding step
        step = self.round_capital(np.zeros(fi.size))
        for hi, s in self.p.capital.rounding[::-1]:
            step[before < hi] = s
        same = after == before
        down = same & dec & (before > step)
        after[down] = before[down] - step[down]
        after[same & ~down] = before[same & ~down] + step[same & ~down]
        self.reg_cap[fi] = after
        return before, after

    def _change_scope(self, fi: np.ndarray) -> None:
        """Add a sector item or drop an optional one, keeping 3-8 items and at least `min_chars`."""
        sp, rng = self.p.scope, self.rng
        for i in fi.tolist():
            items, must = self._scope_items(i), self._mandatory(i)
            vocab = [v for v in sp.vocab[self.sector_name[i]] if v not in items]
            size = len(sp.separator.join(items))
            droppable = [v for v in items if v not in must and len(items) > sp.items[0]
                         and size - len(v) - len(sp.separator) >= sp.min_chars]
            can_add = bool(vocab) and len(items) < sp.items[1]
            if can_add and (not droppable or rng.random() < self.p.changes.scope_add_prob):
                items.append(vocab[int(rng.integers(len(vocab)))])
            elif droppable:
                items.remove(droppable[int(rng.integers(len(droppable)))])
            self.scope[i] = sp.separator.join(items)

    def _move_district(self, fi: np.ndarray) -> None:
        """Cross-district move within Zhoushan; an FTZ firm takes the FTZ area of its new district."""
        rng = self.rng
        for i in fi.tolist():
            others = [d for d in DISTRICTS if d != self.district[i]]
            new = others[int(rng.integers(len(others)))]
            self.district[i] = new
            if self.ftz[i] != "none":
                if new == "330921":
                    self.ftz[i] = "offshore_islands"
                elif new == "330902":
                    self.ftz[i] = "island_north" if rng.random() < 0.55 else "island_south"
                else:
                    self.ftz[i] = "island_south"

    def _change_term(self, fi: np.ndarray, di: np.ndarray, forced: np.ndarray) -> None:
        tp, rng = self.p.operating_term, self.rng
        ext = np.array(tp.extension_years)[rng.integers(0, len(tp.extension_years), fi.size)]
        yrs = np.array(tp.years)[rng.integers(0, len(tp.years), fi.size)]
        cur = self.term_end[fi]
        fixed = ~np.isnat(cur)
        to_indef = fixed & ~forced & (rng.random(fi.size) < tp.to_indefinite_prob)
        new = np.where(fixed, add_months(np.where(fixed, np.maximum(cur, di), di), 12 * ext), add_months(di, 12 * yrs))
        self.term_end[fi] = np.where(to_indef, NAT, new)

    def _choose_new_reps(self, fi: np.ndarray, escape: np.ndarray) -> np.ndarray:
        cp, ep, rng = self.p.changes, self.p.escape, self.rng
        kind = choice_by_weights(rng, cp.new_legal_rep, fi.size)
        ctrl = self.net.controller[fi]
        kind[(kind == "controller") & (ctrl == self.legal_rep[fi])] = "new_person"
        kind[escape] = np.where(rng.random(int(escape.sum())) < ep.nominee_prob, "nominee", "new_person")
        if self.nominees.size == 0:
            kind[kind == "nominee"] = "new_person"
        out = np.where(kind == "controller", ctrl, -1).astype(np.int64)
        nom = kind == "nominee"
        if nom.any():
            out[nom] = self.nominees[rng.integers(0, self.nominees.size, int(nom.sum()))]
        newp = kind == "new_person"
        out[newp] = self._new_persons(int(newp.sum()))
        # a nominee who already is the legal representative gets replaced by a new person instead
        same = out == self.legal_rep[fi]
        out[same] = self._new_persons(int(same.sum()))
        return out

    def _replace_rep(self, i: int, person: int, d: np.datetime64) -> list[int]:
        """Close the legal representative's row and open the same position for `person`."""
        pr = self.pers
        rows = [r for r in self._current_rows("pers", i) if pr["is_rep"][r]]
        changed: list[int] = []
        position = "executive_director"
        for r in rows:
            pr["current"][r] = False
            pr["valid_to"][r] = d
            position = pr["position"][r]
            changed.append(r)
        new = pr.append(target=i, person=person, position=position, is_rep=True, valid_from=d, valid_to=NAT,
                        current=True, emitted=False, avail=NAT)
        self.p_extra[i].append(new)
        self.legal_rep[i] = person
        return [*changed, new]

    def _replace_officer(self, i: int, person: int, d: np.datetime64) -> list[int]:
        """A director, manager, supervisor or financial officer is replaced (not the legal representative)."""
        pr = self.pers
        rows = [r for r in self._current_rows("pers", i) if not pr["is_rep"][r]]
        if not rows:
            return []
        r = rows[int(self.rng.integers(len(rows)))]
        pr["current"][r] = False
        pr["valid_to"][r] = d
        new = pr.append(target=i, person=person, position=pr["position"][r], is_rep=False, valid_from=d,
                        valid_to=NAT, current=True, emitted=False, avail=NAT)
        self.p_extra[i].append(new)
        return [r, new]

    def _transfer(self, i: int, d: np.datetime64, escape: bool) -> list[int]:
        """A whole stake changes hands: the old row closes, the new holder's row opens with the same share."""
        h, rng, cp = self.hold, self.rng, self.p.changes
        rows = self._current_rows("hold", i)
        if not rows:
            return []
        if escape:
            r = max(rows, key=lambda x: h["share"][x])
        else:
            cand = [x for x in rows if h["kind"][x] != GOV] or rows
            r = cand[int(rng.integers(len(cand)))]
        kind = int(h["kind"][r])
        index = -1
        if escape or kind == PERSON:
            if not escape and rng.random() < cp.new_holder_existing_person:
                index = int(self.net.controller[rng.integers(0, self.ent.n_max)])
            holders = {int(h["index"][x]) for x in rows if h["kind"][x] == PERSON}
            if index < 0 or index in holders:
                index = int(self._new_persons(1)[0])
            kind, hid = PERSON, self.net.persons.person_id[index]
        elif kind in (PLATFORM_ENT, OUTSIDE_ENT):
            j = int(rng.integers(0, self.ent.n_max))
            if rng.random() < cp.new_holder_platform_enterprise and j != i and self.ent.birth_month[j] <= self.t_now:
                kind, index, hid = PLATFORM_ENT, j, self.ent.uscc[j]
            else:
                kind, hid = OUTSIDE_ENT, self._outside_usccs(1)[0]
        elif kind == FOREIGN:
            hid = hex_ids(rng, "F_", 1)[0]
        else:   # GOV, FUND: another state agency or fund
            hid = self._outside_usccs(1)[0] if kind == FUND else generate_usccs(
                rng, np.array(["330900"], dtype=object), np.zeros(1, dtype=bool))[0]
        h["current"][r] = False
        h["valid_to"][r] = d
        new = h.append(target=i, kind=kind, index=index, hid=hid, share=h["share"][r], subscribed=h["subscribed"][r],
                       due=h["due"][r], paid=h["paid"][r], paid_date=h["paid_date"][r], valid_from=d, valid_to=NAT,
                       current=True, emitted=False, paid_shown=False, avail=NAT)
        self.h_extra[i].append(new)
        pd_ = h["paid_date"][r]
        if not np.isnat(pd_) and pd_ > d:
            m = pd_.astype("datetime64[M]").astype(np.int64) + 1970 * 12
            self.paid_queue[int(m)].append(new)
        cur = self._current_rows("hold", i)
        self.major_kind[i] = h["kind"][max(cur, key=lambda x: h["share"][x])]
        return [r, new]

    # --- equity pledges ------------------------------------------------------------------------------
    def _pledges(self, ctx: MonthContext, out: Emitter) -> None:
        lat, t, rng, pl = ctx.latent, ctx.t, self.rng, self.p.pledges
        st = np.minimum(ctx.stress, self.p.changes.stress_cap)
        # releases
        due = np.flatnonzero(self.pl_active & (self.pl_cancel == t))
        if due.size:
            defaulted = lat.last_default[due] >= self.pl_reg_month[due]
            self.pl_cancel[due[defaulted]] = -1       # enforced, never released
            rel = due[~defaulted]
            self._cancel_pledges(ctx, out, rel, random_day_in_month(rng, t, rel.size))
        # registrations
        elig = (lat.alive & (lat.status == ACTIVE) & ~lat.born_now & ~self.pl_active
                & (self.major_kind == PERSON))
        base = sigmoid(np.array(pl.hazard[0]))
        p = sigmoid(pl.hazard[0] + pl.hazard[1] * st)
        u = rng.random(self.ent.n_max)
        new = np.flatnonzero(elig & (u < p))
        if new.size == 0:
            return
        k = new.size
        d = np.maximum(random_day_in_month(rng, t, k), self.ent.establish_date[new])
        types = np.array(PLEDGEE_TYPES, dtype=object)
        w = np.array([pl.pledgee_types[x] for x in PLEDGEE_TYPES])
        w_st = w * (1 - pl.stressed_natural_person) / (1 - w[3])
        w_st[3] = pl.stressed_natural_person
        stressed = st[new] > pl.stress_threshold
        cdf = np.where(stressed[:, None], np.cumsum(w_st / w_st.sum()), np.cumsum(w / w.sum()))
        ptype = types[np.minimum((rng.random(k)[:, None] > cdf).sum(axis=1), 3)]
        pledgee = np.empty(k, dtype=object)
        pledgor = np.empty(k, dtype=object)
        amount = np.zeros(k)
        frac = rng.uniform(*pl.amount_fraction, k)
        for j, i in enumerate(new.tolist()):
            rows = self._current_rows("hold", i)
            major = max(rows, key=lambda x: self.hold["share"][x])
            others = [r for r in rows if r != major]
            r = major if (not others or rng.random() < pl.controller_prob) else others[int(rng.integers(len(others)))]
            pledgor[j] = self.hold["hid"][r]
            amount[j] = round(self.hold["subscribed"][r] * frac[j], 2)
            if ptype[j] == "bank":
                pledgee[j] = self.banks[rng.choice(self.banks.size, p=self.bank_w)]
            elif ptype[j] == "non_bank_fi":
                pledgee[j] = self.non_banks[int(rng.integers(self.non_banks.size))]
            elif ptype[j] == "enterprise":
                jj = int(rng.integers(self.ent.n_max))
                pledgee[j] = (self.ent.uscc[jj] if rng.random() < pl.platform_enterprise_prob and jj != i
                              and lat.alive[jj] else self._outside_usccs(1)[0])
            else:
                person = (int(self.net.controller[rng.integers(self.ent.n_max)])
                          if rng.random() < pl.existing_person_prob else int(self._new_persons(1)[0]))
                pledgee[j] = self.net.persons.person_id[person]
        invalid = rng.random(k) < pl.invalid_prob
        dur = np.maximum(1, np.round(lognormal(rng, pl.duration_median_months, pl.duration_logsd, k))).astype(int)
        valid = new[~invalid]
        self.pl_active[valid] = True
        self.pl_cancel[valid] = t + dur[~invalid]
        self.pl_reg_month[valid] = t
        cols = self.pl_cols
        cols["pledgor_id"][new], cols["pledgee_id"][new] = pledgor, pledgee
        cols["pledgee_type"][new], cols["pledged_equity_amount"][new] = ptype, amount
        cols["registration_date"][new] = d
        if ctx.emit_events:
            self.pl_emitted[valid] = True
            avail = d + self._lag("equity_pledges", k)
            self.pl_avail[new] = avail
            status = np.where(invalid, "invalid", "valid").astype(object)
            cause = np.where(u[new] < base, "background", "stress").astype(object)
            self._queue(out, "equity_pledges", {
                "uscc": self.ent.uscc[new], "pledgor_id": pledgor, "pledgee_id": pledgee, "pledgee_type": ptype,
                "pledged_equity_amount": amount, "registration_date": d, "status": status,
                "cancel_date": np.full(k, NAT)}, ent=new, available=avail, cause=cause,
                valid_from=d)

    def _cancel_pledges(self, ctx: MonthContext, out: Emitter, idx: np.ndarray, d: np.ndarray) -> None:
        """Release: the same pledge key again with status 'cancelled' and its cancel_date."""
        self.pl_active[idx] = False
        self.pl_cancel[idx] = -1
        em = idx[self.pl_emitted[idx]]
        de = d[self.pl_emitted[idx]]
        self.pl_emitted[idx] = False
        if not ctx.emit_events or em.size == 0:
            return
        cols = {k: v[em] for k, v in self.pl_cols.items()}
        de = np.maximum(de, cols["registration_date"] + np.timedelta64(1, "D"))
        avail = np.maximum(de + self._lag("equity_pledges", em.size), self.pl_avail[em])
        self._queue(out, "equity_pledges", cols | {"uscc": self.ent.uscc[em], "status": np.full(em.size, "cancelled", object),
                                           "cancel_date": de},
                 ent=em, available=avail, cause="background", valid_from=de)

    # --- paid-in contributions -----------------------------------------------------------------------
    def _paid_in(self, ctx: MonthContext, out: Emitter) -> None:
        """A subscription paid after the row was published: a new version of the same holding row."""
        rows = self.paid_queue.pop(ctx.t, [])
        if not rows or not ctx.emit_events:
            return
        h = self.hold
        r = np.array(sorted(set(rows)), dtype=np.int64)
        r = r[h["emitted"][r] & h["current"][r] & ~h["paid_shown"][r] & ctx.latent.alive[h["target"][r]]]
        if r.size:
            d = h["paid_date"][r]
            self._s02(out, r, d, d + self._lag("shareholders", r.size), "background")
