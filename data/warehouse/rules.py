"""Validation rules as DuckDB SQL generated from the catalog and configs/validation.yaml.

One query per sub-item turns a batch of string columns into (a) normalised values (USCC folded,
category labels mapped to codes) and (b) the list of failed rules per record, each `field:rule`.
Nothing is hand-written per field: every expression comes from a field's catalog entry.
"""

from __future__ import annotations

import re
from functools import cache

from kernel.catalog import FieldSpec, SubItem
from kernel.config import FrozenModel, configs_dir, load_yaml_model
from kernel.uscc import CHARSET

FULLWIDTH_FROM = "".join(chr(0xFF10 + i) for i in range(10)) + "".join(chr(0xFF21 + i) for i in range(26)) + "".join(
    chr(0xFF41 + i) for i in range(26))
FULLWIDTH_TO = "0123456789" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "abcdefghijklmnopqrstuvwxyz"
USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]
INT64_LIMIT = "9.2e18"            # |value| of an int field at or beyond this does not fit the landed bigint
CASE_SENSITIVE = frozenset({"A", "B", "C", "D", "M", "AA", "AAA"})


class Relation(FrozenModel):
    """A relation between one record's fields; `field` is the one reported when it breaks."""

    field: str
    holds: str


class ValidationConfig(FrozenModel):
    earliest_date: str
    past_only_dates: tuple[str, ...]
    date_order: dict[str, tuple[tuple[str, str], ...]]
    plausible_max: dict[str, dict[str, float]]
    share_ratio_tolerance: float
    category_labels: dict[str, dict[str, str]]
    consistency: dict[str, tuple[Relation, ...]]


@cache
def load_validation_config() -> ValidationConfig:
    return load_yaml_model(ValidationConfig, configs_dir() / "validation.yaml")


