"""The worker process: WORKER_CONCURRENCY lean RQ workers, one per thread, kept by the main thread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue, Retry
from rq import Worker as RQWorker
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from structlog.testing import capture_logs

from config.settings import Settings
from tests.clock import FakeClock
from tests.conftest import RedisServer
from tests.waiting import wait_until
from workers.context import WorkerContext, installed
from workers.delivery.dead_letters import DeadLetters
from workers.supervisor import RESTART_BACKOFF_MAX, RESTART_RESET_SECONDS, STATE_SECONDS, Supervisor
from workers.worker import MAINTENANCE_LOCK_SECONDS, QUEUES, build_worker

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(redis: Redis) -> Queue:
    return Queue(QUEUES[0], connection=redis, serializer=JSONSerializer)


@pytest.fixture
def restore_signals() -> Iterator[None]:
    """A supervisor in the main thread takes SIGTERM and SIGINT; put pytest's back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


# the job functions of these tests (tests/workers/rq_jobs.py), run besides the product's own
TEST_JOBS = ",".join(f"tests.workers.rq_jobs.{name}" for name in ("meet", "sleep", "busy", "own_ttl"))


class WorkerProcesses:
    """`start_process(concurrency)`: `circleci-events worker` as a user runs it, its log lines
    (stderr) in a file, `output(process)`; killed at the end if still running."""

    def __init__(self, redis_url: str, directory: Path) -> None:
        self.redis_url, self.directory = redis_url, directory
        self.logs: dict[int, Path] = {}
        self.processes: list[subprocess.Popen[bytes]] = []

    def __call__(self, concurrency: int, **extra: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "REDIS_URL": self.redis_url, "LOG_LEVEL": "WARNING",
               "WORKER_CONCURRENCY": str(concurrency), "WORKER_ALLOWED_JOBS": TEST_JOBS, **extra}  # fmt: skip
        log = self.directory / f"worker-{len(self.logs)}.log"
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )
        self.logs[process.pid] = log
        self.processes.append(process)
        return process

    def output(self, process: subprocess.Popen[bytes]) -> str:
        return self.logs[process.pid].read_text(errors="replace")


@pytest.fixture
def start_process(redis_url: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    processes = WorkerProcesses(redis_url, tmp_path)
    yield processes
    for process in processes.processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def settings_for(redis_url: str, **env: str) -> Settings:
    return Settings.from_environ(
        {"REDIS_URL": redis_url, "LOG_LEVEL": "WARNING", "WORKER_ALLOWED_JOBS": TEST_JOBS, **env}
    )


def test_one_process_runs_as_many_jobs_at_once_as_its_concurrency(
    redis: Redis, redis_url: str, queue: Queue, restore_signals: None
) -> None:
    # each job waits for the other three: with fewer than four at once none could finish
    jobs = [queue.enqueue("tests.workers.rq_jobs.meet", 4, 20.0) for _ in range(4)]
    assert Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=4).work(burst=True)
    assert [job.get_status() for job in jobs] == ["finished"] * 4


def test_with_a_concurrency_of_one_the_jobs_run_one_after_another(
    redis: Redis, redis_url: str, queue: Queue, restore_signals: None
) -> None:
    jobs = [queue.enqueue("tests.workers.rq_jobs.meet", 2, 0.5) for _ in range(2)]
    Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=1).work(burst=True)
    assert [job.get_status() for job in jobs] == ["failed", "finished"]
    assert "only 1 of 2 jobs ran at once" in (jobs[0].latest_result().exc_string or "")


def test_every_thread_is_an_rq_worker_of_its_own(redis: Redis, queue: Queue, start_process) -> None:
    """Each registers itself and keeps its job in the started registry: a kill loses no more
    than separate worker processes would, and `rq info` shows them all."""
    process = start_process(3)
    wait_until(lambda: len(RQWorker.all(connection=redis)) == 3, "three workers registered")
    workers = RQWorker.all(connection=redis)
    assert len({w.name for w in workers}) == 3
    assert {w.pid for w in workers} == {process.pid}
    jobs = [queue.enqueue("tests.workers.rq_jobs.sleep", 2.0) for _ in range(3)]
    wait_until(lambda: len(queue.started_job_registry.get_job_ids()) == 3, "three jobs started at once")
    assert sorted(queue.started_job_registry.get_job_ids()) == sorted(job.id for job in jobs)


