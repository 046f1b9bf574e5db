"""The worker process: WORKER_CONCURRENCY RQ workers, one per thread, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from redis import Redis
from rq import Queue, Retry
from rq import Worker as RQWorker
from rq.serializers import JSONSerializer
from rq.utils import now

from config.settings import Settings
from workers.delivery.dead_letters import DeadLetters
from workers.worker import MAINTENANCE_LOCK_SECONDS, QUEUES, ThreadWorker, Worker, WorkerProcess, build_worker

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(redis: Redis) -> Queue:
    return Queue(QUEUES[0], connection=redis, serializer=JSONSerializer)


@pytest.fixture
def restore_signals() -> Iterator[None]:
    """The worker in the main thread installs RQ's handlers; put pytest's back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def start_process(redis_url: str) -> Iterator[Callable[[int], subprocess.Popen[bytes]]]:
    """`start_process(concurrency)`: `circleci-events worker` as a user runs it; stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(concurrency: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING", "WORKER_CONCURRENCY": str(concurrency)}
        command = [sys.executable, "-m", "service.cli", "worker"]
        started.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def settings_for(redis_url: str, **env: str) -> Settings:
    return Settings.from_environ({"REDIS_URL": redis_url, "LOG_LEVEL": "WARNING", **env})


def test_one_process_runs_as_many_jobs_at_once_as_its_concurrency(
    redis: Redis, redis_url: str, queue: Queue, restore_signals: None
) -> None:
    # each job waits for the other three: with fewer than four at once none could finish
    jobs = [queue.enqueue("tests.workers.rq_jobs.meet", 4, 20.0) for _ in range(4)]
    assert WorkerProcess(redis, QUEUES, settings_for(redis_url), concurrency=4).work(burst=True)
    assert [job.get_status() for job in jobs] == ["finished"] * 4


def test_with_a_concurrency_of_one_the_jobs_run_one_after_another(
    redis: Redis, redis_url: str, queue: Queue, restore_signals: None
) -> None:
    jobs = [queue.enqueue("tests.workers.rq_jobs.meet", 2, 0.5) for _ in range(2)]
    WorkerProcess(redis, QUEUES, settings_for(redis_url), concurrency=1).work(burst=True)
    assert [job.get_status() for job in jobs] == ["failed", "finished"]
    assert "only 1 of 2 jobs ran at once" in (jobs[0].latest_result().exc_string or "")


def test_every_thread_is_an_rq_worker_of_its_own(redis: Redis, queue: Queue, start_process) -> None:
    """Each registers itself and keeps its job in the started registry: a kill loses no more
    than separate worker processes would, and `rq info` shows them all."""
    process = start_process(3)
    _wait(lambda: len(RQWorker.all(connection=redis)) == 3, "three workers registered")
    workers = RQWorker.all(connection=redis)
    assert len({w.name for w in workers}) == 3
    assert {w.pid for w in workers} == {process.pid}
    jobs = [queue.enqueue("tests.workers.rq_jobs.sleep", 2.0) for _ in range(3)]
    _wait(lambda: len(queue.started_job_registry.get_job_ids()) == 3, "three jobs started at once")
    assert sorted(queue.started_job_registry.get_job_ids()) == sorted(job.id for job in jobs)


def test_sigterm_lets_every_running_job_finish_then_stops_every_worker(
    redis: Redis, queue: Queue, start_process
) -> None:
    process = start_process(3)
    _wait(lambda: _idle(redis) == 3, "three workers waiting for jobs")
    jobs = [queue.enqueue("tests.workers.rq_jobs.sleep", 1.5) for _ in range(3)]
    _wait(lambda: len(queue.started_job_registry.get_job_ids()) == 3, "three jobs started")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0, process.stderr.read().decode() if process.stderr else ""
    assert [job.get_status() for job in jobs] == ["finished"] * 3
    assert RQWorker.all(connection=redis) == []


def test_sigterm_stops_an_idle_process_at_once(redis: Redis, start_process) -> None:
    process = start_process(4)
    _wait(lambda: _idle(redis) == 4, "four workers waiting for jobs")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0  # idle threads look for a stop every second
    assert RQWorker.all(connection=redis) == []


def test_a_worker_thread_that_dies_stops_the_whole_process_with_a_failure(
    redis: Redis, redis_url: str, restore_signals: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A smaller process than configured would go unnoticed: it exits, its supervisor restarts it."""
    process = WorkerProcess(redis, QUEUES, settings_for(redis_url), concurrency=2)
    broken = process.lead.crew[0]

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in a worker thread")

    monkeypatch.setattr(broken, "dequeue_job_and_maintain_ttl", fail)
    assert process.work() is False
    assert RQWorker.all(connection=redis) == []


