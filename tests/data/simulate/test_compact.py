"""String sharing keeps every value and makes equal strings one object (the simulator's memory at scale)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from data.simulate.compact import full_object, share_frame_strings, shared_strings

values = st.lists(st.one_of(st.sampled_from(["micro", "small", "舟山", ""]), st.text(max_size=3), st.none(),
                            st.integers(-3, 3), st.just(float("nan"))), max_size=40)


def _same(a: object, b: object) -> bool:
    return (a is b) or (a == b and type(a) is type(b)) or (isinstance(a, float) and isinstance(b, float)
                                                           and np.isnan(a) and np.isnan(b))


@given(values)
def test_shared_strings_keeps_values_and_shares_equal_strings(items: list[object]) -> None:
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    out = shared_strings(arr)
    assert out.dtype == object and len(out) == len(items)
    assert all(_same(a, b) for a, b in zip(items, out.tolist(), strict=True))
    first: dict[str, object] = {}
    for v in out.tolist():
        if isinstance(v, str):
            assert first.setdefault(v, v) is v       # every equal string is the same object
    assert all(_same(a, b) for a, b in zip(items, arr.tolist(), strict=True))   # input untouched


def test_shared_strings_from_fixed_width_unicode() -> None:
    out = shared_strings(np.where(np.arange(6) % 2 == 0, "stress", "background"))
    assert out.tolist() == ["stress", "background"] * 3
    assert out[0] is out[2] and out[1] is out[5]


def test_shared_strings_rejects_2d() -> None:
    try:
        shared_strings(np.array([["a"]], dtype=object))
    except ValueError as e:
        assert "1-d" in str(e)
    else:
        raise AssertionError("a 2-d array must be refused")


def test_full_object_and_frame() -> None:
    arr = full_object(4, "micro")
    assert arr.tolist() == ["micro"] * 4 and all(x is arr[0] for x in arr)
    frame = pd.DataFrame({"a": np.array(["x", "y", "x"], dtype=object), "n": [1, 2, 3]})
    out = share_frame_strings(frame)
    pd.testing.assert_frame_equal(out, frame)
    assert out["a"].iloc[0] is out["a"].iloc[2]
