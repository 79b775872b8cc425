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
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data.warehouse.readers import read_delivery
from data.warehouse.rules import q, uscc_macros, validation_sql
from kernel.catalog import Catalog, SubItem, load_catalog
from kernel.errors import ZhouxinError

DELIVERY = re.compile(r"^(?P<dept>[A-Z]\d\d)/(?P<lib>L\d\d)/(?P<month>\d{4}-\d{2})\.(?P<ext>csv|jsonl|parquet)$")
META_IN = ("_source_library", "_batch_id", "_ingest_ts", "_available_date", "_row_hash")
SCD = ("_valid_from", "_valid_to")


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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_parquet(table: pa.Table, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return _sha256(path)


def _atomic_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


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
        self.registered: set[str] = set()
        self.seen: dict[str, set[str]] = {}
        self._remove_torn_files()
        self._load_state()

    def _remove_torn_files(self) -> None:
        """Temporary files of a killed run are not data: remove them before anything is read."""
        if self.wh.is_dir():
            for tmp in self.wh.rglob("*.tmp"):
                tmp.unlink()

    # -- state from what has already landed ----------------------------------------------------------
    def _load_state(self) -> None:
        reg = self.wh / "ent_registration"
        if reg.is_dir() and any(reg.rglob("*.parquet")):
            self.registered = set(self.con.sql(f"select distinct uscc from read_parquet('{reg}/**/*.parquet')")
                                  .df()["uscc"])

    def _seen_hashes(self, sub_item: str) -> set[str]:
        if sub_item not in self.seen:
            folder = self.wh / sub_item
            if folder.is_dir() and any(folder.rglob("*.parquet")):
                self.seen[sub_item] = set(self.con.sql(
                    f"select _content_hash from read_parquet('{folder}/**/*.parquet')").df()["_content_hash"])
            else:
                self.seen[sub_item] = set()
        return self.seen[sub_item]

    # -- one batch -----------------------------------------------------------------------------------
    def ingest(self, d: Delivery) -> BatchResult:
        manifest_path = self.wh / "_manifest" / f"{d.batch_id}.json"
        sha = _sha256(d.path)
        if manifest_path.is_file():
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
            if old["source_sha256"] == sha:
                return BatchResult(d.batch_id, d.sub_item, old["records_in"], old["accepted"], old["quarantined"],
                                   old["duplicates"], old["normalised"], skipped=True)
            raise RedeliveryError(f"{d.relative}: batch {d.batch_id} was already ingested from content "
                                  f"{old['source_sha256'][:12]}…, this delivery has {sha[:12]}…; refusing to overwrite")
        spec = self.catalog.sub_item(d.sub_item)
        checked, unreadable, fatal = self._check(d, spec)
        if fatal:
            res = BatchResult(d.batch_id, d.sub_item, 0, 0, 0, 0, 0, fatal=fatal)
            qrows = pd.DataFrame([{"batch_id": d.batch_id, "sub_item": d.sub_item, "source_file": d.relative,
                                   "line": 0, "failures": ["*:unreadable_file"], "detail": fatal, "record": ""}])
            self._write_quarantine(d, qrows)
            self._write_manifest(d, sha, res, outputs={}, fatal=fatal)
            return res
        accepted, quarantined, dups, normalised = self._validate(d, spec, checked)
        qrows = pd.concat([quarantined, pd.DataFrame([{
            "batch_id": d.batch_id, "sub_item": d.sub_item, "source_file": d.relative, "line": u.line,
            "failures": [f"*:{u.rule}"], "detail": u.detail, "record": u.raw} for u in unreadable])], ignore_index=True) \
            if unreadable else quarantined
        records_in = len(checked) + len(unreadable)
        res = BatchResult(d.batch_id, d.sub_item, records_in, len(accepted), len(qrows), len(dups), len(normalised))
        res.rules = _rule_counts(qrows)
        if res.accepted + res.quarantined + res.duplicates != res.records_in:
            raise ConservationError(f"{d.relative}: {res.records_in} records in, but {res.accepted} accepted + "
                                    f"{res.quarantined} quarantined + {res.duplicates} duplicates")
        outputs = {}
        if len(accepted):
            path = self.wh / d.sub_item / f"month={d.month}" / f"{d.batch_id}.parquet"
            outputs["accepted"] = (str(path.relative_to(self.ws)), _atomic_parquet(
                pa.Table.from_pandas(accepted, schema=landed_schema(spec), preserve_index=False), path))
        if len(qrows):
            outputs["quarantine"] = self._write_quarantine(d, qrows)
        if len(dups):
            path = self.wh / "_duplicates" / d.sub_item / f"{d.batch_id}.parquet"
            outputs["duplicates"] = (str(path.relative_to(self.ws)), _atomic_parquet(
                pa.Table.from_pandas(dups, preserve_index=False), path))
        if len(normalised):
            path = self.wh / "_normalised" / d.sub_item / f"{d.batch_id}.parquet"
            outputs["normalised"] = (str(path.relative_to(self.ws)), _atomic_parquet(
                pa.Table.from_pandas(normalised, preserve_index=False), path))
        self._write_manifest(d, sha, res, outputs)
        if d.sub_item == "ent_registration":
            self.registered.update(accepted["uscc"].tolist())
        self._seen_hashes(d.sub_item).update(accepted["_content_hash"].tolist())
        return res

    def _check(self, d: Delivery, spec: SubItem) -> tuple[pd.DataFrame, list, str | None]:
        """Read and validate in one DuckDB query (fast path); damaged files go through the line reader."""
        cols = [*spec.field_names, *META_IN, *(SCD if spec.is_versioned else ())]
        path = str(d.path).replace("'", "''")
        if d.fmt == "csv":
            rel = f"read_csv('{path}', all_varchar=true, header=true, strict_mode=true, null_padding=false)"
            start = 2
        elif d.fmt == "jsonl":
            types = ", ".join(f"'{c}': 'VARCHAR'" for c in cols)
            rel = f"read_json('{path}', format='newline_delimited', columns={{{types}}})"
            start = 1
        else:
            rel = f"read_parquet('{path}')"
            start = 1
        sel = ", ".join(f"cast({q(c)} as varchar) as {q(c)}" for c in cols)
        raw = f"(select {sel}, (row_number() over ()) + {start - 1} as _line from {rel})"
        try:
            return self.con.sql(validation_sql(spec, raw, typed=True)).df(), [], None
        except duckdb.Error:
            pass
        result = read_delivery(d.path, d.fmt)
        if result.fatal:
            return pd.DataFrame(), [], result.fatal
        frame = result.frame
        for c in cols:
            if c not in frame.columns:
                frame[c] = None
        if frame.empty:
            return pd.DataFrame(), result.unreadable, None
        self.con.register("batch_raw", frame[[*cols, "_line"]])
        checked = self.con.sql(validation_sql(spec, "batch_raw", typed=True)).df()
        self.con.unregister("batch_raw")
        return checked, result.unreadable, None

    def _validate(self, d: Delivery, spec: SubItem, checked: pd.DataFrame
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        if checked.empty:
            empty = pd.DataFrame()
            return empty, empty, empty, empty
        fields = list(spec.field_names)
        norm = checked[[f"n_{f}" for f in fields]]
        # content hash over normalised fields + availability: what makes two records the same fact
        content = pd.util.hash_pandas_object(
            pd.concat([norm.astype("string"), checked["_available_date"].astype("string")], axis=1), index=False)
        checked["_content_hash"] = [f"{v:016x}" for v in content.to_numpy(dtype=np.uint64).tolist()]
        fails = [list(f) for f in checked["failures"].tolist()]   # plain lists: cheap to extend per row
        # referential integrity: the enterprise must already be registered on the platform
        if spec.code != "ent_registration":
            unknown = (~checked["n_uscc"].isin(self.registered) & checked["n_uscc"].notna()).to_numpy()
            for i in np.flatnonzero(unknown):
                if not any(x.startswith("uscc:") for x in fails[i]):
                    fails[i].append("uscc:unknown_enterprise")
        # near-duplicates: same key, same availability, different content -> the later ones conflict
        key_cols = [f"n_{k}" for k in spec.key]
        keyed = checked[[*key_cols, "_available_date"]].astype("string").fillna("∅")
        dup_key = keyed.duplicated(keep="first").to_numpy()
        dup_content_in_batch = checked["_content_hash"].duplicated(keep="first").to_numpy()
        seen = self._seen_hashes(spec.code)
        dup_seen = checked["_content_hash"].isin(seen).to_numpy()
        is_dup = dup_content_in_batch | dup_seen
        for i in np.flatnonzero(dup_key & ~is_dup):
            fails[i].append(f"{spec.key[-1]}:key_conflict")
        bad = np.fromiter((bool(f) for f in fails), dtype=bool, count=len(fails)) & ~is_dup
        good = ~bad & ~is_dup
        # normalisations applied to accepted records (USCC folding, category labels/case)
        normalised = _normalisation_log(checked[good], spec, d)
        raw_cols = [*fields, *META_IN, *(SCD if spec.is_versioned else ())]
        qrows = checked[bad]
        quarantined = pd.DataFrame({
            "batch_id": d.batch_id, "sub_item": spec.code, "source_file": d.relative,
            "line": qrows["_line"].astype(np.int64).to_numpy(), "failures": [fails[i] for i in np.flatnonzero(bad)],
            "detail": "", "record": [json.dumps({c: r[c] for c in raw_cols}, ensure_ascii=False)
                                     for r in qrows[raw_cols].to_dict("records")]})
        drows = checked[is_dup]
        dups = pd.DataFrame({"batch_id": d.batch_id, "line": drows["_line"].astype(np.int64).to_numpy(),
                             "_content_hash": drows["_content_hash"].to_numpy(),
                             "_row_hash": drows["_row_hash"].to_numpy(),
                             "reason": np.where(dup_seen[is_dup], "already_landed", "exact_duplicate_in_batch")})
        acc = checked[good]
        typed = [f"t_{c}" for c in (*fields, "_available_date", *(SCD if spec.is_versioned else ()))]
        accepted = acc[typed].rename(columns=lambda c: c[2:])
        for c in META_IN:
            if c != "_available_date":
                accepted[c] = acc[c].to_numpy()
        accepted = accepted[[*fields, "_available_date", *(c for c in META_IN if c != "_available_date"),
                             *(SCD if spec.is_versioned else ())]]
        accepted = accepted.assign(_content_hash=acc["_content_hash"].to_numpy(), _source_file=d.relative,
                                   _source_line=acc["_line"].astype(np.int64).to_numpy())
        return accepted.reset_index(drop=True), quarantined, dups, normalised

    def _write_quarantine(self, d: Delivery, qrows: pd.DataFrame) -> tuple[str, str]:
        path = self.wh / "_quarantine" / d.sub_item / f"{d.batch_id}.parquet"
        qrows = qrows.assign(department=d.department, library=d.library, month=d.month)
        return str(path.relative_to(self.ws)), _atomic_parquet(pa.Table.from_pandas(qrows, preserve_index=False), path)

    def _write_manifest(self, d: Delivery, sha: str, res: BatchResult, outputs: dict, fatal: str | None = None) -> None:
        body = {"batch_id": d.batch_id, "source_file": d.relative, "source_sha256": sha, "sub_item": d.sub_item,
                "department": d.department, "library": d.library, "month": d.month,
                "records_in": res.records_in, "accepted": res.accepted, "quarantined": res.quarantined,
                "duplicates": res.duplicates, "normalised": res.normalised, "rules": res.rules,
                "balanced": res.records_in == res.accepted + res.quarantined + res.duplicates,
                "fatal": fatal, "outputs": {k: {"path": v[0], "sha256": v[1]} for k, v in outputs.items()}}
        _atomic_text(json.dumps(body, indent=1, ensure_ascii=False), self.wh / "_manifest" / f"{d.batch_id}.json")


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


def _normalisation_log(rows: pd.DataFrame, spec: SubItem, d: Delivery) -> pd.DataFrame:
    parts = []
    for f in spec.fields:
        if f.dtype not in ("category", "string"):
            continue
        raw, norm = rows[f.name], rows[f"n_{f.name}"]
        changed = raw.notna() & (raw.astype("string") != norm.astype("string"))
        if changed.any():
            parts.append(pd.DataFrame({"batch_id": d.batch_id, "line": rows.loc[changed, "_line"].astype(np.int64),
                                       "field": f.name, "raw": raw[changed].astype(str),
                                       "normalised": norm[changed].astype(str)}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


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
    for i, d in enumerate(todo):
        r = ing.ingest(d)
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
