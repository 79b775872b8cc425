"""configs/risk_indicators.yaml as frozen models: base signals, windows and aggregations.

The file declares ~100 base signals; `data.marts.risk_indicators.expand` turns them into the 1,000+
indicator columns. Structure is validated by pydantic; names, dates, identifiers and category literals
used in the SQL snippets are validated against the catalog by `check_against_catalog`, so a typo such as
`party_role = 'defendent'` fails at load time instead of silently producing an all-zero indicator.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from kernel.catalog import Catalog, SubItem, load_catalog
from kernel.config import FrozenModel, configs_dir, load_yaml_model
from kernel.errors import ConfigError

Aggregation = Literal["count", "sum", "mean", "max", "trend", "change", "months_since_last"]
SourceKind = Literal["series", "events"]
SignalDirection = Literal["+", "-", "none"]

AGGREGATIONS: tuple[Aggregation, ...] = ("count", "sum", "mean", "max", "trend", "change", "months_since_last")
VALUE_AGGREGATIONS = frozenset({"sum", "mean", "max", "change"})
"""Aggregations of a value: an event signal without `value` (each event counts once) cannot have them."""
SERIES_GRAINS = frozenset({"monthly_series", "monthly_snapshot"})
EVENT_GRAINS = frozenset({"event_list"})

_WORD = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"
SIGNAL_NAME = re.compile(rf"^{_WORD}(?:__{_WORD})?$")
_SQL_WORDS = frozenset({
    "and", "or", "not", "in", "is", "null", "case", "when", "then", "else", "end", "cast", "as", "double",
    "float", "integer", "bigint", "true", "false", "coalesce", "nullif", "abs", "greatest", "least",
    "between", "like", "ln", "sqrt"})
_LITERAL = re.compile(r"'((?:[^']|'')*)'")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ReasonGroup(FrozenModel):
    """A business reason a loan officer reads; shared by every indicator that speaks to it."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name_en: str
    name_zh: str


class BaseSignal(FrozenModel):
    """One monthly value (series) or one event filter (+ optional amount) over one sub-item.

    value: SQL expression over the sub-item's fields (series: required; events: the amount the
    sum/mean/max aggregate; None = each event counts once). where: SQL predicate selecting the rows.
    date_field: events only; the business date that places an event in a window (default: the source's).
    """

    name: str
    value: str | None = None
    where: str | None = None
    date_field: str | None = None
    aggregations: tuple[Aggregation, ...] = Field(min_length=1)
    windows: tuple[int, ...] | None = None
    risk_direction: SignalDirection
    reason_group: str
    unit: str = "-"
    meaning_en: str = Field(min_length=3)
    meaning_zh: str = Field(min_length=2)

    @field_validator("name")
    @classmethod
    def _snake_name(cls, v: str) -> str:
        if not SIGNAL_NAME.match(v):
            raise ValueError(f"signal name {v!r} is not lower_snake_case (optionally stem__measure)")
        return v

    @field_validator("aggregations")
    @classmethod
    def _unique_aggregations(cls, v: tuple[Aggregation, ...]) -> tuple[Aggregation, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"aggregations listed twice in {v}")
        return v


