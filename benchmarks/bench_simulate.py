"""Benchmark the simulator: records/s and peak RSS, as ratios against baselines run in the same process.

Baselines: (1) the latent process alone over the same world (what the observation layer costs on
top), (2) writing the same number of rows as one Parquet file with pyarrow (the I/O floor). Figures go
to benchmarks/results/simulate-<label>.json; nothing is asserted.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from results_file import minutes_for_seed_target, write_results

from data.simulate.latent import LatentProcess
from data.simulate.networks import build_networks
from data.simulate.params import load_world_params
from data.simulate.run import simulate_world
from data.simulate.world import draw_enterprises, module_rng


def latent_only_seconds(enterprises: int, end: str | None) -> float:
    p = load_world_params(enterprises=enterprises, end=end)
    ent = draw_enterprises(p, module_rng(p.seed, "world"))
    net = build_networks(p, ent, module_rng(p.seed, "networks"))
    proc = LatentProcess(p, ent, net.links, module_rng(p.seed, "latent"))
    t0 = time.perf_counter()
    for t in range(p.t_first, p.t_end + 1):
        proc.step(t)
    return time.perf_counter() - t0


def io_floor_seconds(rows: int, tmp: Path) -> float:
    """Time to write `rows` rows of 12 mixed columns with pyarrow (chunks of 1M)."""
    rng = np.random.default_rng(0)
    chunk = min(rows, 1_000_000)
    frame = pd.DataFrame({f"f{i}": rng.random(chunk) for i in range(8)}
                         | {f"s{i}": np.array([f"{v:016x}" for v in rng.integers(0, 2**62, chunk)], dtype=object)
                            for i in range(4)})
    t0 = time.perf_counter()
    written = 0
    k = 0
    while written < rows:
        n = min(chunk, rows - written)
        frame.iloc[:n].to_parquet(tmp / f"floor-{k}.parquet", index=False)
        written += n
        k += 1
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--enterprises", type=int, default=5000)
    ap.add_argument("--end", default=None)
    ap.add_argument("--label", default="default")
    ap.add_argument("--no-oracle", action="store_true")
    args = ap.parse_args()
    params = load_world_params(enterprises=args.enterprises, end=args.end)
    with tempfile.TemporaryDirectory(prefix="zx-bench-") as d:
        ws = Path(d)
        summary = simulate_world(params, ws, monte_carlo=not args.no_oracle)
        disk = sum(p.stat().st_size for p in (ws / "raw").rglob("*") if p.is_file())
        latent = latent_only_seconds(args.enterprises, args.end)
        floor = io_floor_seconds(summary.total_rows, ws)
    rss = psutil.Process().memory_info().rss / 2**20
    rps = summary.records_per_second
    result = {
        "label": args.label, "enterprises": args.enterprises, "months": summary.months,
        "records": summary.total_rows, "files": summary.files, "raw_bytes": disk,
        "seconds": round(summary.seconds, 2), "records_per_second": round(rps),
        "peak_rss_mb": round(summary.peak_rss_mb, 1), "rss_after_mb": round(rss, 1),
        "baseline_latent_only_seconds": round(latent, 2), "ratio_vs_latent_only": round(summary.seconds / latent, 1),
        "baseline_parquet_floor_seconds": round(floor, 2), "ratio_vs_parquet_floor": round(summary.seconds / floor, 2),
        "extrapolated_minutes_for_200M_records": minutes_for_seed_target(rps),
        "oracle": not args.no_oracle, "python": platform.python_version(), "cpus": psutil.cpu_count(),
    }
    write_results(f"simulate-{args.label}", result)


if __name__ == "__main__":
    main()
