"""Regional, industry and FTZ credit index series (自贸区信用指数), shared/domain/indicators.md §7.

A level series (the weighted mean CCI of a group, §7.2) moves whenever the population changes: young
entrants score lower and deregistered firms drop out. The published index therefore chains
month-to-month ratios over the *matched* set M_t = G_t ∩ G_{t-1} with weights fixed at t-1 (§7.3), so
only changes in the credit condition of enterprises present in both months move it. The same chain
gives the five first-level sub-index series; equal weights are the headline, sqrt(1 + t12m sales) the
economic variant.

Everything is vectorised over a long (group, firm, month) table: one pandas merge pairs each firm-group
row with the same firm's row one month earlier, and group-by sums give every link at once. The pure
functions (`index_groups`, `level_series`, `chain_linked_index`, `companion_statistics`,
`credit_index_table`) take hand-built frames; `build_credit_index` is the only one reading the
workspace and writing files.

Choices the spec leaves open (see the docstrings for the why):
* "scored" = the mart row has a CCI (firms younger than 3 months have none); a sub-index series uses
  the scored firms whose sub-index is available in the months it compares;
* group membership is the registration known at each month end, so a firm moving district leaves
  the old district's matched set and enters the new one (it is in neither M_t);
* suppression (< 30 scored enterprises) hides the published values of a cell; the chain itself runs
  through it, so a group that dips below 30 for a month continues on the same base afterwards;
* a link with no matched enterprise breaks the chain: the index is undefined on the far side of the
  break from the base month (never silently re-based); months before the base are back-cast;
* t12m_sales = expm1 of the mart's B1.1 raw value (ln(1 + trailing-12-month invoiced sales, CNY 10k),
  catalog Appendix B); firms without it (no tax coverage, < 12 months of history) get w = 1;
* the serious-credit-event rate is the share of the cell's scored enterprises with an event (by
  availability date, events.py) in the trailing 12 months;
* contributions (§7.5) are W_k x change of the matched-sample level of sub-index k, in CCI points;
  `contrib_residual` is what caps, rounding and N/A re-weighting add to the matched-sample CCI change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from data.marts.grid import connect_warehouse, known_at, register_months
from data.marts.indicator_config import IndicatorConfig, load_indicator_config
from kernel.config import FrozenModel, configs_dir, load_yaml_model
from kernel.errors import ConfigError, ZhouxinError
from kernel.workspace import features_dir, platform_dir, reports_dir, warehouse_db

log = logging.getLogger(__name__)

GroupKind = Literal["city", "district", "ftz", "ftz_area", "sector", "sector_group", "scale"]
Weighting = Literal["equal", "economic"]
KEYS = ["group", "as_of"]
CELL_KEYS = ["group", "as_of", "weighting"]
ATTRIBUTES = ("district_code", "ftz_area", "enterprise_scale", "industry_code")
MART_FILE = "mart_indicators.parquet"
OUTPUT_STEM = "credit_index"


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------


class CreditIndexConfig(FrozenModel):
    """configs/credit_index.yaml: base month, suppression, provisional months, groups and weights."""

    base_month: str = Field(pattern=r"^\d{4}-\d{2}$")
    min_cell_size: int = Field(30, ge=1)
    provisional_months: int = Field(2, ge=0)
    event_window_months: int = Field(12, ge=1)
    signal_level_threshold: int = Field(5, ge=1, le=8)
    weightings: tuple[Weighting, ...] = Field(("equal", "economic"), min_length=1)
    headline_weighting: Weighting = "equal"
    groups: tuple[GroupKind, ...] = Field(min_length=1)
    ftz_outside: str = "none"
    sector_groups: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> CreditIndexConfig:
        if len(set(self.weightings)) != len(self.weightings):
            raise ValueError("duplicate weightings")
        if self.headline_weighting not in self.weightings:
            raise ValueError(f"headline_weighting {self.headline_weighting!r} is not among the weightings")
        if len(set(self.groups)) != len(self.groups):
            raise ValueError("duplicate group kinds")
        for name, members in self.sector_groups.items():
            if not members:
                raise ValueError(f"sector group {name!r} has no member sector")
        return self

    def label(self, group: str) -> str:
        return self.labels.get(group, group)


def credit_index_config_path() -> Path:
    return configs_dir() / "credit_index.yaml"


def load_credit_index_config(path: Path | None = None) -> CreditIndexConfig:
    """The §7 settings; the default configs/credit_index.yaml is cached for the process."""
    if path is None:
        return _default_config()
    return load_yaml_model(CreditIndexConfig, path)


@cache
def _default_config() -> CreditIndexConfig:
    return load_yaml_model(CreditIndexConfig, credit_index_config_path())


def _measures(icfg: IndicatorConfig) -> list[tuple[str, str]]:
    """(published name, mart column): the CCI and the first-level sub-indices."""
    return [("cci", "cci"), *((m.code, f"idx_{m.code}") for m in icfg.level1)]


# ------------------------------------------------------------------------------------------------
# Groups (§7.1)
# ------------------------------------------------------------------------------------------------


def zhoushan_sector(industry_code: pd.Series, config: IndicatorConfig | None = None) -> pd.Series:
    """catalog Appendix A: first rule whose prefix matches the industry code (the last rule matches all)."""
    icfg = config or load_indicator_config()
    codes = industry_code.fillna("").astype(str)
    out = pd.Series(None, index=industry_code.index, dtype=object)
    for rule in reversed(icfg.sectors):            # later rules first, so the first match wins
        out[codes.str.startswith(tuple(rule.prefixes))] = rule.name
    return out


def registration_attributes(con: duckdb.DuckDBPyConnection, months: Sequence[date]) -> pd.DataFrame:
    """(uscc, as_of, district_code, ftz_area, enterprise_scale, industry_code) as known at each month end:
    the latest version known then, as the indicator mart reads it."""
    register_months(con, months)
    df = con.execute(f"""
        select uscc, as_of, {', '.join(ATTRIBUTES)} from ({known_at('ent_registration')})
        qualify row_number() over (partition by uscc, as_of order by _known_from desc, _ingest_ts desc) = 1
        order by as_of, uscc""").df()
    df["as_of"] = pd.to_datetime(df["as_of"]).astype("datetime64[ns]")
    return df


def index_groups(attributes: pd.DataFrame, config: CreditIndexConfig | None = None,
                 indicator_config: IndicatorConfig | None = None) -> pd.DataFrame:
    """Firm-month -> group memberships (uscc, as_of, kind, group), one row per membership.

    Group ids: `city`, `district:<code>`, `ftz`, `ftz_area:<area>`, `sector:<zhoushan_sector>`,
    `sector_group:<name>` (Appendix A groups), `scale:<enterprise_scale>`. A firm without a value for
    an attribute (null district) is simply in no group of that kind; it still counts for the city.
    """
    cfg = config or load_credit_index_config()
    icfg = indicator_config or load_indicator_config()
    known = set(icfg.sector_names())
    for name, members in cfg.sector_groups.items():
        unknown = sorted(set(members) - known)
        if unknown:
            raise ConfigError(f"credit_index.yaml: sector group {name!r}: unknown sectors {unknown}")
    a = attributes.drop_duplicates(["uscc", "as_of"]).reset_index(drop=True)
    a["as_of"] = pd.to_datetime(a["as_of"]).astype("datetime64[ns]")
    for col in ATTRIBUTES:
        if col not in a:
            a[col] = None
    sector = zhoushan_sector(a["industry_code"], icfg)
    area = a["ftz_area"].fillna(cfg.ftz_outside).astype(str)
    in_ftz = (area != cfg.ftz_outside).to_numpy()

    def part(kind: str, mask: np.ndarray | pd.Series, member: pd.Series | str | None) -> pd.DataFrame:
        m = np.asarray(mask, dtype=bool)
        rows = a.loc[m, ["uscc", "as_of"]]
        gid = kind if member is None else kind + ":" + (member[m].astype(str) if isinstance(member, pd.Series)
                                                      else member)
        return rows.assign(kind=kind, group=gid)

    everyone = np.ones(len(a), dtype=bool)
    frames: list[pd.DataFrame] = []
    for kind in cfg.groups:
        if kind == "city":
            frames.append(part("city", everyone, None))
        elif kind == "district":
            frames.append(part("district", a["district_code"].notna(), a["district_code"]))
        elif kind == "ftz":
            frames.append(part("ftz", in_ftz, None))
        elif kind == "ftz_area":
            frames.append(part("ftz_area", in_ftz, area))
        elif kind == "sector":
            frames.append(part("sector", sector.notna(), sector))
        elif kind == "sector_group":
            for name, members in cfg.sector_groups.items():
                frames.append(part("sector_group", sector.isin(members), name))
        elif kind == "scale":
            frames.append(part("scale", a["enterprise_scale"].notna(), a["enterprise_scale"]))
    out = pd.concat(frames, ignore_index=True)
    return out.drop_duplicates(["uscc", "as_of", "group"], ignore_index=True)


# ------------------------------------------------------------------------------------------------
# Panel, weights, base month
# ------------------------------------------------------------------------------------------------


def firm_panel(mart: pd.DataFrame, indicator_config: IndicatorConfig | None = None) -> pd.DataFrame:
    """The columns the index needs from the indicator mart (or its Feast export with event_timestamp):
    uscc, as_of, cci, idx_A..idx_E, cci_tier (if present) and t12m_sales (expm1 of the B1.1 raw value)."""
    icfg = indicator_config or load_indicator_config()
    m = mart.rename(columns={"event_timestamp": "as_of"})
    cols = ["uscc", "as_of", *(c for _, c in _measures(icfg)), *(["cci_tier"] if "cci_tier" in m else [])]
    out = m[cols].copy()
    out["as_of"] = pd.to_datetime(out["as_of"]).astype("datetime64[ns]")
    raw = m["ind_B1_1_raw"] if "ind_B1_1_raw" in m else pd.Series(np.nan, index=m.index)
    out["t12m_sales"] = np.expm1(raw.to_numpy(dtype=float)).clip(min=0)
    return out.reset_index(drop=True)


def firm_weights(panel: pd.DataFrame, weighting: Weighting) -> np.ndarray:
    """§7.2 weights: 1 (equal), sqrt(1 + t12m_sales) (economic; missing sales count as 0)."""
    if weighting == "equal":
        return np.ones(len(panel))
    sales = panel["t12m_sales"].to_numpy(dtype=float) if "t12m_sales" in panel else np.zeros(len(panel))
    return np.sqrt(1.0 + np.clip(np.nan_to_num(sales, nan=0.0), 0.0, None))


def _month_no(s: pd.Series) -> np.ndarray:
    p = pd.to_datetime(s).dt.to_period("M")
    return (p.dt.year * 12 + p.dt.month - 1).to_numpy(dtype=np.int64)


def panel_months(panel: pd.DataFrame) -> list[pd.Timestamp]:
    """The month ends of the panel, which must be consecutive months (a chain link spans one month)."""
    months = sorted(pd.to_datetime(panel["as_of"]).unique())
    if not months:
        raise ZhouxinError("credit index: the indicator panel is empty")
    nos = _month_no(pd.Series(months))
    if len(nos) > 1 and (np.diff(nos) != 1).any():
        gaps = [str(pd.Timestamp(months[i + 1]).to_period("M")) for i in np.flatnonzero(np.diff(nos) != 1)]
        raise ZhouxinError(f"credit index: the panel has month gaps before {gaps}; chain links need consecutive months")
    return [pd.Timestamp(m) for m in months]


def resolve_base_month(months: Sequence[pd.Timestamp], requested: str) -> tuple[str, str | None]:
    """The base month, or the first month when the world does not contain it (with the note to record)."""
    have = [str(pd.Timestamp(m).to_period("M")) for m in months]
    if requested in have:
        return requested, None
    return have[0], (f"base month {requested} not in the data ({have[0]}..{have[-1]}): "
                     f"index based at the first month {have[0]} = 100")


def _scored_long(panel: pd.DataFrame, groups: pd.DataFrame, weightings: Sequence[Weighting]) -> pd.DataFrame:
    """(group, uscc, as_of, m, measures..., w_<weighting>) for every scored firm-month in every group."""
    p = panel.loc[panel["cci"].notna()].copy()
    p["as_of"] = pd.to_datetime(p["as_of"]).astype("datetime64[ns]")
    p["m"] = _month_no(p["as_of"])
    for v in weightings:
        p[f"w_{v}"] = firm_weights(p, v)
    g = groups[["uscc", "as_of", "group"]].copy()
    g["as_of"] = pd.to_datetime(g["as_of"]).astype("datetime64[ns]")
    return g.drop_duplicates().merge(p, on=["uscc", "as_of"], how="inner")


def _grid(long: pd.DataFrame, months: Sequence[pd.Timestamp]) -> pd.MultiIndex:
    return pd.MultiIndex.from_product([sorted(long["group"].unique()), list(months)], names=KEYS)


def _matched(long: pd.DataFrame, keep: Sequence[str]) -> pd.DataFrame:
    """Pairs (firm in group at t, same firm in same group at t-1): the matched set M_t, t-1 columns _prev."""
    prev = long[["group", "uscc", "m", *keep]].copy()
    prev["m"] += 1
    return long.merge(prev, on=["group", "uscc", "m"], how="inner", suffixes=("", "_prev"))


# ------------------------------------------------------------------------------------------------
# Level series (§7.2) and chain-linked index (§7.3)
# ------------------------------------------------------------------------------------------------


def level_series(panel: pd.DataFrame, groups: pd.DataFrame, weightings: Sequence[Weighting] = ("equal",),
                 indicator_config: IndicatorConfig | None = None) -> pd.DataFrame:
    """L_G,t = sum w_i,t x_i,t / sum w_i,t over the scored firms of G_t, for the CCI and each sub-index.

    One row per (group, as_of, weighting): n_scored and level_cci, level_A..level_E (NaN in an empty cell).
    """
    icfg = indicator_config or load_indicator_config()
    long = _scored_long(panel, groups, weightings)
    months = panel_months(panel.loc[panel["cci"].notna()])
    grid = _grid(long, months)
    out = []
    for v in weightings:
        w = long[f"w_{v}"].to_numpy()
        cols = {"n_scored": np.ones(len(long))}
        for name, col in _measures(icfg):
            x = long[col].to_numpy(dtype=float)
            ok = ~np.isnan(x)
            cols[f"wx_{name}"] = np.where(ok, w * np.nan_to_num(x), 0.0)
            cols[f"w_{name}"] = np.where(ok, w, 0.0)
        sums = pd.DataFrame(cols).assign(group=long["group"].to_numpy(), as_of=long["as_of"].to_numpy()) \
            .groupby(KEYS).sum().reindex(grid, fill_value=0.0)
        res = pd.DataFrame({"n_scored": sums["n_scored"].astype(np.int64)}, index=grid)
        for name, _ in _measures(icfg):
            res[f"level_{name}"] = sums[f"wx_{name}"] / sums[f"w_{name}"].where(sums[f"w_{name}"] > 0)
        out.append(res.reset_index().assign(weighting=v))
    return pd.concat(out, ignore_index=True)[[*CELL_KEYS, "n_scored",
                                               *(f"level_{n}" for n, _ in _measures(icfg))]]


def _chain(links: pd.DataFrame, link_col: str, first: pd.Timestamp, base: pd.Timestamp,
           by: Sequence[str]) -> np.ndarray:
    """100 x prod of links from the base to t (divided back before the base); NaN across a broken link."""
    r = links[link_col].to_numpy(dtype=float)
    is_first = (links["as_of"] == first).to_numpy()
    r = np.where(is_first, 1.0, r)
    broken = ~np.isfinite(r) | (r <= 0)
    f = links[list(by)].assign(_r=np.where(broken, 1.0, r), _b=broken.astype(np.int64))
    f["_P"] = f.groupby(list(by), sort=False)["_r"].cumprod()
    f["_nb"] = f.groupby(list(by), sort=False)["_b"].cumsum()
    at_base = f.loc[(links["as_of"] == base).to_numpy(), [*by, "_P", "_nb"]]
    f = f.merge(at_base, on=list(by), how="left", suffixes=("", "_base"))
    idx = 100.0 * f["_P"] / f["_P_base"]
    return np.where(f["_nb"] == f["_nb_base"], idx, np.nan)


def chain_linked_index(panel: pd.DataFrame, groups: pd.DataFrame, base_month: str,
                       weightings: Sequence[Weighting] = ("equal",),
                       indicator_config: IndicatorConfig | None = None) -> pd.DataFrame:
    """§7.3: I_base = 100, I_t = I_t-1 x sum_M w_t-1 x_t / sum_M w_t-1 x_t-1 over M_t = G_t ∩ G_t-1.

    One row per (group, as_of, weighting): n_matched, link_<m> and index_<m> for the CCI and each
    sub-index, index_change (I_t - I_t-1 of the CCI index), change_matched_cci (matched-sample CCI
    level change) and the §7.5 contributions contrib_A..contrib_E (W_k x change of the matched-sample
    sub-index level) with contrib_residual (caps, rounding, N/A re-weighting). `base_month` (YYYY-MM)
    must be one of the panel's months; months before it are back-cast through the same links.
    """
    icfg = indicator_config or load_indicator_config()
    measures = _measures(icfg)
    scored = panel.loc[panel["cci"].notna()]
    months = panel_months(scored)
    base = next((m for m in months if str(m.to_period("M")) == base_month), None)
    if base is None:
        raise ZhouxinError(f"credit index: base month {base_month} is not in the panel; see resolve_base_month")
    long = _scored_long(panel, groups, weightings)
    grid = _grid(long, months)
    cols = [c for _, c in measures]
    mt = _matched(long, [*cols, *(f"w_{v}" for v in weightings)])
    out = []
    for v in weightings:
        w = mt[f"w_{v}_prev"].to_numpy()             # weights fixed at t-1
        sums_in = {"n_matched": np.ones(len(mt))}
        for name, col in measures:
            x, xp = mt[col].to_numpy(dtype=float), mt[f"{col}_prev"].to_numpy(dtype=float)
            ok = ~np.isnan(x) & ~np.isnan(xp)
            sums_in[f"num_{name}"] = np.where(ok, w * np.nan_to_num(x), 0.0)
            sums_in[f"den_{name}"] = np.where(ok, w * np.nan_to_num(xp), 0.0)
            sums_in[f"sw_{name}"] = np.where(ok, w, 0.0)
        s = pd.DataFrame(sums_in).assign(group=mt["group"].to_numpy(), as_of=mt["as_of"].to_numpy()) \
            .groupby(KEYS).sum().reindex(grid, fill_value=0.0)
        res = pd.DataFrame({"n_matched": s["n_matched"].astype(np.int64)}, index=grid)
        for name, _ in measures:
            res[f"link_{name}"] = s[f"num_{name}"] / s[f"den_{name}"].where(s[f"den_{name}"] > 0)
        res = res.reset_index()
        for name, _ in measures:
            res[f"index_{name}"] = _chain(res, f"link_{name}", months[0], base, ["group"])
        res["index_change"] = res["index_cci"] - res.groupby("group", sort=False)["index_cci"].shift(1)
        sw = s[[f"sw_{n}" for n, _ in measures]].where(s[[f"sw_{n}" for n, _ in measures]] > 0)
        change = {n: ((s[f"num_{n}"] - s[f"den_{n}"]) / sw[f"sw_{n}"]).to_numpy() for n, _ in measures}
        res["change_matched_cci"] = change["cci"]
        total = np.zeros(len(res))
        for m in icfg.level1:
            res[f"contrib_{m.code}"] = m.weight * change[m.code]
            total = total + res[f"contrib_{m.code}"].to_numpy()
        res["contrib_residual"] = res["change_matched_cci"].to_numpy() - total
        out.append(res.assign(weighting=v))
    keep = [*CELL_KEYS, "n_matched", *(f"link_{n}" for n, _ in measures), *(f"index_{n}" for n, _ in measures),
            "index_change", "change_matched_cci", *(f"contrib_{m.code}" for m in icfg.level1), "contrib_residual"]
    return pd.concat(out, ignore_index=True)[keep]


def splice_index(old: pd.Series, new: pd.Series, rebase_month: str) -> pd.Series:
    """§7.4 rebasing: the old series up to the rebase month r, then I_r(old) x the new chain's
    ratios from r on (`new` is the index on the new parameters, any base). Both are indexed by as_of."""
    o, n = old.copy(), new.copy()
    o.index, n.index = pd.to_datetime(o.index).to_period("M"), pd.to_datetime(n.index).to_period("M")
    r = pd.Period(rebase_month, freq="M")
    if r not in o.index or r not in n.index or not np.isfinite(o[r]) or not np.isfinite(n[r]) or n[r] == 0:
        raise ZhouxinError(f"rebase month {rebase_month} must carry a value in both series")
    after = n[n.index > r] * (o[r] / n[r])
    spliced = pd.concat([o[o.index <= r], after]).sort_index()
    spliced.index = spliced.index.to_timestamp(how="end").normalize()
    return spliced


# ------------------------------------------------------------------------------------------------
# Companion statistics (§7.5)
# ------------------------------------------------------------------------------------------------


def _tier_of(cci: pd.Series, icfg: IndicatorConfig) -> pd.Series:
    out = pd.Series(None, index=cci.index, dtype=object)
    for tier in reversed(icfg.tiers):
        out[cci >= tier.min_cci] = tier.name
    return out


def event_flags(panel: pd.DataFrame, events: pd.DataFrame | None, window_months: int) -> pd.Series:
    """Per panel row: a serious credit event became available in the `window_months` months ending at as_of."""
    flag = pd.Series(False, index=panel.index)
    if events is None or not len(events):
        return flag
    p = pd.DataFrame({"uscc": panel["uscc"].to_numpy(), "m": _month_no(panel["as_of"]),
                      "as_of": pd.to_datetime(panel["as_of"]).to_numpy(), "row": np.arange(len(panel))})
    e = pd.DataFrame({"uscc": events["uscc"].to_numpy(), "event_date": pd.to_datetime(events["event_date"])})
    e = e.dropna().drop_duplicates()
    e["em"] = _month_no(e["event_date"])
    j = p.merge(e, on="uscc", how="inner")
    hit = j.loc[(j["event_date"] <= j["as_of"]) & (j["em"] > j["m"] - window_months), "row"].unique()
    flag.iloc[hit] = True
    return flag


def companion_statistics(panel: pd.DataFrame, groups: pd.DataFrame, events: pd.DataFrame | None = None,
                         signals: pd.DataFrame | None = None, config: CreditIndexConfig | None = None,
                         indicator_config: IndicatorConfig | None = None) -> pd.DataFrame:
    """§7.5 per (group, as_of), unweighted over the scored enterprises: n_scored, entries and exits
    (vs the previous month's scored members; NaN in the first month), share per CCI tier
    (share_<tier>), share with signal level >= threshold (NaN without `signals`: uscc, as_of,
    signal_level) and the trailing-window serious-credit-event rate (events: uscc, event_date)."""
    cfg = config or load_credit_index_config()
    icfg = indicator_config or load_indicator_config()
    p = panel.loc[panel["cci"].notna()].copy()
    p["as_of"] = pd.to_datetime(p["as_of"]).astype("datetime64[ns]")
    months = panel_months(p)
    tier = p["cci_tier"] if "cci_tier" in p else _tier_of(p["cci"], icfg)
    tier = tier.where(tier.notna(), _tier_of(p["cci"], icfg))
    cols: dict[str, np.ndarray] = {"n_scored": np.ones(len(p))}
    for t in icfg.tiers:
        cols[f"share_{t.name}"] = (tier == t.name).to_numpy(dtype=float)
    if signals is not None:
        sig = signals[["uscc", "as_of", "signal_level"]].copy()
        sig["as_of"] = pd.to_datetime(sig["as_of"]).astype("datetime64[ns]")
        lvl = p[["uscc", "as_of"]].merge(sig.drop_duplicates(["uscc", "as_of"]), on=["uscc", "as_of"],
                                         how="left")["signal_level"].to_numpy(dtype=float)
        cols["share_signal_ge"] = np.where(np.isnan(lvl), np.nan, (lvl >= cfg.signal_level_threshold) * 1.0)
    else:
        cols["share_signal_ge"] = np.full(len(p), np.nan)
    cols["event_rate_t12m"] = event_flags(p, events, cfg.event_window_months).to_numpy(dtype=float)
    firm = pd.DataFrame(cols, index=p.index).assign(uscc=p["uscc"], as_of=p["as_of"])
    long = groups[["uscc", "as_of", "group"]].assign(as_of=lambda d: pd.to_datetime(d["as_of"])
                                                     .astype("datetime64[ns]")).drop_duplicates() \
        .merge(firm, on=["uscc", "as_of"], how="inner")
    long["m"] = _month_no(long["as_of"])
    grid = _grid(long, months)
    agg = long.drop(columns=["uscc", "m"]).groupby(KEYS)
    n = agg["n_scored"].sum().reindex(grid, fill_value=0).astype(np.int64)
    means = agg[[c for c in cols if c != "n_scored"]].mean().reindex(grid)
    matched = _matched(long[["group", "uscc", "m", "as_of"]], []).groupby(KEYS).size().reindex(grid, fill_value=0)
    res = pd.DataFrame({"n_scored": n}, index=grid).join(means).reset_index()
    prev_n = res.groupby("group", sort=False)["n_scored"].shift(1)
    first = (res["as_of"] == months[0]).to_numpy()
    res["entries"] = np.where(first, np.nan, res["n_scored"] - matched.to_numpy())
    res["exits"] = np.where(first, np.nan, prev_n - matched.to_numpy())
    sig_col = f"share_signal_ge{cfg.signal_level_threshold}"
    res = res.rename(columns={"share_signal_ge": sig_col})
    return res[[*KEYS, "n_scored", "entries", "exits", *(f"share_{t.name}" for t in icfg.tiers), sig_col,
                "event_rate_t12m"]]


# ------------------------------------------------------------------------------------------------
# The published table
# ------------------------------------------------------------------------------------------------


def credit_index_table(panel: pd.DataFrame, groups: pd.DataFrame, events: pd.DataFrame | None = None,
                       signals: pd.DataFrame | None = None, config: CreditIndexConfig | None = None,
                       indicator_config: IndicatorConfig | None = None) -> tuple[pd.DataFrame, str, str | None]:
    """Levels, index, companion statistics, suppression and provisional flags for every published cell.

    Returns (table, base month used, note when the configured base month was not in the data). One
    row per (group, as_of, weighting); a cell with fewer than `min_cell_size` scored enterprises keeps
    its counts but has every published value set to NaN (`suppressed`)."""
    cfg = config or load_credit_index_config()
    icfg = indicator_config or load_indicator_config()
    months = panel_months(panel.loc[panel["cci"].notna()])
    base, note = resolve_base_month(months, cfg.base_month)
    lv = level_series(panel, groups, cfg.weightings, icfg)
    ix = chain_linked_index(panel, groups, base, cfg.weightings, icfg)
    cs = companion_statistics(panel, groups, events, signals, cfg, icfg)
    t = lv.merge(ix, on=CELL_KEYS, how="left").merge(cs.drop(columns="n_scored"), on=KEYS, how="left")
    kinds = groups.drop_duplicates("group").set_index("group")["kind"]
    t.insert(1, "kind", t["group"].map(kinds))
    t.insert(2, "label", t["group"].map(cfg.label))
    t["suppressed"] = t["n_scored"] < cfg.min_cell_size
    values = [c for c in t.columns if c.startswith(("level_", "link_", "index_", "contrib_", "share_"))
              or c in ("change_matched_cci", "event_rate_t12m")]
    t.loc[t["suppressed"], values] = np.nan
    last = months[-cfg.provisional_months:] if cfg.provisional_months else []
    t["provisional"] = t["as_of"].isin(last)
    t["base_month"] = base
    order = {k: i for i, k in enumerate(cfg.groups)}
    t["_k"] = t["kind"].map(order)
    t["_w"] = t["weighting"].map({w: i for i, w in enumerate(cfg.weightings)})
    t = t.sort_values(["_w", "_k", "group", "as_of"], ignore_index=True).drop(columns=["_k", "_w"])
    for c in ("entries", "exits"):
        t[c] = t[c].astype("Int64")
    return t, base, note


# ------------------------------------------------------------------------------------------------
# Build: read the workspace, write parquet / json / html
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreditIndexResult:
    """The published table and where it was written; base_note is set when the base month fell back."""

    table: pd.DataFrame
    base_month: str
    base_note: str | None
    provisional_months: tuple[str, ...]
    paths: dict[str, Path] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def series(self, group: str, column: str = "index_cci", weighting: Weighting = "equal") -> pd.Series:
        """One published series indexed by month (YYYY-MM)."""
        t = self.table[(self.table["group"] == group) & (self.table["weighting"] == weighting)]
        return pd.Series(t[column].to_numpy(), index=t["as_of"].dt.strftime("%Y-%m"), name=f"{group} {column}")


def build_credit_index(ws: Path, out_dir: Path | None = None, config: CreditIndexConfig | None = None,
                       signals: pd.DataFrame | None = None) -> CreditIndexResult:
    """Build the §7 series from the workspace's indicator mart export and warehouse and write
    credit_index.parquet, credit_index.json and credit_index.html to `out_dir` (default ws/reports)."""
    cfg = config or load_credit_index_config()
    icfg = load_indicator_config()
    mart_path = features_dir(ws) / "sources" / MART_FILE
    if not mart_path.is_file():
        raise ZhouxinError(f"no indicator mart at {mart_path}: run `zhouxin features build` first")
    wanted = ["uscc", "event_timestamp", "cci", "cci_tier", "ind_B1_1_raw", *(f"idx_{m.code}" for m in icfg.level1)]
    panel = firm_panel(pd.read_parquet(mart_path, columns=wanted), icfg)
    months = panel_months(panel)
    con = connect_warehouse(warehouse_db(ws))
    try:
        from data.marts.events import serious_credit_events

        attrs = registration_attributes(con, [m.date() for m in months])
        events = serious_credit_events(con, platform_dir(ws))
    finally:
        con.close()
    groups = index_groups(attrs.merge(panel[["uscc", "as_of"]], on=["uscc", "as_of"], how="inner"), cfg, icfg)
    table, base, note = credit_index_table(panel, groups, events, signals, cfg, icfg)
    notes = []
    scored = panel["cci"].notna()
    no_sales = float(panel.loc[scored, "t12m_sales"].isna().mean()) if scored.any() else 0.0
    notes.append(f"economic weights: t12m_sales missing for {no_sales:.1%} of scored firm-months (w = 1)")
    if signals is None:
        notes.append(f"signal levels not available: share_signal_ge{cfg.signal_level_threshold} left empty")
    if note:
        notes.append(note)
        log.warning(note)
    provisional = tuple(str(m.to_period("M")) for m in months[-cfg.provisional_months:]) \
        if cfg.provisional_months else ()
    out = out_dir or reports_dir(ws)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"parquet": out / f"{OUTPUT_STEM}.parquet", "json": out / f"{OUTPUT_STEM}.json",
             "html": out / f"{OUTPUT_STEM}.html"}
    result = CreditIndexResult(table, base, note, provisional, paths, tuple(notes))
    _write_atomic(paths["parquet"], lambda p: table.to_parquet(p, index=False))
    _write_atomic(paths["json"], lambda p: p.write_text(credit_index_json(result, cfg), encoding="utf-8"))
    _write_atomic(paths["html"], lambda p: credit_index_figure(table, cfg, base, provisional).write_html(
        p, include_plotlyjs=True, full_html=True))
    return result


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)


def credit_index_json(result: CreditIndexResult, config: CreditIndexConfig) -> str:
    """The table as JSON records (months as YYYY-MM, NaN as null) with the metadata a reader needs."""
    t = result.table.copy()
    t["as_of"] = t["as_of"].dt.strftime("%Y-%m")
    groups = t[t["weighting"] == config.headline_weighting].groupby("group", sort=False).agg(
        kind=("kind", "first"), label=("label", "first"), months=("as_of", "size"),
        suppressed_months=("suppressed", "sum"))
    meta = {
        "spec": "shared/domain/indicators.md §7",
        "base_month": result.base_month, "base_month_requested": config.base_month, "base_note": result.base_note,
        "months": [t["as_of"].min(), t["as_of"].max()], "provisional_months": list(result.provisional_months),
        "min_cell_size": config.min_cell_size, "weightings": list(config.weightings),
        "headline_weighting": config.headline_weighting, "notes": list(result.notes),
        "groups": [{"group": g, **{k: (int(v) if isinstance(v, np.integer) else v) for k, v in r.items()}}
                   for g, r in groups.to_dict(orient="index").items()],
    }
    records = json.loads(t.to_json(orient="records"))
    return json.dumps({"meta": meta, "series": records}, ensure_ascii=False, indent=1)


def credit_index_figure(table: pd.DataFrame, config: CreditIndexConfig, base_month: str,
                        provisional: Sequence[str] = ()) -> object:
    """Interactive plotly figure: FTZ vs city vs districts (and FTZ areas), and the FTZ sub-indices;
    a menu switches weightings; provisional months are shaded, suppressed cells are gaps."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, subplot_titles=(
        f"CCI index (base {base_month} = 100, matched-set chain): FTZ vs city vs districts",
        "FTZ first-level sub-indices (同基期)"))
    top = [g for g in ("ftz", "city") if g in set(table["group"])] + \
        sorted(g for g in table["group"].unique() if g.startswith(("district:", "ftz_area:")))
    sub = [c for c in table.columns if c.startswith("index_") and c != "index_cci" and c != "index_change"]
    visible: dict[str, list[bool]] = {w: [] for w in config.weightings}
    for w in config.weightings:
        t = table[table["weighting"] == w]
        for g in top:
            s = t[t["group"] == g]
            dash = "solid" if g in ("ftz", "city") else ("dot" if g.startswith("ftz_area:") else "dash")
            width = 3 if g == "ftz" else 2 if g == "city" else 1.2
            fig.add_trace(go.Scatter(x=s["as_of"], y=s["index_cci"], name=config.label(g), legendgroup=g,
                                     mode="lines", line={"dash": dash, "width": width},
                                     visible=w == config.headline_weighting,
                                     customdata=np.stack([s["n_scored"], s["level_cci"]], axis=1),
                                     hovertemplate="%{y:.2f} (n=%{customdata[0]}, level %{customdata[1]:.1f})"),
                          row=1, col=1)
        s = t[t["group"] == "ftz"]
        for c in sub:
            fig.add_trace(go.Scatter(x=s["as_of"], y=s[c], name=f"FTZ {c.removeprefix('index_')}", mode="lines",
                                     visible=w == config.headline_weighting), row=2, col=1)
        n = len(top) + len(sub)
        for v in config.weightings:
            visible[v] += [v == w] * n
    for row in (1, 2):
        fig.add_hline(y=100, line={"color": "grey", "width": 1}, row=row, col=1)
    if provisional:
        x0 = pd.Period(provisional[0], freq="M").start_time
        x1 = pd.Period(provisional[-1], freq="M").end_time
        fig.add_vrect(x0=x0, x1=x1, fillcolor="orange", opacity=0.12, line_width=0,
                      annotation_text="provisional 初步", annotation_position="top left")
    fig.update_layout(
        title="舟山 credit index 自贸区信用指数 (indicators.md §7)", height=850, hovermode="x unified",
        updatemenus=[{"buttons": [{"label": f"{w} weights", "method": "update", "args": [{"visible": visible[w]}]}
                                  for w in config.weightings], "x": 1.0, "y": 1.08, "xanchor": "right"}])
    return fig