def test_sigterm_lets_every_running_job_finish_then_stops_every_worker(
    redis: Redis, queue: Queue, start_process
) -> None:
    process = start_process(3)
    wait_until(lambda: _idle(redis) == 3, "three workers waiting for jobs")
    jobs = [queue.enqueue("tests.workers.rq_jobs.sleep", 1.5) for _ in range(3)]
    wait_until(lambda: len(queue.started_job_registry.get_job_ids()) == 3, "three jobs started")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0, start_process.output(process)
    assert [job.get_status() for job in jobs] == ["finished"] * 3
    assert RQWorker.all(connection=redis) == []


def test_sigterm_stops_an_idle_process_at_once(redis: Redis, start_process) -> None:
    process = start_process(4)
    wait_until(lambda: _idle(redis) == 4, "four workers waiting for jobs")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0  # idle threads look for a stop every second
    assert RQWorker.all(connection=redis) == []


def test_a_worker_leaves_its_command_channel_within_a_second_of_idling(redis: Redis, redis_url: str) -> None:
    """RQ's teardown stops the channel's listener, which redis-py 8.2 waits for: the listener idles
    in waits of a second, so a stop never sits out RQ's 60 s wait (found with redis-py 8.2.0)."""
    worker = build_worker(redis, settings=settings_for(redis_url))
    worker.subscribe()
    wait_until(lambda: worker.pubsub.subscribed, "the worker listening on its command channel")
    worker.pubsub.unsubscribe()  # what RQ's teardown does first; the listener sees it and waits again
    wait_until(lambda: not worker.pubsub.subscribed, "the unsubscription seen by the listener")
    teardown = threading.Thread(target=worker.unsubscribe, daemon=True)
    teardown.start()
    teardown.join(timeout=15)
    assert not teardown.is_alive() and not worker.pubsub_thread.is_alive()
    assert worker.pubsub.connection is None  # the listener gave its connection back, once


def test_sigterm_past_the_grace_puts_the_running_jobs_back_on_the_queue_at_once(
    redis: Redis, queue: Queue, start_process
) -> None:
    process = start_process(2, WORKER_SHUTDOWN_GRACE_SECONDS="1")
    wait_until(lambda: _idle(redis) == 2, "two workers waiting for jobs")
    jobs = [queue.enqueue("tests.workers.rq_jobs.sleep", 600.0) for _ in range(2)]
    wait_until(lambda: len(queue.started_job_registry.get_job_ids()) == 2, "two jobs started")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0  # not the jobs' 600 s
    assert [job.get_status() for job in jobs] == ["queued"] * 2
    assert sorted(queue.job_ids) == sorted(job.id for job in jobs)
    assert queue.started_job_registry.get_job_ids() == []


def test_a_second_sigterm_ends_the_grace_at_once(redis: Redis, queue: Queue, start_process) -> None:
    process = start_process(1, WORKER_SHUTDOWN_GRACE_SECONDS="600", LOG_LEVEL="INFO")
    wait_until(lambda: _idle(redis) == 1, "a worker waiting for jobs")
    job = queue.enqueue("tests.workers.rq_jobs.sleep", 600.0)
    wait_until(lambda: job.get_status() == "started", "the job started")
    process.send_signal(signal.SIGTERM)
    wait_until(lambda: "worker_stopping" in start_process.output(process), "the first SIGTERM taken")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0  # not the grace's 600 s
    assert job.get_status() == "queued" and queue.job_ids == [job.id]


