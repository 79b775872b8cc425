"""The bulk path's Value encoding is byte-identical to Feast's protobuf serialization."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from feast.protos.feast.types.Value_pb2 import Value
from hypothesis import given
from hypothesis import strategies as st

from data.feature_store.bulk import encode_column


def _expected(values, make) -> list[bytes]:
    return [b"" if v is None else make(v).SerializeToString() for v in values]


@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=False)), max_size=50))
def test_doubles(values):
    assert encode_column(pa.array(values, pa.float64())) == _expected(values, lambda v: Value(double_val=v))


@given(st.lists(st.one_of(st.none(), st.floats(width=32, allow_nan=False)), max_size=50))
def test_floats(values):
    assert encode_column(pa.array(values, pa.float32())) == _expected(values, lambda v: Value(float_val=v))


@given(st.lists(st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)), max_size=50))
def test_ints(values):
    assert encode_column(pa.array(values, pa.int64())) == _expected(values, lambda v: Value(int64_val=v))


@given(st.lists(st.one_of(st.none(), st.booleans()), max_size=50))
def test_bools(values):
    assert encode_column(pa.array(values, pa.bool_())) == _expected(values, lambda v: Value(bool_val=v))


@given(st.lists(st.one_of(st.none(), st.text(max_size=300)), max_size=30))
def test_strings(values):
    assert encode_column(pa.array(values, pa.string())) == _expected(values, lambda v: Value(string_val=v))


@given(st.lists(st.one_of(st.none(), st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1))),
                max_size=30))
def test_timestamps(values):
    def make(v: datetime) -> Value:
        return Value(unix_timestamp_val=int(v.replace(microsecond=0, tzinfo=UTC).timestamp()))
    # a null time is NaT's integer, as Feast's materialize writes it, unless every time is null
    # (test_small_world_store compares whole tables against Feast's own materialize)
    null = b"" if all(v is None for v in values) else Value(unix_timestamp_val=-(2**63)).SerializeToString()
    expected = [make(v).SerializeToString() if v is not None else null for v in values]
    assert encode_column(pa.array(values, pa.timestamp("us"))) == expected


_column = st.one_of(
    st.lists(st.one_of(st.none(), st.floats(allow_nan=False)), min_size=6, max_size=6).map(lambda v: pa.array(v, pa.float64())),
    st.lists(st.one_of(st.none(), st.floats(width=32, allow_nan=False)), min_size=6, max_size=6).map(
        lambda v: pa.array(v, pa.float32())),
    st.lists(st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)), min_size=6, max_size=6).map(
        lambda v: pa.array(v, pa.int64())),
    st.lists(st.one_of(st.none(), st.text(max_size=150)), min_size=6, max_size=6).map(lambda v: pa.array(v, pa.string())),
    st.just(pa.array([None] * 6, pa.float64())),
)


@given(st.lists(_column, min_size=1, max_size=6))
def test_resp_template_frames_equal_per_value_framing(columns):
    """The numpy-built HSET field/value frames are byte for byte the frames built value by value."""
    from data.feature_store.bulk import RespTemplate, slot_layout

    names = [f"c{j}" for j in range(len(columns))]
    rows = pa.table(dict(zip(names, columns, strict=True)))
    heads = [b"$4\r\n" + bytes([j, 1, 2, 3]) + b"\r\n" for j in range(len(names))]
    slots = slot_layout(rows, names)
    template = RespTemplate.build(heads, slots)
    encoded = [encode_column(rows.column(n)) for n in names]
    for window in (slice(0, 6), slice(2, 5)):
        body, sizes = template.frames(slots, window)
        expected = [b"".join(h + b"$%d\r\n" % len(col[i]) + col[i] + b"\r\n" for h, col in zip(heads, encoded, strict=True))
                    for i in range(6)[window]]
        assert sizes.tolist() == [len(e) for e in expected]
        assert body == b"".join(expected)


def _python_text(v):
    """Feast's value_text of one value (feast.infra.online_stores.helpers.extract_text_and_num)."""
    return None if v is None else v if isinstance(v, str) else str(v)


@given(st.lists(st.one_of(st.none(), st.floats(), st.sampled_from([0.0, -0.0, 1e-4, 9.999e-5, 1e16, 9.99e15,
                                                                     1.5e15, 1e-5, 5e-324])), max_size=60))
def test_value_text_of_doubles_is_pythons_str(values):
    """Arrow formats the bulk path's texts; they are exactly Python's `str`, the repr Feast writes."""
    from data.feature_store.bulk import value_text

    assert value_text(pa.array(values, pa.float64())).to_pylist() == [_python_text(v) for v in values]


@given(st.lists(st.one_of(st.none(), st.floats(width=32)), max_size=60))
def test_value_text_of_floats_is_pythons_str_of_the_double(values):
    from data.feature_store.bulk import value_text

    arr = pa.array(values, pa.float32())
    assert value_text(arr).to_pylist() == [_python_text(v) for v in arr.to_pylist()]


@given(st.lists(st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)), max_size=40),
       st.lists(st.one_of(st.none(), st.booleans()), max_size=40),
       st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=40))
def test_value_text_of_ints_bools_and_strings(ints, bools, texts):
    from data.feature_store.bulk import value_text

    assert value_text(pa.array(ints, pa.int64())).to_pylist() == [_python_text(v) for v in ints]
    assert value_text(pa.array(bools, pa.bool_())).to_pylist() == [_python_text(v) for v in bools]
    assert value_text(pa.array(texts, pa.large_string())).to_pylist() == [_python_text(v) for v in texts]


@given(st.lists(_column, min_size=1, max_size=6), st.booleans())
def test_text_slots_hold_each_firms_texts(columns, with_time):
    """Cutting a firm's text blob at each column's slot and length gives that value's text (none for a
    time, whose value_text Feast leaves null)."""
    from data.feature_store.bulk import text_slots, value_text

    names = [f"c{j}" for j in range(len(columns))]
    if with_time:
        columns, names = [*columns, pa.array([datetime(2020, 1, 1)] * 6, pa.timestamp("us"))], [*names, "t"]
    rows = pa.table(dict(zip(names, columns, strict=True)))
    slots = text_slots(rows, names)
    for j, name in enumerate(names):
        expected = value_text(rows.column(name)).to_pylist() if name != "t" else [None] * 6
        got = []
        for i in range(6):
            code = int(slots.lengths[i, j])
            start = int(slots.offsets[j]) - 1
            got.append(None if code == 0 else slots.matrix[i, start:start + code - 1].tobytes().decode("utf-8"))
        assert got == expected


@given(st.lists(st.text(max_size=40), max_size=20))
def test_entity_keys_equal_feasts_serializer(usccs):
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey

    from data.feature_store.bulk import entity_keys

    expected = [serialize_entity_key(EntityKey(join_keys=["uscc"], entity_values=[Value(string_val=u)]),
                                     entity_key_serialization_version=3) for u in usccs]
    assert entity_keys(usccs) == expected
