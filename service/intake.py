"""Deduplicate a delivery on its payload `id` and queue it for the workers, in one atomic step.

The dedupe key must never exist without the queued job: if it did, a crash between the two
would turn CircleCI's retry into a silent loss. So both happen in one Lua script, which writes
an ordinary RQ job record (JSON-serialized, never pickled): `rq info` and RQ workers see it
like any job enqueued through `Queue.enqueue`.
"""

from __future__ import annotations

import json
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

PROCESS_EVENT = "workers.events.process_event"
DEDUPE_PREFIX = "cie:seen:"

# KEYS: dedupe key, job key, queue key, set of queues. ARGV: job id, dedupe ttl, then the
# job hash as field, value pairs. Returns the id of the job that holds the event, and 1 when
# this call queued it (0: a duplicate of an event already queued).
DEDUPE_AND_ENQUEUE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder then
  return {holder, 0}
end
-- Redis does not roll a script back when a command fails, so the dedupe key is written last:
-- whatever fails before it leaves the event unseen and CircleCI's retry queues it again.
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], KEYS[3])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return {ARGV[1], 1}
"""


@dataclass(frozen=True)
class Admission:
    job_id: str
    queued: bool


class Intake:
    """Queues `workers.events.process_event(envelope)` at most once per event id."""

    def __init__(
        self,
        redis: Redis,
        *,
        queue_name: str = "events",
        dedupe_ttl: int = 7 * 24 * 3600,
        job_timeout: int = 300,
        retry: Retry | None = None,
    ) -> None:
        self._script = redis.register_script(DEDUPE_AND_ENQUEUE_LUA)
        self._dedupe_ttl = dedupe_ttl
        # RQ builds the record once, here; per request only id, data and times change.
        # An unconnected client: nothing below talks to Redis.
        offline = SyncRedis()
        queue = Queue(queue_name, connection=offline, serializer=JSONSerializer)
        template = Job.create(
            PROCESS_EVENT,
            args=[{}],
            connection=offline,
            serializer=JSONSerializer,
            description="process_event",  # else RQ renders one from the arguments (~70 µs)
            timeout=job_timeout,
            result_ttl=3600,
            failure_ttl=30 * 24 * 3600,
            retry=retry or Retry(max=5, interval=[10, 30, 60, 300, 900]),
            origin=queue_name,
            status="queued",
        )
        fields = template.to_dict()
        for per_job in ("data", "created_at"):
            fields.pop(per_job)
        fields["status"] = "queued"
        self._fields = [x for item in fields.items() for x in item]
        self._queue_key = queue.key
        self._queues_key = queue.redis_queues_keys
        self._job_prefix = Job.redis_job_namespace_prefix

    async def admit(self, event_id: str, envelope: dict[str, Any]) -> Admission:
        job_id = uuid.uuid4().hex
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        data = zlib.compress(json.dumps([PROCESS_EVENT, None, [envelope], {}]).encode(), 1)
        result = await self._script(
            keys=[DEDUPE_PREFIX + event_id, self._job_prefix + job_id, self._queue_key, self._queues_key],
            args=[job_id, self._dedupe_ttl, "data", data, "created_at", now, "enqueued_at", now, *self._fields],
        )
        holder, queued = result
        return Admission(job_id=holder.decode() if isinstance(holder, bytes) else str(holder), queued=bool(queued))
