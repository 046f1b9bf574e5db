"""End to end, webhook to chat: signed POST to `service.cli web` until the sink holds the Slack message.

    python -m bench.e2e [--events 50] [--latency-ms 20]

One worker, the simulator answering every call after `latency-ms`, and the local sink
(`circleci-events sink`) as the only handler's Slack URL. Events go one at a time; the
time is the sink's arrival clock minus the POST's start (both on this machine's clock). The
lower bound is the enrichment's critical path: 2 sequential API calls x latency (page size 20).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.processes import free_port, rss_mb, wait_until
from bench.worker import ARTIFACTS, JOBS, SECRET, TESTS, Run, pages
from service.signature import sign

SLACK_PATH = "/slack/bench"


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
    return len(slack_messages(http, sink)) >= count


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def critical_calls(page_size: int) -> int:
    """API calls one after another on an event's path: the job pages, then the longer of tests/artifacts."""
    return pages(JOBS, page_size) + max(pages(TESTS, page_size), pages(ARTIFACTS, page_size))


def webhook_to_sink(run: Run, latency_ms: float, count: int) -> dict[str, Any]:
    """`count` events (after one warm-up) from POST to the sink's arrival; p50/p99 and the processes' RSS."""
    run.redis.flushall()
    sim_proc, sim = run.start_simulator(latency_ms)
    sink_port, web_port = free_port(), free_port()
    sink_proc = run.procs.start(
        "sink", [sys.executable, "-m", "service.cli", "sink", "--port", str(sink_port)], cpu=run.last_cpu,
        env=run.env(0),
    )  # fmt: skip
    env = run.env(sim.base_url.port or 0, PORT=str(web_port), ROUTES_FILE=str(routes_file(run.tmp, sink_port)))
    web = run.procs.start("web", [sys.executable, "-m", "service.cli", "web"], cpu=run.last_cpu, env=env)
    workers = [run.procs.start("worker-0", [sys.executable, "-m", "service.cli", "worker"], cpu=0, env=env)]
    http = httpx.Client(timeout=10, trust_env=False)
    sink = f"http://127.0.0.1:{sink_port}"
    samples: list[float] = []
    try:
        payloads = run.events.load(sim, count + 1)
        wait_until(lambda: http.get(f"http://127.0.0.1:{web_port}/healthz").status_code == 200, "web", 20)
        wait_until(lambda: http.get(f"{sink}/_sink/requests").status_code == 200, "sink", 20)
        for i, payload in enumerate(payloads):  # the first one warms the worker up
            body = json.dumps(payload).encode()
            headers = {"content-type": "application/json", "circleci-signature": sign(body, SECRET),
                       "circleci-event-type": "workflow-completed"}  # fmt: skip
            start = time.time()
            answer = http.post(f"http://127.0.0.1:{web_port}/webhooks/circleci", content=body, headers=headers)
            if answer.status_code != 202:
                raise RuntimeError(f"bench: POST answered {answer.status_code}: {answer.text[:200]}")
            wait_until(partial(arrived, http, sink, i + 1), f"Slack message {i + 1} at the sink", 30, 0.002)
            if i:
                samples.append((slack_messages(http, sink)[i]["at"] - start) * 1000)
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
        "bound_ms": critical_calls(run.args.page_size) * latency_ms,
        "rss_mb": rss,
    }


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    run = Run(args, tmp)
    try:
        run.start_redis()
        return webhook_to_sink(run, args.latency_ms, args.e2e_events)
    finally:
        run.redis.close()
        run.procs.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", dest="e2e_events", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--page-size", type=int, default=20, help="the simulator's page size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        result = measure(args, Path(tmp))
    print(
        f"webhook to sink at {args.latency_ms:g} ms: p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms "
        f"(bound {result['bound_ms']:.0f} ms; p50/bound {result['p50_ms'] / result['bound_ms']:.2f}) "
        f"over {result['events']} events"
    )


if __name__ == "__main__":
    main()
