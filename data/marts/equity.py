"""Equity penetration and shareholder association (股权穿透与持股人关联分析), indicators.md §6.

A lender cares about who really stands behind a borrower and which other firms can drag it down: the
ultimate owners and actual controller (§6.1-6.2), the association group and guarantee circle it sits
in (§6.3), and how strongly it is tied to related firms that are already in trouble (§6.4, the input
of E3.1). Everything here is computed per month end from what the platform knew at that date.

The graph steps are pure functions on small pandas frames (so they are testable on hand-built
graphs); `load_equity_inputs` and `build_equity_mart` are the only functions that read the warehouse,
and `write_graph_snapshots` the only one that writes files.

Choices the spec leaves open (see the docstrings for the why):
* shares of one enterprise summing to more than 1 (dirty duplicate rows) are scaled down to 1;
* a level where two holders each own exactly 50% has no majority link; a tie for the largest ultimate
  share means 'no identified controller' (joint control is not a single actual controller);
* firms whose common controller is a government / SOE agency are not associated through it (CAS 36:
  being controlled by the state alone does not make two enterprises related parties);
* type (e) edges join an equity pledgee that is a non-financial enterprise to the pledged company and
  to an enterprise pledgor (bank / non-bank-FI pledgees would chain half the platform into one group);
* over-sized groups drop edge types in the order (c), (e), (d) until every part has <= 50 firms, so
  what remains of a big group is its ownership / control core (a), (b);
* 'distressed' = an observed serious credit event (events.py) in the window; the firm's own events
  never count as a related party's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from data.marts.grid import known_at, register_months, registered_grid
from data.marts.spec import MartDtype, MartFeature, MartRiskDirection

log = logging.getLogger(__name__)

PREFIX = "eq_"
TERMINAL_TYPES = frozenset({"natural_person", "government_or_soe_agency", "foreign_entity"})
"""Holder types never penetrated further, whatever the platform holds about them."""
OPAQUE_TYPES = frozenset({"enterprise", "partnership_fund", "foreign_entity"})
"""Terminal holders whose own owners are unknown: off-platform enterprises / funds, foreign entities."""
STATE_TYPE = "government_or_soe_agency"
EDGE_TYPES = ("a", "b", "c", "d", "e")
"""§6.3: (a) ownership >= 0.2, (b) same controller, (c) shared person, (d) guarantee, (e) equity pledge."""
SPLIT_ORDER = ("c", "e", "d")
"""Edge types dropped, in order, from an association group larger than the maximum size."""
MAX_GROUP_SIZE = 50
EPS = 1e-9
"""Tolerance for share thresholds and ties: shares are sums of products, compared up to float noise."""
WINDOW_SHORT_DAYS = 90
WINDOW_LONG_DAYS = 365
PEN_SHORT = 100.0
PEN_LONG = 50.0

_COLUMNS: dict[str, tuple[str, ...]] = {
    "firms": ("uscc", "legal_rep_person_id", "registered_capital"),
    "shareholders": ("uscc", "shareholder_id", "shareholder_type", "share_ratio"),
    "personnel": ("uscc", "person_id"),
    "guarantees": ("uscc", "debtor_id", "principal_amount"),
    "pledges": ("uscc", "pledgor_id", "pledgee_id", "pledgee_type", "pledged_equity_amount"),
    "freezes": ("uscc", "holder_id", "frozen_equity_amount"),
    "owners_equity": ("uscc", "owners_equity"),
}


def _empty(kind: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c.endswith(("_amount", "ratio", "equity",
                                                                      "capital")) else "object")
                         for c in _COLUMNS[kind]})


@dataclass(frozen=True)
class EquityInputs:
    """The §6 inputs as known at one month end, already restricted to active / outstanding / valid rows.

    firms: registered enterprises (uscc, legal_rep_person_id, registered_capital);
    shareholders: active holdings (uscc, shareholder_id, shareholder_type, share_ratio);
    personnel: active key personnel other than supervisors (uscc, person_id);
    guarantees: outstanding guarantees given (uscc = guarantor, debtor_id, principal_amount);
    pledges: valid equity pledges on uscc's equity (pledgor_id, pledgee_id, pledgee_type, amount);
    freezes: active freezes of equity in uscc held by holder_id (frozen_equity_amount);
    owners_equity: latest known annual-report owners' equity per enterprise.
    """

    firms: pd.DataFrame
    shareholders: pd.DataFrame
    personnel: pd.DataFrame = field(default_factory=lambda: _empty("personnel"))
    guarantees: pd.DataFrame = field(default_factory=lambda: _empty("guarantees"))
    pledges: pd.DataFrame = field(default_factory=lambda: _empty("pledges"))
    freezes: pd.DataFrame = field(default_factory=lambda: _empty("freezes"))
    owners_equity: pd.DataFrame = field(default_factory=lambda: _empty("owners_equity"))


@dataclass(frozen=True)
class Ownership:
    """Result of §6.1: U (terminal holders x enterprises) and V (enterprise x enterprise), integrated.

    `holdings` is the cleaned shareholder frame the matrices were built from; `ultimate_hops` holds,
    for every non-zero entry of U, the length of the shortest ownership path (number of links) behind
    it. `ultimate_long` is U in long form; `chains` / `control` are the majority chains (§6.2). Frames
    are shared, not copied: treat them as read-only.
    """

    holdings: pd.DataFrame
    enterprises: pd.Index
    terminals: pd.Index
    node_type: pd.Series
    direct: sp.csr_matrix
    ultimate: sp.csr_matrix
    ultimate_hops: sp.csr_matrix
    integrated: sp.csr_matrix
    iterations: int
    converged: bool
    ultimate_long: pd.DataFrame
    chains: pd.DataFrame
    control: pd.DataFrame


@dataclass(frozen=True)
class EquityMonth:
    """One month's features (one row per registered firm, no as_of) and its graph snapshot edges."""

    features: pd.DataFrame
    edges: pd.DataFrame


# ----------------------------------------------------------------------------- §6.1 ownership

def _is_enterprise_id(ids: pd.Series) -> pd.Series:
    return ids.notna() & ~ids.astype("string").str.startswith(("P_", "F_")).fillna(True).astype(bool)


def _infer_type(ids: pd.Series) -> pd.Series:
    s = ids.astype("string")
    return pd.Series(np.where(s.str.startswith("P_").fillna(False), "natural_person",
                              np.where(s.str.startswith("F_").fillna(False), "foreign_entity", "enterprise")),
                     index=ids.index)


