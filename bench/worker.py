"""Enrichment benchmark: workflow-completed events through real worker processes and the simulator.

    python -m bench.worker [--runs 3] [--events 200] [--latency-ms 20] [--concurrency 4] [--json PATH]

Every run starts its own redis-server and, per phase, the CircleCI simulator
(`circleci-events simulator`) and `python -m service.cli worker` processes (each running
WORKER_CONCURRENCY jobs at once). Worker i is pinned to CPU i; redis, the simulator and the web
process share the last CPU. Each event is a 12-job workflow (10 successful jobs, 2 failed ones
with 5 tests, 3 of them failing, and an artifact), with its own workflow id and job numbers so
the API cache never helps.

The figures are the enrichment stage's, as the issue defines them (webhook to enriched event):
the workers run with a routes file that subscribes nothing, so no delivery job follows. One more
phase, at zero latency with the default routes (a log line per event: one delivery job each),
shows what delivery adds.

    throughput  N events queued with RQ, then one (and two) workers; events/s from the job
                records (first started_at to last ended_at), against the I/O bound
                1 / (critical-path API calls x latency), and at zero latency
    RQ no-op    the same machine's rate for RQ's SimpleWorker running a no-op job (the issue
                measured 156-196/s on its machine): what the zero-latency figure is bounded by
    end to end  signed POSTs one at a time to `service.cli web`; webhook POST to the job's
                ended_at, p50/p99, against the bound of 2 sequential calls x latency
    API calls   per event from the simulator's counts, next to the naive 1 + 3 x jobs and the
                minimum (job pages + failed jobs' test and artifact pages)
    RSS         each worker's VmRSS, sampled while it works and at the end; the max

Prints a table per run (with the load average before it: the machine is shared) and the
median [min-max] over the runs, each figure next to its target.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from bench import commandstats
from bench.processes import (
    ROOT,
    Processes,
    cpu_seconds,
    free_port,
    load_average,
    redis_command,
    rss_mb,
    wait_until,
)
from config.clock import utc_now_text
from service.signature import sign
from workers.jobs import EVENT_DESCRIPTION, PROCESS_EVENT, WORKFLOW_COMPLETED, Envelope
from workers.jobs import envelope as make_envelope

SAMPLE = ROOT / "tests" / "fixtures" / "workflow-completed.failed.github-oauth.derived.json"
SECRET = "bench-webhook-secret"
TOKEN = "bench-token"
SUCCESSFUL_JOBS, FAILED_JOBS, TESTS, FAILING_TESTS, ARTIFACTS = 10, 2, 5, 3, 1
JOBS = SUCCESSFUL_JOBS + FAILED_JOBS
BOUND_FRACTION = 0.8
ZERO_LATENCY_TARGET = 100.0
DELIVERY_VS_NOOP = 0.8  # events/s with one delivery each, as a share of RQ's no-op jobs/s (issue 26)
WORKER_CPU_MS_TARGET = 6.0  # worker CPU per event at 0 ms with its delivery (issue 26)
RSS_TARGET_MB = 120.0
DONE = {"finished", "failed", "stopped", "canceled"}


# -- the events --------------------------------------------------------------------------------


def pages(items: int, page_size: int) -> int:
    return max(1, math.ceil(items / page_size))


# the failing step's log tail (LOG_TAIL on, the default): per failed job its v1.1 job, then its
# output, one after the other, alongside the tests and artifacts pages
TAIL_CALLS = 2
# Insights' known-flaky tests: one call per project per FLAKY_TESTS_TTL_SECONDS (amortised away here)
FLAKY_CALLS = 1


def critical_calls(page_size: int) -> int:
    """API calls one after another on an event's path: the job pages, then the longest of the
    tests pages, the artifacts pages and the tail's two calls."""
    return pages(JOBS, page_size) + max(pages(TESTS, page_size), pages(ARTIFACTS, page_size), TAIL_CALLS)


def minimum_calls(page_size: int) -> int:
    """API calls an event needs at least (the project's flaky tests cached)."""
    return pages(JOBS, page_size) + FAILED_JOBS * (pages(TESTS, page_size) + pages(ARTIFACTS, page_size) + TAIL_CALLS)


