"""Memory helpers for object arrays of strings (the simulator holds millions of them at scale).

NumPy makes one new `str` per element whenever strings pass through a fixed-width 'U' array on the way
to dtype=object (`np.full(n, "x", dtype=object)`, `np.where(m, "a", "b").astype(object)`, ...): about
60 bytes each. These helpers give arrays whose equal strings are one shared object; the values, and so
every row written from them, are unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def full_object(n: int, value: object) -> np.ndarray:
    """`np.full(n, value, dtype=object)` with every element the same object."""
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


def shared_strings(values: np.ndarray | list[object]) -> np.ndarray:
    """A 1-d object array equal to `values` in which equal strings are a single shared object.

    Only `str` elements are merged (by equality); anything else (None, NaN, numbers) is kept as it is.
    """
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise ValueError("shared_strings takes a 1-d array")
    try:
        codes, uniques = pd.factorize(arr)
    except TypeError:                  # unhashable elements: merge strings one by one
        uniques = np.array([0])
    if all(isinstance(u, str) for u in uniques.tolist()):
        out = arr.copy()
        hit = codes >= 0               # missing values (None, NaN) stay the objects they were
        out[hit] = np.asarray(uniques, dtype=object)[codes[hit]]
        return out
    seen: dict[str, str] = {}
    return np.fromiter((seen.setdefault(v, v) if isinstance(v, str) else v for v in arr.tolist()),
                       dtype=object, count=arr.size)


def share_frame_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with equal strings of its object columns shared (a new frame; the input is untouched)."""
    out = frame.copy(deep=False)
    for c in frame.columns:
        if frame[c].dtype == object and len(frame) > 1:
            out[c] = shared_strings(frame[c].to_numpy())
    return out
