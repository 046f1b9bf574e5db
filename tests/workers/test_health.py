"""The worker's HTTP port: /healthz for liveness, /readyz for Redis, /metrics."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from redis import Redis
from structlog.testing import capture_logs

from config.settings import Settings
from tests.clock import FakeClock
from workers.health import HealthServer, serve_health
from workers.supervisor import HUNG_GRACE_SECONDS, Supervisor

pytestmark = pytest.mark.integration


@pytest.fixture
def supervisor(redis: Redis, redis_url: str) -> Iterator[Supervisor]:
    """A worker process's keeper whose two worker threads are alive (stand-ins that wait), on a fake clock."""
    settings = Settings.from_environ({"REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"})
    keeper = Supervisor(redis, "events", settings, concurrency=2, clock=FakeClock())
    done = threading.Event()
    for index in range(2):
        keeper.threads[index] = threading.Thread(target=done.wait, daemon=True)
        keeper.threads[index].start()
    yield keeper
    done.set()


@pytest.fixture
def server(supervisor: Supervisor) -> Iterator[HealthServer]:
    registry = CollectorRegistry()
    Counter("circleci_events_test", "a sample", registry=registry).inc()
    started = serve_health(supervisor, registry, free_port())
    assert started is not None
    yield started
    started.shutdown()
    started.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(server: HealthServer, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.server_address[1]}{path}", timeout=5)


def test_a_healthy_process_answers_200_on_both_probes(server: HealthServer) -> None:
    assert get(server, "/healthz").json() == {"status": "ok", "problems": []}
    assert get(server, "/readyz").status_code == 200
    assert "circleci_events_test_total 1.0" in get(server, "/metrics").text


def test_a_thread_stuck_past_its_jobs_timeout_fails_liveness(server: HealthServer, supervisor: Supervisor) -> None:
    worker = supervisor.workers[1]
    worker.busy_timeout = 10
    worker.busy_since = supervisor.clock.monotonic() - 10 - HUNG_GRACE_SECONDS - 1
    answer = get(server, "/healthz")
    assert answer.status_code == 503
    assert answer.json()["problems"] == [f"worker thread 2 is {HUNG_GRACE_SECONDS + 1:.0f} s past its job's timeout"]


def test_a_dead_worker_thread_fails_liveness(server: HealthServer, supervisor: Supervisor) -> None:
    supervisor.threads[0] = threading.Thread(target=lambda: None)  # never started: not alive
    assert get(server, "/healthz").status_code == 503
    assert "worker thread 1 is not running" in get(server, "/healthz").json()["problems"]


def test_readiness_fails_while_redis_does_not_answer(server: HealthServer, supervisor: Supervisor) -> None:
    supervisor.redis = Redis(port=free_port(), socket_connect_timeout=0.5)  # nothing listens there
    answer = get(server, "/readyz")
    assert answer.status_code == 503 and answer.json()["status"] == "not_ready"


def test_a_taken_port_moves_to_the_next(supervisor: Supervisor) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = serve_health(supervisor, CollectorRegistry(), taken.getsockname()[1])
        assert server is not None
        try:
            assert server.server_address[1] != taken.getsockname()[1]
        finally:
            server.shutdown()
            server.server_close()


def test_an_unknown_path_is_a_404_listing_the_paths(server: HealthServer) -> None:
    answer = get(server, "/nope")
    assert answer.status_code == 404 and answer.json()["paths"] == ["/healthz", "/readyz", "/metrics"]


def test_it_listens_on_this_host_only_unless_told_otherwise() -> None:
    """The web's HOST (0.0.0.0 in containers) is not the worker port's (issue 23 item 4)."""
    assert Settings.from_environ({"HOST": "0.0.0.0"}).worker_http_host == "127.0.0.1"
    assert Settings.from_environ({"WORKER_HTTP_HOST": "0.0.0.0"}).worker_http_host == "0.0.0.0"


def test_idle_connections_past_the_cap_are_closed_not_given_a_thread(server: HealthServer) -> None:
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", server.server_address[1])) for _ in range(200)]
    try:
        deadline = time.monotonic() + 10
        while threading.active_count() - before < 16 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert threading.active_count() - before <= 16  # was one thread per connection: 200
    finally:
        for connection in idle:
            connection.close()


def test_reset_connections_are_sampled_json_lines_not_tracebacks(
    server: HealthServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with capture_logs() as logs:
        for _ in range(100):
            connection = socket.create_connection(("127.0.0.1", server.server_address[1]))
            connection.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()  # RST
        assert "status" in get(server, "/healthz").json()  # still answering
    assert "Traceback" not in capsys.readouterr().err
    failed = [line for line in logs if line["event"] == "worker_http_connection_failed"]
    assert len(failed) <= 3 and all(set(line) >= {"error", "client", "suppressed"} for line in failed)
