"""Risk indicator mart: the declared product, aggregation semantics, point in time, a real small world."""

from __future__ import annotations

import math
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.marts.grid import connect_warehouse, known_at, month_ends, register_months, registered_grid
from data.marts.risk_indicator_config import (
    RiskIndicatorConfig,
    check_against_catalog,
    load_risk_indicator_config,
)
from data.marts.risk_indicators import (
    applies,
    build_risk_indicator_mart,
    expand,
    iter_risk_indicator_mart,
    risk_indicator_dictionary_markdown,
    risk_indicator_features,
)
from data.warehouse.views import refresh_views
from kernel.catalog import SubItem, load_catalog
from kernel.config import configs_dir
from kernel.errors import ConfigError

FIRM = "91330902MA28K3QJ6R"
OTHER = "91330903MA12DD2777"
GONE = "91330921MAY1JJC1XU"


# ----------------------------------------------------------------------------- the declared product

@pytest.fixture(scope="module")
def config() -> RiskIndicatorConfig:
    return load_risk_indicator_config()


def test_expansion_exceeds_1000_unique_self_explaining_names(config) -> None:
    inds = expand(config)
    names = [i.name for i in inds]
    assert len(names) > 1000
    assert len(set(names)) == len(names)
    assert all(n.startswith("ri_") and n == n.lower() for n in names)
    for example in ("ri_tax_monthly__vat_taxable_sales__mean_12m", "ri_litigation_defendant__count_6m",
                    "ri_admin_penalty__months_since_last"):
        assert example in names
    features = risk_indicator_features(config)
    assert [f.name for f in features] == names
    assert {f.dtype for f in features} == {"float"}
    assert {f.reason_group for f in features} <= {g.id for g in config.reason_groups}
    assert all(f.meaning_en and f.meaning_zh for f in features)


def test_no_indicator_is_constant_or_duplicate_by_construction(config) -> None:
    """Every window/aggregation pair is defined, and no two indicators compute the same thing."""
    inds = expand(config)
    signals = {(s.code, sig.name): sig for s in config.sources for sig in s.signals}
    keys = []
    for i in inds:
        assert applies(i.kind, i.aggregation, i.window), i.name
        if i.aggregation in ("trend", "change"):
            assert i.window >= 3, i.name           # a slope over one month is undefined
        if i.kind == "series" and i.window == 1:
            assert i.aggregation == "mean", i.name  # sum/max/count of one value duplicate it
        sig = signals[(i.source, i.signal)]
        uses_value = i.kind == "series" or i.aggregation in ("sum", "mean", "max")
        keys.append((i.source, sig.where, sig.value if uses_value else None, i.date_field, i.aggregation,
                     i.window))
    dup = [k for k, n in Counter(keys).items() if n > 1]
    assert not dup


def test_direction_flips_for_recency(config) -> None:
    by_name = {i.name: i for i in expand(config)}
    assert by_name["ri_admin_penalty__count_12m"].risk_direction == "+"
    assert by_name["ri_admin_penalty__months_since_last"].risk_direction == "-"
    assert by_name["ri_tax_monthly__vat_taxable_sales__trend_12m"].risk_direction == "-"


def test_dictionary_has_one_row_per_indicator(config) -> None:
    md = risk_indicator_dictionary_markdown(config)
    rows = [line for line in md.splitlines() if line.startswith("| `ri_")]
    assert len(rows) == len(expand(config))
    row = next(r for r in rows if r.startswith("| `ri_litigation_defendant__count_6m`"))
    assert "作为被告" in row and "defendant" in row and "litigation_cases.filing_date" in row and "| 6m |" in row


def _raw_config() -> dict:
    return yaml.safe_load((configs_dir() / "risk_indicators.yaml").read_text(encoding="utf-8"))


def _signal(raw: dict, code: str, name: str) -> dict:
    src = next(s for s in raw["sources"] if s["code"] == code)
    return next(s for s in src["signals"] if s["name"] == name)


