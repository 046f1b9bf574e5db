"""Liveness, readiness and the Prometheus scrape.

/readyz and /metrics ask Redis on every call, so each client address may call them PROBE_BURST
times at once and PROBE_PER_SECOND a second after that (this process's buckets, apart from the
webhook's): ample for a kubelet probing every few seconds and a scraper every 15 s, while a
stranger's flood gets 429 instead of turning into Redis commands (issue 23, item 7). /healthz
touches nothing and is not limited.
"""

from __future__ import annotations

import structlog
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.errors import REDIS_RETRY_AFTER, error_response
from workers.durability import read_durability_async

log = structlog.get_logger("service.health")
PROBE_BURST = 20
PROBE_PER_SECOND = 5.0


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when Redis answers and will keep what we give it (no eviction, unless allowed)."""
    if limited := _limited(request):
        return limited
    retry = {"Retry-After": str(REDIS_RETRY_AFTER)}
    try:
        await request.app.state.redis.ping()
        durability = await read_durability_async(request.app.state.redis)
    except RedisError:
        return error_response(request, 503, "redis_unavailable", "Redis does not answer", headers=retry)
    if durability.evicts and not request.app.state.settings.redis_allow_eviction:
        return error_response(request, 503, "redis_evicts", durability.eviction_problem(), headers=retry)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    if limited := _limited(request):
        return limited
    state = request.app.state
    try:
        # the configured queue whatever RQ's set of queues holds: the receiver does not add it per job
        # (service/intake.py), and a queue piling up with no worker left to register it must show
        names = {key.decode().removeprefix("rq:queue:") for key in await state.redis.smembers("rq:queues")}
        for name in sorted(names | {state.settings.events_queue}):
            state.metrics.queue_depth.labels(name).set(await state.redis.llen("rq:queue:" + name))
    except RedisError:
        pass  # the other metrics are still worth serving
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


def _limited(request: Request) -> Response | None:
    """429 when this client has used up its probe bucket, else None (a token taken)."""
    state = request.app.state
    client = request.client.host if request.client else "unknown"
    wait = state.probe_limit.take(client)
    if not wait:
        return None
    path = request.url.path
    suppressed = state.rejection_log.admit(f"{client} probe_rate_limited")
    if suppressed is not None:
        log.warning("request_refused", error_code="rate_limited", path=path, client=client, suppressed=suppressed)
    message = f"too many requests to {path} from {client}: {PROBE_BURST} at once, then {PROBE_PER_SECOND:g} a second"
    retry = {"Retry-After": str(max(1, round(wait + 0.5)))}
    return error_response(request, 429, "rate_limited", message, headers=retry)
