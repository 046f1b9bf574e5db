"""Queue a Slack click as `workers.actions.act(click)`, once per request, in one atomic step.

The request key (the caller's, e.g. a hash of Slack's signature) is written in the same Lua
script as the job record, so a replayed request finds it and queues nothing, and a request
that was not queued is never remembered. The job goes to the queue's front: a click waits for
no backlog of events. The record is RQ's own (JSON-serialized, built once by `Job.create`), like
service/intake.py's: `rq info` and RQ workers see an ordinary job.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from config.clock import utc_now_text
from workers.jobs import ACT, ACTION_DESCRIPTION, EVENT_FAILURE_TTL, EVENT_RESULT_TTL

# KEYS: request key, job key, queue key, set of queues. ARGV: ttl, job id, data, time, then the
# shared job fields as field, value pairs. Returns 1 when queued, 0 for a replay.
PUT_LUA = """
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[1]) == false then return 0 end
redis.call('HSET', KEYS[2], 'data', ARGV[3], 'created_at', ARGV[4], 'enqueued_at', ARGV[4], unpack(ARGV, 5))
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], KEYS[3])
return 1
"""
ACTION_JOB_TIMEOUT = 60


class ClickQueue:
    def __init__(self, redis: Redis, *, queue_name: str = "events") -> None:
        self._script = redis.register_script(PUT_LUA)
        offline = SyncRedis()  # builds the record; never connects
        queue = Queue(queue_name, connection=offline, serializer=JSONSerializer)
        template = Job.create(
            ACT, args=[{}], connection=offline, serializer=JSONSerializer, description=ACTION_DESCRIPTION,
            timeout=ACTION_JOB_TIMEOUT, result_ttl=EVENT_RESULT_TTL, failure_ttl=EVENT_FAILURE_TTL,
            origin=queue_name, status=JobStatus.QUEUED,
        )  # fmt: skip
        fields = template.to_dict()
        for per_job in ("data", "created_at", "enqueued_at"):
            fields.pop(per_job, None)
        fields["status"] = "queued"
        self._shared = [x for item in fields.items() for x in item]
        self._queue_keys = [queue.key, queue.redis_queues_keys]

    async def put(self, click: dict[str, Any], *, request_key: str, ttl: int) -> bool:
        """Queue the click unless `request_key` was queued before; True when queued now."""
        job_id = os.urandom(16).hex()
        data = orjson.dumps([ACT, None, [click], {}])
        keys = [request_key, Job.redis_job_namespace_prefix + job_id, *self._queue_keys]
        return bool(await self._script(keys=keys, args=[ttl, job_id, data, utc_now_text(), *self._shared]))
