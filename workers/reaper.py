"""The reaper: jobs whose worker died go back to the front of the queue, seconds after it died.

Every worker process runs a pass every half lease; one pass per interval does the work across
all processes (whoever takes `cie:reaper` first, SET NX PX). A pass reads RQ's started registry
and the queue's intermediate list in one round trip and puts back:

    lapsed claims   a started job whose lease (workers/lease.py) ran out: its process stopped
                    renewing it. Requeued at the front at once, counted in the job's
                    meta['abandoned']; a job abandoned MAX_ABANDONED times (one that kills
                    every worker that runs it) goes through RQ's failure handling instead:
                    its Retry, then the failed registry.
    orphans         a job a worker took from the queue (LMOVE into the intermediate list) and
                    died before starting: not started after ORPHAN_SECONDS, it goes back to
                    the front of the queue. A live worker starts a job a millisecond after it
                    takes it.

A requeued job may have been half done (a post sent, its success not yet recorded): the
delivery records and locks (workers/delivery/) keep that from posting twice, within the window
docs/development.md states (Reliability).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import parse_composite_key

from config.clock import SYSTEM_CLOCK, Clock

log = structlog.get_logger("workers.reaper")
LOCK_KEY = "cie:reaper:{}"
ORPHAN_KEY = "cie:orphan:{}"
MAX_ABANDONED = 3
# Fails an abandoned job the RQ way (its Retry, else the failed registry): a worker's handle_job_failure.
FailJob = Callable[[Job, Queue, str], None]


class Reaper:
    def __init__(self, queue: Queue, *, lease_seconds: int, fail: FailJob, clock: Clock = SYSTEM_CLOCK) -> None:
        self.queue, self.clock = queue, clock
        self.redis: Redis = queue.connection
        self.interval = lease_seconds / 2
        self.orphan_seconds = float(lease_seconds)
        self.fail = fail
        self.lock_key = LOCK_KEY.format(queue.name)

    def run(self, now: float | None = None) -> list[str]:
        """One pass, if no other process made one within the interval; the job ids put back."""
        if not self.redis.set(self.lock_key, 1, nx=True, px=int(self.interval * 1000) - 50):
            return []
        return self.sweep(self.clock.now() if now is None else now)

    def sweep(self, now: float) -> list[str]:
        registry_key = self.queue.started_job_registry.key
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(registry_key, 0, -1, withscores=True)
            pipe.lrange(self.queue.intermediate_queue_key, 0, -1)
            claims, taken = pipe.execute()
        running = set()
        requeued = []
        for raw, expiry in claims:
            entry = raw.decode()
            job_id, _ = parse_composite_key(entry)
            if expiry >= now:
                running.add(job_id)
            elif self._lapsed(entry, job_id):
                requeued.append(job_id)
        for raw in taken:
            job_id = raw.decode()
            if job_id not in running and self._orphaned(job_id, now):
                requeued.append(job_id)
        return requeued

    def _lapsed(self, entry: str, job_id: str) -> bool:
        """Requeue (or fail) the job of a lapsed claim; False when another pass or its end came first."""
        if not self.redis.zrem(self.queue.started_job_registry.key, entry):
            return False
        try:
            job = Job.fetch(job_id, connection=self.redis, serializer=self.queue.serializer)
        except NoSuchJobError:
            return False
        if job.get_status(refresh=False) != JobStatus.STARTED:
            return False  # it ended as the claim lapsed: nothing to do
        abandoned = int(job.meta.get("abandoned", 0)) + 1
        job.meta["abandoned"] = abandoned
        if abandoned > MAX_ABANDONED:
            job.save_meta()  # type: ignore[no-untyped-call]
            log.error("job_abandoned_too_often", job_id=job_id, times=abandoned, func=job.func_name)
            self.fail(job, self.queue, f"AbandonedJobError: its worker died {abandoned} times while running it")
            return True
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(job.key, mapping={"status": JobStatus.QUEUED.value, "meta": job.serializer.dumps(job.meta)})
            pipe.lpush(self.queue.key, job_id)
            pipe.execute()
        log.warning("job_requeued_abandoned", job_id=job_id, times=abandoned, func=job.func_name)
        return True

    def _orphaned(self, job_id: str, now: float) -> bool:
        """Put back a job taken but never started, once it has been seen waiting ORPHAN_SECONDS."""
        key = ORPHAN_KEY.format(job_id)
        first_seen = self.redis.set(key, now, nx=True, ex=3600, get=True)
        if first_seen is None or now - float(first_seen) < self.orphan_seconds:
            return False
        if not self.redis.lrem(self.queue.intermediate_queue_key, 1, job_id):
            return False  # started (or put back) meanwhile
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(self.queue.key, job_id)
            pipe.delete(key)
            pipe.execute()
        log.warning("job_requeued_orphan", job_id=job_id, waited_seconds=round(now - float(first_seen), 1))
        return True


def requeue_running(queue: Queue, entries: list[str]) -> list[str]:
    """Put jobs this process was running back at the front of the queue (a shutdown past its grace)."""
    redis: Redis = queue.connection
    requeued = []
    for entry in entries:
        if not redis.zrem(queue.started_job_registry.key, entry):
            continue  # it ended meanwhile
        job_id, _ = parse_composite_key(entry)
        with redis.pipeline(transaction=False) as pipe:
            pipe.hset(Job.key_for(job_id), "status", JobStatus.QUEUED.value)
            pipe.lpush(queue.key, job_id)
            pipe.execute()
        requeued.append(job_id)
    return requeued
