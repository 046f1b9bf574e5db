"""Delivery: one RQ job per (event, handler) on the "deliveries" queue, posted once.

    fan_out(redis, event, handler_names)      store the event once; queue one job per handler
    deliver(event_id, handler, force=False)   the job, `workers.delivery.deliver`
    replay_dead_letter(redis, delivery_id)    queue a dead letter again and forget it
    replay_event(redis, event_id, ...)        queue an event's deliveries again

Exactly-once effect: a success is recorded per delivery (`cie:delivered:<delivery_id>`, SET NX)
and a delivery that finds it does nothing unless forced; a short lock (`cie:lock:<delivery_id>`,
SET NX PX) held while sending keeps two workers from posting the same delivery at once.

A failed send (DeliveryRetryable, or anything unexpected) queues the next attempt as a new job
through RQ's scheduler, after the larger of exponential backoff with jitter and the 429's
Retry-After, rounded up to RQ's whole seconds. When that would fall past the retry budget
(counted from the event's received_at, or from the replay) the delivery is dead-lettered.
DeliveryRejected (a 4xx other than 408/429) is a configuration error: logged at error level
and dead-lettered at once with reason `rejected`, so it can be replayed once fixed.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from redis import Redis
from rq import Queue, Retry, get_current_job
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from config.errors import DeliveryRejected, HandlerError
from config.settings import Settings
from workers.dead_letters import DeadLetter, DeadLetters
from workers.delivery_context import DeliveryContext, current_settings, get_context
from workers.delivery_lock import DeliveryLock
from workers.store import EventStore, received_epoch

DELIVER = "workers.delivery.deliver"
# A worker killed mid-send leaves its job started; RQ's registry clean-up retries it this way.
CRASH_RETRY = Retry(max=3, interval=[5, 30, 120])

log = structlog.get_logger("workers.delivery")


def delivery_id_of(event_id: str, handler: str) -> str:
    return f"{event_id}:{handler}"


def job_id_of(delivery_id: str, suffix: str = "") -> str:
    """The RQ job id of a delivery (RQ allows only letters, digits, '_' and '-')."""
    base = "delivery-" + hashlib.sha256(delivery_id.encode()).hexdigest()[:32]
    return f"{base}-{suffix}" if suffix else base


def fan_out(
    redis: Redis, event: dict[str, Any], handler_names: list[str], *, settings: Settings | None = None
) -> list[str]:
    """Store `event` once and queue one delivery per distinct handler; returns the delivery ids.

    A delivery whose job is still known to RQ (pending, or finished within the result TTL) is
    not queued again, so a retried enrichment job does not double the deliveries.
    """
    settings = settings or current_settings()
    event_id = event["event_id"]
    names = list(dict.fromkeys(handler_names))
    store = EventStore(redis, ttl=settings.enriched_event_ttl_seconds)
    store.save(event, handlers=names)
    queued = [name for name in names if _enqueue(redis, settings, event_id, name, job_id_of(_did(event_id, name)))]
    for name in queued:
        store.record_outcome(event_id, name, "queued")
    log.info("deliveries_queued", event_id=event_id, handlers=names, queued=len(queued))
    return [_did(event_id, name) for name in names]


def deliver(event_id: str, handler: str, *, force: bool = False, replayed_at: float | None = None) -> str:
    """Send one event to one handler, at most once with effect; returns the outcome."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("deliver runs as an RQ job: queue it with fan_out or a replay")
    context = get_context()
    attempt = _Attempt(context, job, event_id, handler, force=force, replayed_at=replayed_at)
    return attempt.run()


def replay_dead_letter(redis: Redis, delivery_id: str, *, settings: Settings | None = None) -> str | None:
    """Queue a dead letter's delivery again and remove the letter; None when there is none.

    The job renders from the stored enriched event with the routes and templates the worker
    has then. It posts once: a success already recorded makes it (and any later replay) a no-op.
    """
    settings = settings or current_settings()
    letters = DeadLetters(redis, ttl=settings.enriched_event_ttl_seconds)
    letter = letters.get(delivery_id)
    if letter is None or not letters.remove(delivery_id):  # remove() lets one of two racing replays win
        return None
    job_id = job_id_of(delivery_id, "replay-" + uuid.uuid4().hex[:8])
    _enqueue(redis, settings, letter.event_id, letter.handler, job_id, replayed_at=time.time())
    EventStore(redis, ttl=settings.enriched_event_ttl_seconds).record_outcome(letter.event_id, letter.handler, "queued")
    log.info("dead_letter_replayed", delivery_id=delivery_id, event_id=letter.event_id, handler=letter.handler)
    return job_id


