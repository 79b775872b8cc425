"""Unified Social Credit Code (GB 32100-2015): normalise, validate and generate.

The USCC is the only enterprise key, checked wherever it enters the platform.
"""

from __future__ import annotations

import numpy as np

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(CHARSET)}
_WEIGHTS = [pow(3, i, 31) for i in range(17)]
_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]
_FULLWIDTH = {chr(0xFF10 + i): str(i) for i in range(10)} | {chr(0xFF21 + i): chr(0x41 + i) for i in range(26)}
_FULLWIDTH |= {chr(0xFF41 + i): chr(0x61 + i) for i in range(26)}
_FULLWIDTH_TABLE = str.maketrans(_FULLWIDTH | {"\u3000": "", " ": "", "\t": ""})


def normalise_uscc(code: str) -> str:
    """Strip spaces, fold full-width characters to half-width and upper-case (catalog §2 policy)."""
    return code.translate(_FULLWIDTH_TABLE).strip().upper()


def uscc_check_char(first17: str) -> str:
    """The position-18 check character for the first 17 characters."""
    s = sum(_VALUE[c] * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return CHARSET[(31 - s % 31) % 31]


def uscc_problem(code: str) -> str | None:
    """Why `code` is not a valid USCC as given (no normalisation), or None if it is valid."""
    if not isinstance(code, str):
        return "not a string"
    if len(code) != 18:
        return f"length {len(code)}, expected 18"
    bad = [c for c in code if c not in _VALUE]
    if bad:
        return f"character {bad[0]!r} not in the USCC character set"
    if not code[2:8].isdigit():
        return "positions 3-8 (region code) must be digits"
    if uscc_check_char(code[:17]) != code[17]:
        return f"check character {code[17]!r} wrong, expected {uscc_check_char(code[:17])!r}"
    return None


def is_valid_uscc(code: str) -> bool:
    """True if `code` is a valid USCC exactly as given (lower case is invalid)."""
    return uscc_problem(code) is None


def org_code_check_char(body8: str) -> str:
    """GB 11714-1997 check character over the 8-character organisation-code body."""
    def val(c: str) -> int:
        return int(c) if c.isdigit() else ord(c) - ord("A") + 10

    s = sum(val(c) * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True))
    c9 = 11 - s % 11
    return "X" if c9 == 10 else "0" if c9 == 11 else str(c9)


def org_code_valid(code: str) -> bool:
    """Position-17 organisation-code check; a failure is only a warning (catalog §2)."""
    return org_code_check_char(code[8:16]) == code[16]


def make_uscc(region: str, body8: str) -> str:
    """Build a USCC for an enterprise ('9','1') from a 6-digit region and an 8-character body."""
    first17 = "91" + region + body8 + org_code_check_char(body8)
    return first17 + uscc_check_char(first17)


_MA_CHARS = np.array(list(CHARSET))


def generate_usccs(rng: np.random.Generator, regions: np.ndarray, legacy: np.ndarray) -> np.ndarray:
    """Generate unique valid USCCs: legacy all-digit bodies or new 'MA' + 6 characters.

    Position 17 in the spec is the GB 11714 check, which may be 'X'; both checks hold for every code.
    """
    n = len(regions)
    out: list[str] = []
    seen: set[str] = set()
    digits = rng.integers(0, 10, size=(n * 2, 8))
    chars = rng.integers(0, 31, size=(n * 2, 6))
    k = 0
    for i in range(n):
        while True:
            if k >= len(digits):
                digits = rng.integers(0, 10, size=(n, 8))
                chars = rng.integers(0, 31, size=(n, 6))
                k = 0
            body = "".join(map(str, digits[k])) if legacy[i] else "MA" + "".join(_MA_CHARS[chars[k]])
            k += 1
            code = make_uscc(str(regions[i]), body)
            if code not in seen:
                seen.add(code)
                out.append(code)
                break
    return np.array(out, dtype=object)
