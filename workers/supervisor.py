"""The worker process: WORKER_CONCURRENCY RQ workers in threads, kept by the main thread.

An enrichment job spends most of its time waiting for CircleCI, so one process runs several jobs
at once, each in a whole RQ worker of its own (workers/worker.py). They share the process's API
client, HTTP clients and Redis pool, built once (an httpx client costs ~27 ms of CPU, more than
a job's calls). The main thread runs no job; it keeps the others, a tick at a time:

    deadlines    every tick: a job past its timeout stopped (workers/job_deadline.py: no timer
                 thread per job)
    leases       every fifth of WORKER_LEASE_SECONDS: the running jobs' claims renewed, one ZADD
    heartbeats   every worker's state when it changed, at most every STATE_SECONDS; its key's TTL
                 and the queue's place in RQ's set of queues every BEAT_SECONDS
    scheduler    every second: RQ's scheduled jobs (retries, deferrals) that are due, queued
                 (RQ's own RQScheduler, run here instead of in a forked process); its lock,
                 one process's at a time, lasts a lease and is refreshed every third of one,
                 so a killed holder's passes to a survivor within about a lease
    reaper       every half lease: jobs whose worker died back on the queue (workers/reaper.py);
                 after a Redis outage, not for a lease: no live process could renew its
                 leases meanwhile, and each renews them within a fifth of one
    maintenance  every WORKER_MAINTENANCE_INTERVAL_SECONDS: RQ's registry clean-up, the event index trimmed
    threads      a worker thread whose loop ended (Redis gone, a bug) is started again

SIGTERM or SIGINT: every worker finishes the job it has and takes no other; after
WORKER_SHUTDOWN_GRACE_SECONDS the jobs still running go back to the front of the queue at once
and the process exits. A second signal does that at once.

SIGHUP: the next tick reads the routes file again and swaps it in for every worker thread at
once (`routes_reloaded`); jobs already running finish with the routes they started with. A file
that does not load is refused with one `routes_reload_failed` line saying why, and the routes
loaded before stay.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import structlog
from redis import Redis
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from config.clock import SYSTEM_CLOCK, Clock
from config.errors import ConfigurationError
from config.logging import chatter_level
from config.settings import Settings
from config.version import version
from workers.connection import connect, warn_weak_tls
from workers.context import WorkerContext, install
from workers.durability import ensure_durable
from workers.job_deadline import JobDeadlines
from workers.lease import Leases
from workers.reaper import Reaper, requeue_running
from workers.ref_states import trim_states
from workers.routing import Routing
from workers.store import EventStore
from workers.worker import JobQueue, Worker, build_worker

log = structlog.get_logger("workers.supervisor")
TICK_SECONDS = 0.1
BEAT_SECONDS = 15.0
# A worker's state (busy, idle) as `rq info` shows it is written at most this often: a job of a
# few ms made two writes (busy, then idle); now `rq info` may show a state up to this late.
STATE_SECONDS = 1.0
SCHEDULER_SECONDS = 1  # RQ sets its lock to this + 60 s, in whole seconds
SCHEDULER_HEARTBEAT_SECONDS = 10.0  # RQ's heartbeat of the scheduler (its metadata and its lock)
# The lock's holder keeps it a lease long between RQ's heartbeats: one command, only while it holds it.
EXTEND_IF_HELD = """if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0"""
# The scheduler's lock lasts a lease (RQ's would last 61 s: a killed holder's would keep every
# survivor from queueing due retries for a minute), taken or refreshed every third of one.
# A worker thread whose loop keeps ending is started again after 1, 2, 4 … up to 30 s; one that
# ran this long before it ended starts again from 1 s (each Redis outage ends every loop).
RESTART_BACKOFF_MAX = 30.0
RESTART_RESET_SECONDS = 60.0
UPKEEP_LOG_SECONDS = 30.0
# A job running this long past its own timeout means its thread is stuck where RQ's timer cannot
# reach: /healthz fails, so an orchestrator restarts the process.
HUNG_GRACE_SECONDS = 30.0


@dataclass
class Health:
    ok: bool
    problems: list[str]


class Supervisor:
    """`concurrency` workers on one queue, each in a thread, and the main thread keeping them."""

    def __init__(
        self,
        redis: Redis,
        queue_name: str,
        settings: Settings,
        concurrency: int,
        *,
        reload_routes: Callable[[], Routing] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`reload_routes` swaps in the routes file read again, on SIGHUP (without it SIGHUP is not taken);
        `clock` times the ticks, the grace, the leases and the health checks."""
        self.redis, self.settings, self.clock = redis, settings, clock
        self.reload_routes = reload_routes
        self.reload_requested = False
        self.queue = JobQueue(queue_name, connection=redis, serializer=JSONSerializer)
        self.leases = Leases(
            redis, self.queue.started_job_registry.key, seconds=settings.worker_lease_seconds, clock=clock
        )
        self.deadlines = JobDeadlines(clock)
        self.workers = [self._new_worker() for _ in range(concurrency)]
        self.threads: dict[int, threading.Thread] = {}
        self.restarts = [0] * concurrency
        self.ended: dict[int, str] = {}  # what ended a worker's loop, until it is restarted
        self.started_at: dict[int, float] = {}  # monotonic: when each worker's loop was started
        self.reaper = Reaper(self.queue, lease_seconds=settings.worker_lease_seconds, fail=self._fail, clock=clock)
        self.scheduler = RQScheduler(
            [self.queue], connection=redis, interval=SCHEDULER_SECONDS, serializer=JSONSerializer,
            logging_level=chatter_level(settings.log_level),
        )  # fmt: skip
        self._extend_if_held = redis.register_script(EXTEND_IF_HELD)
        self.stopping_at: float | None = None  # monotonic deadline once a stop was asked for
        self.ticked = self.clock.monotonic()
        self.failing_since: float | None = None  # monotonic: since when the keeping fails (Redis away)
        self._due: dict[str, float] = {}

    def _new_worker(self) -> Worker:
        return build_worker(
            self.redis, (self.queue.name,), settings=self.settings, leases=self.leases, deadlines=self.deadlines
        )

    def _fail(self, job, queue, exc_string: str) -> None:  # type: ignore[no-untyped-def]
        self.workers[0].handle_job_failure(job, queue, exc_string=exc_string)

    # -- running -------------------------------------------------------------------------------

    def work(self, *, burst: bool = False) -> bool:
        """Run until stopped (or, in burst mode, until the queue is empty); False if it ended on a failure."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
            if self.reload_routes is not None:
                signal.signal(signal.SIGHUP, self.request_reload)
        self._schedule()  # what fell due while no worker ran
        for index in range(len(self.workers)):
            self._start(index, burst)
        try:
            while self._keep_going(burst):
                if self.stopping_at is not None and self.clock.monotonic() >= self.stopping_at:
                    self._abandon_running()
                    return True
                self.tick(burst)
                self.clock.sleep(TICK_SECONDS)
        finally:
            self._farewell()
        return True

    def _keep_going(self, burst: bool) -> bool:
        """Until every thread ended, in burst mode or once stopping; else threads that end are replaced."""
        if burst or self.stopping_at is not None:
            return any(t.is_alive() for t in self.threads.values())
        return True

    def _start(self, index: int, burst: bool) -> None:
        worker = self.workers[index]
        thread = threading.Thread(
            target=self._work, args=(index, worker, burst),
            name=f"rq-worker-{index + 1}", daemon=True,  # a stop past its grace does not wait for them
        )  # fmt: skip
        self.threads[index] = thread
        self.started_at[index] = self.clock.monotonic()
        thread.start()

    def _work(self, index: int, worker: Worker, burst: bool) -> None:
        """A worker's RQ loop; what ended it is kept for `worker_thread_stopped` (RQ logged its
        traceback already), not printed raw to stderr by Python's thread hook."""
        try:
            worker.work(burst=burst, logging_level=chatter_level(self.settings.log_level))
        except Exception as exc:
            self.ended[index] = f"{type(exc).__name__}: {exc}"[:300]

    def tick(self, burst: bool = False) -> None:
        """One pass of the keeping: whatever is due now. Redis errors are logged and tried next tick."""
        self.ticked = self.clock.monotonic()
        self.deadlines.enforce()  # no Redis: first, whatever the rest does
        if self.reload_requested:
            self.reload_requested = False
            self._reload()
        try:
            if self.failing_since is not None:
                self.redis.ping()  # recovered only once Redis answers, not when nothing else was due
            if self._is_due("leases", self.leases.renew_every):
                self.leases.renew()
            full = self._is_due("beat", BEAT_SECONDS)
            if full or self._is_due("state", STATE_SECONDS):
                self._beat(full=full)
            if self.stopping_at is None:
                if self._is_due("scheduler", SCHEDULER_SECONDS):
                    self._schedule()
                if self._is_due("reaper", self.reaper.interval):
                    if self.failing_since is None:
                        self.reaper.run()
                    else:  # Redis is back: every live process renews its jobs' leases before any is reaped
                        self._due["reaper"] = self.clock.monotonic() + self.settings.worker_lease_seconds
                if self._is_due("maintenance", self.settings.worker_maintenance_interval_seconds):
                    self.workers[0].clean_registries()  # type: ignore[no-untyped-call]
                    EventStore(self.redis, ttl=self.settings.enriched_event_ttl_seconds, clock=self.clock).trim()
                    trim_states(self.redis, ttl=self.settings.transition_ttl_seconds, now=self.clock.now())
        except Exception as exc:  # Redis away, or a bug: the next tick tries again
            self._upkeep_failed(exc)
        else:
            if self.failing_since is not None:
                log.info("worker_upkeep_recovered", after_seconds=round(self.clock.monotonic() - self.failing_since, 1))
                self.failing_since = None
        if not burst and self.stopping_at is None:
            self._restart_stopped_threads()

    def _upkeep_failed(self, exc: Exception) -> None:
        """Logged when it starts and then every UPKEEP_LOG_SECONDS while it lasts, not every tick."""
        now = self.clock.monotonic()
        if self.failing_since is None:
            self.failing_since = now
        elif now < self._due.get("upkeep-log", 0.0):
            return
        self._due["upkeep-log"] = now + UPKEEP_LOG_SECONDS
        log.error("worker_upkeep_failed", error=f"{type(exc).__name__}: {exc}"[:300],
                  failing_for_seconds=round(now - self.failing_since, 1))  # fmt: skip

    def _is_due(self, what: str, every: float) -> bool:
        now = self.clock.monotonic()
        if now < self._due.get(what, 0.0):
            return False
        self._due[what] = now + every
        return True

    def _beat(self, *, full: bool) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            for index, worker in enumerate(self.workers):
                thread = self.threads.get(index)
                # only a worker registered and running: a write before its birth would make RQ
                # refuse the birth ("an active worker ... exists already"), one after its death revive it
                if worker.birth_date is not None and thread is not None and thread.is_alive():
                    worker.beat(pipe, full=full)
            if full:  # the queue in RQ's set of queues (`rq info`, /metrics): the receiver does not add it per job
                pipe.sadd(self.queue.redis_queues_keys, self.queue.key)
            if len(pipe):
                pipe.execute()

    def _schedule(self) -> None:
        """RQ's scheduler, with its lock lasting a lease instead of RQ's 61 s: taken, or kept, every
        third of a lease; RQ's own heartbeat (which sets 61 s again) every SCHEDULER_HEARTBEAT_SECONDS."""
        lease_ms = int(self.settings.worker_lease_seconds * 1000)
        key = RQScheduler.get_locking_key(self.queue.name)
        if self._is_due("scheduler-lock", self.settings.worker_lease_seconds / 3):
            rq_set_it = True  # RQ's calls set 61 s
            if self.scheduler.acquired_locks and not self._is_due("scheduler-heartbeat", SCHEDULER_HEARTBEAT_SECONDS):
                rq_set_it = not self._extend_if_held(keys=[key], args=[self.scheduler.name, lease_ms])
                if rq_set_it:  # lost (it lapsed and another took it): RQ's own account of what is held
                    self.scheduler.acquire_locks()  # type: ignore[no-untyped-call]
            elif self.scheduler.acquired_locks:
                self.scheduler.heartbeat()  # type: ignore[no-untyped-call]
            else:
                self.scheduler.acquire_locks()  # type: ignore[no-untyped-call]
            if rq_set_it and self.scheduler.acquired_locks:
                self.redis.pexpire(key, lease_ms)
        if self.scheduler.acquired_locks:
            self.scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]

    def _restart_stopped_threads(self) -> None:
        """A worker whose RQ loop ended on its own (Redis gone, a bug) is replaced, after a backoff."""
        for index, thread in self.threads.items():
            if thread.is_alive():
                continue
            key = f"restart-{index}"
            if key not in self._due:
                if self.clock.monotonic() - self.started_at.get(index, 0.0) >= RESTART_RESET_SECONDS:
                    self.restarts[index] = 0  # it had run well: not a loop that keeps ending
                self.restarts[index] += 1
                wait = self._restart_wait(index)
                self._due[key] = self.clock.monotonic() + wait
                log.error("worker_thread_stopped", worker=self.workers[index].name, restart_in_seconds=wait,
                          error=self.ended.pop(index, None))  # fmt: skip
                continue
            if self.clock.monotonic() >= self._due[key]:
                try:
                    worker = self._new_worker()  # RQ asks Redis its version: Redis may still be away
                except Exception as exc:
                    self._due[key] = self.clock.monotonic() + self._restart_wait(index)
                    self._upkeep_failed(exc)
                    continue
                del self._due[key]
                self.workers[index] = worker
                self._start(index, burst=False)

    def _restart_wait(self, index: int) -> float:
        """1 s after a thread's first stop, doubling with each later one up to RESTART_BACKOFF_MAX."""
        return min(RESTART_BACKOFF_MAX, 2.0 ** min(self.restarts[index] - 1, 5))

    # -- reloading -----------------------------------------------------------------------------

    def request_reload(self, signum: int, frame: FrameType | None = None) -> None:
        """SIGHUP: the routes are read again at the next tick (not inside the signal handler)."""
        self.reload_requested = True

    def _reload(self) -> None:
        assert self.reload_routes is not None, "SIGHUP is taken only with a reload_routes"
        try:
            routing = self.reload_routes()
        except ConfigurationError as exc:
            log.error("routes_reload_failed", routes_file=self.settings.routes_file, error=exc.message,
                      kept="the routes loaded before; fix the file, then SIGHUP again (run: save it)")  # fmt: skip
        except Exception as exc:  # a bug in building a handler must not end the process
            log.error("routes_reload_failed", routes_file=self.settings.routes_file,
                      error=f"{type(exc).__name__}: {exc}"[:300], kept="the routes loaded before")  # fmt: skip
        else:
            log.info("routes_reloaded", routes_file=self.settings.routes_file, **routing.summary())

    # -- stopping ------------------------------------------------------------------------------

    def request_stop(self, signum: int, frame: FrameType | None = None) -> None:
        """The first signal starts the grace; a second ends it."""
        if self.stopping_at is None:
            grace = self.settings.worker_shutdown_grace_seconds
            self.stopping_at = self.clock.monotonic() + grace
            log.info("worker_stopping", signal=signal.Signals(signum).name, running=len(self.leases.held()),
                     grace_seconds=grace)  # fmt: skip
            for worker in self.workers:
                worker.stop_after_job()
        else:
            self.stopping_at = self.clock.monotonic()

    def _abandon_running(self) -> None:
        """Past the grace: the jobs still running go back to the front of the queue now."""
        entries = self.leases.held()
        try:
            requeued = requeue_running(self.queue, entries)
        except Exception as exc:
            log.error("worker_requeue_failed", error=f"{type(exc).__name__}: {exc}"[:300], jobs=len(entries))
            return
        if requeued:
            log.warning("jobs_requeued_on_shutdown", job_ids=requeued)

    def _farewell(self) -> None:
        """Unregister every worker (`rq info` stops listing them) and free the scheduler's lock."""
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.register_death()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            self.scheduler.release_locks()  # type: ignore[no-untyped-call]

    # -- health --------------------------------------------------------------------------------

    def health(self) -> Health:
        """Alive: the keeping thread ticks, every worker thread runs, none is stuck past its job's timeout."""
        problems = []
        now = self.clock.monotonic()
        if now - self.ticked > 10 * TICK_SECONDS + 5:
            problems.append(f"the main thread has not ticked for {now - self.ticked:.0f} s")
        for index, worker in enumerate(self.workers):
            thread = self.threads.get(index)
            if self.stopping_at is None and (thread is None or not thread.is_alive()):
                problems.append(f"worker thread {index + 1} is not running")
            if worker.busy_since is not None and worker.busy_timeout:
                over = now - worker.busy_since - worker.busy_timeout
                if over > HUNG_GRACE_SECONDS:
                    problems.append(f"worker thread {index + 1} is {over:.0f} s past its job's timeout")
        return Health(not problems, problems)


