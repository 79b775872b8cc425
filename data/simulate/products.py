"""Institutions, product templates and the eligibility-rule grammar (products_and_demands.md §1-§2).

configs/products.yaml is shared by the simulator and the recommender's rules engine, so everything
that decides whether a product fits an enterprise is data: eligibility trees in the §2.2 grammar and
limit rules as small arithmetic expressions. Both evaluate vectorised over numpy arrays of profile
attributes (one element per enterprise or demand), so the simulator can screen a month of demands
against every product at once and the recommender can score one profile the same way.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from data.simulate.calendar import month_index
from kernel.config import FrozenModel, configs_dir, load_yaml_model

InstitutionType = Literal["large_state_bank", "postal_savings_bank", "joint_stock_bank", "city_commercial_bank",
                          "rural_commercial_bank", "gov_financing_guarantee", "commercial_guarantee", "insurer",
                          "financial_leasing"]
ProductType = Literal["credit_loan", "tax_based_credit_loan", "mortgage_loan", "pledge_loan", "guarantee_loan",
                      "supply_chain_loan", "trade_finance", "financing_guarantee", "loan_guarantee_insurance",
                      "export_credit_insurance", "hull_insurance", "financial_lease"]
Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_true", "is_false", "exists"]
BANK_TYPES = ("large_state_bank", "postal_savings_bank", "joint_stock_bank", "city_commercial_bank",
              "rural_commercial_bank")


# --------------------------------------------------------------------------------------------------
# Rule grammar
class RuleLeaf(FrozenModel):
    """{attr, op, value}: one comparison of a profile attribute."""

    attr: str
    op: Op
    value: Any = None

    def label(self) -> str:
        return f"{self.attr} {self.op}" + ("" if self.value is None else f" {self.value}")


class RuleNode(FrozenModel):
    """{all: [...]} or {any: [...]} over leaves and nested nodes."""

    all_: tuple[Rule, ...] | None = Field(default=None, alias="all")
    any_: tuple[Rule, ...] | None = Field(default=None, alias="any")

    @model_validator(mode="after")
    def _one_kind(self) -> RuleNode:
        if (self.all_ is None) == (self.any_ is None):
            raise ValueError("a rule node needs exactly one of 'all' or 'any'")
        return self

    @property
    def children(self) -> tuple[Rule, ...]:
        return self.all_ if self.all_ is not None else self.any_  # type: ignore[return-value]


Rule = RuleNode | RuleLeaf
RuleNode.model_rebuild()


def rule_leaves(rule: Rule) -> list[RuleLeaf]:
    """All leaves of a tree, depth first."""
    if isinstance(rule, RuleLeaf):
        return [rule]
    return [leaf for child in rule.children for leaf in rule_leaves(child)]


def rule_attributes(rule: Rule) -> set[str]:
    return {leaf.attr for leaf in rule_leaves(rule)}


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in values], dtype=bool)
    if np.issubdtype(values.dtype, np.floating):
        return np.isnan(values)
    return np.zeros(values.shape, dtype=bool)


def _ranked(values: np.ndarray, order: Sequence[str]) -> np.ndarray:
    """Grade -> goodness (higher = better), NaN when missing or unknown."""
    good = {g: float(len(order) - 1 - k) for k, g in enumerate(order)}
    return np.array([good.get(v, np.nan) if isinstance(v, str) else np.nan for v in values], dtype=np.float64)


def evaluate_leaf(leaf: RuleLeaf, attrs: Mapping[str, np.ndarray], n: int,
                  grade_orders: Mapping[str, Sequence[str]]) -> np.ndarray:
    """Vectorised truth value of one leaf; a missing attribute is false except for `exists`."""
    raw = attrs.get(leaf.attr)
    if raw is None:
        return np.zeros(n, dtype=bool)
    values = np.asarray(raw)
    miss = _missing(values)
    op, v = leaf.op, leaf.value
    if op == "exists":
        return ~miss
    if op in ("is_true", "is_false"):
        want = op == "is_true"
        if values.dtype == object:
            return np.array([(x is want) or (isinstance(x, bool | np.bool_) and bool(x) == want) for x in values],
                            dtype=bool)
        return (values.astype(bool) == want) & ~miss
    order = grade_orders.get(leaf.attr)
    if order is not None and op in ("<", "<=", ">", ">=", "between"):
        values = _ranked(values, order)
        miss = np.isnan(values)
        v = ([_ranked(np.array([x], dtype=object), order)[0] for x in v] if op == "between"
             else _ranked(np.array([v], dtype=object), order)[0])
    with np.errstate(invalid="ignore"):
        if op == "==":
            out = values == v
        elif op == "!=":
            out = values != v
        elif op == "<":
            out = values < v
        elif op == "<=":
            out = values <= v
        elif op == ">":
            out = values > v
        elif op == ">=":
            out = values >= v
        elif op == "in":
            out = np.isin(values, np.asarray(v, dtype=values.dtype if values.dtype != object else object))
        elif op == "not_in":
            out = ~np.isin(values, np.asarray(v, dtype=values.dtype if values.dtype != object else object))
        elif op == "between":
            out = (values >= v[0]) & (values <= v[1])
        else:  # pragma: no cover - Literal guards the set
            raise ValueError(f"unknown op {op}")
    return np.asarray(out, dtype=bool) & ~miss


def evaluate_rule(rule: Rule, attrs: Mapping[str, np.ndarray], n: int,
                  grade_orders: Mapping[str, Sequence[str]],
                  leaf_out: list[tuple[str, np.ndarray]] | None = None) -> np.ndarray:
    """Vectorised truth value of a tree; optionally collect (label, result) for every leaf."""
    if isinstance(rule, RuleLeaf):
        res = evaluate_leaf(rule, attrs, n, grade_orders)
        if leaf_out is not None:
            leaf_out.append((rule.label(), res))
        return res
    parts = [evaluate_rule(c, attrs, n, grade_orders, leaf_out) for c in rule.children]
    if rule.all_ is not None:
        return np.logical_and.reduce(parts) if parts else np.ones(n, dtype=bool)
    return np.logical_or.reduce(parts) if parts else np.zeros(n, dtype=bool)


# --------------------------------------------------------------------------------------------------
# Limit expressions: + - * /, unary -, numbers, attribute names, min(...), max(...), max_ltv['type']
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply,
                                                   ast.Div: np.divide}


def _check_expr(node: ast.AST) -> None:
    if isinstance(node, ast.Expression):
        _check_expr(node.body)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        _check_expr(node.left)
        _check_expr(node.right)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _check_expr(node.operand)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max") \
            and len(node.args) >= 2 and not node.keywords:
        for a in node.args:
            _check_expr(a)
    elif (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "max_ltv" \
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)) or isinstance(node, ast.Name) or (isinstance(node, ast.Constant) and isinstance(node.value, int | float)):
        return
    else:
        raise ValueError(f"unsupported element in limit rule: {ast.dump(node)[:60]}")


def parse_limit_rule(expr: str) -> ast.Expression:
    tree = ast.parse(expr, mode="eval")
    _check_expr(tree)
    return tree


def evaluate_limit(expr: str, attrs: Mapping[str, np.ndarray | float], max_ltv: Mapping[str, float],
                   n: int) -> np.ndarray:
    """Vectorised limit (万元); a missing attribute gives NaN (the caller treats it as no limit = 0)."""
    tree = parse_limit_rule(expr)

    def ev(node: ast.AST) -> np.ndarray | float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.BinOp):
            with np.errstate(divide="ignore", invalid="ignore"):
                return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp):
            return -ev(node.operand)  # type: ignore[operator]
        if isinstance(node, ast.Call):
            fn = np.minimum if node.func.id == "min" else np.maximum  # type: ignore[attr-defined]
            out = ev(node.args[0])
            for a in node.args[1:]:
                out = fn(out, ev(a))
            return out
        if isinstance(node, ast.Subscript):
            return float(max_ltv.get(node.slice.value, np.nan))  # type: ignore[attr-defined]
        if isinstance(node, ast.Name):
            v = attrs.get(node.id)
            return np.nan if v is None else (np.asarray(v, dtype=np.float64) if not np.isscalar(v) else float(v))
        return float(node.value)  # type: ignore[attr-defined]

    out = np.broadcast_to(np.asarray(ev(tree), dtype=np.float64), (n,)).copy()
    return out


# --------------------------------------------------------------------------------------------------
# Configuration models
class InstitutionConfig(FrozenModel):
    id: str
    name: str
    type: InstitutionType
    districts: Literal["all"] | tuple[str, ...]
    weekly_push_capacity: int = Field(gt=0)
    soft_info_strength: float = Field(ge=0, le=1)
    active_from: str
    active_to: str | None = None
    core_templates: tuple[str, ...]

    @property
    def is_bank(self) -> bool:
        return self.type in BANK_TYPES


class EligibilityVariant(FrozenModel):
    institutions: tuple[str, ...]
    rule: Rule


class ProductTemplate(FrozenModel):
    id: str
    name: str
    product_type: ProductType
    offered_by: tuple[str, ...]
    amount: tuple[float, float]
    term_months: tuple[int, int]
    revolving: bool
    pricing: Literal["fixed", "lpr_spread"]
    rate: tuple[float, float]
    fee: tuple[float, float] = (0.0, 0.0)
    collateral_accepted: tuple[str, ...]
    collateral_required: bool
    repayment_methods: tuple[str, ...]
    max_ltv: dict[str, float] = Field(default_factory=dict)
    prior_class: Literal["unsecured", "secured", "guaranteed"]
    guarantee_coverage: float = 0.0
    limit_rule: str
    eligibility: Rule
    eligibility_variants: dict[str, EligibilityVariant] = Field(default_factory=dict)
    target_sectors: tuple[str, ...] = ()
    policy_tags: tuple[str, ...]
    decision_sla_days: int
    online_application: bool
    renewal_only: bool = False
    enhancement_only: bool = False

    @field_validator("limit_rule")
    @classmethod
    def _parses(cls, v: str) -> str:
        parse_limit_rule(v)
        return v

    def rule_for(self, institution_id: str) -> Rule:
        for variant in self.eligibility_variants.values():
            if institution_id in variant.institutions:
                return variant.rule
        return self.eligibility


class ProductsConfig(FrozenModel):
    reference_lpr: float
    lpr_schedule: dict[str, float]
    grade_orders: dict[str, tuple[str, ...]]
    categories: dict[str, tuple[ProductType, ...]]
    approval_prior: dict[str, dict[str, float]]
    institutions: tuple[InstitutionConfig, ...]
    products_per_bank: tuple[int, int]
    templates: tuple[ProductTemplate, ...]

    @model_validator(mode="after")
    def _consistent(self) -> ProductsConfig:
        inst = {i.id for i in self.institutions}
        tmpl = {t.id for t in self.templates}
        for t in self.templates:
            unknown = set(t.offered_by) - inst
            if unknown:
                raise ValueError(f"template {t.id}: unknown institutions {sorted(unknown)}")
        for i in self.institutions:
            if set(i.core_templates) - tmpl:
                raise ValueError(f"institution {i.id}: unknown core templates")
        return self

    @cached_property
    def institution(self) -> dict[str, InstitutionConfig]:
        return {i.id: i for i in self.institutions}

    @cached_property
    def template(self) -> dict[str, ProductTemplate]:
        return {t.id: t for t in self.templates}

    @cached_property
    def category_of_type(self) -> dict[str, str]:
        return {pt: cat for cat, types in self.categories.items() for pt in types}

    @cached_property
    def _lpr_months(self) -> tuple[np.ndarray, np.ndarray]:
        items = sorted((month_index(k), v) for k, v in self.lpr_schedule.items())
        return np.array([m for m, _ in items]), np.array([v for _, v in items])

    def lpr(self, month: int | np.ndarray) -> np.ndarray:
        """One-year LPR in force in `month` (month index)."""
        months, values = self._lpr_months
        k = np.searchsorted(months, np.asarray(month), side="right") - 1
        return values[np.clip(k, 0, len(values) - 1)]


def load_products_config(path: Path | None = None) -> ProductsConfig:
    return load_yaml_model(ProductsConfig, path or configs_dir() / "products.yaml")


# --------------------------------------------------------------------------------------------------
# Product instantiation (the simulator's product database)
@dataclass(frozen=True)
class Product:
    """One concrete product of one institution (a row of the `products` table)."""

    product_id: str
    institution_id: str
    template_id: str
    product_name: str
    product_type: str
    category: str | None
    amount_min: float
    amount_max: float
    term_min_months: int
    term_max_months: int
    revolving: bool
    pricing: str
    rate_min: float           # all-in at the reference LPR
    rate_max: float
    spread_min_bp: float | None
    spread_max_bp: float | None
    fee_rate: float
    collateral_accepted: tuple[str, ...]
    collateral_required: bool
    repayment_methods: tuple[str, ...]
    max_ltv: dict[str, float]
    eligibility: Rule
    limit_rule: str
    target_sectors: tuple[str, ...]
    target_districts: tuple[str, ...]
    policy_tags: tuple[str, ...]
    decision_sla_days: int
    online_application: bool
    prior_class: str
    guarantee_coverage: float
    renewal_only: bool
    enhancement_only: bool
    effective_from: str

    def rates_at(self, lpr: np.ndarray | float, reference_lpr: float) -> tuple[np.ndarray, np.ndarray]:
        """(rate_min, rate_max) all-in at the given LPR (fixed products ignore it)."""
        shift = (np.asarray(lpr, dtype=np.float64) - reference_lpr) if self.pricing == "lpr_spread" else 0.0
        return self.rate_min + shift, self.rate_max + shift


ALL_DISTRICTS = ("330902", "330903", "330921", "330922")


def instantiate_products(cfg: ProductsConfig, rng: np.random.Generator) -> list[Product]:
    """Each bank offers its core templates plus random others (3-6 in all), parameters drawn inside the
    template ranges; every non-bank institution offers its own offerings. Deterministic for an rng."""
    out: list[Product] = []
    for inst in cfg.institutions:
        offered = [t for t in cfg.templates if inst.id in t.offered_by]
        core = [t for t in offered if t.id in inst.core_templates]
        others = [t for t in offered if t.id not in inst.core_templates]
        if inst.is_bank:
            lo, hi = cfg.products_per_bank
            k = int(rng.integers(lo, hi + 1))
            extra = max(0, k - len(core))
            pick = rng.permutation(len(others))[:extra]
            chosen = core + [others[j] for j in sorted(pick)]
            renewal = [t for t in others if t.renewal_only]
            if renewal and renewal[0] not in chosen:
                chosen.append(renewal[0])          # every bank can renew without repayment
        else:
            chosen = offered
        chosen.sort(key=lambda t: t.id)
        districts = ALL_DISTRICTS if inst.districts == "all" else tuple(inst.districts)
        for j, t in enumerate(chosen, start=1):
            width = t.rate[1] - t.rate[0]
            r_min = round(t.rate[0] + rng.uniform(0.0, 0.15) * width, 2)
            r_max = round(t.rate[1] - rng.uniform(0.1, 0.3) * width, 2)
            a_max = float(t.amount[1] * rng.choice([0.5, 0.8, 1.0]))
            a_max = max(a_max, t.amount[0] * 2)
            fee = round(float(rng.uniform(*t.fee)), 2) if t.fee[1] > 0 else 0.0
            spread = t.pricing == "lpr_spread"
            out.append(Product(
                product_id=f"{inst.id}-P{j:02d}", institution_id=inst.id, template_id=t.id,
                product_name=f"{inst.name}·{t.name}", product_type=t.product_type,
                category=cfg.category_of_type.get(t.product_type) if not (t.renewal_only or t.enhancement_only)
                else None,
                amount_min=float(t.amount[0]), amount_max=a_max, term_min_months=t.term_months[0],
                term_max_months=t.term_months[1], revolving=t.revolving, pricing=t.pricing,
                rate_min=r_min, rate_max=r_max,
                spread_min_bp=round((r_min - cfg.reference_lpr) * 100, 0) if spread else None,
                spread_max_bp=round((r_max - cfg.reference_lpr) * 100, 0) if spread else None,
                fee_rate=fee, collateral_accepted=t.collateral_accepted, collateral_required=t.collateral_required,
                repayment_methods=t.repayment_methods, max_ltv=dict(t.max_ltv), eligibility=t.rule_for(inst.id),
                limit_rule=t.limit_rule, target_sectors=t.target_sectors, target_districts=districts,
                policy_tags=t.policy_tags, decision_sla_days=t.decision_sla_days,
                online_application=t.online_application, prior_class=t.prior_class,
                guarantee_coverage=t.guarantee_coverage, renewal_only=t.renewal_only,
                enhancement_only=t.enhancement_only, effective_from=inst.active_from,
            ))
    return out


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """The §2.2 JSON form of a tree (for the products table)."""
    if isinstance(rule, RuleLeaf):
        d: dict[str, Any] = {"attr": rule.attr, "op": rule.op}
        if rule.value is not None:
            d["value"] = list(rule.value) if isinstance(rule.value, tuple | list) else rule.value
        return d
    key = "all" if rule.all_ is not None else "any"
    return {key: [rule_to_dict(c) for c in rule.children]}
