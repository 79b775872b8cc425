"""Equity penetration and association (indicators.md §6) on hand-built graphs with known answers."""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.marts.equity import (
    EQUITY_FEATURES,
    FEATURE_NAMES,
    EquityInputs,
    actual_controllers,
    association_edges,
    association_groups,
    build_equity_mart,
    direct_link_strengths,
    guarantee_circles,
    integrated_ownership,
    link_strengths,
    month_equity_features,
    ultimate_shares,
    write_graph_snapshots,
)


def ent(name: str) -> str:
    """An 18-character enterprise id (USCC-shaped) from a short name."""
    return ("9133" + name).ljust(18, "0")[:18]


def holdings(*rows: tuple[str, str, float]) -> pd.DataFrame:
    """(uscc, holder, share) rows; the holder type follows the id (P_ person, F_ foreign, else enterprise)."""
    df = pd.DataFrame(rows, columns=["uscc", "shareholder_id", "share_ratio"])
    df["shareholder_type"] = np.where(df["shareholder_id"].str.startswith("P_"), "natural_person",
                                      np.where(df["shareholder_id"].str.startswith("F_"), "foreign_entity",
                                               "enterprise"))
    return df[["uscc", "shareholder_id", "shareholder_type", "share_ratio"]]


def u_of(own, holder: str, firm: str) -> float:
    u = ultimate_shares(own)
    hit = u[(u["holder_id"] == holder) & (u["uscc"] == firm)]
    return float(hit["ultimate_share"].iloc[0]) if len(hit) else 0.0


def closed_form(own) -> np.ndarray:
    a, b = own.direct.toarray(), own.ultimate.toarray() * 0
    h = own.holdings
    for _, r in h[h["shareholder_id"].isin(own.terminals)].iterrows():
        b[own.terminals.get_loc(r["shareholder_id"]), own.enterprises.get_loc(r["uscc"])] = r["share_ratio"]
    return b @ np.linalg.inv(np.eye(len(own.enterprises)) - a)


X, Y, Z = ent("X"), ent("Y"), ent("Z")
A, B, C = ent("A"), ent("B"), ent("C")


# ----------------------------------------------------------------------------- §6.1

def test_three_level_chain_multiplies_shares():
    own = integrated_ownership(holdings((X, "P_1", 0.8), (X, "P_2", 0.2), (Y, X, 0.6), (Y, "P_3", 0.4),
                                        (Z, Y, 0.7), (Z, "P_4", 0.3)))
    assert own.converged
    assert u_of(own, "P_1", Z) == pytest.approx(0.8 * 0.6 * 0.7, abs=1e-12)
    assert u_of(own, "P_2", Z) == pytest.approx(0.2 * 0.6 * 0.7, abs=1e-12)
    assert u_of(own, "P_3", Z) == pytest.approx(0.4 * 0.7, abs=1e-12)
    assert u_of(own, "P_4", Z) == pytest.approx(0.3, abs=1e-12)
    u = ultimate_shares(own).set_index(["holder_id", "uscc"])
    assert u.loc[("P_1", Z), "hops"] == 3 and u.loc[("P_4", Z), "hops"] == 1 and u.loc[("P_3", Z), "hops"] == 2
    assert list(own.terminals) == ["P_1", "P_2", "P_3", "P_4"]  # X, Y penetrated, never terminal
    c = actual_controllers(own).loc[Z]
    assert c["actual_controller_id"] == "P_1" and c["controller_chain_length"] == 3
    assert c["controller_via_majority_chain"] and c["controller_ultimate_share"] == pytest.approx(0.336)
    assert c["n_terminal_holders"] == 4 and c["opaque_ultimate_share"] == 0.0


