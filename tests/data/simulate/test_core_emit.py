"""The emitter refuses rows that break the catalog and delivers rows in their availability month."""

from __future__ import annotations

import numpy as np
import pytest

from data.simulate.calendar import month_index
from data.simulate.emit import Emitter, MemorySink
from kernel.catalog import load_catalog


def _columns(n: int) -> dict[str, object]:
    return {"uscc": np.array(["91330902MA28K3QJ6R"] * n, dtype=object),
            "decision_id": np.array([f"A_{i:016x}" for i in range(n)], dtype=object),
            "decision_date": np.array(["2019-03-05"] * n, dtype="datetime64[D]"),
            "authority_category": np.array(["tax"] * n, dtype=object),
            "penalty_type": np.array(["fine"] * n, dtype=object), "fine_amount": np.full(n, 1.5),
            "severity": np.array(["general"] * n, dtype=object),
            "publicity_end_date": np.array(["2019-06-05"] * n, dtype="datetime64[D]"),
            "credit_repair_date": np.array(["NaT"] * n, dtype="datetime64[D]")}


def test_rows_wait_for_their_availability_month() -> None:
    sink = MemorySink()
    em = Emitter(load_catalog(), sink)
    avail = np.array(["2019-03-10", "2019-04-02"], dtype="datetime64[D]")
    em.emit("admin_penalties", _columns(2), ent=np.array([0, 1]), available=avail)
    em.flush_month(month_index("2019-03"))
    assert [b.month for b in sink.batches] == [month_index("2019-03")] and len(sink.batches[0].frame) == 1
    em.flush_month(month_index("2019-04"))
    assert len(sink.frame("admin_penalties")) == 2


def test_missing_or_extra_columns_are_refused() -> None:
    em = Emitter(load_catalog(), MemorySink())
    cols = _columns(1)
    cols.pop("severity")
    with pytest.raises(ValueError, match="missing \\['severity'\\]"):
        em.emit("admin_penalties", cols, ent=np.array([0]), available=np.array(["2019-03-10"], dtype="datetime64[D]"))
    cols = _columns(1) | {"colour": np.array(["red"], dtype=object)}
    with pytest.raises(ValueError, match="unexpected \\['colour'\\]"):
        em.emit("admin_penalties", cols, ent=np.array([0]), available=np.array(["2019-03-10"], dtype="datetime64[D]"))


def test_values_outside_the_allowed_set_are_refused() -> None:
    em = Emitter(load_catalog(), MemorySink())
    cols = _columns(1) | {"penalty_type": np.array(["flogging"], dtype=object)}
    with pytest.raises(ValueError, match="penalty_type"):
        em.emit("admin_penalties", cols, ent=np.array([0]), available=np.array(["2019-03-10"], dtype="datetime64[D]"))


def test_every_row_needs_an_availability_date() -> None:
    em = Emitter(load_catalog(), MemorySink())
    with pytest.raises(ValueError, match="availability"):
        em.emit("admin_penalties", _columns(1), ent=np.array([0]), available=np.array(["NaT"], dtype="datetime64[D]"))