def test_a_worker_thread_whose_loop_ended_is_started_again(
    redis: Redis, redis_url: str, queue: Queue, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Redis gone for a moment, or a bug: the process keeps its concurrency instead of shrinking,
    and says what ended the loop in one log line, not in a raw traceback on stderr."""
    supervisor = Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=1)

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in a worker thread")

    teardown = supervisor.workers[0].teardown

    def away() -> None:  # RQ's clean-up as its loop ends meets Redis gone
        teardown()
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(supervisor.workers[0], "dequeue_job_and_maintain_ttl", fail)
    monkeypatch.setattr(supervisor.workers[0], "teardown", away)
    thread = threading.Thread(target=supervisor.work, daemon=True)
    with capture_logs() as logs:
        thread.start()
        try:
            job = queue.enqueue("tests.workers.rq_jobs.sleep", 0.0)
            wait_until(lambda: job.get_status() == "finished", "the job run by the new worker thread", timeout=10)
            assert supervisor.restarts == [1]
        finally:
            supervisor.request_stop(signal.SIGTERM)
            thread.join(timeout=10)
    assert not thread.is_alive()
    [stopped] = [line for line in logs if line["event"] == "worker_thread_stopped"]
    assert stopped["error"] == "ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection refused."
    assert "Exception in thread" not in capfd.readouterr().err


def test_a_worker_thread_due_for_a_restart_while_redis_is_away_waits_the_process_lives_on(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RQ asks Redis its version as a worker is built: that failing ended the whole process
    ("cannot reach Redis"), and every job it held waited for another process's reaper."""
    clock = FakeClock()
    supervisor = Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=1, clock=clock)
    supervisor.threads = {0: threading.Thread(target=lambda: None)}
    supervisor.threads[0].start()
    supervisor.threads[0].join()
    started: list[int] = []
    monkeypatch.setattr(supervisor, "_start", lambda index, burst: started.append(index))
    built = supervisor._new_worker

    def away() -> None:
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with capture_logs() as logs:
        supervisor._restart_stopped_threads()  # the stop seen: a restart in a second
        clock.advance(1.0)
        monkeypatch.setattr(supervisor, "_new_worker", away)
        supervisor._restart_stopped_threads()  # Redis away: no raise, tried again later
        assert started == []
        monkeypatch.setattr(supervisor, "_new_worker", built)
        supervisor._restart_stopped_threads()
        assert started == []  # not before its backoff
        clock.advance(1.0)
        supervisor._restart_stopped_threads()
    assert started == [0]
    assert [line["event"] for line in logs] == ["worker_thread_stopped", "worker_upkeep_failed"]


def test_a_worker_thread_that_ran_a_while_before_its_loop_ended_is_restarted_after_a_second(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop that keeps ending backs off up to RESTART_BACKOFF_MAX; one that had run a minute starts
    from 1 s again. Every Redis outage ends every loop: without the reset, a process's sixth outage
    left it idle for 30 s after Redis came back."""
    clock = FakeClock()
    supervisor = Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=1, clock=clock)
    supervisor.threads = {0: threading.Thread(target=lambda: None)}
    supervisor.threads[0].start()
    supervisor.threads[0].join()  # stays dead: every start below "ends" at once
    monkeypatch.setattr(
        supervisor, "_start", lambda index, burst: supervisor.started_at.update({index: clock.monotonic()})
    )
    with capture_logs() as logs:
        for _ in range(6):
            supervisor._restart_stopped_threads()  # the stop seen, the restart scheduled
            clock.advance(RESTART_BACKOFF_MAX)
            supervisor._restart_stopped_threads()  # restarted
        clock.advance(RESTART_RESET_SECONDS)  # this time the loop ran for a minute before it ended
        supervisor._restart_stopped_threads()
    waits = [line["restart_in_seconds"] for line in logs if line["event"] == "worker_thread_stopped"]
    assert waits == [1, 2, 4, 8, 16, RESTART_BACKOFF_MAX, 1]


def test_after_redis_comes_back_no_job_is_reaped_before_every_process_renewed_its_leases(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While Redis was away no process could renew its jobs' leases: reaping at once would run
    the jobs of live workers a second time (and post again what they are sending)."""
    clock = FakeClock()
    settings = settings_for(redis_url)
    supervisor = Supervisor(redis, QUEUES[0], settings, concurrency=1, clock=clock)
    reaped: list[float] = []
    monkeypatch.setattr(supervisor.reaper, "run", lambda: reaped.append(clock.monotonic()) or [])
    supervisor.tick(burst=True)
    assert len(reaped) == 1  # as usual: every half lease

    def away() -> None:
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with pytest.MonkeyPatch.context() as outage:
        outage.setattr(supervisor.redis, "ping", away)
        outage.setattr(supervisor.leases, "renew", away)
        for _ in range(3 * settings.worker_lease_seconds):
            clock.advance(1.0)
            supervisor.tick(burst=True)
    assert supervisor.failing_since is not None
    back = clock.monotonic()
    while clock.monotonic() < back + 2 * settings.worker_lease_seconds:
        supervisor.tick(burst=True)
        clock.advance(0.5)
    assert supervisor.failing_since is None
    after = [at - back for at in reaped[1:]]
    assert after and min(after) >= settings.worker_lease_seconds


def test_the_upkeep_is_recovered_only_once_redis_answers_not_when_a_tick_had_nothing_to_do(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    supervisor = Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=1, clock=clock)
    supervisor.tick(burst=True)  # everything done once: for a while nothing is due
    supervisor._upkeep_failed(RedisConnectionError("Error 111"))  # then Redis goes away

    def away() -> None:
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with capture_logs() as logs:
        with pytest.MonkeyPatch.context() as outage:
            outage.setattr(supervisor.redis, "ping", away)
            supervisor.tick(burst=True)  # nothing else due a tick later: Redis still away all the same
        assert supervisor.failing_since is not None
        supervisor.tick(burst=True)
    assert supervisor.failing_since is None
    assert [line["event"] for line in logs] == ["worker_upkeep_recovered"]


def test_a_job_in_a_thread_is_stopped_at_its_timeout(redis: Redis, redis_url: str, queue: Queue) -> None:
    """Outside the main thread there is no SIGALRM: RQ's timer-based death penalty ends the job."""
    job = queue.enqueue("tests.workers.rq_jobs.busy", 30.0, job_timeout=1)
    worker = build_worker(redis, settings=settings_for(redis_url))
    thread = threading.Thread(target=worker.work, kwargs={"burst": True})
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert job.get_status() == "failed"
    assert "JobTimeoutException" in (job.latest_result().exc_string or "")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[Redis, str]]:
    """A redis-server of the test's own, for counting commands: a worker thread or process another
    test left behind writes to the session's (its counts failed a test under load)."""
    server = RedisServer(tmp_path / "own-redis").start()
    client = server.client()
    yield client, server.url
    client.close()
    server.stop()


