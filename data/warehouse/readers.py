"""Read one delivery file into string columns, keeping every record, readable or not.

Departments deliver CSV, JSON lines or Parquet. The fast path reads with pyarrow; when a file is
damaged (bad encoding, a truncated last line, a broken JSON line) the slow path reads it line by
line so that every good record is kept and every bad one comes back verbatim with its line number
and the reason, ready for quarantine. Values stay strings here: typing is validation's job.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq


@dataclass
class UnreadableRecord:
    """A line that could not be parsed: kept verbatim for quarantine."""

    line: int          # 1-based line in the file (header = line 1 for CSV)
    rule: str          # encoding | truncated_record | malformed_record
    detail: str
    raw: str


@dataclass
class ReadResult:
    path: Path
    frame: pd.DataFrame                    # all columns as strings (None = null); `_line` = source line/row
    unreadable: list[UnreadableRecord] = field(default_factory=list)
    fatal: str | None = None               # the whole file could not be read (e.g. Parquet footer missing)


class DeliveryReadError(Exception):
    """Raised only by `read_delivery(strict=True)`: names the file and the first bad line."""


def _to_strings(table: pa.Table) -> pd.DataFrame:
    out = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_date(col.type) or pa.types.is_timestamp(col.type):
            s = pd.Series(col.to_pandas(), dtype="object")
            out[name] = [None if pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d") for v in s]
        elif pa.types.is_floating(col.type):
            vals = col.to_pylist()
            out[name] = [None if v is None or v != v else repr(float(v)) for v in vals]
        elif pa.types.is_boolean(col.type):
            out[name] = [None if v is None else ("true" if v else "false") for v in col.to_pylist()]
        else:
            out[name] = [None if v is None else str(v) for v in col.to_pylist()]
    return pd.DataFrame(out, dtype=object)


def read_delivery(path: Path, fmt: str) -> ReadResult:
    """Read a delivery; never raises for damaged content (see ReadResult.unreadable / fatal)."""
    if fmt == "parquet":
        return _read_parquet(path)
    if fmt == "csv":
        return _read_csv(path)
    if fmt == "jsonl":
        return _read_jsonl(path)
    raise ValueError(f"{path}: unknown delivery format {fmt!r}")


def _read_parquet(path: Path) -> ReadResult:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        return ReadResult(path, pd.DataFrame(), fatal=f"{path}: not a readable Parquet file ({exc})")
    frame = _to_strings(table)
    frame["_line"] = range(1, len(frame) + 1)
    return ReadResult(path, frame)


def _read_csv(path: Path) -> ReadResult:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
        if text.endswith("\n") or not text:
            header = next(csv.reader([text.split("\n", 1)[0]])) if text else []
            table = pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in header}, strings_can_be_null=True,
                quoted_strings_can_be_null=True, null_values=[""]))
            frame = _to_strings(table)
            frame["_line"] = range(2, len(frame) + 2)
            return ReadResult(path, frame)
    except (UnicodeDecodeError, pa.ArrowInvalid):
        pass
    return _read_csv_slow(path, data)


def _decode_lines(data: bytes) -> list[tuple[int, str | None, bytes]]:
    """(line number, decoded text or None, raw bytes) per line."""
    out = []
    for i, raw in enumerate(data.split(b"\n"), start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            out.append((i, raw.decode("utf-8"), raw))
        except UnicodeDecodeError:
            out.append((i, None, raw))
    if out and out[-1][2] == b"":
        out.pop()
    return out


def _read_csv_slow(path: Path, data: bytes) -> ReadResult:
    lines = _decode_lines(data)
    bad: list[UnreadableRecord] = []
    if not lines or lines[0][1] is None:
        return ReadResult(path, pd.DataFrame(), fatal=f"{path}: line 1 (header) is not valid UTF-8")
    header = next(csv.reader([lines[0][1]]))
    rows, numbers = [], []
    ends_clean = data.endswith(b"\n")
    for k, (no, text, raw) in enumerate(lines[1:], start=1):
        if text is None:
            bad.append(UnreadableRecord(no, "encoding", f"{path.name} line {no}: bytes are not valid UTF-8 "
                                        "(wrongly encoded delivery, e.g. GBK)", raw.decode("latin-1")))
            continue
        fields = next(csv.reader([text]), [])
        last = k == len(lines) - 1
        if len(fields) != len(header):
            rule = "truncated_record" if (last and not ends_clean) else "malformed_record"
            bad.append(UnreadableRecord(no, rule, f"{path.name} line {no}: {len(fields)} fields, header has "
                                        f"{len(header)}" + (" (file ends mid-record)" if rule == "truncated_record"
                                                            else ""), text))
            continue
        rows.append([v if v != "" else None for v in fields])
        numbers.append(no)
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame["_line"] = numbers
    return ReadResult(path, frame, unreadable=bad)


def _read_jsonl(path: Path) -> ReadResult:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        if data.endswith(b"\n") or not data:
            table = pajson.read_json(io.BytesIO(data))
            frame = _to_strings(table)
            frame["_line"] = range(1, len(frame) + 1)
            return ReadResult(path, frame)
    except (UnicodeDecodeError, pa.ArrowInvalid):
        pass
    bad: list[UnreadableRecord] = []
    records, numbers = [], []
    lines = _decode_lines(data)
    for k, (no, text, raw) in enumerate(lines):
        if text is None:
            bad.append(UnreadableRecord(no, "encoding", f"{path.name} line {no}: bytes are not valid UTF-8",
                                        raw.decode("latin-1")))
            continue
        try:
            obj = json.loads(text)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            last = k == len(lines) - 1 and not data.endswith(b"\n")
            bad.append(UnreadableRecord(no, "truncated_record" if last else "malformed_record",
                                        f"{path.name} line {no}: {exc}", text))
            continue
        records.append({key: (None if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else
                                                     ("true" if v is True else "false" if v is False else str(v))))
                        for key, v in obj.items()})
        numbers.append(no)
    frame = pd.DataFrame.from_records(records).astype(object) if records else pd.DataFrame()
    frame["_line"] = numbers
    return ReadResult(path, frame, unreadable=bad)
