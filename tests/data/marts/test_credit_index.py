"""Regional / industry / FTZ credit index (indicators.md §7) on hand-built panels with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.marts.credit_index import (
    CreditIndexConfig,
    build_credit_index,
    chain_linked_index,
    companion_statistics,
    credit_index_config_path,
    credit_index_table,
    firm_panel,
    index_groups,
    level_series,
    load_credit_index_config,
    resolve_base_month,
    splice_index,
    zhoushan_sector,
)
from data.marts.indicator_config import load_indicator_config
from kernel.errors import ConfigError, ZhouxinError

ICFG = load_indicator_config()
SUBS = [m.code for m in ICFG.level1]
W1 = {m.code: m.weight for m in ICFG.level1}


def cfg(**changes: object) -> CreditIndexConfig:
    """The shipped configuration with some settings changed (validated again)."""
    return CreditIndexConfig(**(load_credit_index_config().model_dump() | changes))


SMALL = {"min_cell_size": 1}


def me(month: str) -> pd.Timestamp:
    return pd.Period(month, freq="M").end_time.normalize()


def panel(rows: list[tuple], subs: dict[str, float] | None = None) -> pd.DataFrame:
    """Rows (uscc, 'YYYY-MM', cci[, t12m_sales]); sub-indices equal the CCI unless given."""
    out = []
    for r in rows:
        uscc, month, cci = r[:3]
        sales = r[3] if len(r) > 3 else np.nan
        row = {"uscc": uscc, "as_of": me(month), "cci": float(cci), "t12m_sales": sales}
        row |= {f"idx_{k}": (subs or {}).get(k, float(cci)) for k in SUBS}
        out.append(row)
    return pd.DataFrame(out)


def city(p: pd.DataFrame) -> pd.DataFrame:
    return p[["uscc", "as_of"]].assign(kind="city", group="city")


def series(df: pd.DataFrame, column: str = "index_cci", group: str = "city", weighting: str = "equal"
           ) -> pd.Series:
    s = df[(df["group"] == group) & (df["weighting"] == weighting)]
    return pd.Series(s[column].to_numpy(), index=s["as_of"].dt.strftime("%Y-%m"))


def firms(n: int, prefix: str = "F") -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


# ------------------------------------------------------------------------------------------------
# §7.3 chain link on the matched set
# ------------------------------------------------------------------------------------------------


def test_entries_and_exits_do_not_move_the_index_but_move_the_level():
    rows = [(f, m, 80) for f in firms(40) for m in ("2019-11", "2019-12", "2020-01", "2020-02")]
    rows += [("EXIT", "2019-11", 30), ("EXIT", "2019-12", 30), ("EXIT", "2020-01", 30)]   # leaves in 2020-02
    rows += [("NEW", "2020-01", 20), ("NEW", "2020-02", 20)]                              # low-CCI entrant
    p = panel(rows)
    idx = series(chain_linked_index(p, city(p), "2019-12", ("equal", "economic")))
    assert idx.to_dict() == pytest.approx({"2019-11": 100, "2019-12": 100, "2020-01": 100, "2020-02": 100})
    lvl = series(level_series(p, city(p)), "level_cci")
    assert lvl["2019-12"] == pytest.approx((40 * 80 + 30) / 41)
    assert lvl["2020-01"] == pytest.approx((40 * 80 + 30 + 20) / 42)
    assert lvl["2020-02"] == pytest.approx((40 * 80 + 20) / 41)


def test_a_matched_firm_that_deteriorates_moves_the_index():
    rows = [(f, m, 80) for f in firms(9) for m in ("2019-12", "2020-01")]
    rows += [("BAD", "2019-12", 80), ("BAD", "2020-01", 20)]      # defaults but stays registered
    p = panel(rows)
    idx = series(chain_linked_index(p, city(p), "2019-12"))
    assert idx["2020-01"] == pytest.approx(100 * (9 * 80 + 20) / (10 * 80))


def test_a_uniform_ten_percent_rise_gives_110():
    rng = np.random.default_rng(3)
    base = rng.uniform(30, 90, 50)
    sales = rng.uniform(0, 5000, 50)
    rows = [(f, "2019-12", c, s) for f, c, s in zip(firms(50), base, sales, strict=True)]
    rows += [(f, "2020-01", 1.1 * c, s * 3) for f, c, s in zip(firms(50), base, sales, strict=True)]
    p = panel(rows)
    for k in SUBS:                                                   # sub-indices rise 10% as well
        p[f"idx_{k}"] = p["cci"]
    out = chain_linked_index(p, city(p), "2019-12", ("equal", "economic"))
    for w in ("equal", "economic"):
        for col in ["index_cci", *(f"index_{k}" for k in SUBS)]:
            assert series(out, col, weighting=w)["2020-01"] == pytest.approx(110.0)


def test_weights_are_fixed_at_t_minus_1():
    # a: large at t-1 (w = sqrt(1 + 99) = 10), small at t; b the other way round
    p = panel([("A", "2019-12", 50, 99.0), ("B", "2019-12", 50, 0.0),
               ("A", "2020-01", 60, 0.0), ("B", "2020-01", 40, 99.0)])
    out = chain_linked_index(p, city(p), "2019-12", ("equal", "economic"))
    assert series(out, weighting="economic")["2020-01"] == pytest.approx(100 * (10 * 60 + 1 * 40) / (10 * 50 + 50))
    assert series(out, weighting="equal")["2020-01"] == pytest.approx(100.0)
    # the level uses the weights of its own month
    lvl = series(level_series(p, city(p), ("economic",)), "level_cci", weighting="economic")
    assert lvl["2020-01"] == pytest.approx((1 * 60 + 10 * 40) / 11)


def test_economic_weight_comes_from_the_b1_1_raw_sales():
    mart = pd.DataFrame({"uscc": ["A", "B"], "event_timestamp": [me("2019-12")] * 2, "cci": [50.0, 60.0],
                         "ind_B1_1_raw": [np.log1p(99.0), np.nan], **{f"idx_{k}": [50.0, 60.0] for k in SUBS}})
    p = firm_panel(mart, ICFG)
    assert p["t12m_sales"].iloc[0] == pytest.approx(99.0)
    assert np.isnan(p["t12m_sales"].iloc[1])
    lvl = series(level_series(p, city(p), ("economic",)), "level_cci", weighting="economic")
    assert lvl["2019-12"] == pytest.approx((10 * 50 + 1 * 60) / 11)   # missing sales -> w = 1


def test_base_is_100_and_earlier_months_are_back_cast():
    months = ["2019-10", "2019-11", "2019-12", "2020-01", "2020-02"]
    rows = [(f, m, 40 * 1.1 ** i) for f in firms(5) for i, m in enumerate(months)]
    p = panel(rows)
    idx = series(chain_linked_index(p, city(p), "2019-12"))
    assert idx.to_dict() == pytest.approx({"2019-10": 100 / 1.21, "2019-11": 100 / 1.1, "2019-12": 100.0,
                                           "2020-01": 110.0, "2020-02": 121.0})


def test_unscored_firm_months_are_left_out():
    p = panel([("A", "2019-12", 50), ("B", "2019-12", 50), ("A", "2020-01", 60), ("B", "2020-01", 50)])
    p.loc[(p["uscc"] == "B") & (p["as_of"] == me("2020-01")), "cci"] = np.nan   # B has no CCI in 2020-01
    out = chain_linked_index(p, city(p), "2019-12")
    assert series(out)["2020-01"] == pytest.approx(120.0)
    assert series(out, "n_matched")["2020-01"] == 1


def test_a_link_without_matched_firms_breaks_the_chain_after_the_base():
    rows = [("A", "2019-12", 50), ("A", "2020-01", 55), ("B", "2020-02", 70), ("B", "2020-03", 77)]
    p = panel(rows)
    idx = series(chain_linked_index(p, city(p), "2019-12"))
    assert idx["2020-01"] == pytest.approx(110)
    assert np.isnan(idx["2020-02"]) and np.isnan(idx["2020-03"])      # never silently re-based


def test_a_firm_moving_district_is_in_neither_matched_set():
    rows = [(f, m, 80) for f in firms(4) for m in ("2019-12", "2020-01")]
    rows += [("MOVER", "2019-12", 80), ("MOVER", "2020-01", 10)]
    p = panel(rows)
    g = p[["uscc", "as_of"]].assign(kind="district")
    g["group"] = np.where(g["uscc"].str.startswith("F0") & (g["uscc"] < "F002"), "district:330902",
                          "district:330903")
    mover_2020 = (g["uscc"] == "MOVER") & (g["as_of"] == me("2020-01"))
    g.loc[mover_2020, "group"] = "district:330902"                     # moved 330903 -> 330902
    out = chain_linked_index(p, g, "2019-12")
    assert series(out, group="district:330902")["2020-01"] == pytest.approx(100)
    assert series(out, group="district:330903")["2020-01"] == pytest.approx(100)
    assert series(out, "n_matched", group="district:330902")["2020-01"] == 2


# ------------------------------------------------------------------------------------------------
# Suppression, provisional months, base fallback, the table
# ------------------------------------------------------------------------------------------------


def test_cells_below_the_minimum_size_are_suppressed_but_the_chain_runs_through():
    big = [(f, m, 50 * 1.1 ** i) for f in firms(30) for i, m in enumerate(("2019-12", "2020-01", "2020-02"))]
    big = [r for r in big if not (r[0] == "F029" and r[1] == "2020-01")]   # 29 in 2020-01
    small = [(f, m, 60) for f in firms(29, "S") for m in ("2019-12", "2020-01", "2020-02")]
    p = panel(big + small)
    g = p[["uscc", "as_of"]].assign(kind="district")
    g["group"] = np.where(g["uscc"].str.startswith("F"), "district:330902", "district:330903")
    t, _, _ = credit_index_table(p, g, config=cfg(min_cell_size=30, weightings=("equal",)))
    big_s = series(t, group="district:330902")
    assert big_s["2019-12"] == pytest.approx(100)
    assert np.isnan(big_s["2020-01"])                                   # 29 firms: suppressed
    assert big_s["2020-02"] == pytest.approx(121)                       # same base afterwards
    sup = series(t, "suppressed", group="district:330902")
    assert sup.tolist() == [False, True, False]
    assert series(t, "n_scored", group="district:330902")["2020-01"] == 29
    assert series(t, "suppressed", group="district:330903").all()
    small_t = t[t["group"] == "district:330903"]
    assert small_t[["level_cci", "index_cci", "share_poor", "event_rate_t12m"]].isna().all().all()


def test_table_flags_the_last_two_months_as_provisional():
    months = ["2019-11", "2019-12", "2020-01", "2020-02"]
    p = panel([(f, m, 70) for f in firms(3) for m in months])
    t, base, note = credit_index_table(p, city(p), config=cfg(**SMALL))
    assert base == "2019-12" and note is None
    prov = series(t, "provisional")
    assert prov.to_dict() == {"2019-11": False, "2019-12": False, "2020-01": True, "2020-02": True}
    assert set(t["weighting"]) == {"equal", "economic"}


def test_without_the_base_month_the_index_is_based_at_the_first_month_and_recorded():
    months = ["2021-01", "2021-02", "2021-03"]
    p = panel([(f, m, 50 + 5 * i) for f in firms(3) for i, m in enumerate(months)])
    t, base, note = credit_index_table(p, city(p), config=cfg(**SMALL))
    assert base == "2021-01" and "2019-12" in note
    assert series(t)["2021-01"] == pytest.approx(100)
    assert series(t)["2021-03"] == pytest.approx(120)
    assert (t["base_month"] == "2021-01").all()
    assert resolve_base_month([me("2019-12")], "2019-12") == ("2019-12", None)


def test_a_panel_with_a_month_gap_is_refused():
    p = panel([("A", "2019-12", 50), ("A", "2020-02", 50)])
    with pytest.raises(ZhouxinError, match="gap"):
        chain_linked_index(p, city(p), "2019-12")


# ------------------------------------------------------------------------------------------------
# §7.5 companion statistics
# ------------------------------------------------------------------------------------------------


def test_contributions_are_first_level_weight_times_matched_sub_index_change():
    subs0 = {"A": 80.0, "B": 70.0, "C": 60.0, "D": 90.0, "E": 85.0}
    subs1 = subs0 | {"B": 80.0}
    cci0 = sum(W1[k] * v for k, v in subs0.items())
    cci1 = sum(W1[k] * v for k, v in subs1.items())
    rows0 = panel([(f, "2019-12", cci0) for f in firms(4)], subs0)
    rows1 = panel([(f, "2020-01", cci1) for f in firms(4)], subs1)
    entrant = panel([("NEW", "2020-01", 10.0)], dict.fromkeys(SUBS, 0.0))   # no effect on the matched set
    p = pd.concat([rows0, rows1, entrant], ignore_index=True)
    s = chain_linked_index(p, city(p), "2019-12")
    s = s[s["as_of"] == me("2020-01")].iloc[0]
    assert s["contrib_B"] == pytest.approx(W1["B"] * 10)
    for k in ("A", "C", "D", "E"):
        assert s[f"contrib_{k}"] == pytest.approx(0.0)
    assert s["change_matched_cci"] == pytest.approx(cci1 - cci0)
    assert s["contrib_residual"] == pytest.approx(0.0)
    assert s["index_B"] == pytest.approx(100 * 80 / 70)
    assert s["index_change"] == pytest.approx(100 * (cci1 / cci0 - 1))
    # a veto cap on one firm shows up in the residual, not in a sub-index
    p.loc[(p["uscc"] == "F000") & (p["as_of"] == me("2020-01")), "cci"] = 45.0
    s = chain_linked_index(p, city(p), "2019-12")
    s = s[s["as_of"] == me("2020-01")].iloc[0]
    assert s["contrib_B"] == pytest.approx(W1["B"] * 10)
    assert s["contrib_residual"] == pytest.approx((45.0 - cci1) / 4)


def test_companion_statistics_counts_tiers_signals_and_events():
    rows = [("A", "2019-12", 90), ("B", "2019-12", 75), ("C", "2019-12", 65), ("D", "2019-12", 30),
            ("A", "2020-01", 90), ("B", "2020-01", 75), ("C", "2020-01", 50), ("E", "2020-01", 88),
            ("F", "2020-01", 61)]
    p = panel(rows)
    events = pd.DataFrame({"uscc": ["A", "B", "C", "C"],
                           "event_date": pd.to_datetime(["2020-01-31", "2019-01-31", "2019-02-01", "2020-02-01"]),
                           "trigger": ["E2", "E3", "E4", "E6"]})
    signals = pd.DataFrame({"uscc": ["A", "B", "C"], "as_of": [me("2020-01")] * 3, "signal_level": [5, 4, 7]})
    s = companion_statistics(p, city(p), events, signals, cfg(**SMALL), ICFG)
    jan = s[s["as_of"] == me("2020-01")].iloc[0]
    dec = s[s["as_of"] == me("2019-12")].iloc[0]
    assert jan["n_scored"] == 5 and jan["entries"] == 2 and jan["exits"] == 1     # E, F in; D out
    assert np.isnan(dec["entries"]) and np.isnan(dec["exits"])                   # first month
    assert jan["share_excellent"] == pytest.approx(2 / 5)                       # A 90, E 88
    assert jan["share_good"] == pytest.approx(1 / 5)                            # B 75
    assert jan["share_medium"] == pytest.approx(1 / 5)                          # F 61
    assert jan["share_poor"] == pytest.approx(1 / 5)                            # C 50
    assert jan["share_signal_ge5"] == pytest.approx(2 / 3)                      # among firms with a level
    # A: event at the month end counts; B: exactly 12 months earlier is outside (2019-02..2020-01);
    # C: 2019-02-01 inside, 2020-02-01 not yet available
    assert jan["event_rate_t12m"] == pytest.approx(2 / 5)
    assert dec["event_rate_t12m"] == pytest.approx(2 / 4)                       # B (2019-01) and C
    none = companion_statistics(p, city(p), None, None, cfg(**SMALL), ICFG)
    assert none["share_signal_ge5"].isna().all() and (none["event_rate_t12m"] == 0).all()


# ------------------------------------------------------------------------------------------------
# §7.1 groups
# ------------------------------------------------------------------------------------------------


def test_index_groups_maps_attributes_to_every_group_kind():
    attrs = pd.DataFrame({
        "uscc": ["OIL", "FISH", "MFG", "NONE"], "as_of": [me("2020-01")] * 4,
        "district_code": ["330903", "330922", "330902", None],
        "ftz_area": ["offshore_islands", "none", None, "island_north"],
        "enterprise_scale": ["small", "micro", "medium", None],
        "industry_code": ["F5162", "A0411", "C3399", None]})
    g = index_groups(attrs, cfg(), ICFG)
    member = {u: set(g.loc[g["uscc"] == u, "group"]) for u in attrs["uscc"]}
    assert member["OIL"] == {"city", "district:330903", "ftz", "ftz_area:offshore_islands",
                             "sector:oil_trading_bunkering", "sector_group:oil_gas_chain", "scale:small"}
    assert member["FISH"] == {"city", "district:330922", "sector:marine_fishery", "sector_group:marine_economy",
                              "scale:micro"}
    assert member["MFG"] == {"city", "district:330902", "sector:manufacturing_other", "scale:medium"}
    assert member["NONE"] == {"city", "ftz", "ftz_area:island_north", "sector:services_other"}
    assert set(g.loc[g["group"] == "ftz", "kind"]) == {"ftz"}
    only = index_groups(attrs, cfg(groups=("city", "ftz")), ICFG)
    assert set(only["group"]) == {"city", "ftz"}


def test_zhoushan_sector_first_matching_rule_wins():
    codes = pd.Series(["G5941", "G5930", "G5920", "E4823", "E9999", "C2511", "F5124", "K7010", None])
    assert zhoushan_sector(codes, ICFG).tolist() == [
        "oil_gas_storage", "aquatic_processing", "shipping_port_logistics", "construction_engineering",
        "construction_engineering", "petrochemical", "aquatic_processing", "services_other", "services_other"]


def test_sector_groups_must_name_known_sectors():
    with pytest.raises(ConfigError, match="bunker"):
        index_groups(pd.DataFrame({"uscc": ["A"], "as_of": [me("2020-01")], "industry_code": ["F5162"]}),
                     cfg(sector_groups={"oil": ("bunker",)}), ICFG)


def test_config_loads_and_validates():
    c = load_credit_index_config(credit_index_config_path())
    assert c.base_month == "2019-12" and c.min_cell_size == 30 and c.provisional_months == 2
    assert set(c.sector_groups["oil_gas_chain"]) == {"oil_gas_storage", "oil_trading_bunkering", "petrochemical"}
    assert len(c.sector_groups["marine_economy"]) == 5
    with pytest.raises(ValueError, match="headline"):
        cfg(weightings=("economic",), headline_weighting="equal")


# ------------------------------------------------------------------------------------------------
# §7.4 rebasing
# ------------------------------------------------------------------------------------------------


def test_splice_continues_the_old_index_with_the_new_chain_ratios():
    idx = pd.to_datetime([me(m) for m in ("2022-10", "2022-11", "2022-12", "2023-01")])
    old = pd.Series([100.0, 98.0, 96.0, 95.0], index=idx)
    new = pd.Series([np.nan, np.nan, 80.0, 88.0], index=idx)
    s = splice_index(old, new, "2022-12")
    assert s.tolist() == pytest.approx([100.0, 98.0, 96.0, 96.0 * 1.1])
    with pytest.raises(ZhouxinError):
        splice_index(old, new, "2022-11")


# ------------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------------

MONTHS = ["2019-12", "2020-01", "2020-02", "2020-03", "2020-04", "2020-05"]


@st.composite
def panels(draw: st.DrawFn) -> pd.DataFrame:
    n_firms = draw(st.integers(2, 10))
    n_months = draw(st.integers(3, len(MONTHS)))
    present = draw(st.lists(st.lists(st.booleans(), min_size=n_months, max_size=n_months),
                            min_size=n_firms, max_size=n_firms))
    present[0] = [True] * n_months                                   # one firm present throughout
    rows = []
    for i, row in enumerate(present):
        for j, here in enumerate(row):
            if here:
                cci = draw(st.floats(20, 100, allow_nan=False))
                sales = draw(st.one_of(st.just(np.nan), st.floats(0, 1e5, allow_nan=False)))
                rows.append((f"F{i:02d}", MONTHS[j], cci, sales))
    p = panel(rows)
    p["idx_B"] = p["cci"] * draw(st.floats(0.5, 1.2))
    return p


def groups_for(p: pd.DataFrame) -> pd.DataFrame:
    odd = p[p["uscc"].str[-1].astype(int) % 2 == 1]
    return pd.concat([city(p), odd[["uscc", "as_of"]].assign(kind="district", group="district:330902")],
                     ignore_index=True)


def run_index(p: pd.DataFrame) -> pd.DataFrame:
    out = chain_linked_index(p, groups_for(p), "2019-12", ("equal", "economic"))
    return out.sort_values(["group", "weighting", "as_of"], ignore_index=True)


@settings(max_examples=40, deadline=None)
@given(p=panels(), data=st.data())
def test_scaling_all_cci_by_c_from_month_t_on_multiplies_the_index_by_c_from_t_on(p, data):
    months = sorted(p["as_of"].unique())
    t = months[data.draw(st.integers(1, len(months) - 1))]
    c = data.draw(st.floats(0.3, 3.0))
    before = run_index(p)
    q = p.copy()
    q.loc[q["as_of"] >= t, "cci"] *= c
    after = run_index(q)
    late = (before["as_of"] >= t).to_numpy()
    np.testing.assert_allclose(after.loc[late, "index_cci"], c * before.loc[late, "index_cci"], rtol=1e-9)
    np.testing.assert_allclose(after.loc[~late, "index_cci"], before.loc[~late, "index_cci"], rtol=1e-9)
    np.testing.assert_allclose(after["index_B"], before["index_B"], rtol=1e-12)     # other series untouched
    # scaling month t alone lifts that month only
    one = p.copy()
    one.loc[one["as_of"] == t, "cci"] *= c
    after1 = run_index(one)
    at = (before["as_of"] == t).to_numpy()
    np.testing.assert_allclose(after1.loc[at, "index_cci"], c * before.loc[at, "index_cci"], rtol=1e-9)
    np.testing.assert_allclose(after1.loc[~at, "index_cci"], before.loc[~at, "index_cci"], rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(p=panels(), seed=st.integers(0, 2**32 - 1))
def test_index_is_invariant_to_the_order_of_firms(p, seed):
    shuffled = p.sample(frac=1.0, random_state=np.random.RandomState(seed)).reset_index(drop=True)
    a, b = run_index(p), run_index(shuffled)
    cols = [c for c in a.columns if c.startswith(("index_", "link_", "contrib_", "n_"))]
    pd.testing.assert_frame_equal(a[cols], b[cols], rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(p=panels(), data=st.data())
def test_new_entrants_never_move_the_index(p, data):
    months = sorted(p["as_of"].unique())
    k = data.draw(st.integers(1, 5))
    start = months[data.draw(st.integers(0, len(months) - 1))]
    new = [(f"N{i}", str(m.to_period("M")), data.draw(st.floats(0, 100)))
           for i in range(k) for m in months if m >= start]
    before = run_index(p)
    after = run_index(pd.concat([p, panel(new)], ignore_index=True))
    after = after[after["group"].isin(before["group"].unique())].reset_index(drop=True)
    entry = (after["as_of"] <= start).to_numpy()      # entrants are matched from the month after entry
    np.testing.assert_allclose(after.loc[entry, "index_cci"], before.loc[entry, "index_cci"], rtol=1e-9)


# ------------------------------------------------------------------------------------------------
# End to end on a tiny workspace
# ------------------------------------------------------------------------------------------------


def tiny_workspace(ws: Path, months: list[str]) -> None:
    """A mart export and a warehouse with only ent_registration_scd: 40 FTZ firms, 40 outside."""
    rows, regs = [], []
    for i in range(80):
        uscc = f"9133090{i:02d}".ljust(18, "0")
        ftz = "island_north" if i < 40 else "none"
        regs.append((uscc, "330902" if i % 2 else "330903", ftz, "micro", "F5162" if i < 20 else "C3399",
                     "2000-01-01", None, "x"))
        for j, m in enumerate(months):
            drop = 0.95 if (i < 40 and m >= "2020-02") else 1.0
            cci = 80.0 * drop
            rows.append({"uscc": uscc, "event_timestamp": me(m), "created_ts": me(m), "cci": cci,
                         "cci_tier": "good", "ind_B1_1_raw": np.log1p(100.0 * (i + 1)),
                         **{f"idx_{k}": cci for k in SUBS}, "thin_file": False, "j": j})
    src = ws / "features" / "sources"
    src.mkdir(parents=True)
    pd.DataFrame(rows).drop(columns="j").to_parquet(src / "mart_indicators.parquet", index=False)
    (ws / "warehouse").mkdir()
    con = duckdb.connect(str(ws / "warehouse" / "warehouse.duckdb"))
    con.execute("""create table ent_registration_scd (uscc varchar, district_code varchar, ftz_area varchar,
                   enterprise_scale varchar, industry_code varchar, _known_from date, _known_to date,
                   _ingest_ts varchar)""")
    con.executemany("insert into ent_registration_scd values (?, ?, ?, ?, ?, ?, ?, ?)", regs)
    con.close()


def test_build_credit_index_writes_parquet_json_and_html(tmp_path):
    ws = tmp_path / "ws"
    months = ["2019-11", "2019-12", "2020-01", "2020-02", "2020-03"]
    tiny_workspace(ws, months)
    out = tmp_path / "out"
    r = build_credit_index(ws, out)
    assert r.base_month == "2019-12" and r.base_note is None
    assert r.provisional_months == ("2020-02", "2020-03")
    ftz = r.series("ftz")
    assert ftz["2020-01"] == pytest.approx(100) and ftz["2020-03"] == pytest.approx(95)
    assert r.series("city")["2020-03"] == pytest.approx(100 * (40 * 76 + 40 * 80) / (80 * 80))
    assert r.series("ftz", weighting="economic")["2020-02"] == pytest.approx(95)
    assert r.series("sector_group:oil_gas_chain", "suppressed").all()          # 20 firms < 30
    assert not r.series("ftz_area:island_north", "suppressed").any()
    back = pd.read_parquet(r.paths["parquet"])
    assert len(back) == len(r.table) and set(back["group"]) >= {"city", "ftz", "district:330902"}
    doc = json.loads(r.paths["json"].read_text(encoding="utf-8"))
    assert doc["meta"]["base_month"] == "2019-12" and doc["meta"]["provisional_months"] == ["2020-02", "2020-03"]
    rec = [x for x in doc["series"] if x["group"] == "ftz" and x["weighting"] == "equal" and x["as_of"] == "2020-03"]
    assert rec[0]["index_cci"] == pytest.approx(95)
    html = r.paths["html"].read_text(encoding="utf-8")
    assert "Plotly.newPlot" in html
    assert "自贸区" in html or json.dumps("自贸区")[1:-1] in html
    assert not list(out.glob("*.tmp"))


def test_build_credit_index_without_a_mart_says_what_to_run(tmp_path):
    with pytest.raises(ZhouxinError, match="indicator mart"):
        build_credit_index(tmp_path)