def q(name: str) -> str:
    """Quote an identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def uscc_macros() -> list[str]:
    """DuckDB macros: normalise a USCC and test its GB 32100-2015 check character."""
    weights = "[" + ", ".join(map(str, USCC_WEIGHTS)) + "]"
    return [
        f"create or replace macro zx_norm_uscc(u) as upper(replace(replace(translate(trim(u), {lit(FULLWIDTH_FROM)}, "
        f"{lit(FULLWIDTH_TO)}), ' ', ''), '\u3000', ''))",
        f"create or replace macro zx_uscc_value(c) as instr({lit(CHARSET)}, c) - 1",
        "create or replace macro zx_uscc_format_ok(u) as (length(u) = 18 and regexp_full_match(u, "
        f"'[{CHARSET}]{{18}}') and regexp_full_match(substr(u, 3, 6), '[0-9]{{6}}'))",
        f"create or replace macro zx_uscc_check_ok(u) as (substr({lit(CHARSET)}, cast(1 + (31 - (list_sum(list_transform("
        f"range(17), lambda i: zx_uscc_value(substr(u, i + 1, 1)) * {weights}[i + 1])) % 31)) % 31 as bigint), 1) "
        f"= substr(u, 18, 1))",
    ]


def _normalised_category(f: FieldSpec, raw: str, labels: dict[str, str]) -> str:
    allowed = f.allowed or ()
    whens = []
    for code in allowed:
        if code in CASE_SENSITIVE:
            whens.append(f"when trim({raw}) = {lit(code)} then {lit(code)}")
        else:
            whens.append(f"when lower(trim({raw})) = {lit(code.lower())} then {lit(code)}")
    for label, code in labels.items():
        if code in allowed:
            whens.append(f"when trim({raw}) = {lit(label)} then {lit(code)}")
    return f"(case when {raw} is null then null {' '.join(whens)} else {raw} end)"


def normalised_columns(spec: SubItem) -> list[tuple[str, str]]:
    """(output column, SQL expression) for every catalog field, reading raw VARCHAR columns."""
    cfg = load_validation_config()
    out = []
    for f in spec.fields:
        raw = q(f.name)
        if f.name == "uscc" or (f.dtype == "string" and f.length == 18):
            expr = f"zx_norm_uscc({raw})"
        elif f.dtype == "category":
            expr = _normalised_category(f, raw, cfg.category_labels.get(f.name, {}))
        else:
            expr = f"nullif(trim({raw}), '')"
        out.append((f.name, expr))
    return out


def _typed(f: FieldSpec, col: str) -> str:
    if f.dtype == "int":
        return f"try_cast({col} as double)"
    if f.dtype == "float":
        return f"try_cast({col} as double)"
    if f.dtype == "date":
        return f"try_cast({col} as date)"
    if f.dtype == "bool":
        return f"(case lower({col}) when 'true' then true when 'false' then false when '1' then true when '0' then false end)"
    return col


def failure_checks(spec: SubItem) -> list[tuple[str, str, str]]:
    """(field, rule, SQL condition that is TRUE when the record fails) over normalised columns `n_<field>`."""
    cfg = load_validation_config()
    checks: list[tuple[str, str, str]] = []
    for f in spec.fields:
        col = q("n_" + f.name)
        typed = _typed(f, col)
        if f.name in spec.key or f.name == "uscc":
            checks.append((f.name, "required", f"{col} is null"))
        if f.dtype in ("int", "float", "date", "bool"):
            checks.append((f.name, "dtype", f"{col} is not null and {typed} is null"))
        if f.dtype == "int":
            checks.append((f.name, "dtype", f"{typed} is not null and {typed} <> round({typed})"))
            # beyond a 64-bit integer ('1e20'): the record is quarantined, the landing cast never sees it
            checks.append((f.name, "dtype", f"{typed} is not null and abs({typed}) >= {INT64_LIMIT}"))
        if f.dtype == "category" and f.allowed:
            values = ", ".join(lit(v) for v in f.allowed)
            checks.append((f.name, "allowed_values", f"{col} is not null and {col} not in ({values})"))
        if f.dtype in ("int", "float"):
            if f.min is not None:
                checks.append((f.name, "range", f"{typed} < {f.min}"))
            if f.max is not None:
                checks.append((f.name, "range", f"{typed} > {f.max}"))
            cap = cfg.plausible_max.get(spec.code, {}).get(f.name)
            if cap is not None:
                checks.append((f.name, "implausible_magnitude", f"abs({typed}) > {cap}"))
        if f.name == "uscc" or (f.dtype == "string" and f.length == 18):
            fmt = f"{col} is not null and not zx_uscc_format_ok({col})"
            checks.append((f.name, "uscc_format", fmt))
            checks.append((f.name, "uscc_check", f"{col} is not null and zx_uscc_format_ok({col}) and "
                                                 f"not zx_uscc_check_ok({col})"))
        if f.dtype == "date":
            checks.append((f.name, "date_placeholder", f"{typed} < date {lit(cfg.earliest_date)}"))
            if f.name in cfg.past_only_dates:
                checks.append((f.name, "date_in_future", f"{typed} > try_cast(\"_available_date\" as date)"))
        if f.dtype in ("string", "category") and f.name != "uscc":
            checks.append((f.name, "encoding", f"contains(coalesce({col}, ''), '\ufffd')"))
    for rel in cfg.consistency.get(spec.code, ()):
        by_type = {f.name: f for f in spec.fields}
        used = [f for f in spec.field_names if re.search(rf"\b{f}\b", rel.holds)]
        expr = rel.holds
        for f in sorted(used, key=len, reverse=True):
            typed = (f"try_cast({q('n_' + f)} as date)" if by_type[f].dtype == "date"
                     else f"coalesce(try_cast({q('n_' + f)} as double), 0)")
            expr = re.sub(rf"\b{f}\b", typed, expr)
        reported = f"try_cast({q('n_' + rel.field)} as double) is not null"
        checks.append((rel.field, "inconsistent_amounts", f"({reported}) and not ({expr})"))
    for earlier, later in cfg.date_order.get(spec.code, ()):
        a, b = f"try_cast({q('n_' + earlier)} as date)", f"try_cast({q('n_' + later)} as date)"
        checks.append((later, "date_order", f"{a} is not null and {b} is not null and {b} < {a}"))
    return checks


def validation_sql(spec: SubItem, relation: str, typed: bool = False) -> str:
    """SELECT every raw column, the normalised fields `n_*` and `failures` (list of 'field:rule');
    with `typed`, also `t_*`: the normalised fields cast to the catalog types (plus the metadata dates)."""
    norm = normalised_columns(spec)
    inner = ", ".join(f"{expr} as {q('n_' + name)}" for name, expr in norm)
    checks = failure_checks(spec)
    items = ", ".join(f"case when coalesce({cond}, false) then {lit(field + ':' + rule)} end"
                      for field, rule, cond in checks)
    extra = ""
    if typed:
        extra = ", " + typed_select(spec, prefix="t_") + ", try_cast(_available_date as date) as t__available_date"
        if spec.is_versioned:
            extra += (", try_cast(_valid_from as date) as t__valid_from, "
                      "try_cast(_valid_to as date) as t__valid_to")
    return (f"select *, list_filter([{items}], lambda x: x is not null) as failures{extra} "
            f"from (select *, {inner} from {relation})")


def typed_select(spec: SubItem, prefix: str = "") -> str:
    """Cast the normalised fields to the catalog types (for landing accepted records)."""
    parts = []
    for f in spec.fields:
        col = q("n_" + f.name)
        out = q(prefix + f.name)
        if f.dtype == "int":
            parts.append(f"try_cast(try_cast({col} as double) as bigint) as {out}")
        elif f.dtype in ("float", "date", "bool"):
            parts.append(f"{_typed(f, col)} as {out}")
        else:
            parts.append(f"{col} as {out}")
    return ", ".join(parts)
