"""The worker process's HTTP port (WORKER_HTTP_PORT): health for orchestrators, and its metrics.

    GET /healthz   200 while the process keeps its threads: every worker thread running, none
                   stuck past its job's timeout (Kubernetes: livenessProbe); 503 naming what is wrong
    GET /readyz    200 while Redis answers a PING (Kubernetes: readinessProbe); 503 otherwise
    GET /metrics   the delivery metrics, Prometheus text format

Several worker processes on one host take `port`, `port + 1`, ... (one each; each logs its own).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

if TYPE_CHECKING:
    from workers.supervisor import Supervisor

log = structlog.get_logger("workers.health")
PORT_TRIES = 16
READY_TIMEOUT_SECONDS = 2.0


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], supervisor: Supervisor, registry: CollectorRegistry) -> None:
        super().__init__(address, HealthHandler)
        self.supervisor = supervisor
        self.registry = registry


class HealthHandler(BaseHTTPRequestHandler):
    server: HealthServer

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
