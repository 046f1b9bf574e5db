"""Admission is one atomic step per delivery, batched across concurrent requests (real redis-server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from service.intake import DEDUPE_PREFIX, PROCESS_EVENT, Intake, _job_data
from tests.conftest import RedisServer, down_async
from tests.waiting import wait_until
from workers.store import RECORD_PREFIX


def admit_all(redis_url: str, deliveries: list[tuple[str, str]], **options) -> list:
    """Admit (client, event id) pairs concurrently, as simultaneous requests would."""

    async def go() -> list:
        client = Redis.from_url(redis_url)
        intake = Intake(client, **options)
        try:
            return await asyncio.gather(
                *(
                    intake.admit(
                        client=c, event_id=e, envelope={"event_id": e}, raw_payload=b'{"id":"%s"}' % e.encode()
                    )
                    for c, e in deliveries
                ),
                return_exceptions=True,
            )
        finally:
            await client.aclose()

    return asyncio.run(go())


def events_queue(redis_url: str) -> Queue:
    return Queue("events", connection=redis.Redis.from_url(redis_url), serializer=JSONSerializer)


def test_concurrent_deliveries_of_one_event_queue_exactly_one_job(redis_url: str) -> None:
    admissions = admit_all(redis_url, [("ci", "evt-1")] * 8)
    assert [a.outcome for a in admissions].count("queued") == 1
    assert len({a.job_id for a in admissions}) == 1  # every duplicate names the job that holds it
    assert events_queue(redis_url).job_ids == [admissions[0].job_id]


def test_many_concurrent_events_are_all_queued_once_in_order(redis_url: str) -> None:
    ids = [f"evt-{i}" for i in range(600)]  # more than one batch
    deliveries = [("ci", e) for e in ids] + [("ci", e) for e in ids[:50]]
    admissions = admit_all(redis_url, deliveries, rate_limit_burst=10_000)
    outcomes = [a.outcome for a in admissions]
    assert outcomes.count("queued") == 600 and outcomes.count("duplicate") == 50
    queue = events_queue(redis_url)
    assert queue.count == 600
    assert [job.args[0]["event_id"] for job in queue.jobs] == ids


def test_the_job_record_is_what_rq_reads(redis_url: str) -> None:
    (admission,) = admit_all(redis_url, [("ci", "evt-rq")])
    job = Job.fetch(admission.job_id, connection=redis.Redis.from_url(redis_url), serializer=JSONSerializer)
    assert job.func_name == PROCESS_EVENT
    assert job.args == ({"event_id": "evt-rq", "payload": {"id": "evt-rq"}},) or job.args == [
        {"event_id": "evt-rq", "payload": {"id": "evt-rq"}}
    ]
    assert job.get_status() == "queued" and job.origin == "events"
    assert job.retries_left == 5 and job.description == "process_event"
    assert job.enqueued_at is not None and job.created_at is not None


def test_the_dedupe_key_expires_after_the_window(redis_url: str) -> None:
    admit_all(redis_url, [("ci", "evt-2")], dedupe_ttl=123)
    assert 0 < redis.Redis.from_url(redis_url).ttl(DEDUPE_PREFIX + "evt-2") <= 123


def test_a_client_over_its_burst_is_limited_and_others_are_not(redis_url: str) -> None:
    deliveries = [("noisy", f"n-{i}") for i in range(5)] + [("quiet", "q-1")]
    admissions = admit_all(redis_url, deliveries, rate_limit_burst=3, rate_limit_per_second=0.5)
    outcomes = [a.outcome for a in admissions]
    assert outcomes == ["queued"] * 3 + ["limited"] * 2 + ["queued"]
    assert 0 < admissions[3].retry_after <= 2.0
    # a limited delivery is not remembered: its retry is queued once tokens are back
    assert redis.Redis.from_url(redis_url).exists(DEDUPE_PREFIX + "n-3") == 0


def test_a_failed_enqueue_leaves_no_dedupe_key(redis_url: str) -> None:
    """If the job cannot be written, the event must not be remembered as seen."""
    sync = redis.Redis.from_url(redis_url)
    sync.set("rq:queue:events", "not a list")  # RPUSH fails inside the script
    (outcome,) = admit_all(redis_url, [("ci", "evt-3")])
    assert isinstance(outcome, redis.exceptions.ResponseError)
    # Redis does not roll a failed script back: the dedupe key must be the last write.
    assert sync.exists(DEDUPE_PREFIX + "evt-3") == 0


def test_redis_down_fails_every_caller_of_the_batch() -> None:
    async def go() -> list:
        client = down_async()
        intake = Intake(client)
        return await asyncio.gather(
            *(intake.admit(client="c", event_id=f"e{i}", envelope={"e": i}, raw_payload=b"{}") for i in range(3)),
            return_exceptions=True,
        )

    assert all(isinstance(r, redis.exceptions.ConnectionError) for r in asyncio.run(go()))


def test_job_data_carries_the_payload_bytes_as_sent() -> None:
    payload = {"id": "é-1", "nested": {"x": [1, 2, "ünïcode", 'quote\\"s']}}
    raw = json.dumps(payload, ensure_ascii=False, indent=2).encode()
    data = json.loads(_job_data({"event_id": "é-1", "request_id": "r"}, raw))
    assert data == [PROCESS_EVENT, None, [{"event_id": "é-1", "request_id": "r", "payload": payload}], {}]


def test_duplicates_are_counted_on_the_event_record(redis_url: str) -> None:
    admit_all(redis_url, [("ci", "evt-dup")] * 3)
    record = redis.Redis.from_url(redis_url).hgetall(RECORD_PREFIX + "evt-dup")
    assert record == {b"duplicates": b"2"}


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = RedisServer(tmp_path / "primary").start()
    replica = RedisServer(tmp_path / "replica", args=("--replicaof", "127.0.0.1", str(primary.port))).start()
    replication = redis.Redis(port=replica.port).info
    wait_until(lambda: replication("replication").get("master_link_status") == "up", "the replica connected")
    yield primary, replica
    replica.stop()
    primary.stop()


@pytest.mark.integration
def test_with_wait_replicas_a_confirmed_write_is_queued(primary_and_replica) -> None:
    primary, replica = primary_and_replica
    [admission] = admit_all(primary.url, [("ci", "evt-r1")], wait_replicas=1, wait_timeout_ms=2000)
    assert admission.outcome == "queued"
    assert redis.Redis(port=replica.port).exists(DEDUPE_PREFIX + "evt-r1")  # already on the replica


@pytest.mark.integration
def test_without_enough_replicas_in_time_the_new_events_are_unreplicated(primary_and_replica) -> None:
    primary, _ = primary_and_replica
    admissions = admit_all(primary.url, [("ci", "evt-r2"), ("ci", "evt-r3")], wait_replicas=2, wait_timeout_ms=50)
    assert [a.outcome for a in admissions] == ["unreplicated", "unreplicated"]
    # the primary has them: CircleCI's retry is a duplicate, unconfirmed as long as the replicas lag
    assert [a.outcome for a in admit_all(primary.url, [("ci", "evt-r2")], wait_replicas=2, wait_timeout_ms=50)] == [
        "unreplicated"
    ]
    assert [a.outcome for a in admit_all(primary.url, [("ci", "evt-r2")], wait_replicas=1)] == ["duplicate"]
