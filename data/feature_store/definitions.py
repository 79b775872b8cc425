"""Feast objects generated from the catalog and the mart declarations — nothing restated by hand.

One entity (`enterprise`, join key `uscc`), one FeatureView per sub-item (its catalog fields, typed)
and per mart (its MartFeature columns), and the FeatureServices of configs/feature_services.yaml.
`build_definitions` returns plain lists; callers register them with `store.apply(objects)` — objects
held in lists are invisible to `feast apply` (STACK-NOTES §0.2), so features/definitions.py binds each
one to a module-level name for the Feast CLI as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float32, Float64, Int64, String, UnixTimestamp
from pydantic import Field as PydField

from data.feature_store.sources import CREATED_TS, EVENT_TS, JOIN_KEY, feature_fields, source_path
from data.marts.spec import MartFeature, mart_view_name
from kernel.catalog import Catalog, load_catalog
from kernel.config import FrozenModel, configs_dir, load_yaml_model
from kernel.errors import ConfigError

_CATALOG_TYPES = {"string": String, "category": String, "int": Int64, "float": Float64, "bool": Bool,
                  "date": UnixTimestamp}
_MART_TYPES = {"string": String, "int": Int64, "float": Float32, "bool": Bool}


class ServiceSpec(FrozenModel):
    description: str
    sources: list[str] | str
    marts: list[str] = PydField(default_factory=list)


class FeatureServicesConfig(FrozenModel):
    ttl_days: dict[str, int]
    mart_ttl_days: int
    services: dict[str, ServiceSpec]


def load_services_config() -> FeatureServicesConfig:
    return load_yaml_model(FeatureServicesConfig, configs_dir() / "feature_services.yaml")


@dataclass(frozen=True)
class MartView:
    """A mart published as a feature view: its name and the columns it declares."""

    name: str
    features: tuple[MartFeature, ...]


@dataclass(frozen=True)
class Definitions:
    entity: Entity
    views: dict[str, FeatureView]
    services: dict[str, FeatureService]

    def objects(self) -> list:
        return [self.entity, *self.views.values(), *self.services.values()]


def enterprise_entity() -> Entity:
    return Entity(name="enterprise", join_keys=[JOIN_KEY], value_type=ValueType.STRING,
                  description="An enterprise, keyed by its 18-character USCC (GB 32100-2015)")


def _ttl(days: int) -> timedelta:
    return timedelta(days=days)


def build_definitions(sources_dir: Path, marts: Sequence[MartView] = (), catalog: Catalog | None = None,
                      config: FeatureServicesConfig | None = None) -> Definitions:
    """Every Feast object of the platform; sources_dir holds the Parquet written by sources.py."""
    catalog = catalog or load_catalog()
    config = config or load_services_config()
    entity = enterprise_entity()
    views: dict[str, FeatureView] = {}
    for spec in catalog.sub_items:
        if spec.grain not in config.ttl_days:
            raise ConfigError(f"feature_services.yaml: ttl_days lacks grain {spec.grain!r}")
        src = FileSource(name=f"src_{spec.code}", path=str(source_path(sources_dir, spec.code)),
                         timestamp_field=EVENT_TS, created_timestamp_column=CREATED_TS)
        views[spec.code] = FeatureView(
            name=spec.code, entities=[entity], ttl=_ttl(config.ttl_days[spec.grain]), source=src,
            schema=[Field(name=f, dtype=_CATALOG_TYPES[spec.field(f).dtype],
                          description=spec.field(f).meaning_en) for f in feature_fields(spec)],
            online=True, description=f"{spec.name_en} / {spec.name_zh} ({spec.department}, {spec.grain})",
            tags={"kind": "source", "sub_item": spec.id, "department": spec.department, "grain": spec.grain})
    for mart in marts:
        name = mart_view_name(mart.name)
        src = FileSource(name=f"src_{name}", path=str(source_path(sources_dir, name)),
                         timestamp_field=EVENT_TS, created_timestamp_column=CREATED_TS)
        views[name] = FeatureView(
            name=name, entities=[entity], ttl=_ttl(config.mart_ttl_days), source=src,
            schema=[Field(name=f.name, dtype=_MART_TYPES[f.dtype], description=f.meaning_en)
                    for f in mart.features],
            online=True, description=f"mart {mart.name}: monthly as-of per enterprise",
            tags={"kind": "mart", "mart": mart.name})
    services = {name: _service(name, svc, views, catalog, {m.name for m in marts})
                for name, svc in config.services.items()}
    return Definitions(entity=entity, views=views, services=services)


def _service(name: str, svc: ServiceSpec, views: Mapping[str, FeatureView], catalog: Catalog,
             marts: set[str]) -> FeatureService:
    codes = [s.code for s in catalog.sub_items] if svc.sources == "all" else list(svc.sources)
    unknown = [c for c in codes if c not in views]
    if unknown:
        raise ConfigError(f"feature service {name!r} names unknown sub-items {unknown}")
    chosen = [views[c] for c in codes] + [views[mart_view_name(m)] for m in svc.marts if m in marts]
    return FeatureService(name=name, features=chosen, description=svc.description)
