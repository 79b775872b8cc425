"""The monthly firm panel for the rating model: who is scored when, its label, its split, its features.

Rows are registered firm-months (the marts' grid) outside default; features come from the Feast
FeatureService through the point-in-time join, so each row sees only what was known at its month end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data.feature_store.pipeline import sources_dir
from data.feature_store.training_set import ViewSource, point_in_time_join
from data.marts.events import serious_credit_events
from data.marts.grid import connect_warehouse
from kernel.errors import ZhouxinError
from kernel.workspace import platform_dir, warehouse_db
from training.config import CreditRatingConfig
from training.labels import label_panel

SPLITS = ("train", "validation", "test")


@dataclass
class Panel:
    """Labelled rows (uscc, as_of, y, split) and the point-in-time feature table aligned with them."""

    rows: pd.DataFrame
    features: pa.Table


def assign_splits(months: pd.Series, cfg: CreditRatingConfig, last_complete: pd.Timestamp) -> pd.Series:
    """Out-of-time split by as-of month: train .. [embargo] .. validation .. [embargo] .. test."""
    s = cfg.split
    p = months.dt.to_period("M")
    end = last_complete.to_period("M")
    test_start = end - s.test_months + 1
    val_end = test_start - s.embargo_months - 1
    val_start = val_end - s.validation_months + 1
    train_end = val_start - s.embargo_months - 1
    if (train_end - p.min()).n + 1 < s.min_train_months:
        raise ZhouxinError(f"world too short for the out-of-time split: train would end {train_end}, "
                           f"validation {val_start}..{val_end}, test {test_start}..{end}")
    out = pd.Series(pd.NA, index=months.index, dtype="object")
    out[p <= train_end] = "train"
    out[(p >= val_start) & (p <= val_end)] = "validation"
    out[(p >= test_start) & (p <= end)] = "test"
    return out


def labelled_rows(ws: Path, cfg: CreditRatingConfig, data_end: pd.Timestamp) -> pd.DataFrame:
    """Scored firm-months with labels and splits (censored, in-default and embargoed rows dropped)."""
    grid = pd.read_parquet(sources_dir(ws) / "mart_indicators.parquet", columns=["uscc", "event_timestamp"])
    grid = grid.rename(columns={"event_timestamp": "as_of"})
    con = connect_warehouse(warehouse_db(ws))
    try:
        events = serious_credit_events(con, platform_dir(ws))
    finally:
        con.close()
    lab = label_panel(grid, events, cfg.label.horizon_days, data_end, cfg.label.default_window_days)
    lab = lab[~lab["in_default"] & ~lab["censored"]].copy()
    last_complete = data_end - pd.Timedelta(days=cfg.label.horizon_days)
    lab = lab[lab["as_of"] <= last_complete]
    lab["split"] = assign_splits(lab["as_of"], cfg, last_complete)
    return lab.dropna(subset=["split"]).reset_index(drop=True)


def build_panel(ws: Path, views: list[ViewSource], cfg: CreditRatingConfig, data_end: pd.Timestamp) -> Panel:
    rows = labelled_rows(ws, cfg, data_end)
    ent = rows[["uscc"]].assign(event_timestamp=rows["as_of"])
    feats = point_in_time_join(ent, views, as_arrow=True).drop_columns(["uscc", "event_timestamp"])
    return Panel(rows=rows, features=feats)


def to_matrix(table: pa.Table, as_of: pd.Series, columns: list[str] | None = None,
              categories: dict[str, list[str]] | None = None, max_categories: int = 64
              ) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """A numeric model matrix: numbers as float32, dates as days before as_of, strings as categories.

    Fitting (columns=None) decides which string columns are categorical (<= max_categories values) and
    their category lists; scoring reuses them, so unseen values become NaN rather than new codes.
    """
    t = pd.to_datetime(as_of).to_numpy(dtype="datetime64[ns]")
    cats = dict(categories or {})
    out: dict[str, np.ndarray | pd.Categorical] = {}
    names = columns or table.column_names
    for name in names:
        if name not in table.column_names:
            out[name] = np.full(table.num_rows, np.nan, dtype=np.float32)
            continue
        col = table.column(name)
        typ = col.type
        if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
            d = pd.to_datetime(col.to_pandas()).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
            out[name] = ((t - d) / np.timedelta64(1, "D")).astype(np.float32)
        elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
            values = col.to_pandas()
            if columns is None:
                uniq = sorted(values.dropna().unique())
                if len(uniq) > max_categories:
                    continue
                cats[name] = [str(u) for u in uniq]
            if name in cats:
                out[name] = pd.Categorical(values, categories=cats[name])
        elif pa.types.is_boolean(typ) or pa.types.is_integer(typ) or pa.types.is_floating(typ):
            out[name] = np.asarray(pc.cast(col, pa.float32()).to_numpy(zero_copy_only=False), dtype=np.float32)
    return pd.DataFrame(out), cats
