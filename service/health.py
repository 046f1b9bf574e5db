"""Liveness, readiness and the Prometheus scrape."""

from __future__ import annotations

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.errors import REDIS_RETRY_AFTER, error_response
from workers.durability import read_durability_async


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when Redis answers and will keep what we give it (no eviction, unless allowed)."""
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
    state = request.app.state
    try:
        for key in await state.redis.smembers("rq:queues"):
            name = key.decode().removeprefix("rq:queue:")
            state.metrics.queue_depth.labels(name).set(await state.redis.llen(key))
    except RedisError:
        pass  # the other metrics are still worth serving
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
