"""What every mart declares about its columns, so Feast views, dictionaries and reason codes derive from it.

A mart is a table with one row per (uscc, as_of month end) and feature columns. Each column is
described once by a `MartFeature`; the feature store types its Feast fields from `dtype`, the data
dictionary prints the meanings, and the rating model takes monotone constraints and reason groups from
`risk_direction` and `reason_group`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MartDtype = Literal["float", "int", "bool", "string"]
MartRiskDirection = Literal["+", "-", "none"]


@dataclass(frozen=True)
class MartFeature:
    """One mart column: name, type, meaning (en/zh), relation to default risk, business reason group.

    risk_direction: "+" = a higher value means more risk, "-" = less risk, "none" = no monotone relation
    (identifiers, categories). reason_group is the business reason a loan officer reads ("tax arrears",
    "court enforcement" ...), shared by every feature that speaks to it.
    """

    name: str
    dtype: MartDtype
    meaning_en: str
    meaning_zh: str
    risk_direction: MartRiskDirection = "none"
    reason_group: str = "other"


MART_KEYS = ("uscc", "as_of")


def mart_view_name(mart: str) -> str:
    """The feature view (and Feast source) name of a mart; model columns are `<view>__<column>`."""
    return f"mart_{mart}"
