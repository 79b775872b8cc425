"""Fast full-population materialization into Feast's online store (SQLite or Redis).

Feast's `materialize` pulls rows through ibis and builds one protobuf per value in Python before a
per-row write; for a few thousand firms x 1,000+ mart columns that dominates. Here the latest row per
firm comes from the same knowledge timeline as training (training_set.py), each column is encoded to
Feast's `Value` wire format in bulk (fixed-width numbers by numpy, strings by one concatenation), and
rows go to the store in large batches (`executemany` in one transaction, Redis pipelines). The layout
is exactly Feast's (table `<project>_<view>`, serialized entity keys, mmh3 field hashes for Redis), so
`get_online_features` reads it unchanged; tests compare both paths value by value.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import struct
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data.feature_store.sources import CREATED_TS, EVENT_TS, JOIN_KEY
from data.feature_store.sqlite_layout import clustered, leads_primary_key, table_ddl
from data.feature_store.training_set import ViewSource
from data.warehouse.rules import q


@dataclass(frozen=True)
class BulkResult:
    view: str
    entities: int
    values: int


def latest_rows(view: ViewSource, as_of: datetime | None = None,
                con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """The value known at `as_of` (default: everything) per firm, ordered by firm.

    Among the rows visible by then (visible from max(event time, availability)), the one with the
    greatest (event_timestamp, created_ts) — the last step of the training timeline; on a tie, the
    later row of the file. Found on the three key columns first, then only those rows are read whole:
    a window over every column sorted the wide marts (1,478 columns) and took 30 s of a 38 s refresh.
    """
    cut = (f"where greatest({EVENT_TS}, {CREATED_TS}) <= timestamp '{as_of:%Y-%m-%d %H:%M:%S}'"
           if as_of else "")
    cols = ", ".join(q(f) for f in view.features)
    src = f"read_parquet('{view.path}', file_row_number = true)"
    own = con is None
    con = con or duckdb.connect()
    try:
        return con.sql(f"""
            with latest as (
                select arg_max(file_row_number, ({EVENT_TS}, {CREATED_TS}, file_row_number)) as row_id
                from {src} {cut} group by {q(JOIN_KEY)})
            select {q(JOIN_KEY)}, {EVENT_TS}, {CREATED_TS}, {cols} from {src}
            where file_row_number in (select row_id from latest)
            order by {q(JOIN_KEY)}""").to_arrow_table()
    finally:
        if own:
            con.close()


DOUBLE_TAG, FLOAT_TAG = 0x29, 0x35     # `Value.double_val` (field 5, 64-bit) and `float_val` (field 6, 32-bit)
NULL_TIMESTAMP = -(2**63)              # `unix_timestamp_val` of a null time as Feast stores it (pandas NaT)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _float_block(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A float column's `Value` bytes by numpy: an (n, 1 + width) block of tag + little-endian number
    (nulls as 0, to be dropped by the caller) and the validity mask."""
    width = 8 if arr.type.bit_width == 64 else 4       # a half float goes out as `float_val`, like a float
    vals = np.asarray(pc.fill_null(arr, 0).to_numpy(zero_copy_only=False), dtype=f"<f{width}")
    block = np.empty((len(arr), 1 + width), dtype=np.uint8)
    block[:, 0] = DOUBLE_TAG if width == 8 else FLOAT_TAG
    block[:, 1:] = vals.view(np.uint8).reshape(len(arr), width)
    return block, np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=bool)