def test_cross_holdings_match_closed_form():
    """A holds 30% of B, B holds 20% of A: U = B (I - A)^-1, e.g. U[P_1, A] = 0.8 / (1 - 0.06)."""
    sh = holdings((B, A, 0.3), (A, B, 0.2), (A, "P_1", 0.8), (B, "P_2", 0.7))
    exact = integrated_ownership(sh, tol=1e-12, max_iter=100)
    assert exact.converged
    np.testing.assert_allclose(exact.ultimate.toarray(), closed_form(exact), atol=1e-9)
    assert u_of(exact, "P_1", A) == pytest.approx(0.8 / 0.94, abs=1e-9)
    assert u_of(exact, "P_1", B) == pytest.approx(0.8 * 0.3 / 0.94, abs=1e-9)
    assert u_of(exact, "P_2", A) == pytest.approx(0.7 * 0.2 / 0.94, abs=1e-9)
    # the spec's defaults (1e-6 or 10 iterations) land within 1e-6 of the answer
    capped = integrated_ownership(sh)
    assert capped.iterations <= 10
    np.testing.assert_allclose(capped.ultimate.toarray(), closed_form(capped), atol=1e-6)
    # a 3-cycle of 60% links needs ~27 iterations: the cap stops early and says so
    slow = integrated_ownership(holdings((A, C, 0.6), (B, A, 0.6), (C, B, 0.6), (A, "P_1", 0.4)))
    assert slow.iterations == 10 and not slow.converged
    # integrated enterprise-in-enterprise share V = A (I - A)^-1 (the cycle's self-ownership dropped)
    v = exact.integrated.toarray()
    assert v[exact.enterprises.get_loc(A), exact.enterprises.get_loc(B)] == pytest.approx(0.3 / 0.94)


def test_ownership_cycle_without_majority_chain_falls_back_to_largest_owner():
    """C 60% of A, A 60% of B, B 60% of C, a person 40% of each: the majority chain loops, no terminal."""
    sh = holdings((A, C, 0.6), (B, A, 0.6), (C, B, 0.6), (A, "P_1", 0.4), (B, "P_2", 0.4), (C, "P_3", 0.4))
    own = integrated_ownership(sh, tol=1e-12, max_iter=200)
    assert own.converged
    np.testing.assert_allclose(own.ultimate.toarray(), closed_form(own), atol=1e-9)
    assert u_of(own, "P_1", A) == pytest.approx(0.4 / (1 - 0.216), abs=1e-9)
    assert u_of(own, "P_3", A) == pytest.approx(0.4 * 0.6 / (1 - 0.216), abs=1e-9)
    c = actual_controllers(own)
    assert list(c["actual_controller_id"]) == ["P_1", "P_2", "P_3"]
    assert not c["controller_via_majority_chain"].any() and (c["controller_chain_length"] == 1).all()
    assert c.loc[A, "controller_ultimate_share"] == pytest.approx(0.510204, abs=1e-6)


def test_full_cross_holding_terminates_without_controller():
    """A owns 100% of B and B 100% of A: no terminal holder at all, the iteration cap stops the loop."""
    own = integrated_ownership(holdings((A, B, 1.0), (B, A, 1.0)))
    assert own.ultimate.nnz == 0 and len(own.terminals) == 0
    c = actual_controllers(own)
    assert c["actual_controller_id"].isna().all() and (c["n_terminal_holders"] == 0).all()


def test_dirty_share_sums_are_scaled_to_one_and_opaque_holders_are_terminal():
    own = integrated_ownership(holdings((A, "P_1", 0.9), (A, "P_2", 0.6), (A, A, 0.1), (B, X, 0.7),
                                        (B, "F_1", 0.3)))
    assert u_of(own, "P_1", A) == pytest.approx(0.6) and u_of(own, "P_2", A) == pytest.approx(0.4)
    c = actual_controllers(own)
    assert c.loc[B, "actual_controller_id"] == X and c.loc[B, "controller_type"] == "enterprise"
    assert c.loc[B, "opaque_ultimate_share"] == pytest.approx(1.0)  # off-platform firm + foreign entity


# ----------------------------------------------------------------------------- §6.2

