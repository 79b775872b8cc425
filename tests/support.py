"""Helpers shared by tests (on sys.path through pytest's `pythonpath = tests`)."""

from __future__ import annotations

from pathlib import Path

SMALL_WORLD = {"enterprises": 300, "start": "2018-01", "end": "2018-12", "seed": 4242,
               "burn_in_years": 2, "event_history_years": 1, "series_history_years": 1}


def simulate_small_world(ws: Path, **overrides: object):
    """Simulate the small test world (all modules, dirty records, oracle) into `ws`."""
    from data.simulate.params import load_world_params
    from data.simulate.run import simulate_world

    return simulate_world(load_world_params(**(SMALL_WORLD | overrides)), ws)


def tree_hashes(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under root (relative path -> hash)."""
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip}
