"""Inject the dirty records of simulation.md §8 into deliveries, logging every defect to truth/.

The injector sits between the emitter and the files: it sees each library's monthly batch, spoils a
configured share of rows or values, may add rows (duplicates) or hold a batch back (late months,
revisions), and returns a log of (row number, defect, field, original value). Each defect draws from
its own random stream, so changing one rate leaves the others' choices unchanged.
"""

from __future__ import annotations

import warnings
from collections import defaultdict

import numpy as np
import pandas as pd

from data.simulate.calendar import add_days, add_months
from data.simulate.emit import Batch
from data.simulate.params import load_module_params
from data.simulate.world import module_rng
from kernel.catalog import Catalog, Library, SubItem
from kernel.config import FrozenModel

FULLWIDTH = {str(i): chr(0xFF10 + i) for i in range(10)} | {c: chr(0xFF21 + ord(c) - 65) for c in "ABCDEFGHJKLMNPQRTUWXY"}
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
MONEY_UNITS = ("CNY 10k (万元)",)
EVENT_GRAINS = ("event_list",)
DEFECTS = {
    "D1": "uscc_check_typo", "D2": "uscc_normalisable", "D3": "exact_duplicate", "D4": "near_duplicate",
    "D5": "unit_yuan_for_wan", "D6": "unit_usd_for_wan_usd", "D7": "sign_error", "D8a": "impossible_date",
    "D8b": "placeholder_date", "D9": "category_drift", "D10": "shareholder_ratio", "D11": "late_month",
    "D12": "revision", "D13": "stale_snapshot", "D14": "meter_spike", "D15": "entity_mislink",
}


class RateSpec(FrozenModel):
    rate: float
    sub_items: tuple[str, ...] | None = None


class DelaySpec(FrozenModel):
    rate: float
    delay_months: tuple[int, int]


class RevisionSpec(FrozenModel):
    rate: float
    within_months: tuple[int, int]
    sub_items: tuple[str, ...]


class SpikeSpec(FrozenModel):
    rate: float
    factor: tuple[float, float]
    sub_items: tuple[str, ...]


class MislinkSpec(FrozenModel):
    rates: dict[str, float]


class DirtyParams(FrozenModel):
    uscc_check_typo: RateSpec
    uscc_normalisable: RateSpec
    exact_duplicate: RateSpec
    near_duplicate: RateSpec
    unit_yuan_for_wan: RateSpec
    unit_usd_for_wan_usd: RateSpec
    sign_error: RateSpec
    impossible_date: RateSpec
    placeholder_date: RateSpec
    category_drift: RateSpec
    shareholder_ratio: RateSpec
    late_month: DelaySpec
    revision: RevisionSpec
    stale_snapshot: RateSpec
    meter_spike: SpikeSpec
    entity_mislink: MislinkSpec
    category_labels_zh: dict[str, dict[str, str]]


def _log(rows: np.ndarray, defect: str, field: str, original: object) -> pd.DataFrame:
    orig = original if isinstance(original, (list, np.ndarray, pd.Series)) else [original] * len(rows)
    return pd.DataFrame({"__pos": np.asarray(rows, dtype=np.float64), "defect": defect, "field": field,
                         "original": [None if pd.isna(v) else str(v) for v in orig]})


def _rows_by_value(values: np.ndarray, distinct: np.ndarray) -> list[np.ndarray]:
    """Ascending row numbers of each value of `distinct` (the column's `unique()`, in that order).

    One grouping pass instead of comparing the whole column with every chosen value, which grew with
    rows x firms. Missing values get no rows: `==` never matches them either.
    """
    codes, uniques = pd.factorize(values)          # same first-appearance order as unique(), nulls -1
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    groups = iter(order[bounds[k]:bounds[k + 1]] for k in range(len(uniques)))
    out = [np.zeros(0, dtype=np.int64) if pd.isna(v) else next(groups) for v in distinct]
    if next(groups, None) is not None:
        raise AssertionError("factorize and unique disagree on the distinct values")
    return out


def _set_rows(f: pd.DataFrame, column: str, rows: np.ndarray, values: list[object] | np.ndarray) -> None:
    """`f.loc[rows, column] = values` for an object column, through its array (a `.loc` write per
    field and delivery cost about a millisecond)."""
    if f[column].dtype != object:
        f.loc[rows, column] = values
        return
    arr = f[column].to_numpy(copy=True)
    arr[rows] = values
    f[column] = arr