def replay_event(
    redis: Redis, event_id: str, handler: str | None = None, force: bool = False, *, settings: Settings | None = None
) -> list[str]:
    """Queue the event's deliveries (or one handler's) again; `force` posts even after a success.

    Returns the delivery ids queued: none when the event's record has expired and no handler
    is named.
    """
    settings = settings or current_settings()
    store = EventStore(redis, ttl=settings.enriched_event_ttl_seconds)
    letters = DeadLetters(redis, ttl=settings.enriched_event_ttl_seconds)
    record = store.record(event_id) or {}
    names = [handler] if handler else list(record.get("handlers") or [])
    for name in names:
        delivery_id = _did(event_id, name)
        letters.remove(delivery_id)
        job_id = job_id_of(delivery_id, "replay-" + uuid.uuid4().hex[:8])
        _enqueue(redis, settings, event_id, name, job_id, force=force, replayed_at=time.time())
        store.record_outcome(event_id, name, "queued")
    log.info("event_replayed", event_id=event_id, handlers=names, force=force)
    return [_did(event_id, name) for name in names]


def backoff_seconds(attempt: int, settings: Settings, rng: Any) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, times a draw in [0.5, 1]."""
    ceiling = min(settings.delivery_backoff_max_seconds, settings.delivery_backoff_base_seconds * 2 ** (attempt - 1))
    return float(ceiling * rng.uniform(0.5, 1.0))


def _did(event_id: str, handler: str) -> str:
    return delivery_id_of(event_id, handler)


def _enqueue(
    redis: Redis,
    settings: Settings,
    event_id: str,
    handler: str,
    job_id: str,
    *,
    force: bool = False,
    replayed_at: float | None = None,
    delay: float = 0.0,
) -> bool:
    """Queue (or schedule, after `delay` seconds) one delivery job; False when `job_id` exists."""
    queue = Queue(settings.deliveries_queue, connection=redis, serializer=JSONSerializer)
    kwargs: dict[str, Any] = {}
    if force:
        kwargs["force"] = True
    if replayed_at is not None:
        kwargs["replayed_at"] = replayed_at
    ttl = max(settings.enriched_event_ttl_seconds, settings.delivery_retry_budget_seconds)
    job = queue.create_job(
        DELIVER,
        args=[event_id, handler],
        kwargs=kwargs,
        job_id=job_id,
        description=f"deliver {job_id}",
        timeout=int(settings.delivery_timeout_seconds * 4 + 20),
        result_ttl=ttl,
        failure_ttl=ttl,
        retry=CRASH_RETRY,
        status=JobStatus.SCHEDULED if delay > 0 else JobStatus.QUEUED,
    )
    try:
        if delay > 0:
            # RQ's scheduler keeps whole seconds and runs what is due: round up, never early
            when = datetime.fromtimestamp(math.ceil(time.time() + delay), UTC)
            queue.schedule_job(job, when, unique=True)
        else:
            queue.enqueue_job(job, unique=True)
    except DuplicateJobError:
        return False
    return True


class _Attempt:
    """One run of a delivery job: check, lock, send, and record what happened."""

    def __init__(
        self, context: DeliveryContext, job: Job, event_id: str, handler: str, *, force: bool, replayed_at: float | None
    ) -> None:
        self.context, self.settings, self.metrics = context, context.settings, context.metrics
        self.redis: Redis = job.connection
        self.job_id = job.id
        self.event_id, self.handler, self.force, self.replayed_at = event_id, handler, force, replayed_at
        self.delivery_id = _did(event_id, handler)
        self.store = EventStore(self.redis, ttl=self.settings.enriched_event_ttl_seconds)
        self.event = self.store.load(event_id)
        self.lock = DeliveryLock(self.redis, self.delivery_id, ttl=self.settings.enriched_event_ttl_seconds)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            event_id=event_id,
            handler=handler,
            delivery_id=self.delivery_id,
            job_id=job.id,
            request_id=(self.event or {}).get("request_id"),
        )

    def run(self) -> str:
        if self.event is None:
            return self._dead("event_expired", attempts=0)
        target = self.context.handlers.get(self.handler)
        if target is None:
            return self._dead("unknown_handler", attempts=0)
        if not self.force and self.lock.delivered():
            return self._skipped()
        hold_ms = int((self.settings.delivery_timeout_seconds * 4 + 5) * 1000)
        token = self.lock.acquire(hold_ms)
        if token is None:
            wait = self.lock.remaining_seconds() + 1.0
            suffix = "wait-" + uuid.uuid4().hex[:8]
            self._reschedule(suffix, wait)
            log.info("delivery_lock_busy", retry_in_seconds=round(wait, 1))
            return "lock_busy"
        try:
            if not self.force and self.lock.delivered():  # another worker finished while we waited
                return self._skipped()
            self.metrics.attempts.labels(self.handler).inc()
            try:
                target.send(self.event, delivery_id=self.delivery_id, http=self.context.http)
            except DeliveryRejected as exc:
                return self._rejected(exc)
            except HandlerError as exc:
                return self._failed(exc.status, exc.retry_after, exc.body_excerpt, exc.code)
            except Exception as exc:  # a handler bug or an unmapped transport error: retried within the budget
                return self._failed(None, None, "", type(exc).__name__)
            return self._succeeded()
        finally:
            self.lock.release(token)

    def _succeeded(self) -> str:
        self.lock.mark_delivered(self.job_id, force=self.force)
        attempts = self.store.record_attempt(self.event_id, self.handler, outcome="delivered")
        since_receipt = max(0.0, time.time() - received_epoch(self.event or {}))
        self.metrics.deliveries.labels(self.handler, "delivered").inc()
        self.metrics.latency.labels(self.handler).observe(since_receipt)
        log.info("delivery_succeeded", attempts=attempts, seconds_since_receipt=round(since_receipt, 3))
        return "delivered"

    def _skipped(self) -> str:
        self.metrics.deliveries.labels(self.handler, "skipped_duplicate").inc()
        log.info("delivery_skipped_duplicate")
        return "skipped_duplicate"

    def _rejected(self, exc: DeliveryRejected) -> str:
        attempts = self.store.record_attempt(self.event_id, self.handler, outcome="rejected", status=exc.status)
        self._keep_dead_letter("rejected", exc.status, exc.body_excerpt, attempts)
        self.metrics.deliveries.labels(self.handler, "rejected").inc()
        log.error("delivery_rejected", status=exc.status, body_excerpt=exc.body_excerpt[:200], attempts=attempts)
        return "rejected"

    def _failed(self, status: int | None, retry_after: float | None, body: str, reason: str) -> str:
        outcome_at = time.time()
        state = self.store.handler_state(self.event_id, self.handler)
        attempt = state["attempts"] + 1
        delay = max(backoff_seconds(attempt, self.settings, self.context.rng), retry_after or 0.0)
        start = max(received_epoch(self.event or {}), self.replayed_at or 0.0)
        if outcome_at + delay > start + self.settings.delivery_retry_budget_seconds:
            attempts = self.store.record_attempt(self.event_id, self.handler, outcome="dead_lettered", status=status)
            return self._dead("retry_budget_exhausted", attempts=attempts, status=status, body=body, cause=reason)
        attempts = self.store.record_attempt(
            self.event_id, self.handler, outcome="retrying", status=status, reason=reason
        )
        self._reschedule(f"retry-{attempts}", delay)
        self.metrics.deliveries.labels(self.handler, "retried").inc()
        log.warning(
            "delivery_retry_scheduled",
            attempts=attempts,
            status=status,
            reason=reason,
            retry_in_seconds=round(delay, 3),
        )
        return "retried"

    def _dead(self, reason: str, *, attempts: int, status: int | None = None, body: str = "", cause: str = "") -> str:
        self._keep_dead_letter(reason, status, body, attempts)
        self.store.record_outcome(self.event_id, self.handler, "dead_lettered")
        self.metrics.deliveries.labels(self.handler, "dead_lettered").inc()
        log.error("delivery_dead_lettered", reason=reason, cause=cause or None, status=status, attempts=attempts)
        return "dead_lettered"

    def _keep_dead_letter(self, reason: str, status: int | None, body: str, attempts: int) -> None:
        state = self.store.handler_state(self.event_id, self.handler)
        letter = DeadLetter(
            delivery_id=self.delivery_id,
            event_id=self.event_id,
            handler=self.handler,
            reason=reason,
            last_status=status,
            body_excerpt=body,
            attempts=attempts,
            first_attempt_at=state["first_attempt_at"],
            last_attempt_at=state["last_attempt_at"],
            dead_at=time.time(),
        )
        DeadLetters(self.redis, ttl=self.settings.enriched_event_ttl_seconds).put(letter)

    def _reschedule(self, suffix: str, delay: float) -> None:
        job_id = job_id_of(self.delivery_id, suffix)
        _enqueue(
            self.redis,
            self.settings,
            self.event_id,
            self.handler,
            job_id,
            force=self.force,
            replayed_at=self.replayed_at,
            delay=max(delay, 0.001),
        )
