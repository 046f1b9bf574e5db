"""The worker process's HTTP port (WORKER_HTTP_PORT): health for orchestrators, and its metrics.

    GET /healthz   200 while the process keeps its threads: every worker thread running, none
                   stuck past its job's timeout (Kubernetes: livenessProbe); 503 naming what is wrong
    GET /readyz    200 while Redis answers a PING (Kubernetes: readinessProbe); 503 otherwise
    GET /metrics   the delivery metrics, Prometheus text format

Several worker processes on one host take `port`, `port + 1`, ... (one each; each logs its own).

It listens on WORKER_HTTP_HOST, 127.0.0.1 unless told otherwise (the Kubernetes manifest sets
0.0.0.0 for the kubelet's probes). Nothing on the network may cost it much (issue 23 item 4): a
connection must send its request within READ_TIMEOUT_SECONDS, at most MAX_CONNECTIONS are served
at once (another is closed at once; 2,000 idle connections used to make 2,017 threads), and a
connection that fails (reset, timed out) is one `worker_http_connection_failed` JSON line, at
most one per interval with the count of those left out, never a traceback on stderr.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from config.log_sampler import LogSampler

if TYPE_CHECKING:
    from workers.supervisor import Supervisor

log = structlog.get_logger("workers.health")
PORT_TRIES = 16
READY_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0
MAX_CONNECTIONS = 16


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        supervisor: Supervisor,
        registry: CollectorRegistry,
        *,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        super().__init__(address, HealthHandler)
        self.supervisor = supervisor
        self.registry = registry
        self.slots = threading.BoundedSemaphore(max_connections)
        self.errors = LogSampler()

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, up to the cap; past it the connection is closed unanswered."""
        if not self.slots.acquire(blocking=False):
            self._failed(client_address, "too_many_connections")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """socketserver prints a traceback to stderr: one sampled JSON line instead."""
        self._failed(client_address, type(sys.exc_info()[1]).__name__)

    def _failed(self, client_address: Any, error: str) -> None:
        suppressed = self.errors.admit(error)
        if suppressed is not None:
            client = client_address[0] if isinstance(client_address, tuple) else str(client_address)
            log.warning("worker_http_connection_failed", error=error, client=client, suppressed=suppressed)


class HealthHandler(BaseHTTPRequestHandler):
    server: HealthServer
    timeout = READ_TIMEOUT_SECONDS  # the socket's: a request line and headers that do not come in time end it

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except TimeoutError:
            self.close_connection = True
            self.server._failed(self.client_address, "read_timeout")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            health = self.server.supervisor.health()
            self._json(200 if health.ok else 503, {"status": "ok" if health.ok else "failing",
                                                   "problems": health.problems})  # fmt: skip
        elif path == "/readyz":
            self._ready()
        elif path == "/metrics":
            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        else:
            self._json(404, {"error": "not_found", "paths": ["/healthz", "/readyz", "/metrics"]})

    def _ready(self) -> None:
        redis = self.server.supervisor.redis
        try:
            ok = bool(redis.ping())
            problem = None
        except Exception as exc:
            ok, problem = False, f"redis: {type(exc).__name__}"
        self._json(200 if ok else 503, {"status": "ready" if ok else "not_ready", "problem": problem})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds are not news."""


def serve_health(
    supervisor: Supervisor, registry: CollectorRegistry, port: int, *, addr: str = "127.0.0.1"
) -> HealthServer | None:
    """Serve on the first free port from `port`, in a daemon thread; None when all are taken."""
    for candidate in range(port, port + PORT_TRIES):
        try:
            server = HealthServer((addr, candidate), supervisor, registry)
        except OSError:
            continue
        threading.Thread(target=server.serve_forever, name="worker-http", daemon=True).start()
        log.info("worker_http_serving", port=server.server_address[1], paths=["/healthz", "/readyz", "/metrics"])
        return server
    log.error("worker_http_unavailable", first_port=port, tries=PORT_TRIES)
    return None