def test_a_job_in_a_thread_is_stopped_at_its_timeout(redis: Redis, redis_url: str, queue: Queue) -> None:
    """Outside the main thread there is no SIGALRM: RQ's timer-based death penalty ends the job."""
    job = queue.enqueue("tests.workers.rq_jobs.busy", 30.0, job_timeout=1)
    worker = build_worker(redis, settings=settings_for(redis_url), worker_class=ThreadWorker)
    thread = threading.Thread(target=worker.work, kwargs={"burst": True})
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert job.get_status() == "failed"
    assert "JobTimeoutException" in (job.latest_result().exc_string or "")


def test_a_heartbeat_is_one_round_trip_and_at_most_one_a_second(redis: Redis, redis_url: str) -> None:
    worker = build_worker(redis, settings=settings_for(redis_url))
    worker.register_birth()
    redis.hset(worker.key, "last_heartbeat", "before")
    worker.heartbeat()  # just born: skipped
    assert redis.hget(worker.key, "last_heartbeat") == b"before"
    worker.last_heartbeat = now() - timedelta(seconds=2)
    worker.heartbeat()
    assert redis.hget(worker.key, "last_heartbeat") != b"before"
    redis.hset(worker.key, "last_heartbeat", "before")
    worker.heartbeat(timeout=300)  # a longer TTL asked for always goes
    assert redis.hget(worker.key, "last_heartbeat") != b"before"
    assert 240 < redis.ttl(worker.key) <= 300
    worker.register_death()


def test_the_lead_worker_passes_a_warm_stop_to_its_crew(redis: Redis, redis_url: str) -> None:
    process = WorkerProcess(redis, QUEUES, settings_for(redis_url), concurrency=3)
    assert all(isinstance(w, ThreadWorker) for w in process.lead.crew)
    assert type(process.lead) is Worker
    process.lead.handle_warm_shutdown_request()
    assert all(w._stop_requested for w in process.lead.crew)


def test_worker_concurrency_is_a_positive_setting() -> None:
    assert Settings.from_environ({}).worker_concurrency == 4
    from config.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="WORKER_CONCURRENCY must be positive"):
        Settings.from_environ({"WORKER_CONCURRENCY": "0"})


def _idle(redis: Redis) -> int:
    """Workers waiting for a job: past start-up, with the signal handlers in place."""
    return sum(1 for w in RQWorker.all(connection=redis) if w.get_state() == "idle")


def _wait(check, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def test_a_killed_worker_holds_the_registry_cleaning_lock_a_minute_at_most(redis: Redis, redis_url: str) -> None:
    """RQ's own lock lasts 899 s: a worker killed mid-clean-up stopped all recovery for 15 minutes."""
    worker = build_worker(redis, settings=settings_for(redis_url))
    queue = worker.queues[0]
    assert queue.acquire_maintenance_lock()  # and then the worker is killed
    assert not queue.acquire_maintenance_lock()
    assert 0 < redis.ttl(queue.registry_cleaning_key) <= MAINTENANCE_LOCK_SECONDS == 60


def test_only_the_main_threads_worker_runs_maintenance(redis: Redis, redis_url: str) -> None:
    process = WorkerProcess(redis, QUEUES, settings_for(redis_url), concurrency=2)
    assert process.lead.should_run_maintenance_tasks  # never run yet
    assert not process.lead.crew[0].should_run_maintenance_tasks


@pytest.mark.parametrize(
    "data",
    [
        # JSON the receiver's orjson would read (1,015 levels) but the worker's decoder cannot
        b'["workers.events.process_event", null, [{"event_id": "deep", "payload": '
        + b"[" * 1015
        + b"]" * 1015
        + b"}], {}]",
        b"not json at all",
    ],
    ids=["too-deep", "garbage"],
)
def test_a_job_the_worker_cannot_decode_is_dead_lettered_at_once_not_retried(
    redis: Redis, redis_url: str, queue: Queue, data: bytes, restore_signals: None
) -> None:
    job = queue.enqueue("workers.events.process_event", {"event_id": "placeholder"}, retry=Retry(max=5))
    redis.hset(job.key, "data", data)  # what a receiver could have written before the nesting cap
    build_worker(redis, settings=settings_for(redis_url)).work(burst=True)
    letter = DeadLetters(redis, ttl=60).get(f"job:{job.id}")
    assert letter is not None and letter.reason == "undecodable"
    assert letter.body_excerpt
    assert job.id in queue.failed_job_registry.get_job_ids()
    assert queue.count == 0 and queue.scheduled_job_registry.count == 0, "no retry was scheduled"


def test_an_envelope_that_is_not_an_object_is_dead_lettered_not_retried(
    redis: Redis, redis_url: str, queue: Queue, restore_signals: None
) -> None:
    job = queue.enqueue("workers.events.process_event", ["not", "an", "envelope"], retry=Retry(max=5))
    build_worker(redis, settings=settings_for(redis_url)).work(burst=True)
    letter = DeadLetters(redis, ttl=60).get(f"job:{job.id}")
    assert letter is not None and "EventUndecodable" in letter.body_excerpt
    assert queue.count == 0 and queue.scheduled_job_registry.count == 0
