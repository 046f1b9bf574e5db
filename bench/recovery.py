"""Recovery after SIGKILL: two workers killed while they enrich six events; one fresh worker; until six messages.

    python -m bench.recovery [--kills 3] [--timeout 900]

Issue 13's scenario, at the project's default worker settings: nothing about job timeouts,
maintenance, grace, delivery or concurrency is set (the environment's own are dropped), since
those defaults are what is measured. redis-server, the simulator answering every API call in
3 s, the chat sink as the only handler's Slack URL, `web`, and per kill:

    1. Redis flushed, two `worker` processes started, each with its full crew registered
    2. six fresh events POSTed, signed; the wait until the simulator has taken the first call
       (the workflow's jobs) of all six, so every event is in the middle of its enrichment
    3. both workers SIGKILLed, with their forked children (RQ's scheduler outlives its worker)
    4. one fresh worker started; the time from the kill until the sink holds a Slack message
       for each of the six events (the sink's arrival clock), at most `timeout`

The API stays slow through the recovery: the fresh worker's own enrichment is in the time
(`floor_s`: rounds of WORKER_CONCURRENCY events x 2 sequential calls x 3 s). A kill that does
not recover within `timeout` counts as `timeout` and is marked `capped`.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rq import Worker
from rq.serializers import JSONSerializer

from bench.e2e import post_event, routes_file, slack_messages, start_sink
from bench.processes import free_port, wait_until
from bench.worker import Run, critical_calls
from config.settings import Settings

EVENTS, WORKERS, API_SECONDS = 6, 2, 3.0
FIRST_CALL = "GET /workflow/{id}/job"
# the settings a recovery depends on: left at the project's defaults
DEFAULTED = ("WORKER_", "EVENT_JOB_", "DELIVERY_")
WORKER = [sys.executable, "-m", "service.cli", "worker"]


def at_defaults(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(DEFAULTED)}


class Recovery:
    """The processes that live through every kill (redis, simulator, sink, web) and one kill at a time."""

    def __init__(self, run: Run, timeout: float) -> None:
        self.run, self.timeout = run, timeout
        self.concurrency = Settings().worker_concurrency
        self.sim_proc, self.sim = run.start_simulator(API_SECONDS * 1000)
        self.sink_proc, self.sink = start_sink(run)
        web_port = free_port()
        routes = routes_file(run.tmp, httpx.URL(self.sink).port or 0)
        self.env = at_defaults(run.env(self.sim.base_url.port or 0, PORT=str(web_port), ROUTES_FILE=str(routes)))
        self.web_proc = run.procs.start("web", [sys.executable, "-m", "service.cli", "web"], cpu=run.last_cpu,
                                        env=self.env, cwd=run.root)  # fmt: skip
        self.web = f"http://127.0.0.1:{web_port}"
        self.http = httpx.Client(timeout=10, trust_env=False)
        wait_until(lambda: self.http.get(f"{self.web}/healthz").status_code == 200, "web", 20)
        wait_until(lambda: self.http.get(f"{self.sink}/_sink/requests").status_code == 200, "sink", 20)

    def close(self) -> None:
        self.http.close()
        for p in [self.web_proc, self.sink_proc, self.sim_proc]:
            self.run.procs.stop(p)
        self.sim.close()

    def first_calls(self) -> int:
        calls: dict[str, int] = self.sim.get("/_sim/calls").json()["calls"]
        return calls.get(FIRST_CALL, 0)

    def crews_ready(self, workers: list[subprocess.Popen[bytes]]) -> bool:
        """Every process has registered all its RQ workers (the lead starts its crew after its first maintenance)."""
        pids = [w.pid for w in Worker.all(connection=self.run.redis, serializer=JSONSerializer)]
        return all(pids.count(p.pid) >= self.concurrency for p in workers)

    def arrivals(self, workflow_ids: list[str]) -> dict[str, list[float]]:
        """Per workflow, when the sink answered 200 to a Slack message naming it."""
        found: dict[str, list[float]] = {w: [] for w in workflow_ids}
        for message in slack_messages(self.http, self.sink):
            text = json.dumps(message.get("body"))
            for w in workflow_ids:
                if message.get("status") == 200 and w in text:
                    found[w].append(message["at"])
        return found

    def kill(self, number: int) -> dict[str, Any]:
        run = self.run
        run.redis.flushall()
        self.http.post(f"{self.sink}/_sink/reset").raise_for_status()
        self.sim.post("/_sim/reset").raise_for_status()
        workers = [
            run.procs.start(f"worker-{number}-{i}", WORKER, cpu=i, env=self.env, cwd=run.root) for i in range(WORKERS)
        ]
        fresh = None
        try:
            wait_until(lambda: self.crews_ready(workers), f"{WORKERS} workers' {self.concurrency} threads each", 60)
            payloads = run.events.load(self.sim, EVENTS)
            ids = [p["workflow"]["id"] for p in payloads]
            for payload in payloads:
                post_event(self.http, self.web, payload)
            wait_until(lambda: self.first_calls() >= EVENTS, f"{EVENTS} enrichments in their first API call", 60)
            held = run.queue.started_job_registry.count
            delivered_before = sum(1 for times in self.arrivals(ids).values() if times)
            killed_at = time.time()
            for worker in workers:
                run.procs.kill(worker)
            fresh = run.procs.start(f"worker-{number}-fresh", WORKER, cpu=0, env=self.env, cwd=run.root)
            capped = False
            try:
                left = max(0.0, killed_at + self.timeout - time.time())
                wait_until(lambda: all(self.arrivals(ids).values()), f"{EVENTS} Slack messages", left, 0.1)
            except TimeoutError:
                capped = True
        finally:
            for p in [*workers, *([fresh] if fresh else [])]:
                run.procs.stop(p)
        arrivals = self.arrivals(ids)
        last = max((min(times) for times in arrivals.values() if times), default=killed_at + self.timeout)
        return {
            "seconds": self.timeout if capped else last - killed_at,
            "capped": capped,
            "delivered": sum(1 for times in arrivals.values() if times),
            "messages": sum(len(times) for times in arrivals.values()),
            "jobs_started_at_kill": held,
            "delivered_before_kill": delivered_before,
        }


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """`args.recovery_kills` kills, each with fresh events, capped at `args.recovery_timeout` s."""
    run = Run(args, tmp)
    recovery = None
    try:
        run.start_redis()
        recovery = Recovery(run, args.recovery_timeout)
        kills = []
        for number in range(1, args.recovery_kills + 1):
            kills.append(recovery.kill(number))
            print(f"  recovery kill {number}: {kills[-1]['seconds']:.1f} s"
                  f"{' (capped)' if kills[-1]['capped'] else ''}", flush=True)  # fmt: skip
        rounds = math.ceil(EVENTS / recovery.concurrency)
        return {
            "events": EVENTS,
            "workers_killed": WORKERS,
            "api_seconds": API_SECONDS,
            "concurrency": recovery.concurrency,
            "timeout_s": args.recovery_timeout,
            "floor_s": rounds * critical_calls(args.page_size) * API_SECONDS,
            "seconds": [k["seconds"] for k in kills],
            "kills": kills,
        }
    finally:
        if recovery is not None:
            recovery.close()
        run.redis.close()
        run.procs.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", dest="recovery_kills", type=int, default=3)
    parser.add_argument("--timeout", dest="recovery_timeout", type=float, default=900.0,
                        help="seconds a kill may take to recover; more counts as this, marked capped")  # fmt: skip
    args = parser.parse_args()
    args.page_size, args.concurrency = 20, Settings().worker_concurrency  # what Run reads
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        result = measure(args, Path(tmp))
    print(f"recovery after SIGKILL: {result['seconds']} s (floor {result['floor_s']:.0f} s)")


if __name__ == "__main__":
    main()
