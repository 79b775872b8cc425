"""The marts the platform publishes, in build order, each with its builder and column declarations.

Adding a mart = one entry here (and its module); the feature store, dictionaries and FeatureServices
pick it up by name. Builders take a `MartContext`, so a mart can use one built before it (the credit
indicators read the equity mart's related-party score).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

import duckdb
import pandas as pd

from data.marts.spec import MartFeature


@dataclass
class MartContext:
    """What a mart builder may use: the warehouse, the months, workspace paths, earlier marts."""

    con: duckdb.DuckDBPyConnection
    months: list[date]
    ws: Path
    events: pd.DataFrame
    built: dict[str, pd.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class Mart:
    """A mart: `build` returns it whole; `stream`, when set, yields it in row batches instead (a mart too
    wide to hold in memory at scale, written batch by batch and not kept for later marts)."""

    name: str
    description: str
    build: Callable[[MartContext], pd.DataFrame]
    features: Callable[[], tuple[MartFeature, ...]]
    stream: Callable[[MartContext], Iterator[pd.DataFrame]] | None = None


def _equity(ctx: MartContext) -> pd.DataFrame:
    from data.marts.equity import build_equity_mart

    return build_equity_mart(ctx.con, ctx.months, ctx.events, ctx.ws / "marts" / "equity_graph")


@cache
def _equity_features() -> tuple[MartFeature, ...]:
    from data.marts.equity import EQUITY_FEATURES

    return EQUITY_FEATURES


def _indicators(ctx: MartContext) -> pd.DataFrame:
    from data.marts.indicators import build_indicator_mart, fit_reference, load_norm_params, save_norm_params

    # Normalisation parameters are frozen once fitted (indicators.md §3.8): reuse them; refit only
    # for a new world (make run clears marts/) or an explicit rebase (delete the file).
    path = ctx.ws / "marts" / "norm_params.json"
    if path.exists():
        params = load_norm_params(path)
    else:
        params = fit_reference(ctx.con)
        save_norm_params(params, path)
    related = ctx.built.get("equity")
    rp = related[["uscc", "as_of", "eq_related_party_risk_score"]] if related is not None else None
    return build_indicator_mart(ctx.con, ctx.months, params, related_party=rp)


@cache
def _indicator_features() -> tuple[MartFeature, ...]:
    from data.marts.indicators import INDICATOR_FEATURES

    return INDICATOR_FEATURES


def _risk(ctx: MartContext) -> pd.DataFrame:
    from data.marts.risk_indicators import build_risk_indicator_mart

    return build_risk_indicator_mart(ctx.con, ctx.months)


def _risk_stream(ctx: MartContext) -> Iterator[pd.DataFrame]:
    from data.marts.risk_indicators import iter_risk_indicator_mart

    return iter_risk_indicator_mart(ctx.con, ctx.months)


@cache
def _risk_features() -> tuple[MartFeature, ...]:
    from data.marts.risk_indicators import risk_indicator_features

    return risk_indicator_features()


def _credit_events(ctx: MartContext) -> pd.DataFrame:
    from data.marts.credit_events import build_credit_event_mart

    return build_credit_event_mart(ctx.con, ctx.months, ctx.events)


@cache
def _credit_event_features() -> tuple[MartFeature, ...]:
    from data.marts.credit_events import CREDIT_EVENT_FEATURES

    return CREDIT_EVENT_FEATURES


MARTS: tuple[Mart, ...] = (
    Mart("equity", "equity penetration, actual controllers, association groups, contagion", _equity,
         _equity_features),
    Mart("indicators", "the 49 credit indicators, 17/5 sub-indices and the composite credit index",
         _indicators, _indicator_features),
    Mart("risk_indicators", "1,000+ declared risk indicators (signal x window x aggregation)", _risk,
         _risk_features, stream=_risk_stream),
    Mart("credit_events", "the firm's own serious credit events: in default (grade D) and history", _credit_events,
         _credit_event_features),
)


def mart(name: str) -> Mart:
    for m in MARTS:
        if m.name == name:
            return m
    raise KeyError(f"unknown mart {name!r}; known: {', '.join(m.name for m in MARTS)}")