class Events:
    """Distinct workflows: every one with new ids, a new pipeline number and new job numbers."""

    def __init__(self) -> None:
        self.template = json.loads(SAMPLE.read_text())
        self.serial = 0

    def make(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        self.serial += 1
        payload = copy.deepcopy(self.template)
        payload["id"] = str(uuid.uuid4())
        payload["happened_at"] = utc_now_text()  # older than DEDUPE_TTL_SECONDS would be answered `expired`
        payload["workflow"]["id"] = str(uuid.uuid4())
        payload["pipeline"]["id"] = str(uuid.uuid4())
        payload["pipeline"]["number"] = 1000 + self.serial
        slug = payload["project"]["slug"]
        payload["workflow"]["url"] = (
            f"https://app.circleci.com/pipelines/{slug}/{1000 + self.serial}/workflows/{payload['workflow']['id']}"
        )
        base = 100 * self.serial
        jobs = [
            {
                "name": f"build-{k}",
                "type": "build",
                "status": "success",
                "number": base + k,
                "tests": [],
                "artifacts": [],
            }
            for k in range(SUCCESSFUL_JOBS)
        ]
        jobs += [
            {
                "name": f"test-{k}",
                "type": "build",
                "status": "failed",
                "number": base + SUCCESSFUL_JOBS + k,
                "tests": [
                    {
                        "name": f"test_case_{t}",
                        "result": "failure" if t < FAILING_TESTS else "success",
                        "message": f"AssertionError: expected {t} got {t + 1}\n  at tests/test_{k}.py:{10 + t}",
                    }
                    for t in range(TESTS)
                ],
                "artifacts": [f"test-results/junit-{a}.xml" for a in range(ARTIFACTS)],
            }
            for k in range(FAILED_JOBS)
        ]
        return payload, jobs

    def load(self, sim: httpx.Client, count: int) -> list[dict[str, Any]]:
        """`count` workflows made servable by the simulator; their webhook payloads."""
        payloads = []
        for _ in range(count):
            payload, jobs = self.make()
            sim.post("/_sim/workflows", json={"payload": payload, "jobs": jobs}).raise_for_status()
            payloads.append(payload)
        return payloads


def envelope(payload: dict[str, Any]) -> Envelope:
    """What the receiver would queue for `payload`."""
    made = make_envelope(
        event_id=payload["id"],
        event_type=WORKFLOW_COMPLETED,
        request_id=uuid.uuid4().hex,
        received_at=datetime.now(UTC).isoformat(),
    )
    return {**made, "payload": payload}


# -- one run -----------------------------------------------------------------------------------


class Run:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.procs = Processes(tmp)
        # the tree whose web and workers run (--root: an older one, for before and after in one run);
        # the simulator, the sink and the floor always run from this one
        self.root: Path = getattr(args, "root", None) or ROOT
        self.last_cpu = max(0, (os.cpu_count() or 1) - 1)
        self.events = Events()
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.redis = redis.Redis(port=self.redis_port, socket_timeout=10)
        self.queue = Queue("events", connection=self.redis, serializer=JSONSerializer)
        self.no_routes = tmp / "no-routes.yaml"
        self.no_routes.write_text("handlers: {}\nsubscriptions: []\n")

    def env(self, sim_port: int, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "ROUTES_FILE": str(self.no_routes),
            "WORKER_CONCURRENCY": str(self.args.concurrency),
            "REDIS_URL": self.redis_url,
            "CIRCLE_TOKEN": TOKEN,
            "CIRCLECI_API_URL": f"http://127.0.0.1:{sim_port}/api/v2",
            "CIRCLECI_WEBHOOK_SECRETS": SECRET,
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
            "CIRCLECI_API_RATE_PER_SECOND": "1000000",
            "CIRCLECI_API_BURST": "1000000",
            "RATE_LIMIT_PER_SECOND": "1000000",
            "RATE_LIMIT_BURST": "1000000",
            "WORKER_HTTP_PORT": "0",
            "HOST": "127.0.0.1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            **extra,
        }

    def start_redis(self) -> None:
        self.redis_proc = self.procs.start(
            "redis", redis_command(self.redis_port, self.tmp), cpu=self.last_cpu, env=dict(os.environ)
        )
        wait_until(lambda: bool(self.redis.ping()), "redis-server", 10)

    def start_simulator(self, latency_ms: float) -> tuple[subprocess.Popen[bytes], httpx.Client]:
        port = free_port()
        process = self.procs.start(
            "simulator",
            [sys.executable, "-m", "service.cli", "simulator", "--port", str(port), "--latency-ms", str(latency_ms),
             "--page-size", str(self.args.page_size), "--token", TOKEN, "--empty"],
            cpu=self.last_cpu, env=dict(os.environ),
        )  # fmt: skip
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False)
        wait_until(lambda: client.get("/_sim/calls").status_code == 200, "simulator", 20)
        return process, client

    def start_workers(self, count: int, sim_port: int, **extra: str) -> list[subprocess.Popen[bytes]]:
        env = self.env(sim_port, **extra)
        return [
            self.procs.start(
                f"worker-{i}",
                [sys.executable, "-m", "service.cli", "worker"],
                cpu=i % (os.cpu_count() or 1),
                env=env,
                cwd=self.root,
            )
            for i in range(count)
        ]

    def wait_jobs(self, ids: list[str], workers: list[subprocess.Popen[bytes]], timeout: float) -> list[float]:
        """Wait until every job is done; the workers' RSS sampled meanwhile (max per worker)."""
        peaks = [0.0] * len(workers)
        deadline = time.monotonic() + timeout
        # two commands a poll (ZMSCORE of the finished and failed registries), not one a job: the
        # phase's Redis commands are the product's
        ended = (self.queue.finished_job_registry.key, self.queue.failed_job_registry.key)
        while True:
            peaks = [max(p, rss_mb(w.pid)) for p, w in zip(peaks, workers, strict=True)]
            with self.redis.pipeline(transaction=False) as pipe:
                for key in ended:
                    pipe.zmscore(key, ids)
                finished, failed = pipe.execute()
            if all(a is not None or b is not None for a, b in zip(finished, failed, strict=True)):
                break
            dead = [w.args for w in workers if w.poll() is not None]
            if dead:
                raise RuntimeError(f"bench: a worker exited early: {dead}; see its log in {self.tmp}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"bench: {len(ids)} jobs not done within {timeout:.0f} s")
            time.sleep(0.1)
        return [max(p, rss_mb(w.pid)) for p, w in zip(peaks, workers, strict=True)]

    def wait_queue_empty(self, workers: list[subprocess.Popen[bytes]], rss: list[float]) -> list[float]:
        """Wait until no job is queued or running (the deliveries that followed the events)."""
        started = self.queue.started_job_registry

        def idle() -> bool:
            return self.queue.count == 0 and started.count == 0

        wait_until(idle, "the delivery jobs", self.args.timeout)
        return [max(p, rss_mb(w.pid)) for p, w in zip(rss, workers, strict=True)]

    def last_ended(self) -> datetime:
        ids = self.queue.finished_job_registry.get_job_ids()
        jobs = Job.fetch_many(ids, connection=self.redis, serializer=JSONSerializer)
        return max(j.ended_at for j in jobs if j is not None and j.ended_at)

    def rq_noop(self, count: int) -> dict[str, Any]:
        """RQ's own SimpleWorker on no-op jobs, on the CPU the workers use: this machine's scale."""
        self.redis.flushall()
        self.queue.enqueue_many([Queue.prepare_data("builtins.len", [[]]) for _ in range(count)])
        code = (
            "import sys, time, redis, logging; from rq import Queue, SimpleWorker;"
            "from rq.serializers import JSONSerializer; r = redis.Redis.from_url(sys.argv[1]);"
            "q = Queue('events', connection=r, serializer=JSONSerializer); t = time.perf_counter();"
            "SimpleWorker([q], connection=r, serializer=JSONSerializer).work(burst=True, logging_level='WARNING');"
            "print(time.perf_counter() - t)"
        )
        out = subprocess.run(
            ["taskset", "-c", "0", sys.executable, "-c", code, self.redis_url],
            capture_output=True, text=True, check=True, env=dict(os.environ),
        )  # fmt: skip
        return {"jobs": count, "jobs_per_s": count / float(out.stdout.split()[-1])}

    def outcomes(self, jobs: list[Job]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in jobs:
            status = job.get_status(refresh=False)
            value = job.return_value() if status == "finished" else None
            key = str(status)
            if isinstance(value, dict):
                key = "complete" if value.get("complete") else str(value.get("status", "incomplete"))
                key = "incomplete" if key == "enriched" else key
            counts[key] = counts.get(key, 0) + 1
        return counts

    def throughput(self, latency_ms: float, workers: int, *, routes: str | None = None) -> dict[str, Any]:
        """Events/s through `workers` processes; `routes` (a routes file) adds the deliveries."""
        self.redis.flushall()
        sim_proc, sim = self.start_simulator(latency_ms)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            warm = self.events.load(sim, workers)
            payloads = self.events.load(sim, self.args.events)
            extra = {"ROUTES_FILE": routes} if routes else {}
            procs += self.start_workers(workers, sim.base_url.port or 0, **extra)
            # Warm-up: each worker builds its Runtime (httpx client, pool) on its first job.
            warm_ids = [self.queue.enqueue(PROCESS_EVENT, envelope(p), description=EVENT_DESCRIPTION).id for p in warm]
            self.wait_jobs(warm_ids, procs, 30)
            sim.post("/_sim/reset").raise_for_status()
            datas = [Queue.prepare_data(PROCESS_EVENT, [envelope(p)], description=EVENT_DESCRIPTION) for p in payloads]
            watched = [*procs, sim_proc, self.redis_proc]
            cpu_before = [cpu_seconds(p.pid) for p in watched]
            commands_before = commandstats.calls(self.redis)
            ids = [job.id for job in self.queue.enqueue_many(datas)]
            rss = self.wait_jobs(ids, procs, self.args.timeout)
            if routes:  # and the delivery jobs they queued
                rss = self.wait_queue_empty(procs, rss)
            cpu = [cpu_seconds(p.pid) - before for p, before in zip(watched, cpu_before, strict=True)]
            commands = commandstats.since(self.redis, commands_before)
            calls = sim.get("/_sim/calls").json()
        finally:
            for p in [*procs, sim_proc]:
                self.procs.stop(p)
            sim.close()
        jobs = [j for j in Job.fetch_many(ids, connection=self.redis, serializer=JSONSerializer) if j is not None]
        started = min(j.started_at for j in jobs if j.started_at)
        ended = max(j.ended_at for j in jobs if j.ended_at)
        if routes:
            ended = max(ended, self.last_ended())
        elapsed = (ended - started).total_seconds()
        per_job = sorted(
            (j.ended_at - j.started_at).total_seconds() * 1000 for j in jobs if j.started_at and j.ended_at
        )
        return {
            "latency_ms": latency_ms,
            "workers": workers,
            "events": len(ids),
            "seconds": elapsed,
            "events_per_s": len(ids) / elapsed,
            "events_per_s_per_process": len(ids) / elapsed / workers,
            "job_ms_p50": statistics.median(per_job),
            "api_calls_per_event": calls["total"] / len(ids),
            "api_calls": calls["calls"],
            "rss_mb": rss,
            # CPU seconds over the phase: which process limits the rate (the CPUs are shared)
            "cpu_ms_per_event": {
                "workers": 1000 * sum(cpu[:workers]) / len(ids),
                "simulator": 1000 * cpu[-2] / len(ids),
                "redis": 1000 * cpu[-1] / len(ids),
            },
            "outcomes": self.outcomes(jobs),
            # everything Redis ran over the phase (the bench's enqueue and polls included: a few)
            "redis_commands_per_event": commands.total() / len(ids),
        }

    def end_to_end(self, latency_ms: float, count: int) -> dict[str, Any]:
        self.redis.flushall()
        sim_proc, sim = self.start_simulator(latency_ms)
        web_port = free_port()
        web = http = None
        procs: list[subprocess.Popen[bytes]] = []
        try:
            payloads = self.events.load(sim, count + 1)
            env = self.env(sim.base_url.port or 0, PORT=str(web_port))
            web = self.procs.start(
                "web", [sys.executable, "-m", "service.cli", "web"], cpu=self.last_cpu, env=env, cwd=self.root
            )
            procs = self.start_workers(1, sim.base_url.port or 0)
            http = httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=10, trust_env=False)
            wait_until(lambda: http.get("/healthz").status_code == 200, "web", 20)
            samples, posts = [], []
            for i, payload in enumerate(payloads):  # the first one warms the worker up
                body = json.dumps(payload).encode()
                headers = {"content-type": "application/json", "circleci-signature": sign(body, SECRET),
                           "circleci-event-type": "workflow-completed"}  # fmt: skip
                start = time.time()
                response = http.post("/webhooks/circleci", content=body, headers=headers)
                posted = time.time()
                if response.status_code != 202:
                    raise RuntimeError(f"bench: POST answered {response.status_code}: {response.text[:200]}")
                job_id = self.redis.get(f"cie:seen:{payload['id']}")
                if job_id is None:
                    raise RuntimeError(f"bench: no cie:seen:{payload['id']} after a 202")
                key = Job.key_for(job_id.decode())
                wait_until(lambda k=key: (self.redis.hget(k, "status") or b"").decode() in DONE, "event", 30, 0.002)
                job = Job.fetch(job_id.decode(), connection=self.redis, serializer=JSONSerializer)
                if i and job.ended_at:
                    samples.append((job.ended_at.timestamp() - start) * 1000)
                    posts.append((posted - start) * 1000)
            rss = [rss_mb(p.pid) for p in procs]
        finally:
            if http is not None:
                http.close()
            for p in [*procs, web, sim_proc]:
                if p is not None:
                    self.procs.stop(p)
            sim.close()
        samples.sort()
        return {
            "latency_ms": latency_ms,
            "events": len(samples),
            "p50_ms": statistics.median(samples),
            "p99_ms": samples[min(len(samples) - 1, math.ceil(0.99 * len(samples)) - 1)],
            "max_ms": samples[-1],
            "post_p50_ms": statistics.median(posts),
            "rss_mb": rss,
        }

    def execute(self) -> dict[str, Any]:
        a = self.args
        result: dict[str, Any] = {"load_average": load_average()}
        try:
            self.start_redis()
            result["io_1w"] = self.throughput(a.latency_ms, 1)
            result["io_2w"] = self.throughput(a.latency_ms, 2)
            result["cpu_1w"] = self.throughput(0, 1)
            result["cpu_1w_delivery"] = self.throughput(0, 1, routes=str(ROOT / "config" / "routes.yaml"))
            result["rq_noop"] = self.rq_noop(a.noop_jobs)
            result["e2e"] = self.end_to_end(a.latency_ms, a.e2e_events)
        finally:
            self.redis.close()
            self.procs.stop_all()
        return result


# -- figures -----------------------------------------------------------------------------------


def figures(run: dict[str, Any], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each figure with its target: (value, target text, ratio, met)."""
    ps, latency = args.page_size, args.latency_ms / 1000
    critical = critical_calls(ps)
    bound = 1 / (critical * latency)
    minimum = minimum_calls(ps)
    naive = 1 + 3 * JOBS
    io1, io2, cpu, e2e = run["io_1w"], run["io_2w"], run["cpu_1w"], run["e2e"]
    delivery, noop = run["cpu_1w_delivery"], run["rq_noop"]
    e2e_bound = critical * args.latency_ms
    rss = max(io1["rss_mb"] + io2["rss_mb"] + cpu["rss_mb"] + e2e["rss_mb"])
    calls = io1["api_calls_per_event"]

    def fig(value: float, unit: str, target: str, ratio: float, met: bool | None) -> dict[str, Any]:
        return {"value": value, "unit": unit, "target": target, "ratio": ratio, "met": met}

    return {
        "events/s, 1 worker, latency": fig(io1["events_per_s"], "ev/s",
            f">= {BOUND_FRACTION * bound:.1f} (0.8 x bound {bound:.1f})", io1["events_per_s"] / bound,
            io1["events_per_s"] >= BOUND_FRACTION * bound),
        "events/s/process, 2 workers": fig(io2["events_per_s_per_process"], "ev/s",
            f">= {BOUND_FRACTION * bound:.1f} (0.8 x bound {bound:.1f})", io2["events_per_s_per_process"] / bound,
            io2["events_per_s_per_process"] >= BOUND_FRACTION * bound),
        "scaling, 2 workers / 1": fig(io2["events_per_s"] / io1["events_per_s"], "x", "~2 (ratio to 2)",
            io2["events_per_s"] / io1["events_per_s"] / 2, None),
        "events/s, 1 worker, 0 ms": fig(cpu["events_per_s"], "ev/s", f">= {ZERO_LATENCY_TARGET:.0f}",
            cpu["events_per_s"] / ZERO_LATENCY_TARGET, cpu["events_per_s"] >= ZERO_LATENCY_TARGET),
        "events/s with delivery vs RQ no-op": fig(delivery["events_per_s"], "ev/s",
            f">= {DELIVERY_VS_NOOP} x RQ no-op {noop['jobs_per_s']:.0f}/s (0 ms, a log delivery each)",
            delivery["events_per_s"] / noop["jobs_per_s"],
            delivery["events_per_s"] / noop["jobs_per_s"] >= DELIVERY_VS_NOOP),
        "worker CPU/event (0 ms, delivery)": fig(delivery["cpu_ms_per_event"]["workers"], "ms",
            f"<= {WORKER_CPU_MS_TARGET:g}", delivery["cpu_ms_per_event"]["workers"] / WORKER_CPU_MS_TARGET,
            delivery["cpu_ms_per_event"]["workers"] <= WORKER_CPU_MS_TARGET),
        "RQ no-op jobs/s (machine)": fig(noop["jobs_per_s"], "jobs/s", "(context: the issue measured 156-196)",
            noop["jobs_per_s"] / 176, None),
        "e2e p50": fig(e2e["p50_ms"], "ms", f"bound {e2e_bound:.0f} (ratio p50/bound)",
            e2e["p50_ms"] / e2e_bound, None),
        "e2e p99": fig(e2e["p99_ms"], "ms", f"bound {e2e_bound:.0f} (ratio p99/bound)",
            e2e["p99_ms"] / e2e_bound, None),
        "API calls/event": fig(calls, "calls", f"minimum {minimum} (naive {naive}; {TAIL_CALLS} per failed job "
            f"for its log tail, {FLAKY_CALLS} per project per hour for flaky tests)", calls / minimum,
            calls <= minimum + FLAKY_CALLS),
        "worker RSS max": fig(rss, "MB", f"<= {RSS_TARGET_MB:.0f}", rss / RSS_TARGET_MB, rss <= RSS_TARGET_MB),
    }  # fmt: skip


def print_table(figs: dict[str, dict[str, Any]]) -> None:
    print(f"  {'figure':30} {'value':>12}  {'ratio':>6}  target")
    for name, f in figs.items():
        mark = {True: "ok", False: "MISSED", None: ""}[f["met"]]
        print(f"  {name:30} {f['value']:8.1f} {f['unit']:5} {f['ratio']:6.2f}  {f['target']} {mark}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=200, help="events per throughput phase")
    parser.add_argument("--e2e-events", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--page-size", type=int, default=20, help="the simulator's page size")
    parser.add_argument("--concurrency", type=int, default=4, help="WORKER_CONCURRENCY of each worker process")
    parser.add_argument("--noop-jobs", type=int, default=500, help="no-op jobs for the RQ calibration")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds a throughput phase may take")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--root", type=Path, help="the tree whose web and workers run (default: this one)")
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        raise SystemExit("bench: redis-server is not installed: apt-get install redis-server")
    if args.latency_ms <= 0:
        raise SystemExit("bench: --latency-ms must be positive (zero latency is always measured too)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so every `finally` stops its processes
    print(
        f"worker: {args.runs} runs; {args.events} events per phase, {JOBS} jobs each ({FAILED_JOBS} failed, "
        f"{TESTS} tests, {ARTIFACTS} artifact); latency {args.latency_ms:g} ms; page size {args.page_size}; "
        f"{args.concurrency} jobs at once per worker process; {os.cpu_count()} CPUs"
    )
    runs, table = [], []
    for i in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
            print(f"run {i}: load average before {load_average()}", flush=True)
            run = Run(args, Path(tmp)).execute()
        figs = figures(run, args)
        runs.append(run)
        table.append(figs)
        print_table(figs)
        for key in ("io_1w", "io_2w", "cpu_1w", "cpu_1w_delivery"):
            ph, c = run[key], run[key]["cpu_ms_per_event"]
            busy = c["workers"] * ph["events_per_s"] / 1000 / ph["workers"]
            print(
                f"  {key}, {ph['latency_ms']:g} ms x {ph['workers']} worker(s): job p50 {ph['job_ms_p50']:.1f} ms; "
                f"CPU ms/event worker {c['workers']:.1f} ({busy:.0%} busy), simulator {c['simulator']:.1f}, "
                f"redis {c['redis']:.1f}; {ph['outcomes']}"
            )
        print(f"  API calls by operation (1 worker): {run['io_1w']['api_calls']}", flush=True)
    summary = {}
    print(f"summary over {args.runs} runs (median [min-max]):")
    for name in table[0]:
        values = [figs[name]["value"] for figs in table]
        ratios = [figs[name]["ratio"] for figs in table]
        med = statistics.median(values)
        summary[name] = {"median": med, "min": min(values), "max": max(values),
                         "ratio_median": statistics.median(ratios), "target": table[0][name]["target"]}  # fmt: skip
        print(f"  {name:30} {med:8.1f} [{min(values):.1f}-{max(values):.1f}] {table[0][name]['unit']:5} "
              f"ratio {statistics.median(ratios):.2f}  target {table[0][name]['target']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "runs": runs,
                                         "figures": table, "summary": summary}, indent=2, default=str))  # fmt: skip


if __name__ == "__main__":
    main()