def encode_column(col: pa.ChunkedArray | pa.Array) -> list[bytes]:
    """Serialize one Arrow column to Feast `Value` protobuf bytes as Feast's materialize does (a null is an
    empty Value, except a null time in a column with other times: NaT's integer)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    valid = np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=bool)
    t = arr.type
    if pa.types.is_floating(t):
        block, _ = _float_block(arr)
        buf, step = block.tobytes(), block.shape[1]
        enc = [buf[i:i + step] for i in range(0, len(buf), step)]
    elif pa.types.is_boolean(t):
        enc = [b"8\x01" if v else b"8\x00" for v in pc.fill_null(arr, False).to_pylist()]
    elif pa.types.is_integer(t):
        enc = [b" " + _varint(int(v)) for v in pc.fill_null(arr, 0).to_pylist()]
    elif pa.types.is_timestamp(t) or pa.types.is_date(t):
        secs = pc.cast(pc.cast(arr, pa.timestamp("s"), safe=False), pa.int64()) if pa.types.is_timestamp(t) \
            else pc.multiply(pc.cast(pc.cast(pc.cast(arr, pa.date32()), pa.int32()), pa.int64()), 86400)
        # Feast's materialize writes a null time as NaT's integer, not as an empty Value, unless the whole
        # column is null (it then writes empty Values for every row, like any all-null column)
        if secs.null_count < len(secs):
            return [b"@" + _varint(int(v)) for v in pc.fill_null(secs, NULL_TIMESTAMP).to_pylist()]
        enc = [b""] * len(secs)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        enc = []
        for v in arr.to_pylist():
            raw = (v or "").encode("utf-8")
            enc.append(b"\x12" + _varint(len(raw)) + raw)
    else:
        raise TypeError(f"no online encoding for Arrow type {t}")
    if not valid.all():
        enc = [e if ok else b"" for e, ok in zip(enc, valid, strict=True)]
    return enc


@functools.cache
def _entity_key_head() -> bytes:
    """The bytes Feast's serialized enterprise key (serialization version 3) puts before the value's
    length and UTF-8 bytes: key count, join-key type, length and name, value type. Taken from Feast's own
    serializer and checked against it, so a change in its format fails here, not in a read."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    probe = "91330900MA2A00009X"
    whole = serialize_entity_key(EntityKey(join_keys=[JOIN_KEY], entity_values=[Value(string_val=probe)]),
                                 entity_key_serialization_version=3)
    tail = struct.pack("<I", len(probe)) + probe.encode("utf-8")
    if not whole.endswith(tail):
        raise RuntimeError(f"Feast's entity key layout changed: {whole!r} does not end with {tail!r}")
    return whole[:-len(tail)]


def entity_keys(usccs: Sequence[str]) -> list[bytes]:
    """Feast's serialized entity keys (serialization version 3) for the enterprise entity: the constant
    head, then each value's length and bytes (Feast's serializer builds two protobufs per key: 0.8 s of
    a bulk write, called once per view)."""
    head, length = _entity_key_head(), struct.Struct("<I").pack
    return [head + length(len(b)) + b for b in (u.encode("utf-8") for u in usccs)]


def _epoch(ts: pa.ChunkedArray) -> list[int | None]:
    """Seconds since the epoch, as Feast's SQLite adapter stores event_ts / created_ts."""
    secs = pc.cast(pc.cast(ts, pa.timestamp("s"), safe=False), pa.int64())
    return secs.to_pylist()


@dataclass(frozen=True)
class SlotLayout:
    """A view's encoded values (or their texts) laid out firm by firm: column j of firm i sits at bytes
    [offsets[j], offsets[j] + lengths[i, j]) of `matrix[i]` (1-based offsets, SQLite's `substr`)."""

    matrix: np.ndarray       # (firms, width) uint8
    lengths: np.ndarray      # (firms, columns) encoded length; 0 for a null (an empty `Value`)
    offsets: np.ndarray      # (columns,) where each column's fixed-width slot starts
    widths: np.ndarray       # (columns,) each slot's width

    def length_digits(self) -> tuple[np.ndarray, int]:
        """The lengths as fixed-width decimal ASCII per firm (SQLite reads them with substr + cast)."""
        return ascii_digits(self.lengths)