class SignalSource(FrozenModel):
    """One sub-item and the signals computed from it in one query.

    date_field: series = the period field (first day of the month, or a month-end evaluation date);
    events = the default business date. lag_months (series): the window ends this many months before
    the as_of month, i.e. at the latest period normally published by the as_of month end.
    """

    code: str
    kind: SourceKind
    date_field: str
    lag_months: int = Field(default=0, ge=0, le=12)
    signals: tuple[BaseSignal, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _kind_rules(self) -> SignalSource:
        for s in self.signals:
            where = f"{self.code}.{s.name}"
            if self.kind == "series":
                if s.value is None:
                    raise ValueError(f"{where}: a series signal needs a value expression")
                if s.date_field is not None:
                    raise ValueError(f"{where}: date_field is set per series source, not per signal")
                if s.where is not None:
                    raise ValueError(f"{where}: series signals filter inside `value` (case when ... end)")
                if "__" in s.name:
                    raise ValueError(f"{where}: series signal names are single words (the stem is <code>__<name>)")
            else:
                if self.lag_months:
                    raise ValueError(f"{self.code}: lag_months applies to series only")
                if "change" in s.aggregations:
                    raise ValueError(f"{where}: 'change' is defined for series only")
                if s.value is None and VALUE_AGGREGATIONS & set(s.aggregations):
                    raise ValueError(f"{where}: {sorted(VALUE_AGGREGATIONS & set(s.aggregations))} need a value")
        return self


class RiskIndicatorConfig(FrozenModel):
    """The whole declaration: windows, reason groups, sources with their signals."""

    version: int
    windows: tuple[int, ...] = Field(min_length=1)
    reason_groups: tuple[ReasonGroup, ...] = Field(min_length=1)
    presets: dict[str, tuple[Aggregation, ...]] = Field(default_factory=dict)
    sources: tuple[SignalSource, ...] = Field(min_length=1)

    @field_validator("windows")
    @classmethod
    def _ascending_windows(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(w < 1 for w in v) or list(v) != sorted(set(v)):
            raise ValueError(f"windows must be positive, unique and ascending: {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> RiskIndicatorConfig:
        codes = [s.code for s in self.sources]
        if len(set(codes)) != len(codes):
            raise ValueError("a sub-item is listed as a source twice")
        groups = {g.id for g in self.reason_groups}
        stems: set[str] = set()
        for src in self.sources:
            for s in src.signals:
                if s.reason_group not in groups:
                    raise ValueError(f"{src.code}.{s.name}: unknown reason_group {s.reason_group!r}")
                if s.windows is not None and not set(s.windows) <= set(self.windows):
                    raise ValueError(f"{src.code}.{s.name}: windows {s.windows} not among {self.windows}")
                stem = signal_stem(src, s)
                if stem in stems:
                    raise ValueError(f"signal {stem!r} declared twice")
                stems.add(stem)
        return self

    @property
    def max_window(self) -> int:
        return self.windows[-1]

    def source(self, code: str) -> SignalSource:
        for s in self.sources:
            if s.code == code:
                return s
        raise ConfigError(f"risk indicators: no source {code!r}")


def signal_stem(source: SignalSource, signal: BaseSignal) -> str:
    """The name part shared by all indicators of a signal: `<code>__<name>` for series, `<name>` for events."""
    return f"{source.code}__{signal.name}" if source.kind == "series" else signal.name


def sql_names(expr: str) -> tuple[set[str], set[str]]:
    """(identifiers, string literals) used in a SQL snippet (keywords and numbers removed)."""
    literals = {m.replace("''", "'") for m in _LITERAL.findall(expr)}
    bare = _NUMBER.sub(" ", _LITERAL.sub(" ", expr))
    idents = {t.lower() for t in _IDENTIFIER.findall(bare)} - _SQL_WORDS
    return idents, literals


def _check_expression(where: str, expr: str, spec: SubItem) -> None:
    idents, literals = sql_names(expr)
    unknown = sorted(idents - set(spec.field_names))
    if unknown:
        raise ConfigError(f"risk indicators: {where}: {unknown} are not fields of {spec.code}")
    allowed = {v for f in spec.fields if f.allowed for v in f.allowed}
    bad = sorted(literals - allowed)
    if bad:
        raise ConfigError(f"risk indicators: {where}: {bad} are not category values of {spec.code}")


def check_against_catalog(config: RiskIndicatorConfig, catalog: Catalog) -> RiskIndicatorConfig:
    """Sub-items, grains, date fields, identifiers and literals exist in the catalog; returns the config."""
    for src in config.sources:
        spec = catalog.sub_item(src.code)
        grains = SERIES_GRAINS if src.kind == "series" else EVENT_GRAINS
        if spec.grain not in grains:
            raise ConfigError(f"risk indicators: {src.code} has grain {spec.grain}, not usable as {src.kind}")
        if src.kind == "series" and src.date_field not in spec.key:
            raise ConfigError(f"risk indicators: {src.code}: period field {src.date_field!r} is not in the key")
        for s in src.signals:
            where = f"{src.code}.{s.name}"
            for d in {src.date_field, s.date_field or src.date_field}:
                if d not in spec.field_names or spec.field(d).dtype != "date":
                    raise ConfigError(f"risk indicators: {where}: {d!r} is not a date field of {src.code}")
            for expr in (s.value, s.where):
                if expr is not None:
                    _check_expression(where, expr, spec)
    return config


def load_risk_indicator_config(path: Path | None = None, catalog: Catalog | None = None) -> RiskIndicatorConfig:
    """Load configs/risk_indicators.yaml (or `path`), validate its structure and check it against the catalog."""
    config = load_yaml_model(RiskIndicatorConfig, path or configs_dir() / "risk_indicators.yaml")
    return check_against_catalog(config, catalog or load_catalog())
