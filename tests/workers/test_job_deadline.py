"""Job deadlines: the process's tick stops a job past its timeout; no timer thread is started per job."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException, TimerDeathPenalty

from tests.clock import FakeClock
from tests.workers.test_worker import settings_for
from workers.job_deadline import JobDeadlines
from workers.supervisor import Supervisor
from workers.worker import QUEUES


def _spin(deadlines: JobDeadlines, timeout: float, outcome: list[Any], started: threading.Event) -> None:
    """A job's thread: under the penalty, Python running until the exception lands (or 10 s)."""
    try:
        with deadlines.penalty(timeout, JobTimeoutException, job_id="j"):
            started.set()
            stop = time.monotonic() + 10
            while time.monotonic() < stop:
                time.sleep(0.005)
        outcome.append("finished")
    except JobTimeoutException as exc:
        outcome.append(exc)


def test_a_job_past_its_deadline_is_stopped_at_the_next_tick() -> None:
    clock = FakeClock()
    deadlines = JobDeadlines(clock)
    outcome: list[Any] = []
    started = threading.Event()
    thread = threading.Thread(target=_spin, args=(deadlines, 30, outcome, started))
    thread.start()
    started.wait(5)
    clock.advance(29.9)
    assert deadlines.enforce() == []  # within its timeout
    clock.advance(0.1)
    assert deadlines.enforce() == [thread.ident]
    thread.join(5)
    [error] = outcome
    assert isinstance(error, JobTimeoutException)
    assert str(error) == "Task exceeded maximum timeout value (30 seconds)"
    assert deadlines.running() == 0 and deadlines.enforce() == []  # raised once


def test_a_job_that_ended_in_time_is_never_stopped() -> None:
    clock = FakeClock()
    deadlines = JobDeadlines(clock)
    with deadlines.penalty(1, JobTimeoutException):
        assert deadlines.running() == 1
    clock.advance(5)
    assert deadlines.enforce() == []
    assert deadlines.running() == 0


def test_a_job_without_a_timeout_has_no_deadline() -> None:
    deadlines = JobDeadlines(FakeClock())
    with deadlines.penalty(-1, JobTimeoutException):
        assert deadlines.running() == 0


@pytest.mark.integration
def test_a_hung_job_in_a_worker_process_is_stopped_within_a_second_of_its_timeout(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor's tick stops it, and no thread is started for any job's timeout."""
    timers: list[threading.Timer] = []
    start = threading.Timer.start
    monkeypatch.setattr(threading.Timer, "start", lambda self: (timers.append(self), start(self))[1])
    queue = Queue(QUEUES[0], connection=redis, serializer=JSONSerializer)
    quick = [queue.enqueue("tests.workers.rq_jobs.sleep", 0.0) for _ in range(5)]
    hung = queue.enqueue("tests.workers.rq_jobs.busy", 30.0, job_timeout=1)
    supervisor = Supervisor(redis, QUEUES[0], settings_for(redis_url), concurrency=2)
    supervisor.work(burst=True)
    assert [j.get_status() for j in quick] == ["finished"] * 5
    assert hung.get_status() == "failed"
    assert "JobTimeoutException" in (hung.latest_result().exc_string or "")
    hung.refresh()
    assert hung.started_at is not None and hung.ended_at is not None
    assert (hung.ended_at - hung.started_at).total_seconds() < 1 + 1
    assert timers == []
    assert supervisor.leases.held() == []  # its claim dropped: never renewed again
    assert redis.zcard(queue.started_job_registry.key) == 0


def test_the_timeout_says_the_jobs_own_seconds_whatever_rqs_timer_did_to_the_class() -> None:
    """RQ's TimerDeathPenalty (a lone worker's, a test's) replaces JobTimeoutException.__init__ for the
    whole process with one that names its own timeout: a later job's said "(24 seconds)" for 30."""
    TimerDeathPenalty(24, JobTimeoutException)
    test_a_job_past_its_deadline_is_stopped_at_the_next_tick()  # which expects "(30 seconds)"
