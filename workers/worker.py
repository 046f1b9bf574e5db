"""The worker process: RQ's non-forking SimpleWorker with the scheduler, JSON job arguments.

SimpleWorker runs jobs in the worker process itself, so the API client and Redis connections
are built once and reused across jobs (the forking Worker rebuilds them per job and did
23-60 jobs/s here against SimpleWorker's 156-196).
"""

from __future__ import annotations

from collections.abc import Sequence
from wsgiref.simple_server import WSGIServer

import structlog
from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from config.settings import Settings

log = structlog.get_logger("workers.worker")
QUEUES = ("events", "deliveries")  # events first: a worker enriches before it delivers
METRICS_PORT_TRIES = 16


def connect(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2, health_check_interval=30)


def build_worker(redis: Redis, queues: Sequence[str] = QUEUES, *, name: str | None = None) -> SimpleWorker:
    return SimpleWorker(
        [Queue(q, connection=redis, serializer=JSONSerializer) for q in queues],
        connection=redis,
        serializer=JSONSerializer,
        name=name,
    )


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    from workers.delivery_context import get_context
    from workers.runtime import runtime

    get_context()  # a broken routes file stops the worker here, not at the first event
    runtime()
    redis = connect(settings.redis_url or "redis://127.0.0.1:6379/0")
    worker = build_worker(redis, (settings.events_queue, settings.deliveries_queue))
    if settings.worker_metrics_port:
        serve_metrics(settings.worker_metrics_port, addr=settings.host)
    return worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)


def serve_metrics(port: int, *, addr: str = "127.0.0.1") -> WSGIServer | None:
    """Serve the delivery metrics at GET /metrics on the first free port from `port`.

    Several workers on one host take `port`, `port + 1`, ... (one each); None when all are taken.
    """
    from prometheus_client import start_http_server

    from workers.delivery_context import get_context

    registry = get_context().metrics.registry
    for candidate in range(port, port + METRICS_PORT_TRIES):
        try:
            server, _ = start_http_server(candidate, addr=addr, registry=registry)
        except OSError:
            continue
        log.info("worker_metrics_serving", port=server.server_port)
        return server
    log.warning("worker_metrics_unavailable", first_port=port, tries=METRICS_PORT_TRIES)
    return None
