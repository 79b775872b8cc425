"""Open the Feast store of a profile, register definitions, and read features (offline and online).

The repo config is built in Python from configs/profiles/<name>.yaml, so the same code serves the
`local` profile (file registry, SQLite online store under the workspace) and `production` (SQL
registry on PostgreSQL, Redis online store).
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from data.feature_store.definitions import Definitions
from data.feature_store.sources import JOIN_KEY
from data.feature_store.sqlite_layout import cluster_online_tables
from kernel.profile import Profile, expand_env, load_profile
from kernel.workspace import features_dir


def repo_config(profile: Profile, ws: Path):
    """Feast RepoConfig for a profile; local paths resolve under the workspace's features/ folder."""
    from feast.infra.registry.sql import SqlRegistryConfig
    from feast.repo_config import RegistryConfig, RepoConfig

    fp = profile.feast
    root = features_dir(ws)
    root.mkdir(parents=True, exist_ok=True)
    if fp.registry.type == "file":
        registry = RegistryConfig(registry_type="file", path=str(ws / fp.registry.path), cache_ttl_seconds=60)
    else:
        registry = SqlRegistryConfig(registry_type="sql", path=expand_env(fp.registry.url), cache_ttl_seconds=60)
    if fp.online_store.type == "sqlite":
        online = {"type": "sqlite", "path": str(ws / fp.online_store.path)}
    else:
        online = {"type": "redis", "connection_string": expand_env(fp.online_store.connection_string)}
    return RepoConfig(project=fp.project, provider="local", registry=registry, online_store=online,
                      offline_store={"type": "duckdb"}, repo_path=root, entity_key_serialization_version=3)


def create_sqlite_online(path: Path, page_size: int) -> None:
    """Create the SQLite online database with the profile's page size before Feast first opens it: Feast
    would create it with SQLite's default, and a file's page size only changes by rewriting it whole."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute(f"pragma page_size = {int(page_size)}")
        con.execute("vacuum")                           # writes the header: the size is now the file's
    finally:
        con.close()


def open_store(ws: Path, profile: Profile | None = None):
    """A FeatureStore for the workspace under the given (default: current) profile."""
    from feast import FeatureStore

    profile = profile or load_profile()
    if profile.feast.online_store.type == "sqlite":
        create_sqlite_online(ws / profile.feast.online_store.path, profile.feast.online_store.page_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return FeatureStore(config=repo_config(profile, ws))


def apply_definitions(store, defs: Definitions) -> None:
    """Register every object, removing views/services no longer declared (so the registry mirrors code);
    on SQLite, the new online tables are then declared clustered by their key (sqlite_layout.py)."""
    declared = {v.name for v in defs.views.values()}
    stale_views = [v for v in store.list_feature_views() if v.name not in declared]
    stale_services = [s for s in store.list_feature_services() if s.name not in defs.services]
    store.apply(defs.objects(), objects_to_delete=stale_views + stale_services, partial=False)
    online = store.config.online_store
    if online.type == "sqlite" and not getattr(online, "vector_enabled", False):
        cluster_online_tables(Path(online.path), store.config.project)


def historical_features(store, entity_df: pd.DataFrame, features: Sequence[str] | str) -> pd.DataFrame:
    """Point-in-time training rows via Feast: `features` is a FeatureService name or feature refs.

    Always filters on created_timestamp, so a row (or a correction) enters only once it was available.
    """
    refs = store.get_feature_service(features) if isinstance(features, str) else list(features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        job = store.get_historical_features(entity_df=entity_df, features=refs, full_feature_names=True,
                                            filter_by_created_timestamp=True)
        return job.to_df()


def online_features(store, usccs: Sequence[str], features: Sequence[str] | str) -> pd.DataFrame:
    """Online feature vectors for a list of firms (unknown firms come back as all-null rows)."""
    refs = store.get_feature_service(features) if isinstance(features, str) else list(features)
    resp = store.get_online_features(features=refs, entity_rows=[{JOIN_KEY: u} for u in usccs],
                                     full_feature_names=True)
    return resp.to_df()


def feast_materialize(store, start: datetime, end: datetime, views: Sequence[str] | None = None) -> None:
    """Feast's own materialization (the baseline the bulk path is measured against)."""
    store.materialize(start_date=start, end_date=end, feature_views=list(views) if views else None)