def test_a_job_costs_a_dozen_redis_commands_not_rqs_sixty(own_redis: tuple[Redis, str]) -> None:
    """Taken, started, finished, result kept: two round trips besides the take (RQ's own: ~57 commands)."""
    redis, redis_url = own_redis
    queue = Queue(QUEUES[0], connection=redis, serializer=JSONSerializer)
    jobs = [queue.enqueue("tests.workers.rq_jobs.sleep", 0.0) for _ in range(50)]
    before = _commands(redis)
    Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=1).work(burst=True)
    per_job = (_commands(redis) - before) / len(jobs)
    assert [job.get_status() for job in jobs] == ["finished"] * 50
    assert jobs[0].return_value() == 0.0
    assert queue.finished_job_registry.count == 50
    assert per_job <= 14, f"{per_job:.1f} Redis commands per job"


def test_a_workers_state_is_written_at_most_once_a_second_not_twice_a_job(own_redis: tuple[Redis, str]) -> None:
    """Busy and idle as `rq info` shows them, at most STATE_SECONDS late; 50 short jobs write it a few times."""
    redis, redis_url = own_redis
    queue = Queue(QUEUES[0], connection=redis, serializer=JSONSerializer)
    jobs = [queue.enqueue("tests.workers.rq_jobs.sleep", 0.0) for _ in range(50)]
    before = redis.info("commandstats")["cmdstat_hset"]["calls"]
    started = time.monotonic()
    Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=1).work(burst=True)
    seconds = time.monotonic() - started
    hsets = redis.info("commandstats")["cmdstat_hset"]["calls"] - before
    assert [job.get_status() for job in jobs] == ["finished"] * 50
    writes = hsets - 2 * len(jobs)  # each job's own: started, finished
    # the worker's birth and death, the first and last beats, one a STATE_SECONDS at most (was two a job: 100)
    assert writes <= 5 + 2 * seconds / STATE_SECONDS, f"{writes} worker writes in {seconds:.1f} s"


def test_a_running_job_holds_a_lease_of_seconds_not_its_timeout(
    redis: Redis, redis_url: str, queue: Queue, start_process
) -> None:
    start_process(1)
    job = queue.enqueue("tests.workers.rq_jobs.sleep", 3.0, job_timeout=600)
    wait_until(lambda: job.get_status() == "started", "the job started")
    [(entry, expiry)] = redis.zrange(queue.started_job_registry.key, 0, -1, withscores=True)
    assert entry.decode().startswith(job.id + ":")
    assert time.time() < expiry <= time.time() + 10  # WORKER_LEASE_SECONDS, not 600 + 60
    wait_until(lambda: redis.zscore(queue.started_job_registry.key, entry) > expiry, "the lease renewed")