def clean_holdings(shareholders: pd.DataFrame) -> pd.DataFrame:
    """Active holdings ready for the matrices: one row per (uscc, holder), shares in (0, 1], sum <= 1.

    Rows without a positive share and self-holdings (treasury shares) are dropped; a holder listed
    twice for one firm is summed; a holder's type is made consistent across firms (first seen, else
    inferred from the id prefix); if a firm's shares sum to more than 1 (a dirty duplicate, an
    unclosed old holder) they are scaled to sum to 1, which keeps the Neumann series convergent.
    """
    cols = list(_COLUMNS["shareholders"])
    h = shareholders.loc[:, cols].copy()
    h["share_ratio"] = pd.to_numeric(h["share_ratio"], errors="coerce")
    h = h[h["uscc"].notna() & h["shareholder_id"].notna() & (h["share_ratio"] > 0)
          & (h["uscc"] != h["shareholder_id"])]
    h["share_ratio"] = h["share_ratio"].clip(upper=1.0)
    missing = h["shareholder_type"].isna()
    if missing.any():
        h.loc[missing, "shareholder_type"] = _infer_type(h.loc[missing, "shareholder_id"])
    if h.drop_duplicates(["shareholder_id", "shareholder_type"])["shareholder_id"].duplicated().any():
        first = h.sort_values(["shareholder_id", "uscc"]).drop_duplicates("shareholder_id")
        h["shareholder_type"] = h["shareholder_id"].map(first.set_index("shareholder_id")["shareholder_type"])
    if h.duplicated(["uscc", "shareholder_id"]).any():
        h = h.groupby(["uscc", "shareholder_id"], as_index=False, sort=False).agg(
            shareholder_type=("shareholder_type", "first"), share_ratio=("share_ratio", "sum"))
    total = h.groupby("uscc")["share_ratio"].transform("sum").to_numpy()
    h["share_ratio"] = np.where(total > 1.0, h["share_ratio"].to_numpy() / total, h["share_ratio"].to_numpy())
    return h[cols].reset_index(drop=True)


def _pattern(m: sp.csr_matrix) -> sp.csr_matrix:
    p = m.copy()
    p.data = np.ones_like(p.data)
    return p


def _neumann(b: sp.csr_matrix, a: sp.csr_matrix, tol: float,
             max_iter: int) -> tuple[sp.csr_matrix, sp.csr_matrix, int, bool]:
    """X = B (I - A)^-1 by X_{n+1} = B + X_n A, with the hop count of each entry's shortest path."""
    x = b.tocsr()
    hops = _pattern(x)
    converged = a.nnz == 0
    n = 0
    while not converged and n < max_iter:
        n += 1
        nxt = (b + x @ a).tocsr()
        nxt.eliminate_zeros()
        diff = abs(nxt - x)
        delta = float(diff.max()) if diff.nnz else 0.0
        new = (_pattern(nxt) - _pattern(x)).tocsr()
        new.eliminate_zeros()
        hops = (hops + new * (n + 1)).tocsr()
        x = nxt
        converged = delta < tol
    return x, hops, n, converged


def integrated_ownership(shareholders: pd.DataFrame, *, tol: float = 1e-6, max_iter: int = 10) -> Ownership:
    """§6.1: U = B (I - A)^-1 by the sparse iteration U_{n+1} = B + U_n A (cycles converge).

    E (columns) are the firms with shareholder rows; a holder is penetrated (a row of A) when it is
    itself in E and is not a natural person, government / SOE agency or foreign entity; every other
    holder is a terminal holder (a row of B), enterprises without shareholder rows being opaque.
    Also returns V = A (I - A)^-1, the integrated share of one enterprise in another, used by §6.3 (a).
    """
    h = clean_holdings(shareholders)
    enterprises = pd.Index(np.sort(h["uscc"].unique()), name="uscc")
    through = h["shareholder_id"].isin(enterprises) & ~h["shareholder_type"].isin(TERMINAL_TYPES)
    inner, outer = h[through], h[~through]
    terminals = pd.Index(np.sort(outer["shareholder_id"].unique()), name="holder_id")
    node_type = h.drop_duplicates("shareholder_id").set_index("shareholder_id")["shareholder_type"]
    node_type = pd.concat([node_type, pd.Series("enterprise", index=enterprises.difference(node_type.index))])
    ne, nt = len(enterprises), len(terminals)
    a = sp.csr_matrix((inner["share_ratio"].to_numpy(float),
                       (enterprises.get_indexer(inner["shareholder_id"]), enterprises.get_indexer(inner["uscc"]))),
                      shape=(ne, ne))
    b = sp.csr_matrix((outer["share_ratio"].to_numpy(float),
                       (terminals.get_indexer(outer["shareholder_id"]), enterprises.get_indexer(outer["uscc"]))),
                      shape=(nt, ne))
    u, u_hops, n_u, conv_u = _neumann(b, a, tol, max_iter)
    v, _, n_v, conv_v = _neumann(a, a, tol, max_iter)
    chains, control = _majority_chains(h, enterprises, terminals, node_type)
    return Ownership(holdings=h, enterprises=enterprises, terminals=terminals, node_type=node_type,
                     direct=a, ultimate=u, ultimate_hops=u_hops, integrated=v,
                     iterations=max(n_u, n_v), converged=conv_u and conv_v,
                     ultimate_long=_long_ultimate(u, u_hops, enterprises, terminals, node_type),
                     chains=chains, control=control)


def _long_ultimate(u: sp.csr_matrix, hops: sp.csr_matrix, enterprises: pd.Index, terminals: pd.Index,
                   node_type: pd.Series) -> pd.DataFrame:
    u, hops = u.tocsc().sorted_indices(), hops.tocsc().sorted_indices()
    # every non-zero of U got its hop count when it appeared, so both share one sparsity pattern
    assert np.array_equal(u.indptr, hops.indptr) and np.array_equal(u.indices, hops.indices)
    cols = np.repeat(np.arange(u.shape[1]), np.diff(u.indptr))
    keep = u.data > 0
    out = pd.DataFrame({"holder_id": terminals.to_numpy()[u.indices[keep]],
                        "uscc": enterprises.to_numpy()[cols[keep]],
                        "ultimate_share": u.data[keep], "hops": hops.data[keep].astype(np.int64)})
    out["holder_type"] = out["holder_id"].map(node_type).fillna("enterprise")
    return out  # column-major over sorted indexes = sorted by (uscc, holder_id)


def ultimate_shares(own: Ownership) -> pd.DataFrame:
    """U in long form: holder_id, uscc, ultimate_share, hops (shortest path length), holder_type."""
    return own.ultimate_long


def integrated_enterprise_shares(own: Ownership) -> pd.DataFrame:
    """V in long form (holder_id enterprise, uscc, integrated_share), self-ownership via cycles dropped."""
    v = own.integrated.tocoo()
    out = pd.DataFrame({"holder_id": own.enterprises[v.row].to_numpy(),
                        "uscc": own.enterprises[v.col].to_numpy(), "integrated_share": v.data})
    return out[(out["holder_id"] != out["uscc"]) & (out["integrated_share"] > 0)].reset_index(drop=True)


# ----------------------------------------------------------------------------- §6.2 controller

