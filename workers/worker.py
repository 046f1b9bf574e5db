"""The worker process: several RQ workers in one process, one per thread, JSON job arguments.

An enrichment job spends most of its time waiting for CircleCI, so one process runs
WORKER_CONCURRENCY jobs at once. Each is a whole RQ worker of its own (non-forking, like
SimpleWorker): it registers itself, takes a job with LMOVE into RQ's intermediate list and
keeps it in the started registry, so a process killed mid-job loses nothing that N separate
worker processes would not. They share the process's API client, HTTP clients and Redis pool,
which are built once (building an httpx client costs ~27 ms of CPU, more than a job's calls).

A job past its timeout is stopped by RQ's timer, which raises in its thread: that lands once
the thread runs Python again, so a job blocked in a call waits for the call's own timeout
(httpx and Redis calls here all have one).

The worker in the main thread takes the signals and runs the scheduler. On SIGTERM or Ctrl-C
every worker finishes the job it has and stops; a second signal stops the process at once,
and jobs it was running come back as abandoned ones do. RQ forks its scheduler process before
the other threads start; only if the process holding the scheduler lock dies does a later
maintenance pass fork one while they run (the child opens its own Redis connection and logs
through the standard library, whose locks are reset in a forked child).

A worker that dies mid-job (SIGKILL, OOM) leaves the job in RQ's started registry; another
worker's maintenance finds it once the job's timeout plus a grace has passed and retries it
(the job's `Retry`). RQ's defaults make that 60 s after the timeout, found within 10 minutes;
WORKER_ABANDONED_GRACE_SECONDS and WORKER_MAINTENANCE_INTERVAL_SECONDS shorten both. A job it
had taken but not started yet comes back from RQ's intermediate list after one minute.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, start_http_server
from redis import Redis
from redis.client import Pipeline
from rq import Queue, SimpleWorker
from rq.defaults import DEFAULT_WORKER_TTL
from rq.exceptions import DeserializationError
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty
from rq.utils import now

from config.errors import EventUndecodable
from config.settings import Settings
from workers.connection import connect
from workers.context import WorkerContext, install
from workers.delivery.dead_letters import UNDECODABLE, DeadLetter, DeadLetters
from workers.durability import ensure_durable

log = structlog.get_logger("workers.worker")
# One queue for enrichment and delivery jobs. From a single queue RQ takes a job with LMOVE into
# an intermediate list its maintenance recovers from, so a worker killed between taking a job
# and starting it loses nothing; from several queues it pops with BLPOP, and such a job was gone.
# Delivery jobs go to the front of the queue: a worker finishes the notifications it has started
# before it enriches the next event (else a burst of events holds back every delivery).
QUEUES = ("events",)
METRICS_PORT_TRIES = 16
# RQ refreshes the worker's key (TTL worker_ttl + 60 s) three times per job; once a second is plenty.
HEARTBEAT_EVERY = timedelta(seconds=1)
# A worker in a thread cannot be interrupted by a signal: idle, it looks for a stop this often.
THREAD_IDLE_SECONDS = 1
# RQ holds its registry-cleaning lock for up to 899 s: a worker killed mid-clean-up (the OOM
# killer does not wait) stopped every recovery of abandoned jobs for 15 minutes. A pass takes
# milliseconds to seconds.
MAINTENANCE_LOCK_SECONDS = 60


def dead_letter_undecodable(job: Job, exc_type: type[BaseException], exc: BaseException, tb: Any, *, ttl: int) -> bool:
    """RQ exception handler: a job whose data or payload cannot be read is dead-lettered, not retried.

    Decoding fails the same way every time (a RecursionError in the JSON decoder, a payload
    without its fields), so RQ's retries would only hide it; the job goes to RQ's failed
    registry with its traceback, and a dead letter says so where operators look.
    """
    if not isinstance(exc, DeserializationError | EventUndecodable):
        return True  # not ours: the next handler (RQ's default) decides
    job.retries_left = 0
    cause = exc.__cause__ or exc
    excerpt = f"{type(cause).__name__}: {cause}"[:200]
    letter = DeadLetter(
        delivery_id=f"job:{job.id}",
        event_id=_event_id_of(job),
        handler="-",
        reason=UNDECODABLE,
        body_excerpt=excerpt,
        attempts=1,
        dead_at=time.time(),
    )
    DeadLetters(job.connection, ttl=ttl).put(letter)
    log.error("job_undecodable", job_id=job.id, event_id=letter.event_id, error=excerpt)
    return True


def _event_id_of(job: Job) -> str:
    try:
        envelope = job.args[0]
        return str(envelope["event_id"]) if isinstance(envelope, dict) else "-"
    except Exception:  # the data itself is what could not be read
        return "-"


class JobQueue(Queue):
    """RQ's queue with a registry-cleaning lock that a killed worker holds for a minute at most."""

    def acquire_maintenance_lock(self) -> bool:
        return bool(self.connection.set(self.registry_cleaning_key, 1, nx=True, ex=MAINTENANCE_LOCK_SECONDS))


