"""POST /webhooks/circleci: limit, verify, validate, dedupe and queue, then answer at once.

CircleCI waits 10 s and retries any non-2xx answer, so nothing here calls CircleCI or a chat
service: the request touches Redis once, in the atomic admission (rate limit, dedupe, enqueue);
a refused signature once, to count it per minute for the console's alert rules.

Before that, every client pays a token from this process's own buckets (service/client_limit.py).
A request that carries a signature and proves it pays from the client's signed bucket; one
without a well-formed `circleci-signature` pays from its unsigned bucket before its body is
read, and one whose signature does not match pays there SIGNATURE_FAILURE_TOKENS more (429 once
that bucket is empty). The two never share tokens (issue 23 item 3): behind a proxy every client
is the proxy's address, and 35 bad requests a second there made 10 of 10 real deliveries get
429. A request with a well-formed header is read before it is judged; WEB_MAX_CONNECTIONS and
the per-address connection cap (service/http_protocol.py) bound what that costs. Refusals of a
client that has not shown it holds the secret are logged through a LogSampler: one line per
client and error code per interval, with the count left out. Metrics count every refusal.
"""

from __future__ import annotations

import orjson
import structlog
from redis.exceptions import RedisError
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response

from config.clock import utc_now_text
from config.errors import CircleCIEventsError, RateLimited, RedisNotReplicated, RedisUnavailable, SignatureError
from service.body import read_body, require_json
from service.client_limit import SIGNATURE_FAILURE_TOKENS
from service.payload import parse_event
from service.signature import HEADER as SIGNATURE_HEADER
from service.signature import v1_values
from workers import metric_window
from workers.jobs import JOB_COMPLETED, PING, WORKFLOW_COMPLETED
from workers.jobs import envelope as make_envelope

log = structlog.get_logger("service.webhook")
EVENT_TYPE_HEADER = "circleci-event-type"
# the bucket key of what a client sends without a valid signature: never the signed one's
UNSIGNED = "unsigned "


async def receive_webhook(request: Request) -> Response:
    app = request.app.state
    client = request.client.host if request.client else "unknown"
    verified = False
    try:
        signed = app.verifier is not None and _signed(request)
        if not signed:
            _limit(app, UNSIGNED + client, client)
        body = await _verified_body(request, client, signed=signed)
        verified = True
        _limit(app, client, client)
        return await _receive(request, body, client)
    except CircleCIEventsError as exc:
        app.metrics.outcome(exc.code).inc()
        if verified:
            log.warning("webhook_rejected", error_code=exc.code, reason=exc.message)
        else:
            suppressed = app.rejection_log.admit(f"{client} {exc.code}")
            if suppressed is not None:
                log.warning(
                    "webhook_rejected", error_code=exc.code, reason=exc.message, client=client, suppressed=suppressed
                )
        raise


def _signed(request: Request) -> bool:
    """The request carries a well-formed v1 signature (whether it matches is known once its body is read)."""
    try:
        v1_values(request.headers.get(SIGNATURE_HEADER))
    except SignatureError:
        return False
    return True


def _limit(app: State, bucket: str, client: str) -> None:
    wait = app.client_limit.take(bucket)
    if wait:
        settings = app.settings
        raise RateLimited(
            f"too many requests from {client}: RATE_LIMIT_BURST={settings.rate_limit_burst} at once, then "
            f"RATE_LIMIT_PER_SECOND={settings.rate_limit_per_second:g}, and a wrong signature costs "
            f"{SIGNATURE_FAILURE_TOKENS} more; retry later",
            retry_after=wait,
        )


async def _verified_body(request: Request, client: str, *, signed: bool) -> bytes:
    app = request.app.state
    require_json(request)
    body = await read_body(request, app.settings.max_body_bytes, app.settings.web_body_timeout_seconds)
    if app.verifier is None:
        log.warning("webhook_signature_unchecked", reason="INSECURE_ALLOW_UNSIGNED_WEBHOOKS is on")
        return body
    try:
        app.verifier.verify(body, request.headers.get(SIGNATURE_HEADER))
    except SignatureError:
        await _count_signature_failure(app)
        app.client_limit.charge(UNSIGNED + client, SIGNATURE_FAILURE_TOKENS)
        if signed:  # it paid nothing before its body was read: 429 once its unsigned bucket is empty
            _limit(app, UNSIGNED + client, client)
        raise
    return body


async def _count_signature_failure(app: State) -> None:
    """On /metrics, and per minute in Redis for the console's alert rules (workers/metric_window.py)."""
    app.metrics.signature_failures.inc()
    try:
        async with app.redis.pipeline(transaction=False) as pipe:
            metric_window.count(pipe, metric_window.series(app.metrics.signature_failures), {}, app.clock.now())
            await pipe.execute()
    except RedisError:
        pass  # the 401 matters more than the console's count; /metrics has it


async def _receive(request: Request, body: bytes, client: str) -> Response:
    app = request.app.state
    event = parse_event(body, request.headers.get(EVENT_TYPE_HEADER))
    structlog.contextvars.bind_contextvars(event_id=event.id, event_type=event.type)
    if event.type == PING:
        return _answer(app, "ping", 200, event.id)
    if event.type not in (WORKFLOW_COMPLETED, JOB_COMPLETED):
        # Valid but not ours to act on: a 2xx stops CircleCI retrying it.
        return _answer(app, "ignored", 200, event.id)
    happened = event.happened_at
    if happened is not None and app.clock.now() - happened.timestamp() > app.settings.dedupe_ttl_seconds:
        # Its dedupe key may be gone: a captured body replayed now would be queued again.
        return _answer(app, "expired", 200, event.id)

    envelope = make_envelope(
        event_id=event.id,
        event_type=event.type,
        request_id=request.state.request_id,
        received_at=utc_now_text(app.clock.now()),  # where the event's retry budget and deadlines start
    )
    started = app.clock.monotonic()
    try:
        admission = await app.intake.admit(client=client, event_id=event.id, envelope=envelope, raw_payload=body)
    except RedisError as exc:
        raise _unavailable(exc) from None
    app.metrics.enqueue_seconds.observe(app.clock.monotonic() - started)
    if admission.outcome == "limited":
        raise RateLimited(
            f"more than {app.settings.rate_limit_burst} deliveries at once from {client}; retry later",
            retry_after=admission.retry_after,
        )
    if admission.outcome == "unreplicated":
        log.error("redis_not_replicated", job_id=admission.job_id, replicas=app.settings.redis_wait_replicas)
        raise RedisNotReplicated(
            f"the event was not confirmed by {app.settings.redis_wait_replicas} Redis replica(s) within "
            f"{app.settings.redis_wait_timeout_ms} ms (REDIS_WAIT_REPLICAS); retry later"
        )
    if admission.outcome == "queued":
        return _answer(app, "queued", 202, event.id, job_id=admission.job_id)
    return _answer(app, "duplicate", 200, event.id, job_id=admission.job_id)


def _answer(app: object, status: str, code: int, event_id: str, job_id: str | None = None) -> Response:
    app.metrics.outcome(status).inc()  # type: ignore[attr-defined]
    log.info(f"event_{status}", job_id=job_id)
    return Response(orjson.dumps({"event_id": event_id, "status": status}), code, media_type="application/json")


def _unavailable(exc: RedisError) -> RedisUnavailable:
    log.error("redis_unavailable", error_type=type(exc).__name__)
    return RedisUnavailable("Redis is unavailable; the delivery was not accepted, retry later")