def test_a_stop_request_reaches_every_worker(redis: Redis, redis_url: str) -> None:
    supervisor = Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=3)
    supervisor.request_stop(signal.SIGTERM)
    assert all(w._stop_requested for w in supervisor.workers)
    assert supervisor.stopping_at is not None


def test_rq_info_lists_the_queue_and_every_thread_s_worker(redis_url: str, start_process, redis: Redis) -> None:
    start_process(2)
    wait_until(lambda: _idle(redis) == 2, "two workers waiting for jobs")
    job = Queue(QUEUES[0], connection=redis, serializer=JSONSerializer).enqueue("tests.workers.rq_jobs.sleep", 0.0)
    wait_until(lambda: job.get_status() == "finished", "a job run")
    rq = Path(sys.executable).with_name("rq")
    shown = subprocess.run([str(rq), "info", "--url", redis_url], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert "events" in shown.stdout and "2 workers, 1 queues" in shown.stdout


def test_worker_concurrency_is_a_positive_setting() -> None:
    assert Settings.from_environ({}).worker_concurrency == 4
    from config.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="WORKER_CONCURRENCY must be positive"):
        Settings.from_environ({"WORKER_CONCURRENCY": "0"})


def _idle(redis: Redis) -> int:
    """Workers waiting for a job: past start-up, with the signal handlers in place."""
    return sum(1 for w in RQWorker.all(connection=redis) if w.get_state() == "idle")


def _commands(redis: Redis) -> int:
    return sum(int(stat["calls"]) for stat in redis.info("commandstats").values())


def test_a_killed_worker_holds_the_registry_cleaning_lock_a_minute_at_most(redis: Redis, redis_url: str) -> None:
    """RQ's own lock lasts 899 s: a worker killed mid-clean-up stopped all recovery for 15 minutes."""
    worker = build_worker(redis, settings=settings_for(redis_url))
    queue = worker.queues[0]
    assert queue.acquire_maintenance_lock()  # and then the worker is killed
    assert not queue.acquire_maintenance_lock()
    assert 0 < redis.ttl(queue.registry_cleaning_key) <= MAINTENANCE_LOCK_SECONDS == 60


def test_no_worker_thread_runs_maintenance_the_process_does(redis: Redis, redis_url: str) -> None:
    supervisor = Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=2)
    assert not any(worker.should_run_maintenance_tasks for worker in supervisor.workers)


@pytest.mark.parametrize("name", ["WORKER_METRICS_PORT", "WORKER_ABANDONED_GRACE_SECONDS"])
def test_a_retired_setting_stops_the_process_saying_what_replaced_it(name: str) -> None:
    from config.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=f"{name} (is now WORKER_HTTP_PORT|is gone).*unset it"):
        Settings.from_environ({name: "9100"})


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


