"""Ingest department deliveries into the warehouse: validate, quarantine, land, and account for every record.

Per delivery (one library x month = one batch):
  records in = accepted + quarantined + duplicates dropped   (checked; the run fails loudly otherwise)
Accepted records land as Parquet under `warehouse/<sub_item>/month=<YYYY-MM>/<batch>.parquet`, typed per
the catalog, with business time (their own date fields), availability time (`_available_date`) and
ingest time (`_ingest_ts`) — append-only, nothing overwritten; SCD-2 validity is derived in views.
Rejected records are kept verbatim in `_quarantine/` with file, line, field and rule; dropped exact
duplicates in `_duplicates/`; normalisations (USCC folding, category labels) in `_normalised/`.
A batch's manifest is written last, after its files were renamed into place, so a killed run leaves
no partial batch and a rerun redoes exactly the unfinished ones. Re-ingesting a finished batch with
the same content is a no-op; with different content it is refused.

Reading and the validation query depend on nothing but the files, so they run ahead in a thread, for
several deliveries of one sub-item at once (one DuckDB query per group: its fixed cost dominates small
batches). Everything that depends on the run's state — registered enterprises, duplicates against what
has landed, key conflicts, the three-way split, files and manifests — stays per batch and in order.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas._libs.hashtable import UInt64HashTable
from pydantic import Field

from data.warehouse.readers import UnreadableRecord, read_delivery
from data.warehouse.rules import q, uscc_macros, validation_sql
from kernel.catalog import Catalog, SubItem, load_catalog
from kernel.config import FrozenModel, configs_dir, file_sha256, load_yaml_model
from kernel.errors import ZhouxinError
from kernel.hashing import hex16
from kernel.workspace import parquet_bytes, write_atomically

DELIVERY = re.compile(r"^(?P<dept>[A-Z]\d\d)/(?P<lib>L\d\d)/(?P<month>\d{4}-\d{2})\.(?P<ext>csv|jsonl|parquet)$")
META_IN = ("_source_library", "_batch_id", "_ingest_ts", "_available_date", "_row_hash")
SCD = ("_valid_from", "_valid_to")
RAW_PATH, RAW_BATCH, RAW_RELATION = "__zx_path__", "__zx_batch__", "__zx_raw__"   # placeholders in cached SQL
U8MAX = np.uint64(np.iinfo(np.uint64).max)   # pandas' hash of a missing value
# The validation query is long: the relation API (`con.sql`) tokenises and binds it twice per batch, which
# costs more than the copy DuckDB warns about when a DB-API result is read as Arrow. Silenced for this module.
warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning,
                        module=r"data\.warehouse\.ingest")


class ConservationError(ZhouxinError):
    """Records in != accepted + quarantined + duplicates for a batch."""


class RedeliveryError(ZhouxinError):
    """A batch already landed was delivered again with different content."""


@dataclass(frozen=True)
class Delivery:
    path: Path            # absolute
    relative: str         # <dept>/<lib>/<YYYY-MM>.<ext> under raw/
    department: str
    library: str
    sub_item: str
    month: str
    fmt: str

    @property
    def batch_id(self) -> str:
        return f"{self.library}-{self.month.replace('-', '')}"


@dataclass
class BatchResult:
    batch_id: str
    sub_item: str
    records_in: int
    accepted: int
    quarantined: int
    duplicates: int
    normalised: int
    skipped: bool = False
    fatal: str | None = None
    rules: dict[str, int] = field(default_factory=dict)


def warehouse_dir(ws: Path) -> Path:
    return ws / "warehouse"


def list_deliveries(raw: Path, catalog: Catalog) -> list[Delivery]:
    """Every delivery under raw/, in ingestion order: by month, registration first, then by library."""
    out = []
    for p in raw.rglob("*"):
        if not p.is_file() or p.suffix == ".tmp" or p.name == "manifest.json":
            continue
        rel = p.relative_to(raw).as_posix()
        m = DELIVERY.match(rel)
        if not m:
            continue
        lib = catalog.library(m["lib"])
        out.append(Delivery(p, rel, m["dept"], lib.id, lib.sub_item, m["month"], m["ext"]))
    first = {"ent_registration": 0}
    return sorted(out, key=lambda d: (d.month, first.get(d.sub_item, 1), d.library))


class IngestConfig(FrozenModel):
    """configs/ingest.yaml: how work is grouped and read ahead (never what lands)."""

    group_max_bytes: int = Field(gt=0)
    group_max_batches: int = Field(gt=0)
    read_ahead_batches: int = Field(ge=0)


@cache
def load_ingest_config() -> IngestConfig:
    return load_yaml_model(IngestConfig, configs_dir() / "ingest.yaml")


def plan_groups(deliveries: list[Delivery], cfg: IngestConfig) -> list[list[int]]:
    """Positions of deliveries validated together: same sub-item and format, in ingestion order, up to
    the configured size; groups come in the order of their first delivery, which is the order they are
    needed in."""
    groups: list[list[int]] = []
    open_group: dict[tuple[str, str], tuple[int, int]] = {}      # key -> (group index, bytes so far)
    for i, d in enumerate(deliveries):
        key, size = (d.sub_item, d.fmt), d.path.stat().st_size
        g, used = open_group.get(key, (-1, 0))
        if g < 0 or len(groups[g]) >= cfg.group_max_batches or used + size > cfg.group_max_bytes:
            groups.append([])
            g, used = len(groups) - 1, 0
        groups[g].append(i)
        open_group[key] = (g, used + size)
    return groups


@dataclass
class Checked:
    """A delivery read and run through the validation query; nothing of the run's state is used yet,
    so this part of a batch can be done ahead, while the batch before it lands."""

    sha: str
    table: pa.Table | None                   # None: the batch had already landed when it was read
    unreadable: list[UnreadableRecord] = field(default_factory=list)
    fatal: str | None = None


class HashSet:
    """Content hashes (as uint64) of what a sub-item has landed: a flat hash table, so membership of a
    whole batch is one vectorised lookup and each entry costs bytes, not a Python object. The table is
    pandas' own uint64 hashtable (not public API: uv.lock pins pandas, tests/data/warehouse checks it)."""

    def __init__(self) -> None:
        self._table = UInt64HashTable()

    def add(self, values: np.ndarray) -> None:
        self._table.map_locations(np.ascontiguousarray(values, dtype=np.uint64))

    def contains(self, values: np.ndarray) -> np.ndarray:
        if len(values) == 0:
            return np.zeros(0, dtype=bool)
        return self._table.lookup(np.ascontiguousarray(values, dtype=np.uint64)) >= 0


