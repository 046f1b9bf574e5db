"""Liveness, readiness and the Prometheus scrape."""

from __future__ import annotations

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.errors import REDIS_RETRY_AFTER, error_response


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    try:
        await request.app.state.redis.ping()
    except RedisError:
        return error_response(
            request, 503, "redis_unavailable", "Redis does not answer", headers={"Retry-After": str(REDIS_RETRY_AFTER)}
        )
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