@pytest.mark.parametrize(("code", "name", "change", "message"), [
    ("litigation_cases", "litigation_defendant", {"where": "party_role = 'defendent'"}, "defendent"),
    ("tax_monthly", "vat_paid", {"value": "vat_payed"}, "vat_payed"),
    ("litigation_cases", "litigation_defendant", {"date_field": "court_type"}, "court_type"),
    ("litigation_cases", "litigation_defendant", {"aggregations": ["count", "change"]}, "change"),
    ("tax_monthly", "vat_paid", {"value": None}, "value"),
    ("admin_penalties", "admin_penalty", {"aggregations": ["count", "sum"]}, "need a value"),
    ("tax_monthly", "vat_paid", {"reason_group": "weather"}, "weather"),
    ("tax_monthly", "vat_paid", {"windows": [2]}, "windows"),
    ("tax_monthly", "vat_paid", {"where": "vat_paid > 0"}, "filter inside"),
])
def test_config_errors_name_the_signal_and_rule(code, name, change, message) -> None:
    raw = _raw_config()
    _signal(raw, code, name).update(change)
    with pytest.raises((ConfigError, ValueError), match=message):
        check_against_catalog(RiskIndicatorConfig.model_validate(raw), load_catalog())


# ----------------------------------------------------------------------------- tiny warehouses

def _tiny_config() -> RiskIndicatorConfig:
    def signal(name: str, aggs: list[str], **kw: str) -> dict:
        return {"name": name, "aggregations": aggs, "risk_direction": "+", "reason_group": "test",
                "meaning_en": f"test {name}", "meaning_zh": "测试", **kw}
    raw = {"version": 1, "windows": [1, 3, 6, 12, 24],
           "reason_groups": [{"id": "test", "name_en": "test", "name_zh": "测试"}],
           "sources": [
               {"code": "tax_monthly", "kind": "series", "date_field": "period_month", "lag_months": 1,
                "signals": [signal("x", ["count", "sum", "mean", "max", "trend", "change", "months_since_last"],
                                   value="invoices_issued_amount")]},
               {"code": "litigation_cases", "kind": "events", "date_field": "filing_date",
                "signals": [signal("sued", ["count", "trend", "months_since_last"], where="party_role = 'defendant'"),
                            signal("sued__claim", ["sum", "mean", "max"], where="party_role = 'defendant'",
                                   value="claim_amount")]}]}
    return check_against_catalog(RiskIndicatorConfig.model_validate(raw), load_catalog())


TINY = _tiny_config()
SCD_KEYS = {"ent_registration": "uscc", "tax_monthly": "uscc, period_month", "litigation_cases": "uscc, case_id"}