def test_controller_rules_majority_chain_beneficial_owner_and_none():
    H, M, Q, R, S, T, W = (ent(k) for k in "HMQRSTW")
    sh = holdings(
        (M, "P_1", 0.6), (M, "P_2", 0.4),                                    # majority
        (Q, "P_1", 0.3), (Q, "P_2", 0.3), (Q, "P_3", 0.4),                   # 40% beneficial owner
        *[(R, f"P_{k}", 0.2) for k in range(1, 6)],                          # dispersed: none
        (S, "P_1", 0.5), (S, "P_2", 0.5),                                    # 50/50: none
        (T, "P_1", 0.4), (T, "P_2", 0.4), (T, "P_3", 0.2),                   # tie at the top: none
        (W, H, 0.55), (W, "P_7", 0.45), (H, "P_5", 0.51), (H, "P_6", 0.49),  # chain beats larger U
    )
    c = actual_controllers(integrated_ownership(sh))
    assert c.loc[M, "actual_controller_id"] == "P_1" and c.loc[M, "controller_via_majority_chain"]
    assert c.loc[Q, "actual_controller_id"] == "P_3" and not c.loc[Q, "controller_via_majority_chain"]
    assert c.loc[Q, "controller_ultimate_share"] == pytest.approx(0.4) and c.loc[Q, "controller_chain_length"] == 1
    for firm in (R, S, T):
        assert c.loc[firm, "actual_controller_id"] is None
        assert c.loc[firm, "controller_chain_length"] == 0 and np.isnan(c.loc[firm, "controller_ultimate_share"])
    assert c.loc[R, "n_terminal_holders"] == 5 and c.loc[R, "max_ultimate_share"] == pytest.approx(0.2)
    assert c.loc[W, "actual_controller_id"] == "P_5" and c.loc[W, "controller_chain_length"] == 2
    assert c.loc[W, "controller_ultimate_share"] == pytest.approx(0.55 * 0.51)
    assert c.loc[W, "max_ultimate_share"] == pytest.approx(0.45)


# ----------------------------------------------------------------------------- §6.3