def _majority_chains(h: pd.DataFrame, enterprises: pd.Index, terminals: pd.Index,
                     node_type: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Walk each firm's majority chain: (firm -> terminal controller, length) and every (controller, firm)."""
    nodes = enterprises.union(terminals)
    maj = h[h["share_ratio"] >= 0.5 - EPS]
    maj = maj[maj.groupby("uscc")["uscc"].transform("size") == 1]  # a 50/50 split is no majority
    parent = np.full(len(nodes), -1, dtype=np.int64)
    parent[nodes.get_indexer(maj["uscc"])] = nodes.get_indexer(maj["shareholder_id"])
    node_types = node_type.reindex(nodes).fillna("enterprise").to_numpy()
    passes = nodes.isin(enterprises) & ~np.isin(node_types, list(TERMINAL_TYPES))

    start = np.flatnonzero(nodes.isin(enterprises) & (parent >= 0))
    cur, length = parent[start], np.ones(len(start), dtype=np.int64)
    alive = np.ones(len(start), dtype=bool)
    pairs = [(cur.copy(), start.copy(), length.copy())]
    bound = int((passes & (parent >= 0)).sum()) + 1
    for _ in range(bound):
        step = alive & passes[cur]
        if not step.any():
            break
        nxt = parent[cur[step]]
        idx = np.flatnonzero(step)
        broken = nxt < 0
        alive[idx[broken]] = False  # chain ends at an enterprise without a majority holder
        ok = idx[~broken]
        cur[ok], length[ok] = nxt[~broken], length[ok] + 1
        pairs.append((cur[ok].copy(), start[ok].copy(), length[ok].copy()))
    done = alive & ~passes[cur]  # still passing through after `bound` steps = a majority cycle
    chains = pd.DataFrame({"uscc": nodes[start[done]].to_numpy(), "controller_id": nodes[cur[done]].to_numpy(),
                           "chain_length": length[done]})
    c, s, d = (np.concatenate(x) for x in zip(*pairs, strict=True))
    control = pd.DataFrame({"controller_id": nodes[c].to_numpy(), "uscc": nodes[s].to_numpy(), "depth": d})
    control = control.drop_duplicates(["controller_id", "uscc"]).reset_index(drop=True)
    return chains, control


def majority_control_pairs(own: Ownership) -> pd.DataFrame:
    """(controller_id, uscc, depth) for every holder on a firm's majority chain (each link >= 0.5)."""
    return own.control


def actual_controllers(own: Ownership) -> pd.DataFrame:
    """§6.2 per firm in E: majority-chain terminal holder, else the unique largest U >= 0.25, else none.

    Columns (index uscc): actual_controller_id, controller_type, controller_ultimate_share,
    controller_chain_length (links; 0 = none), controller_via_majority_chain, n_terminal_holders,
    max_ultimate_share, opaque_ultimate_share (share ending at holders whose owners are unknown).
    A tie for the largest U yields no controller, so the answer never depends on how ids sort.
    """
    chains = own.chains
    ult = ultimate_shares(own)
    firm = pd.DataFrame(index=own.enterprises)
    grp = ult.groupby("uscc")
    firm["n_terminal_holders"] = grp.size().reindex(firm.index).fillna(0).astype(np.int64)
    top = grp["ultimate_share"].max()
    firm["max_ultimate_share"] = top.reindex(firm.index).fillna(0.0)
    opaque = ult[ult["holder_type"].isin(OPAQUE_TYPES)].groupby("uscc")["ultimate_share"].sum()
    firm["opaque_ultimate_share"] = opaque.reindex(firm.index).fillna(0.0)

    at_top = ult[ult["ultimate_share"] >= ult["uscc"].map(top) - EPS]
    unique_top = at_top[at_top.groupby("uscc")["uscc"].transform("size") == 1]
    beneficial = unique_top[unique_top["ultimate_share"] >= 0.25 - EPS].set_index("uscc")

    ctrl = chains.set_index("uscc")["controller_id"].reindex(firm.index)
    length = chains.set_index("uscc")["chain_length"].reindex(firm.index)
    via_chain = ctrl.notna()
    fallback = ~via_chain & firm.index.isin(beneficial.index)
    ctrl = ctrl.where(~fallback, beneficial["holder_id"].reindex(firm.index))
    length = length.where(~fallback, beneficial["hops"].reindex(firm.index))
    share = ult.set_index(["holder_id", "uscc"])["ultimate_share"]
    keys = pd.MultiIndex.from_arrays([ctrl.fillna("").to_numpy(), firm.index.to_numpy()])
    firm["actual_controller_id"] = ctrl.astype(object).where(ctrl.notna(), None)
    firm["controller_type"] = ctrl.map(own.node_type).astype(object).where(ctrl.notna(), None)
    firm["controller_ultimate_share"] = np.where(ctrl.notna(), share.reindex(keys).fillna(0.0).to_numpy(),
                                                 np.nan)
    firm["controller_chain_length"] = length.fillna(0).astype(np.int64)
    firm["controller_via_majority_chain"] = via_chain.to_numpy()
    return firm[["actual_controller_id", "controller_type", "controller_ultimate_share",
                 "controller_chain_length", "controller_via_majority_chain", "n_terminal_holders",
                 "max_ultimate_share", "opaque_ultimate_share"]]


# ----------------------------------------------------------------------------- §6.3 groups

def _clique_pairs(members: pd.DataFrame, key: str) -> pd.DataFrame:
    """Unordered pairs (src < dst) of firms sharing `key`, with the number of shared keys as weight."""
    m = members[[key, "uscc"]].dropna().drop_duplicates()
    m = m[m.groupby(key)["uscc"].transform("size") >= 2]
    if m.empty:
        return pd.DataFrame({"src": pd.Series(dtype=object), "dst": pd.Series(dtype=object),
                             "weight": pd.Series(dtype=float)})
    firm_code, firms = pd.factorize(m["uscc"], sort=True)  # sorted codes: code order = id order
    key_code = pd.factorize(m[key])[0]
    codes = pd.DataFrame({"k": key_code, "u": firm_code})
    p = codes.merge(codes, on="k", suffixes=("_1", "_2"))
    p = p[p["u_1"] < p["u_2"]]
    w = p.groupby(["u_1", "u_2"], sort=True).size()
    return pd.DataFrame({"src": firms[w.index.get_level_values(0)].to_numpy(),
                         "dst": firms[w.index.get_level_values(1)].to_numpy(),
                         "weight": w.to_numpy(dtype=float)})


def _label_frame(idx: pd.Index, labels: np.ndarray) -> pd.DataFrame:
    """node, label, smallest node of the label, label size (idx must be sorted)."""
    uniq, first = np.unique(labels, return_index=True)
    smallest = np.empty(labels.max() + 1, dtype=np.int64)
    smallest[uniq] = first
    nodes = idx.to_numpy()
    return pd.DataFrame({"node": nodes, "label": labels, "smallest": nodes[smallest[labels]],
                         "size": np.bincount(labels)[labels].astype(np.int64)})


def _state_ids(own: Ownership) -> set[str]:
    return set(own.node_type.index[own.node_type == STATE_TYPE])


def _enterprise_mask(ids: pd.Series, state: set[str]) -> pd.Series:
    return _is_enterprise_id(ids) & ~ids.isin(state)


def _private_controllers(controllers: pd.DataFrame) -> pd.DataFrame:
    c = controllers[controllers["actual_controller_id"].notna() & (controllers["controller_type"] != STATE_TYPE)]
    return c.rename_axis("uscc").reset_index()[["uscc", "actual_controller_id"]]


def association_edges(inputs: EquityInputs, own: Ownership, controllers: pd.DataFrame) -> pd.DataFrame:
    """§6.3 edges between enterprises (src, dst, edge_type a-e, weight); one row per pair and type.

    weight: (a) integrated share of src in dst; (b) 1; (c) number of shared persons; (d) outstanding
    principal src guarantees for dst; (e) valid pledged amount. Persons, foreign entities and
    government agencies are not nodes: they create edges between the enterprises they connect.
    """
    state = _state_ids(own)
    parts = []
    v = integrated_enterprise_shares(own).rename(columns={"holder_id": "src", "uscc": "dst",
                                                          "integrated_share": "weight"})
    ult = ultimate_shares(own)
    opaque = ult[ult["holder_type"].isin({"enterprise", "partnership_fund"})].rename(
        columns={"holder_id": "src", "uscc": "dst", "ultimate_share": "weight"})
    a = pd.concat([v, opaque[["src", "dst", "weight"]]], ignore_index=True)
    parts.append(a[a["weight"] >= 0.2 - EPS].assign(edge_type="a"))

    parts.append(_clique_pairs(_private_controllers(controllers), "actual_controller_id").assign(
        edge_type="b", weight=1.0))

    firms = inputs.firms
    registered = set(firms["uscc"])
    people = pd.concat([firms[["uscc", "legal_rep_person_id"]].rename(columns={"legal_rep_person_id": "person_id"}),
                        inputs.personnel[["uscc", "person_id"]]], ignore_index=True)
    people = people[people["uscc"].isin(registered) & people["person_id"].notna()]
    parts.append(_clique_pairs(people, "person_id").assign(edge_type="c"))

    g = inputs.guarantees
    g = g[_enterprise_mask(g["debtor_id"], state) & (g["debtor_id"] != g["uscc"])]
    parts.append(g.groupby(["uscc", "debtor_id"], as_index=False)["principal_amount"].sum().rename(
        columns={"uscc": "src", "debtor_id": "dst", "principal_amount": "weight"}).assign(edge_type="d"))

    p = inputs.pledges
    p = p[(p["pledgee_type"] == "enterprise") & _enterprise_mask(p["pledgee_id"], state)]
    e = pd.concat([p[["pledgee_id", "uscc", "pledged_equity_amount"]].rename(columns={"uscc": "dst"}),
                   p[_enterprise_mask(p["pledgor_id"], state)][["pledgee_id", "pledgor_id", "pledged_equity_amount"]]
                   .rename(columns={"pledgor_id": "dst"})], ignore_index=True)
    e = e.rename(columns={"pledgee_id": "src", "pledged_equity_amount": "weight"})
    parts.append(e[e["src"] != e["dst"]].groupby(["src", "dst"], as_index=False)["weight"].sum()
                 .assign(edge_type="e"))

    out = pd.concat([x[["src", "dst", "edge_type", "weight"]] for x in parts], ignore_index=True)
    out = out[out["src"] != out["dst"]].reset_index(drop=True)
    out["weight"] = out["weight"].astype(float)
    return out


def _components(nodes: pd.Index, edges: pd.DataFrame) -> np.ndarray:
    n = len(nodes)
    src, dst = nodes.get_indexer(edges["src"]), nodes.get_indexer(edges["dst"])
    graph = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def association_groups(edges: pd.DataFrame, nodes: Iterable[str] = (), *, max_size: int = MAX_GROUP_SIZE,
                       split_order: Sequence[str] = SPLIT_ORDER) -> pd.DataFrame:
    """§6.3 connected components (node, group_id, group_size); over-sized groups are split.

    A component with more than `max_size` enterprises loses its edges of type split_order[0] and is
    recomputed; parts still too big lose the next type too, and so on. group_id is the smallest
    member id, so it is stable while the group keeps its smallest member.
    """
    idx = pd.Index(sorted(set(nodes) | set(edges["src"]) | set(edges["dst"])), dtype=object)
    if len(idx) == 0:
        return pd.DataFrame({"node": pd.Series(dtype=object), "group_id": pd.Series(dtype=object),
                             "group_size": pd.Series(dtype=np.int64)})
    labels = _components(idx, edges)
    removed: set[str] = set()
    for edge_type in split_order:
        sizes = np.bincount(labels)
        big = sizes[labels] > max_size
        if not big.any():
            break
        removed.add(edge_type)
        src, dst = idx.get_indexer(edges["src"]), idx.get_indexer(edges["dst"])
        keep = (~edges["edge_type"].isin(removed).to_numpy() & big[src] & big[dst]
                & (labels[src] == labels[dst]))
        sub_nodes = idx[big]
        sub = _components(sub_nodes, edges[keep])
        labels[big] = sub + labels.max() + 1
    out = _label_frame(idx, labels)
    return out.rename(columns={"smallest": "group_id", "size": "group_size"})[["node", "group_id", "group_size"]]


def guarantee_circles(guarantees: pd.DataFrame) -> pd.DataFrame:
    """Guarantee circles (担保圈): strongly connected components of guarantor -> debtor, size >= 2.

    Columns uscc, circle_id (smallest member), circle_size; firms in no circle are absent.
    """
    g = guarantees[_is_enterprise_id(guarantees["debtor_id"]) & (guarantees["uscc"] != guarantees["debtor_id"])]
    idx = pd.Index(sorted(set(g["uscc"]) | set(g["debtor_id"])), dtype=object)
    if len(idx) == 0:
        return pd.DataFrame({"uscc": pd.Series(dtype=object), "circle_id": pd.Series(dtype=object),
                             "circle_size": pd.Series(dtype=np.int64)})
    graph = sp.csr_matrix((np.ones(len(g)), (idx.get_indexer(g["uscc"]), idx.get_indexer(g["debtor_id"]))),
                          shape=(len(idx), len(idx)))
    labels = connected_components(graph, directed=True, connection="strong")[1]
    out = _label_frame(idx, labels).rename(columns={"node": "uscc", "smallest": "circle_id",
                                                    "size": "circle_size"})
    return out.loc[out["circle_size"] >= 2, ["uscc", "circle_id", "circle_size"]].reset_index(drop=True)


# ----------------------------------------------------------------------------- §6.4 link strength

def direct_link_strengths(inputs: EquityInputs, own: Ownership, controllers: pd.DataFrame,
                          edges: pd.DataFrame | None = None) -> pd.DataFrame:
    """One-hop l_ij (src = i, dst = j: how exposed i is to j's distress), the strongest relation per pair.

    1.0 control (majority chain) or same (non-state) controller; 0.4 + 0.6 min(1, principal /
    max(owners_equity_i, 10)) if i guarantees j, 0.5 if j guarantees i; 0.6 shared legal
    representative; 0.5 integrated ownership >= 0.2 without majority control (the spec's 0.2-0.5 band,
    extended upwards so a >= 0.5 integrated stake reached without a majority chain is not dropped).
    """
    state = _state_ids(own)
    parts = []

    def both(df: pd.DataFrame, strength: float | pd.Series) -> None:
        d = df[["src", "dst"]].assign(strength=strength)
        parts.extend([d, d.rename(columns={"src": "dst", "dst": "src"})])

    control = majority_control_pairs(own)
    control = control[_enterprise_mask(control["controller_id"], state)]
    both(control.rename(columns={"controller_id": "src", "uscc": "dst"}), 1.0)
    both(_clique_pairs(_private_controllers(controllers), "actual_controller_id"), 1.0)
    both(_clique_pairs(inputs.firms[["uscc", "legal_rep_person_id"]], "legal_rep_person_id"), 0.6)
    if edges is None:
        edges = association_edges(inputs, own, controllers)
    both(edges[edges["edge_type"] == "a"], 0.5)

    g = inputs.guarantees
    g = g[_enterprise_mask(g["debtor_id"], state) & (g["debtor_id"] != g["uscc"])]
    g = g.groupby(["uscc", "debtor_id"], as_index=False)["principal_amount"].sum()
    oe = inputs.owners_equity.drop_duplicates("uscc").set_index("uscc")["owners_equity"]
    denom = np.maximum(g["uscc"].map(oe).fillna(0.0).to_numpy(float), 10.0)
    given = g.rename(columns={"uscc": "src", "debtor_id": "dst"})
    given["strength"] = 0.4 + 0.6 * np.minimum(1.0, given["principal_amount"].to_numpy(float) / denom)
    parts.append(given[["src", "dst", "strength"]])
    parts.append(given[["src", "dst"]].rename(columns={"src": "dst", "dst": "src"}).assign(strength=0.5))

    out = pd.concat(parts, ignore_index=True)
    out = out[out["src"] != out["dst"]]
    out["strength"] = out["strength"].astype(float)
    return out.groupby(["src", "dst"], as_index=False, sort=False)["strength"].max()


def link_strengths(direct: pd.DataFrame, targets: Iterable[str] | None = None) -> pd.DataFrame:
    """§6.4 l_ij within two hops: max of the direct strength and max_k 0.5 l_ik l_kj (src, dst, strength, hops).

    With `targets` only pairs whose dst is a target are returned (the distressed firms), which keeps
    the two-hop join small on dense graphs.
    """
    d = direct[direct["src"] != direct["dst"]][["src", "dst", "strength"]]
    right = d if targets is None else d[d["dst"].isin(set(targets))]
    two = d.merge(right, left_on="dst", right_on="src", suffixes=("", "_2"))
    two = two[two["src"] != two["dst_2"]]
    two = pd.DataFrame({"src": two["src"], "dst": two["dst_2"],
                        "strength": 0.5 * two["strength"] * two["strength_2"], "hops": 2})
    out = pd.concat([right.assign(hops=1), two], ignore_index=True)
    out = out.sort_values(["strength", "hops"], ascending=[False, True], kind="stable")
    return out.drop_duplicates(["src", "dst"]).reset_index(drop=True)


def _reach_within_two_hops(direct: pd.DataFrame) -> pd.Series:
    """Number of distinct enterprises within two hops of each node (self excluded)."""
    idx = pd.Index(sorted(set(direct["src"]) | set(direct["dst"])), dtype=object)
    if len(idx) == 0:
        return pd.Series(dtype=np.int64)
    m = sp.csr_matrix((np.ones(len(direct)), (idx.get_indexer(direct["src"]), idx.get_indexer(direct["dst"]))),
                      shape=(len(idx), len(idx)))
    r = (m + m @ m).tocoo()
    off = r.row != r.col
    return pd.Series(np.bincount(r.row[off], minlength=len(idx)).astype(np.int64), index=idx)


# ----------------------------------------------------------------------------- features per month

def distressed_firms(events: pd.DataFrame, as_of: pd.Timestamp, days: int) -> set[str]:
    """Firms with a serious credit event available in (as_of - days, as_of]."""
    if events.empty:
        return set()
    d = pd.to_datetime(events["event_date"])
    hit = (d > as_of - pd.Timedelta(days=days)) & (d <= as_of)
    return set(events.loc[hit.to_numpy(), "uscc"])


def month_equity_features(inputs: EquityInputs, events: pd.DataFrame, as_of: date | pd.Timestamp, *,
                          tol: float = 1e-6, max_iter: int = 10, max_group_size: int = MAX_GROUP_SIZE,
                          split_order: Sequence[str] = SPLIT_ORDER, with_edges: bool = True) -> EquityMonth:
    """All eq_ features for the registered firms of one month, plus the month's graph edges.

    Only events available by as_of count; the firm's own events never count as a related party's.
    `with_edges=False` skips assembling the snapshot edges (left empty) when nobody will write them.
    """
    ts = pd.Timestamp(as_of)
    firms = inputs.firms.drop_duplicates("uscc").reset_index(drop=True)
    own = integrated_ownership(inputs.shareholders, tol=tol, max_iter=max_iter)
    if not own.converged:
        log.warning("equity %s: ownership iteration stopped after %d iterations without converging",
                    ts.date(), own.iterations)
    ctrl = actual_controllers(own)
    edges = association_edges(inputs, own, ctrl)
    groups = association_groups(edges, firms["uscc"], max_size=max_group_size, split_order=split_order)
    circles = guarantee_circles(inputs.guarantees)
    direct = direct_link_strengths(inputs, own, ctrl, edges)
    d90 = distressed_firms(events, ts, WINDOW_SHORT_DAYS)
    d365 = distressed_firms(events, ts, WINDOW_LONG_DAYS) | d90
    links = link_strengths(direct, targets=d365)

    f = pd.DataFrame({"uscc": firms["uscc"].to_numpy()})
    key = f["uscc"]

    # ownership and controller
    c = ctrl.reindex(key)
    f["eq_actual_controller_id"] = c["actual_controller_id"].to_numpy()
    f["eq_controller_type"] = c["controller_type"].to_numpy()
    f["eq_has_identified_controller"] = c["actual_controller_id"].notna().to_numpy()
    f["eq_controller_is_person"] = (c["controller_type"] == "natural_person").to_numpy()
    f["eq_controller_is_state"] = (c["controller_type"] == STATE_TYPE).to_numpy()
    f["eq_controller_via_majority_chain"] = c["controller_via_majority_chain"].eq(True).to_numpy()
    f["eq_controller_ultimate_share"] = c["controller_ultimate_share"].to_numpy(float)
    f["eq_controller_chain_length"] = c["controller_chain_length"].fillna(0).astype(np.int64).to_numpy()
    f["eq_n_terminal_holders"] = c["n_terminal_holders"].fillna(0).astype(np.int64).to_numpy()
    f["eq_max_ultimate_share"] = c["max_ultimate_share"].fillna(0.0).to_numpy(float)
    f["eq_opaque_ultimate_share"] = c["opaque_ultimate_share"].fillna(0.0).to_numpy(float)
    f["eq_no_shareholder_records"] = ~key.isin(own.enterprises).to_numpy()
    n_ctrl = ctrl.groupby("actual_controller_id").size()
    f["eq_controller_n_firms"] = (f["eq_actual_controller_id"].map(n_ctrl).fillna(0).astype(np.int64))
    rep = firms[["uscc", "legal_rep_person_id"]].dropna()
    n_rep = rep.groupby("legal_rep_person_id").size()
    f["eq_legal_rep_n_firms"] = key.map(rep.set_index("uscc")["legal_rep_person_id"].map(n_rep)).fillna(0) \
        .astype(np.int64)

    # association group
    gr = groups.set_index("node")
    f["eq_group_id"] = key.map(gr["group_id"]).astype(object)
    f["eq_group_size"] = key.map(gr["group_size"]).fillna(1).astype(np.int64)
    for days, dset in ((WINDOW_SHORT_DAYS, d90), (WINDOW_LONG_DAYS, d365)):
        flag = groups["node"].isin(dset)
        per_group = flag.groupby(groups["group_id"]).sum()
        own_flag = key.isin(dset).astype(np.int64)
        f[f"eq_group_defaults_{days}d"] = (f["eq_group_id"].map(per_group).fillna(0).astype(np.int64)
                                           - own_flag).clip(lower=0)
    circ = circles.set_index("uscc")
    f["eq_in_guarantee_circle"] = key.isin(circ.index).to_numpy()
    f["eq_guarantee_circle_size"] = key.map(circ["circle_size"]).fillna(0).astype(np.int64)

    # related-party contagion (§6.4 / E3.1 with observed events)
    reach = _reach_within_two_hops(direct)
    f["eq_n_linked_firms"] = key.map(reach).fillna(0).astype(np.int64)
    pen = pd.Series(PEN_LONG, index=sorted(d365), dtype=float)
    pen[pen.index.isin(d90)] = PEN_SHORT
    lk = links.assign(pen=links["dst"].map(pen).fillna(0.0))
    lk = lk[lk["src"] != lk["dst"]]
    l90 = lk[lk["dst"].isin(d90)].groupby("src")["strength"].max()
    l365 = lk.groupby("src")["strength"].max()
    f["eq_max_link_to_distressed_90d"] = key.map(l90).fillna(0.0).to_numpy(float)
    f["eq_max_link_to_distressed_365d"] = key.map(l365).fillna(0.0).to_numpy(float)
    f["eq_n_linked_distressed_365d"] = key.map(lk.groupby("src").size()).fillna(0).astype(np.int64)
    worst = (lk["strength"] * lk["pen"]).groupby(lk["src"]).max()
    f["eq_related_party_risk_score"] = (100.0 - key.map(worst).fillna(0.0)).clip(0.0, 100.0).to_numpy(float)

    # guarantee burden
    g = inputs.guarantees
    given = g.groupby("uscc")["principal_amount"].agg(["sum", "size"])
    f["eq_outstanding_guarantees_given_amount"] = key.map(given["sum"]).fillna(0.0).to_numpy(float)
    f["eq_n_guarantees_given"] = key.map(given["size"]).fillna(0).astype(np.int64)
    f["eq_guarantees_received_amount"] = key.map(g.groupby("debtor_id")["principal_amount"].sum()) \
        .fillna(0.0).to_numpy(float)
    oe = inputs.owners_equity.drop_duplicates("uscc").set_index("uscc")["owners_equity"]
    f["eq_guarantee_exposure_ratio"] = (f["eq_outstanding_guarantees_given_amount"]
                                        / np.maximum(key.map(oe).fillna(0.0).to_numpy(float), 10.0))
    dist_amt = g[g["debtor_id"].isin(d365) & (g["debtor_id"] != g["uscc"])].groupby("uscc")["principal_amount"].sum()
    f["eq_guaranteed_debtor_distressed_amount"] = key.map(dist_amt).fillna(0.0).to_numpy(float)
    pairs = set(zip(g["uscc"], g["debtor_id"], strict=True))
    mutual = {a for a, b in pairs if a != b and (b, a) in pairs}
    f["eq_mutual_guarantee"] = key.isin(mutual).to_numpy()

    # equity encumbrance
    cap = firms.set_index("uscc")["registered_capital"].astype(float)
    cap_k = key.map(cap).to_numpy(float)
    p = inputs.pledges
    pledged = p.groupby("uscc")["pledged_equity_amount"].sum()
    f["eq_valid_pledged_amount"] = key.map(pledged).fillna(0.0).to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        f["eq_valid_pledged_share"] = np.where(cap_k > 0, f["eq_valid_pledged_amount"] / cap_k, np.nan)
    f["eq_pledged_to_natural_person"] = key.isin(set(p.loc[p["pledgee_type"] == "natural_person", "uscc"])).to_numpy()
    holders_of = majority_control_pairs(own)[["controller_id", "uscc"]]
    holders_of = pd.concat([holders_of, ctrl["actual_controller_id"].dropna().rename("controller_id")
                            .rename_axis("uscc").reset_index()], ignore_index=True)
    ctl_pledge = p.merge(holders_of, left_on=["uscc", "pledgor_id"], right_on=["uscc", "controller_id"])
    f["eq_controller_equity_pledged"] = key.isin(set(ctl_pledge["uscc"])).to_numpy()
    fr = inputs.freezes
    frozen = fr.groupby("uscc")["frozen_equity_amount"].sum()
    f["eq_frozen_equity_amount"] = key.map(frozen).fillna(0.0).to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        f["eq_frozen_equity_share"] = np.where(cap_k > 0, f["eq_frozen_equity_amount"] / cap_k, np.nan)
    frozen_holders = set(fr["holder_id"].dropna())
    f["eq_own_stakes_frozen"] = key.isin(frozen_holders).to_numpy()
    f["eq_controller_stakes_frozen"] = f["eq_actual_controller_id"].isin(frozen_holders).to_numpy()

    for name in ("eq_actual_controller_id", "eq_controller_type", "eq_group_id"):
        f[name] = f[name].astype(object).where(f[name].notna(), None)
    f = f[["uscc", *FEATURE_NAMES]]
    snapshot = _snapshot_edges(own, edges, direct) if with_edges else pd.DataFrame(
        columns=["src", "dst", "edge_type", "weight"])
    return EquityMonth(features=f, edges=snapshot)


def _snapshot_edges(own: Ownership, edges: pd.DataFrame, direct: pd.DataFrame) -> pd.DataFrame:
    """The month's graph: raw holdings, association edges a-e and direct link strengths."""
    holding = own.holdings.rename(columns={"shareholder_id": "src", "uscc": "dst", "share_ratio": "weight"})
    out = pd.concat([holding[["src", "dst"]].assign(edge_type="holding", weight=holding["weight"]),
                     edges, direct.rename(columns={"strength": "weight"}).assign(edge_type="link")],
                    ignore_index=True)
    out = out[["src", "dst", "edge_type", "weight"]].astype({"src": str, "dst": str, "edge_type": str,
                                                             "weight": float})
    return out.sort_values(["edge_type", "src", "dst"], ignore_index=True)


# ----------------------------------------------------------------------------- loading and build

def _present(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("select table_name from information_schema.tables").fetchall()
    return {r[0] for r in rows}


LOAD_SQL: dict[str, tuple[str, str]] = {
    # kind -> (sub-item, query over its known_at() rows `k`); each returns as_of plus _COLUMNS[kind]
    "firms": ("ent_registration", """select as_of, uscc, legal_rep_person_id, registered_capital from k
        where ent_status not in ('deregistered', 'moved_out')"""),
    "shareholders": ("shareholders", """select as_of, uscc, shareholder_id, shareholder_type, share_ratio from k
        where (valid_to is null or valid_to > as_of) and (valid_from is null or valid_from <= as_of)
        qualify row_number() over (partition by as_of, uscc, shareholder_id
                                   order by valid_from desc nulls last, _known_from desc) = 1"""),
    "personnel": ("key_personnel", """select distinct as_of, uscc, person_id from k
        where (valid_to is null or valid_to > as_of) and (valid_from is null or valid_from <= as_of)
          and position is distinct from 'supervisor'"""),
    "guarantees": ("external_guarantees", """select as_of, uscc, debtor_id, principal_amount from k
        where (debt_end_date is null or debt_end_date > as_of) and principal_amount > 0
        qualify row_number() over (partition by as_of, uscc, debtor_id, debt_start_date
                                   order by report_year desc, _known_from desc) = 1"""),
    "pledges": ("equity_pledges", """select as_of, uscc, pledgor_id, pledgee_id, pledgee_type,
               pledged_equity_amount from k
        where status = 'valid' and (cancel_date is null or cancel_date > as_of)"""),
    "freezes": ("judicial_freezes", """select as_of, uscc, holder_id, frozen_equity_amount from k
        where status in ('frozen', 'renewed')"""),
    "owners_equity": ("annual_report", """select as_of, uscc, owners_equity from k
        where owners_equity is not null
        qualify row_number() over (partition by as_of, uscc order by report_year desc, _known_from desc) = 1"""),
}


def load_equity_inputs(con: duckdb.DuckDBPyConnection,
                       months: Sequence[date]) -> dict[pd.Timestamp, EquityInputs]:
    """Every month's §6 inputs with one set-based `known_at` query per sub-item, split by as_of.

    A sub-item missing from the warehouse contributes no rows (a world without court data has no
    freezes), never an error.
    """
    register_months(con, months)
    have = _present(con)
    frames: dict[str, dict[pd.Timestamp, pd.DataFrame]] = {}
    for kind, (code, sql) in LOAD_SQL.items():
        if f"{code}_scd" not in have:
            frames[kind] = {}
            continue
        df = con.execute(f"with k as ({known_at(code)}) {sql}").df()
        df["as_of"] = pd.to_datetime(df["as_of"])
        frames[kind] = {pd.Timestamp(k): g.drop(columns="as_of").reset_index(drop=True)
                        for k, g in df.groupby("as_of", sort=False)}
    out = {}
    for m in months:
        ts = pd.Timestamp(m)
        parts = {kind: frames[kind].get(ts, _empty(kind)) for kind in LOAD_SQL}
        out[ts] = EquityInputs(**parts)
    return out


def build_equity_mart(con: duckdb.DuckDBPyConnection, months: Sequence[date], events: pd.DataFrame,
                      snapshot_dir: Path | None, *, tol: float = 1e-6, max_iter: int = 10,
                      max_group_size: int = MAX_GROUP_SIZE) -> pd.DataFrame:
    """The equity mart: one row per registered (uscc, as_of), then every eq_ feature.

    `events` are serious credit events (uscc, event_date availability). With `snapshot_dir`, each
    month's graph is written to `as_of=YYYY-MM-DD/edges.parquet` and listed in `manifest.json`.
    """
    grid = registered_grid(con, months)
    inputs = load_equity_inputs(con, months)
    ev = events[["uscc", "event_date"]].copy() if len(events) else pd.DataFrame(
        {"uscc": pd.Series(dtype=object), "event_date": pd.Series(dtype="datetime64[ns]")})
    ev["event_date"] = pd.to_datetime(ev["event_date"]).dt.normalize()
    parts, snapshots = [], {}
    for ts in sorted(inputs):
        month = month_equity_features(inputs[ts], ev, ts, tol=tol, max_iter=max_iter,
                                      max_group_size=max_group_size, with_edges=snapshot_dir is not None)
        parts.append(month.features.assign(as_of=ts))
        snapshots[ts] = month.edges
    feats = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["uscc", "as_of",
                                                                                    *FEATURE_NAMES])
    feats["as_of"] = feats["as_of"].astype(grid["as_of"].dtype)
    out = grid.merge(feats, on=["uscc", "as_of"], how="left", validate="one_to_one")
    out = _fill_defaults(out)
    if snapshot_dir is not None:
        write_graph_snapshots(snapshot_dir, snapshots)
    return out[["uscc", "as_of", *FEATURE_NAMES]]


def _fill_defaults(df: pd.DataFrame) -> pd.DataFrame:
    """Typed columns (a grid row missing from the features, which should not happen, gets neutral values)."""
    for feat in EQUITY_FEATURES:
        col = df[feat.name]
        if feat.dtype == "int":
            df[feat.name] = col.fillna(0).astype(np.int64)
        elif feat.dtype == "bool":
            df[feat.name] = col.fillna(False).astype(bool)
        elif feat.dtype == "float":
            fill = 100.0 if feat.name == "eq_related_party_risk_score" else None
            df[feat.name] = (col.fillna(fill) if fill is not None else col).astype(float)
        else:
            df[feat.name] = col.astype(object).where(col.notna(), None)
    return df


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_graph_snapshots(snapshot_dir: Path, snapshots: Mapping[pd.Timestamp, pd.DataFrame]) -> Path:
    """Write each month's edges (src, dst, edge_type, weight) and update `manifest.json` (atomically).

    Every file is written under a temporary name and renamed, so a reader never sees half a snapshot;
    the manifest keeps entries of months not rewritten now, and records each file's sha256 and edge
    counts per type so a later run can prove it used the same graph.
    """
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    snapshot_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = snapshot_dir / "manifest.json"
    entries: dict[str, dict[str, object]] = {}
    if manifest_path.exists():
        entries = {e["as_of"]: e for e in json.loads(manifest_path.read_text())["snapshots"]}
    for ts, edges in sorted(snapshots.items()):
        day = pd.Timestamp(ts).date().isoformat()
        folder = snapshot_dir / f"as_of={day}"
        folder.mkdir(exist_ok=True)
        table = pa.Table.from_pandas(edges[["src", "dst", "edge_type", "weight"]].reset_index(drop=True),
                                     preserve_index=False)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        data = buf.getvalue()
        _atomic_write_bytes(folder / "edges.parquet", data)
        entries[day] = {"as_of": day, "path": f"as_of={day}/edges.parquet",
                        "sha256": hashlib.sha256(data).hexdigest(), "n_edges": len(edges),
                        "edge_counts": {str(k): int(v) for k, v in
                                        edges["edge_type"].value_counts().sort_index().items()}}
    manifest = {"schema": ["src", "dst", "edge_type", "weight"],
                "snapshots": [entries[k] for k in sorted(entries)]}
    _atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
    return manifest_path


# ----------------------------------------------------------------------------- declarations

def _f(name: str, dtype: MartDtype, en: str, zh: str, direction: MartRiskDirection = "none",
       group: str = "other") -> MartFeature:
    return MartFeature(PREFIX + name, dtype, en, zh, direction, group)


EQUITY_FEATURES: tuple[MartFeature, ...] = (
    # ownership and actual controller (§6.1-6.2)
    _f("actual_controller_id", "string",
       "Actual controller: terminal holder reached by a majority chain (>= 50% at every level), else the "
       "unique largest ultimate owner with >= 25%; empty if none", "实际控制人标识(多数控股链或最大且>=25%的最终受益人)",
       "none", "ownership_opacity"),
    _f("controller_type", "string", "Shareholder type of the actual controller (empty if none)",
       "实际控制人类型", "none", "ownership_opacity"),
    _f("has_identified_controller", "bool", "An actual controller is identified",
       "可识别实际控制人", "-", "ownership_opacity"),
    _f("controller_is_person", "bool", "The actual controller is a natural person",
       "实际控制人为自然人", "none", "ownership_opacity"),
    _f("controller_is_state", "bool", "The actual controller is a government / SOE agency",
       "实际控制人为国资/政府机构", "-", "ownership_opacity"),
    _f("controller_via_majority_chain", "bool",
       "The controller holds a majority at every level of the chain (not only the 25% beneficial-owner rule)",
       "实际控制人通过逐层多数控股链认定", "none", "ownership_opacity"),
    _f("controller_ultimate_share", "float", "Integrated (ultimate) share of the actual controller; empty if none",
       "实际控制人最终持股比例", "none", "ownership_opacity"),
    _f("controller_chain_length", "int",
       "Ownership links between the actual controller and the firm (0 = no controller)",
       "实际控制人控制链层级数", "+", "ownership_opacity"),
    _f("n_terminal_holders", "int", "Number of terminal holders with a positive ultimate share",
       "最终持有人数量", "none", "ownership_opacity"),
    _f("max_ultimate_share", "float", "Largest ultimate share of any terminal holder (ownership concentration)",
       "最大最终持股比例", "none", "ownership_opacity"),
    _f("opaque_ultimate_share", "float",
       "Ultimate share ending at holders that cannot be penetrated (off-platform enterprises, funds, "
       "foreign entities)", "无法穿透的最终持股比例(平台外企业、基金、境外主体)", "+", "ownership_opacity"),
    _f("no_shareholder_records", "bool", "The platform holds no active shareholder rows for the firm",
       "无有效股东登记记录", "+", "ownership_opacity"),
    _f("controller_n_firms", "int", "Number of enterprises on the platform with the same actual controller",
       "同一实际控制人控制的企业数", "none", "ownership_opacity"),
    _f("legal_rep_n_firms", "int",
       "Number of registered firms sharing this firm's legal representative (nominee legal reps)",
       "同一法定代表人担任法代的企业数", "+", "ownership_opacity"),
    # association groups (§6.3)
    _f("group_id", "string", "Association group (smallest member USCC) after splitting groups over 50 firms",
       "关联企业群标识", "none", "related_party_default"),
    _f("group_size", "int", "Number of enterprises in the association group (1 = unrelated)",
       "关联企业群规模", "none", "related_party_default"),
    _f("group_defaults_90d", "int",
       "Other group members with a serious credit event available in the last 90 days",
       "关联企业群内近90天发生严重信用事件的其他企业数", "+", "related_party_default"),
    _f("group_defaults_365d", "int",
       "Other group members with a serious credit event available in the last 365 days",
       "关联企业群内近365天发生严重信用事件的其他企业数", "+", "related_party_default"),
    _f("in_guarantee_circle", "bool", "The firm is in a guarantee circle (cycle of outstanding guarantees)",
       "处于担保圈中", "+", "guarantee_burden"),
    _f("guarantee_circle_size", "int", "Number of enterprises in the firm's guarantee circle (0 = none)",
       "所在担保圈企业数", "+", "guarantee_burden"),
    # related-party contagion (§6.4, E3.1)
    _f("n_linked_firms", "int", "Enterprises within two hops of the link-strength graph",
       "两跳内关联企业数", "none", "related_party_default"),
    _f("max_link_to_distressed_90d", "float",
       "Strongest link l_ij to a related firm with a serious credit event in the last 90 days (0 = none)",
       "与近90天发生严重信用事件关联方的最大关联强度", "+", "related_party_default"),
    _f("max_link_to_distressed_365d", "float",
       "Strongest link l_ij to a related firm with a serious credit event in the last 365 days (0 = none)",
       "与近365天发生严重信用事件关联方的最大关联强度", "+", "related_party_default"),
    _f("n_linked_distressed_365d", "int",
       "Related firms within two hops with a serious credit event in the last 365 days",
       "两跳内近365天发生严重信用事件的关联企业数", "+", "related_party_default"),
    _f("related_party_risk_score", "float",
       "E3.1-style score 100 - max_j l_ij pen_j, pen 100 for an event in the last 90 days, 50 within 365 days "
       "(higher = safer)", "关联方风险得分(100 - 最大关联强度×惩罚, 越高越好)", "-", "related_party_default"),
    # guarantee burden
    _f("outstanding_guarantees_given_amount", "float",
       "Principal of outstanding guarantees the firm has given (CNY 10k)", "对外担保未到期本金(万元)", "+",
       "guarantee_burden"),
    _f("n_guarantees_given", "int", "Number of outstanding guarantees given", "未到期对外担保笔数", "+",
       "guarantee_burden"),
    _f("guarantees_received_amount", "float",
       "Principal of outstanding guarantees other platform firms gave for this firm's debt (CNY 10k)",
       "获得平台企业担保的未到期本金(万元)", "none", "guarantee_burden"),
    _f("guarantee_exposure_ratio", "float",
       "Outstanding guarantees given / max(latest owners' equity, 10) (C3.2 raw value)",
       "对外担保敞口率(担保本金/净资产)", "+", "guarantee_burden"),
    _f("guaranteed_debtor_distressed_amount", "float",
       "Principal guaranteed for debtors with a serious credit event in the last 365 days (CNY 10k)",
       "被担保方近365天发生严重信用事件的担保本金(万元)", "+", "guarantee_burden"),
    _f("mutual_guarantee", "bool", "A debtor the firm guarantees also guarantees the firm (互保)",
       "存在互保", "+", "guarantee_burden"),
    # equity encumbrance
    _f("valid_pledged_amount", "float", "Valid equity pledges on the firm's equity (CNY 10k)",
       "有效股权出质数额(万元)", "+", "equity_encumbrance"),
    _f("valid_pledged_share", "float", "Valid pledged equity / registered capital (A2.1 raw value)",
       "股权出质比例", "+", "equity_encumbrance"),
    _f("pledged_to_natural_person", "bool", "A valid pledge of the firm's equity has a natural-person pledgee",
       "股权出质给自然人", "+", "equity_encumbrance"),
    _f("controller_equity_pledged", "bool",
       "The actual controller or a majority holder on the control chain has pledged its stake in the firm",
       "实际控制人或控股股东股权已出质", "+", "equity_encumbrance"),
    _f("frozen_equity_amount", "float", "Actively frozen equity of the firm (CNY 10k)",
       "被冻结股权数额(万元)", "+", "equity_encumbrance"),
    _f("frozen_equity_share", "float", "Actively frozen equity / registered capital (E1.4 raw value)",
       "股权冻结比例", "+", "equity_encumbrance"),
    _f("own_stakes_frozen", "bool", "Equity the firm holds in other companies is actively frozen",
       "本企业对外持股被冻结", "+", "equity_encumbrance"),
    _f("controller_stakes_frozen", "bool", "Equity held by the actual controller is actively frozen somewhere",
       "实际控制人持有的股权被冻结", "+", "equity_encumbrance"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in EQUITY_FEATURES)
