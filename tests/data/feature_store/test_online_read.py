"""The serving fast path reads exactly what Feast's `get_online_features` returns: same keys, same
values, same Python types (SQLite here; Redis in test_production_profile.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from feast.protos.feast.types.Value_pb2 import Value
from hypothesis import given, settings
from hypothesis import strategies as st

from data.feature_store.bulk import bulk_materialize
from data.feature_store.online_read import DirectOnlineReader, _python
from data.feature_store.store import open_store
from data.feature_store.training_set import view_sources
from kernel.profile import load_profile

pytestmark = pytest.mark.integration


def test_direct_sqlite_read_equals_feast(small_feature_store, tmp_path, direct_equals_feast):
    ws, _, defs = small_feature_store
    shutil.copytree(ws / "features", tmp_path / "features")
    store = open_store(tmp_path, load_profile("local"))
    bulk_materialize(store, view_sources(store, list(defs.views)))
    reg = pd.read_parquet(tmp_path / "features" / "sources" / "ent_registration.parquet", columns=["uscc"])
    firms = [*np.random.default_rng(3).choice(sorted(reg["uscc"].unique()), 25, replace=False), "91330900MA2A00009P"]
    assert direct_equals_feast(store, list(firms)) > 25 * 100               # every view read whole
    assert all(v is None for v in DirectOnlineReader(store).read(["91330900MA2A00009P"], ["ent_registration:ent_name"])[0].values())
    # part of a view: three quarters of one (read whole, the rest dropped) and one feature of another (seeks)
    widest = sorted(store.list_feature_views(), key=lambda fv: -len(fv.features))[:2]
    names = [f.name for f in widest[0].features]
    refs = [f"{widest[0].name}:{n}" for n in names[: len(names) * 3 // 4]] + [f"{widest[1].name}:{widest[1].features[0].name}"]
    reader = DirectOnlineReader(store)
    sql, _ = reader._sqlite_plan(1, tuple(refs), {widest[0].name: names[: len(names) * 3 // 4],
                                                   widest[1].name: [widest[1].features[0].name]})
    assert sql.count("feature_name in") == 1                                 # both ways of reading are used
    assert direct_equals_feast(store, list(firms), refs=refs) > 25 * 10


@settings(max_examples=300, deadline=None)
@given(v=st.one_of(st.floats(allow_nan=True, width=64).map(lambda x: Value(double_val=x)),
                   st.floats(allow_nan=True, width=32).map(lambda x: Value(float_val=x)),
                   st.integers(-2**63, 2**63 - 1).map(lambda x: Value(int64_val=x)),
                   st.text(max_size=12).map(lambda x: Value(string_val=x)),
                   st.booleans().map(lambda x: Value(bool_val=x))))
def test_the_fixed_width_fast_path_decodes_as_protobuf_does(v):
    raw = v.SerializeToString()
    expected = getattr(v, v.WhichOneof("val"))
    got = _python(raw)
    assert type(got) is type(expected)
    assert got == expected or (got != got and expected != expected)