def _numbered(log: pd.DataFrame, row: np.ndarray) -> pd.DataFrame:
    """The log with each defect's delivered `row_number`; defects on rows not delivered are dropped.

    Built from arrays in one go: the equivalent dropna / astype / drop chain copied the log three
    times per delivery.
    """
    found = ~pd.isna(row)
    cols = {c: log[c].to_numpy()[found] for c in log.columns if c != "__pos"}
    return pd.DataFrame(cols | {"row_number": row[found].astype(np.int64)}, index=log.index[found])


class DirtyInjector:
    """Spoils deliveries per the configured rates; holds late batches and revisions for later months."""

    def __init__(self, catalog: Catalog, seed: int, uscc_pool: np.ndarray | None = None,
                 params: DirtyParams | None = None) -> None:
        self.catalog = catalog
        self.p = params or load_module_params(DirtyParams, "dirty")
        self.rngs = {name: module_rng(seed, f"dirty.{name}") for name in DEFECTS.values()}
        self.uscc_pool = uscc_pool if uscc_pool is not None else np.array([], dtype=object)
        self._held: dict[tuple[str, int], list[pd.DataFrame]] = defaultdict(list)   # (library, month) -> rows
        self._last_snapshot: dict[str, pd.DataFrame] = {}

    # -- the hook called by FileSink ---------------------------------------------------------------
    def spoil(self, frame: pd.DataFrame, batch: Batch, library: Library) -> tuple[pd.DataFrame, pd.DataFrame]:
        spec = batch.sub_item
        month = batch.month
        f = frame.reset_index(drop=True)     # a new frame already: the defects below never touch `frame`
        f["__pos"] = np.arange(len(f))
        logs: list[pd.DataFrame] = []
        f = self._late_month(f, spec, library, month, logs)
        f = self._revisions(f, spec, library, month, logs)
        held = self._held.pop((library.id, month), [])
        if held:
            base = int(f["__pos"].max()) + 1 if len(f) else 0
            with warnings.catch_warnings():   # held parts may carry all-null columns: their dtype is kept
                warnings.simplefilter("ignore", FutureWarning)
                extra = pd.concat(held, ignore_index=True)
            extra["__pos"] = base + np.arange(len(extra))
            for defect, part in extra.groupby("__defect", sort=True):
                logs.append(_log(part["__pos"].to_numpy(), str(defect), "_available_date",
                                 part["__orig_available"].to_numpy()))
            extra = extra.drop(columns=["__defect", "__orig_available"])
            f = pd.concat([f, extra], ignore_index=True) if len(f) else extra.reset_index(drop=True)
        if f.empty:
            return f.drop(columns="__pos"), pd.DataFrame()
        self._uscc(f, spec, logs)
        self._money(f, spec, logs)
        self._dates(f, spec, logs)
        self._categories(f, spec, logs)
        self._shareholders(f, spec, logs)
        self._stale(f, spec, logs)
        self._spikes(f, spec, logs)
        self._mislink(f, spec, logs)
        n_before = len(f)
        f = self._near_duplicates(f, spec, logs)
        f = self._duplicates(f, spec, logs)
        if not logs:
            return f.drop(columns="__pos"), pd.DataFrame()
        # final row numbers: position in the delivered file
        if len(f) != n_before or held:
            order = np.argsort(f["__pos"].to_numpy(), kind="stable")
            f = f.take(order)                  # a new frame: renumber it without a second copy
            f.index = pd.RangeIndex(len(f))
        pos_to_row = pd.Series(np.arange(len(f)), index=f["__pos"].to_numpy())
        log = pd.concat(logs, ignore_index=True) if logs else pd.DataFrame(columns=["__pos", "defect", "field", "original"])
        if len(log):
            log = _numbered(log, pos_to_row.reindex(log["__pos"].to_numpy()).to_numpy())
        return f.drop(columns="__pos"), log

    # -- defects ---------------------------------------------------------------------------------
    def _pick(self, name: str, n: int, rate: float) -> np.ndarray:
        return np.flatnonzero(self.rngs[name].random(n) < rate)

    def _uscc(self, f: pd.DataFrame, spec: SubItem, logs: list[pd.DataFrame]) -> None:
        p = self.p
        if p.uscc_check_typo.sub_items and spec.code in p.uscc_check_typo.sub_items:
            rows = self._pick("uscc_check_typo", len(f), p.uscc_check_typo.rate)
            if rows.size:
                rng = self.rngs["uscc_check_typo"]
                orig = f["uscc"].to_numpy()[rows]
                new = []
                for code in orig:
                    wrong = USCC_CHARS[(USCC_CHARS.index(code[17]) + int(rng.integers(1, 31))) % 31]
                    new.append(code[:17] + wrong)
                _set_rows(f, "uscc", rows, new)
                logs.append(_log(f["__pos"].to_numpy()[rows], "D1", "uscc", orig))
        rows = self._pick("uscc_normalisable", len(f), p.uscc_normalisable.rate)
        if rows.size:
            rng = self.rngs["uscc_normalisable"]
            orig = f["uscc"].to_numpy()[rows]
            kind = rng.integers(0, 3, rows.size)
            new = []
            for code, k in zip(orig, kind, strict=True):
                if k == 0:
                    new.append("".join(FULLWIDTH.get(c, c) for c in code))
                elif k == 1:
                    new.append(f" {code[:6]} {code[6:]} ")
                else:
                    new.append(code.lower() if any(c.isalpha() for c in code) else f"{code} ")
            _set_rows(f, "uscc", rows, new)
            logs.append(_log(f["__pos"].to_numpy()[rows], "D2", "uscc", orig))

    def _money(self, f: pd.DataFrame, spec: SubItem, logs: list[pd.DataFrame]) -> None:
        p = self.p
        money = [fl.name for fl in spec.fields if fl.dtype == "float" and fl.unit in MONEY_UNITS]
        for name, cfg, factor, code in (("unit_yuan_for_wan", p.unit_yuan_for_wan, 10_000.0, "D5"),
                                        ("sign_error", p.sign_error, -1.0, "D7")):
            if not cfg.sub_items or spec.code not in cfg.sub_items:
                continue
            for col in money:
                vals = f[col]
                rows = self._pick(name, len(f), cfg.rate)
                rows = rows[vals.iloc[rows].notna().to_numpy() & (vals.iloc[rows].to_numpy() > 0)] if rows.size else rows
                if rows.size:
                    orig = vals.iloc[rows].to_numpy().copy()
                    f.loc[rows, col] = np.round(orig * factor, 2)
                    logs.append(_log(f.loc[rows, "__pos"].to_numpy(), code, col, orig))
        cfg = p.unit_usd_for_wan_usd
        if cfg.sub_items and spec.code in cfg.sub_items:
            for col in [fl.name for fl in spec.fields if fl.unit.startswith("USD 10k")]:
                rows = self._pick("unit_usd_for_wan_usd", len(f), cfg.rate)
                rows = rows[(f[col].iloc[rows].fillna(0).to_numpy() > 0)] if rows.size else rows
                if rows.size:
                    orig = f[col].iloc[rows].to_numpy().copy()
                    f.loc[rows, col] = np.round(orig * 10_000.0, 2)
                    logs.append(_log(f.loc[rows, "__pos"].to_numpy(), "D6", col, orig))

    def _dates(self, f: pd.DataFrame, spec: SubItem, logs: list[pd.DataFrame]) -> None:
        if spec.grain not in EVENT_GRAINS:
            return
        dates = [fl.name for fl in spec.fields if fl.dtype == "date"]
        if not dates:
            return
        p = self.p
        rng = self.rngs["impossible_date"]
        rows = self._pick("impossible_date", len(f), p.impossible_date.rate)
        for r in rows.tolist():
            present = [c for c in dates if pd.notna(f.at[r, c])]
            if not present:
                continue
            if len(present) >= 2:   # a later date moved before the first one (judgment < filing, removal < listing)
                col = present[-1]
                orig = f.at[r, col]
                f.at[r, col] = add_days(np.datetime64(f.at[r, present[0]], "D"), -int(rng.integers(5, 200)))
            else:                   # a date in the future of the delivery
                col = present[0]
                orig = f.at[r, col]
                f.at[r, col] = add_days(np.datetime64(f.at[r, "_available_date"], "D"), int(rng.integers(60, 900)))
            logs.append(_log(np.array([f.at[r, "__pos"]]), "D8a", col, [orig]))
        rows = self._pick("placeholder_date", len(f), p.placeholder_date.rate)
        for r in rows.tolist():
            col = dates[int(self.rngs["placeholder_date"].integers(len(dates)))]
            orig = f.at[r, col]
            f.at[r, col] = np.datetime64("1900-01-01")
            logs.append(_log(np.array([f.at[r, "__pos"]]), "D8b", col, [orig]))

    def _categories(self, f: pd.DataFrame, spec: SubItem, logs: list[pd.DataFrame]) -> None:
        rng = self.rngs["category_drift"]
        for fl in spec.fields:
            if fl.dtype != "category":
                continue
            rows = self._pick("category_drift", len(f), self.p.category_drift.rate)
            col = f[fl.name].to_numpy()
            rows = rows[pd.notna(col[rows])] if rows.size else rows
            if not rows.size:
                continue
            orig = col[rows].copy()
            labels = self.p.category_labels_zh.get(fl.name, {})
            new = []
            for v in orig:
                k = int(rng.integers(0, 3))
                if k == 0 and v in labels:
                    new.append(labels[v])
                elif k == 1 or v.upper() == v:
                    new.append(f"{v} ")
                else:
                    new.append(v.upper())
            _set_rows(f, fl.name, rows, new)
            logs.append(_log(f["__pos"].to_numpy()[rows], "D9", fl.name, orig))

    def _shareholders(self, f: pd.DataFrame, spec: SubItem, logs: list[pd.DataFrame]) -> None:
        cfg = self.p.shareholder_ratio
        if not cfg.sub_items or spec.code not in cfg.sub_items:
            return
        rng = self.rngs["shareholder_ratio"]
        firms = f["uscc"].unique()
        chosen = np.flatnonzero(rng.random(firms.size) < cfg.rate)
        rows_of = _rows_by_value(f["uscc"].to_numpy(), firms)
        ratio = f["share_ratio"].to_numpy(dtype=np.float64, copy=True)
        pos = f["__pos"].to_numpy()
        hit: list[np.ndarray] = []        # rows changed, their originals, in the order of the draws
        was: list[np.ndarray] = []
        for k in chosen.tolist():         # firms' rows are disjoint: write all changes once at the end
            rows = rows_of[k]
            orig = ratio[rows]
            if rows.size > 1 and rng.random() < 0.5:
                j = int(rng.integers(rows.size))
                rows, orig = rows[j:j + 1], orig[j:j + 1]
                ratio[rows] = np.nan
            else:
                factor = rng.uniform(0.98, 1.02)
                ratio[rows] = np.round(orig * factor, 4)
            hit.append(rows)
            was.append(orig)
        if hit:
            f["share_ratio"] = ratio
            logs.append(_log(pos[np.concatenate(hit)], "D10", "share_ratio", np.concatenate(was)))

    def _stale(self, f: pd.DataFrame, spec: SubItem, logs: list[pd.DataFrame]) -> None:
        cfg = self.p.stale_snapshot
        if not cfg.sub_items or spec.code not in cfg.sub_items:
            return
        prev = self._last_snapshot.get(spec.code)
        fields = [c for c in spec.field_names if c not in spec.key and c != "uscc"]
        if prev is not None and len(f):
            rows = self._pick("stale_snapshot", len(f), cfg.rate)
            if rows.size:
                prev_by = prev.set_index("uscc")
                keys = f.loc[rows, "uscc"].to_numpy()
                ok = pd.Index(keys, dtype=object).isin(prev_by.index)   # hashed: np.isin sorts objects
                rows = rows[ok]
                if rows.size:
                    stale = prev_by.loc[f.loc[rows, "uscc"].to_numpy(), fields]
                    for c in fields:
                        f.loc[rows, c] = stale[c].to_numpy()
                    logs.append(_log(f.loc[rows, "__pos"].to_numpy(), "D13", "*", None))
        keep = f[["uscc", *fields]].drop_duplicates("uscc", keep="last")
        self._last_snapshot[spec.code] = keep.copy()

    def _spikes(self, f: pd.DataFrame, spec: SubItem, logs: list[pd.DataFrame]) -> None:
        cfg = self.p.meter_spike
        if spec.code not in cfg.sub_items:
            return
        col = next(c for c in spec.field_names if c.startswith("consumption_"))
        rows = self._pick("meter_spike", len(f), cfg.rate)
        rows = rows[(f[col].iloc[rows].fillna(0).to_numpy() > 0)] if rows.size else rows
        if rows.size:
            orig = f[col].iloc[rows].to_numpy().copy()
            factor = self.rngs["meter_spike"].uniform(cfg.factor[0], cfg.factor[1], rows.size)
            f.loc[rows, col] = np.round(orig * factor, 2)
            logs.append(_log(f.loc[rows, "__pos"].to_numpy(), "D14", col, orig))

    def _mislink(self, f: pd.DataFrame, spec: SubItem, logs: list[pd.DataFrame]) -> None:
        rate = self.p.entity_mislink.rates.get(spec.code)
        if not rate or self.uscc_pool.size == 0:
            return
        rows = self._pick("entity_mislink", len(f), rate)
        if rows.size:
            orig = f["uscc"].to_numpy()[rows]
            other = self.uscc_pool[self.rngs["entity_mislink"].integers(0, self.uscc_pool.size, rows.size)]
            _set_rows(f, "uscc", rows, other)
            logs.append(_log(f["__pos"].to_numpy()[rows], "D15", "uscc", orig))

    def _near_duplicates(self, f: pd.DataFrame, spec: SubItem, logs: list[pd.DataFrame]) -> pd.DataFrame:
        cfg = self.p.near_duplicate
        if not cfg.sub_items or spec.code not in cfg.sub_items:
            return f
        rows = self._pick("near_duplicate", len(f), cfg.rate)
        if not rows.size:
            return f
        rng = self.rngs["near_duplicate"]
        dup = f.iloc[rows].copy()
        date_cols = [fl.name for fl in spec.fields if fl.dtype == "date"]
        money = [fl.name for fl in spec.fields if fl.dtype == "float"]
        if date_cols:
            c = date_cols[0]
            shift = rng.integers(1, 4, len(dup)) * rng.choice([-1, 1], len(dup))
            dup[c] = [add_days(np.datetime64(v, "D"), int(s)) if pd.notna(v) else v for v, s in zip(dup[c], shift, strict=True)]
        for c in money[:1]:
            dup[c] = dup[c].round(-1)
        dup["__pos"] = dup["__pos"] + 0.5
        logs.append(_log(dup["__pos"].to_numpy(), "D4", "*", dup["__pos"].to_numpy() - 0.5))
        return pd.concat([f, dup], ignore_index=True)

    def _duplicates(self, f: pd.DataFrame, spec: SubItem, logs: list[pd.DataFrame]) -> pd.DataFrame:
        if spec.grain not in EVENT_GRAINS:
            return f
        rows = self._pick("exact_duplicate", len(f), self.p.exact_duplicate.rate)
        if not rows.size:
            return f
        dup = f.iloc[rows].copy()
        dup["__pos"] = dup["__pos"] + 0.25
        logs.append(_log(dup["__pos"].to_numpy(), "D3", "*", dup["__pos"].to_numpy() - 0.25))
        return pd.concat([f, dup], ignore_index=True)

    def _late_month(self, f: pd.DataFrame, spec: SubItem, library: Library, month: int,
                    logs: list[pd.DataFrame]) -> pd.DataFrame:
        cfg = self.p.late_month
        if spec.grain != "monthly_series" or not len(f):
            return f
        rng = self.rngs["late_month"]
        if rng.random() >= cfg.rate:
            return f
        delay = int(rng.integers(cfg.delay_months[0], cfg.delay_months[1] + 1))
        held = f.copy()
        held["__orig_available"] = held["_available_date"].astype(str)
        held["_available_date"] = add_months(held["_available_date"].to_numpy().astype("datetime64[D]"), delay)
        held["__defect"] = "D11"
        self._held[(library.id, month + delay)].append(held.drop(columns="__pos"))
        return f.iloc[0:0]

    def _revisions(self, f: pd.DataFrame, spec: SubItem, library: Library, month: int,
                   logs: list[pd.DataFrame]) -> pd.DataFrame:
        cfg = self.p.revision
        if spec.code not in cfg.sub_items or not len(f):
            return f
        rng = self.rngs["revision"]
        rows = self._pick("revision", len(f), cfg.rate)
        if not rows.size:
            return f
        money = [fl.name for fl in spec.fields if fl.dtype == "float" and fl.unit in MONEY_UNITS]
        rev = f.iloc[rows].copy()
        for c in money:
            rev[c] = np.round(rev[c] * np.exp(rng.normal(0, 0.1, len(rev))), 2)
        lag = rng.integers(cfg.within_months[0], cfg.within_months[1] + 1, len(rev))
        rev["__orig_available"] = rev["_available_date"].astype(str)
        rev["_available_date"] = add_months(rev["_available_date"].to_numpy().astype("datetime64[D]"), lag)
        rev["__defect"] = "D12"
        for d in np.unique(lag):
            part = rev[lag == d]
            self._held[(library.id, month + int(d))].append(part.drop(columns="__pos"))
        return f

    def held_keys(self) -> list[tuple[str, int]]:
        """(library, month) of deliveries still holding rows back, for the final drain."""
        return sorted(k for k, v in self._held.items() if v)

    def pending_rows(self) -> int:
        """Rows held back for a later delivery (late months, revisions)."""
        return sum(len(p) for parts in self._held.values() for p in parts)
