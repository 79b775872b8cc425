"""The Redis server's own CPU, read before and after a write (shared by the benchmarks that write Redis)."""

from __future__ import annotations


def redis_server_cpu(client) -> tuple[float, float]:
    """User and system CPU seconds the Redis server has used so far: its share of a write, apart from ours."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]), float(info["used_cpu_sys"])
