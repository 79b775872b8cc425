"""Hash values as text: the 16-hex form the deliveries' `_row_hash` and the warehouse's `_content_hash` share."""

from __future__ import annotations

from functools import cache

import numpy as np


@cache
def _hex_pairs() -> np.ndarray:
    """The two hex digits of every byte value, indexable by the byte."""
    return np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), dtype="S2")


def hex16(values: np.ndarray) -> np.ndarray:
    """uint64 -> 16 lower-case hex digits (big-endian), as fixed-width bytes (dtype S16), vectorised."""
    as_bytes = np.asarray(values, dtype=np.uint64).astype(">u8").view(np.uint8).reshape(-1, 8)
    return np.ascontiguousarray(_hex_pairs()[as_bytes]).view("S16").reshape(-1)
