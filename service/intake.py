"""Admit deliveries: rate limit, deduplicate on the payload `id`, and queue, in one atomic step.

The dedupe key must never exist without the queued job: if it did, a crash between the two
would turn CircleCI's retry into a silent loss. So the checks and writes happen in one Lua
script, which writes ordinary RQ job records (JSON-serialized, never pickled): `rq info` and
RQ workers see them like any job enqueued through `Queue.enqueue`. Unlike `Queue.enqueue`, it
does not add the queue to RQ's set of queues (`rq:queues`) with every job: the worker process
does that with its heartbeat (workers/supervisor.py), one command every BEAT_SECONDS instead of
one per delivery, and the web's /metrics reads the configured queue's depth whatever the set holds.

Concurrent requests are admitted together: while one script call is in flight, the next
deliveries wait and then go in a single call. Most of a request's cost was redis-py's per-call
work (two calls per delivery before); batching pays it once per batch.

With `wait_replicas` (REDIS_WAIT_REPLICAS), the batch's script and a `WAIT <replicas>
<timeout>` go down one connection in one pipeline (WAIT counts the acknowledgements of that
connection's writes, and replication keeps their order): when fewer replicas confirm in time,
the batch's new events and duplicates are answered `unreplicated` (the web's 503), so CircleCI
retries; the retry is a duplicate, answered 200 once a replica has confirmed it (or queued
afresh by a promoted replica that never saw it).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import orjson
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from config.clock import utc_now_text
from workers.jobs import EVENT_DESCRIPTION, EVENT_FAILURE_TTL, EVENT_RESULT_TTL, PROCESS_EVENT, event_retry
from workers.store import RECORD_PREFIX
from workers.token_bucket import RATE_LIMIT_PREFIX, TOKEN_BUCKET_LUA

DEDUPE_PREFIX = "cie:seen:"
MAX_BATCH = 256

# KEYS: queue key. ARGV: rate, burst, dedupe ttl, the key prefixes of rate
# limits, dedupe keys, RQ jobs and event records, the number F of shared job fields, those F
# fields as field, value pairs, then 5 values per delivery: client, event id, job id, data,
# time. Returns one string, an entry per delivery joined by ',': 'q <job id>', 'd <job id that
# holds it>' or 'l <seconds to wait>' (flat: parsing nested replies cost more).
# The keys are built inside the script, which Redis Cluster would refuse; RQ does not run on
# Redis Cluster anyway.
ADMIT_LUA = (
    TOKEN_BUCKET_LUA
    + """
