"""Benchmark the feature store on a built workspace (run `make run` first, or pass --workspace).

1. Full-population materialization of every view: Feast's `materialize` vs the bulk path, same data,
   both into SQLite (ratio; goal >= 10x), and the bulk path into Redis. Beside them, a reference for
   each store: SQLite copying the same tables table to table with no Python in the loop (insert ...
   select in key order; the bulk path can go below it, since reading the source back costs SQLite
   too), and the CPU the Redis server spends absorbing the bulk write.
2. Online read of one firm's full feature vector (the service), p50/p99 over --calls calls, SQLite and
   Redis: Feast's SDK call and the platform's direct reader of the same tables (ratio, same firms).
3. Training set: point-in-time rows x every feature of the `credit_rating` service, our set-based join
   on --rows entity rows (goal: 1M rows in <= 120 s); Feast's get_historical_features on a --feast-rows
   subset against ours on the same subset (ratio). Last, so its memory does not crowd the writers.
Figures go to benchmarks/results/features-<label>.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from redis_cpu import redis_server_cpu
from results_file import write_results

from data.feature_store.bulk import bulk_materialize, redis_client
from data.feature_store.online_read import DirectOnlineReader
from data.feature_store.pipeline import definitions, sources_dir
from data.feature_store.store import apply_definitions, feast_materialize, historical_features, open_store
from data.feature_store.training_set import point_in_time_join, view_sources
from kernel.profile import FeastProfile, Profile, load_profile
from kernel.resources import peak_rss_mb
from kernel.workspace import workspace_dir


def entity_rows(ws: Path, n: int, seed: int = 11) -> pd.DataFrame:
    """n (firm, date) rows: registered firms at month ends and mid-months, sampled with a fixed seed."""
    reg = pd.read_parquet(sources_dir(ws) / "ent_registration.parquet", columns=["uscc", "created_ts"])
    firms = reg.groupby("uscc")["created_ts"].min()
    mart = sources_dir(ws) / "mart_indicators.parquet"
    if mart.exists():
        grid = pd.read_parquet(mart, columns=["uscc", "event_timestamp"])
    else:
        months = pd.date_range("2018-01-31", periods=36, freq="ME")
        grid = pd.DataFrame([(u, m) for u in firms.index for m in months], columns=["uscc", "event_timestamp"])
    mid = grid.assign(event_timestamp=grid["event_timestamp"] - pd.Timedelta(days=15))
    both = pd.concat([grid, mid], ignore_index=True)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(both), size=n, replace=n > len(both))
    return both.iloc[np.sort(idx)].reset_index(drop=True)


def percentiles(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples) * 1000
    return round(float(np.percentile(a, 50)), 3), round(float(np.percentile(a, 99)), 3)


def latency(read: Callable[[str], object], firms: list[str], calls: int) -> tuple[float, float]:
    """p50/p99 ms of `read(uscc)` over `calls` firms drawn with a fixed seed, after 20 warm-up reads."""
    rng = np.random.default_rng(3)
    for u in firms[:20]:                                      # warm-up (first calls open connections)
        read(u)
    times = []
    for u in rng.choice(firms, size=calls):
        t = time.perf_counter()
        read(str(u))
        times.append(time.perf_counter() - t)
    return percentiles(times)


def online_latencies(store, firms: list[str], calls: int, kind: str) -> dict[str, object]:
    """One firm's vector for the `credit_rating` (all features) and `recommender` services, read through
    Feast's SDK and through the platform's direct reader (what the service uses), same firms."""
    out: dict[str, object] = {}
    direct = DirectOnlineReader(store)
    for service, suffix in (("credit_rating", ""), ("recommender", "_recommender")):
        svc = store.get_feature_service(service)
        refs = [f"{v.name}:{f}" for v in view_sources(store, service) for f in v.features]
        sdk = latency(lambda u, svc=svc: store.get_online_features(
            features=svc, entity_rows=[{"uscc": u}], full_feature_names=True).to_dict(), firms, calls)
        ours = latency(lambda u, refs=refs: direct.read([u], refs), firms, calls)
        out[f"online_{kind}{suffix}_p50_p99_ms"] = sdk
        out[f"online_{kind}{suffix}_direct_p50_p99_ms"] = ours
        out[f"online_{kind}{suffix}_direct_p50_speedup"] = round(sdk[0] / ours[0], 1)
    return out


def sqlite_floor_seconds(online_db: Path, scratch: Path) -> float:
    """SQLite building the tables just written with no Python in the loop: every online table is copied
    row by row (`insert ... select ... order by` the primary key, into an empty table with the same DDL
    and indexes) from the materialized store into a scratch file. A reference, not a bound: the copy also
    pays for reading the source back through its primary-key index, which a writer from memory does not."""
    import sqlite3

    con = sqlite3.connect(scratch, isolation_level=None)
    con.execute("pragma synchronous = off")
    con.execute("attach ? as src", (str(online_db),))
    con.execute(f"pragma main.page_size = {int(con.execute('pragma src.page_size').fetchone()[0])}")  # same pages
    tables = con.execute("select name, sql from src.sqlite_master where type = 'table'").fetchall()
    indexes = con.execute("select tbl_name, sql from src.sqlite_master where type = 'index' "
                          "and sql is not null").fetchall()
    t = time.perf_counter()
    con.execute("begin")
    for name, sql in tables:
        con.execute(sql)                          # CREATE TABLE "<name>" ... lands in main (the scratch file)
        for _, index_sql in (i for i in indexes if i[0] == name):
            con.execute(index_sql)                # Feast's second index, kept up during the insert as ours is
        con.execute(f'insert into main."{name}" (entity_key, feature_name, value, value_text, event_ts, '
                    f'created_ts) select entity_key, feature_name, value, value_text, event_ts, created_ts '
                    f'from src."{name}" order by entity_key, feature_name')
    con.execute("commit")
    seconds = time.perf_counter() - t
    con.close()
    return seconds


def settled() -> None:
    """Flush dirty pages before a timed write: the previous step's gigabytes would otherwise be written
    back by the kernel during the next measurement, on the same two cores."""
    os.sync()


def copy_store(ws: Path, into: Path, profile: Profile):
    shutil.copytree(sources_dir(ws), into / "features" / "sources")
    store = open_store(into, profile)
    apply_definitions(store, definitions(into))
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workspace", type=Path, default=None)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--feast-rows", type=int, default=20_000)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--label", default="default")
    ap.add_argument("--skip-feast-materialize", action="store_true")
    args = ap.parse_args()
    ws = args.workspace or workspace_dir()
    res: dict[str, object] = {"label": args.label, "workspace": str(ws)}
    store = open_store(ws, load_profile("local"))
    views = view_sources(store, "credit_rating")
    res["service_features"] = sum(len(v.features) for v in views)
    res["recommender_features"] = sum(len(v.features) for v in view_sources(store, "recommender"))

    # the writers first: the training set's ~13 GB would otherwise still hold the memory the page cache
    # needs to absorb a 4 GB SQLite write (the kernel throttles writers once dirty pages pass their share)
    all_views = [v.name for v in store.list_feature_views()]
    with tempfile.TemporaryDirectory(prefix="zx-bench-feat-") as tmp:
        local = load_profile("local")
        s_bulk = copy_store(ws, Path(tmp) / "bulk", local)
        settled()
        t = time.perf_counter()
        out = bulk_materialize(s_bulk, view_sources(s_bulk, all_views))
        bulk = time.perf_counter() - t
        values = sum(r.values for r in out)
        res.update({"materialize_values": values, "bulk_sqlite_seconds": round(bulk, 1),
                    "bulk_sqlite_values_per_s": round(values / bulk)})
        settled()
        floor = sqlite_floor_seconds(Path(s_bulk.config.online_store.path), Path(tmp) / "floor.db")
        (Path(tmp) / "floor.db").unlink()
        res["sqlite_floor_seconds"] = round(floor, 1)
        if not args.skip_feast_materialize:
            s_feast = copy_store(ws, Path(tmp) / "feast", local)
            settled()
            t = time.perf_counter()
            feast_materialize(s_feast, datetime(1900, 1, 1), datetime(2100, 1, 1))
            fm = time.perf_counter() - t
            res.update({"feast_sqlite_seconds": round(fm, 1), "feast_sqlite_values_per_s": round(values / fm),
                        "materialize_speedup_vs_feast": round(fm / bulk, 1),
                        "sqlite_speedup_ceiling": round(fm / floor, 1)})
        firms = sorted(pd.read_parquet(sources_dir(ws) / "ent_registration.parquet", columns=["uscc"])["uscc"].unique())
        res.update(online_latencies(s_bulk, firms, args.calls, "sqlite"))

        prod = load_profile("production")
        profile = prod.model_copy(update={"feast": FeastProfile(
            **(prod.feast.model_dump() | {"project": f"zhouxin_bench_{os.getpid()}"}))})
        s_redis = copy_store(ws, Path(tmp) / "redis", profile)
        server = redis_client(s_redis.config.online_store.connection_string)
        try:
            settled()
            cpu0 = sum(redis_server_cpu(server))
            t = time.perf_counter()
            bulk_materialize(s_redis, view_sources(s_redis, all_views))
            red = time.perf_counter() - t
            res.update({"bulk_redis_seconds": round(red, 1), "bulk_redis_values_per_s": round(values / red),
                        "redis_server_cpu_seconds": round(sum(redis_server_cpu(server)) - cpu0, 1)})
            res.update(online_latencies(s_redis, firms, args.calls, "redis"))
        finally:
            s_redis.teardown()
            server.close()
        if not args.skip_feast_materialize:
            profile2 = prod.model_copy(update={"feast": FeastProfile(
                **(prod.feast.model_dump() | {"project": f"zhouxin_bench_feast_{os.getpid()}"}))})
            s_redis2 = copy_store(ws, Path(tmp) / "redis-feast", profile2)
            try:
                settled()
                t = time.perf_counter()
                feast_materialize(s_redis2, datetime(1900, 1, 1), datetime(2100, 1, 1))
                fr = time.perf_counter() - t
                res.update({"feast_redis_seconds": round(fr, 1),
                            "materialize_redis_speedup_vs_feast": round(fr / red, 1),
                            "redis_speedup_ceiling": round(fr / res["redis_server_cpu_seconds"], 1)})
            finally:
                s_redis2.teardown()
    ent = entity_rows(ws, args.rows)
    t = time.perf_counter()
    df = point_in_time_join(ent, views, as_arrow=True)
    res["training_rows"] = df.num_rows
    res["training_columns"] = df.num_columns
    res["training_gb_in_memory"] = round(df.nbytes / 1e9, 2)
    res["training_seconds"] = round(time.perf_counter() - t, 1)
    res["training_peak_rss_mb"] = round(peak_rss_mb())
    del df
    sub = entity_rows(ws, args.feast_rows, seed=12)
    t = time.perf_counter()
    point_in_time_join(sub, views, as_arrow=True)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    historical_features(store, sub, "credit_rating")
    feast = time.perf_counter() - t
    res.update({"subset_rows": len(sub), "subset_ours_seconds": round(ours, 2),
                "subset_feast_seconds": round(feast, 2), "training_speedup_vs_feast": round(feast / ours, 1)})

    res["peak_rss_mb"] = round(peak_rss_mb())
    write_results(f"features-{args.label}", res)


if __name__ == "__main__":
    main()