@dataclass
class Validated:
    """One batch split three ways; accepted stays Arrow (it is most of the rows), the small outputs are
    pandas frames as they always were, so their Parquet files keep the same types."""

    accepted: pa.Table
    accepted_hashes: np.ndarray            # uint64 content hashes of the accepted rows
    quarantined: pd.DataFrame
    duplicates: pd.DataFrame
    normalised: pd.DataFrame


class Ingestor:
    """Stateful over one run: registered enterprises and seen row hashes carry across batches."""

    def __init__(self, ws: Path, catalog: Catalog | None = None) -> None:
        self.ws = ws
        self.catalog = catalog or load_catalog()
        self.wh = warehouse_dir(ws)
        self.con = duckdb.connect()
        self.con.execute("set preserve_insertion_order = true")
        for m in uscc_macros():
            self.con.execute(m)
        self._cursors = threading.local()
        self.registered: set[str] = set()
        self._registered_array: pa.Array | None = None
        self.seen: dict[str, HashSet] = {}
        self._sql: dict[str, tuple[str, str]] = {}
        self._remove_torn_files()
        self._load_state()

    def _remove_torn_files(self) -> None:
        """Temporary files of a killed run are not data: remove them before anything is read."""
        if self.wh.is_dir():
            for tmp in self.wh.rglob("*.tmp"):
                tmp.unlink()

    # -- state from what has already landed ----------------------------------------------------------
    def _landed_files(self, sub_item: str) -> str | None:
        """The accepted files of finished batches, as a DuckDB list literal (None if there are none).
        A killed run can leave a batch's files renamed into place without its manifest; that batch is
        redone, so its rows must not count as registered or already landed."""
        folder = self.wh / sub_item
        if not folder.is_dir():
            return None
        files = sorted(str(p) for p in folder.rglob("*.parquet") if self._manifest_path_of(p.stem).is_file())
        return "[" + ", ".join(lit_str(f) for f in files) + "]" if files else None

    def _load_state(self) -> None:
        files = self._landed_files("ent_registration")
        if files:
            self.registered = set(self.con.sql(f"select distinct uscc from read_parquet({files})").df()["uscc"])

    def _seen_hashes(self, sub_item: str) -> HashSet:
        if sub_item not in self.seen:
            seen = HashSet()
            files = self._landed_files(sub_item)
            if files:
                hexes = self.con.sql(f"select _content_hash from read_parquet({files})"
                                     ).to_arrow_table().column(0).to_pylist()
                seen.add(np.fromiter((int(h, 16) for h in hexes), dtype=np.uint64, count=len(hexes)))
            self.seen[sub_item] = seen
        return self.seen[sub_item]

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's own cursor on the run's database (macros included): a cursor is not thread-safe,
        and reading runs in the read-ahead thread while landing runs in the caller's."""
        cur = getattr(self._cursors, "cursor", None)
        if cur is None:
            cur = self._cursors.cursor = self.con.cursor()
        return cur

    def _registered_values(self) -> pa.Array:
        """The registered USCCs as an Arrow array, rebuilt only after a registration batch changed them."""
        if self._registered_array is None:
            self._registered_array = pa.array(sorted(self.registered), pa.string())
        return self._registered_array

    # -- many batches --------------------------------------------------------------------------------
    def ingest_many(self, deliveries: list[Delivery]) -> Iterator[BatchResult]:
        """Ingest in order, reading and validating groups of later batches in a thread while this one
        lands: the query does not depend on the run's state, landing (and its state) stays in order."""
        cfg = load_ingest_config()
        groups = plan_groups(deliveries, cfg)
        owner = {i: g for g, members in enumerate(groups) for i in members}
        read: dict[int, Future[dict[int, Checked]]] = {}
        submitted = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zx-read") as pool:
            try:
                for i, d in enumerate(deliveries):
                    while submitted < len(groups) and groups[submitted][0] <= i + cfg.read_ahead_batches:
                        members = groups[submitted]
                        read[submitted] = pool.submit(self._read_group, [deliveries[j] for j in members], members)
                        submitted += 1
                    g = owner[i]
                    ready = read[g].result()
                    checked = ready.pop(i)
                    if not ready:
                        del read[g]                 # the group's tables are freed once all its batches landed
                    yield self._land(d, checked)
            finally:
                for f in read.values():
                    f.cancel()

    # -- one batch -----------------------------------------------------------------------------------
    def ingest(self, d: Delivery) -> BatchResult:
        return self._land(d, self._read_group([d], [0])[0])

    def _manifest_path(self, d: Delivery) -> Path:
        return self._manifest_path_of(d.batch_id)

    def _manifest_path_of(self, batch_id: str) -> Path:
        return self.wh / "_manifest" / f"{batch_id}.json"

    def _read_group(self, ds: list[Delivery], positions: list[int]) -> dict[int, Checked]:
        """Hash each file and read and validate those not landed yet, in one query when they all read
        cleanly, else one by one (thread-safe: uses only this thread's cursor and the files)."""
        out = {p: Checked(file_sha256(d.path), None) for p, d in zip(positions, ds, strict=True)}
        todo = [(p, d) for p, d in zip(positions, ds, strict=True) if not self._manifest_path(d).is_file()]
        if not todo:
            return out
        spec = self.catalog.sub_item(todo[0][1].sub_item)
        try:
            tables = self._check_together([d for _, d in todo], spec)
            for (p, _), table in zip(todo, tables, strict=True):
                out[p].table = table
        except duckdb.Error:                      # a damaged file: find it, and read it line by line
            for p, d in todo:
                out[p].table, out[p].unreadable, out[p].fatal = self._check(d, spec)
        return out

    def _land(self, d: Delivery, c: Checked) -> BatchResult:
        manifest_path = self._manifest_path(d)
        sha = c.sha
        if manifest_path.is_file():
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
            if old["source_sha256"] == sha:
                return BatchResult(d.batch_id, d.sub_item, old["records_in"], old["accepted"], old["quarantined"],
                                   old["duplicates"], old["normalised"], skipped=True)
            raise RedeliveryError(f"{d.relative}: batch {d.batch_id} was already ingested from content "
                                  f"{old['source_sha256'][:12]}…, this delivery has {sha[:12]}…; refusing to overwrite")
        if c.table is None and c.fatal is None:      # read while the same batch was landing earlier in the list
            c = self._read_group([d], [0])[0]
        spec = self.catalog.sub_item(d.sub_item)
        if c.fatal:
            res = BatchResult(d.batch_id, d.sub_item, 0, 0, 0, 0, 0, fatal=c.fatal)
            qrows = pd.DataFrame([{"batch_id": d.batch_id, "sub_item": d.sub_item, "source_file": d.relative,
                                   "line": 0, "failures": ["*:unreadable_file"], "detail": c.fatal, "record": ""}])
            self._write_quarantine(d, qrows)
            self._write_manifest(d, sha, res, outputs={}, fatal=c.fatal)
            return res
        checked, unreadable = c.table, c.unreadable
        assert checked is not None
        v = self._validate(d, spec, checked)
        quarantined = v.quarantined
        qrows = pd.concat([quarantined, pd.DataFrame([{
            "batch_id": d.batch_id, "sub_item": d.sub_item, "source_file": d.relative, "line": u.line,
            "failures": [f"*:{u.rule}"], "detail": u.detail, "record": u.raw} for u in unreadable])], ignore_index=True) \
            if unreadable else quarantined
        records_in = checked.num_rows + len(unreadable)
        res = BatchResult(d.batch_id, d.sub_item, records_in, v.accepted.num_rows, len(qrows), len(v.duplicates),
                          len(v.normalised))
        res.rules = _rule_counts(qrows)
        if res.accepted + res.quarantined + res.duplicates != res.records_in:
            raise ConservationError(f"{d.relative}: {res.records_in} records in, but {res.accepted} accepted + "
                                    f"{res.quarantined} quarantined + {res.duplicates} duplicates")
        outputs = {}
        if v.accepted.num_rows:
            path = self.wh / d.sub_item / f"month={d.month}" / f"{d.batch_id}.parquet"
            outputs["accepted"] = (str(path.relative_to(self.ws)), write_atomically(path, parquet_bytes(v.accepted)))
        if len(qrows):
            outputs["quarantine"] = self._write_quarantine(d, qrows)
        if len(v.duplicates):
            path = self.wh / "_duplicates" / d.sub_item / f"{d.batch_id}.parquet"
            outputs["duplicates"] = (str(path.relative_to(self.ws)), write_atomically(
                path, parquet_bytes(pa.Table.from_pandas(v.duplicates, preserve_index=False))))
        if len(v.normalised):
            path = self.wh / "_normalised" / d.sub_item / f"{d.batch_id}.parquet"
            outputs["normalised"] = (str(path.relative_to(self.ws)), write_atomically(
                path, parquet_bytes(pa.Table.from_pandas(v.normalised, preserve_index=False))))
        self._write_manifest(d, sha, res, outputs)
        if d.sub_item == "ent_registration" and v.accepted.num_rows:
            self.registered.update(v.accepted.column("uscc").to_pylist())
            self._registered_array = None
        self._seen_hashes(d.sub_item).add(v.accepted_hashes)
        return res

    def _validation_sql(self, spec: SubItem, ds: list[Delivery]) -> str:
        """The validation query over the raw columns of several deliveries (`_batch` = their index);
        its text is built once per sub-item and format, only paths are filled in per group."""
        key = f"{spec.code}/{ds[0].fmt}"
        if key not in self._sql:
            cols = [*spec.field_names, *META_IN, *(SCD if spec.is_versioned else ())]
            if ds[0].fmt == "csv":
                rel = f"read_csv({RAW_PATH}, all_varchar=true, header=true, strict_mode=true, null_padding=false)"
                start = 2
            elif ds[0].fmt == "jsonl":
                types = ", ".join(f"'{c}': 'VARCHAR'" for c in cols)
                rel = f"read_json({RAW_PATH}, format='newline_delimited', columns={{{types}}})"
                start = 1
            else:
                rel = f"read_parquet({RAW_PATH})"
                start = 1
            sel = ", ".join(f"cast({q(c)} as varchar) as {q(c)}" for c in cols)
            member = f"(select {sel}, (row_number() over ()) + {start - 1} as _line, {RAW_BATCH} as _batch from {rel})"
            self._sql[key] = (member, validation_sql(spec, RAW_RELATION, typed=True))
        member, query = self._sql[key]
        raw = " union all ".join(member.replace(RAW_PATH, lit_str(str(d.path))).replace(RAW_BATCH, str(k))
                                 for k, d in enumerate(ds))
        return query.replace(RAW_RELATION, f"({raw})")

    def _check_together(self, ds: list[Delivery], spec: SubItem) -> list[pa.Table]:
        """Read and validate deliveries of one sub-item and format in one DuckDB query; one table per
        delivery, its rows in line order. Raises duckdb.Error when any of the files does not read."""
        table: pa.Table = self._cursor().execute(self._validation_sql(spec, ds)).to_arrow_table()
        batch = table["_batch"].to_numpy()
        order = np.lexsort((table["_line"].to_numpy(), batch))
        if (np.diff(order) < 0).any():
            table, batch = table.take(pa.array(order, pa.int64())), batch[order]
        table = table.drop_columns(["_batch"])
        bounds = np.searchsorted(batch, np.arange(len(ds) + 1))
        return [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)]

    def _check(self, d: Delivery, spec: SubItem) -> tuple[pa.Table, list[UnreadableRecord], str | None]:
        """Read and validate in one DuckDB query (fast path); damaged files go through the line reader."""
        try:
            return self._check_together([d], spec)[0], [], None
        except duckdb.Error:
            pass
        cols = [*spec.field_names, *META_IN, *(SCD if spec.is_versioned else ())]
        result = read_delivery(d.path, d.fmt)
        if result.fatal:
            return pa.table({}), [], result.fatal
        frame = result.frame
        for c in cols:
            if c not in frame.columns:
                frame[c] = None
        if frame.empty:
            return pa.table({}), result.unreadable, None
        self._cursor().register("batch_raw", frame[[*cols, "_line"]])
        checked = self._cursor().execute(validation_sql(spec, "batch_raw", typed=True)).to_arrow_table()
        self._cursor().unregister("batch_raw")
        return checked, result.unreadable, None

    def _validate(self, d: Delivery, spec: SubItem, checked: pa.Table) -> Validated:
        """Split a checked batch into accepted / quarantined / duplicates, in Arrow and numpy: per-record
        Python work is left only for the few records that are quarantined."""
        if checked.num_rows == 0:
            empty = pd.DataFrame()
            return Validated(pa.table({}), np.zeros(0, dtype=np.uint64), empty, empty, empty)
        fields = list(spec.field_names)
        n = checked.num_rows
        # content hash over normalised fields + availability: what makes two records the same fact
        content = frame_hash([checked[f"n_{f}"] for f in fields] + [checked["_available_date"]])
        sql_failed = pc.greater(pc.list_value_length(checked["failures"]), 0).to_numpy(zero_copy_only=False)
        # referential integrity: the enterprise must already be registered on the platform
        unknown = np.zeros(n, dtype=bool)
        if spec.code != "ent_registration":
            uscc = checked["n_uscc"]
            known = pc.is_in(uscc, value_set=self._registered_values())
            unknown = pc.and_(pc.invert(known), pc.is_valid(uscc)).to_numpy(zero_copy_only=False)
        # near-duplicates: same key, same availability, different content -> the later ones conflict
        dup_key = later_occurrences(group_codes([checked[f"n_{k}"] for k in spec.key] + [checked["_available_date"]]))
        dup_content_in_batch = later_occurrences(content)
        dup_seen = self._seen_hashes(spec.code).contains(content)
        is_dup = dup_content_in_batch | dup_seen
        key_conflict = dup_key & ~is_dup
        bad = (sql_failed | unknown | key_conflict) & ~is_dup
        good = ~bad & ~is_dup
        hexes = hex_hashes(content)
        # normalisations applied to accepted records (USCC folding, category labels/case)
        normalised = _normalisation_log(checked, good, spec, d)
        bad_at = pa.array(np.flatnonzero(bad), pa.int64())
        raw_cols = [*fields, *META_IN, *(SCD if spec.is_versioned else ())]
        qsel = checked.select([*raw_cols, "failures", "_line"]).take(bad_at)
        fails = []
        for i, f in zip(bad_at.to_pylist(), qsel["failures"].to_pylist(), strict=True):
            if unknown[i] and not any(x.startswith("uscc:") for x in f):
                f.append("uscc:unknown_enterprise")
            if key_conflict[i]:
                f.append(f"{spec.key[-1]}:key_conflict")
            fails.append(f)
        quarantined = pd.DataFrame({
            "batch_id": d.batch_id, "sub_item": spec.code, "source_file": d.relative,
            "line": qsel["_line"].to_numpy().astype(np.int64), "failures": fails, "detail": "",
            "record": [json.dumps(r, ensure_ascii=False) for r in qsel.select(raw_cols).to_pylist()]})
        dup_at = pa.array(np.flatnonzero(is_dup), pa.int64())
        drows = checked.select(["_line", "_row_hash"]).take(dup_at)
        dups = pd.DataFrame({"batch_id": d.batch_id,
                             "line": drows["_line"].to_numpy().astype(np.int64),
                             "_content_hash": hexes.take(dup_at).to_numpy(zero_copy_only=False),
                             "_row_hash": drows["_row_hash"].to_numpy(zero_copy_only=False),
                             "reason": np.where(dup_seen[is_dup], "already_landed", "exact_duplicate_in_batch")})
        versioned = SCD if spec.is_versioned else ()
        schema = landed_schema(spec)
        landed = pa.table([*(checked[f"t_{c}"] for c in (*fields, "_available_date")),
                           *(checked[c] for c in META_IN if c != "_available_date"),
                           *(checked[f"t_{c}"] for c in versioned), hexes,
                           pa.array([d.relative] * n, pa.string()), checked["_line"]], names=schema.names)
        if not good.all():
            landed = landed.take(pa.array(np.flatnonzero(good), pa.int64()))
        accepted = pa.Table.from_arrays([_nan_to_null(c).cast(f.type) for c, f in zip(landed.columns, schema, strict=True)],
                                        schema=schema)
        return Validated(accepted, content[good], quarantined, dups, normalised)

    def _write_quarantine(self, d: Delivery, qrows: pd.DataFrame) -> tuple[str, str]:
        path = self.wh / "_quarantine" / d.sub_item / f"{d.batch_id}.parquet"
        qrows = qrows.assign(department=d.department, library=d.library, month=d.month)
        return str(path.relative_to(self.ws)), write_atomically(
            path, parquet_bytes(pa.Table.from_pandas(qrows, preserve_index=False)))

    def _write_manifest(self, d: Delivery, sha: str, res: BatchResult, outputs: dict, fatal: str | None = None) -> None:
        body = {"batch_id": d.batch_id, "source_file": d.relative, "source_sha256": sha, "sub_item": d.sub_item,
                "department": d.department, "library": d.library, "month": d.month,
                "records_in": res.records_in, "accepted": res.accepted, "quarantined": res.quarantined,
                "duplicates": res.duplicates, "normalised": res.normalised, "rules": res.rules,
                "balanced": res.records_in == res.accepted + res.quarantined + res.duplicates,
                "fatal": fatal, "outputs": {k: {"path": v[0], "sha256": v[1]} for k, v in outputs.items()}}
        write_atomically(self.wh / "_manifest" / f"{d.batch_id}.json", json.dumps(body, indent=1, ensure_ascii=False).encode("utf-8"))


