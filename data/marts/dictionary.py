"""The generated dictionary of every mart column (Markdown), from the marts' own declarations."""

from __future__ import annotations

from collections.abc import Sequence

from data.marts.spec import MartFeature


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_mart_dictionary(marts: Sequence[tuple[str, str, Sequence[MartFeature]]]) -> str:
    """Markdown: one section per mart (name, description, columns) with a column table."""
    total = sum(len(f) for _, _, f in marts)
    lines = ["# Mart feature dictionary", "",
             f"{total:,} columns in {len(marts)} marts, one row per enterprise and month end (as of the "
             "platform's knowledge at that date). Generated from the marts' declarations; do not edit.", "",
             "Direction: `+` a higher value means more risk, `-` less risk, `none` no monotone relation.", ""]
    for name, description, feats in marts:
        lines += [f"## {name} ({len(feats):,} columns)", "", description, "",
                  "| column | type | direction | reason group | meaning | 含义 |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| `{f.name}` | {f.dtype} | {f.risk_direction} | {f.reason_group} | {_cell(f.meaning_en)} | "
                  f"{_cell(f.meaning_zh)} |" for f in feats]
        lines.append("")
    return "\n".join(lines)