def ascii_digits(numbers: np.ndarray) -> tuple[np.ndarray, int]:
    """Non-negative integers (firms, m) as fixed-width decimal ASCII, firm by firm, and that width."""
    digits = len(str(int(numbers.max(initial=0))))
    rest = numbers.astype(np.uint32 if digits < 10 else np.uint64)
    out = np.empty((*numbers.shape, digits), dtype=np.uint8)
    for k in range(digits - 1, -1, -1):
        out[..., k] = rest % 10 + 48
        rest //= 10
    return out.reshape(numbers.shape[0], -1), digits


def _slot(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """One column's `Value` bytes as an (n, width) byte block and per-row lengths. Floats are written
    by numpy in one go (nearly every mart column); other types are padded from `encode_column`."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if pa.types.is_floating(arr.type):
        block, valid = _float_block(arr)
        return block, np.where(valid, block.shape[1], 0)
    enc = encode_column(arr)
    lengths = np.fromiter(map(len, enc), dtype=np.int64, count=n)
    width = int(lengths.max(initial=0))
    block = np.frombuffer(b"".join(e.ljust(width, b"\0") for e in enc), dtype=np.uint8).reshape(n, width)
    return block, lengths


def slot_layout(rows: pa.Table, features: Sequence[str]) -> SlotLayout:
    """The view's encoded `Value`s laid out firm by firm."""
    n = rows.num_rows
    blocks, lengths = zip(*(_slot(rows.column(f)) for f in features), strict=True) if features else ((), ())
    widths = np.array([b.shape[1] for b in blocks], dtype=np.int64)
    offsets = 1 + np.concatenate([[0], np.cumsum(widths)[:-1]]) if len(widths) else np.zeros(0, np.int64)
    # one spare byte: a firm whose every value is null still binds a non-empty blob (substr of an empty
    # blob is NULL, of a non-empty one an empty blob, which is what Feast stores for a null)
    matrix = np.concatenate([*blocks, np.zeros((n, 1), np.uint8)], axis=1)
    lens = np.stack(lengths, axis=1) if lengths else np.zeros((n, 0), np.int64)
    return SlotLayout(matrix, lens, offsets, widths)


@contextlib.contextmanager
def _quick_gil_handoff(seconds: float = 1e-4) -> Iterator[None]:
    """Shorten CPython's thread switch interval while SQLite and the preparing thread take turns: after
    each firm's step SQLite's thread waits for the GIL, by default up to 5 ms (the preparing thread's
    Python holds it meanwhile). Restored afterwards."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@dataclass(frozen=True)
class SqliteRows:
    """Firms of one view ready for `write_sqlite`, one parameter tuple per firm in key order: (entity key,
    value slots, their lengths, text slots, their lengths, event_ts, created_ts)."""

    slots: list[int]         # where each feature's value slot starts in a firm's value blob
    text_slots: list[int]    # and its text's slot in the firm's text blob
    value_digits: int        # width of each value length in the lengths blob
    text_digits: int         # width of each text length + 1 (0: no text)
    params: list[tuple]


SQLITE_CHUNK_FIRMS = 2048   # firms built together; the next chunk is built while SQLite inserts this one
SQLITE_FIRST_CHUNK_FIRMS = 128   # a view's first chunk, built while SQLite waits: chunks double from here


def chunk_bounds(n: int, first: int, most: int) -> list[tuple[int, int]]:
    """[start, stop) spans covering n items in order: `first` items, then twice as many each time up to `most`.
    SQLite waits for a view's first chunk (the widest view's 2,048 firms took 2 s to build), not for the rest,
    which are built while it inserts the one before."""
    bounds, start, size = [], 0, max(1, min(first, most))
    while start < n:
        bounds.append((start, min(start + size, n)))
        start, size = start + size, min(2 * size, most)
    return bounds


def sqlite_rows(rows: pa.Table, features: Sequence[str], keys: Sequence[bytes], firms: np.ndarray) -> SqliteRows:
    """Everything `write_sqlite` binds for the firms at `firms` (row numbers, in key order), built column
    by column in bulk with Arrow and numpy."""
    part = rows.take(pa.array(firms, pa.int64()))
    values, texts = slot_layout(part, features), text_slots(part, features)
    (vlen, vd), (tlen, td) = values.length_digits(), texts.length_digits()
    ev, cr = _epoch(part.column(EVENT_TS)), _epoch(part.column(CREATED_TS))
    blocks = (values.matrix, vlen, texts.matrix, tlen)
    params = [(keys[i], *(b[r].tobytes() for b in blocks), ev[r], cr[r]) for r, i in enumerate(firms.tolist())]
    return SqliteRows(values.offsets.tolist(), texts.offsets.tolist(), vd, td, params)


def sqlite_chunks(rows: pa.Table, features: Sequence[str], pool: ThreadPoolExecutor,
                  ahead: int = 2) -> Iterator[SqliteRows]:
    """The view's firms in key order, in chunks growing to `SQLITE_CHUNK_FIRMS` (`chunk_bounds`), each built
    in `pool` while the ones before it are inserted (so the widest view's insert starts after one small
    chunk, not all)."""
    keys = entity_keys(rows.column(JOIN_KEY).to_pylist())
    order = np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)
    spans = [order[a:b] for a, b in chunk_bounds(len(order), SQLITE_FIRST_CHUNK_FIRMS, SQLITE_CHUNK_FIRMS)]
    building = deque(pool.submit(sqlite_rows, rows, features, keys, s) for s in spans[:ahead])
    for k in range(len(spans)):
        chunk = building.popleft().result()
        if k + ahead < len(spans):
            building.append(pool.submit(sqlite_rows, rows, features, keys, spans[k + ahead]))
        yield chunk


def write_sqlite(path: str, table: str, features: Sequence[str], chunks: Iterable[SqliteRows],
                 cluster: bool = True) -> int:
    """Replace Feast's SQLite table `table` with the firms in `chunks` atomically; returns values written.

    A full-population refresh: the rows are inserted in primary-key order into a fresh table with
    Feast's columns, key and indexes (less any that `leads_primary_key`), declared WITHOUT ROWID when
    `cluster` (sqlite_layout.py), which then replaces the old one in the same transaction (readers see the
    old or the new population, never a mix; a crash leaves the old one).
    Binding six parameters per value cost 4x SQLite's own insert work, so each firm is bound once: its
    values and their texts as two blobs of fixed slots, with their lengths as decimal digits beside
    them; SQLite cuts them up against a layout table of (column, feature name, slots) in one
    INSERT ... SELECT per firm.
    """
    con = sqlite3.connect(path, isolation_level=None)
    written = 0
    try:
        con.execute("pragma synchronous = off")
        ddl, idx = table_ddl(con, table)
        new = f"{table}__bulk"
        con.execute("drop table if exists temp.zx_layout")
        con.execute("create temp table zx_layout (i integer primary key, feature_name text, slot integer, "
                    "text_slot integer)")
        con.execute("begin")
        con.execute(f'drop table if exists "{new}"')
        renamed = ddl.replace(f'"{table}"', f'"{new}"', 1)
        con.execute(clustered(renamed) if cluster else renamed)
        for name, sql in idx:     # kept up as rows arrive in key order (sorting them afterwards took longer)
            moved = sql.replace(f'"{table}"', f'"{new}"')
            if moved == sql:
                raise RuntimeError(f"cannot re-point index {name} of {table}: {sql}")
            keep = not leads_primary_key(con, table, name)
            con.execute(f'drop index "{name}"')
            if keep:
                con.execute(moved)
        for rows in chunks:
            vd, td = rows.value_digits, rows.text_digits          # slots and widths differ chunk by chunk
            con.execute("delete from temp.zx_layout")
            con.executemany("insert into temp.zx_layout values (?, ?, ?, ?)",
                            zip(range(len(features)), features, rows.slots, rows.text_slots, strict=True))
            text_len = f"substr(?5, l.i * {td} + 1, {td})"
            con.executemany(
                f'insert into "{new}" (entity_key, feature_name, value, value_text, event_ts, created_ts) '
                f"select ?1, l.feature_name, substr(?2, l.slot, cast(substr(?3, l.i * {vd} + 1, {vd}) as integer)), "
                f"case when {text_len} = x'{'30' * td}' then null "           # the digits are bound as a blob
                f"else cast(substr(?4, l.text_slot, cast({text_len} as integer) - 1) as text) end, ?6, ?7 "
                "from temp.zx_layout as l", rows.params)
            written += len(rows.params) * len(features)
        con.execute(f'drop table "{table}"')
        con.execute(f'alter table "{new}" rename to "{table}"')
        con.execute("commit")
        return written
    except BaseException:
        if con.in_transaction:
            con.execute("rollback")
        raise
    finally:
        con.close()


def _python_float_text(arr: pa.Array) -> pa.Array:
    """`str(v)` of every float, as Feast writes `value_text`: Arrow's cast gives the same shortest digits
    but its own layout, so it is kept only where Python's repr is plain decimal too (0 and 1e-4 <= |v| <
    1e16, ".0" added to integral values); the few others are formatted by Python."""
    f64 = pc.cast(arr, pa.float64())
    text = pc.cast(f64, pa.string())
    magnitude = pc.abs(f64)
    plain = pc.and_(pc.or_(pc.equal(f64, 0.0), pc.and_(pc.greater_equal(magnitude, 1e-4), pc.less(magnitude, 1e16))),
                    pc.invert(pc.match_substring(text, "e")))
    text = pc.if_else(pc.match_substring(text, "."), text, pc.binary_join_element_wise(text, ".0", ""))
    odd = pc.fill_null(pc.invert(plain), False)
    if not pc.any(odd).as_py():
        return text
    return pc.replace_with_mask(text, odd, pa.array([str(v) for v in pc.filter(f64, odd).to_pylist()], pa.string()))


def value_text(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Feast's `value_text` column: the value as Python's `str` for strings, numbers and booleans, else
    null (Feast's `extract_text_and_num`)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t):
        return pc.cast(arr, pa.string())
    if pa.types.is_floating(t):
        return _python_float_text(arr)
    if pa.types.is_boolean(t):
        return pc.if_else(arr, "True", "False")
    return pa.nulls(len(arr), pa.string())


def _text_lengths(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Which texts are present, and each one's UTF-8 byte length (0 where missing)."""
    valid = np.asarray(pc.is_valid(text).to_numpy(zero_copy_only=False), dtype=bool)
    return valid, np.where(valid, pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False), 0)


