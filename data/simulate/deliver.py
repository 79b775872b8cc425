"""Write batches as the departments deliver them: one file per resource library and month.

Each department has its delivery format in the catalog (CSV, JSON lines or Parquet). Rows get the
metadata columns of catalog §1; snapshots and lists also `_valid_from` / `_valid_to`. Files are
written to a temporary name and renamed, and a manifest lists every file with its row count and
content hash, so a reader can tell a complete delivery from a torn one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from data.simulate.calendar import month_label
from data.simulate.emit import Batch
from kernel.catalog import Catalog, Library, SubItem
from kernel.hashing import hex16
from kernel.workspace import parquet_bytes, write_atomically


class DirtInjector(Protocol):
    def spoil(self, frame: pd.DataFrame, batch: Batch, library: Library) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return the delivered frame (possibly spoiled, with extra rows) and a log of defects."""
        ...


INGEST_TIME = "T02:00:00"     # platform ingestion runs nightly: a delivery is loaded the next day at 02:00


def route_rows(frame: pd.DataFrame, libraries: tuple[Library, ...]) -> np.ndarray:
    """Library id per row: the first library whose selector matches, else the one without a selector."""
    out = np.empty(len(frame), dtype=object)
    default = [lib for lib in libraries if lib.selector is None]
    out[:] = default[0].id if default else libraries[0].id
    taken = np.zeros(len(frame), dtype=bool)
    for lib in libraries:
        sel = lib.selector
        if sel is None:
            continue
        col = frame[sel.field]
        if sel.not_null:
            m = col.notna().to_numpy()
        elif sel.equals:
            m = col.isin(sel.equals).to_numpy()
        else:
            m = (pd.to_numeric(col, errors="coerce") > (sel.greater_than or 0)).fillna(False).to_numpy()
        m = m & ~taken
        out[m] = lib.id
        taken |= m
    return out


def _is_default_index(index: pd.Index) -> bool:
    """0, 1, ..., n-1 already (as spoil and routing leave it): then resetting would only copy the frame."""
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A stable 16-hex hash of each row's catalog fields (duplicates share it)."""
    h = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    return hex16(h).astype("U16").astype(object)


def _iso_days(arr: np.ndarray, suffix: str = "") -> np.ndarray:
    """ISO strings of datetime64[D] values (+ `suffix`), None for NaT.

    A delivery holds few distinct dates (one availability month, a few event days), so each distinct
    day is formatted once and shared: formatting every cell was a per-row cost of every CSV/JSON file.
    """
    days, inv = np.unique(arr, return_inverse=True)
    txt = np.char.add(np.datetime_as_string(days, unit="D").astype(str), suffix).astype(object)[inv.reshape(-1)]
    txt[np.isnat(arr)] = None
    return txt


