"""Synchronous store and replay calls (workers/operations.py) run from a request, in the thread pool.

The admin API, the console and the cctray feed reach Redis only through this: a short-lived
redis-py client of the call's own, and a Redis error raised as RedisUnavailable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from config.errors import RedisUnavailable
from config.settings import Settings
from workers.connection import connect


async def store_call(request: Request, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`func(client, settings, *args, **kwargs)` with a client of its own, in the thread pool."""
    settings: Settings = request.app.state.settings

    def run() -> Any:
        with connect(settings) as client:
            return func(client, settings, *args, **kwargs)

    try:
        return await run_in_threadpool(run)
    except redis.RedisError:
        raise RedisUnavailable("Redis is unavailable; retry later") from None
