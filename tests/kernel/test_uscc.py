"""USCC (GB 32100-2015): the catalog's test vectors, and properties of generation and corruption."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.uscc import CHARSET, generate_usccs, is_valid_uscc, make_uscc, normalise_uscc, uscc_problem

VECTORS = [
    ("91350100M000100Y43", True), ("91330902MA28K3QJ6R", True), ("91330902181590838D", True),
    ("91330903MA12DD2777", True), ("91330921MAY1JJC1XU", True), ("91330922219935185Y", True),
    ("91330902MA28K3QJ60", False), ("91330902MA28K3QI6R", False), ("91330902ma28k3qj6r", False),
]


@pytest.mark.parametrize(("code", "valid"), VECTORS)
def test_catalog_vectors(code: str, valid: bool) -> None:
    assert is_valid_uscc(code) is valid


def test_lower_case_is_valid_after_normalisation() -> None:
    assert is_valid_uscc(normalise_uscc("91330902ma28k3qj6r"))
    assert normalise_uscc(" 913309 02MA28K3QJ6R ") == "91330902MA28K3QJ6R"
    assert normalise_uscc("９１３３０９０２ＭＡ２８Ｋ３ＱＪ６Ｒ") == "91330902MA28K3QJ6R"


def test_worked_example() -> None:
    assert make_uscc("330902", "MA28K3QJ") == "91330902MA28K3QJ6R"


def test_problem_names_the_rule() -> None:
    assert "check character" in (uscc_problem("91330902MA28K3QJ60") or "")
    assert "character set" in (uscc_problem("91330902MA28K3QI6R") or "")
    assert "length" in (uscc_problem("9133") or "")


bodies = st.one_of(
    st.text(alphabet="0123456789", min_size=8, max_size=8),
    st.text(alphabet=CHARSET, min_size=6, max_size=6).map(lambda s: "MA" + s),
)
regions = st.sampled_from(["330900", "330901", "330902", "330903", "330921", "330922"])


@given(region=regions, body=bodies)
def test_every_generated_code_is_valid(region: str, body: str) -> None:
    assert is_valid_uscc(make_uscc(region, body))


@settings(max_examples=300)
@given(region=regions, body=bodies, pos=st.integers(0, 17), data=st.data())
def test_every_single_character_corruption_is_caught(region: str, body: str, pos: int, data: st.DataObject) -> None:
    code = make_uscc(region, body)
    replacement = data.draw(st.sampled_from([c for c in CHARSET + "IOSVZ" if c != code[pos]]))
    corrupted = code[:pos] + replacement + code[pos + 1:]
    assert not is_valid_uscc(corrupted)


def test_vectorised_generation_is_unique_and_valid() -> None:
    rng = np.random.default_rng(3)
    regions_arr = np.array(["330902"] * 2000, dtype=object)
    legacy = rng.random(2000) < 0.5
    codes = generate_usccs(rng, regions_arr, legacy)
    assert len(set(codes)) == 2000
    assert all(is_valid_uscc(c) for c in codes)
    assert all(c[8:10] == "MA" for c, leg in zip(codes, legacy, strict=True) if not leg)
