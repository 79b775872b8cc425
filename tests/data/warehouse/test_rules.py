"""Validation rules generated from the catalog: valid records pass, each corruption fails its rule."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.warehouse.rules import load_validation_config, uscc_macros, validation_sql
from kernel.catalog import FieldSpec, SubItem, load_catalog
from kernel.uscc import CHARSET, make_uscc

CATALOG = load_catalog()
SUBS = [s.code for s in CATALOG.sub_items]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    for m in uscc_macros():
        c.execute(m)
    return c


def uscc_strategy() -> st.SearchStrategy[str]:
    body = st.one_of(st.text("0123456789", min_size=8, max_size=8),
                     st.text(CHARSET, min_size=6, max_size=6).map(lambda s: "MA" + s))
    return st.builds(make_uscc, st.sampled_from(["330902", "330903", "330921", "330922"]), body)


def value_strategy(f: FieldSpec, spec: SubItem) -> st.SearchStrategy[str | None]:
    cfg = load_validation_config()
    if f.name == "uscc" or (f.dtype == "string" and f.length == 18):
        return uscc_strategy()
    if f.dtype == "category":
        return st.sampled_from(list(f.allowed or ()))
    if f.dtype in ("int", "float"):
        lo = f.min if f.min is not None else -1000.0
        hi = f.max if f.max is not None else min(cfg.plausible_max.get(spec.code, {}).get(f.name, 1e6), 1e6)
        if f.dtype == "int":
            return st.integers(int(lo), int(hi)).map(str)
        return st.floats(lo, hi, allow_nan=False).map(lambda v: f"{v:.2f}")
    if f.dtype == "date":
        return st.just("2019-06-01")   # one date keeps every ordering rule satisfied
    if f.dtype == "bool":
        return st.sampled_from(["true", "false"])
    return st.text("abcdefghijklmnop舟山公司", min_size=1, max_size=12)


# amounts that satisfy the consistency relations of configs/validation.yaml, scaled by a drawn factor
CONSISTENT = {
    "annual_report": {"total_assets": 600, "total_liabilities": 330, "owners_equity": 270, "operating_revenue": 600,
                      "total_profit": 18, "net_profit": 17.1, "tax_total": 24},
    "tax_monthly": {"vat_taxable_sales": 50, "invoices_issued_amount": 50, "invoices_received_amount": 40,
                    "vat_paid": 1.3, "total_tax_paid": 1.6, "late_fee_amount": 0.1},
    "customs_monthly": {"import_value": 20, "export_value": 10, "declaration_count": 3},
}


@st.composite
def valid_record(draw: st.DrawFn, code: str) -> dict[str, str | None]:
    spec = CATALOG.sub_item(code)
    rec = {f.name: draw(value_strategy(f, spec)) for f in spec.fields}
    if code in CONSISTENT:
        k = draw(st.floats(0.05, 50))
        for name, base in CONSISTENT[code].items():
            v = base * k
            rec[name] = str(round(v)) if spec.field(name).dtype == "int" else f"{v:.4f}"
    rec["_available_date"] = "2019-07-01"
    return rec


def failures(con: duckdb.DuckDBPyConnection, code: str, rec: dict[str, str | None]) -> list[str]:
    spec = CATALOG.sub_item(code)
    if spec.is_versioned:                    # deliveries of versioned sub-items carry their validity
        rec = {"_valid_from": "2019-06-01", "_valid_to": None} | rec
    frame = pd.DataFrame([rec]).astype(object)
    con.register("one", frame)
    out = con.sql(validation_sql(spec, "one", typed=True)).df()["failures"].iloc[0]   # as ingestion runs it
    con.unregister("one")
    return list(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), code=st.sampled_from(SUBS))
def test_valid_records_pass(con: duckdb.DuckDBPyConnection, data: st.DataObject, code: str) -> None:
    rec = data.draw(valid_record(code))
    assert failures(con, code, rec) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), code=st.sampled_from(SUBS))
def test_each_corruption_fails_with_its_rule(con: duckdb.DuckDBPyConnection, data: st.DataObject, code: str) -> None:
    spec = CATALOG.sub_item(code)
    rec = data.draw(valid_record(code))
    f = data.draw(st.sampled_from(list(spec.fields)))
    if f.name == "uscc":
        good = rec["uscc"]
        pos = data.draw(st.integers(0, 17))
        bad_char = data.draw(st.sampled_from([c for c in CHARSET if c != good[pos] and (pos not in range(2, 8) or c.isdigit())]))
        rec["uscc"] = good[:pos] + bad_char + good[pos + 1:]
        assert "uscc:uscc_check" in failures(con, code, rec)
    elif f.dtype == "category":
        rec[f.name] = "not_a_code"
        assert f"{f.name}:allowed_values" in failures(con, code, rec)
    elif f.dtype in ("int", "float"):
        rec[f.name] = "twelve"
        assert f"{f.name}:dtype" in failures(con, code, rec)
        if f.dtype == "int":                    # beyond 64 bits: a failed record, not a failed query
            rec[f.name] = data.draw(st.sampled_from(["1e20", "-9.3e18", "99999999999999999999"]))
            assert f"{f.name}:dtype" in failures(con, code, rec)
        if f.min is not None:
            rec[f.name] = str(f.min - 5)
            assert f"{f.name}:range" in failures(con, code, rec)
    elif f.dtype == "date":
        rec[f.name] = "1900-01-01"
        assert f"{f.name}:date_placeholder" in failures(con, code, rec)
        rec[f.name] = "2019-02-30"
        assert f"{f.name}:dtype" in failures(con, code, rec)


def test_normalisable_values_are_normalised_not_rejected(con: duckdb.DuckDBPyConnection) -> None:
    spec = CATALOG.sub_item("ent_registration")
    rec = {f: None for f in spec.field_names} | {
        "uscc": " ９１３３０９０２ma28k3qj6r ", "ent_status": "存续", "enterprise_scale": "MICRO ",
        "ent_type": "partnership", "district_code": "330902", "ftz_area": "none", "_available_date": "2019-01-01"}
    frame = pd.DataFrame([rec]).astype(object)
    con.register("one", frame)
    row = con.sql(validation_sql(spec, "one")).df().iloc[0]
    assert row["n_uscc"] == "91330902MA28K3QJ6R"
    assert row["n_ent_status"] == "active" and row["n_enterprise_scale"] == "micro"
    assert list(row["failures"]) == []


def test_future_and_disordered_dates(con: duckdb.DuckDBPyConnection) -> None:
    rec = {f: None for f in CATALOG.sub_item("litigation_cases").field_names} | {
        "uscc": "91330902MA28K3QJ6R", "case_id": "C_0000000000000001", "filing_date": "2020-05-01",
        "judgment_date": "2020-03-01", "_available_date": "2020-06-01"}
    assert "judgment_date:date_order" in failures(con, "litigation_cases", rec)
    rec |= {"judgment_date": None, "filing_date": "2021-01-01"}
    assert "filing_date:date_in_future" in failures(con, "litigation_cases", rec)
