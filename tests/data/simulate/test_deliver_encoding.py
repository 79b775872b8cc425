"""The in-memory JSON-lines encoder gives exactly pandas' bytes, whatever the string values hold."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from data.simulate.deliver import _json_lines

texts = st.one_of(st.none(), st.text(max_size=8), st.sampled_from(["},{", '"},{"', "舟山", "a\nb", "]", "["]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(texts, st.one_of(st.none(), st.integers(-5, 5)), st.floats(allow_nan=True,
                                                                                     allow_infinity=False)),
                max_size=6))
def test_json_lines_equal_pandas(rows: list[tuple[object, object, float]]) -> None:
    frame = pd.DataFrame(rows, columns=["s", "i", "x"]).astype({"s": object, "i": object})
    expected = frame.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8")
    assert bytes(_json_lines(frame)) == expected
