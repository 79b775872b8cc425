"""Read feature vectors straight from Feast's online-store layout: the serving fast path.

The inverse of bulk.py. Feast's `get_online_features` spends most of a one-firm read in Python
bookkeeping (one `online_read` per view, a response proto, type re-mapping); this reads the same
tables/hashes in one query (SQLite) or one pipelined round trip (Redis) and decodes the same `Value`
protos with Feast's own converter, so both give equal vectors (tests/data/feature_store/test_online_read.py).
"""

from __future__ import annotations

import sqlite3
import struct
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from data.feature_store.bulk import DOUBLE_TAG, FLOAT_TAG, NULL_TIMESTAMP, entity_keys, redis_client


def _group(refs: Sequence[str]) -> dict[str, list[str]]:
    views: dict[str, list[str]] = {}
    for r in refs:
        view, feat = r.split(":", 1)
        views.setdefault(view, []).append(feat)
    return views


_KEYS = object()          # where a plan's parameters take the entity keys


def _bind(params: list[Any], keys: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for p in params:
        if p is _KEYS:
            out += keys
        else:
            out.append(p)
    return out


_SCALARS = frozenset({"double_val", "float_val", "int64_val", "int32_val", "string_val", "bool_val"})


_DOUBLE, _FLOAT = struct.Struct("<d"), struct.Struct("<f")


def _python(value_bytes: bytes) -> Any:
    """Decode one stored `Value` as Feast's response would: scalars as is, timestamps as aware UTC
    datetimes, anything else through Feast's own converter.

    A lone double or float (tag byte then the fixed-width number: most mart features) is unpacked directly,
    five times faster than parsing the message; anything else goes through protobuf."""
    if len(value_bytes) == 9 and value_bytes[0] == DOUBLE_TAG:
        return _DOUBLE.unpack_from(value_bytes, 1)[0]
    if len(value_bytes) == 5 and value_bytes[0] == FLOAT_TAG:
        return _FLOAT.unpack_from(value_bytes, 1)[0]
    from feast.protos.feast.types.Value_pb2 import Value

    v = Value.FromString(value_bytes)
    kind = v.WhichOneof("val")
    if kind in _SCALARS:
        return getattr(v, kind)
    if kind == "unix_timestamp_val":
        if v.unix_timestamp_val == NULL_TIMESTAMP:      # how Feast stores a null time
            return None
        return datetime.fromtimestamp(v.unix_timestamp_val, tz=UTC)
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(v)


class DirectOnlineReader:
    """Vectors keyed `view__field` for a list of firms, from the SQLite or Redis online store of a store."""

    def __init__(self, store) -> None:
        cfg = store.config
        self.project = cfg.project
        self.kind = cfg.online_store.type
        self._local = threading.local()
        self._plans: dict[tuple, tuple[str, list[Any]]] = {}
        self._views: dict[tuple[str, ...], dict[str, list[str]]] = {}
        self._columns: dict[tuple[str, ...], list[str]] = {}
        self._store = store
        self._widths: dict[str, int] = {}
        if self.kind == "sqlite":
            self.path = str(cfg.online_store.path)
        elif self.kind == "redis":
            self.redis = redis_client(cfg.online_store.connection_string)
        else:
            raise ValueError(f"no direct reader for online store {self.kind!r}")

    def _sqlite(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.con = con
        return con

    def read(self, usccs: Sequence[str], refs: Sequence[str]) -> list[dict[str, Any]]:
        keys = entity_keys(usccs)
        refs = tuple(refs)
        views = self._views.get(refs)
        if views is None:
            views = self._views[refs] = _group(refs)
        out: list[dict[str, Any]] = [dict.fromkeys(self._names(refs)) for _ in usccs]
        if self.kind == "sqlite":
            self._read_sqlite(keys, refs, views, out)
        else:
            self._read_redis(keys, views, out)
        return out

    def _names(self, refs: tuple[str, ...]) -> list[str]:
        names = self._columns.get(refs)
        if names is None:
            names = self._columns[refs] = [r.replace(":", "__", 1) for r in refs]
        return names

    def _read_sqlite(self, keys: list[bytes], refs: tuple[str, ...], views: dict[str, list[str]],
                     out: list[dict[str, Any]]) -> None:
        position = {k: i for i, k in enumerate(keys)}
        sql, params = self._sqlite_plan(len(keys), refs, views)
        for view, key, feat, value in self._sqlite().execute(sql, _bind(params, keys)):
            if value:
                row, name = out[position[key]], f"{view}__{feat}"
                if name in row:                     # a view read whole also returns features not asked for
                    row[name] = _python(value)

    def _width(self, view: str) -> int:
        """How many features `view` has (0 if the registry does not know it yet)."""
        if view not in self._widths:
            self._widths = {fv.name: len(fv.features) for fv in self._store.list_feature_views()}
        return self._widths.get(view, 0)

    def _sqlite_plan(self, n_keys: int, refs: tuple[str, ...], views: dict[str, list[str]]) -> tuple[str, list[Any]]:
        """One UNION ALL over the views (cached per request shape: SQLite then reuses the prepared statement).

        A view asked for at least half its features is read whole, one range of the primary key per firm,
        and the rest dropped in Python: seeking 1,478 names one by one took three times as long as the range
        (for 125 of them the seeks win 4 to 1)."""
        shape = (n_keys, refs)
        plan = self._plans.get(shape)
        if plan is None:
            marks = ",".join("?" * n_keys)
            parts, params = [], []
            for view, feats in views.items():
                sql = (f'select ? as v, entity_key, feature_name, value from "{self.project}_{view}" '
                       f"where entity_key in ({marks})")
                if 2 * len(feats) >= self._width(view) > 0:
                    parts.append(sql)
                    params += [view, _KEYS]
                else:
                    parts.append(f'{sql} and feature_name in ({",".join("?" * len(feats))})')
                    params += [view, _KEYS, *feats]
            plan = self._plans[shape] = (" union all ".join(parts), params)
        return plan

    def _read_redis(self, keys: list[bytes], views: dict[str, list[str]], out: list[dict[str, Any]]) -> None:
        from feast.infra.online_stores.helpers import _mmh3

        project = self.project.encode("utf-8")
        plan = []
        with self.redis.pipeline(transaction=False) as pipe:
            for i, k in enumerate(keys):
                for view, feats in views.items():
                    pipe.hmget(k + project, [_mmh3(f"{view}:{f}") for f in feats])
                    plan.append((i, view, feats))
            replies = pipe.execute()
        for (i, view, feats), values in zip(plan, replies, strict=True):
            for f, value in zip(feats, values, strict=True):
                if value:
                    out[i][f"{view}__{f}"] = _python(value)
