"""Redis memory per 1,000 events at the default retention, through the real path.

    python -m bench.redis_memory [--runs 3] [--events 1000] [--json PATH]

Each run starts its own redis-server, the CircleCI simulator (0 ms), the sink, `service.cli web`
and one `service.cli worker` (WORKER_CONCURRENCY 4), every TTL at its default. It reads
INFO memory once web and worker idle, posts `--events` signed workflow-completed deliveries
(8 at a time; each a distinct failed 12-job workflow: 2 failed jobs with 5 tests and an
artifact, as bench.worker makes them), waits until the sink holds one Slack message per event
and no job is queued or running, lets the processes settle and reads INFO memory again.

Figures, per 1,000 events:

    used_memory     the growth of Redis's `used_memory` (what the allocator holds for data,
                    its overhead included)
    keys by group   MEMORY USAGE (every element: SAMPLES 0) summed per key pattern (ids
                    replaced by `*`), with the group's longest TTL: what expires within the
                    hour (RQ's finished jobs, the API cache) and what stays for
                    DEDUPE_TTL_SECONDS / ENRICHED_EVENT_TTL_SECONDS (7 days)

Printed as median [min-max] over the runs.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import redis

from bench import e2e
from bench.processes import free_port, load_average, wait_until
from bench.worker import Run

HOUR = 3600
SETTLE_SECONDS = 2.0
PATTERNS = (
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "*"),
    (re.compile(r"[0-9a-f]{16,}"), "*"),
    (re.compile(r"(?<=:)\d+(?=:|$)"), "N"),  # a job number, not the 2 of %2F
)


def pattern(key: bytes) -> str:
    text = key.decode(errors="replace")
    for regex, replacement in PATTERNS:
        text = regex.sub(replacement, text)
    return text


def key_groups(client: redis.Redis) -> dict[str, dict[str, float]]:
    """Every key's MEMORY USAGE and TTL, summed (bytes) and maxed (seconds; -1 none) per pattern."""
    groups: dict[str, dict[str, float]] = {}
    keys = list(client.scan_iter(count=1000))
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
            pipe.ttl(key)
        replies = pipe.execute()
        for key, usage, ttl in zip(batch, replies[::2], replies[1::2], strict=True):
            group = groups.setdefault(pattern(key), {"keys": 0, "bytes": 0, "ttl": -2})
            group["keys"] += 1
            group["bytes"] += usage or 0
            group["ttl"] = -1 if ttl == -1 or group["ttl"] == -1 else max(group["ttl"], ttl)
    return groups


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def one_run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    run = Run(args, tmp)
    try:
        run.start_redis()
        _, sim = run.start_simulator(0)
        _, sink = e2e.start_sink(run)
        web_port = free_port()
        routes = e2e.routes_file(run.tmp, httpx.URL(sink).port or 0)
        env = run.env(sim.base_url.port or 0, PORT=str(web_port), ROUTES_FILE=str(routes))
        run.procs.start("web", [sys.executable, "-m", "service.cli", "web"], cpu=run.last_cpu, env=env)
        workers = [run.procs.start("worker-0", [sys.executable, "-m", "service.cli", "worker"], cpu=0, env=env)]
        web = f"http://127.0.0.1:{web_port}"
        payloads = run.events.load(sim, args.events)
        with httpx.Client(timeout=30, trust_env=False) as http:
            wait_until(lambda: http.get(f"{web}/healthz").status_code == 200, "web", 20)
            wait_until(lambda: http.get(f"{sink}/_sink/requests").status_code == 200, "sink", 20)
            time.sleep(SETTLE_SECONDS)
            before = used_memory(run.redis)
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(partial(e2e.post_event, http, web), payloads))
            wait_until(partial(e2e.arrived, http, sink, len(payloads)), "every Slack message", args.timeout, 0.2)
            run.wait_queue_empty(workers, [0.0])
        time.sleep(SETTLE_SECONDS)
        after = used_memory(run.redis)
        groups = key_groups(run.redis)
    finally:
        run.redis.close()
        run.procs.stop_all()
    per_thousand = 1000 / len(payloads)
    return {
        "events": len(payloads),
        "used_memory_before": before,
        "used_memory_after": after,
        "used_memory_per_1000": (after - before) * per_thousand,
        "groups": {name: {**g, "bytes_per_1000": g["bytes"] * per_thousand} for name, g in groups.items()},
        "kept_past_an_hour_per_1000": sum(g["bytes"] for g in groups.values() if g["ttl"] == -1 or g["ttl"] > HOUR)
        * per_thousand,
        "load": load_average(),
    }


def mib(value: float) -> str:
    return f"{value / 2**20:.2f}"


def spread(values: list[float]) -> str:
    return f"{mib(statistics.median(values))} [{mib(min(values))}-{mib(max(values))}] MiB"


def ttl_text(ttl: float) -> str:
    if ttl == -1:
        return "none"
    return f"{ttl / 86400:.1f} d" if ttl > 2 * HOUR else f"{ttl / 60:.0f} min"


def report(runs: list[dict[str, Any]]) -> None:
    print(f"Redis memory per 1,000 events, {len(runs)} runs of {runs[0]['events']} events (median [min-max]):")
    print(f"  used_memory growth           {spread([r['used_memory_per_1000'] for r in runs])}")
    print(f"  keys kept past the first hour {spread([r['kept_past_an_hour_per_1000'] for r in runs])}")
    names = sorted({n for r in runs for n in r["groups"]}, key=lambda n: -runs[0]["groups"].get(n, {}).get("bytes", 0))
    print(f"  {'key pattern':58} {'keys/1000':>9} {'MiB/1000':>9}  longest TTL")
    for name in names:
        present = [r["groups"][name] for r in runs if name in r["groups"]]
        keys = statistics.median(g["keys"] * 1000 / r["events"] for g, r in zip(present, runs, strict=False))
        size = statistics.median(g["bytes_per_1000"] for g in present)
        print(f"  {name[:58]:58} {keys:9.0f} {mib(size):>9}  {ttl_text(max(g['ttl'] for g in present))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for one run's events to be delivered")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args()
    args.concurrency, args.page_size = 4, 20  # what bench.worker.Run reads
    runs = []
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            runs.append(one_run(args, Path(tmp)))
        print(f"run {number}: {mib(runs[-1]['used_memory_per_1000'])} MiB per 1,000 events (load {runs[-1]['load']})")
    report(runs)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
