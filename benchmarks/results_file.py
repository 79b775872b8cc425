"""Write a benchmark's figures to benchmarks/results/<name>.json and print them (shared by the scripts)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SEED_TARGET_RECORDS = 200_000_000


def minutes_for_seed_target(records_per_second: float) -> float:
    """Extrapolated minutes for the seed's 200M records at this throughput."""
    return round(SEED_TARGET_RECORDS / records_per_second / 60, 1)


def write_results(name: str, result: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    for k, v in result.items():
        print(f"{k:40s} {v}")
    print(f"written to {out}")
    return out
