"""The whole path on real processes, for the reliability scenarios (issue 7).

`scenario` builds: a redis-server of its own (AOF on request), the CircleCI simulator and the
chat sink served in threads (their control objects are at hand), a routes file with two
signed-webhook handlers posting to the sink, and starts `circleci-events web` and
`circleci-events worker` processes on request. Everything listens on 127.0.0.1; every process
is killed when the test ends, also after a failure.

Two handlers, so the counts are per subscribed handler:

    audit      every event            sink path /hooks/audit
    failures   failed workflows only  sink path /hooks/failures

Short settings make the faults fit in seconds: backoff 0.5-2 s, delivery timeout 1 s, event
job timeout 10 s, and a 3 s lease on running jobs (a dead worker's job runs again ~3 s later).
`scenario(defaults=True)` keeps the project's own worker settings instead.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_py
from rq import Queue, Worker

from service.simulators.circleci import create_simulator
from service.simulators.circleci_data import Dataset
from service.simulators.sink import create_sink
from tests.conftest import SECRET, RedisServer, free_port, fresh, load_fixture
from tests.e2e.processes import Service, cli, stop_all
from tests.server import running
from tests.service.conftest import signed
from tests.waiting import wait_until

TOKEN = "reliability-circle-token"
HOOK_SECRET = "reliability-hook-secret"
URL = "/webhooks/circleci"
PATHS = {"audit": "/hooks/audit", "failures": "/hooks/failures"}
ROUTES = """\
handlers:
  audit:
    type: webhook
    url: "${SINK_URL}/hooks/audit"
    secret: "${HOOK_SECRET}"
  failures:
    type: webhook
    url: "${SINK_URL}/hooks/failures"
    secret: "${HOOK_SECRET}"
subscriptions:
  - name: everything
    handlers: [audit]
  - name: broken-builds
    handlers: [failures]
    statuses: [failed, error]
