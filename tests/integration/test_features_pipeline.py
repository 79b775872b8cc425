"""The features step on the small world: marts -> Feast sources -> registry -> online store, end to end."""

from __future__ import annotations

import pandas as pd
import pytest

from data.feature_store.pipeline import sources_dir
from data.feature_store.store import online_features, open_store
from data.marts.registry import MARTS
from kernel.catalog import load_catalog
from kernel.profile import load_profile

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("small-built-features")]


@pytest.fixture(scope="module")
def built(small_built_features):
    return small_built_features


def test_registry_lists_source_and_mart_views_and_services(built):
    ws, summary = built
    store = open_store(ws, load_profile("local"))
    views = {v.name for v in store.list_feature_views()}
    catalog = load_catalog()
    assert views == {s.code for s in catalog.sub_items} | {f"mart_{m.name}" for m in MARTS}
    assert summary.views == 35 + len(MARTS)
    svc = store.get_feature_service("credit_rating")
    served = {(p.name, f.name) for p in svc.feature_view_projections for f in p.features}
    fields = {(s.code, f.name) for s in catalog.sub_items for f in s.fields if f.name != "uscc"}
    assert fields <= served                                   # the 290 catalog fields (35 join keys + 255)
    for m in MARTS:                                            # and every mart column
        assert {(f"mart_{m.name}", f.name) for f in m.features()} <= served
    risk = [f for f in served if f[0] == "mart_risk_indicators"]
    assert len(risk) > 1000
    assert {(v, f) for v, f in served if v == "mart_indicators" and f.startswith("ind_")} >= {
        ("mart_indicators", "ind_A1_1_score"), ("mart_indicators", "ind_E3_3_score")}


def test_marts_have_a_row_per_registered_firm_month_and_online_equals_last_month(built):
    ws, summary = built
    counts = set(summary.mart_rows.values())
    assert len(counts) == 1 and counts.pop() > 0              # every mart on the same firm-month grid
    mart = pd.read_parquet(sources_dir(ws) / "mart_indicators.parquet")
    last = mart[mart["event_timestamp"] == mart["event_timestamp"].max()].set_index("uscc")
    firms = sorted(last.index)[:25]
    online = online_features(open_store(ws, load_profile("local")), firms,
                             ["mart_indicators:cci", "mart_indicators:ind_A1_1_score", "mart_indicators:idx_D"])
    online = online.set_index("uscc")
    for col in ("cci", "ind_A1_1_score", "idx_D"):
        a, b = online[f"mart_indicators__{col}"], last.loc[firms, col].astype("float32")
        assert ((a.isna() & b.isna()) | (a.astype("float32") == b)).all(), col
    assert summary.online_values > 1000 * len(firms)


def test_enterprise_profile_is_point_in_time_and_refuses_unknown_firms(built):
    from datetime import date

    from kernel.errors import ZhouxinError
    from training.profile import enterprise_profile

    ws, _ = built
    mart = pd.read_parquet(sources_dir(ws) / "mart_indicators.parquet", columns=["uscc", "event_timestamp", "cci"])
    row = mart[mart["event_timestamp"] == pd.Timestamp("2018-09-30")].dropna().iloc[0]
    prof = enterprise_profile(ws, row["uscc"], date(2018, 9, 30), load_profile("local"))
    assert prof["registration"]["ent_name"]
    assert prof["credit_index"]["cci"] == pytest.approx(float(row["cci"]), rel=1e-6)   # the September mart row
    assert set(prof["credit_index"]["sub_indices"]) == {"A", "B", "C", "D", "E"}
    assert len(prof["credit_index"]["indicators"]) == 49
    assert prof["in_default"] is False or prof["rating"]["grade"] == "D"
    assert prof["rating"] is None or prof["rating"]["grade"] == "D"   # no champion in this workspace
    with pytest.raises(ZhouxinError, match="no registration"):
        enterprise_profile(ws, "91330900MA2A00009P", date(2018, 9, 30), load_profile("local"))   # valid, unknown
    with pytest.raises(ZhouxinError, match="check character"):
        enterprise_profile(ws, row["uscc"][:-1] + ("0" if row["uscc"][-1] != "0" else "1"), date(2018, 9, 30))


def test_one_mart_can_be_rebuilt_and_rematerialized_alone(built, tmp_path):
    import shutil

    from data.feature_store.pipeline import rebuild_marts
    from kernel.errors import ZhouxinError

    ws, summary = built
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy)
    (copy / "features" / "online.db").unlink()                 # prove the mart's view is written again
    rows = rebuild_marts(copy, ["credit_events"], load_profile("local"))
    assert rows == {"credit_events": summary.mart_rows["credit_events"]}
    online = online_features(open_store(copy, load_profile("local")), [sorted(pd.read_parquet(
        sources_dir(copy) / "mart_credit_events.parquet")["uscc"])[0]], ["mart_credit_events:serious_event_triggers"])
    assert online["mart_credit_events__serious_event_triggers"].notna().all()
    with pytest.raises(ZhouxinError, match="unknown mart"):
        rebuild_marts(copy, ["no_such_mart"], load_profile("local"))