def _string_block(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string column's UTF-8 bytes as an (n, width) block, and per row its byte length + 1 (0 for null)."""
    text = pc.cast(text, pa.string())
    n = len(text)
    valid, lengths = _text_lengths(text)
    width = int(lengths.max(initial=0))
    block = np.zeros((n, width), dtype=np.uint8)
    total = int(lengths.sum())
    if total:
        offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset:text.offset + n + 1].astype(np.int64)
        data = np.frombuffer(text.buffers()[2], dtype=np.uint8)
        within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        block.reshape(-1)[np.repeat(np.arange(n) * width, lengths) + within] = \
            data[np.repeat(offsets[:-1], lengths) + within]
    return block, np.where(valid, lengths + 1, 0)


_TEXT_KINDS = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}


def _text_kind(t: pa.DataType) -> str:
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_boolean(t):
        return "bool"
    return "string" if pa.types.is_string(t) or pa.types.is_large_string(t) else "none"


def text_slots(rows: pa.Table, features: Sequence[str]) -> SlotLayout:
    """The view's `value_text`s laid out firm by firm like the values; lengths are + 1 (0: no text).

    Numbers and booleans (nearly every column) are formatted together, one Arrow call per type for all
    their columns, and padded to one width (their text is ASCII); strings get a block per column."""
    n, k = rows.num_rows, len(features)
    kinds: dict[str, list[int]] = {}
    for j, f in enumerate(features):
        kinds.setdefault(_text_kind(rows.schema.field(f).type), []).append(j)
    blocks, codes = [], np.zeros((n, k), dtype=np.int64)
    offsets, widths, used = np.ones(k, dtype=np.int64), np.zeros(k, dtype=np.int64), 0
    for kind, cols in kinds.items():
        if kind == "string":
            for j in cols:
                block, codes[:, j] = _string_block(value_text(rows.column(features[j])))
                blocks.append(block)
                offsets[j], widths[j] = used + 1, block.shape[1]
                used += block.shape[1]
        elif kind != "none":                               # "none": no text (times), code 0
            target = _TEXT_KINDS[kind]
            # pa.concat_arrays: a ChunkedArray's combine_chunks took 3.8 s for 1,478 chunks of 8,360 doubles
            text = value_text(pa.concat_arrays([
                (c if c.type == target else pc.cast(c, target)).combine_chunks()
                for c in (rows.column(features[j]) for j in cols)]))
            valid, lengths = _text_lengths(text)
            width = int(lengths.max(initial=0))
            padded = pc.utf8_rpad(pc.fill_null(text, ""), width, " ")
            start = int(np.frombuffer(padded.buffers()[1], dtype=np.int32)[padded.offset]) if width else 0
            body = np.frombuffer(padded.buffers()[2], dtype=np.uint8, count=len(cols) * n * width, offset=start) \
                if width else np.zeros(0, dtype=np.uint8)
            blocks.append(body.reshape(len(cols), n, width).transpose(1, 0, 2).reshape(n, len(cols) * width))
            codes[:, cols] = np.where(valid, lengths + 1, 0).reshape(len(cols), n).T
            offsets[cols] = used + 1 + np.arange(len(cols)) * width
            widths[cols] = width
            used += len(cols) * width
    return SlotLayout(np.concatenate([*blocks, np.zeros((n, 1), np.uint8)], axis=1), codes, offsets, widths)


