"""One run of a delivery job: check, lock, send through the handler, and record the outcome.

success                      record it (SET NX), count, log `delivery_succeeded`
success already recorded     do nothing, log `delivery_skipped_duplicate` (unless forced)
lock held by another worker  queue a later job, log `delivery_lock_busy`
DeliveryRetryable, other     schedule the next attempt after max(backoff with jitter,
                             Retry-After), log `delivery_retry_scheduled`; past the retry
                             budget: dead letter, log `delivery_dead_lettered`
DeliveryRejected             dead letter `rejected` at once, log `delivery_rejected` (error)

Every dead letter is counted and told to the routes file's `alerts:` handlers (workers/alerts.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from redis import Redis
from redis.client import Pipeline
from rq import get_current_job

from config.errors import DeliveryRejected, HandlerError
from config.logging import REDACTOR
from config.settings import Settings
from workers import alerts
from workers.backoff import Uniform, backoff
from workers.context import WorkerContext, current
from workers.delivery.dead_letters import DeadLetter, DeadLetters
from workers.delivery.jobs import delivery_id_of, enqueue_delivery, job_id_of
from workers.delivery.lock import DeliveryLock
from workers.handlers import transcript
from workers.handlers.base import shown_to
from workers.redis_outage import ride_out
from workers.routing import Routing
from workers.store import EventStore, received_epoch

log = structlog.get_logger("workers.delivery")
ERROR_CHARS = 300


def backoff_seconds(attempt: int, settings: Settings, rng: Uniform) -> float:
    """The wait before retry number `attempt` (from 1): DELIVERY_BACKOFF_BASE_SECONDS doubling up to the max."""
    base, cap = settings.delivery_backoff_base_seconds, settings.delivery_backoff_max_seconds
    return backoff(attempt - 1, base=base, cap=cap, rng=rng)


class DeliveryAttempt:
    """One run of a delivery job: check, lock, send, and record what happened."""

    def __init__(
        self,
        context: WorkerContext,
        redis: Redis,
        job_id: str,
        event_id: str,
        handler: str,
        *,
        force: bool = False,
        replayed_at: float | None = None,
        event: dict[str, Any] | None = None,
        routing: Routing | None = None,
    ) -> None:
        """`event`: the enriched event when the caller has it (a first attempt), else it is read back.
        `routing`: the routes version to send with (the event's, in a fan-out), else the context's now."""
        self.context, self.settings, self.metrics = context, context.settings, context.metrics
        self.clock = context.clock
        self.routing = routing or context.routing  # taken once: a reload during this attempt does not change it
        self.redis = redis
        self.job_id = job_id
        self.event_id, self.handler, self.force, self.replayed_at = event_id, handler, force, replayed_at
        self.first = event is not None
        self.took: float | None = None  # seconds the send took
        self.error = ""  # what went wrong, for the record (redacted)
        self.delivery_id = delivery_id_of(event_id, handler)
        self.store = EventStore(
            self.redis, ttl=self.settings.enriched_event_ttl_seconds, clock=self.clock, refresh=context.key_refresh
        )
        self.event = event if event is not None else self.store.load(event_id)
        self.lock = DeliveryLock(self.redis, self.delivery_id, ttl=self.settings.enriched_event_ttl_seconds)
        self.leases = context.leases  # in a worker process: the lock lasts a lease, renewed while we send
        # the lock asked in the caller's round trip (`ask_lock`): its token, and once answered, whether it
        # was had and whether the delivery was recorded already
        self._asked: str | None = None
        self._answer: tuple[bool, bool] | None = None
        self.fresh = False  # the handler's first attempt ever: a fan-out that is not a rerun sets it

    @property
    def longest(self) -> float:
        """The longest one send may take (connect, write, read, each up to the timeout)."""
        return self.settings.delivery_timeout_seconds * 4 + 5

    def _hold_ms(self) -> int:
        return int((self.leases.seconds if self.leases else self.longest) * 1000)

    def ask_lock(self, pipe: Pipeline) -> bool:
        """Queue on `pipe` the lock and, after it, the delivered check this attempt begins with (a
        fan-out sends them with its other writes); False when the attempt will not get that far
        (no event, an unknown handler) and nothing was queued. `answered` takes the two replies."""
        if self.event is None or self.routing.handlers.get(self.handler) is None:
            return False
        self._asked = self.lock.ask(pipe, self._hold_ms())
        return True

    def answered(self, locked: Any, delivered: Any) -> None:
        self._answer = (bool(locked), bool(delivered))

    def run(self) -> str:
        """Deliver, with this attempt's ids on every log line (in whichever thread it runs)."""
        with structlog.contextvars.bound_contextvars(
            event_id=self.event_id,
            handler=self.handler,
            delivery_id=self.delivery_id,
            job_id=self.job_id,
            request_id=(self.event or {}).get("request_id"),
        ):
            return self._run()

    def _run(self) -> str:
        if self.event is None:
            return self._dead("event_expired", attempts=0)
        target = self.routing.handlers.get(self.handler)
        if target is None:
            return self._dead("unknown_handler", attempts=0)
        if self._answer is None and not self.first and not self.force and self.lock.delivered():
            return self._skipped()
        leases, longest = self.leases, self.longest
        if self._answer is not None:  # asked in the caller's round trip: the lock, then the delivered check
            token = self._asked if self._answer[0] else None
        else:
            token = self.lock.acquire(self._hold_ms())
        if token is None:
            wait = self.lock.remaining_seconds() + 1.0
            suffix = "wait-" + uuid.uuid4().hex[:8]
            self._reschedule(suffix, wait)
            log.info("delivery_lock_busy", retry_in_seconds=round(wait, 1))
            return "lock_busy"
        if leases:
            leases.hold_key(self.lock.lock_key, longest)
        held: list[str] = [token]  # emptied once a write releases it
        try:
            delivered = self._answer[1] if self._answer is not None else self.lock.delivered()
            if not self.force and delivered:  # another worker (or an earlier run) finished it
                return self._skipped()
            self.metrics.attempts.labels(self.handler).inc()
            started = self.clock.monotonic()
            try:
                with transcript.recording() as sent:
                    target.send(shown_to(target, self.event), delivery_id=self.delivery_id, http=self.context.http)
            except DeliveryRejected as exc:
                self.took = self.clock.monotonic() - started
                return self._rejected(exc)
            except HandlerError as exc:
                self.took, self.error = self.clock.monotonic() - started, REDACTOR.redact(exc.message)[:ERROR_CHARS]
                return self._failed(exc.status, exc.retry_after, exc.body_excerpt, exc.code)
            except Exception as exc:  # a handler bug or an unmapped transport error: retried within the budget
                self.took = self.clock.monotonic() - started
                self.error = REDACTOR.redact(f"{type(exc).__name__}: {exc}")[:ERROR_CHARS]
                return self._failed(None, None, self.error, type(exc).__name__)
            self.took = self.clock.monotonic() - started
            return self._succeeded(held, sent.sent)
        finally:
            if leases:
                leases.drop_key(self.lock.lock_key)
            if held:
                self.lock.release(token)

    def _succeeded(self, held: list[str], sent: list[dict[str, str]]) -> str:
        """Recorded in one round trip, in this order: delivered (SET NX), the attempt, the lock released
        (a plain DEL once delivered is marked, workers/delivery/lock.py). A Redis away now is waited
        for (workers/redis_outage.py): the post is out, and without its record it would be sent again."""

        def record() -> list[Any]:
            with self.redis.pipeline(transaction=False) as pipe:
                self.lock.mark_delivered(self.job_id, force=self.force, pipe=pipe)
                self.store.record_attempt(
                    self.event_id,
                    self.handler,
                    outcome="delivered",
                    seconds=self.took,
                    sent=sent,
                    pipe=pipe,
                    first=self.fresh,
                )
                if self.force:
                    self.lock.release(held[0], pipe=pipe)
                else:
                    self.lock.release_delivered(pipe)
                return pipe.execute()

        replies = ride_out(record, what="the delivery's success", clock=self.clock,
                           limit=self.settings.event_job_timeout_seconds)  # fmt: skip
        attempts = 1 if self.fresh else int(replies[1])  # a first attempt's count is written, not counted
        held.clear()
        since_receipt = max(0.0, self.clock.now() - received_epoch(self.event or {}, self.clock))
        self.metrics.deliveries.labels(self.handler, "delivered").inc()
        self.metrics.latency.labels(self.handler).observe(since_receipt)
        log.info("delivery_succeeded", attempts=attempts, seconds_since_receipt=round(since_receipt, 3))
        return "delivered"

    def _skipped(self) -> str:
        self.metrics.deliveries.labels(self.handler, "skipped_duplicate").inc()
        log.info("delivery_skipped_duplicate")
        return "skipped_duplicate"

    def _rejected(self, exc: DeliveryRejected) -> str:
        attempts = self.store.record_attempt(
            self.event_id,
            self.handler,
            outcome="rejected",
            status=exc.status,
            seconds=self.took,
            error=REDACTOR.redact(exc.message)[:ERROR_CHARS],
        )
        self._keep_dead_letter("rejected", exc.status, exc.body_excerpt, attempts)
        self.metrics.deliveries.labels(self.handler, "rejected").inc()
        log.error("delivery_rejected", status=exc.status, body_excerpt=exc.body_excerpt[:200], attempts=attempts)
        return "rejected"

    def _failed(self, status: int | None, retry_after: float | None, body: str, reason: str) -> str:
        outcome_at = self.clock.now()
        state = self.store.handler_state(self.event_id, self.handler)
        attempt = state["attempts"] + 1
        delay = max(backoff_seconds(attempt, self.settings, self.context.rng), retry_after or 0.0)
        start = max(received_epoch(self.event or {}, self.clock), self.replayed_at or 0.0)
        if outcome_at + delay > start + self.settings.delivery_retry_budget_seconds:
            attempts = self.store.record_attempt(
                self.event_id, self.handler, outcome="dead_lettered", status=status, error=self.error, seconds=self.took
            )
            return self._dead("retry_budget_exhausted", attempts=attempts, status=status, body=body, cause=reason)
        attempts = self.store.record_attempt(
            self.event_id,
            self.handler,
            outcome="retrying",
            status=status,
            reason=reason,
            error=self.error,
            seconds=self.took,
        )
        self._reschedule(f"retry-{attempts}", delay)
        self.metrics.deliveries.labels(self.handler, "retried").inc()
        log.warning(
            "delivery_retry_scheduled",
            attempts=attempts,
            status=status,
            reason=reason,
            error=self.error or None,
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
            body_excerpt=REDACTOR.redact(body),  # against every configured secret, not the handler's alone
            attempts=attempts,
            first_attempt_at=state["first_attempt_at"],
            last_attempt_at=state["last_attempt_at"],
            dead_at=self.clock.now(),
        )
        DeadLetters(self.redis, ttl=self.settings.enriched_event_ttl_seconds, clock=self.clock).put(letter)
        alerts.dead_lettered(self.context, letter)

    def _reschedule(self, suffix: str, delay: float) -> None:
        job_id = job_id_of(self.delivery_id, suffix)
        enqueue_delivery(
            self.redis,
            self.settings,
            self.event_id,
            self.handler,
            job_id,
            force=self.force,
            replayed_at=self.replayed_at,
            delay=max(delay, 0.001),
            clock=self.clock,
        )


def deliver(event_id: str, handler: str, *, force: bool = False, replayed_at: float | None = None) -> str:
    """The delivery job (a retry, a wait for the lock, a replay): send one event to one handler,
    at most once with effect; returns the outcome. First attempts run in the enrichment job
    (workers/delivery/fan_out.py)."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("deliver runs as an RQ job: queue it with fan_out or a replay")
    structlog.contextvars.clear_contextvars()
    attempt = DeliveryAttempt(
        current(), job.connection, job.id, event_id, handler, force=force, replayed_at=replayed_at
    )
    return attempt.run()