ARROW_TYPES = {"string": pa.string(), "category": pa.string(), "int": pa.int64(), "float": pa.float64(),
               "bool": pa.bool_(), "date": pa.date32()}


def landed_schema(spec: SubItem) -> pa.Schema:
    """The Parquet schema of landed records: catalog types, then the metadata columns (never inferred,
    so an all-null column keeps its type across files)."""
    fields = [pa.field(f.name, ARROW_TYPES[f.dtype]) for f in spec.fields]
    fields += [pa.field("_available_date", pa.date32())]
    fields += [pa.field(c, pa.string()) for c in META_IN if c != "_available_date"]
    if spec.is_versioned:
        fields += [pa.field("_valid_from", pa.date32()), pa.field("_valid_to", pa.date32())]
    fields += [pa.field("_content_hash", pa.string()), pa.field("_source_file", pa.string()),
               pa.field("_source_line", pa.int64())]
    return pa.schema(fields)


def lit_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _rule_counts(qrows: pd.DataFrame) -> dict[str, int]:
    counts: dict[str, int] = {}
    for fs in qrows.get("failures", []):
        for f in fs:
            counts[f] = counts.get(f, 0) + 1
    return dict(sorted(counts.items()))


def _normalisation_log(checked: pa.Table, good: np.ndarray, spec: SubItem, d: Delivery) -> pd.DataFrame:
    """Raw -> normalised value changes of accepted records, field by field in catalog order."""
    parts = []
    for f in spec.fields:
        if f.dtype not in ("category", "string"):
            continue
        raw, norm = checked[f.name].cast(pa.string()), checked[f"n_{f.name}"].cast(pa.string())
        changed = pc.fill_null(pc.not_equal(raw, norm), False).to_numpy(zero_copy_only=False) & good
        if changed.any():
            at = pa.array(np.flatnonzero(changed), pa.int64())
            parts.append(pd.DataFrame({"batch_id": d.batch_id,
                                       "line": checked["_line"].take(at).to_numpy().astype(np.int64),
                                       "field": f.name, "raw": raw.take(at).to_numpy(zero_copy_only=False),
                                       "normalised": norm.take(at).to_numpy(zero_copy_only=False)}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _value_hashes(col: pa.ChunkedArray) -> np.ndarray:
    """pandas' hash of each value of a string column (`hash_array` with categorize): each distinct value
    is hashed once, missing values hash to 2**64-1."""
    enc = pc.dictionary_encode(col.cast(pa.string())).combine_chunks()
    uniques = enc.dictionary.to_numpy(zero_copy_only=False)
    if len(uniques) == 0:
        return np.full(len(enc), U8MAX, dtype=np.uint64)
    hashed = pd.util.hash_array(uniques, categorize=False)
    out = hashed.take(pc.fill_null(enc.indices, 0).to_numpy())
    out[pc.is_null(enc.indices).to_numpy(zero_copy_only=False)] = U8MAX
    return out


def frame_hash(columns: list[pa.ChunkedArray]) -> np.ndarray:
    """The row hash `pd.util.hash_pandas_object(frame.astype("string"), index=False)` gives, computed from
    Arrow columns without building the frame (landed `_content_hash` values must not change)."""
    mult = np.uint64(1000003)
    out = np.full(len(columns[0]), np.uint64(0x345678), dtype=np.uint64)
    for i, col in enumerate(columns):
        inverse = len(columns) - i
        out ^= _value_hashes(col)
        out *= mult
        mult += np.uint64(82520 + inverse + inverse)
    out += np.uint64(97531)
    return out


def hex_hashes(values: np.ndarray) -> pa.Array:
    """uint64 -> 16 lower-case hex digits as an Arrow string array (the deliveries' `_row_hash` form)."""
    return pa.array(hex16(values), pa.binary(16)).cast(pa.binary()).cast(pa.string())


def group_codes(columns: list[pa.ChunkedArray]) -> np.ndarray:
    """One integer per distinct tuple of string values (a missing value counts as the text '∅', as the
    key check always has), numbered densely."""
    group = np.zeros(len(columns[0]), dtype=np.int64)
    for col in columns:
        enc = pc.dictionary_encode(pc.fill_null(col.cast(pa.string()), "∅")).combine_chunks()
        codes = enc.indices.to_numpy().astype(np.int64)
        group = np.unique(group * max(len(enc.dictionary), 1) + codes, return_inverse=True)[1].reshape(-1)
    return group


def later_occurrences(values: np.ndarray) -> np.ndarray:
    """True for every value already seen earlier in the array (`duplicated(keep="first")`)."""
    later = np.ones(len(values), dtype=bool)
    later[np.unique(values, return_index=True)[1]] = False
    return later


def _nan_to_null(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """NaN in a float column lands as null, as it did when the batch went through pandas."""
    if pa.types.is_floating(col.type):
        return pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
    return col


@dataclass
class IngestSummary:
    batches: int = 0
    skipped: int = 0
    records_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    normalised: int = 0
    fatal: list[str] = field(default_factory=list)
    rules: dict[str, int] = field(default_factory=dict)


def ingest_all(ws: Path, progress: Callable[[int, int], None] | None = None,
               deliveries: Iterable[Delivery] | None = None) -> IngestSummary:
    """Ingest every delivery under ws/raw (idempotent); returns totals across batches."""
    catalog = load_catalog()
    todo = list(deliveries) if deliveries is not None else list_deliveries(ws / "raw", catalog)
    ing = Ingestor(ws, catalog)
    total = IngestSummary()
    for i, r in enumerate(ing.ingest_many(todo)):
        total.batches += 1
        total.skipped += r.skipped
        total.records_in += r.records_in
        total.accepted += r.accepted
        total.quarantined += r.quarantined
        total.duplicates += r.duplicates
        total.normalised += r.normalised
        if r.fatal:
            total.fatal.append(r.fatal)
        for k, v in r.rules.items():
            total.rules[k] = total.rules.get(k, 0) + v
        if progress:
            progress(i + 1, len(todo))
    if total.batches:
        from data.warehouse.views import refresh_views

        refresh_views(ws, catalog)
    return total