def redis_client(connection_string: str):
    """A redis-py client for Feast's `connection_string` ("host:port[,option=value...]")."""
    import redis

    host, _, rest = connection_string.partition(":")
    return redis.Redis(host=host, port=int(rest.split(",")[0] or 6379))


def _bulk_string(b: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(b), b)


@dataclass(frozen=True)
class RespTemplate:
    """A view's HSET field-value pairs for one firm as a fixed byte template: the constant parts (field
    hashes, '$', CRLFs) in place, and where each value's length digits and bytes go. Filling it for a
    block of firms and dropping the unused positions gives every firm's frames with numpy alone."""

    template: np.ndarray      # (width,) uint8, constants in place
    value_pos: np.ndarray     # template positions of value bytes
    value_src: np.ndarray     # their source column in SlotLayout.matrix
    value_col: np.ndarray     # the feature each belongs to
    value_rank: np.ndarray    # the byte's rank inside its value (kept while rank < length)
    digit_pos: np.ndarray     # template positions of length digits
    digit_col: np.ndarray
    digit_pow: np.ndarray     # 10 ** place (the last digit is always kept: a length 0 is "0")

    @classmethod
    def build(cls, heads: Sequence[bytes], slots: SlotLayout) -> RespTemplate:
        parts: list[bytes] = []
        vpos, vsrc, vcol, vrank, dpos, dcol, dpow = [], [], [], [], [], [], []
        at = 0
        for j, (head, off, w) in enumerate(zip(heads, slots.offsets.tolist(), slots.widths.tolist(), strict=True)):
            places = len(str(w))
            frame = head + b"$" + b"0" * places + b"\r\n" + b"\0" * w + b"\r\n"
            digits_at = at + len(head) + 1
            dpos += range(digits_at, digits_at + places)
            dcol += [j] * places
            dpow += [10 ** (places - 1 - k) for k in range(places)]
            values_at = digits_at + places + 2
            vpos += range(values_at, values_at + w)
            vsrc += range(off - 1, off - 1 + w)
            vcol += [j] * w
            vrank += range(w)
            parts.append(frame)
            at += len(frame)
        arr = lambda x: np.asarray(x, dtype=np.int64)  # noqa: E731
        return cls(np.frombuffer(b"".join(parts), dtype=np.uint8), arr(vpos), arr(vsrc), arr(vcol), arr(vrank),
                   arr(dpos), arr(dcol), arr(dpow))

    def frames(self, slots: SlotLayout, firms: slice) -> tuple[bytes, np.ndarray]:
        """The field-value frames of `firms`, concatenated, and each firm's byte count."""
        lengths = slots.lengths[firms]
        n = lengths.shape[0]
        block = np.broadcast_to(self.template, (n, len(self.template))).copy()
        keep = np.ones(block.shape, dtype=bool)
        block[:, self.value_pos] = slots.matrix[firms][:, self.value_src]
        keep[:, self.value_pos] = lengths[:, self.value_col] > self.value_rank
        digit_len = lengths[:, self.digit_col]
        block[:, self.digit_pos] = (digit_len // self.digit_pow) % 10 + 48
        keep[:, self.digit_pos] = (digit_len >= self.digit_pow) | (self.digit_pow == 1)
        return block[keep].tobytes(), keep.sum(axis=1)


def write_redis(client, project: str, view: str, rows: pa.Table, features: Sequence[str],
                batch: int = 500) -> int:
    """HSET each firm's hash in Feast's Redis layout: the commands are framed in RESP here (the values by
    numpy over a template, see RespTemplate) and written to the socket in batches of `batch` firms
    (redis-py packs every argument in Python, which dominated the bulk write), then every reply is read
    and checked. A sender thread writes one batch and reads its replies while the next is built: the
    server works while the frames are made, instead of the two taking turns (one batch in flight, so
    the connection is only ever used by one thread at a time)."""
    from feast.infra.online_stores.helpers import _mmh3
    from google.protobuf.timestamp_pb2 import Timestamp

    keys = [k + project.encode("utf-8") for k in entity_keys(rows.column(JOIN_KEY).to_pylist())]
    slots = slot_layout(rows, features)
    resp = RespTemplate.build([_bulk_string(_mmh3(f"{view}:{f}")) for f in features], slots)
    ts_field = _bulk_string(f"_ts:{view}".encode())
    stamps = []
    for v in rows.column(EVENT_TS).to_pylist():
        ts = Timestamp()
        ts.FromDatetime(v)
        stamps.append(_bulk_string(ts.SerializeToString()))
    command = b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * (len(features) + 1))
    conn = client.connection_pool.get_connection()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zx-redis-send") as sender:
            in_flight: Future | None = None
            for start in range(0, len(keys), batch):
                stop = min(start + batch, len(keys))
                body, sizes = resp.frames(slots, slice(start, stop))
                view_bytes = memoryview(body)
                ends = np.cumsum(sizes).tolist()
                buf: list[bytes | memoryview] = []
                for i, (a, b) in enumerate(zip([0, *ends[:-1]], ends, strict=True)):
                    buf += (command, _bulk_string(keys[start + i]), ts_field, stamps[start + i], view_bytes[a:b])
                payload = b"".join(buf)
                if in_flight is not None:
                    in_flight.result()               # the batch before is answered (an error reply raises)
                in_flight = sender.submit(_flush, conn, payload, stop - start)
            if in_flight is not None:
                in_flight.result()
    except BaseException:
        conn.disconnect()            # replies may be unread: never hand this connection back for reuse
        raise
    finally:
        client.connection_pool.release(conn)
    return len(keys) * len(features)


