"""End to end, webhook to chat: signed POST to `service.cli web` until the sink holds the Slack message.

    python -m bench.e2e [--events 100] [--latency-ms 20]

One worker, the simulator answering every call after `latency-ms`, and the local sink
(`circleci-events sink`) as the only handler's Slack URL. Events go one at a time; the
time is the sink's arrival clock minus the POST's start (both on this machine's clock), which
the sink's long-poll (`/_sink/wait`) answers for the one message awaited. The enrichment's
critical path is 3 sequential API calls x latency (page size 20): the job page, then (alongside
the tests and artifacts) the failing step's v1.1 job and its output; the floor is measured, not
computed: each event is followed by one through bench.floor (no-op receiver, one Redis hop, those
3 calls, the same sink) and the figure is the ratio of the two, p50 to p50 and p99 to p99. The
extra API calls per failed job (the log tail's) are counted at the simulator.

Redis's INFO commandstats, read around the events, gives the commands per event of every
process together (web, worker, heartbeats; half a second of idle after the last one too), and
read around `idle` seconds with web and worker up and no event (after the warm-up one), the
idle rate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import redis

from bench import commandstats
from bench.floor import FLOOR_PATH
from bench.processes import free_port, redis_command, rss_mb, wait_until
from bench.worker import FAILED_JOBS, SECRET, TOKEN, Run, critical_calls
from service.signature import sign

SLACK_PATH = "/slack/bench"
SETTLE_SECONDS = 0.5  # after the last message, for the jobs' own bookkeeping


def routes_file(directory: Path, sink_port: int) -> Path:
    path = directory / "routes.yaml"
    path.write_text(
        f"handlers:\n  bench-slack: {{type: slack, url: 'http://127.0.0.1:{sink_port}{SLACK_PATH}'}}\n"
        "subscriptions:\n  - name: everything\n    handlers: [bench-slack]\n"
    )
    return path


def slack_messages(http: httpx.Client, sink: str) -> list[dict[str, Any]]:
    """What the sink recorded at the Slack path, oldest first, each with its arrival time `at`."""
    answer: list[dict[str, Any]] = http.get(f"{sink}/_sink/requests", params={"path": SLACK_PATH}).json()["requests"]
    return answer


def arrived(http: httpx.Client, sink: str, count: int) -> bool:
    """The sink holds `count` Slack messages (its long-poll, with no wait)."""
    answer = http.get(f"{sink}/_sink/wait", params={"path": SLACK_PATH, "count": count, "timeout": 0}).json()
    return answer["count"] is not None


def start_sink(run: Run) -> tuple[subprocess.Popen[bytes], str]:
    """`circleci-events sink` on the last CPU; its base URL."""
    port = free_port()
    process = run.procs.start(
        "sink", [sys.executable, "-m", "service.cli", "sink", "--port", str(port)], cpu=run.last_cpu, env=run.env(0)
    )
    return process, f"http://127.0.0.1:{port}"


def start_floor(run: Run, sim_port: int, sink: str) -> str:
    """bench.floor's receiver (last CPU, like the web) and consumer (CPU 0, like the worker), on a
    Redis of their own (so the product's command counts stay the product's); the receiver's URL."""
    port, redis_port = free_port(), free_port()
    run.procs.start("floor-redis", redis_command(redis_port, run.tmp), cpu=run.last_cpu, env=dict(os.environ))
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    wait_until(lambda: bool(redis.Redis.from_url(redis_url).ping()), "the floor's redis-server", 10)
    floor = [sys.executable, "-m", "bench.floor"]
    run.procs.start("floor-receiver", [*floor, "receiver", "--port", str(port), "--redis", redis_url],
                    cpu=run.last_cpu, env=dict(os.environ))  # fmt: skip
    run.procs.start("floor-consumer", [*floor, "consumer", "--redis", redis_url, "--token", TOKEN, "--sink", sink,
                                       "--api", f"http://127.0.0.1:{sim_port}/api/v2"],
                    cpu=0, env=dict(os.environ))  # fmt: skip
    return f"http://127.0.0.1:{port}"


