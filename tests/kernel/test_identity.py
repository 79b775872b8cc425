"""Person hashes: keyed, stable, prefixed, and impossible without a secret salt."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.errors import ConfigError
from kernel.identity import keyed_hash, person_hash, salt_from_env


def test_format_and_stability() -> None:
    h = person_hash("33090219800101123X", b"salt")
    assert h.startswith("P_") and len(h) == 18 and all(c in "0123456789abcdef" for c in h[2:])
    assert h == person_hash(" 33090219800101123x ", b"salt")


@given(raw=st.text(min_size=1, max_size=30).filter(lambda s: s.strip()))
def test_different_salts_give_different_hashes(raw: str) -> None:
    assert person_hash(raw, b"salt-a") != person_hash(raw, b"salt-b")


def test_prefixes_and_unknown_kind() -> None:
    assert keyed_hash("case", "(2020)浙0902民初123号", b"s").startswith("C_")
    with pytest.raises(ValueError, match="unknown identifier kind"):
        keyed_hash("passport", "x", b"s")


def test_salt_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZHOUXIN_PERSON_SALT", raising=False)
    with pytest.raises(ConfigError, match="ZHOUXIN_PERSON_SALT"):
        salt_from_env()
