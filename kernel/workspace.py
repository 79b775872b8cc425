"""The one ignored folder where every generated file goes (raw deliveries, truth, warehouse, stores, reports)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


def workspace_dir() -> Path:
    """ZHOUXIN_WORKSPACE if set, else ./workspace (relative to the current directory)."""
    return Path(os.environ.get("ZHOUXIN_WORKSPACE", "workspace")).resolve()


def raw_dir(ws: Path | None = None) -> Path:
    return (ws or workspace_dir()) / "raw"


def truth_dir(ws: Path | None = None) -> Path:
    return (ws or workspace_dir()) / "truth"


def platform_dir(ws: Path | None = None) -> Path:
    return (ws or workspace_dir()) / "platform"


def reports_dir(ws: Path | None = None) -> Path:
    return (ws or workspace_dir()) / "reports"


def warehouse_db(ws: Path | None = None) -> Path:
    """The DuckDB file holding the warehouse views and as-of macros."""
    return (ws or workspace_dir()) / "warehouse" / "warehouse.duckdb"


def marts_dir(ws: Path | None = None) -> Path:
    return (ws or workspace_dir()) / "marts"


def features_dir(ws: Path | None = None) -> Path:
    """Feast's generated state: offline sources, registry, online store."""
    return (ws or workspace_dir()) / "features"


def write_atomically(path: Path, data: bytes | memoryview) -> str:
    """Write `data` under `<name>.tmp` and rename it into place, so a killed run never leaves half a file
    (readers and reruns treat `*.tmp` as debris); returns the content's sha256, hashed from memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def parquet_bytes(table: pa.Table) -> memoryview:
    """A table as zstd Parquet built in memory (to hash it there and `write_atomically` it in one go)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return memoryview(sink.getvalue())