def edges_frame(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame([(s, d, t, 1.0) for s, d, t in rows], columns=["src", "dst", "edge_type", "weight"])


def test_association_groups_connected_components():
    E1, E2, E3, E4 = (ent(f"E{k}") for k in range(1, 5))
    g = association_groups(edges_frame((E1, E2, "a"), (E3, E2, "d")), [E1, E2, E3, E4]).set_index("node")
    assert g.loc[[E1, E2, E3], "group_id"].tolist() == [E1] * 3
    assert g.loc[[E1, E2, E3, E4], "group_size"].tolist() == [3, 3, 3, 1]


def chain(names: list[str], edge_type: str = "a") -> list[tuple[str, str, str]]:
    return [(x, y, edge_type) for x, y in itertools.pairwise(names)]


def test_oversized_group_is_split_dropping_shared_person_edges_first():
    left = [ent(f"L{k:02d}") for k in range(30)]
    right = [ent(f"R{k:02d}") for k in range(30)]
    bridge_c = [(left[0], right[0], "c")]
    g = association_groups(edges_frame(*chain(left), *chain(right), *bridge_c)).set_index("node")
    assert g["group_size"].eq(30).all() and g["group_id"].nunique() == 2
    # still too big without (c): (e) goes next, and the (a)/(b) core is never cut
    g = association_groups(edges_frame(*chain(left), *chain(right), *bridge_c,
                                       (left[5], right[5], "e"))).set_index("node")
    assert g["group_size"].eq(30).all()
    g = association_groups(edges_frame(*chain(left), *chain(right), (left[0], right[0], "b")))
    assert g["group_size"].eq(60).all()
    # (c) goes before (e): dropping the (c) bridge is enough, so the (e)-attached tail stays with `left`
    tail = [ent(f"T{k}") for k in range(5)]
    g = association_groups(edges_frame(*chain(left), *chain(right), *chain(tail), *bridge_c,
                                       (left[3], tail[0], "e"))).set_index("node")
    assert g.loc[left[0], "group_size"] == 35 and g.loc[tail[4], "group_id"] == g.loc[left[0], "group_id"]
    assert g.loc[right[0], "group_size"] == 30
    # a small group keeps its (c) edges
    g = association_groups(edges_frame(*chain(left[:10]), (left[0], right[0], "c")))
    assert g["group_size"].eq(11).all()


def test_guarantee_circle_is_a_strongly_connected_component():
    G = [ent(f"G{k}") for k in range(7)]
    gu = pd.DataFrame({"uscc": [G[1], G[2], G[3], G[3], G[5], G[6], G[0]],
                       "debtor_id": [G[2], G[3], G[1], G[4], G[6], G[5], "P_9"],
                       "principal_amount": 100.0})
    c = guarantee_circles(gu).set_index("uscc")
    assert sorted(c.index) == sorted([G[1], G[2], G[3], G[5], G[6]])
    assert c.loc[G[1], "circle_size"] == 3 and c.loc[G[3], "circle_id"] == G[1]
    assert c.loc[G[6], "circle_size"] == 2 and c.loc[G[6], "circle_id"] == G[5]


# ----------------------------------------------------------------------------- §6.4 and features

def firms_frame(reps: dict[str, str], capital: float = 100.0) -> pd.DataFrame:
    return pd.DataFrame({"uscc": list(reps), "legal_rep_person_id": list(reps.values()),
                         "registered_capital": capital})


def test_link_strengths_direct_and_two_hop():
    FI, J, K, L = (ent(k) for k in "IJKL")
    inputs = EquityInputs(
        firms=firms_frame({FI: "P_a", J: "P_b", K: "P_a", L: "P_c"}),
        shareholders=holdings((L, K, 0.6), (L, "P_d", 0.4), (K, "P_e", 1.0), (J, "P_f", 1.0),
                              (FI, "P_g", 1.0)),
        guarantees=pd.DataFrame({"uscc": [FI], "debtor_id": [J], "principal_amount": [50.0]}),
        owners_equity=pd.DataFrame({"uscc": [FI], "owners_equity": [100.0]}),
    )
    own = integrated_ownership(inputs.shareholders)
    direct = direct_link_strengths(inputs, own, actual_controllers(own)).set_index(["src", "dst"])["strength"]
    assert direct[(FI, J)] == pytest.approx(0.4 + 0.6 * 0.5)  # FI guarantees J: 50 / max(100, 10)
    assert direct[(J, FI)] == pytest.approx(0.5)              # J is guaranteed by FI
    assert direct[(FI, K)] == direct[(K, FI)] == pytest.approx(0.6)  # shared legal representative
    assert direct[(K, L)] == direct[(L, K)] == pytest.approx(1.0)  # K controls L (60%)
    both = link_strengths(direct.reset_index()).set_index(["src", "dst"])
    assert both.loc[(FI, L), "strength"] == pytest.approx(0.5 * 0.6 * 1.0) and both.loc[(FI, L), "hops"] == 2
    assert both.loc[(J, K), "strength"] == pytest.approx(0.5 * 0.5 * 0.6)
    assert (L, J) not in both.index  # three hops away
    only = link_strengths(direct.reset_index(), targets=[L])
    assert set(only["dst"]) == {L} and set(only["src"]) == {FI, K}


def test_month_features_contagion_guarantees_and_encumbrance():
    FI, J, K, S, Q = (ent(k) for k in "IJKSQ")
    as_of = pd.Timestamp("2020-06-30")
    inputs = EquityInputs(
        firms=firms_frame({FI: "P_a", J: "P_b", K: "P_a", S: "P_s", Q: "P_q"}),
        shareholders=holdings((FI, "P_1", 1.0), (J, "P_2", 1.0), (K, "P_3", 1.0), (S, "P_1", 0.7),
                              (S, "P_4", 0.3)),
        guarantees=pd.DataFrame({"uscc": [FI, J, FI], "debtor_id": [J, FI, "P_z"],
                                 "principal_amount": [200.0, 30.0, 5.0]}),
        owners_equity=pd.DataFrame({"uscc": [FI, J], "owners_equity": [100.0, 300.0]}),
        pledges=pd.DataFrame({"uscc": [FI, K], "pledgor_id": ["P_1", "P_3"], "pledgee_id": [ent("BANK"), "P_x"],
                              "pledgee_type": ["bank", "natural_person"], "pledged_equity_amount": [40.0, 10.0]}),
        freezes=pd.DataFrame({"uscc": [J, Q], "holder_id": ["P_2", FI], "frozen_equity_amount": [25.0, 5.0]}),
    )
    events = pd.DataFrame({"uscc": [J, K, FI], "event_date": pd.to_datetime(["2020-06-01", "2020-03-01",
                                                                            "2020-06-15"])})
    f = month_equity_features(inputs, events, as_of).features.set_index("uscc")
    assert list(f.columns) == list(FEATURE_NAMES)
    # FI: guarantees J (200 / 100 -> 1.0) with J in distress 29 days ago -> pen 100; FI's own event ignored
    assert f.loc[FI, "eq_max_link_to_distressed_90d"] == pytest.approx(1.0)
    assert f.loc[FI, "eq_related_party_risk_score"] == pytest.approx(0.0)
    assert f.loc[FI, "eq_group_size"] == 4 and f.loc[FI, "eq_group_defaults_90d"] == 1
    assert f.loc[FI, "eq_group_defaults_365d"] == 2  # J and K (121 days ago: 365-day window only)
    assert f.loc[FI, "eq_in_guarantee_circle"] and f.loc[FI, "eq_guarantee_circle_size"] == 2
    assert f.loc[FI, "eq_mutual_guarantee"] and f.loc[FI, "eq_n_guarantees_given"] == 2
    assert f.loc[FI, "eq_outstanding_guarantees_given_amount"] == pytest.approx(205.0)
    assert f.loc[FI, "eq_guarantee_exposure_ratio"] == pytest.approx(2.05)
    assert f.loc[FI, "eq_guaranteed_debtor_distressed_amount"] == pytest.approx(200.0)
    assert f.loc[FI, "eq_valid_pledged_share"] == pytest.approx(0.4) and f.loc[FI, "eq_controller_equity_pledged"]
    assert f.loc[FI, "eq_own_stakes_frozen"] and not f.loc[FI, "eq_controller_stakes_frozen"]
    # J: guaranteed by FI (0.5 beats J's own guarantee for FI, 0.4 + 0.6 * 30 / 300), FI distressed 15 days ago
    assert f.loc[J, "eq_related_party_risk_score"] == pytest.approx(50.0)
    assert f.loc[J, "eq_frozen_equity_share"] == pytest.approx(0.25) and f.loc[J, "eq_controller_stakes_frozen"]
    assert f.loc[J, "eq_guarantees_received_amount"] == pytest.approx(200.0)
    # K: shares FI's legal rep (0.6); FI (90d) -> 60 beats J two hops away (0.6 * 1.0 * 0.5 * 100 = 30)
    assert f.loc[K, "eq_related_party_risk_score"] == pytest.approx(40.0)
    assert f.loc[K, "eq_max_link_to_distressed_365d"] == pytest.approx(0.6)
    assert f.loc[K, "eq_pledged_to_natural_person"] and f.loc[K, "eq_legal_rep_n_firms"] == 2
    # S: same controller P_1 as FI -> link 1.0 to FI (event 15 days ago)
    assert f.loc[S, "eq_actual_controller_id"] == "P_1" and f.loc[S, "eq_controller_n_firms"] == 2
    assert f.loc[S, "eq_related_party_risk_score"] == pytest.approx(0.0)
    # Q: no shareholder rows, unrelated
    assert f.loc[Q, "eq_no_shareholder_records"] and f.loc[Q, "eq_actual_controller_id"] is None
    assert f.loc[Q, "eq_related_party_risk_score"] == 100.0 and f.loc[Q, "eq_group_size"] == 1
    assert f.loc[Q, "eq_frozen_equity_amount"] == pytest.approx(5.0)


def test_state_controller_does_not_associate_firms_and_fi_pledgees_are_no_edges():
    gov = ent("GOV")
    sh = holdings((A, gov, 1.0), (B, gov, 1.0))
    sh.loc[:, "shareholder_type"] = "government_or_soe_agency"
    inputs = EquityInputs(firms=firms_frame({A: "P_a", B: "P_b"}), shareholders=sh,
                          pledges=pd.DataFrame({"uscc": [A, B], "pledgor_id": [gov, gov],
                                                "pledgee_id": [ent("BANK")] * 2, "pledgee_type": ["bank"] * 2,
                                                "pledged_equity_amount": [1.0, 1.0]}))
    own = integrated_ownership(sh)
    ctrl = actual_controllers(own)
    assert ctrl["actual_controller_id"].tolist() == [gov, gov]
    assert association_edges(inputs, own, ctrl).empty
    f = month_equity_features(inputs, pd.DataFrame({"uscc": [B], "event_date": [pd.Timestamp("2020-01-10")]}),
                              "2020-01-31").features.set_index("uscc")
    assert f.loc[A, "eq_controller_is_state"] and f.loc[A, "eq_group_size"] == 1
    assert f.loc[A, "eq_related_party_risk_score"] == 100.0


# ----------------------------------------------------------------------------- properties

@st.composite
def ownership_graphs(draw):
    n_ent = draw(st.integers(2, 7))
    n_per = draw(st.integers(1, 5))
    ents = [ent(f"H{k}") for k in range(n_ent)]
    pers = [f"P_{k:04x}" for k in range(n_per)]
    rows = []
    for e in ents:
        holders = draw(st.lists(st.sampled_from(ents + pers), min_size=1, max_size=4, unique=True))
        holders = [h for h in holders if h != e] or [pers[0]]
        weights = draw(st.lists(st.integers(1, 6), min_size=len(holders), max_size=len(holders)))
        total = draw(st.sampled_from([1.0, 0.9, 0.5]))
        rows += [(e, h, total * w / sum(weights)) for h, w in zip(holders, weights, strict=True)]
    return holdings(*rows), ents, pers


@settings(max_examples=60, deadline=None)
@given(ownership_graphs())
def test_ultimate_shares_are_fractions_and_columns_sum_to_at_most_one(graph):
    sh, _, _ = graph
    own = integrated_ownership(sh, max_iter=30)
    u = own.ultimate.toarray()
    assert (u >= 0).all() and (u <= 1 + 1e-9).all()
    assert (u.sum(axis=0) <= 1 + 1e-9).all()
    v = own.integrated.toarray()
    assert (v >= 0).all()


@settings(max_examples=60, deadline=None)
@given(ownership_graphs(), st.randoms(use_true_random=False))
def test_controller_is_invariant_under_relabelling(graph, rnd):
    sh, ents, pers = graph
    new_ents = [ent(f"N{k}") for k in range(len(ents))]
    new_pers = [f"P_{k:04x}" for k in range(100, 100 + len(pers))]
    rnd.shuffle(new_ents)
    rnd.shuffle(new_pers)
    rename = dict(zip(ents + pers, new_ents + new_pers, strict=True))
    before = actual_controllers(integrated_ownership(sh))
    after = actual_controllers(integrated_ownership(sh.replace({"uscc": rename, "shareholder_id": rename})))
    after = after.loc[[rename[e] for e in before.index]]
    assert [rename.get(c) for c in before["actual_controller_id"]] == after["actual_controller_id"].tolist()
    assert before["controller_chain_length"].tolist() == after["controller_chain_length"].tolist()
    np.testing.assert_allclose(before["controller_ultimate_share"].to_numpy(),
                               after["controller_ultimate_share"].to_numpy(), atol=1e-12)


# ----------------------------------------------------------------------------- declarations and snapshots

def test_features_are_declared_once_with_prefix_and_meanings():
    names = [f.name for f in EQUITY_FEATURES]
    assert len(names) == len(set(names)) and all(n.startswith("eq_") for n in names)
    assert all(f.meaning_en and f.meaning_zh and f.dtype in {"float", "int", "bool", "string"}
               for f in EQUITY_FEATURES)
    required = {"eq_group_size", "eq_in_guarantee_circle", "eq_guarantee_circle_size", "eq_group_defaults_90d",
                "eq_group_defaults_365d", "eq_max_link_to_distressed_90d", "eq_related_party_risk_score",
                "eq_outstanding_guarantees_given_amount", "eq_guaranteed_debtor_distressed_amount",
                "eq_valid_pledged_share", "eq_frozen_equity_amount", "eq_controller_is_person",
                "eq_controller_ultimate_share", "eq_controller_chain_length", "eq_n_terminal_holders",
                "eq_actual_controller_id"}
    assert required <= set(names)


def test_graph_snapshots_are_hashed_and_the_manifest_merges(tmp_path):
    e1 = pd.DataFrame({"src": ["a", "b"], "dst": ["b", "c"], "edge_type": ["a", "d"], "weight": [0.3, 10.0]})
    e2 = e1.iloc[:1]
    path = write_graph_snapshots(tmp_path, {pd.Timestamp("2020-01-31"): e1, pd.Timestamp("2020-02-29"): e2})
    manifest = json.loads(path.read_text())
    assert [s["as_of"] for s in manifest["snapshots"]] == ["2020-01-31", "2020-02-29"]
    first = manifest["snapshots"][0]
    data = (tmp_path / first["path"]).read_bytes()
    assert first["sha256"] == hashlib.sha256(data).hexdigest()
    assert first["n_edges"] == 2 and first["edge_counts"] == {"a": 1, "d": 1}
    assert pd.read_parquet(tmp_path / first["path"]).equals(e1)
    write_graph_snapshots(tmp_path, {pd.Timestamp("2020-02-29"): e1})  # rewrite one month
    manifest = json.loads(path.read_text())
    assert [s["n_edges"] for s in manifest["snapshots"]] == [2, 2]
    assert not list(tmp_path.rglob("*.tmp"))


# ----------------------------------------------------------------------------- the small world

@pytest.mark.integration
def test_equity_mart_on_the_small_world(small_warehouse, tmp_path):
    from data.marts.events import serious_credit_events
    from data.marts.grid import connect_warehouse, month_ends, registered_grid

    ws, _ = small_warehouse
    con = connect_warehouse(ws / "warehouse" / "warehouse.duckdb")
    months = month_ends("2018-01", "2018-12")
    events = serious_credit_events(con, ws / "platform")
    mart = build_equity_mart(con, months, events, tmp_path / "graph")
    grid = registered_grid(con, months)

    assert list(mart.columns) == ["uscc", "as_of", *FEATURE_NAMES]
    assert len(mart) == len(grid) > 0 and not mart.duplicated(["uscc", "as_of"]).any()
    pd.testing.assert_frame_equal(mart[["uscc", "as_of"]].reset_index(drop=True), grid.reset_index(drop=True))
    assert mart["eq_related_party_risk_score"].between(0, 100).all()
    for col in ("eq_controller_ultimate_share", "eq_max_ultimate_share", "eq_opaque_ultimate_share",
                "eq_max_link_to_distressed_90d", "eq_max_link_to_distressed_365d"):
        assert mart[col].dropna().between(0, 1 + 1e-9).all(), col
    has = mart["eq_actual_controller_id"].notna()
    assert has.mean() > 0.8  # simulated SMEs are mostly held by a majority owner
    assert (mart.loc[has, "eq_controller_chain_length"] >= 1).all()
    assert (mart.loc[~has, "eq_controller_chain_length"] == 0).all()
    assert mart.loc[has, "eq_controller_ultimate_share"].notna().all()
    assert (mart["eq_group_size"] >= 1).all()
    assert (mart["eq_group_defaults_365d"] >= mart["eq_group_defaults_90d"]).all()
    assert (mart["eq_max_link_to_distressed_365d"] >= mart["eq_max_link_to_distressed_90d"]).all()
    assert (mart["eq_in_guarantee_circle"] == (mart["eq_guarantee_circle_size"] >= 2)).all()
    manifest = json.loads((tmp_path / "graph" / "manifest.json").read_text())
    assert [s["as_of"] for s in manifest["snapshots"]] == [m.isoformat() for m in months]
    assert all(s["edge_counts"].get("holding", 0) > 0 for s in manifest["snapshots"])
    # point in time: the first month's features do not change when later months are added
    first = build_equity_mart(con, months[:1], events, None)
    pd.testing.assert_frame_equal(first, mart[mart["as_of"] == mart["as_of"].min()].reset_index(drop=True))
    assert isinstance(months[0], date)
