"""Risk indicator mart: 1,000+ indicators declared as base signals x windows x aggregations.

`configs/risk_indicators.yaml` declares ~100 base signals (one SQL value or event filter over one
sub-item). `expand` multiplies them by the windows (1/3/6/12/24 months) and aggregations that apply;
`build_risk_indicator_mart` computes all of them with one generated query per source sub-item and
month batch, in a shape a distributed engine runs as well (DuckDB here; in Spark SQL the same text
runs with `arg_min/arg_max` spelled `min_by/max_by`): a range join, a projection, one hash group-by.

    known    = known_at(code)                       -- range join: every version known at each as_of
    pit      = known, with the month offset k of each row from its window end, filtered to k < 24
    per-firm = group by (uscc, as_of) with conditional aggregates  sum(case when k < w then v end) ...
    result   = arithmetic on those aggregates (mean, OLS slope, relative change), cast to float32

Point in time: a row for as_of only uses versions available by as_of (`known_at`): a late delivery
enters when it arrives, a revision replaces the earlier version from its own availability date.
Monthly series windows hold the `w` period months ending `lag_months` before the as_of month; event
windows hold events whose business date lies in the `w` calendar months ending with the as_of month.

Aggregation meanings (series = one value per period month; events = one row per event):
  count   series: months in the window with value > 0 (NaN if none reported); events: events in the window
  sum     sum of the values (events: 0 without events)
  mean    mean of the reported values (events: per event)
  max     largest value
  trend   OLS slope of the value on the month index, divided by |mean|: relative change per month
          (>= 2 reported months; a flat series, zeros included, is 0). Events: the slope of monthly event
          counts (months without events count 0) / mean monthly count; 0 without events
  change  (latest - earliest reported value in the window) / |earliest| (series; >= 2 reported months;
          0 when latest = earliest, NaN when it moves away from 0)
  months_since_last  months from the window end back to the latest month with value > 0 / the latest
          event, looking back over the longest window (NaN if none)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from data.marts.grid import known_at, register_months, registered_grid
from data.marts.risk_indicator_config import (
    Aggregation,
    BaseSignal,
    RiskIndicatorConfig,
    SignalDirection,
    SignalSource,
    SourceKind,
    load_risk_indicator_config,
    signal_stem,
)
from data.marts.spec import MartFeature

PREFIX = "ri_"
MIN_WINDOW: dict[SourceKind, dict[Aggregation, int]] = {
    # A 1-month series window holds one value: sum and max equal the mean, count duplicates a flag's
    # mean, trend and change are undefined. An OLS slope needs >= 3 months to mean anything.
    "series": {"mean": 1, "sum": 3, "max": 3, "count": 3, "trend": 3, "change": 3},
    "events": {"count": 1, "sum": 1, "mean": 1, "max": 1, "trend": 3},
}
ZERO_WITHOUT_DATA: frozenset[tuple[SourceKind, Aggregation]] = frozenset(
    {("events", "count"), ("events", "sum"), ("events", "trend")})
"""Indicators that are 0 (not missing) for a firm without events: every firm is covered by courts,
regulators and news; absence of a record means absence of an event (and a flat count of zero)."""


@dataclass(frozen=True)
class RiskIndicator:
    """One mart column: a base signal aggregated over one window (None for months_since_last)."""

    name: str
    source: str
    kind: SourceKind
    signal: str
    stem: str
    aggregation: Aggregation
    window: int | None
    date_field: str
    risk_direction: SignalDirection
    reason_group: str
    meaning_en: str
    meaning_zh: str

    @property
    def fill_value(self) -> float:
        """Value for a registered firm-month with no source row in the lookback (source present)."""
        return 0.0 if (self.kind, self.aggregation) in ZERO_WITHOUT_DATA else math.nan

    def to_mart_feature(self) -> MartFeature:
        return MartFeature(self.name, "float", self.meaning_en, self.meaning_zh, self.risk_direction,
                           self.reason_group)


def applies(kind: SourceKind, aggregation: Aggregation, window: int | None) -> bool:
    """Whether an aggregation is defined (and not a duplicate by construction) for a window."""
    if aggregation == "months_since_last":
        return window is None
    if window is None:
        return False
    minimum = MIN_WINDOW[kind].get(aggregation)
    return minimum is not None and window >= minimum


_FLIPPED: dict[SignalDirection, SignalDirection] = {"+": "-", "-": "+", "none": "none"}


def _window_text(src: SignalSource, w: int) -> tuple[str, str]:
    if src.kind == "events":
        if w == 1:
            return "in the as_of month", "观察当月"
        return f"in the {w} months up to as_of", f"近{w}个月(含观察月)"
    lag = src.lag_months
    end_en = "the as_of month" if lag == 0 else f"{lag} month{'s' if lag > 1 else ''} before as_of"
    end_zh = "观察月" if lag == 0 else f"观察月前{lag}个月"
    if w == 1:
        return f"in the latest period ({end_en})", f"{end_zh}当月"
    return f"over the {w} months ending {end_en}", f"截至{end_zh}的近{w}个月"


def _meanings(src: SignalSource, sig: BaseSignal, agg: Aggregation, w: int | None,
              lookback: int) -> tuple[str, str]:
    m_en, m_zh = sig.meaning_en, sig.meaning_zh
    unit = f" [{sig.unit}]" if sig.unit not in ("-", "flag") else ""
    date_note = f" (dated by {sig.date_field or src.date_field})" if src.kind == "events" else ""
    if agg == "months_since_last":
        if src.kind == "events":
            return (f"Months since the latest event: {m_en}{date_note}; as_of month = 0, "
                    f"NaN if none in {lookback} months",
                    f"距最近一次{m_zh}的月数(观察当月为0,近{lookback}个月无则为空)")
        return (f"Months since the latest month with {m_en} > 0; window end = 0, "
                f"NaN if none in {lookback} months",
                f"距最近一次{m_zh}大于0的月数(窗口末月为0,近{lookback}个月无则为空)")
    assert w is not None
    wen, wzh = _window_text(src, w)
    if src.kind == "events":
        en = {"count": f"Number of events {wen}: {m_en}{date_note}",
              "sum": f"Total {m_en}{unit} {wen}{date_note} (0 without events)",
              "mean": f"Mean per event of {m_en}{unit} {wen}{date_note}",
              "max": f"Largest single-event {m_en}{unit} {wen}{date_note}",
              "trend": f"Trend of monthly event counts {wen}: {m_en}{date_note}; OLS slope / mean monthly count "
                       "(0 without events)"}
        zh = {"count": f"{wzh}{m_zh}次数", "sum": f"{wzh}{m_zh}合计", "mean": f"{wzh}{m_zh}单次均值",
              "max": f"{wzh}{m_zh}单次最大值", "trend": f"{wzh}{m_zh}月度次数趋势(OLS斜率/月均次数,无事件为0)"}
        return en[agg], zh[agg]
    en = {"mean": f"Mean monthly {m_en}{unit} {wen}",
          "sum": f"Sum of monthly {m_en}{unit} {wen}",
          "max": f"Largest monthly {m_en}{unit} {wen}",
          "count": f"Months with {m_en} > 0 {wen} (NaN if nothing reported)",
          "trend": f"Trend of monthly {m_en} {wen}: OLS slope per month / |mean| (flat = 0)",
          "change": f"Relative change of monthly {m_en} {wen}: (latest - earliest) / |earliest| "
                    "(unchanged = 0)"}
    zh = {"mean": f"{wzh}{m_zh}月均值", "sum": f"{wzh}{m_zh}合计", "max": f"{wzh}{m_zh}单月最大值",
          "count": f"{wzh}{m_zh}大于0的月数", "trend": f"{wzh}{m_zh}趋势(月度OLS斜率/均值绝对值)",
          "change": f"{wzh}{m_zh}变化率((末值-首值)/首值绝对值)"}
    if w == 1 and agg == "mean":
        return f"{m_en}{unit} {wen}", f"{wzh}{m_zh}"
    return en[agg], zh[agg]


def expand(config: RiskIndicatorConfig) -> list[RiskIndicator]:
    """The declared product: every signal x applicable window x aggregation, grouped by source."""
    out: list[RiskIndicator] = []
    lookback = config.max_window
    for src in config.sources:
        for sig in src.signals:
            stem = signal_stem(src, sig)
            windows = sig.windows or config.windows
            for agg in sig.aggregations:
                for w in ((None,) if agg == "months_since_last" else windows):
                    if not applies(src.kind, agg, w):
                        continue
                    name = f"{PREFIX}{stem}__{agg}" if w is None else f"{PREFIX}{stem}__{agg}_{w}m"
                    en, zh = _meanings(src, sig, agg, w, lookback)
                    direction = _FLIPPED[sig.risk_direction] if agg == "months_since_last" else sig.risk_direction
                    out.append(RiskIndicator(name, src.code, src.kind, sig.name, stem, agg, w,
                                             sig.date_field or src.date_field, direction, sig.reason_group,
                                             en, zh))
    return out


def risk_indicator_features(config: RiskIndicatorConfig | None = None) -> tuple[MartFeature, ...]:
    """The MartFeature declaration of every indicator column (keys excluded), in column order."""
    return tuple(i.to_mart_feature() for i in expand(config or load_risk_indicator_config()))


# ----------------------------------------------------------------------------- SQL generation

class _Aggregates:
    """Raw aggregate expressions of one group-by, deduplicated (mean and trend share count and sum)."""

    def __init__(self) -> None:
        self.exprs: dict[str, str] = {}

    def __call__(self, sql: str) -> str:
        if sql not in self.exprs:
            self.exprs[sql] = f"a{len(self.exprs)}"
        return self.exprs[sql]


def _month_index(d: str) -> str:
    return f"(year({d}) * 12 + month({d}))"


def _series_expression(agg: _Aggregates, ind: RiskIndicator, v: str) -> str:
    if ind.aggregation == "months_since_last":
        return agg(f"min(case when {v} > 0 then k end)")
    w = ind.window
    inw = f"k < {w}"
    n = agg(f"count(case when {inw} then {v} end)")
    s = agg(f"sum(case when {inw} then {v} end)")
    if ind.aggregation == "mean":
        return f"{s} / nullif({n}, 0)"
    if ind.aggregation == "sum":
        return s
    if ind.aggregation == "max":
        return agg(f"max(case when {inw} then {v} end)")
    if ind.aggregation == "count":
        positive = agg(f"sum(case when {inw} and {v} > 0 then 1 else 0 end)")
        return f"case when {n} > 0 then {positive} end"
    seen = f"{inw} and {v} is not null"
    if ind.aggregation == "trend":   # t = -k (older months have smaller t)
        st = agg(f"sum(case when {seen} then -k end)")
        stt = agg(f"sum(case when {seen} then k * k end)")
        stv = agg(f"sum(case when {seen} then -k * {v} end)")
        num = f"({n} * {stv} - {st} * {s})"
        slope = f"{num} / nullif({n} * {stt} - {st} * {st}, 0)"
        return (f"case when {n} >= 2 then case when {num} = 0 then 0 "
                f"else ({slope}) / nullif(abs({s} / {n}), 0) end end")
    if ind.aggregation == "change":
        first = agg(f"arg_max({v}, case when {seen} then k end)")
        last = agg(f"arg_min({v}, case when {seen} then k end)")
        return (f"case when {n} >= 2 then case when {last} = {first} then 0 "
                f"else ({last} - {first}) / nullif(abs({first}), 0) end end")
    raise AssertionError(ind.aggregation)


def _event_expression(agg: _Aggregates, ind: RiskIndicator, p: str, v: str | None) -> str:
    k = f"k_{ind.date_field}"
    if ind.aggregation == "months_since_last":
        return agg(f"min(case when {p} then {k} end)")
    w = ind.window
    assert w is not None
    cond = f"{p} and {k} < {w}"
    c = agg(f"sum(case when {cond} then 1 else 0 end)")
    if ind.aggregation == "count":
        return c
    if ind.aggregation == "trend":
        # OLS of monthly counts c_t on t = -k over all w months (empty months = 0): the sums over t are
        # constants, sum(t * c_t) = -sum(k) over the events; divided by the mean monthly count c / w.
        st = -w * (w - 1) / 2
        stt = (w - 1) * w * (2 * w - 1) / 6
        den = w * stt - st * st
        sk = agg(f"sum(case when {cond} then {k} end)")
        return f"case when {c} > 0 then {w} * ({w} * (-{sk}) - ({st}) * {c}) / ({den} * {c}) else 0 end"
    assert v is not None
    s = agg(f"sum(case when {cond} then {v} end)")
    if ind.aggregation == "sum":
        return f"coalesce({s}, 0)"
    if ind.aggregation == "mean":
        return f"{s} / nullif({agg(f'count(case when {cond} then {v} end)')}, 0)"
    if ind.aggregation == "max":
        return agg(f"max(case when {cond} then {v} end)")
    raise AssertionError(ind.aggregation)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def source_sql(src: SignalSource, indicators: Sequence[RiskIndicator], lookback: int) -> str:
    """The one query computing every indicator of `src` for every `_months.as_of` (uscc, as_of, columns)."""
    # one pit column per distinct value / predicate text (signals often share a filter)
    values: dict[str, str] = {}
    predicates: dict[str, str] = {}
    value_of: dict[str, str] = {}
    predicate_of: dict[str, str] = {}
    for s in src.signals:
        if s.value is not None:
            value_of[s.name] = values.setdefault(f"cast(({s.value}) as double)", f"v{len(values)}")
        if src.kind == "events":
            p = f"coalesce(({s.where}), false)" if s.where else "true"
            predicate_of[s.name] = predicates.setdefault(p, f"p{len(predicates)}")
    agg = _Aggregates()
    finals: list[str] = []
    if src.kind == "series":
        k = f"{_month_index('as_of')} - {src.lag_months} - {_month_index(src.date_field)}"
        pit = (f"select as_of, uscc, {k} as k, {', '.join(f'{e} as {a}' for e, a in values.items())} "
               f"from ({known_at(src.code)}) known where {k} between 0 and {lookback - 1}")
        for ind in indicators:
            finals.append(_series_expression(agg, ind, value_of[ind.signal]))
    else:
        dates = sorted({ind.date_field for ind in indicators})
        cols = [f"case when {d} <= as_of and {_month_index('as_of')} - {_month_index(d)} < {lookback} "
                f"then {_month_index('as_of')} - {_month_index(d)} end as k_{d}" for d in dates]
        cols += [f"{e} as {a}" for e, a in {**predicates, **values}.items()]
        inner = f"select as_of, uscc, {', '.join(cols)} from ({known_at(src.code)}) known"
        pit = f"select * from ({inner}) e where " + " or ".join(f"k_{d} is not null" for d in dates)
        for ind in indicators:
            finals.append(_event_expression(agg, ind, predicate_of[ind.signal], value_of.get(ind.signal)))
    raw = ",\n       ".join(f"{sql} as {alias}" for sql, alias in agg.exprs.items())
    out = ",\n       ".join(f"cast({e} as float) as {_quote(ind.name)}" for e, ind in zip(finals, indicators, strict=True))
    return (f"with pit as ({pit}),\n"
            f"per_firm as (select uscc, as_of,\n       {raw}\n  from pit group by uscc, as_of)\n"
            f"select uscc, as_of,\n       {out}\nfrom per_firm")


# ----------------------------------------------------------------------------- build

@dataclass(frozen=True)
class _Plan:
    """What one build computes: the indicators, the registered grid, and each present source's columns."""

    config: RiskIndicatorConfig
    indicators: list[RiskIndicator]
    grid: pd.DataFrame
    spans: list[tuple[SignalSource, int, int]]


