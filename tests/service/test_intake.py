"""Dedupe and enqueue are one atomic step, on the real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis
from redis.asyncio import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from service.intake import DEDUPE_PREFIX, Intake


def run(coro):
    return asyncio.run(coro)


def test_concurrent_deliveries_of_one_event_queue_exactly_one_job(redis_url: str) -> None:
    async def deliver_many() -> list:
        client = Redis.from_url(redis_url)
        intake = Intake(client)
        try:
            return await asyncio.gather(*(intake.admit("evt-1", {"event_id": "evt-1"}) for _ in range(8)))
        finally:
            await client.aclose()

    admissions = run(deliver_many())
    assert sum(a.queued for a in admissions) == 1
    assert len({a.job_id for a in admissions}) == 1  # every duplicate names the job that holds it
    queue = Queue("events", connection=redis.Redis.from_url(redis_url), serializer=JSONSerializer)
    assert queue.job_ids == [admissions[0].job_id]


def test_the_dedupe_key_expires_after_the_window(redis_url: str) -> None:
    async def admit() -> None:
        client = Redis.from_url(redis_url)
        await Intake(client, dedupe_ttl=123).admit("evt-2", {})
        await client.aclose()

    run(admit())
    assert 0 < redis.Redis.from_url(redis_url).ttl(DEDUPE_PREFIX + "evt-2") <= 123


def test_a_failed_enqueue_leaves_no_dedupe_key(redis_url: str) -> None:
    """If the job cannot be written, the event must not be remembered as seen."""
    sync = redis.Redis.from_url(redis_url)
    sync.set("rq:queue:events", "not a list")  # RPUSH will fail inside the script

    async def admit() -> None:
        client = Redis.from_url(redis_url)
        try:
            await Intake(client).admit("evt-3", {})
        finally:
            await client.aclose()

    with pytest.raises(redis.exceptions.ResponseError):
        run(admit())
    # Redis does not roll a failed script back: the dedupe key must be the last write.
    assert sync.exists(DEDUPE_PREFIX + "evt-3") == 0