def test_an_undecodable_job_is_counted_and_told_to_the_alert_handlers(
    redis: Redis, redis_url: str, queue: Queue, restore_signals: None, tmp_path: Path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("handlers:\n  l: {type: log}\nalerts:\n  handlers: [l]\n")
    settings = settings_for(redis_url, ROUTES_FILE=str(routes))
    queue.enqueue("workers.events.process_event", "not an envelope")
    with installed(WorkerContext.build(settings, redis=redis)) as context:
        build_worker(redis, settings=settings).work(burst=True)
    assert context.metrics.registry.get_sample_value("circleci_events_dead_letters_total", {"reason": "undecodable"})
    assert redis.hgetall("cie:alert:l:counts").keys() == {b"dead_letter|undecodable|-|", b"since"}


@pytest.mark.parametrize(
    ("func", "extra"),
    [("os.system", {}), ("subprocess.getoutput", {}), ("workers.events.process_event.__globals__", {}),
     ("tests.workers.rq_jobs.sleep", {"WORKER_ALLOWED_JOBS": ""})],
)  # fmt: skip
def test_a_job_naming_a_function_that_is_not_ours_is_refused_before_it_is_imported(
    redis: Redis, redis_url: str, queue: Queue, restore_signals: None, tmp_path: Path, func: str, extra: dict
) -> None:
    """Whoever can write to Redis must not run code in the worker (issue 23 item 8)."""
    marker = tmp_path / "ran"
    job = queue.enqueue(func, f"touch {marker}", retry=Retry(max=5))
    with capture_logs() as logs:
        build_worker(redis, settings=settings_for(redis_url, **extra)).work(burst=True)
    assert not marker.exists()
    assert [line["func"] for line in logs if line["event"] == "job_refused"] == [func]
    letter = DeadLetters(redis, ttl=60).get(f"job:{job.id}")
    assert letter is not None and "JobRefused" in letter.body_excerpt
    assert queue.count == 0 and queue.scheduled_job_registry.count == 0, "not retried"


def test_a_callback_on_a_job_is_never_imported(
    redis: Redis, redis_url: str, queue: Queue, restore_signals: None
) -> None:
    from rq import Callback

    job = queue.enqueue(
        "tests.workers.rq_jobs.sleep", 0.0, on_success=Callback("os.abort"), on_failure=Callback("os.abort")
    )
    with capture_logs() as logs:
        build_worker(redis, settings=settings_for(redis_url)).work(burst=True)
    assert job.get_status(refresh=True) == "finished"  # the process is still here: os.abort never ran
    assert {(line["func"], line["reason"]) for line in logs if line["event"] == "job_refused"} == {
        ("os.abort", "success callback")
    }


def test_an_envelope_that_is_not_an_object_is_dead_lettered_not_retried(
    redis: Redis, redis_url: str, queue: Queue, restore_signals: None
) -> None:
    job = queue.enqueue("workers.events.process_event", ["not", "an", "envelope"], retry=Retry(max=5))
    build_worker(redis, settings=settings_for(redis_url)).work(burst=True)
    letter = DeadLetters(redis, ttl=60).get(f"job:{job.id}")
    assert letter is not None and "EventUndecodable" in letter.body_excerpt
    assert queue.count == 0 and queue.scheduled_job_registry.count == 0


def test_while_redis_is_away_the_upkeep_says_so_once_then_every_half_minute(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from structlog.testing import capture_logs

    supervisor = Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=1)

    def gone() -> int:
        raise ConnectionError("Redis away")

    errors: list[Exception] = []  # every failure, logged or not: what to look at if this test fails
    upkeep_failed = supervisor._upkeep_failed
    monkeypatch.setattr(supervisor, "_upkeep_failed", lambda exc: (errors.append(exc), upkeep_failed(exc))[1])
    with capture_logs() as logs:
        with pytest.MonkeyPatch.context() as away:
            away.setattr(supervisor.leases, "renew", gone)
            for _ in range(20):
                supervisor._due.pop("leases", None)
                supervisor.tick(burst=True)
        supervisor._due.pop("leases", None)
        supervisor.tick(burst=True)
    events = [line["event"] for line in logs if line["event"].startswith("worker_upkeep")]
    assert events == ["worker_upkeep_failed", "worker_upkeep_recovered"], errors[20:]


def test_the_process_never_writes_a_heartbeat_for_a_worker_not_yet_born(redis: Redis, redis_url: str) -> None:
    """Under load a thread may register after the first beat: RQ refuses a birth when the key exists."""
    supervisor = Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=2)
    supervisor.threads = {i: threading.Thread(target=time.sleep, args=(0.5,)) for i in range(2)}
    for thread in supervisor.threads.values():
        thread.start()
    supervisor._beat(full=True)
    assert not any(redis.exists(worker.key) for worker in supervisor.workers)
    supervisor.workers[0].register_birth()  # the thread's RQ loop starting: no "active worker exists already"
    supervisor._beat(full=True)
    assert redis.hget(supervisor.workers[0].key, "last_heartbeat") is not None


def test_at_info_rqs_per_job_chatter_stays_out_of_the_log(redis: Redis, redis_url: str, queue: Queue) -> None:
    """ "Job OK", "result is kept", "Listening on": RQ's per-job lines are below INFO for us."""
    jobs = [queue.enqueue("tests.workers.rq_jobs.sleep", 0.0) for _ in range(3)]
    env = {**os.environ, "REDIS_URL": redis_url, "LOG_LEVEL": "INFO", "LOG_FORMAT": "json", "WORKER_CONCURRENCY": "1",
           "WORKER_ALLOWED_JOBS": TEST_JOBS}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "worker", "--burst"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert [job.get_status() for job in jobs] == ["finished"] * 3
    rq_lines = [line for line in (done.stdout + done.stderr).splitlines() if '"rq.' in line]
    assert rq_lines == [], rq_lines[:3]