def _iso_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates as ISO strings (nulls stay null) without per-value Python formatting."""
    cols = {}
    for c in frame.columns:
        col = frame[c]
        if pd.api.types.is_datetime64_any_dtype(col):
            cols[c] = _iso_days(col.to_numpy(dtype="datetime64[D]"))
    if not cols:
        return frame
    out = frame.copy(deep=False)    # only the date columns change: no need to copy every other column
    for c, txt in cols.items():
        out[c] = txt
    return out


TRUTH_CASCADE_SCHEMA = pa.schema([("batch_id", pa.string()), ("sub_item", pa.string()), ("row_number", pa.int64()),
                                  ("slot", pa.int64()), ("cause", pa.string())])
DIRTY_LOG_SCHEMA = pa.schema([("defect", pa.string()), ("field", pa.string()), ("original", pa.string()),
                              ("row_number", pa.int64()), ("batch_id", pa.string()), ("sub_item", pa.string())])
STREAM_ROWS = 1_000_000        # truth and dirty-log rows buffered before a Parquet row group is written


@dataclass
class ParquetStream:
    """One Parquet file written in row groups as they come (memory stays bounded at any scale), under
    `.tmp` until `close` renames it into place."""

    path: Path
    schema: pa.Schema
    _writer: pq.ParquetWriter | None = None

    @property
    def _tmp(self) -> Path:
        return self.path.with_name(self.path.name + ".tmp")

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        self._writer.write_table(table)

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._tmp.replace(self.path)


@dataclass
class FileSink:
    """Writes deliveries under `root/raw/<dept>/<library>/<YYYY-MM>.<ext>` and keeps the manifest."""

    root: Path
    catalog: Catalog
    dirt: DirtInjector | None = None
    files: list[dict[str, object]] = field(default_factory=list)
    rows_written: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _truth_rows: list[pd.DataFrame] = field(default_factory=list)
    _truth_buffered: int = 0
    _dirty_rows: list[pa.Table] = field(default_factory=list)
    _dirty_buffered: int = 0
    _truth_out: ParquetStream = field(init=False)
    _dirty_out: ParquetStream = field(init=False)

    def __post_init__(self) -> None:
        self._truth_out = ParquetStream(self.root / "truth" / "truth_cascade.parquet", TRUTH_CASCADE_SCHEMA)
        self._dirty_out = ParquetStream(self.root / "truth" / "dirty_log.parquet", DIRTY_LOG_SCHEMA)
    _tables: dict[tuple[str, str], list[pa.Table]] = field(default_factory=lambda: defaultdict(list))

    def write(self, batch: Batch) -> None:
        spec = batch.sub_item
        n = len(batch.frame)
        libs = self.catalog.libraries_of(spec.code)
        routes = route_rows(batch.frame, libs) if len(libs) > 1 else np.full(n, libs[0].id, dtype=object)
        extra: dict[str, np.ndarray] = {"_available_date": batch.available, "_source_library": routes}
        if spec.is_versioned:
            extra["_valid_from"] = np.where(np.isnat(batch.valid_from), batch.available, batch.valid_from)
            extra["_valid_to"] = np.full(n, np.datetime64("NaT"), "datetime64[D]")
        extra |= {"__ent": batch.ent, "__cause": batch.cause}
        frame = batch.frame.assign(**extra)
        for lib in libs:
            if len(libs) == 1:
                part = frame
            else:
                mask = routes == lib.id
                if not mask.any():
                    continue
                part = frame[mask].reset_index(drop=True)
            self._write_library(spec, lib, batch.month, part)

    def _write_library(self, spec: SubItem, lib: Library, month: int, part: pd.DataFrame) -> None:
        fields = list(spec.field_names)
        log = pd.DataFrame()
        delivered = part
        if self.dirt is not None:
            delivered, log = self.dirt.spoil(part, Batch(spec, month, part[fields], part["__ent"].to_numpy(),
                                                         part["_available_date"].to_numpy(),
                                                         np.array([]), part["__cause"].to_numpy()), lib)
        if delivered.empty:
            return
        dept = self.catalog.department(lib.department)
        batch_id = f"{lib.id}-{month_label(month).replace('-', '')}"
        if not _is_default_index(delivered.index):
            delivered = delivered.reset_index(drop=True)
        truth_ent = delivered["__ent"].to_numpy()
        truth_cause = delivered["__cause"].to_numpy()
        avail = delivered["_available_date"].to_numpy(dtype="datetime64[D]")
        ingest_ts = _iso_days(avail + np.timedelta64(1, "D"), INGEST_TIME)    # loaded the next night
        meta = ["_source_library", "_batch_id", "_ingest_ts", "_available_date", "_row_hash"]
        if spec.is_versioned:
            meta += ["_valid_from", "_valid_to"]
        delivered = delivered.assign(_batch_id=batch_id, _ingest_ts=ingest_ts,
                                     _row_hash=row_hashes(delivered[fields]))[fields + meta]
        path = self.root / "raw" / dept.id / lib.id / f"{month_label(month)}.{dept.delivery_format}"
        if path.exists():
            raise RuntimeError(f"delivery {path} written twice: batches must reach the sink once per library and month")
        digest = _write_frame(delivered, path, dept.delivery_format)
        self.files.append({"path": str(path.relative_to(self.root)), "library": lib.id, "sub_item": spec.code,
                           "department": dept.id, "month": month_label(month), "batch_id": batch_id,
                           "rows": len(delivered), "sha256": digest})
        self.rows_written[spec.code] += len(delivered)
        # truth: which enterprise and cause produced each delivered row
        self._truth_rows.append(pd.DataFrame({
            "batch_id": batch_id, "sub_item": spec.code, "row_number": np.arange(len(truth_ent)),
            "slot": truth_ent.astype(np.int64), "cause": truth_cause.astype(str)}))
        self._truth_buffered += len(truth_ent)
        if self._truth_buffered >= STREAM_ROWS:
            self._flush_truth()
        if len(log):
            self._dirty_rows.append(pa.Table.from_pandas(log.assign(batch_id=batch_id, sub_item=spec.code),
                                                         schema=DIRTY_LOG_SCHEMA, preserve_index=False))
            self._dirty_buffered += len(log)
            if self._dirty_buffered >= STREAM_ROWS:
                self._flush_dirty()

    def _flush_dirty(self) -> None:
        """Stream the dirty log (held to the end it was 2.5 GB at 200M records)."""
        if self._dirty_rows:
            self._dirty_out.write(pa.concat_tables(self._dirty_rows))
        self._dirty_rows.clear()
        self._dirty_buffered = 0

    def _flush_truth(self) -> None:
        """Stream the record-to-cause truth."""
        if not self._truth_rows:
            return
        self._truth_out.write(pa.Table.from_pandas(pd.concat(self._truth_rows, ignore_index=True),
                                                   schema=TRUTH_CASCADE_SCHEMA, preserve_index=False))
        self._truth_rows.clear()
        self._truth_buffered = 0

    def write_table(self, area: str, name: str, frame: pd.DataFrame) -> None:
        """Hold a month's rows of an operational or truth table as Arrow until `close`: strings take a
        fraction of pandas' object columns (the tables were 1.6 GB as pandas at 200M records)."""
        self._tables[(area, name)].append(pa.Table.from_pandas(frame, preserve_index=False))

    def close(self) -> None:
        if self.dirt is not None and hasattr(self.dirt, "held_keys"):
            for lib_id, month in self.dirt.held_keys():
                lib = self.catalog.library(lib_id)
                spec = self.catalog.sub_item(lib.sub_item)
                empty = pd.DataFrame({c: pd.Series(dtype=object) for c in
                                      [*spec.field_names, "_available_date", "_source_library", "__ent", "__cause"]})
                self._write_library(spec, lib, month, empty)
        for (area, name), parts in self._tables.items():
            path = self.root / area / f"{name}.parquet"
            write_atomically(path, parquet_bytes(_concat_parts(parts)))
        self._flush_truth()
        self._truth_out.close()
        self._flush_dirty()
        if not self._dirty_out.is_open:
            self._dirty_out.write(DIRTY_LOG_SCHEMA.empty_table())    # a world without defects has an empty log
        self._dirty_out.close()
        manifest = {"files": sorted(self.files, key=lambda f: str(f["path"])),
                    "rows_by_sub_item": dict(sorted(self.rows_written.items())),
                    "total_rows": int(sum(self.rows_written.values()))}
        path = self.root / "raw" / "manifest.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")


