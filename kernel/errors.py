"""One base error and a few specific ones, each naming the record, field and rule."""

from __future__ import annotations


class ZhouxinError(Exception):
    """Base of every error the platform raises on purpose."""


class ConfigError(ZhouxinError):
    """A configuration file is missing or does not validate."""


class CatalogError(ZhouxinError):
    """The catalog is inconsistent, or a name is not in it."""


class ValidationError(ZhouxinError):
    """A record failed a rule; the message names the record, the field and the rule."""

    def __init__(self, record: str, field: str, rule: str, detail: str = "") -> None:
        self.record, self.field, self.rule, self.detail = record, field, rule, detail
        msg = f"{record}: field {field!r} fails rule {rule!r}"
        super().__init__(msg + (f" ({detail})" if detail else ""))


class TruthAccessError(ZhouxinError):
    """Code outside evaluation tried to read the simulator's ground truth."""
