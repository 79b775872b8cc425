"""Render the catalog as a human data dictionary (Markdown), so docs never restate the catalog by hand."""

from __future__ import annotations

from kernel.catalog import Catalog


def _cell(text: object) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def render_markdown(catalog: Catalog) -> str:
    """One section per sub-item: department, libraries, grain, lag, key, coverage and a field table."""
    lines = ["# Zhouxin data dictionary — 金融主题仓数据字典", "",
             f"Generated from `configs/catalog.yaml` (version {catalog.version}): "
             f"{len(catalog.sub_items)} sub-items, {catalog.field_count} fields, "
             f"{len(catalog.departments)} providers, {len(catalog.libraries)} resource libraries.", ""]
    lines += ["| Sub-item | 子项 | Department | Grain | Lag (days) | Fields |", "|---|---|---|---|---|---|"]
    for s in catalog.sub_items:
        d = catalog.department(s.department)
        lines.append(f"| {s.id} `{s.code}` | {s.name_zh} | {d.id} {d.name_zh} | {s.grain} | "
                     f"{s.lag_days[0]}–{s.lag_days[1]} | {len(s.fields)} |")
    for s in catalog.sub_items:
        d = catalog.department(s.department)
        libs = ", ".join(f"{lib.id} {lib.name_zh}" for lib in catalog.libraries_of(s.code))
        lines += ["", f"## {s.id} `{s.code}` — {s.name_zh} / {s.name_en}", "",
                  f"- Department: {d.id} {d.name_zh} ({d.name_en}); delivery format: {d.delivery_format}",
                  f"- Libraries: {libs}", f"- Grain: {s.grain} ({s.grain_note}); frequency: {s.frequency}",
                  f"- Availability lag: {s.lag_note} (simulated {s.lag_days[0]}–{s.lag_days[1]} days)",
                  f"- Key: `{' + '.join(s.key)}`; coverage: {s.coverage}", "",
                  "| # | Field | dtype | Unit | Allowed / range | Risk | 含义 | Meaning |",
                  "|---|---|---|---|---|---|---|---|"]
        for i, f in enumerate(s.fields, 1):
            allowed = ", ".join(f.allowed) if f.allowed else (
                f"[{'' if f.min is None else f.min}, {'' if f.max is None else f.max}]"
                if (f.min is not None or f.max is not None) else "")
            lines.append(f"| {i} | `{f.name}` | {f.dtype}{f'({f.length})' if f.length else ''} | {_cell(f.unit)} | "
                         f"{_cell(allowed)} | {f.risk_direction} | {_cell(f.meaning_zh)} | {_cell(f.meaning_en)} |")
    return "\n".join(lines) + "\n"
