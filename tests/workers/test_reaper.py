"""The reaper: a dead worker's jobs go back to the front of the queue within seconds, once each."""

from __future__ import annotations

import time

import pytest
from redis import Redis
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from workers.reaper import MAX_ABANDONED, Reaper, requeue_running

pytestmark = pytest.mark.integration
LEASE = 10


@pytest.fixture
def queue(redis: Redis) -> Queue:
    return Queue("events", connection=redis, serializer=JSONSerializer)


def failed_by_rq(job: Job, queue: Queue, exc_string: str) -> None:
    failed.append((job.id, exc_string))


failed: list[tuple[str, str]] = []


@pytest.fixture
def reaper(queue: Queue) -> Reaper:
    failed.clear()
    return Reaper(queue, lease_seconds=LEASE, fail=failed_by_rq)


def started(queue: Queue, job: Job, *, expiry: float) -> str:
    """What a worker that then died leaves: the job started, its claim in the registry."""
    entry = f"{job.id}:exec1"
    queue.connection.lpop(queue.key)
    queue.connection.hset(job.key, "status", "started")
    queue.connection.zadd(queue.started_job_registry.key, {entry: expiry})
    return entry


def test_a_lapsed_claim_puts_its_job_back_at_the_front_of_the_queue(queue: Queue, reaper: Reaper) -> None:
    waiting = queue.enqueue("os.getcwd")
    job = queue.enqueue("os.getcwd", at_front=True)
    started(queue, job, expiry=time.time() - 1)
    assert reaper.sweep(time.time()) == [job.id]
    assert queue.job_ids == [job.id, waiting.id]
    job.refresh()
    assert (job.get_status(), job.meta["abandoned"]) == ("queued", 1)
    assert queue.started_job_registry.get_job_ids() == []


def test_a_live_claim_is_left_alone(queue: Queue, reaper: Reaper) -> None:
    job = queue.enqueue("os.getcwd")
    started(queue, job, expiry=time.time() + LEASE)
    assert reaper.sweep(time.time()) == []
    assert job.get_status() == "started"


def test_a_job_that_kills_every_worker_goes_to_rqs_failure_handling(queue: Queue, reaper: Reaper) -> None:
    job = queue.enqueue("os.getcwd", retry=Retry(max=1))
    for _ in range(MAX_ABANDONED):
        started(queue, job, expiry=time.time() - 1)
        reaper.sweep(time.time())
    started(queue, job, expiry=time.time() - 1)
    assert reaper.sweep(time.time()) == [job.id]
    assert failed == [(job.id, f"AbandonedJobError: its worker died {MAX_ABANDONED + 1} times while running it")]


def test_a_job_taken_but_never_started_comes_back_after_a_lease(queue: Queue, reaper: Reaper) -> None:
    job = queue.enqueue("os.getcwd")
    Queue.dequeue_any([queue], timeout=None, connection=queue.connection)  # LMOVE, then the worker died
    now = time.time()
    assert reaper.sweep(now) == []  # seen: a live worker starts it within a millisecond
    assert reaper.sweep(now + LEASE - 1) == []
    assert reaper.sweep(now + LEASE) == [job.id]
    assert queue.job_ids == [job.id]
    assert queue.connection.llen(queue.intermediate_queue_key) == 0


def test_one_pass_per_interval_across_processes(queue: Queue, reaper: Reaper) -> None:
    other = Reaper(queue, lease_seconds=LEASE, fail=failed_by_rq)
    job = queue.enqueue("os.getcwd")
    started(queue, job, expiry=time.time() - 1)
    assert reaper.run() == [job.id]
    started(queue, job, expiry=time.time() - 1)
    assert other.run() == []  # within the interval: the pass was made


def test_a_stop_past_its_grace_requeues_what_it_was_running(queue: Queue) -> None:
    job = queue.enqueue("os.getcwd")
    entry = started(queue, job, expiry=time.time() + LEASE)
    assert requeue_running(queue, [entry, "ended-meanwhile:x"]) == [job.id]
    assert (job.get_status(), queue.job_ids) == ("queued", [job.id])
