"""Dirty-record injection: each defect at its configured rate, logged against the delivered row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.simulate.dirty import DirtyInjector
from data.simulate.emit import Batch, Emitter, MemorySink
from kernel.catalog import load_catalog
from kernel.uscc import generate_usccs, is_valid_uscc, normalise_uscc


def _tax_frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, Batch]:
    rng = np.random.default_rng(seed)
    cat = load_catalog()
    sink = MemorySink()
    em = Emitter(cat, sink)
    usccs = generate_usccs(rng, np.array(["330902"] * n, dtype=object), np.zeros(n, dtype=bool))
    sales = np.round(rng.lognormal(4, 1, n), 2)
    cols = {"uscc": usccs, "period_month": np.full(n, np.datetime64("2019-05-01")),
            "vat_taxable_sales": sales, "invoices_issued_amount": sales, "invoices_received_amount": sales * 0.8,
            "red_letter_invoice_ratio": np.full(n, 0.01), "void_invoice_ratio": np.full(n, 0.004),
            "top5_customer_share": np.full(n, 0.6), "vat_paid": sales * 0.02, "total_tax_paid": sales * 0.03,
            "late_fee_amount": np.zeros(n), "declared_on_time": np.ones(n, dtype=bool),
            "zero_declaration": np.zeros(n, dtype=bool)}
    em.emit("tax_monthly", cols, ent=np.arange(n), available=np.full(n, np.datetime64("2019-06-20")))
    em.flush_all()
    b = sink.batches[0]
    f = b.frame.assign(_available_date=b.available, _source_library="L10", __ent=b.ent, __cause=b.cause)
    return f, b


def test_rates_and_log_positions() -> None:
    cat = load_catalog()
    f, b = _tax_frame(40_000)
    inj = DirtyInjector(cat, seed=5)
    inj.p = inj.p.model_copy(update={"late_month": inj.p.late_month.model_copy(update={"rate": 0.0})})
    out, log = inj.spoil(f, b, cat.library("L10"))
    by = log.groupby("defect").size()
    # D2 (0.5% of rows), D5 (0.5% of each of 6 money values), D7 (0.1% of values), D9 none (no categories)
    assert 0.003 < by["D2"] / len(f) < 0.007
    assert 0.003 * 6 < by["D5"] / len(f) < 0.007 * 6
    assert 0.0004 * 6 < by["D7"] / len(f) < 0.0016 * 6
    # every logged row is a delivered row whose value differs from the original
    for r in log[log["defect"] == "D5"].head(50).itertuples():
        assert out.at[r.row_number, r.field] == round(float(r.original) * 10_000, 2)
    for r in log[log["defect"] == "D2"].head(50).itertuples():
        delivered = out.at[r.row_number, "uscc"]
        assert delivered != r.original and is_valid_uscc(normalise_uscc(delivered))
    # revisions are held back for a later month, not lost
    assert inj.pending_rows() > 0.02 * len(f)


def test_late_month_holds_the_whole_batch() -> None:
    cat = load_catalog()
    f, b = _tax_frame(500, seed=1)
    inj = DirtyInjector(cat, seed=5)
    inj.p = inj.p.model_copy(update={"late_month": inj.p.late_month.model_copy(update={"rate": 1.0})})
    out, _ = inj.spoil(f, b, cat.library("L10"))
    assert len(out) == 0
    later = [k for k in inj.held_keys()]
    assert later and all(m > b.month for _, m in later)
    n_held = sum(len(p) for p in inj._held[later[0]])
    assert n_held >= 500


def test_check_character_typos_fail_validation() -> None:
    cat = load_catalog()
    rng = np.random.default_rng(2)
    n = 20_000
    usccs = generate_usccs(rng, np.array(["330903"] * n, dtype=object), np.zeros(n, dtype=bool))
    f = pd.DataFrame({"uscc": usccs, "case_id": [f"E_{i:016x}" for i in range(n)]})
    inj = DirtyInjector(cat, seed=9)
    spec = cat.sub_item("enforcement_cases")
    logs: list[pd.DataFrame] = []
    f["__pos"] = np.arange(n)
    inj._uscc(f, spec, logs)
    log = pd.concat(logs)
    d1 = log[log["defect"] == "D1"]
    assert 0.0015 < len(d1) / n < 0.0045
    assert not any(is_valid_uscc(normalise_uscc(c)) for c in f.loc[d1["__pos"], "uscc"])