def _concat_parts(parts: list[pa.Table]) -> pa.Table:
    """One table from the monthly parts, column types unified as pandas' concat would (a column that is
    all-null in one month, or integer in one and float in another, takes the wider type)."""
    merged = pa.concat_tables(parts, promote_options="permissive")
    return merged.replace_schema_metadata(parts[0].schema.metadata)


def _write_frame(frame: pd.DataFrame, path: Path, fmt: str) -> str:
    """Write atomically (temp file, then rename) and return the file's sha256."""
    return write_atomically(path, _encode(frame, fmt))


def _json_lines(frame: pd.DataFrame) -> memoryview:
    """UTF-8 of `frame.to_json(orient="records", lines=True, force_ascii=False)`, split into lines faster.

    pandas splits the JSON array into lines byte by byte in a loop. Records here are flat, so the
    commas it turns into newlines are exactly the "},{" between records; when the text holds no other
    "},{" (one inside a string value), a plain replace gives the same bytes. Otherwise pandas splits.
    """
    raw = frame.to_json(orient="records", force_ascii=False).encode("utf-8")
    if len(frame) and raw.count(b"},{") == len(frame) - 1:
        out = bytearray(raw.replace(b"},{", b"}\n{"))
        out[-1:] = b"\n"                # the closing "]" becomes the last line's newline
        return memoryview(out)[1:]      # and the opening "[" goes
    return memoryview(frame.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8"))


def _encode(frame: pd.DataFrame, fmt: str) -> memoryview:
    """The file's bytes, built in memory: hashing them there saves reading every delivery back."""
    if fmt == "jsonl":
        return _json_lines(_iso_dates(frame))    # to_json(path) writes UTF-8 without newline translation
    if fmt == "parquet":
        return parquet_bytes(pa.Table.from_pandas(frame, preserve_index=False))
    if fmt != "csv":
        raise ValueError(f"unknown delivery format {fmt!r}")
    buf = pa.BufferOutputStream()
    pacsv.write_csv(pa.Table.from_pandas(_iso_dates(frame), preserve_index=False), buf,
                    pacsv.WriteOptions(quoting_style="needed"))
    return memoryview(buf.getvalue())
