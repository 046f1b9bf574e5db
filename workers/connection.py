"""Redis clients: one factory, one set of timeouts, for the web, the workers and the commands.

    connect(url)          redis-py's client (workers, operator commands, the admin API)
    connect_async(url)    redis-py's asyncio client (the web's admission and health checks)

A Redis that stops answering costs a caller SOCKET_TIMEOUT at most: the web answers 503 well
inside CircleCI's 10 s, a worker's job fails and is retried. RQ raises the timeout itself where
it blocks on purpose (waiting for a job), and only there.
"""

from __future__ import annotations

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
HEALTH_CHECK_INTERVAL = 30


def connect(url: str) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=HEALTH_CHECK_INTERVAL,
    )


def connect_async(url: str) -> AsyncRedis:
    return AsyncRedis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=HEALTH_CHECK_INTERVAL,
    )
