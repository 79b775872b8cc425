"""The catalog: 35 sub-items, 290 unique fields, consistent with shared/domain/catalog_fields.csv."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from kernel.catalog import EXPECTED_FIELDS, EXPECTED_SUB_ITEMS, Catalog, load_catalog
from kernel.config import load_yaml_model
from kernel.data_dictionary import render_markdown
from kernel.errors import ConfigError

SHARED_CSV = Path(__file__).resolve().parents[3] / "shared" / "domain" / "catalog_fields.csv"


def test_counts() -> None:
    cat = load_catalog()
    assert len(cat.sub_items) == EXPECTED_SUB_ITEMS
    assert cat.field_count == EXPECTED_FIELDS
    assert len({(s.code, f.name) for s in cat.sub_items for f in s.fields}) == EXPECTED_FIELDS
    assert len(cat.libraries) == 40
    assert len(cat.departments) == 19


@pytest.mark.skipif(not SHARED_CSV.is_file(), reason="shared/domain/catalog_fields.csv not beside the repo")
def test_matches_catalog_fields_csv() -> None:
    cat = load_catalog()
    rows = list(csv.DictReader(SHARED_CSV.open(encoding="utf-8")))
    assert len(rows) == EXPECTED_FIELDS
    for r in rows:
        spec = cat.sub_item(r["sub_item"])
        assert spec.id == r["sub_item_id"] and spec.department == r["department"]
        f = spec.fields[int(r["field_no"]) - 1]
        assert f.name == r["field"]
        dtype = r["dtype"]
        if dtype.startswith("category"):
            assert f.dtype == "category"
            allowed = [a.strip() for a in dtype[dtype.index("{") + 1:dtype.rindex("}")].split(",")]
            assert list(f.allowed or ()) == allowed
        elif dtype.startswith("string("):
            assert f.dtype == "string" and f.length == int(dtype[7:-1])
        else:
            assert f.dtype == dtype
        assert f.risk_direction == r["risk_direction"].split(" ")[0]
        assert f.unit == r["unit"]


def test_every_sub_item_has_a_library_and_key_fields() -> None:
    cat = load_catalog()
    for s in cat.sub_items:
        assert cat.libraries_of(s.code), s.code
        assert "uscc" in s.field_names
        assert s.lag_days[0] <= s.lag_days[1]


def test_invalid_catalog_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "catalog.yaml"
    text = (Path(__file__).resolve().parents[2] / "configs" / "catalog.yaml").read_text(encoding="utf-8")
    bad.write_text(text.replace("  grain: monthly_series\n", "  grain: fortnightly\n", 1), encoding="utf-8")
    with pytest.raises(ConfigError, match="grain"):
        load_yaml_model(Catalog, bad)


def test_data_dictionary_lists_every_field() -> None:
    cat = load_catalog()
    md = render_markdown(cat)
    for s in cat.sub_items:
        assert f"`{s.code}`" in md
        for f in s.fields:
            assert f"`{f.name}`" in md
