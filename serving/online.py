"""Feature vectors from the Feast online store, and the date they describe.

Values come back keyed `view__field` (Feast's full feature names, the names the models were trained on).
Two readers return equal vectors: Feast's SDK, and a direct read of the same online tables (the
default: about 6x faster for a rating's few hundred features, see benchmarks/bench_serving.py).
The data as-of is the end of the last materialization the registry records: dates in a vector are turned
into "days before as-of" exactly as training turned them into "days before the firm-month".
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from data.feature_store.online_read import DirectOnlineReader
from data.feature_store.store import open_store
from kernel.profile import Profile

JOIN_KEY = "uscc"


class OnlineFeatures:
    """One Feast store per process; reads are safe from the service's worker threads."""

    def __init__(self, ws: Path, profile: Profile, reader: str = "direct") -> None:
        self.ws, self.profile = ws, profile
        self.store = open_store(ws, profile)
        self._lock = threading.Lock()
        self.reader = reader
        self._direct = DirectOnlineReader(self.store) if reader == "direct" else None

    def read(self, usccs: Sequence[str], refs: Sequence[str]) -> list[dict[str, Any]]:
        """One dict per firm: `view__field` -> value (None where the store holds nothing)."""
        if self._direct is not None:
            return self._direct.read(usccs, refs)
        return self.read_with_feast(usccs, refs)

    def read_with_feast(self, usccs: Sequence[str], refs: Sequence[str]) -> list[dict[str, Any]]:
        """The same vectors through Feast's SDK (`get_online_features`): the reference the fast path equals."""
        resp = self.store.get_online_features(features=list(refs), entity_rows=[{JOIN_KEY: u} for u in usccs],
                                              full_feature_names=True)
        cols = resp.to_dict()
        cols.pop(JOIN_KEY, None)
        return [{k: v[i] for k, v in cols.items()} for i in range(len(usccs))]

    def data_as_of(self) -> datetime | None:
        """The latest materialization end over the registered views (None if nothing was materialized)."""
        ends = [iv[1] for fv in self.store.list_feature_views() for iv in fv.materialization_intervals]
        return max(ends) if ends else None

    def view_fields(self) -> dict[str, list[str]]:
        return {fv.name: [f.name for f in fv.features] for fv in self.store.list_feature_views()}

    def view_types(self) -> dict[str, dict[str, str]]:
        """view -> field -> Feast type name (e.g. Float64, String, UnixTimestamp)."""
        return {fv.name: {f.name: str(f.dtype) for f in fv.features} for fv in self.store.list_feature_views()}

    def refresh(self) -> None:
        """Re-read the registry (new views, new materialization) without restarting."""
        with self._lock:
            self.store.refresh_registry()