def _present_sources(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("select table_name from information_schema.tables").fetchall()
    return {r[0][:-4] for r in rows if r[0].endswith("_scd")}


def _plan(con: duckdb.DuckDBPyConnection, months: Sequence[date], config: RiskIndicatorConfig | None) -> _Plan:
    config = config or load_risk_indicator_config()
    indicators = expand(config)
    present = _present_sources(con)
    spans: list[tuple[SignalSource, int, int]] = []
    start = 0
    for src in config.sources:
        stop = start + sum(1 for i in indicators[start:] if i.source == src.code)
        if src.code in present:
            spans.append((src, start, stop))
        start = stop
    assert start == len(indicators), "expand() must keep each source's indicators contiguous"
    return _Plan(config, indicators, registered_grid(con, months), spans)


def _batch_slices(grid: pd.DataFrame, batch_rows: int) -> Iterator[tuple[int, int]]:
    """Row ranges of whole months (the grid is ordered by as_of) of about `batch_rows` rows, >= 1 month."""
    bounds = np.flatnonzero(np.r_[True, grid["as_of"].to_numpy()[1:] != grid["as_of"].to_numpy()[:-1]])
    bounds = np.r_[bounds, len(grid)]
    r0 = 0
    for b0, b1 in itertools.pairwise(bounds):
        if b0 > r0 and b1 - r0 > batch_rows:
            yield r0, int(b0)
            r0 = int(b0)
    if len(grid):
        yield r0, len(grid)


def _fill_batch(con: duckdb.DuckDBPyConnection, plan: _Plan, batch: pd.DataFrame, out: np.ndarray) -> None:
    """Compute every indicator for the firm-months of `batch` (whole months) into `out`, row-aligned."""
    out[:] = np.nan
    for _, c0, c1 in plan.spans:
        for c in range(c0, c1):
            fill = plan.indicators[c].fill_value
            if not math.isnan(fill):
                out[:, c] = fill
    firms = pd.Index(batch["uscc"].unique())
    month_index = pd.DatetimeIndex(sorted(batch["as_of"].unique()))
    lookup = np.full((len(firms), len(month_index)), -1, dtype=np.int64)
    lookup[firms.get_indexer(batch["uscc"]), month_index.get_indexer(batch["as_of"])] = np.arange(len(batch))
    register_months(con, [m.date() for m in month_index])
    for src, c0, c1 in plan.spans:
        res = con.execute(source_sql(src, plan.indicators[c0:c1], plan.config.max_window)).df()
        if res.empty:
            continue
        f = firms.get_indexer(res["uscc"])
        m = month_index.get_indexer(pd.to_datetime(res["as_of"]))
        ok = (f >= 0) & (m >= 0)           # firm-months outside the registered grid are dropped
        rows = lookup[f[ok], m[ok]]
        keep = rows >= 0
        out[rows[keep], c0:c1] = res.iloc[:, 2:].to_numpy(dtype=np.float32)[ok][keep]


def _frame(batch: pd.DataFrame, values: np.ndarray, names: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(values, columns=names, copy=False)
    out.insert(0, "as_of", batch["as_of"].to_numpy())
    out.insert(0, "uscc", batch["uscc"].to_numpy())
    return out


def build_risk_indicator_mart(con: duckdb.DuckDBPyConnection, months: Sequence[date],
                              config: RiskIndicatorConfig | None = None, *,
                              batch_rows: int = 25_000) -> pd.DataFrame:
    """One row per registered (uscc, as_of): `uscc`, `as_of`, then every indicator as float32.

    Months are processed in batches of about `batch_rows` firm-months: DuckDB holds ~400 aggregate
    states per firm-month for the widest source, so the batch size, not the grid length, bounds its
    memory. Batches are written into one preallocated float32 block (no concatenation copy). A source
    absent from the warehouse leaves its columns NaN (not applicable), never 0.
    """
    plan = _plan(con, months, config)
    values = np.empty((len(plan.grid), len(plan.indicators)), dtype=np.float32)
    for r0, r1 in _batch_slices(plan.grid, batch_rows):
        _fill_batch(con, plan, plan.grid.iloc[r0:r1], values[r0:r1])
    register_months(con, months)
    return _frame(plan.grid, values, [i.name for i in plan.indicators])


def iter_risk_indicator_mart(con: duckdb.DuckDBPyConnection, months: Sequence[date],
                             config: RiskIndicatorConfig | None = None, *,
                             batch_rows: int = 25_000) -> Iterator[pd.DataFrame]:
    """The same mart as `build_risk_indicator_mart`, yielded batch by batch (whole months, in as_of order).

    For grids whose float32 output does not fit comfortably in memory (8k firms x 72 months x 1,478
    columns = 3 GB): write each batch (e.g. to Parquet) and drop it.
    """
    plan = _plan(con, months, config)
    names = [i.name for i in plan.indicators]
    for r0, r1 in _batch_slices(plan.grid, batch_rows):
        batch = plan.grid.iloc[r0:r1].reset_index(drop=True)
        values = np.empty((len(batch), len(names)), dtype=np.float32)
        _fill_batch(con, plan, batch, values)
        yield _frame(batch, values, names)
    register_months(con, months)


# ----------------------------------------------------------------------------- dictionary

def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def risk_indicator_dictionary_markdown(config: RiskIndicatorConfig | None = None) -> str:
    """The generated data dictionary of the risk indicator mart (one table row per indicator)."""
    config = config or load_risk_indicator_config()
    indicators = expand(config)
    groups = {g.id: g for g in config.reason_groups}
    n_signals = sum(len(s.signals) for s in config.sources)
    lines = [
        "# Risk indicator dictionary (风险指标字典)",
        "",
        f"Generated from `configs/risk_indicators.yaml` (version {config.version}): {n_signals} base signals "
        f"over {len(config.sources)} sub-items, windows {list(config.windows)} months, "
        f"**{len(indicators)} indicators**. Do not edit: regenerate.",
        "",
        "Aggregations: count (series: months with value > 0; events: number of events), sum, mean, max, "
        "trend (OLS slope per month / |mean|, flat = 0; events: of monthly counts, 0 without events), "
        "change ((latest - earliest) / |earliest|, series, unchanged = 0), months_since_last (months since "
        "the latest positive month / event, NaN if none within the longest window). "
        "Series windows end `lag_months` before the as_of month and use rows available by as_of; event "
        "windows cover the business dates of the last w months up to as_of, known by as_of.",
        "Direction: + higher value = more default risk; - less risk; none = no monotone relation.",
        "",
        "| name | 中文 | English | source | window | aggregation | direction | reason group |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i in indicators:
        window = "-" if i.window is None else f"{i.window}m"
        source = f"{i.source}.{i.date_field}"
        g = groups[i.reason_group]
        lines.append(f"| `{i.name}` | {_cell(i.meaning_zh)} | {_cell(i.meaning_en)} | {source} | {window} | "
                     f"{i.aggregation} | {i.risk_direction} | {g.name_zh} {g.id} |")
    return "\n".join(lines) + "\n"