def run_worker(settings: Settings, *, burst: bool = False, redis_warnings: bool = True) -> bool:
    """Build the process's context from `settings` (a broken routes file stops here, not at the
    first event), install it, and run WORKER_CONCURRENCY workers until stopped. Without
    `redis_warnings`, the Redis's risks (no AOF, unverified TLS) are not logged: `run` said them."""
    from workers.health import serve_health

    hangups: list[int] = []  # a SIGHUP while starting: the routes are read again at the first tick
    signal.signal(signal.SIGHUP, lambda signum, frame: hangups.append(signum))
    context = WorkerContext.build(settings)
    install(context)
    # RQ's own client: RQ raises its socket timeout to wait for jobs, the jobs' client keeps 5 s
    redis = connect(settings)
    if redis_warnings:
        warn_weak_tls(settings, log=log)
    ensure_durable(redis, allow_eviction=settings.redis_allow_eviction, log=log, warn=redis_warnings)
    supervisor = Supervisor(
        redis,
        settings.events_queue,
        settings,
        settings.worker_concurrency,
        reload_routes=context.reload_routes,
        clock=context.clock,
    )
    signal.signal(signal.SIGHUP, supervisor.request_reload)
    if hangups:
        supervisor.reload_requested = True
    context.leases = supervisor.leases
    log.info(
        "worker_started",
        version=version(),
        routes_file=settings.routes_file,
        **context.routing.summary(),
        queue=settings.events_queue,
        concurrency=settings.worker_concurrency,
        lease_seconds=settings.worker_lease_seconds,
        shutdown_grace_seconds=settings.worker_shutdown_grace_seconds,
    )
    if settings.worker_http_port:
        serve_health(supervisor, context.metrics.registry, settings.worker_http_port, addr=settings.worker_http_host)
    try:
        ok = supervisor.work(burst=burst)
    finally:
        install(None)
    if supervisor.stopping_at is not None and supervisor.leases.held():
        # threads past the grace are still in their jobs (now requeued): do not wait for them
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    context.close()
    return ok