local rate, burst, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local limit_prefix, seen_prefix, job_prefix, record_prefix = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local nfields = tonumber(ARGV[8])
local shared = {}
for i = 9, 8 + nfields do shared[#shared + 1] = ARGV[i] end
local results = {}
for i = 9 + nfields, #ARGV, 5 do
  local client, event_id, job_id, data, now = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local allowed, wait = take_token(limit_prefix .. client, rate, burst)
  local holder = redis.call('GET', seen_prefix .. event_id)
  if allowed == 0 then
    results[#results + 1] = 'l ' .. tostring(wait)
  elseif holder then
    -- `events show` counts the duplicates CircleCI sent
    redis.call('HINCRBY', record_prefix .. event_id, 'duplicates', 1)
    redis.call('EXPIRE', record_prefix .. event_id, ttl)
    results[#results + 1] = 'd ' .. holder
  else
    -- Redis does not roll a script back when a command fails, so the dedupe key is written
    -- last: whatever fails before it leaves the event unseen, and CircleCI's retry queues it.
    redis.call('HSET', job_prefix .. job_id, 'data', data, 'created_at', now, 'enqueued_at', now, unpack(shared))
    redis.call('RPUSH', KEYS[1], job_id)
    redis.call('SET', seen_prefix .. event_id, job_id, 'EX', ttl)
    results[#results + 1] = 'q ' .. job_id
  end
end
return table.concat(results, ',')
"""
)


@dataclass(frozen=True)
class Admission:
    outcome: str  # queued | duplicate | limited | unreplicated
    job_id: str | None = None
    retry_after: float = 0.0


class Intake:
    """Queues `workers.events.process_event(envelope)` at most once per event id."""

    def __init__(
        self,
        redis: Redis,
        *,
        queue_name: str = "events",
        dedupe_ttl: int = 7 * 24 * 3600,
        rate_limit_burst: int = 200,
        rate_limit_per_second: float = 100.0,
        job_timeout: int = 300,
        retry: Retry | None = None,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        self._redis = redis
        self._wait = (wait_replicas, wait_timeout_ms)
        self._script = redis.register_script(ADMIT_LUA)
        prefixes = [RATE_LIMIT_PREFIX, DEDUPE_PREFIX, Job.redis_job_namespace_prefix, RECORD_PREFIX]
        self._head = [rate_limit_per_second, rate_limit_burst, dedupe_ttl, *prefixes]
        # RQ builds the record once, here; per delivery only id, data and times change.
        # An unconnected client: nothing below talks to Redis.
        offline = SyncRedis()
        queue = Queue(queue_name, connection=offline, serializer=JSONSerializer)
        template = Job.create(
            PROCESS_EVENT,
            args=[{}],
            connection=offline,
            serializer=JSONSerializer,
            description=EVENT_DESCRIPTION,
            timeout=job_timeout,
            result_ttl=EVENT_RESULT_TTL,
            failure_ttl=EVENT_FAILURE_TTL,
            retry=retry or event_retry(),
            origin=queue_name,
            status=JobStatus.QUEUED,
        )
        fields = template.to_dict()
        for per_job in ("data", "created_at", "enqueued_at"):
            fields.pop(per_job, None)
        fields["status"] = "queued"
        shared = [x for item in fields.items() for x in item]
        self._head += [len(shared), *shared]
        self._keys = [queue.key]
        self._pending: list[tuple[list[Any], asyncio.Future[Admission]]] = []
        self._flushing = False

    async def admit(self, *, client: str, event_id: str, envelope: dict[str, Any], raw_payload: bytes) -> Admission:
        """Admit one delivery; concurrent calls share one Redis round trip."""
        job_id = os.urandom(16).hex()  # uuid4().hex without building a UUID object
        now = envelope.get("received_at") or utc_now_text()  # RQ reads this format
        item = [client, event_id, job_id, _job_data(envelope, raw_payload), now]
        future: asyncio.Future[Admission] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                args: list[Any] = list(self._head)
                for item, _ in batch:
                    args += item
                try:
                    results, replicated = await self._admit_batch(args)
                except Exception as exc:  # every caller of the batch sees Redis's error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), entry in zip(batch, results.decode().split(","), strict=True):
                    if not future.done():
                        admission = _admission(entry)
                        if admission.outcome in ("queued", "duplicate") and not replicated:
                            admission = Admission("unreplicated", job_id=admission.job_id)
                        future.set_result(admission)
        finally:
            self._flushing = False

    async def _admit_batch(self, args: list[Any]) -> tuple[bytes, bool]:
        """The script's answer, and whether enough replicas confirmed its writes (always, without WAIT)."""
        replicas, timeout_ms = self._wait
        if not replicas:
            return await self._script(keys=self._keys, args=args), True
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._script(keys=self._keys, args=args, client=pipe)
            pipe.execute_command("WAIT", replicas, timeout_ms)
            results, confirmed = await pipe.execute()
        return results, int(confirmed) >= replicas


_OUTCOMES = {"q": "queued", "d": "duplicate", "l": "limited"}


def _admission(entry: str) -> Admission:
    kind, _, value = entry.partition(" ")
    if kind == "l":
        return Admission("limited", retry_after=float(value))
    return Admission(_OUTCOMES[kind], job_id=value)


def _job_data(envelope: dict[str, Any], raw_payload: bytes) -> bytes:
    """RQ's job data: [function, instance, args, kwargs] as JSON.

    The payload goes in as the bytes CircleCI sent instead of being serialized again: they
    were parsed already (by orjson, which accepts only UTF-8), so they are valid JSON.
    Not zlib-compressed: RQ reads uncompressed data as it is (`Job.restore` falls back when
    `zlib.decompress` fails, which it does at once on JSON's first byte), and compressing a
    5 KB payload cost a tenth of a request's CPU.
    """
    head = orjson.dumps([PROCESS_EVENT, None, [envelope], {}])
    cut = len(head) - len(b"}],{}]")  # splice ',"payload":<raw>' before the envelope's '}'
    return head[:cut] + b',"payload":' + raw_payload + head[cut:]