def post_event(http: httpx.Client, web: str, payload: dict[str, Any]) -> None:
    """`payload` as CircleCI sends it, signed; anything but a 202 is an error."""
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/json", "circleci-signature": sign(body, SECRET),
               "circleci-event-type": "workflow-completed"}  # fmt: skip
    answer = http.post(f"{web}/webhooks/circleci", content=body, headers=headers)
    if answer.status_code != 202:
        raise RuntimeError(f"bench: POST answered {answer.status_code}: {answer.text[:200]}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def to_sink(http: httpx.Client, web: str, sink: str, path: str, payload: dict[str, Any], number: int) -> float:
    """Milliseconds from POSTing `payload` until the sink holds its `number`th message at `path`: the
    sink's long-poll answers the arrival time of that one message (O(1), nothing serialised)."""
    start = time.time()
    post_event(http, web, payload)
    answer = http.get(f"{sink}/_sink/wait", params={"path": path, "count": number, "timeout": 30}).json()
    if answer["at"] is None:
        raise TimeoutError(f"bench: message {number} at {path} not within 30 s")
    return (float(answer["at"]) - start) * 1000


def webhook_to_sink(run: Run, latency_ms: float, count: int, idle: float) -> dict[str, Any]:
    """`count` events (after one warm-up) from POST to the sink's arrival, each followed by one through
    bench.floor (the same path without the product: the floor, measured side by side); p50/p99 of
    both, the processes' RSS, and Redis's commands per event and per idle second."""
    run.redis.flushall()
    sim_proc, sim = run.start_simulator(latency_ms)
    sink_proc, sink = start_sink(run)
    web_port = free_port()
    routes = routes_file(run.tmp, httpx.URL(sink).port or 0)
    env = run.env(sim.base_url.port or 0, PORT=str(web_port), ROUTES_FILE=str(routes))
    web = run.procs.start("web", [sys.executable, "-m", "service.cli", "web"], cpu=run.last_cpu, env=env,
                          cwd=run.root)  # fmt: skip
    workers = [run.procs.start("worker-0", [sys.executable, "-m", "service.cli", "worker"], cpu=0, env=env,
                               cwd=run.root)]  # fmt: skip
    floor = start_floor(run, sim.base_url.port or 0, sink)
    http = httpx.Client(timeout=40, trust_env=False)
    web_url = f"http://127.0.0.1:{web_port}"
    try:
        payloads = run.events.load(sim, 2 * (count + 1))
        wait_until(lambda: http.get(f"{web_url}/healthz").status_code == 200, "web", 20)
        wait_until(lambda: http.get(f"{sink}/_sink/requests").status_code == 200, "sink", 20)
        wait_until(lambda: http.get(f"{floor}/webhooks/circleci").status_code == 405, "the floor's receiver", 20)
        to_sink(http, web_url, sink, SLACK_PATH, payloads[0], 1)  # warms the worker up
        to_sink(http, floor, sink, FLOOR_PATH, payloads[1], 1)
        idle_calls = idle_commands(run, idle)
        before, calls_before = commandstats.calls(run.redis), tail_calls(sim)
        samples, floor_samples = [], []
        for number in range(2, count + 2):
            samples.append(to_sink(http, web_url, sink, SLACK_PATH, payloads[2 * number - 2], number))
            floor_samples.append(to_sink(http, floor, sink, FLOOR_PATH, payloads[2 * number - 1], number))
        time.sleep(SETTLE_SECONDS)
        commands = commandstats.since(run.redis, before)
        tail = tail_calls(sim) - calls_before - 2 * len(floor_samples)  # the floor's v1.1 job and output
        rss = {"web": rss_mb(web.pid), "worker": rss_mb(workers[0].pid)}
    finally:
        http.close()
        for p in [*workers, web, sink_proc, sim_proc]:
            run.procs.stop(p)
        sim.close()
    return {
        "latency_ms": latency_ms,
        "events": len(samples),
        "p50_ms": statistics.median(samples),
        "p99_ms": percentile(samples, 0.99),
        "max_ms": max(samples),
        "floor_p50_ms": statistics.median(floor_samples),
        "floor_p99_ms": percentile(floor_samples, 0.99),
        "bound_ms": critical_calls(run.args.page_size) * latency_ms,
        "critical_calls": critical_calls(run.args.page_size),
        "tail_calls_per_failed_job": tail / (len(samples) * FAILED_JOBS),
        "rss_mb": rss,
        "redis": {
            "commands_per_event": commands.total() / len(samples),
            "by_command": commandstats.per(commands, len(samples)),
            "idle_seconds": idle,
            "idle_per_s": idle_calls.total() / idle,
            "idle_by_command": commandstats.per(idle_calls, idle),
        },
    }


def tail_calls(sim: httpx.Client) -> int:
    """The simulator's count of the log tail's calls: v1.1 jobs and output fetches."""
    calls: dict[str, int] = sim.get("/_sim/calls").json()["calls"]
    return sum(n for name, n in calls.items() if "/api/v1.1/" in name or "/_sim/storage/" in name)


def idle_commands(run: Run, seconds: float) -> Counter[str]:
    """What Redis ran over `seconds` of nothing to do (half a second after the last job, first)."""
    time.sleep(SETTLE_SECONDS)
    before = commandstats.calls(run.redis)
    time.sleep(seconds)
    return commandstats.since(run.redis, before)


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    run = Run(args, tmp)
    try:
        run.start_redis()
        return webhook_to_sink(run, args.latency_ms, args.sink_events, args.idle_seconds)
    finally:
        run.redis.close()
        run.procs.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", dest="sink_events", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--page-size", type=int, default=20, help="the simulator's page size")
    parser.add_argument("--concurrency", type=int, default=4, help="WORKER_CONCURRENCY of the worker process")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="the window for the idle Redis rate")
    parser.add_argument("--root", type=Path, help="the tree whose web and worker run (default: this one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        result = measure(args, Path(tmp))
    print(
        f"webhook to sink at {args.latency_ms:g} ms: p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms "
        f"(floor p50 {result['floor_p50_ms']:.1f} ms, p99 {result['floor_p99_ms']:.1f} ms; "
        f"ratios {result['p50_ms'] / result['floor_p50_ms']:.2f}, {result['p99_ms'] / result['floor_p99_ms']:.2f}) "
        f"over {result['events']} events; log tail: {result['tail_calls_per_failed_job']:.2f} extra API calls "
        f"per failed job"
    )
    commands = result["redis"]
    top = ", ".join(f"{name} {n:.1f}" for name, n in list(commands["by_command"].items())[:15])
    print(f"Redis commands/event {commands['commands_per_event']:.1f} ({top}); idle {commands['idle_per_s']:.1f}/s")


if __name__ == "__main__":
    main()
