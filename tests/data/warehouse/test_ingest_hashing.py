"""The vectorised helpers of ingestion reproduce what the pandas formulation gave (landed values)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from data.warehouse.ingest import HashSet, frame_hash, group_codes, hex_hashes, later_occurrences

# without NUL: pandas' string hash table reads a value as a C string, so it takes "" and "\x00" for one
# value; ours does not (test_nul_is_a_character_unlike_pandas)
VALUES = st.one_of(st.none(), st.sampled_from(["", "∅", "a", "A", "中文", "0.5", "2020-01-01"]),
                   st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(VALUES, VALUES, VALUES), min_size=1, max_size=60))
def test_content_hash_and_key_duplicates_match_pandas(rows: list[tuple]) -> None:
    frame = pd.DataFrame(rows, columns=["a", "b", "c"], dtype=object)
    table = pa.table({c: pa.array(frame[c].tolist(), pa.string()) for c in frame.columns})
    # two chunks, as a DuckDB result of many rows comes
    table = pa.concat_tables([table.slice(0, len(rows) // 2), table.slice(len(rows) // 2)])
    want = pd.util.hash_pandas_object(frame.astype("string"), index=False).to_numpy(dtype=np.uint64)
    got = frame_hash([table[c] for c in frame.columns])
    assert (got == want).all()
    assert hex_hashes(got).to_pylist() == [f"{v:016x}" for v in want.tolist()]
    keyed = frame[["a", "b"]].astype("string").fillna("∅").duplicated(keep="first").to_numpy()
    assert (later_occurrences(group_codes([table["a"], table["b"]])) == keyed).all()
    assert (later_occurrences(got) == pd.Series(want).duplicated(keep="first").to_numpy()).all()


def test_nul_is_a_character_unlike_pandas() -> None:
    """Hypothesis found that pandas hashes and deduplicates "" and "\x00" as one value; ingestion keeps
    them apart, so a record is never dropped as a duplicate of one that differs from it."""
    frame = pd.DataFrame([("", "k"), ("\x00", "k")], columns=["a", "b"], dtype=object)
    table = pa.table({c: pa.array(frame[c].tolist(), pa.string()) for c in frame.columns})
    got = frame_hash([table["a"], table["b"]])
    assert got[0] != got[1]
    assert later_occurrences(group_codes([table["a"], table["b"]])).tolist() == [False, False]


def test_hash_set_membership() -> None:
    seen = HashSet()
    assert not seen.contains(np.array([1], dtype=np.uint64)).any()
    seen.add(np.array([1, 2**64 - 1], dtype=np.uint64))
    seen.add(np.array([7], dtype=np.uint64))
    assert seen.contains(np.array([7, 2**64 - 1, 3, 1], dtype=np.uint64)).tolist() == [True, True, False, True]
