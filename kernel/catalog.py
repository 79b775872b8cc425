"""The catalog (configs/catalog.yaml) as typed models, loaded once by every stage.

35 sub-items and 290 fields: the simulator, ingestion validation, Feast views, the data
dictionary and reason-code texts are all derived from it; nothing restates it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from kernel.config import FrozenModel, configs_dir, load_yaml_model
from kernel.errors import CatalogError

Dtype = Literal["string", "int", "float", "bool", "date", "category"]
Grain = Literal["snapshot", "annual_snapshot", "monthly_snapshot", "monthly_series", "event_list", "list"]
RiskDirection = Literal["+", "-", "id", "none"]
DeliveryFormat = Literal["csv", "jsonl", "parquet"]

METADATA_COLUMNS = ("_source_library", "_batch_id", "_ingest_ts", "_available_date", "_row_hash")
SCD_COLUMNS = ("_valid_from", "_valid_to")
EXPECTED_SUB_ITEMS = 35
EXPECTED_FIELDS = 290


class Department(FrozenModel):
    id: str
    name_zh: str
    name_en: str
    delivery_format: DeliveryFormat


class LibrarySelector(FrozenModel):
    """Which rows of a two-library sub-item a library delivers (first match wins)."""

    field: str
    not_null: bool = False
    equals: tuple[str, ...] = ()
    greater_than: float | None = None


class Library(FrozenModel):
    id: str
    department: str
    name_zh: str
    sub_item: str
    selector: LibrarySelector | None = None


class FieldSpec(FrozenModel):
    name: str
    dtype: Dtype
    length: int | None = None
    allowed: tuple[str, ...] | None = None
    unit: str
    min: float | None = None
    max: float | None = None
    risk_direction: RiskDirection
    risk_note: str | None = None
    meaning_en: str
    meaning_zh: str
    distribution: str

    @model_validator(mode="after")
    def _category_has_values(self) -> FieldSpec:
        if self.dtype == "category" and not self.allowed:
            raise ValueError(f"category field {self.name!r} lists no allowed values")
        return self


class SubItem(FrozenModel):
    id: str
    code: str
    name_zh: str
    name_en: str
    department: str
    libraries: tuple[str, ...]
    grain: Grain
    grain_note: str
    frequency: str
    lag_days: tuple[int, int]
    lag_note: str
    availability_anchor: str | None
    key: tuple[str, ...]
    coverage: str
    fields: tuple[FieldSpec, ...]

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise CatalogError(f"sub-item {self.code!r} has no field {name!r}")

    @property
    def is_versioned(self) -> bool:
        """Snapshots and stateful lists are stored as SCD-2 (catalog §1)."""
        return self.grain in ("snapshot", "annual_snapshot", "monthly_snapshot", "list")


class Catalog(FrozenModel):
    version: int
    departments: tuple[Department, ...]
    libraries: tuple[Library, ...]
    sub_items: tuple[SubItem, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        codes = [s.code for s in self.sub_items]
        if len(set(codes)) != len(codes):
            raise ValueError("duplicate sub-item codes")
        dept_ids = {d.id for d in self.departments}
        lib_ids = {lib.id for lib in self.libraries}
        for s in self.sub_items:
            names = s.field_names
            if len(set(names)) != len(names):
                raise ValueError(f"{s.code}: duplicate field names")
            if s.department not in dept_ids:
                raise ValueError(f"{s.code}: unknown department {s.department}")
            if not set(s.libraries) <= lib_ids:
                raise ValueError(f"{s.code}: unknown library in {s.libraries}")
            missing = [k for k in s.key if k not in names]
            if missing:
                raise ValueError(f"{s.code}: key fields {missing} are not fields")
        for lib in self.libraries:
            if lib.sub_item not in codes:
                raise ValueError(f"library {lib.id}: unknown sub-item {lib.sub_item}")
        return self

    def sub_item(self, code: str) -> SubItem:
        for s in self.sub_items:
            if s.code == code or s.id == code:
                return s
        raise CatalogError(f"no sub-item {code!r} in the catalog")

    def department(self, dept_id: str) -> Department:
        for d in self.departments:
            if d.id == dept_id:
                return d
        raise CatalogError(f"no department {dept_id!r} in the catalog")

    def library(self, lib_id: str) -> Library:
        for lib in self.libraries:
            if lib.id == lib_id:
                return lib
        raise CatalogError(f"no library {lib_id!r} in the catalog")

    def libraries_of(self, code: str) -> tuple[Library, ...]:
        return tuple(lib for lib in self.libraries if lib.sub_item == code)

    @property
    def field_count(self) -> int:
        return sum(len(s.fields) for s in self.sub_items)


def load_catalog(path: Path | None = None) -> Catalog:
    """Load and validate the catalog; the default path is cached for the process."""
    if path is None:
        return _default_catalog()
    return load_yaml_model(Catalog, path)


@cache
def _default_catalog() -> Catalog:
    return load_yaml_model(Catalog, configs_dir() / "catalog.yaml")