class Worker(SimpleWorker):
    """One RQ worker, running its jobs in the thread that calls `work()`.

    Its jobs count as abandoned `abandoned_grace` seconds after their timeout. The one in the
    main thread passes a stop request on to its `crew` (the workers in the other threads) and
    calls `ready` after its first maintenance pass.
    """

    abandoned_grace = 60  # RQ's SimpleWorker adds 60 s
    queue_class = JobQueue

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.crew: list[Worker] = []
        self.ready: Callable[[], None] | None = None

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        if self.ready is not None:  # the first pass: start-up is over
            ready, self.ready = self.ready, None
            ready()

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        finally:
            structlog.contextvars.clear_contextvars()  # the worker's own lines are no job's

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        if job.timeout is None or job.timeout <= 0:
            return int(super().get_heartbeat_ttl(job, working_time))
        # SimpleWorker sends no heartbeat while a job runs; the job's own timeout ends it first.
        return int(job.timeout) + self.abandoned_grace

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's heartbeat in one round trip (not three), and at most once a second on its own."""
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)
            return
        if timeout is None and self.last_heartbeat is not None and now() - self.last_heartbeat < HEARTBEAT_EVERY:
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(timeout, pipeline=pipe)
            pipe.execute()

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()  # type: ignore[no-untyped-call]
        for worker in self.crew:
            worker.stop_after_job()

    def stop_after_job(self) -> None:
        """Finish the current job, if any, and leave the work loop (RQ's flag for a warm stop)."""
        self._stop_requested = True


