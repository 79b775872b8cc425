"""Keyed hashes for persons and other sensitive identifiers (catalog §3).

Persons never enter the platform in clear: `P_` + 16 hex of HMAC-SHA256(salt, normalised id).
The salt comes from the environment (ZHOUXIN_PERSON_SALT), never from the repository.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from kernel.errors import ConfigError

PREFIXES = {"person": "P_", "foreign": "F_", "case": "C_", "enforcement": "E_", "penalty": "A_",
            "property": "R_", "collateral": "M_", "vessel": "V_"}


def salt_from_env(var: str = "ZHOUXIN_PERSON_SALT") -> bytes:
    """The platform secret salt; refuse to run with none rather than hash with a guessable key."""
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"environment variable {var} is not set: person hashes need a secret salt")
    return value.encode("utf-8")


def normalise_resident_id(raw: str) -> str:
    """Upper-case, strip; foreigners are given as PASSPORT:<ISO3>:<number>."""
    return raw.strip().upper()


def keyed_hash(kind: str, raw_id: str, salt: bytes) -> str:
    """`<prefix>` + first 16 hex characters of HMAC-SHA256(salt, normalised id)."""
    if kind not in PREFIXES:
        raise ValueError(f"unknown identifier kind {kind!r}; known: {sorted(PREFIXES)}")
    digest = hmac.new(salt, normalise_resident_id(raw_id).encode("utf-8"), hashlib.sha256).hexdigest()
    return PREFIXES[kind] + digest[:16]


def person_hash(resident_id: str, salt: bytes) -> str:
    """Salted hash of a natural person's resident-ID number."""
    return keyed_hash("person", resident_id, salt)
