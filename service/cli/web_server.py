"""The web process: uvicorn serving the receiver, as one process or several sharing one socket.

    serve_web(settings, processes=1)    this process serves (the Procfile's `web:` line)
    serve_web(settings, processes=N)    this process binds the port and keeps N processes serving it

With several, uvicorn's own process manager (`uvicorn.supervisors.Multiprocess`, what `uvicorn
--workers N` runs) starts N processes that accept connections from the one listening socket; the
kernel gives each connection to one of them. It starts a process again when one dies or stops
answering its pings, SIGTTIN and SIGTTOU add and remove one, and SIGTERM or SIGINT stops them all
(each finishes the requests it holds) before the manager exits.

Each process builds its own app in WebConfig.load(): its Redis pool, its HTTP protocol with the
header limits, its per-client rate limit and WEB_MAX_CONNECTIONS, which are therefore per
process. The Prometheus metrics are not: with several processes they live in prometheus_client's
multiprocess files, in a directory this process makes and removes, and every process's
/metrics answers the sum over all of them (service/metrics.py).
"""

from __future__ import annotations

import gc
import os
import tempfile
from typing import Any

import structlog
import uvicorn
from uvicorn.supervisors import Multiprocess

from config.settings import Settings
from config.version import version
from service.cli.common import load_settings

log = structlog.get_logger("service.cli")
# prometheus_client reads it when it is first imported: each process of the manager is a fresh
# interpreter (multiprocessing's spawn) that inherits it from this one.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def serve_web(settings: Settings, *, processes: int) -> None:
    if processes == 1:
        uvicorn.Server(WebConfig(settings, processes=1)).run()
        return
    with tempfile.TemporaryDirectory(prefix="circleci-events-metrics-") as metrics_dir:
        os.environ[METRICS_DIR_VARIABLE] = metrics_dir
        config = WebConfig(settings, processes=processes, metrics_dir=metrics_dir)
        Multiprocess(config, sockets=[config.bind_socket()]).run()


class WebConfig(uvicorn.Config):
    """uvicorn's settings for the receiver; the app and its protocol are built by load(), in the
    process that serves them (the manager sends this object, pickled, to each process it starts)."""

    def __init__(self, settings: Settings, *, processes: int, metrics_dir: str | None = None) -> None:
        super().__init__(
            "service.app:create_app",  # replaced in load(): the manager's processes need something to pickle
            host=settings.host,
            port=settings.port,
            workers=processes,
            loop="uvloop",
            # past it uvicorn answers 503 (plain text, connection closed) to each new request
            limit_concurrency=settings.web_max_connections,
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
            log_config=None,
            access_log=False,
            server_header=False,
        )
        self.metrics_dir = metrics_dir

    def load(self) -> None:
        from service.app import create_app
        from service.http_protocol import ClientConnections, guarded_http_protocol
        from service.metrics import WebMetrics
        from service.trusted_proxies import PeerAddress

        settings = load_settings(role="web")  # a process of the manager starts with nothing configured
        app = create_app(settings, web_metrics=WebMetrics(shared_dir=self.metrics_dir))
        self.app: Any = app
        self.http: Any = guarded_http_protocol(
            max_header_bytes=settings.web_max_header_bytes,
            header_timeout=settings.web_header_timeout_seconds,
            log_sampler=app.state.rejection_log,
            clients=ClientConnections(
                max_connections=settings.web_max_client_connections,
                max_incomplete=settings.web_max_client_incomplete,
                exempt=settings.trusted_proxies,
            ),
        )
        super().load()
        # outside uvicorn's proxy headers, which replace the client with X-Forwarded-For's: the peer itself
        self.loaded_app = PeerAddress(self.loaded_app)
        log.info("web_started", version=version(), pid=os.getpid(), processes=self.workers, host=settings.host,
                 port=settings.port, queue=settings.events_queue, secrets=len(settings.webhook_secrets),
                 max_connections=settings.web_max_connections)  # fmt: skip
        tune_gc()


def tune_gc() -> None:
    """Objects built at start live as long as the process: keep them out of every collection,
    and collect the young generation less often (a webhook request allocates a few thousand
    objects). Measured with bench/ingest: p99 43 -> 23 ms, 4.2k -> 5.3k events/s."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
