"""Benchmark the bank-facing service: /v1/score for one firm, end to end over HTTP on loopback.

1. In-process phase costs of one score call (auth, consent, online read, model, audit), with the Feast
   SDK read as the baseline of the direct online read (ratio, same process).
2. Load from separate client processes (sync httpx, keep-alive) against `bentoml serve` with 1 and 2
   workers: p50 / p99 / max latency and req/s; BentoML's own /livez at the same concurrency is the floor
   the answer is compared with. The CPU each request cost the service and the clients is measured
   beside them, and with it what the service would serve with a core per worker.
3. A bounded soak (default 10 minutes, 2 workers): errors and the service's resident memory over time.

The service runs on a copy of the workspace's serving state (its own operational database; features
and the MLflow registry are linked, never changed). Figures go to benchmarks/results/serving-<label>.json.
Client and server share this machine's cores: the figures are what one box gives, not a server alone.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil
from results_file import write_results

from kernel.profile import load_profile
from kernel.workspace import workspace_dir

BIN = Path(sys.executable).parent


def bench_workspace(ws: Path) -> Path:
    """A sibling workspace sharing features/ and mlflow/ but with a fresh serving/ (operational DB)."""
    bw = ws.parent / f"{ws.name}-bench-serving"
    shutil.rmtree(bw, ignore_errors=True)
    bw.mkdir()
    for part in ("features", "mlflow", "warehouse", "world.json"):
        if (ws / part).exists():
            (bw / part).symlink_to(ws / part)
    return bw


def prepare(bw: Path, n_firms: int) -> tuple[str, list[str]]:
    from serving.config import load_serving_config
    from serving.consent import grant_consent
    from serving.keys import issue_key
    from serving.operational import open_operational

    engine = open_operational(load_profile().operational.resolved(bw))
    reg = pd.read_parquet(bw / "features" / "sources" / "mart_indicators.parquet", columns=["uscc", "event_timestamp"])
    last = reg[reg["event_timestamp"] == reg["event_timestamp"].max()]["uscc"].unique()
    firms = sorted(np.random.default_rng(11).choice(sorted(last), min(n_firms, len(last)), replace=False))
    key = issue_key(engine, "LSB1")
    for u in firms:
        grant_consent(engine, u, "LSB1", "loan_application", ["basic_profile"], 30, load_serving_config().purposes)
    engine.dispose()
    return key, list(firms)


def in_process(bw: Path, key: str, firms: list[str], n: int = 300) -> dict[str, float]:
    """Milliseconds per call of each phase, in this process (no HTTP)."""
    from serving import audit
    from serving.config import load_serving_config
    from serving.consent import live_consent
    from serving.gateway import Gateway, plain
    from serving.keys import authenticate

    gw = Gateway(bw, load_profile(), load_serving_config(), watch=False)
    fam = gw.families["credit_rating"]
    caller = authenticate(gw.engine, key)

    def per_call(fn, reps: int = n) -> float:
        fn(0)
        t = time.perf_counter()
        for i in range(reps):
            fn(i)
        return round((time.perf_counter() - t) / reps * 1000, 3)

    vec = [{k: plain(v) for k, v in gw.features.read([firms[0]], fam.feature_refs)[0].items()}]
    out = {
        "features_read": len(fam.feature_refs),
        "auth_ms": per_call(lambda i: authenticate(gw.engine, key)),
        "consent_ms": per_call(lambda i: live_consent(gw.engine, "LSB1", firms[i % len(firms)], "loan_application",
                                                      "basic_profile")),
        "read_direct_ms": per_call(lambda i: gw.features.read([firms[i % len(firms)]], fam.feature_refs)),
        "read_feast_sdk_ms": per_call(lambda i: gw.features.read_with_feast([firms[i % len(firms)]], fam.feature_refs),
                                      reps=max(30, n // 5)),
        "model_answer_ms": per_call(lambda i: fam.answer(vec, gw.data_as_of)),
        "audit_append_ms": per_call(lambda i: audit.append(gw.engine, audit.Entry(
            request_id="bench", route="bench", status=200, features=audit.canonical({"values": vec[0]}),
            answer="{}"))),
        "score_call_ms": per_call(lambda i: gw.score(caller, [firms[i % len(firms)]], "loan_application", "score",
                                                     "bench")),
    }
    out["read_speedup_direct_vs_feast_sdk"] = round(out["read_feast_sdk_ms"] / out["read_direct_ms"], 2)
    gw.close()
    return out


def _client(url: str, path: str, key: str, firms: list[str], seconds: float, seed: int, ready, go,
            queue) -> None:
    rng = np.random.default_rng(seed)
    lat, errors, codes = [], 0, {}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
        ready.put(seed)
        go.wait()
        cpu0 = time.process_time()
        end = time.time() + seconds
        while time.time() < end:
            t = time.perf_counter()
            try:
                if path == "/livez":
                    r = c.get(path)
                else:
                    r = c.post(path, content=f'{{"uscc":"{firms[rng.integers(len(firms))]}","purpose":"loan_application"}}')
                code = r.status_code
            except httpx.HTTPError:
                code = -1
            lat.append(time.perf_counter() - t)
            codes[code] = codes.get(code, 0) + 1
            errors += code != 200
    queue.put((lat, errors, codes, time.process_time() - cpu0))


def load(url: str, path: str, key: str, firms: list[str], clients: int, seconds: float,
         server: Server | None = None) -> dict[str, object]:
    """`clients` processes hammering `path` for `seconds` (started together once all are up). With the
    `server`, also the CPU each request cost it and the clients: on a box whose cores they share, what
    the service would give on cores of its own is cores x 1000 / its CPU ms per request."""
    ctx = mp.get_context("spawn")
    queue, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_client, args=(url, path, key, firms, seconds, i, ready, go, queue))
             for i in range(clients)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    cpu0 = server.cpu_seconds() if server else 0.0
    go.set()
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    server_cpu = server.cpu_seconds() - cpu0 if server else None
    for p in procs:
        p.join()
    lat = np.concatenate([np.asarray(r[0]) for r in results]) * 1000
    codes: dict[int, int] = {}
    for r in results:
        for k, v in r[2].items():
            codes[k] = codes.get(k, 0) + v
    per_request = {"client_cpu_ms_per_request": round(sum(r[3] for r in results) / lat.size * 1000, 2)}
    if server_cpu is not None:
        per_request["server_cpu_ms_per_request"] = round(server_cpu / lat.size * 1000, 2)
    return {"clients": clients, "requests": int(lat.size), "req_per_s": round(lat.size / seconds, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p90_ms": round(float(np.percentile(lat, 90)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2), "max_ms": round(float(lat.max()), 1),
            "errors": int(sum(r[1] for r in results)), "status": {str(k): v for k, v in sorted(codes.items())},
            **per_request}


class Server:
    """`zhouxin serve start` in its own process group; RSS and CPU summed over the whole tree."""

    def __init__(self, bw: Path, workers: int, port: int) -> None:
        env = os.environ | {"ZHOUXIN_WORKSPACE": str(bw), "BENTOML_DO_NOT_TRACK": "True"}
        self.log = (bw / f"serve-{workers}.log").open("w")
        self.proc = subprocess.Popen([str(BIN / "zhouxin"), "serve", "start", "--workers", str(workers),
                                      "--port", str(port), "--workspace", str(bw)], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    self.settle()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"service not ready; see {self.log.name}")

    def settle(self, quiet_s: float = 1.0, timeout_s: float = 120.0) -> None:
        """Wait until the tree is (nearly) idle for `quiet_s`: /readyz answers once one worker is up while
        another may still be loading (seen: 5 s of CPU after the first 200), which would otherwise be
        counted against the first requests measured."""
        deadline, last = time.time() + timeout_s, self.cpu_seconds()
        while time.time() < deadline:
            time.sleep(quiet_s)
            now = self.cpu_seconds()
            if now - last < 0.05 * quiet_s:
                return
            last = now

    def _tree(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def rss_mb(self) -> float:
        return sum(p.memory_info().rss for p in self._tree()) / 2**20

    def cpu_seconds(self) -> float:
        """User + system CPU the whole tree (supervisor and workers) has used so far."""
        return sum(sum(p.cpu_times()[:2]) for p in self._tree())

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def soak(server: Server, key: str, firms: list[str], seconds: float, clients: int) -> dict[str, object]:
    """Steady load for `seconds` in one-minute slices, sampling the service's RSS after each slice."""
    samples, slices = [(0.0, round(server.rss_mb(), 1))], []
    elapsed, t0 = 0.0, time.time()
    while elapsed < seconds:
        step = min(60.0, seconds - elapsed)
        slices.append(load(server.url, "/v1/score", key, firms, clients, step))
        elapsed = time.time() - t0
        samples.append((round(elapsed, 1), round(server.rss_mb(), 1)))
        print(f"  soak {elapsed:6.0f}s: {slices[-1]['req_per_s']} req/s, p99 {slices[-1]['p99_ms']} ms, "
              f"errors {slices[-1]['errors']}, RSS {samples[-1][1]} MB", flush=True)
    after_warmup = [s for s in samples if s[0] >= 60] or samples
    slope = float(np.polyfit([s[0] for s in after_warmup], [s[1] for s in after_warmup], 1)[0]) * 60 \
        if len(after_warmup) > 2 else 0.0
    return {"seconds": round(elapsed), "clients": clients, "requests": sum(s["requests"] for s in slices),
            "errors": sum(s["errors"] for s in slices),
            "req_per_s_median": statistics.median(s["req_per_s"] for s in slices),
            "p99_ms_worst_minute": max(s["p99_ms"] for s in slices),
            "rss_mb_start": samples[0][1], "rss_mb_end": samples[-1][1], "rss_mb_max": max(s[1] for s in samples),
            "rss_mb_per_min_after_first_minute": round(slope, 2), "rss_samples": samples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workspace", type=Path, default=None)
    ap.add_argument("--seconds", type=float, default=20.0, help="duration of each load run")
    ap.add_argument("--clients", default="1,4", help="client processes per run (comma-separated)")
    ap.add_argument("--workers", default="1,2", help="service workers per run (comma-separated)")
    ap.add_argument("--skip-in-process", action="store_true", help="skip the in-process phase costs")
    ap.add_argument("--soak-seconds", type=float, default=600.0, help="0 skips the soak")
    ap.add_argument("--firms", type=int, default=200)
    ap.add_argument("--port", type=int, default=3170)
    ap.add_argument("--label", default="default")
    args = ap.parse_args()
    ws = (args.workspace or workspace_dir()).resolve()
    bw = bench_workspace(ws)
    key, firms = prepare(bw, args.firms)
    result: dict[str, object] = {"workspace": str(ws), "firms": len(firms), "cpu_count": os.cpu_count()}
    if not args.skip_in_process:
        print("in-process phases …", flush=True)
        result["in_process"] = in_process(bw, key, firms)
        print(result["in_process"], flush=True)
    runs = []
    for workers in (int(w) for w in args.workers.split(",")):
        server = Server(bw, workers, args.port)
        try:
            load(server.url, "/v1/score", key, firms, 1, 3)                   # warm-up
            for c in (int(x) for x in args.clients.split(",")):
                floor = load(server.url, "/livez", key, firms, c, args.seconds / 2, server)
                score = load(server.url, "/v1/score", key, firms, c, args.seconds, server)
                run = {"workers": workers, "clients": c, "score": score, "livez_floor": floor,
                       "p50_ratio_vs_livez": round(score["p50_ms"] / floor["p50_ms"], 2),
                       # each worker a core of its own, the clients elsewhere: the service's own ceiling
                       "req_per_s_if_a_core_per_worker": round(workers * 1000 / score["server_cpu_ms_per_request"]),
                       "rss_mb": round(server.rss_mb(), 1)}
                runs.append(run)
                print(f"workers={workers} clients={c}: {score['req_per_s']} req/s, p50 {score['p50_ms']} ms, "
                      f"p99 {score['p99_ms']} ms, errors {score['errors']}, CPU per request: server "
                      f"{score['server_cpu_ms_per_request']} ms, clients {score['client_cpu_ms_per_request']} ms "
                      f"(livez {floor['req_per_s']} req/s, p50 {floor['p50_ms']} ms)", flush=True)
            if workers == 2 and args.soak_seconds > 0:
                print(f"soak {args.soak_seconds:.0f} s …", flush=True)
                result["soak"] = soak(server, key, firms, args.soak_seconds, clients=2)
        finally:
            server.stop()
    result["load"] = runs
    from serving.audit import verify_chain
    from serving.operational import open_operational

    report = verify_chain(open_operational(load_profile().operational.resolved(bw)))
    result["audit_rows"], result["audit_chain_ok"] = report.rows, report.ok
    db = Path(load_profile().operational.resolved(bw).removeprefix("sqlite:///"))
    wal = db.with_name(db.name + "-wal")
    result["audit_db_mb"] = round(db.stat().st_size / 2**20, 1) if db.exists() else None
    result["audit_wal_mb_after_run"] = round(wal.stat().st_size / 2**20, 1) if wal.exists() else 0.0
    write_results(f"serving-{args.label}", result)


if __name__ == "__main__":
    main()