def test_every_line_of_a_worker_process_says_it_is_the_worker(redis_url: str, queue: Queue) -> None:
    queue.enqueue("tests.workers.rq_jobs.sleep", 0.0)
    env = {**os.environ, "REDIS_URL": redis_url, "LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json", "WORKER_CONCURRENCY": "1",
           "WORKER_ALLOWED_JOBS": TEST_JOBS}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "worker", "--burst"], env=env, capture_output=True, text=True, timeout=60
    )
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert len(lines) > 5 and {line["logger"] for line in lines} >= {"circleci-events", "rq.worker"}
    assert {line.get("role") for line in lines} == {"worker"}
    [started] = [line for line in lines if line["event"] == "worker_started"]
    assert started["handlers"] == ["log"] and started["subscriptions"] == 1  # the shipped default routes
    assert (started["queue"], started["concurrency"], started["lease_seconds"]) == ("events", 1, 10)
    assert started["version"] and started["routes_file"].endswith("routes.yaml")


def test_the_scheduler_lock_of_a_killed_process_passes_on_within_about_a_lease(redis: Redis, redis_url: str) -> None:
    """RQ's lock lasts 61 s: held by a process killed with SIGKILL, it kept every survivor from
    queueing due retries for a minute. Here it lasts one lease and its holder keeps it so."""
    clock = FakeClock()
    settings = settings_for(redis_url)
    lease_ms, third = settings.worker_lease_seconds * 1000, settings.worker_lease_seconds / 3
    holder = Supervisor(redis, QUEUES[0], settings, concurrency=1, clock=clock)
    survivor = Supervisor(redis, QUEUES[0], settings, concurrency=1, clock=clock)
    key = RQScheduler.get_locking_key(QUEUES[0])
    holder._schedule()
    assert holder.scheduler.acquired_locks and 0 < redis.pttl(key) <= lease_ms
    survivor._schedule()
    assert not survivor.scheduler.acquired_locks
    for _ in range(4):  # RQ's heartbeat, then the holder's own refreshes between them
        redis.pexpire(key, lease_ms // 2)
        clock.advance(third)
        holder._schedule()
        assert lease_ms * 0.9 < redis.pttl(key) <= lease_ms
    redis.pexpire(key, 1)  # then the holder is killed: its lock lapses within a lease
    wait_until(lambda: not redis.exists(key), "the lapsed lock", timeout=10)
    clock.advance(third)
    survivor._schedule()
    assert survivor.scheduler.acquired_locks


def test_a_holder_that_lost_the_scheduler_lock_stops_scheduling(redis: Redis, redis_url: str) -> None:
    clock = FakeClock()
    settings = settings_for(redis_url)
    holder = Supervisor(redis, QUEUES[0], settings, concurrency=1, clock=clock)
    holder._schedule()
    clock.advance(settings.worker_lease_seconds / 3)
    holder._schedule()  # RQ's first heartbeat
    redis.set(RQScheduler.get_locking_key(QUEUES[0]), "another-scheduler")  # it lapsed; another took it
    clock.advance(settings.worker_lease_seconds / 3)
    holder._schedule()
    assert not holder.scheduler.acquired_locks
    assert redis.get(RQScheduler.get_locking_key(QUEUES[0])) == b"another-scheduler"


def test_the_worker_process_puts_its_queue_in_rqs_set_of_queues(redis_url: str) -> None:
    """`rq info` lists the queue: the receiver queues jobs without adding it (service/intake.py)."""
    redis = Redis.from_url(redis_url)
    assert Queue.all(connection=redis) == []
    Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=1).work(burst=True)
    assert [queue.name for queue in Queue.all(connection=redis)] == [QUEUES[0]]


def test_a_retried_job_that_carries_its_failures_ttl_runs_without_it(redis_url: str) -> None:
    """Its record would expire under it; a first run's has no TTL and costs no PERSIST."""
    redis = Redis.from_url(redis_url)
    queue = Queue(QUEUES[0], connection=redis, serializer=JSONSerializer)
    retried, fresh = queue.enqueue("tests.workers.rq_jobs.own_ttl"), queue.enqueue("tests.workers.rq_jobs.own_ttl")
    redis.hset(retried.key, "number_of_retries", 1)
    redis.expire(retried.key, 600)
    before = redis.info("commandstats").get("cmdstat_persist", {}).get("calls", 0)
    Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=1).work(burst=True)
    assert (retried.return_value(), fresh.return_value()) == (-1, -1)
    assert redis.info("commandstats")["cmdstat_persist"]["calls"] - before == 1
