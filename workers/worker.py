"""One RQ worker, lean: the thread-run worker a worker process (workers/supervisor.py) runs several of.

Each is a whole RQ worker (non-forking, like SimpleWorker): it registers itself (`rq info` lists
it), takes a job with LMOVE into RQ's intermediate list, keeps it in RQ's started registry
while it runs and records the outcome where RQ's tooling looks. What differs from RQ is how
much Redis that costs and how long a dead worker's claim lasts; every override is below, named:

    prepare_execution       no Execution hash: the started registry entry is the record
    prepare_job_execution   one round trip: the job marked started, its lease claimed
                            (workers/lease.py), taken off the intermediate list
    handle_execution_ended  no extra heartbeat write
    handle_job_success      one round trip: status, result, finished registry, claim released
    cleanup_execution       the lease dropped too (RQ's failure paths call it)
    set_state, heartbeat    in memory; the process writes every worker's state and heartbeat
                            in one round trip every few seconds (Supervisor.beat)
    check_for_suspension    `rq suspend` honoured within SUSPENSION_CHECK_SECONDS, not per job

Jobs are `AllowedJob`s: a job naming a function outside workers/jobs.py's JOB_FUNCTIONS and
WORKER_ALLOWED_JOBS (or bound to an instance, or carrying a callback) is refused before RQ imports anything, logged as
`job_refused` and dead-lettered: whoever can write to Redis cannot make a worker run `os.system`.

RQ's defaults spend ~57 commands on a no-op job; this worker ~11. Failures and retries keep
RQ's own handling. A job past its timeout is stopped by the process's tick (workers/job_deadline.py;
RQ's timer thread per job in a worker without a process), which raises in its thread: that
lands once the thread runs Python again, so a job blocked in a call waits for the call's own
timeout (httpx and Redis calls here all have one).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from functools import partial
from typing import Any

import structlog
from redis import Redis
from redis.client import Pipeline
from rq import Queue, SimpleWorker
from rq.exceptions import DeserializationError
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty
from rq.utils import now, utcformat
from rq.worker.base import WorkerStatus

from config.errors import EventUndecodable, JobRefused
from config.settings import Settings
from workers import alerts
from workers.context import current
from workers.delivery.dead_letters import UNDECODABLE, DeadLetter, DeadLetters
from workers.job_deadline import JobDeadlines
from workers.jobs import JOB_FUNCTIONS
from workers.lease import Leases

log = structlog.get_logger("workers.worker")
# One queue for enrichment and delivery jobs. From a single queue RQ takes a job with LMOVE into
# an intermediate list its maintenance recovers from, so a worker killed between taking a job
# and starting it loses nothing; from several queues it pops with BLPOP, and such a job was gone.
# Delivery jobs go to the front of the queue: a worker finishes the notifications it has started
# before it enriches the next event (else a burst of events holds back every delivery).
QUEUES = ("events",)
# A worker in a thread cannot be interrupted by a signal: idle, it looks for a stop this often.
THREAD_IDLE_SECONDS = 1
# How long a worker leaving waits for its command channel's listener (idle in waits of
# THREAD_IDLE_SECONDS) to end; a listener still waiting then ends on its own (a daemon thread).
COMMAND_CHANNEL_STOP_SECONDS = 5 * THREAD_IDLE_SECONDS
# `rq suspend` is looked for this often (RQ looks before every job).
SUSPENSION_CHECK_SECONDS = 5.0
# RQ holds its registry-cleaning lock for up to 899 s: a worker killed mid-clean-up (the OOM
# killer does not wait) stopped every recovery of abandoned jobs for 15 minutes. A pass takes
# milliseconds to seconds.
MAINTENANCE_LOCK_SECONDS = 60
# The worker's key in Redis (what `rq info` lists) outlives its last heartbeat by this much.
WORKER_TTL_SECONDS = 60


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
    try:
        context = current()
    except RuntimeError:  # RQ's tooling or a test running jobs without a worker context: no one to tell
        return True
    alerts.dead_lettered(context, letter)
    return True


def _event_id_of(job: Job) -> str:
    try:
        envelope = job.args[0]
        return str(envelope["event_id"]) if isinstance(envelope, dict) else "-"
    except Exception:  # the data itself is what could not be read
        return "-"


class AllowedJob(Job):
    """RQ's job, running only the product's own job functions; see the module docstring."""

    allowed: frozenset[str] = JOB_FUNCTIONS

    @property
    def func(self) -> Any:
        name = self.func_name
        if name not in self.allowed or self.instance is not None:
            log.error("job_refused", job_id=self.id, func=str(name)[:200], reason="not one of the product's jobs")
            raise JobRefused(f"job {self.id} names {str(name)[:200]!r}, not one of the product's job functions")
        return super().func

    @property
    def success_callback(self) -> Any:
        return self._callback(self._success_callback_name, "success")

    @property
    def failure_callback(self) -> Any:
        return self._callback(self._failure_callback_name, "failure")

    @property
    def stopped_callback(self) -> Any:
        return self._callback(self._stopped_callback_name, "stopped")

    def _callback(self, name: str | None, kind: str) -> None:
        """The product sets no callbacks: one found on a job is not imported, and is logged."""
        if name:
            log.error("job_refused", job_id=self.id, func=name[:200], reason=f"{kind} callback")
        return None


class JobQueue(Queue):
    """RQ's queue with a registry-cleaning lock that a killed worker holds for a minute at most."""

    def acquire_maintenance_lock(self) -> bool:
        return bool(self.connection.set(self.registry_cleaning_key, 1, nx=True, ex=MAINTENANCE_LOCK_SECONDS))


