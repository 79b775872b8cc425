"""Benchmark ingestion: records/s and peak RSS, with a plain DuckDB scan of the same files as baseline.

The world is simulated in a child process (so this process's peak RSS is ingestion's own), then
ingested here. The baseline reads every delivery once with DuckDB and counts rows: the floor for
any validator that has to look at every record. Figures go to benchmarks/results/ingest-<label>.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from results_file import minutes_for_seed_target, write_results

from data.warehouse.ingest import ingest_all, list_deliveries
from kernel.catalog import load_catalog
from kernel.resources import peak_rss_mb


def plain_scan_seconds(ws: Path) -> tuple[float, int]:
    con = duckdb.connect()
    rows = 0
    t0 = time.perf_counter()
    for d in list_deliveries(ws / "raw", load_catalog()):
        p = str(d.path)
        rel = {"csv": f"read_csv('{p}', all_varchar=true)", "jsonl": f"read_json('{p}', format='newline_delimited')",
               "parquet": f"read_parquet('{p}')"}[d.fmt]
        rows += con.sql(f"select count(*) from {rel}").fetchall()[0][0]
    return time.perf_counter() - t0, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--enterprises", type=int, default=5000)
    ap.add_argument("--end", default=None)
    ap.add_argument("--label", default="default")
    ap.add_argument("--workspace", type=Path, default=None, help="ingest an existing world instead of simulating")
    args = ap.parse_args()
    tmp = None
    ws = args.workspace
    if ws is None:
        tmp = tempfile.TemporaryDirectory(prefix="zx-bench-ingest-")
        ws = Path(tmp.name)
        cmd = [sys.executable, "-m", "zhouxin.cli", "data", "simulate", "--enterprises", str(args.enterprises),
               "--no-oracle", "--workspace", str(ws)] + (["--end", args.end] if args.end else [])
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=os.environ)
    t0 = time.perf_counter()
    summary = ingest_all(ws)
    seconds = time.perf_counter() - t0
    peak_mb = peak_rss_mb()
    scan, scanned = plain_scan_seconds(ws)
    result = {
        "label": args.label, "enterprises": args.enterprises, "batches": summary.batches,
        "records_in": summary.records_in, "accepted": summary.accepted, "quarantined": summary.quarantined,
        "duplicates": summary.duplicates, "seconds": round(seconds, 2),
        "records_per_second": round(summary.records_in / seconds), "peak_rss_mb": round(peak_mb, 1),
        "baseline_plain_duckdb_scan_seconds": round(scan, 2), "baseline_rows": scanned,
        "ratio_vs_plain_scan": round(seconds / scan, 1),
        "extrapolated_minutes_for_200M_records": minutes_for_seed_target(summary.records_in / seconds),
    }
    write_results(f"ingest-{args.label}", result)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
