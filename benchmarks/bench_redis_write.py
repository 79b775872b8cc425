"""Full-population write into Feast's Redis layout: our RESP-framed writer vs a redis-py pipeline.

Both write the same rows (every view's latest values per firm, as `bulk_materialize` reads them) in the
same layout, under a project name of their own on the Redis at 127.0.0.1:6379; the hashes they leave are
compared field by field on a sample of firms, then every key written is deleted. The read of the latest
rows (DuckDB) is timed apart: it is shared by both and by `bulk_materialize`.

    python benchmarks/bench_redis_write.py [--workspace W]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import duckdb
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from redis_cpu import redis_server_cpu
from results_file import write_results

from data.feature_store.bulk import JOIN_KEY, encode_column, entity_keys, latest_rows, write_redis
from data.feature_store.store import open_store
from data.feature_store.training_set import view_sources
from kernel.profile import load_profile
from kernel.workspace import workspace_dir


def redis_py_pipeline(client, project: str, view: str, rows, features, batch: int = 2000) -> int:
    """The baseline: the same layout through redis-py's pipeline (HSET with a mapping per firm)."""
    from feast.infra.online_stores.helpers import _mmh3
    from google.protobuf.timestamp_pb2 import Timestamp

    keys = [k + project.encode("utf-8") for k in entity_keys(rows.column(JOIN_KEY).to_pylist())]
    fkeys = [_mmh3(f"{view}:{f}") for f in features]
    cols = [encode_column(rows.column(f)) for f in features]
    stamps = []
    for v in rows.column("event_timestamp").to_pylist():
        ts = Timestamp()
        ts.FromDatetime(v)
        stamps.append(ts.SerializeToString())
    n = 0
    for start in range(0, len(keys), batch):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + batch, len(keys))):
                mapping = {f"_ts:{view}": stamps[i]}
                mapping.update({fk: col[i] for fk, col in zip(fkeys, cols, strict=True)})
                pipe.hset(keys[i], mapping=mapping)
                n += len(fkeys)
            pipe.execute()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workspace", type=Path, default=None)
    ap.add_argument("--label", default="default")
    args = ap.parse_args()
    ws = args.workspace or workspace_dir()
    store = open_store(ws, load_profile("local"))
    views = view_sources(store, [fv.name for fv in store.list_feature_views()])
    con = duckdb.connect()
    t = time.perf_counter()
    rows = [(v, latest_rows(v, None, con)) for v in views]
    read_s = time.perf_counter() - t
    client = redis.Redis(host="127.0.0.1", port=6379)
    res: dict[str, object] = {"label": args.label, "views": len(views), "firms": rows[0][1].num_rows,
                              "latest_rows_seconds": round(read_s, 1)}
    try:
        for name, project, fn in (("redis_py_pipeline", "zxbenchbase", redis_py_pipeline),
                                  ("resp_framed", "zxbenchresp", write_redis)):
            cpu0 = redis_server_cpu(client)
            t = time.perf_counter()
            n = sum(fn(client, project, v.name, table, v.features) for v, table in rows)
            s = time.perf_counter() - t
            user, system = (b - a for a, b in zip(cpu0, redis_server_cpu(client), strict=True))
            res |= {f"{name}_seconds": round(s, 1), f"{name}_values_per_s": round(n / s), "values": n,
                    f"{name}_server_cpu_user_sys_s": [round(user, 1), round(system, 1)]}
            print(f"{name}: {n:,} values in {s:.1f} s (Redis server CPU: user {user:.1f} s, system {system:.1f} s)",
                  flush=True)
        res["speedup_vs_redis_py_pipeline"] = round(res["redis_py_pipeline_seconds"] / res["resp_framed_seconds"], 2)
        sample = random.Random(7).sample(entity_keys(rows[0][1].column(JOIN_KEY).to_pylist()), 50)
        res["sample_hashes_equal"] = all(client.hgetall(k + b"zxbenchbase") == client.hgetall(k + b"zxbenchresp")
                                         for k in sample)
    finally:
        for project in (b"zxbenchbase", b"zxbenchresp"):
            for k in client.scan_iter(match=b"*" + project, count=5000):
                client.delete(k)
    write_results(f"redis-write-{args.label}", res)


if __name__ == "__main__":
    main()
