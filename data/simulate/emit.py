"""Collect rows from the observation modules and deliver them by availability month.

Modules call `Emitter.emit` with exactly the catalog fields of a sub-item. Rows wait in a pending
buffer until the month their `_available_date` falls in; then `flush_month` hands that month's
batches (one per sub-item) to the sink, which adds the metadata columns, routes rows to their
resource library, lets the dirty-record injector spoil a few, and writes one delivery file per
library and month. Generation therefore streams month by month with bounded memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from data.simulate.calendar import date_to_month, month_start
from data.simulate.compact import full_object, shared_strings
from kernel.catalog import Catalog, SubItem

ArrayLike = np.ndarray | Sequence[object]
NAT = np.datetime64("NaT", "D")


@dataclass
class Batch:
    """One sub-item's rows that become available in one month (before metadata and dirt)."""

    sub_item: SubItem
    month: int
    frame: pd.DataFrame          # catalog fields, typed
    ent: np.ndarray              # slot index per row (truth only)
    available: np.ndarray        # datetime64[D]
    valid_from: np.ndarray       # datetime64[D] (versioned sub-items), else NaT
    cause: np.ndarray            # object: background / stress / cascade / contagion / ring / platform


class BatchSink(Protocol):
    def write(self, batch: Batch) -> None: ...
    def write_table(self, area: str, name: str, frame: pd.DataFrame) -> None: ...
    def close(self) -> None: ...


def _as_array(values: ArrayLike, n: int | None) -> np.ndarray:
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.ndim == 0:
        arr = np.full(n or 1, arr[()], dtype=arr.dtype if arr.dtype != object else object)
    return arr


def typed_column(values: np.ndarray, dtype: str) -> pd.Series | pd.api.extensions.ExtensionArray:
    """Convert a generator array to the catalog dtype (nullable where the catalog allows null)."""
    if dtype in ("int", "bool") and values.dtype.kind in _NULL_FREE_KINDS[dtype]:
        return _null_free(values, dtype)
    if dtype == "int":
        return pd.array(pd.to_numeric(pd.Series(values, copy=False), errors="raise").round(), dtype="Int64")
    if dtype == "float":
        return pd.array(np.asarray(values, dtype=np.float64), dtype="float64")
    if dtype == "bool":
        return pd.array(pd.Series(values, copy=False).astype("object").where(pd.notna(values), None),
                        dtype="boolean")
    if dtype == "date":
        return np.asarray(values, dtype="datetime64[D]")
    out = np.asarray(values, dtype=object)
    na = pd.isna(out)
    out = np.where(na, None, out) if na.any() else out.copy()    # a new array either way: no second copy
    return pd.array(out, dtype=object, copy=False)


# numpy kinds that hold no nulls and convert exactly: signed integers (and bools) to Int64, bools to boolean
_NULL_FREE_KINDS = {"int": "ib", "bool": "b"}


def _null_free(values: np.ndarray, dtype: str) -> pd.api.extensions.ExtensionArray:
    """The nullable array of a null-free integer or bool array, built directly (no per-value parsing)."""
    no_nulls = np.zeros(len(values), dtype=bool)
    if dtype == "int":
        return pd.arrays.IntegerArray(values.astype(np.int64), no_nulls)
    return pd.arrays.BooleanArray(values.astype(bool), no_nulls)