class Worker(SimpleWorker):
    """One RQ worker, run in a thread of a worker process: its jobs' claims are leases in `leases`.

    The process (workers/supervisor.py) takes the signals, runs maintenance and the scheduler,
    renews the leases and writes the heartbeats; this worker runs jobs.
    """

    death_penalty_class = TimerDeathPenalty  # no SIGALRM outside the main thread; `deadlines` replace it
    queue_class = JobQueue
    job_class = AllowedJob

    def __init__(self, *args: Any, leases: Leases, deadlines: JobDeadlines | None = None, **kwargs: Any) -> None:
        """`deadlines`: the process's, whose tick stops a job past its timeout (workers/job_deadline.py);
        without them RQ's timer thread does, one per job."""
        super().__init__(*args, **kwargs)
        if deadlines is not None:
            self.death_penalty_class = deadlines.penalty  # type: ignore[assignment]
        self.leases = leases
        self.clock = leases.clock  # the process's: its supervisor measures busy_since by it
        self.busy_since: float | None = None  # monotonic, while a job runs
        self.busy_timeout: float | None = None
        self.written_state: str | None = None
        self._suspension_checked = 0.0

    # -- the process runs these, not each worker -------------------------------------------

    def _install_signal_handlers(self) -> None:
        """Signals reach the main thread only: the process passes a stop on (stop_after_job)."""

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return False

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """Only as part of RQ's own round trips (birth, death); else the process's `beat` writes it."""
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        self._state = state  # written by the process's next beat

    def beat(self, pipe: Pipeline, *, full: bool) -> None:
        """Queue this worker's heartbeat: its state when it changed, the key's TTL when `full`."""
        state = getattr(self._state, "value", self._state)  # RQ passes WorkerStatus members and plain strings
        if not full and state == self.written_state:
            return
        self.last_heartbeat = now()
        pipe.hset(self.key, mapping={"state": state, "last_heartbeat": utcformat(self.last_heartbeat)})
        if full:
            pipe.expire(self.key, self.worker_ttl + 60)
        self.written_state = state

    def check_for_suspension(self, burst: bool) -> None:
        if self.clock.monotonic() - self._suspension_checked < SUSPENSION_CHECK_SECONDS:
            return
        self._suspension_checked = self.clock.monotonic()
        super().check_for_suspension(burst)

    def subscribe(self) -> None:
        """RQ's command channel (`rq` shutdown, kill-horse, stop-job), listened to in waits of a second.

        RQ listens in waits of 60 s. Since redis-py 8.2 `PubSubWorkerThread.stop()` joins the
        listening thread, so RQ's teardown waits for that listener's wait to end: a worker that had
        already seen its unsubscription sat out up to a minute, past the shutdown grace.
        """
        # unused-ignore: redis-py types pubsub() from 8.2 on; RQ declares pubsub_thread as None
        self.pubsub = self.connection.pubsub()  # type: ignore[no-untyped-call, unused-ignore]
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=THREAD_IDLE_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def unsubscribe(self) -> None:
        """Leave the command channel; the listener closes its connection itself as it ends.

        RQ closes it too, from this thread, which raced the listener's own close once the
        listener waited a second instead of a minute ('NoneType' has no deregister_connect_callback).
        """
        if self.pubsub_thread is None:
            return
        self.pubsub.unsubscribe()
        self.pubsub_thread.stop()  # from redis-py 8.2 on this also waits for the listener to end
        self.pubsub_thread.join(timeout=COMMAND_CHANNEL_STOP_SECONDS)

    def stop_after_job(self) -> None:
        """Finish the current job, if any, and leave the work loop (RQ's flag for a warm stop)."""
        self._stop_requested = True

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        """RQ's wait for a job, in waits of a second that end early on a stop request."""
        if timeout is None:  # burst mode: RQ does not block
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        while not self._stop_requested:
            taken = super().dequeue_job_and_maintain_ttl(timeout, THREAD_IDLE_SECONDS)
            if taken is not None:
                return taken
        return None

    # -- one job, in two round trips ---------------------------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        finally:
            self.busy_since = self.busy_timeout = None
            structlog.contextvars.clear_contextvars()  # the worker's own lines are no job's

    def prepare_execution(self, job: Job) -> Execution:
        execution = Execution(uuid.uuid4().hex, job.id, connection=self.connection, worker_name=self.name)
        self.executions[execution.id] = execution
        self._state = WorkerStatus.BUSY
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        execution = self.execution
        assert execution is not None, "prepare_execution comes first"
        entry = execution.composite_key
        job.worker_name = self.name
        job.started_at = job.last_heartbeat = now()
        job._status = JobStatus.STARTED
        stamp = utcformat(job.started_at)
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.hset(
                job.key,
                mapping={"status": JobStatus.STARTED.value, "started_at": stamp, "last_heartbeat": stamp,
                         "worker_name": self.name},
            )  # fmt: skip
            if job.number_of_retries or job.ttl is not None:
                # a retried job may carry its failure's TTL, one enqueued with `ttl` its own; a job the
                # receiver or a fan-out queued has none (one command less per job)
                pipe.persist(job.key)
            pipe.zadd(job.started_job_registry.key, {entry: self.leases.expiry()})
            if remove_from_intermediate_queue:
                queue_key = Queue.redis_queue_namespace_prefix + job.origin
                intermediate = IntermediateQueue.get_intermediate_queue_key(queue_key)
                pipe.lrem(intermediate, 1, job.id)
            pipe.execute()
        self.leases.hold(entry, job.timeout)
        self.busy_since, self.busy_timeout = self.clock.monotonic(), job.timeout

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        job.ended_at = now()

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any, execution: Execution) -> None:
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        assert job.ended_at is not None and job.started_at is not None
        with self.connection.pipeline(transaction=False) as pipe:
            if result_ttl == 0:
                pipe.delete(job.key)
            else:
                pipe.hset(job.key, mapping={"status": JobStatus.FINISHED.value, "ended_at": utcformat(job.ended_at)})
                Result.create(
                    job, Result.Type.SUCCESSFUL, return_value=job._result, ttl=result_ttl, worker_name=self.name,
                    pipeline=pipe, execution_id=execution.id, execution_started_at=execution.created_at,
                    execution_ended_at=job.ended_at,
                )  # fmt: skip
                job.finished_job_registry.add(job, result_ttl, pipe)
                if result_ttl > 0:
                    pipe.expire(job.key, result_ttl)
            pipe.zrem(started_job_registry.key, execution.composite_key)
            pipe.execute()
        job._status = JobStatus.FINISHED
        self.leases.drop(execution.composite_key)
        self.executions.pop(execution.id, None)
        self.successful_job_count += 1
        self.total_working_time += (job.ended_at - job.started_at).total_seconds()

    def cleanup_execution(self, job: Job, pipeline: Pipeline, execution: Execution | None = None) -> None:
        super().cleanup_execution(job, pipeline, execution)
        if execution is not None:
            self.leases.drop(execution.composite_key)


def build_worker(
    redis: Redis,
    queues: Sequence[str] = QUEUES,
    *,
    settings: Settings | None = None,
    leases: Leases | None = None,
    deadlines: JobDeadlines | None = None,
) -> Worker:
    settings = settings or Settings()
    # the product's jobs, and the operator's own listed in WORKER_ALLOWED_JOBS
    job_class = type("AllowedJob", (AllowedJob,), {"allowed": JOB_FUNCTIONS | set(settings.worker_allowed_jobs)})
    job_queues = [JobQueue(q, connection=redis, serializer=JSONSerializer, job_class=job_class) for q in queues]
    return Worker(
        job_queues,
        connection=redis,
        serializer=JSONSerializer,
        job_class=job_class,
        exception_handlers=[partial(dead_letter_undecodable, ttl=settings.enriched_event_ttl_seconds)],
        leases=leases or Leases(redis, job_queues[0].started_job_registry.key, seconds=settings.worker_lease_seconds),
        deadlines=deadlines,
        worker_ttl=WORKER_TTL_SECONDS,
    )
