"""The notifier watches itself: dead letters and a refused CircleCI token are told to the routes
file's `alerts:` handlers, at most one message per handler per interval, whichever worker saw them.

    dead_lettered(context, letter)   a dead letter was kept: counted, and told
    enriched(context, event)         an enrichment finished: counted; a 401/403 from CircleCI told
    flush_alerts(handler)            the RQ job: one message with everything counted since the last

Keys, per alert handler:

    cie:alert:<handler>:counts   hash    "<kind>|<reason>|<subject>|<status>" -> count not yet told,
                                         "since" -> epoch of the oldest; expires a day after the last
    cie:alert:<handler>:window   string  present for `interval_seconds` after a message was sent (or
                                         tried): no other message until it expires
    cie:alert:<handler>:flush    string  present while a flush job is scheduled, so a burst schedules one

The first failure after a quiet interval schedules a flush GATHER_SECONDS later, so a burst is one
message; failures inside the window schedule one at its end. A flush takes the window (SET NX),
sends what the counts hold through the handler's ordinary `send` (workers/alert_message.py is the
event it renders), then subtracts what it sent: counts that arrived meanwhile wait for the next.

An alert must never recurse. Its send is not a delivery: no retry job, no dead letter, no alert
about an alert. One that fails keeps its counts and the window, is logged (`alert_failed`, so once
per interval at most) and tried again when the window ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import Counter
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import Queue, get_current_job
from rq.serializers import JSONSerializer

from config.clock import SYSTEM_CLOCK, Clock
from config.logging import REDACTOR
from config.settings import Settings
from workers import metric_window
from workers.alert_message import DEAD_LETTER, ENRICHMENT_REFUSED, Alert, AlertCount
from workers.context import WorkerContext, current
from workers.delivery.dead_letters import DeadLetter
from workers.handlers import Handler
from workers.jobs import FLUSH_ALERTS
from workers.routes import AlertConfig
from workers.routing import Routing
from workers.store import text

log = structlog.get_logger("workers.alerts")
PREFIX = "cie:alert:"
SINCE = "since"
SEPARATOR = "|"  # handler names, reasons and project slugs hold none (routes and payload checks)
COUNTS_TTL_SECONDS = 24 * 3600
GATHER_SECONDS = 5.0
FLUSH_GRACE_SECONDS = 60.0  # a flush job may start this late before another may be scheduled
REFUSED_STATUS = {"circleci_unauthorized": 401, "circleci_forbidden": 403}
ERROR_CHARS = 300

# Subtract what a message told; drop the hash when nothing is left, else restart `since`.
_SUBTRACT_LUA = """
for i = 2, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
if redis.call('HLEN', KEYS[1]) <= 1 then return redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'since', ARGV[1])
return 1
"""


def dead_lettered(context: WorkerContext, letter: DeadLetter) -> None:
    """Count a dead letter and tell the alert handlers."""
    counted(context, context.metrics.dead_letters, reason=letter.reason)
    _record(context, DEAD_LETTER, letter.reason, letter.handler, letter.last_status)


def enriched(context: WorkerContext, event: Mapping[str, Any], *, pipe: Pipeline | None = None) -> None:
    """Count an enrichment's outcome (its Redis count on `pipe` when given); tell the alert handlers
    when CircleCI refused the token."""
    enrichment = event.get("enrichment") or {}
    code = enrichment.get("error_code")
    outcome = code or ("complete" if enrichment.get("complete") else "no_token")
    counted(context, context.metrics.enrichments, pipe=pipe, outcome=outcome)
    if code in REFUSED_STATUS:
        project = (event.get("project") or {}).get("slug") or "-"
        _record(context, ENRICHMENT_REFUSED, code, project, REFUSED_STATUS[code])


def counted(context: WorkerContext, metric: Counter, *, pipe: Pipeline | None = None, **labels: str) -> None:
    """One more on a Prometheus counter of this process, and on its per-minute count in Redis that the
    console's alert rules read (workers/metric_window.py): the same number, counted in one place.
    On `pipe`, the Redis count is queued (its caller sends it)."""
    metric.labels(**labels).inc()
    series = metric_window.series(metric)
    if pipe is not None:
        metric_window.count(pipe, series, labels, context.clock.now(), refresh=context.key_refresh)
        return
    try:
        with context.redis.pipeline(transaction=False) as pipe:
            metric_window.count(pipe, series, labels, context.clock.now(), refresh=context.key_refresh)
            pipe.execute()
    except RedisError as exc:  # /metrics still counts it; the console's window misses one
        log.warning("metric_window_failed", series=series, error=type(exc).__name__)


def _alerts_of(routing: Routing) -> AlertConfig | None:
    return routing.routes.alerts if routing.routes is not None else None


def _record(context: WorkerContext, kind: str, reason: str, subject: str, status: int | None) -> None:
    config = _alerts_of(context.routing)
    if config is None:
        return
    try:
        AlertBook(context.redis, context.settings, config, context.clock).record(kind, reason, subject, status)
    except Exception as exc:  # the failure being counted matters more than its alert
        log.warning("alert_record_failed", kind=kind, reason=reason, error=f"{type(exc).__name__}: {exc}"[:300])


class AlertBook:
    """The counts, windows and flush jobs of the alert handlers of one `alerts:` section."""

    def __init__(self, redis: Redis, settings: Settings, config: AlertConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self.redis, self.settings, self.config, self.clock = redis, settings, config, clock

    @staticmethod
    def key(handler: str, what: str) -> str:
        return f"{PREFIX}{handler}:{what}"

    def record(self, kind: str, reason: str, subject: str, status: int | None) -> None:
        """Count one failure for every alert handler; make sure a flush will tell each."""
        field = SEPARATOR.join((kind, reason, subject, "" if status is None else str(status)))
        with self.redis.pipeline(transaction=True) as pipe:
            for handler in self.config.handlers:
                counts = self.key(handler, "counts")
                pipe.hincrby(counts, field, 1)
                pipe.hsetnx(counts, SINCE, self.clock.now())
                pipe.expire(counts, COUNTS_TTL_SECONDS)
                pipe.pttl(self.key(handler, "window"))
            replies = pipe.execute()
        for handler, window_ms in zip(self.config.handlers, replies[3::4], strict=True):
            self.schedule_flush(handler, GATHER_SECONDS if window_ms < 0 else window_ms / 1000)

    def schedule_flush(self, handler: str, delay: float) -> bool:
        """A flush job for `handler` in `delay` seconds, unless one is scheduled already."""
        if not self.redis.set(self.key(handler, "flush"), 1, nx=True, px=int((delay + FLUSH_GRACE_SECONDS) * 1000)):
            return False
        queue = Queue(self.settings.events_queue, connection=self.redis, serializer=JSONSerializer)
        job = queue.create_job(
            FLUSH_ALERTS,
            args=[handler],
            job_id="alert-" + uuid.uuid4().hex,
            description=f"flush_alerts {handler}",
            timeout=int(self.settings.delivery_timeout_seconds * 4 + 20),
            result_ttl=self.config.interval_seconds,
            failure_ttl=COUNTS_TTL_SECONDS,
        )
        job.enqueue_at_front = True
        # RQ's scheduler keeps whole seconds and runs what is due: round up, never early
        queue.schedule_job(job, datetime.fromtimestamp(int(self.clock.now() + delay) + 1, UTC))
        return True

    def flush(self, handler: str, target: Handler, context: WorkerContext) -> str:
        """Tell `handler` (`target`) what was counted, if its window allows; the outcome."""
        counts_key, window_key = self.key(handler, "counts"), self.key(handler, "window")
        self.redis.delete(self.key(handler, "flush"))  # from here a new failure schedules its own flush
        if not self.redis.exists(counts_key):
            return "nothing"
        if not self.redis.set(window_key, uuid.uuid4().hex, nx=True, px=self.config.interval_seconds * 1000):
            self.schedule_flush(handler, max(0, int(self.redis.pttl(window_key))) / 1000)
            return "later"
        raw = {text(k): text(v) for k, v in self.redis.hgetall(counts_key).items()}
        since = float(raw.pop(SINCE, "") or self.clock.now())
        counts = [_count(field, int(n)) for field, n in raw.items() if int(n) > 0]
        if not counts:
            return "nothing"
        alert = Alert.new(counts, since=since, until=self.clock.now())
        try:
            target.send(alert.to_event(), delivery_id=f"{alert.alert_id}:{handler}", http=context.http)
        except Exception as exc:  # logged, never dead-lettered or alerted on: an alert cannot recurse
            counted(context, context.metrics.alerts, handler=handler, outcome="failed")
            self.schedule_flush(handler, self.config.interval_seconds)
            error = REDACTOR.redact(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")[:ERROR_CHARS]
            log.error(
                "alert_failed", alert_id=alert.alert_id, error=error, retry_in_seconds=self.config.interval_seconds
            )
            return "failed"
        args: list[Any] = [self.clock.now()]
        for field, n in raw.items():
            args += [field, n]
        self.redis.eval(_SUBTRACT_LUA, 1, counts_key, *args)
        counted(context, context.metrics.alerts, handler=handler, outcome="sent")
        log.warning("alert_sent", alert_id=alert.alert_id, kinds=alert.kinds, title=alert.title)
        return "sent"


def _count(field: str, n: int) -> AlertCount:
    kind, reason, subject, status = [*field.split(SEPARATOR), "", "", "", ""][:4]
    return AlertCount(kind=kind, reason=reason, subject=subject, status=int(status) if status else None, count=n)


def flush_alerts(handler: str) -> str:
    """The flush job: one alert to `handler` with everything counted for it since its last."""
    job = get_current_job()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(handler=handler, job_id=job.id if job else None)
    context = current()
    routing = context.routing  # one version of the routes file for the whole flush
    config = _alerts_of(routing)
    if config is None or handler not in config.handlers or handler not in routing.handlers:
        log.info("alert_handler_gone", reason="no longer an alerts handler in the routes file")
        return "not_configured"
    return AlertBook(context.redis, context.settings, config, context.clock).flush(
        handler, routing.handlers[handler], context
    )
