"""Damaged deliveries: every good record is kept, every bad one named by file and line, nothing crashes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data.warehouse.readers import read_delivery


def test_wrongly_encoded_line_is_named(tmp_path: Path) -> None:
    p = tmp_path / "2020-01.csv"
    good = "uscc,ent_name\n91330902MA28K3QJ6R,舟山甲公司\n".encode()
    bad = "91330903MA12DD2777,舟山乙公司\n".encode("gbk")
    p.write_bytes(good + bad + "91330921MAY1JJC1XU,舟山丙公司\n".encode())
    r = read_delivery(p, "csv")
    assert r.fatal is None
    assert r.frame["uscc"].tolist() == ["91330902MA28K3QJ6R", "91330921MAY1JJC1XU"]
    assert r.frame["_line"].tolist() == [2, 4]
    assert len(r.unreadable) == 1
    u = r.unreadable[0]
    assert u.line == 3 and u.rule == "encoding" and "2020-01.csv line 3" in u.detail


def test_truncated_csv_keeps_the_complete_records(tmp_path: Path) -> None:
    p = tmp_path / "2020-02.csv"
    p.write_text("uscc,a,b\n91330902MA28K3QJ6R,1,2\n91330903MA12DD2777,3", encoding="utf-8")
    r = read_delivery(p, "csv")
    assert r.frame["uscc"].tolist() == ["91330902MA28K3QJ6R"]
    assert [(u.line, u.rule) for u in r.unreadable] == [(3, "truncated_record")]
    assert "ends mid-record" in r.unreadable[0].detail


def test_broken_json_line_is_quarantined_not_fatal(tmp_path: Path) -> None:
    p = tmp_path / "2020-03.jsonl"
    rows = [json.dumps({"uscc": "91330902MA28K3QJ6R", "n": 1}), '{"uscc": "9133090', json.dumps({"uscc": "x", "n": 2})]
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    r = read_delivery(p, "jsonl")
    assert r.frame["n"].tolist() == ["1", "2"]
    assert [(u.line, u.rule) for u in r.unreadable] == [(2, "malformed_record")]


def test_truncated_parquet_is_a_clear_fatal_error(tmp_path: Path) -> None:
    p = tmp_path / "2020-04.parquet"
    pq.write_table(pa.Table.from_pandas(pd.DataFrame({"uscc": ["91330902MA28K3QJ6R"] * 100})), p)
    p.write_bytes(p.read_bytes()[:-40])
    r = read_delivery(p, "parquet")
    assert r.fatal is not None and "2020-04.parquet" in r.fatal and "not a readable Parquet file" in r.fatal
