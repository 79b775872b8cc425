"""The one ignored folder where every generated file goes (raw deliveries, truth, warehouse, stores, reports)."""

from __future__ import annotations

import os
from pathlib import Path


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
