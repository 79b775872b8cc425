"""Persons, ownership, groups, nominee rings, guarantees and hidden trade links (simulation.md §4).

All edges, including those no source reveals, are kept here; `truth.py` writes them to truth/.
Contagion matrices for the latent process are built from the same edges (§6.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from data.simulate.compact import shared_strings
from data.simulate.latent import ContagionLinks
from data.simulate.params import WorldParams
from data.simulate.world import Enterprises

PERSON, PLATFORM_ENT, OUTSIDE_ENT, FOREIGN, GOV, FUND = range(6)
HOLDER_TYPES = ("natural_person", "enterprise", "enterprise", "foreign_entity", "government_or_soe_agency",
                "partnership_fund")
GUARANTEE_CREDITORS = ("bank", "guarantee_company", "microcredit", "leasing", "other")
GUARANTEE_MODES = ("joint_and_several", "general", "undisclosed")
TURNOVER = {"oil_trading_bunkering": 5, "wholesale_retail_other": 2, "manufacturing_other": 1, "services_other": 1.2,
            "shipping_port_logistics": 0.6, "oil_gas_storage": 0.3, "tourism_hospitality": 0.4}
# plausible customer sectors of each supplier sector (hidden trade links)
TRADE_PARTNERS = {
    "marine_fishery": ("aquatic_processing", "wholesale_retail_other"),
    "aquatic_processing": ("wholesale_retail_other", "tourism_hospitality"),
    "shipbuilding_repair": ("shipping_port_logistics", "marine_fishery"),
    "construction_engineering": ("wholesale_retail_other", "shipping_port_logistics", "oil_gas_storage"),
    "oil_trading_bunkering": ("shipping_port_logistics", "marine_fishery", "oil_trading_bunkering"),
    "oil_gas_storage": ("oil_trading_bunkering", "petrochemical"),
    "petrochemical": ("manufacturing_other", "oil_trading_bunkering"),
    "shipping_port_logistics": ("oil_trading_bunkering", "wholesale_retail_other", "aquatic_processing"),
    "manufacturing_other": ("wholesale_retail_other", "construction_engineering", "shipbuilding_repair"),
    "wholesale_retail_other": ("tourism_hospitality", "construction_engineering", "services_other"),
    "tourism_hospitality": ("services_other",),
    "services_other": ("wholesale_retail_other", "manufacturing_other", "tourism_hospitality"),
}


def hex_ids(rng: np.random.Generator, prefix: str, n: int) -> np.ndarray:
    """`prefix` + 16 random lowercase hex characters (simulated keyed hashes)."""
    raw = rng.integers(0, 2**63, size=n, dtype=np.int64)
    return np.array([f"{prefix}{v:016x}" for v in raw.tolist()], dtype=object)


@dataclass
class Persons:
    person_id: np.ndarray     # object 'P_' + 16 hex
    birth_year: np.ndarray    # int
    is_nominee: np.ndarray    # bool

    def __len__(self) -> int:
        return len(self.person_id)

    def add(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """Append k new persons; returns their indices (for hired managers, supervisors, ...)."""
        start = len(self.person_id)
        self.person_id = np.concatenate([self.person_id, hex_ids(rng, "P_", k)])
        self.birth_year = np.concatenate([self.birth_year, _birth_years(rng, k)])
        self.is_nominee = np.concatenate([self.is_nominee, np.zeros(k, dtype=bool)])
        return np.arange(start, start + k)


def _birth_years(rng: np.random.Generator, k: int) -> np.ndarray:
    return (2020 - np.clip(np.round(rng.normal(46, 10, k)), 22, 75)).astype(np.int64)


@dataclass
class Holdings:
    """Initial shareholdings: one row per (target enterprise, holder); shares of a target sum to 1."""

    target: np.ndarray        # int64 slot
    holder_kind: np.ndarray   # int8: PERSON, PLATFORM_ENT, OUTSIDE_ENT, FOREIGN, GOV, FUND
    holder_index: np.ndarray  # int64: person index or platform slot, -1 otherwise
    holder_id: np.ndarray     # object: P_..., USCC, F_...
    share: np.ndarray         # float64


@dataclass
class Guarantees:
    guarantor: np.ndarray     # slot
    debtor: np.ndarray        # slot of the debtor enterprise, or -1 for a person debtor
    debtor_person: np.ndarray  # person index when debtor == -1
    principal: np.ndarray     # 万元
    disclosed: np.ndarray     # bool (persistent per edge)
    creditor_type: np.ndarray  # object
    mode: np.ndarray          # object
    renewal_moy: np.ndarray   # 1..12


@dataclass
class Networks:
    persons: Persons
    holdings: Holdings
    controller: np.ndarray    # person index of the controlling natural person, -1 if none
    legal_rep: np.ndarray     # person index of the initial legal representative
    legal_rep_kind: np.ndarray  # object: controller / hired / nominee
    group_id: np.ndarray      # int64, -1 if not in a group
    ring_id: np.ndarray       # int64 nominee ring of shells, -1 otherwise
    guarantees: Guarantees
    trade_supplier: np.ndarray
    trade_customer: np.ndarray
    links: ContagionLinks

    def holdings_of(self, slot: int) -> np.ndarray:
        return np.flatnonzero(self.holdings.target == slot)


def _share_vectors(rng: np.random.Generator, n_holders: np.ndarray) -> list[np.ndarray]:
    out = []
    for k in n_holders.tolist():
        if k == 1:
            out.append(np.array([1.0]))
        elif k == 2:
            major = 0.51 + (0.9 - 0.51) * rng.beta(4, 2)
            out.append(np.array([major, 1 - major]))
        else:
            v = rng.dirichlet([2.0] + [1.0] * (k - 1))
            out.append(np.sort(v)[::-1])
    return out


def build_networks(params: WorldParams, ent: Enterprises, rng: np.random.Generator) -> Networks:
    """Draw the ownership, management, guarantee and trade networks for all slots."""
    n = ent.n_max
    names = params.sector_names
    sector_name = np.array(names, dtype=object)[ent.sector]

    # persons: one controlling person per firm, shared across group members and multi-holders
    persons = Persons(person_id=np.array([], dtype=object), birth_year=np.array([], dtype=np.int64),
                      is_nominee=np.array([], dtype=bool))
    controller = persons.add(rng, n)

    # groups: 12% of firms, sizes geometric (mean 3, 2..8), same sector 70%, same district 80%
    group_id = np.full(n, -1, dtype=np.int64)
    parent_of = np.full(n, -1, dtype=np.int64)        # holding company slot for subsidiaries
    order = rng.permutation(n)
    target_members = int(0.12 * n)
    free = np.ones(n, dtype=bool)
    g = 0
    members_total = 0
    # candidates come from ascending index buckets of non-shell slots (same sector / district / both / any),
    # so a draw is the one a whole-array mask would give at a bucket's cost instead of the world's
    open_slots = np.flatnonzero(~ent.shell)
    pair_key = ent.sector[open_slots].astype(np.int64) * 1_000_000 + ent.district[open_slots].astype(np.int64)
    buckets: dict[tuple[bool, bool], dict[int, np.ndarray]] = {
        (True, True): _index_buckets(open_slots, pair_key),
        (True, False): _index_buckets(open_slots, ent.sector[open_slots].astype(np.int64)),
        (False, True): _index_buckets(open_slots, ent.district[open_slots].astype(np.int64)),
        (False, False): {0: open_slots},
    }
    bucket_key = {(True, True): lambda h: int(ent.sector[h]) * 1_000_000 + int(ent.district[h]),
                  (True, False): lambda h: int(ent.sector[h]), (False, True): lambda h: int(ent.district[h]),
                  (False, False): lambda h: 0}
    for head in order:
        if members_total >= target_members:
            break
        if not free[head] or ent.shell[head]:
            continue
        size = int(min(8, max(2, rng.geometric(1 / 2.0) + 1)))
        same_sector = rng.random(size - 1) < 0.7
        same_district = rng.random(size - 1) < 0.8
        members = [head]
        for ss, sd in zip(same_sector, same_district, strict=True):
            key = (bool(ss), bool(sd))
            pool = buckets[key].get(bucket_key[key](head), open_slots[:0])
            ok = free[pool]
            ok[np.isin(pool, members)] = False
            cand = pool[ok]
            if cand.size == 0:
                continue
            members.append(int(cand[rng.integers(cand.size)]))
        if len(members) < 2:
            continue
        m = np.array(members)
        free[m] = False
        group_id[m] = g
        controller[m] = controller[head]
        if rng.random() < 0.5:                        # holding-company structure
            parent_of[m[1:]] = head
        g += 1
        members_total += len(m)

    # nominee pool (~300 at scale 1): each fronts 5-20 cluster shells -> rings
    shells = np.flatnonzero(ent.shell)
    nominee_fronted = shells[rng.random(shells.size) < 0.4]
    ring_id = np.full(n, -1, dtype=np.int64)
    legal_rep = controller.copy()
    legal_rep_kind = np.full(n, "controller", dtype=object)
    if nominee_fronted.size:
        sizes = []
        left = nominee_fronted.size
        while left > 0:
            s = int(min(left, rng.integers(5, 21)))
            sizes.append(s)
            left -= s
        nominees = persons.add(rng, len(sizes))
        persons.is_nominee[nominees] = True
        perm = rng.permutation(nominee_fronted)
        pos = 0
        for r, s in enumerate(sizes):
            members = perm[pos:pos + s]
            ring_id[members] = r
            legal_rep[members] = nominees[r]
            legal_rep_kind[members] = "nominee"
            pos += s
    others = np.flatnonzero(legal_rep_kind == "controller")
    u = rng.random(others.size)
    hired = others[u < 0.10]
    legal_rep[hired] = persons.add(rng, hired.size)
    legal_rep_kind[hired] = "hired"
    nominee_pool = np.flatnonzero(persons.is_nominee)
    nom = others[(u >= 0.10) & (u < 0.20)]
    if nominee_pool.size == 0:
        nominee_pool = persons.add(rng, max(1, n // 170))
        persons.is_nominee[nominee_pool] = True
    legal_rep[nom] = nominee_pool[rng.integers(0, nominee_pool.size, nom.size)]
    legal_rep_kind[nom] = "nominee"

    holdings = _draw_holdings(params, ent, rng, persons, controller, parent_of, sector_name)
    guarantees = _draw_guarantees(ent, rng, controller, sector_name)
    sup, cus = _draw_trade_links(params, ent, rng, sector_name)
    links = _contagion_links(params, ent, holdings, guarantees, controller, legal_rep, sup, cus, sector_name)
    return Networks(persons=persons, holdings=holdings, controller=controller, legal_rep=legal_rep,
                    legal_rep_kind=shared_strings(legal_rep_kind), group_id=group_id, ring_id=ring_id, guarantees=guarantees,
                    trade_supplier=sup, trade_customer=cus, links=links)


def _index_buckets(slots: np.ndarray, keys: np.ndarray) -> dict[int, np.ndarray]:
    """Slots grouped by key, each group in ascending slot order."""
    order = np.argsort(keys, kind="stable")
    uniq, start = np.unique(keys[order], return_index=True)
    return {int(k): slots[idx] for k, idx in zip(uniq.tolist(), np.split(order, start[1:]), strict=True)}


def _draw_holdings(params: WorldParams, ent: Enterprises, rng: np.random.Generator, persons: Persons,
                   controller: np.ndarray, parent_of: np.ndarray, sector_name: np.ndarray) -> Holdings:
    n = ent.n_max
    u = rng.random(n)
    n_holders = np.where(u < 0.30, 1, np.where(u < 0.75, 2, rng.integers(3, 6, n)))
    shares = _share_vectors(rng, n_holders)
    # minority holders: 18% of persons hold stakes in >= 2 firms -> reuse existing persons often
    state = rng.random(n) < 0.02
    outside = rng.random(n) < 0.05
    foreign = rng.random(n) < 0.02
    fund = rng.random(n) < 0.02
    target, kind, index, share = [], [], [], []
    for i in range(n):
        sv = shares[i]
        for j, s in enumerate(sv.tolist()):
            if j == 0:
                if state[i]:
                    k, idx = GOV, -1
                elif parent_of[i] >= 0:
                    k, idx = PLATFORM_ENT, int(parent_of[i])
                else:
                    k, idx = PERSON, int(controller[i])
            elif j == 1 and outside[i]:
                k, idx = OUTSIDE_ENT, -1
            elif j == 1 and foreign[i]:
                k, idx = FOREIGN, -1
            elif j == 1 and fund[i]:
                k, idx = FUND, -1
            else:
                k, idx = PERSON, -2          # minority person, resolved below
            target.append(i)
            kind.append(k)
            index.append(idx)
            share.append(round(s, 4))
    target_a = np.array(target, dtype=np.int64)
    kind_a = np.array(kind, dtype=np.int8)
    index_a = np.array(index, dtype=np.int64)
    minority = np.flatnonzero(index_a == -2)
    reuse = rng.random(minority.size) < 0.25
    index_a[minority[reuse]] = controller[rng.integers(0, n, reuse.sum())]
    index_a[minority[~reuse]] = persons.add(rng, int((~reuse).sum()))
    hid_a = np.empty(target_a.size, dtype=object)
    is_person = kind_a == PERSON
    hid_a[is_person] = persons.person_id[index_a[is_person]]
    plat = kind_a == PLATFORM_ENT
    hid_a[plat] = ent.uscc[index_a[plat]]
    for k, prefix in ((OUTSIDE_ENT, None), (FOREIGN, "F_"), (GOV, None), (FUND, None)):
        sel = np.flatnonzero(kind_a == k)
        if prefix:
            hid_a[sel] = hex_ids(rng, prefix, sel.size)
        else:
            hid_a[sel] = _outside_usccs(rng, sel.size, state=(k == GOV))
    share_a = np.array(share)
    # fix rounding so that every target sums to exactly 1.0000
    sums = np.bincount(target_a, weights=share_a, minlength=n)
    first = np.r_[0, np.flatnonzero(np.diff(target_a)) + 1]
    share_a[first] += (1.0 - sums[target_a[first]])
    return Holdings(target=target_a, holder_kind=kind_a, holder_index=index_a, holder_id=hid_a,
                    share=np.round(share_a, 4))


def _outside_usccs(rng: np.random.Generator, k: int, state: bool) -> np.ndarray:
    """USCCs of enterprises registered outside Zhoushan (not on the platform)."""
    from kernel.uscc import generate_usccs

    regions = np.array(["330100" if state else r for r in
                        rng.choice(["310000", "330100", "330200", "320500", "440300"], k)], dtype=object)
    return generate_usccs(rng, regions, np.zeros(k, dtype=bool))


def _draw_guarantees(ent: Enterprises, rng: np.random.Generator, controller: np.ndarray,
                     sector_name: np.ndarray) -> Guarantees:
    n = ent.n_max
    guarantors = np.flatnonzero(rng.random(n) < 0.14)
    debtors = np.empty(guarantors.size, dtype=np.int64)
    cluster_sectors = np.isin(sector_name, ["construction_engineering", "shipping_port_logistics",
                                           "wholesale_retail_other"])
    same_pref = rng.random(guarantors.size) < 0.6
    keys = ent.sector.astype(np.int64) * 1_000_000 + ent.district.astype(np.int64) % 1_000_000
    by_key: dict[int, np.ndarray] = {}
    for kk in np.unique(keys):
        by_key[int(kk)] = np.flatnonzero(keys == kk)
    for j, gi in enumerate(guarantors.tolist()):
        pool = by_key[int(keys[gi])] if (same_pref[j] or cluster_sectors[gi]) else None
        d = gi
        for _ in range(5):
            d = int(pool[rng.integers(pool.size)]) if pool is not None and pool.size > 1 else int(rng.integers(n))
            if d != gi:
                break
        debtors[j] = d
    reciprocal = rng.random(guarantors.size) < 0.30
    g = np.concatenate([guarantors, debtors[reciprocal]])
    d = np.concatenate([debtors, guarantors[reciprocal]])
    keep = g != d
    g, d = g[keep], d[keep]
    m = g.size
    person_debtor = rng.random(m) < 0.10
    debtor_person = np.where(person_debtor, controller[g], -1)
    d = np.where(person_debtor, -1, d)
    return Guarantees(
        guarantor=g, debtor=d, debtor_person=debtor_person,
        principal=np.round(300 * np.exp(rng.normal(0, 1.0, m)), 2), disclosed=rng.random(m) < 0.7,
        creditor_type=shared_strings(rng.choice(GUARANTEE_CREDITORS, m, p=[0.85, 0.05, 0.04, 0.03, 0.03])),
        mode=shared_strings(rng.choice(GUARANTEE_MODES, m, p=[0.85, 0.10, 0.05])),
        renewal_moy=rng.integers(1, 13, m))


def _draw_trade_links(params: WorldParams, ent: Enterprises, rng: np.random.Generator,
                      sector_name: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = ent.n_max
    k = rng.poisson(0.6, n).clip(0, 3)
    sup = np.repeat(np.arange(n), k)
    cus = np.empty(sup.size, dtype=np.int64)
    by_sector = {s: np.flatnonzero(sector_name == s) for s in params.sector_names}
    for j, s in enumerate(sup.tolist()):
        partners = TRADE_PARTNERS[sector_name[s]]
        pool = by_sector[partners[rng.integers(len(partners))]]
        cus[j] = pool[rng.integers(pool.size)] if pool.size else rng.integers(n)
    keep = sup != cus
    return sup[keep], cus[keep]


def static_equity(ent: Enterprises, sector_name: np.ndarray) -> np.ndarray:
    """Book equity estimate A_i (1 - r0_i) used to size guarantee contagion."""
    turnover = np.array([TURNOVER.get(s, 1.0) for s in sector_name])
    return ent.sales / turnover * (1 - ent.leverage_base)


def _contagion_links(params: WorldParams, ent: Enterprises, h: Holdings, g: Guarantees, controller: np.ndarray,
                     legal_rep: np.ndarray, sup: np.ndarray, cus: np.ndarray,
                     sector_name: np.ndarray) -> ContagionLinks:
    c = params.contagion
    n = ent.n_max
    rows, cols, jump, spill = [], [], [], []

    def add(src: np.ndarray, dst: np.ndarray, j: np.ndarray | float, w: float) -> None:
        rows.append(src)
        cols.append(dst)
        jump.append(np.broadcast_to(np.asarray(j, dtype=np.float64), src.shape))
        spill.append(np.full(src.shape, w))

    # i guarantees j: source j (debtor) -> target i (guarantor)
    ent_debt = g.debtor >= 0
    eq = static_equity(ent, sector_name)
    add(g.debtor[ent_debt], g.guarantor[ent_debt],
        c.guarantee * np.minimum(1.0, g.principal[ent_debt] / np.maximum(eq[g.guarantor[ent_debt]],
                                                                         c.guarantee_equity_floor)), 1.0)
    # parent/subsidiary among platform enterprises
    big = (h.holder_kind == PLATFORM_ENT) & (h.share >= 0.5)
    parent, child = h.holder_index[big], h.target[big]
    add(parent, child, c.parent_default, 1.0)                      # j (parent) holds >= 0.5 of i
    add(child, parent, c.subsidiary_default * h.share[big], 1.0)   # i holds >= 0.5 of j
    # same controller / same legal representative (pairs within small sets)
    for key in (controller, legal_rep):
        order = np.argsort(key, kind="stable")
        ks = key[order]
        starts = np.r_[0, np.flatnonzero(np.diff(ks)) + 1]
        ends = np.r_[starts[1:], ks.size]
        multi = (ends - starts) > 1
        for s0, e0 in zip(starts[multi], ends[multi], strict=True):
            members = order[s0:e0][:20]
            a, b = np.meshgrid(members, members)
            off = a != b
            add(a[off], b[off], c.same_controller, 1.0)
    # i supplier of j: source customer j -> target supplier i
    add(cus, sup, c.supplier, 0.5)
    r = np.concatenate(rows)
    cc = np.concatenate(cols)
    jm = sp.coo_matrix((np.concatenate(jump), (r, cc)), shape=(n, n)).tocsr()
    sm = sp.coo_matrix((np.concatenate(spill), (r, cc)), shape=(n, n)).tocsr()
    sm.data = np.minimum(sm.data, 1.0)
    # each firm's total incoming spillover weight is capped at 1: with x_ar 0.97 and c 0.02 the loop gain
    # stays below 1 (dense nominee rings and groups otherwise make the spillover explode)
    incoming = np.asarray(sm.sum(axis=0)).ravel()
    sm = sm @ sp.diags(1.0 / np.maximum(1.0, incoming))
    return ContagionLinks(jump=jm, spill=sm.tocsr())
