"""The worker process: RQ's non-forking SimpleWorker with the scheduler, JSON job arguments.

SimpleWorker runs jobs in the worker process itself, so the API client and Redis connections
are built once and reused across jobs (the forking Worker rebuilds them per job and did
23-60 jobs/s here against SimpleWorker's 156-196).
"""

from __future__ import annotations

from collections.abc import Sequence

from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from config.settings import Settings

QUEUES = ("events",)


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
    redis = connect(settings.redis_url or "redis://127.0.0.1:6379/0")
    worker = build_worker(redis, (settings.events_queue,))
    return worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)