def _flush(conn, payload: bytes, commands: int) -> None:
    """Send the framed commands in one write, then read every reply (an error reply raises)."""
    from redis.exceptions import ResponseError

    conn.send_packed_command([payload], check_health=False)
    for _ in range(commands):
        reply = conn.read_response()
        if isinstance(reply, ResponseError):
            raise reply


def _record_intervals(store, views: Sequence[str], as_of: datetime | None) -> None:
    """Tell the registry what was materialized, as Feast's own materialize does: readers (the service's
    data as-of, `materialize-incremental`) then see the same state whichever path wrote the values.
    One registry commit for all views: a file registry rewrites itself whole on each, and a commit per
    view kept the SQLite writer idle 0.9 s."""
    from datetime import UTC

    if not views:
        return
    end = as_of or datetime.now(UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    by_name = {fv.name: fv for fv in store.list_feature_views()}
    for view in views:
        store.registry.apply_materialization(by_name[view], store.project, datetime(1970, 1, 1, tzinfo=UTC),
                                             end, commit=False)
    store.registry.commit()


def bulk_materialize(store, views: Sequence[ViewSource], as_of: datetime | None = None,
                     progress: Callable[[str], None] | None = None) -> list[BulkResult]:
    """Write every view's latest known values for the whole population to the store's online store."""
    cfg = store.config
    results = []
    sqlite = cfg.online_store.type == "sqlite"
    clusters = sqlite and not getattr(cfg.online_store, "vector_enabled", False)
    client = None if sqlite else redis_client(cfg.online_store.connection_string)
    con = duckdb.connect()
    failure: BaseException | None = None
    try:
        # views are read (DuckDB) one ahead while the one before is written. SQLite: widest first, each
        # view's parameters built chunk by chunk in a second thread just ahead of its insert. Redis: in the
        # given order (reading a wide view while the server absorbs another took it 12.4 -> 21.1 s)
        pending = sorted(views, key=lambda v: -len(v.features)) if sqlite else list(views)
        with (_quick_gil_handoff() if sqlite else contextlib.nullcontext()), \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="zx-bulk-read") as reader, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="zx-bulk-build") as builder:
            ahead = [reader.submit(latest_rows, v, as_of, con.cursor()) for v in pending[:1]]
            for k, v in enumerate(pending):
                rows = ahead.pop().result()
                if k + 1 < len(pending):
                    ahead.append(reader.submit(latest_rows, pending[k + 1], as_of, con.cursor()))
                if sqlite:
                    feats = sorted(v.features)
                    n = write_sqlite(str(cfg.online_store.path), f"{cfg.project}_{v.name}", feats,
                                     sqlite_chunks(rows, feats, builder), cluster=clusters)
                else:
                    n = write_redis(client, cfg.project, v.name, rows, v.features)
                results.append(BulkResult(view=v.name, entities=rows.num_rows, values=n))
                if progress:
                    progress(v.name)
    except BaseException as err:
        failure = err
        raise
    finally:
        con.close()
        if client is not None:
            client.close()
        _record_written(store, [r.view for r in results], as_of, failure)
    return results


def _record_written(store, views: Sequence[str], as_of: datetime | None, failure: BaseException | None) -> None:
    """Record the views written (even if a later one failed). When recording fails too, the write's own
    error stays the one raised, with a note of what the registry lacks; alone, the registry's error is
    raised naming the views whose new values it does not know of."""
    try:
        _record_intervals(store, views, as_of)
    except Exception as err:
        lacking = (f"the online store holds the new values of {len(views)} view(s) "
                   f"({', '.join(views) or 'none'}), but the registry could not record their materialization: "
                   f"{type(err).__name__}: {err}")
        if failure is not None:
            failure.add_note(lacking)
            return
        raise RuntimeError(lacking) from err
