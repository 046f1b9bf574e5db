"""The worker process: RQ's non-forking SimpleWorker with the scheduler, JSON job arguments.

SimpleWorker runs jobs in the worker process itself, so the API client and Redis connections
are built once and reused across jobs (the forking Worker rebuilds them per job and did
23-60 jobs/s here against SimpleWorker's 156-196).

A worker that dies mid-job (SIGKILL, OOM) leaves the job in RQ's started registry; another
worker's maintenance finds it once the job's timeout plus a grace has passed and retries it
(the job's `Retry`). RQ's defaults make that 60 s after the timeout, found within 10 minutes;
WORKER_ABANDONED_GRACE_SECONDS and WORKER_MAINTENANCE_INTERVAL_SECONDS shorten both.
"""

from __future__ import annotations

from collections.abc import Sequence
from wsgiref.simple_server import WSGIServer

import structlog
from redis import Redis
from rq import Queue, SimpleWorker
from rq.defaults import DEFAULT_WORKER_TTL
from rq.job import Job
from rq.serializers import JSONSerializer

from config.settings import Settings

log = structlog.get_logger("workers.worker")
# One queue for enrichment and delivery jobs. From a single queue RQ takes a job with LMOVE into
# an intermediate list its maintenance recovers from, so a worker killed between taking a job
# and starting it loses nothing; from several queues it pops with BLPOP, and such a job was gone.
# Delivery jobs go to the front of the queue: a worker finishes the notifications it has started
# before it enriches the next event (else a burst of events holds back every delivery).
QUEUES = ("events",)
METRICS_PORT_TRIES = 16


def connect(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2, health_check_interval=30)


class Worker(SimpleWorker):
    """SimpleWorker whose jobs count as abandoned `abandoned_grace` seconds after their timeout."""

    abandoned_grace = 60  # RQ's SimpleWorker adds 60 s

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        if job.timeout is None or job.timeout <= 0:
            return int(super().get_heartbeat_ttl(job, working_time))
        # SimpleWorker sends no heartbeat while a job runs; the job's own timeout ends it first.
        return int(job.timeout) + self.abandoned_grace


def build_worker(
    redis: Redis, queues: Sequence[str] = QUEUES, *, name: str | None = None, settings: Settings | None = None
) -> SimpleWorker:
    settings = settings or Settings()
    interval = settings.worker_maintenance_interval_seconds
    worker = Worker(
        [Queue(q, connection=redis, serializer=JSONSerializer) for q in queues],
        connection=redis,
        serializer=JSONSerializer,
        name=name,
        maintenance_interval=interval,
        # an idle worker waits worker_ttl - 15 s for a job before it runs maintenance again
        worker_ttl=min(DEFAULT_WORKER_TTL, interval + 15),
    )
    worker.abandoned_grace = settings.worker_abandoned_grace_seconds
    return worker


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    from workers.delivery_context import get_context
    from workers.runtime import runtime

    get_context()  # a broken routes file stops the worker here, not at the first event
    runtime()
    redis = connect(settings.redis_url or "redis://127.0.0.1:6379/0")
    worker = build_worker(redis, (settings.events_queue,), settings=settings)
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