def _memory_warehouse(frames: dict[str, pd.DataFrame]) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB with `<code>` tables and `<code>_scd` views shaped like data/warehouse/views.py."""
    con = duckdb.connect()
    for code, df in frames.items():
        con.register(f"_{code}_df", df)
        con.execute(f"create table {code} as select * from _{code}_df")
        con.execute(f"""create view {code}_scd as select *, _available_date as _known_from,
            lead(_available_date) over (partition by {SCD_KEYS[code]} order by _available_date, _source_line)
            as _known_to from {code}""")
    return con


def _registrations() -> pd.DataFrame:
    return pd.DataFrame({"uscc": [FIRM, OTHER], "ent_status": ["active", "active"],
                         "_available_date": [date(2010, 1, 1)] * 2, "_source_line": [1, 2]})


def _midx(d: date) -> int:
    return d.year * 12 + d.month


def _month_end(year: int, month: int) -> date:
    return (pd.Timestamp(year, month, 1) + pd.offsets.MonthEnd(0)).date()


def _known(versions: list[dict], key: str, as_of: date) -> list[dict]:
    """Reference point in time: per key, the latest version available on or before as_of."""
    latest: dict[object, dict] = {}
    for v in sorted(versions, key=lambda v: (v["_available_date"], v["_source_line"])):
        if v["_available_date"] <= as_of:
            latest[v[key]] = v
    return list(latest.values())


def _slope(t: list[float], y: list[float]) -> float:
    return float(np.polyfit(np.asarray(t, float), np.asarray(y, float), 1)[0])


def _ref_series(versions: list[dict], as_of: date, w: int) -> dict[str, float]:
    end = _midx(as_of) - 1
    vals = {end - _midx(v["period_month"]): v["invoices_issued_amount"] for v in _known(versions, "period_month", as_of)}
    vals = {k: x for k, x in vals.items() if 0 <= k < 24}
    inw = sorted((k, x) for k, x in vals.items() if k < w and x is not None)
    out = {"since": min((k for k, x in vals.items() if x is not None and x > 0), default=math.nan)}
    n = len(inw)
    ys = [x for _, x in inw]
    out.update(sum=sum(ys) if n else math.nan, mean=sum(ys) / n if n else math.nan,
               max=max(ys) if n else math.nan, count=sum(x > 0 for x in ys) if n else math.nan,
               trend=math.nan, change=math.nan)
    if n >= 2:
        slope = _slope([-k for k, _ in inw], ys)
        mean = sum(ys) / n
        out["trend"] = 0.0 if abs(slope) < 1e-9 else (slope / abs(mean) if mean != 0 else math.nan)
        first, last = inw[-1][1], inw[0][1]     # largest k = earliest month
        out["change"] = 0.0 if last == first else ((last - first) / abs(first) if first != 0 else math.nan)
    return out


def _ref_events(versions: list[dict], as_of: date, w: int) -> dict[str, float]:
    ev = [(_midx(as_of) - _midx(v["filing_date"]), v["claim_amount"])
          for v in _known(versions, "case_id", as_of) if v["party_role"] == "defendant" and v["filing_date"] <= as_of]
    ev = [(k, a) for k, a in ev if k < 24]
    inw = [(k, a) for k, a in ev if k < w]
    amounts = [a for _, a in inw if a is not None]
    counts = [sum(1 for k, _ in inw if k == j) for j in range(w)]
    trend = math.nan
    if w >= 3:
        trend = 0.0 if not inw else _slope([-j for j in range(w)], counts) / (len(inw) / w)
    return {"count": len(inw), "sum": float(sum(amounts)), "mean": np.mean(amounts) if amounts else math.nan,
            "max": max(amounts) if amounts else math.nan, "trend": trend,
            "since": min((k for k, _ in ev), default=math.nan)}


_value = st.one_of(st.none(), st.integers(-50, 500))
_version = st.tuples(_value, st.integers(1, 150), st.one_of(st.none(), st.tuples(_value, st.integers(1, 200))))
_event = st.tuples(st.integers(0, 4 * 365 - 1), st.integers(0, 120), st.sampled_from(["defendant", "plaintiff"]),
                   _value, st.one_of(st.none(), st.tuples(st.sampled_from(["defendant", "plaintiff"]), _value,
                                                          st.integers(1, 200))))


def _series_versions(start: int, periods: list) -> list[dict]:
    rows, line = [], 0
    for i, p in enumerate(periods):
        if p is None:               # not delivered
            continue
        m = start + i
        period = date(2018 + m // 12, m % 12 + 1, 1)
        end = _month_end(period.year, period.month)
        value, lag, revision = p
        line += 1
        rows.append({"uscc": FIRM, "period_month": period, "invoices_issued_amount": value,
                     "_available_date": end + timedelta(days=lag), "_source_line": line})
        if revision is not None:
            line += 1
            rows.append({"uscc": FIRM, "period_month": period, "invoices_issued_amount": revision[0],
                         "_available_date": end + timedelta(days=lag + revision[1]), "_source_line": line})
    return rows


def _event_versions(events: list) -> list[dict]:
    rows, line = [], 0
    for i, (day, lag, role, amount, revision) in enumerate(events):
        filing = date(2017, 1, 1) + timedelta(days=day)
        line += 1
        base = {"uscc": FIRM, "case_id": f"C_{i:016x}", "filing_date": filing}
        rows.append(base | {"party_role": role, "claim_amount": amount,
                            "_available_date": filing + timedelta(days=lag), "_source_line": line})
        if revision is not None:
            line += 1
            rows.append(base | {"party_role": revision[0], "claim_amount": revision[1],
                                "_available_date": filing + timedelta(days=lag + revision[2]), "_source_line": line})
    return rows


def _frame(rows: list[dict], columns: list[str], nullable: tuple[str, ...]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns)
    for c in nullable:
        df[c] = pd.array(df[c].tolist(), dtype="Float64")
    for c in columns:
        if c.endswith("_date") or c == "period_month":
            df[c] = pd.to_datetime(df[c])
    return df


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.integers(0, 10), periods=st.lists(st.one_of(st.none(), _version), max_size=30),
       events=st.lists(_event, max_size=12), as_of_months=st.lists(st.integers(0, 23), min_size=1, max_size=4,
                                                                   unique=True),
       batch_rows=st.sampled_from([1, 25_000]))
def test_aggregations_match_a_pure_python_reference(start, periods, events, as_of_months, batch_rows) -> None:
    series = _series_versions(start, periods)
    cases = _event_versions(events)
    con = _memory_warehouse({
        "ent_registration": _registrations(),
        "tax_monthly": _frame(series, ["uscc", "period_month", "invoices_issued_amount", "_available_date",
                                       "_source_line"], ("invoices_issued_amount",)),
        "litigation_cases": _frame(cases, ["uscc", "case_id", "filing_date", "party_role", "claim_amount",
                                           "_available_date", "_source_line"], ("claim_amount",)),
    })
    months = [_month_end(2019 + m // 12, m % 12 + 1) for m in as_of_months]
    mart = build_risk_indicator_mart(con, months, TINY, batch_rows=batch_rows)
    assert len(mart) == 2 * len(months)
    rows = {(r.uscc, pd.Timestamp(r.as_of).date()): r for r in mart.itertuples(index=False)}
    inds = expand(TINY)
    for as_of in months:
        got = rows[(FIRM, as_of)]._asdict()
        other = rows[(OTHER, as_of)]._asdict()
        for w in (*TINY.windows, None):
            ref_s, ref_e = _ref_series(series, as_of, w or 24), _ref_events(cases, as_of, w or 24)
            for i in inds:
                if i.window != w:
                    continue
                short = "since" if i.aggregation == "months_since_last" else i.aggregation
                expected = (ref_s if i.kind == "series" else ref_e)[short]
                assert np.isclose(got[i.name], expected, rtol=1e-5, atol=1e-6, equal_nan=True), \
                    (i.name, as_of, got[i.name], expected)
                # a firm without rows: series not applicable (NaN); events 0 where a count is defined
                assert np.isclose(other[i.name], i.fill_value, equal_nan=True), (i.name, other[i.name])


# ----------------------------------------------------------------------------- point in time (real views)

def _write_sub_item(ws: Path, spec: SubItem, rows: list[dict]) -> None:
    """Land rows as Parquet with every catalog field (typed), as ingestion would."""
    con = duckdb.connect()
    sql_type = {"string": "varchar", "category": "varchar", "int": "bigint", "float": "double",
                "bool": "boolean", "date": "date"}
    default = {"string": "x", "int": 0, "float": 0.0, "bool": False, "date": None}
    cols = [f.name for f in spec.fields] + ["_available_date", "_ingest_ts", "_source_line"]
    records = []
    for i, r in enumerate(rows):
        rec = {f.name: (f.allowed[0] if f.allowed else default[f.dtype]) for f in spec.fields}
        rec |= {"_ingest_ts": f"{r['_available_date']}T02:00:00", "_source_line": i + 1} | r
        records.append(rec)
    con.register("_rows", pd.DataFrame(records, columns=cols).astype(object))
    casts = [f"cast({f.name} as {sql_type[f.dtype]}) as {f.name}" for f in spec.fields]
    folder = ws / "warehouse" / spec.code
    folder.mkdir(parents=True)
    con.execute(f"""copy (select {', '.join(casts)}, cast(_available_date as date) as _available_date,
                    cast(_ingest_ts as varchar) as _ingest_ts, cast(_source_line as bigint) as _source_line
                    from _rows) to '{folder / "part-0.parquet"}' (format parquet)""")
    con.close()


@pytest.fixture(scope="module")
def pit_warehouse(tmp_path_factory) -> Path:
    """FIRM files monthly invoices of 10; period 2019-12 is revised to 1000 (available 2020-02-20) and
    period 2020-01 arrives late (2020-03-10). A lawsuit filed 2019-12-20 becomes known on 2020-02-05; a
    plaintiff case is revised to defendant on 2020-03-15. GONE deregisters on 2020-02-10."""
    ws = tmp_path_factory.mktemp("pit")
    cat = load_catalog()
    _write_sub_item(ws, cat.sub_item("ent_registration"), [
        {"uscc": FIRM, "ent_status": "active", "_available_date": date(2015, 1, 5)},
        {"uscc": GONE, "ent_status": "active", "_available_date": date(2015, 1, 5)},
        {"uscc": GONE, "ent_status": "deregistered", "_available_date": date(2020, 2, 10)},
    ])
    tax = []
    for p in pd.period_range("2018-06", "2020-02", freq="M"):
        start, end = p.start_time.date(), p.end_time.date()
        avail = date(2020, 3, 10) if str(p) == "2020-01" else end + timedelta(days=20)
        tax.append({"uscc": FIRM, "period_month": start, "invoices_issued_amount": 10.0, "_available_date": avail})
    tax.append({"uscc": FIRM, "period_month": date(2019, 12, 1), "invoices_issued_amount": 1000.0,
                "_available_date": date(2020, 2, 20)})
    _write_sub_item(ws, cat.sub_item("tax_monthly"), tax)
    _write_sub_item(ws, cat.sub_item("litigation_cases"), [
        {"uscc": FIRM, "case_id": "C_late", "filing_date": date(2019, 12, 20), "party_role": "defendant",
         "claim_amount": 80.0, "_available_date": date(2020, 2, 5)},
        {"uscc": FIRM, "case_id": "C_flip", "filing_date": date(2020, 1, 6), "party_role": "plaintiff",
         "claim_amount": 30.0, "_available_date": date(2020, 1, 13)},
        {"uscc": FIRM, "case_id": "C_flip", "filing_date": date(2020, 1, 6), "party_role": "defendant",
         "claim_amount": 30.0, "_available_date": date(2020, 3, 15)},
    ])
    return refresh_views(ws)


def test_late_revision_and_late_delivery_do_not_leak_backwards(pit_warehouse) -> None:
    months = month_ends("2020-01", "2020-03")
    with connect_warehouse(pit_warehouse) as con:
        mart = build_risk_indicator_mart(con, months).set_index(["uscc", "as_of"])
        alone = build_risk_indicator_mart(con, months[:1]).set_index(["uscc", "as_of"])
    jan, feb, mar = (pd.Timestamp(m) for m in months)
    mean = "ri_tax_monthly__invoices_issued_amount__mean_{}m"
    # Jan: window ends 2019-12, the revision (2020-02-20) is not known yet
    assert mart.loc[(FIRM, jan), mean.format(3)] == 10.0
    assert mart.loc[(FIRM, jan), mean.format(1)] == 10.0
    # Feb: 2019-12 revised to 1000; 2020-01 (late, 2020-03-10) not yet delivered
    assert np.isnan(mart.loc[(FIRM, feb), mean.format(1)])
    assert mart.loc[(FIRM, feb), mean.format(3)] == pytest.approx((10 + 1000) / 2)
    # Mar: the late month enters when it arrives
    assert mart.loc[(FIRM, mar), mean.format(3)] == pytest.approx((1000 + 10 + 10) / 3)
    # earlier as_of rows are identical whether later months are built with them or not
    pd.testing.assert_series_equal(mart.loc[(FIRM, jan)], alone.loc[(FIRM, jan)])
    # events: business date in the window, availability by as_of; the revision counts from its date
    sued = "ri_litigation_defendant__count_6m"
    assert [mart.loc[(FIRM, m), sued] for m in (jan, feb, mar)] == [0.0, 1.0, 2.0]
    assert mart.loc[(FIRM, mar), "ri_litigation_defendant__count_3m"] == 1.0   # December left the window
    assert mart.loc[(FIRM, mar), "ri_litigation_defendant__claim_amount__sum_6m"] == pytest.approx(110.0)
    assert mart.loc[(FIRM, jan), "ri_litigation_plaintiff__count_3m"] == 1.0
    assert mart.loc[(FIRM, mar), "ri_litigation_plaintiff__count_3m"] == 0.0
    assert mart.loc[(FIRM, feb), "ri_litigation_defendant__months_since_last"] == 2.0
    # registration: GONE drops out once its deregistration is known; absent sources stay NaN
    assert (GONE, jan) in mart.index and (GONE, feb) not in mart.index
    assert np.isnan(mart.loc[(FIRM, jan), "ri_admin_penalty__count_12m"])


def test_output_schema_and_batches(pit_warehouse) -> None:
    months = month_ends("2020-01", "2020-03")
    with connect_warehouse(pit_warehouse) as con:
        mart = build_risk_indicator_mart(con, months)
        batches = list(iter_risk_indicator_mart(con, months, batch_rows=1))
    names = [i.name for i in expand(load_risk_indicator_config())]
    assert list(mart.columns) == ["uscc", "as_of", *names]
    assert str(mart["as_of"].dtype).startswith("datetime64")
    assert (mart.dtypes.iloc[2:] == np.float32).all()
    assert [b["as_of"].nunique() for b in batches] == [1, 1, 1]
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), mart)


# ----------------------------------------------------------------------------- a real small world

def _signal_rows(con: duckdb.DuckDBPyConnection, config: RiskIndicatorConfig) -> dict[tuple[str, str], pd.DataFrame]:
    """Per signal: (uscc, as_of, k, v, p) of every known row in the longest window (an independent reading)."""
    have = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    out = {}
    for src in config.sources:
        if f"{src.code}_scd" not in have:
            continue
        for sig in src.signals:
            d = sig.date_field or src.date_field
            k = f"(year(as_of) * 12 + month(as_of)) - {src.lag_months} - (year({d}) * 12 + month({d}))"
            v = f"cast(({sig.value}) as double)" if sig.value else "1.0"
            p = f"coalesce(({sig.where}), false)" if sig.where else "true"
            out[(src.code, sig.name)] = con.execute(
                f"select uscc, as_of, {k} as k, {v} as v from ({known_at(src.code)}) "
                f"where {p} and {d} <= as_of and {k} between 0 and {config.max_window - 1}").df()
    return out


@pytest.mark.integration
def test_small_world_mart_one_row_per_firm_month_and_no_empty_indicator(small_warehouse) -> None:
    ws, _ = small_warehouse
    config = load_risk_indicator_config()
    months = month_ends("2018-01", "2018-12")
    with connect_warehouse(ws / "warehouse" / "warehouse.duckdb") as con:
        mart = build_risk_indicator_mart(con, months)
        grid = registered_grid(con, months)
        register_months(con, months)
        rows = _signal_rows(con, config)
    assert len(mart) == len(grid) > 0
    assert not mart.duplicated(["uscc", "as_of"]).any()
    pd.testing.assert_frame_equal(mart[["uscc", "as_of"]].reset_index(drop=True), grid.reset_index(drop=True))
    assert (mart.dtypes.iloc[2:] == np.float32).all()

    registered = pd.MultiIndex.from_frame(grid[["uscc", "as_of"]])
    rows = {key: df[pd.MultiIndex.from_frame(df[["uscc", "as_of"]]).isin(registered)] for key, df in rows.items()}
    checked, empty = 0, []
    for i in expand(config):
        df = rows.get((i.source, i.signal))
        if df is None:
            continue
        if i.aggregation == "months_since_last":
            has_data = (df["v"] > 0).any() if i.kind == "series" else len(df) > 0
        else:
            inw = df[(df["k"] < i.window) & df["v"].notna()]
            need = 2 if i.aggregation in ("trend", "change") and i.kind == "series" else 1
            has_data = (inw.groupby(["uscc", "as_of"]).size() >= need).any()
        if has_data:
            checked += 1
            if mart[i.name].isna().all():
                empty.append(i.name)
    assert not empty
    assert checked > 0.6 * len(expand(config))   # the check is not vacuous on this world
    # monthly-series indicators are NaN for firms a source does not cover, never 0
    uncovered = ~mart["uscc"].isin(rows[("customs_monthly", "export_value")]["uscc"])
    assert mart.loc[uncovered, "ri_customs_monthly__export_value__mean_12m"].isna().all()