"""
FAST = {
    "DELIVERY_TIMEOUT_SECONDS": "1",
    "DELIVERY_BACKOFF_BASE_SECONDS": "0.5",
    "DELIVERY_BACKOFF_MAX_SECONDS": "2",
    "EVENT_JOB_TIMEOUT_SECONDS": "10",
    "WORKER_LEASE_SECONDS": "3",
    "RATE_LIMIT_BURST": "100000",
    "RATE_LIMIT_PER_SECOND": "100000",
    "CIRCLECI_API_RATE_PER_SECOND": "100000",
    "CIRCLECI_API_BURST": "100000",
}


def descendants(pid: int) -> list[int]:
    """Child processes, recursively (RQ's scheduler is a forked child of its worker)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


class Scenario:
    """The system under test and the handles to fault it."""

    def __init__(
        self, tmp: Path, redis: RedisServer, simulator: Any, sink: Any, sim_url: str, sink_url: str, *, fast: bool
    ) -> None:
        self.tmp, self.redis = tmp, redis
        self.settings = FAST if fast else {}
        self.simulator, self.sink = simulator, sink
        self.sim_url, self.sink_url = sim_url, sink_url
        self.routes = tmp / "routes.yaml"
        self.routes.write_text(ROUTES)
        self.processes: list[Service] = []
        self.orphans: list[int] = []
        self.base = ""
        self.http = httpx.Client(timeout=10, trust_env=False)
        self.client = redis_py.Redis.from_url(redis.url)
        self.serial = 0

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "REDIS_URL": self.redis.url,
            "CIRCLECI_WEBHOOK_SECRETS": SECRET,
            "CIRCLE_TOKEN": TOKEN,
            "CIRCLECI_API_URL": f"{self.sim_url}/api/v2",
            "ROUTES_FILE": str(self.routes),
            "SINK_URL": self.sink_url,
            "HOOK_SECRET": HOOK_SECRET,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "HOST": "127.0.0.1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            **self.settings,
            **extra,
        }

    # -- processes -------------------------------------------------------------------------

    def start_web(self, **extra: str) -> Service:
        port = free_port()
        web = Service(cli("web"), env=self.env(PORT=str(port), **extra), log_path=self.tmp / f"web-{port}.log")
        self.processes.append(web.start())
        self.base = f"http://127.0.0.1:{port}"
        web.wait_http(self.base + "/healthz")
        return web

    def start_workers(self, count: int, **extra: str) -> list[Service]:
        started = []
        for _ in range(count):
            log = self.tmp / f"worker-{len(self.processes)}.log"
            worker = Service(cli("worker"), env=self.env(**extra), log_path=log)
            self.processes.append(worker.start())
            started.append(worker)
        return started

    def wait_workers(self, workers: list[Service], timeout: float = 60) -> None:
        """Until each of these worker processes has registered in Redis: a worker still starting
        exits on a Redis it cannot reach (as documented), so a test that stops Redis waits first."""
        pids = {w.process.pid for w in workers if w.process is not None}

        def registered() -> bool:
            return pids <= {w.pid for w in Worker.all(connection=self.client)}

        wait_until(registered, f"{len(pids)} worker processes registered", timeout, details=self.log_text)

    def kill(self, service: Service) -> None:
        """SIGKILL the worker itself, as the OOM killer does; its forked scheduler lives on."""
        assert service.process is not None
        self.orphans += descendants(service.process.pid)
        service.process.send_signal(signal.SIGKILL)
        service.process.wait(timeout=5)

    def close(self) -> None:
        for service in self.processes:
            if service.process is not None:
                self.orphans += descendants(service.process.pid)
        stop_all(self.processes, timeout=5)
        for pid in self.orphans:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.http.close()
        self.client.close()

    def log_text(self) -> str:
        return "\n".join(f"== {s.log_path.name}\n{s.output()[-3000:]}" for s in self.processes)

    # -- events ----------------------------------------------------------------------------

    def events(self, count: int, *, failed_every: int = 2) -> list[dict[str, Any]]:
        """`count` workflow-completed payloads the simulator can answer for; every
        `failed_every`-th one failed, the others successful."""
        template = load_fixture("workflow-completed.failed.github-oauth.derived.json")
        payloads = []
        for _ in range(count):
            self.serial += 1
            payload = fresh(copy.deepcopy(template))
            payload["id"] = str(uuid.uuid4())
            payload["workflow"]["id"] = str(uuid.uuid4())
            payload["workflow"]["status"] = "failed" if self.serial % failed_every == 0 else "success"
            payload["pipeline"]["id"] = str(uuid.uuid4())
            payload["pipeline"]["number"] = 5000 + self.serial
            self.simulator.dataset.add_workflow_from_webhook(payload)
            payloads.append(payload)
        return payloads

    def post(self, payload: dict[str, Any]) -> httpx.Response:
        return self.http.post(self.base + URL, **signed(payload))

    def retry_refused(self, refused: list[dict[str, Any]], *, tries: int = 5) -> None:
        """Post again what was refused, as CircleCI retries what it was not answered 2xx, until each is
        accepted (200 or 202): a Redis just back may refuse once more (the web's pool reconnecting)."""
        for _ in range(tries):
            refused = [p for p in refused if self.post(p).status_code not in (200, 202)]
            if not refused:
                return
        raise AssertionError(f"{len(refused)} deliveries still refused after {tries} retries")

    def post_all(self, payloads: list[dict[str, Any]], *, copies: int = 1, concurrency: int = 16) -> list[int]:
        """Every payload `copies` times, concurrently; the status codes."""
        batch = [p for p in payloads for _ in range(copies)]
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(lambda p: self.post(p).status_code, batch))

    # -- what the sink shows ---------------------------------------------------------------

    def messages(self, handler: str) -> Counter[str]:
        """Messages a handler's destination took (answered 2xx), counted by event id."""
        return Counter(r.body["event_id"] for r in self.sink.delivered(PATHS[handler]))

    @staticmethod
    def expected(payloads: list[dict[str, Any]]) -> dict[str, set[str]]:
        return {
            "audit": {p["id"] for p in payloads},
            "failures": {p["id"] for p in payloads if p["workflow"]["status"] == "failed"},
        }

    def wait_delivered(self, payloads: list[dict[str, Any]], *, timeout: float) -> float:
        """Wait until each handler has every event it subscribes to, then until no job is left
        (queued, taken, running or scheduled), so a late duplicate would show. Returns the seconds
        waited for the deliveries."""
        started = time.monotonic()
        want = self.expected(payloads)

        def complete() -> bool:
            return all(want[h] <= set(self.messages(h)) for h in PATHS)

        try:
            wait_until(complete, "every event delivered to every subscribed handler", timeout, step=0.1)
        except AssertionError:
            missing = {h: len(want[h] - set(self.messages(h))) for h in PATHS}
            raise AssertionError(f"missing per handler: {missing}\n{self.log_text()}") from None
        elapsed = time.monotonic() - started
        self.wait_idle()
        return elapsed

    def wait_idle(self, timeout: float = 30) -> None:
        """Until the events queue has no job queued, taken (LMOVEd), running or scheduled. Raw
        counts: RQ's registry `count` would first fail the jobs whose lease lapsed."""
        queue = Queue("events", connection=self.client)
        keys = (queue.key, queue.intermediate_queue_key)
        registries = (queue.started_job_registry.key, queue.scheduled_job_registry.key)

        def idle() -> bool:
            with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.llen(key)
                for key in registries:
                    pipe.zcard(key)
                try:
                    return not any(pipe.execute())
                except redis_py.ConnectionError:  # a scenario restarting Redis
                    return False

        wait_until(idle, "no job left on the events queue", timeout, details=self.log_text)

    def assert_delivered_once(self, payloads: list[dict[str, Any]]) -> None:
        """Exactly one message per (event, subscribed handler): none missing, none doubled, none extra."""
        for handler, ids in self.expected(payloads).items():
            counts = self.messages(handler)
            assert set(counts) == ids, f"{handler}: {len(ids - set(counts))} missing, {len(set(counts) - ids)} extra"
            doubled = {k: v for k, v in counts.items() if v != 1}
            assert not doubled, f"{handler}: posted more than once: {doubled}"


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Callable[..., Scenario]]:
    """`scenario(appendonly=False, defaults=False)` builds and returns a Scenario; everything stops
    at the end. `defaults`: the processes run with the project's default settings, not FAST."""
    with contextlib.ExitStack() as stack:

        def build(*, appendonly: bool = False, defaults: bool = False) -> Scenario:
            redis = RedisServer(tmp_path / "redis", appendonly=appendonly).start()
            stack.callback(redis.stop)
            sim_app = create_simulator(Dataset(), token=TOKEN)
            sink_app = create_sink()
            sim_url = stack.enter_context(running(sim_app))
            sink_url = stack.enter_context(running(sink_app))
            built = Scenario(
                tmp_path, redis, sim_app.state.simulator, sink_app.state.sink, sim_url, sink_url, fast=not defaults
            )
            stack.callback(built.close)
            return built

        yield build