class ThreadWorker(Worker):
    """A worker outside the main thread: no signal handlers, a timer for job timeouts."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        """Signals reach the main thread only; its worker stops this one."""

    @property
    def should_run_maintenance_tasks(self) -> bool:
        """One maintenance pass per process (the main thread's worker): fewer lock holders to kill."""
        return False

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        """RQ's wait for a job, in waits of a second that end early on a stop request."""
        if timeout is None:  # burst mode: RQ does not block
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        while not self._stop_requested:
            taken = super().dequeue_job_and_maintain_ttl(timeout, THREAD_IDLE_SECONDS)
            if taken is not None:
                return taken
        return None


def build_worker(
    redis: Redis,
    queues: Sequence[str] = QUEUES,
    *,
    name: str | None = None,
    settings: Settings | None = None,
    worker_class: type[Worker] = Worker,
) -> Worker:
    settings = settings or Settings()
    interval = settings.worker_maintenance_interval_seconds
    worker = worker_class(
        [JobQueue(q, connection=redis, serializer=JSONSerializer) for q in queues],
        connection=redis,
        serializer=JSONSerializer,
        exception_handlers=[partial(dead_letter_undecodable, ttl=settings.enriched_event_ttl_seconds)],
        name=name,
        maintenance_interval=interval,
        # an idle worker waits worker_ttl - 15 s for a job before it runs maintenance again
        worker_ttl=min(DEFAULT_WORKER_TTL, interval + 15),
    )
    worker.abandoned_grace = settings.worker_abandoned_grace_seconds
    return worker


class WorkerProcess:
    """`concurrency` workers on the same queues: one in the main thread, the rest in threads."""

    def __init__(self, redis: Redis, queues: Sequence[str], settings: Settings, concurrency: int) -> None:
        self.settings = settings
        self.lead = build_worker(redis, queues, settings=settings)
        self.lead.crew = [
            build_worker(redis, queues, settings=settings, worker_class=ThreadWorker) for _ in range(concurrency - 1)
        ]
        self.failed = False

    def work(self, *, burst: bool = False) -> bool:
        """Run until stopped (or, in burst mode, until the queues are empty); False if a worker failed.

        The threads start once the main thread's worker has forked its scheduler and made its
        first maintenance pass: a fork copies no other thread's held locks, and a kill in the
        first moments does not land in the pass (RQ's cleaning lock would stay held).
        """
        threads: list[threading.Thread] = []

        def start_crew() -> None:
            for i, worker in enumerate(self.lead.crew, start=1):
                thread = threading.Thread(target=self._crew_work, args=(worker, burst), name=f"rq-worker-{i}")
                thread.daemon = True  # a cold stop (a second signal) does not wait for them
                thread.start()
                threads.append(thread)

        self.lead.ready = start_crew
        self.lead.work(burst=burst, with_scheduler=True, logging_level=self.settings.log_level)
        if not burst:  # the lead stopped on a signal or a failure: so does its crew
            for worker in self.lead.crew:
                worker.stop_after_job()
        for thread in threads:
            thread.join()  # a second signal raises SystemExit here: a cold stop
        return not self.failed

    def _crew_work(self, worker: Worker, burst: bool) -> None:
        worker.work(burst=burst, logging_level=self.settings.log_level)
        if not burst and not worker._stop_requested:
            # RQ's loop ended on its own (Redis timed out, an unexpected error): the whole
            # process stops, so its supervisor starts a healthy one instead of a smaller one.
            log.error("worker_thread_stopped", worker=worker.name)
            self.failed = True
            os.kill(os.getpid(), signal.SIGTERM)  # the main thread's worker stops them all


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    """Build the process's context from `settings` (a broken routes file stops here, not at the
    first event), install it, and run WORKER_CONCURRENCY workers until stopped."""
    context = WorkerContext.build(settings)
    install(context)
    # RQ's own client: RQ raises its socket timeout to wait for jobs, the jobs' client keeps 5 s
    redis = connect(str(settings.redis_url))
    ensure_durable(redis, allow_eviction=settings.redis_allow_eviction, log=log)
    process = WorkerProcess(redis, (settings.events_queue,), settings, settings.worker_concurrency)
    if settings.worker_metrics_port:
        serve_metrics(context.metrics.registry, settings.worker_metrics_port, addr=settings.host)
    try:
        return process.work(burst=burst)
    finally:
        install(None)
        context.close()


def serve_metrics(registry: CollectorRegistry, port: int, *, addr: str = "127.0.0.1") -> WSGIServer | None:
    """Serve the delivery metrics at GET /metrics on the first free port from `port`.

    Several workers on one host take `port`, `port + 1`, ... (one each); None when all are taken.
    """
    for candidate in range(port, port + METRICS_PORT_TRIES):
        try:
            server, _ = start_http_server(candidate, addr=addr, registry=registry)
        except OSError:
            continue
        log.info("worker_metrics_serving", port=server.server_port)
        return server
    log.warning("worker_metrics_unavailable", first_port=port, tries=METRICS_PORT_TRIES)
    return None