class Emitter:
    """Per-sub-item row buffers keyed by availability month."""

    def __init__(self, catalog: Catalog, sink: BatchSink, check_values: bool = True) -> None:
        self.catalog = catalog
        self.sink = sink
        self.check_values = check_values
        self._pending: dict[tuple[str, int], list[dict[str, np.ndarray]]] = defaultdict(list)
        self.rows_emitted: dict[str, int] = defaultdict(int)
        self.current_month: int | None = None    # set by the engine: nothing emitted now is known earlier
        self.rows_clamped: dict[str, int] = defaultdict(int)

    def emit(self, sub_item: str, columns: Mapping[str, ArrayLike], *, ent: np.ndarray,
             available: np.ndarray, cause: str | np.ndarray = "background",
             valid_from: np.ndarray | None = None) -> None:
        """Queue rows of `sub_item`. `columns` must hold exactly its catalog fields."""
        spec = self.catalog.sub_item(sub_item)
        n = len(ent)
        if n == 0:
            return
        names = set(spec.field_names)
        given = set(columns)
        if given != names:
            raise ValueError(f"{sub_item}: emitted columns differ from the catalog: missing "
                             f"{sorted(names - given)}, unexpected {sorted(given - names)}")
        cols = {k: _as_array(v, n) for k, v in columns.items()}
        for k, v in cols.items():
            if len(v) != n:
                raise ValueError(f"{sub_item}.{k}: {len(v)} values for {n} rows")
        if self.check_values:
            self._check_values(spec, cols)
        for f in spec.fields:      # rows wait here for their month: keep each code value one shared object
            if f.dtype == "category" and cols[f.name].dtype.kind in "OU":
                cols[f.name] = shared_strings(cols[f.name])
        available = np.asarray(available, dtype="datetime64[D]")
        if np.isnat(available).any():
            raise ValueError(f"{sub_item}: every row needs an availability date")
        if self.current_month is not None:
            # a record generated in month t cannot have reached the platform before month t began
            floor = month_start(self.current_month)[()]
            early = available < floor
            if early.any():
                self.rows_clamped[sub_item] += int(early.sum())
                available = np.where(early, floor, available)
        cause_arr = full_object(n, cause) if isinstance(cause, str) else shared_strings(cause)
        vf = NAT if valid_from is None else valid_from
        meta = {"__ent": np.asarray(ent, dtype=np.int64), "__available": available,
                "__cause": cause_arr, "__valid_from": np.broadcast_to(np.asarray(vf, dtype="datetime64[D]"), (n,))}
        months = date_to_month(available)
        for m in np.unique(months):
            sel = months == m
            chunk = {k: v[sel] for k, v in cols.items()} | {k: v[sel] for k, v in meta.items()}
            self._pending[(sub_item, int(m))].append(chunk)
        self.rows_emitted[sub_item] += n

    @staticmethod
    def _check_values(spec: SubItem, cols: dict[str, np.ndarray]) -> None:
        for f in spec.fields:
            v = cols[f.name]
            if f.dtype == "category" and f.allowed:
                present = pd.unique(np.asarray(v, dtype=object))   # a few distinct values: drop nulls after
                bad = [x for x in present if not pd.isna(x) and str(x) not in f.allowed]
                if bad:
                    raise ValueError(f"{spec.code}.{f.name}: values {bad[:3]} not in the catalog's allowed set")
            elif f.dtype == "date" and v.dtype != object and not np.issubdtype(v.dtype, np.datetime64):
                raise ValueError(f"{spec.code}.{f.name}: dates must be datetime64[D], got {v.dtype}")

    def emit_table(self, area: str, name: str, frame: pd.DataFrame) -> None:
        """Append rows to a non-catalog table: area 'platform' (operational tables) or 'truth'."""
        if area not in ("platform", "truth"):
            raise ValueError(f"unknown table area {area!r}")
        if len(frame):
            self.sink.write_table(area, name, frame)

    def flush_month(self, month: int) -> None:
        """Hand every batch available in `month` (or earlier, still pending) to the sink."""
        due = sorted(k for k in self._pending if k[1] <= month)
        for key in due:
            self._write(key)

    def flush_all(self) -> None:
        for key in sorted(self._pending):
            self._write(key)
        self.sink.close()

    def _write(self, key: tuple[str, int]) -> None:
        chunks = self._pending.pop(key)
        spec = self.catalog.sub_item(key[0])
        # stable order inside a delivery: by availability date, then emission order. Rows are put in
        # order while still plain arrays (the typed conversion is per value), saving a frame-wide take.
        order = np.argsort(np.concatenate([c["__available"] for c in chunks]), kind="stable")
        merged = {k: np.concatenate([c[k] for c in chunks])[order] for k in chunks[0]}
        frame = pd.DataFrame({f.name: typed_column(merged[f.name], f.dtype) for f in spec.fields},
                             copy=False)    # the typed columns are new arrays: no need to copy them again
        self.sink.write(Batch(sub_item=spec, month=key[1], frame=frame, ent=merged["__ent"],
                              available=merged["__available"], valid_from=merged["__valid_from"],
                              cause=merged["__cause"]))


class MemorySink:
    """Keeps every batch in memory: for tests of single modules."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.tables: dict[tuple[str, str], list[pd.DataFrame]] = defaultdict(list)

    def write(self, batch: Batch) -> None:
        self.batches.append(batch)

    def write_table(self, area: str, name: str, frame: pd.DataFrame) -> None:
        self.tables[(area, name)].append(frame)

    def table(self, area: str, name: str) -> pd.DataFrame:
        parts = self.tables.get((area, name), [])
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def close(self) -> None:
        return None

    def frame(self, sub_item: str) -> pd.DataFrame:
        """All rows of one sub-item with `_ent`, `_available_date` and `_cause` columns."""
        parts = []
        for b in self.batches:
            if b.sub_item.code == sub_item:
                f = b.frame.copy()
                f["_ent"] = b.ent
                f["_available_date"] = b.available
                f["_cause"] = b.cause
                parts.append(f)
        if not parts:
            return pd.DataFrame()
        return pd.concat(parts, ignore_index=True)
