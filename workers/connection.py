"""Redis clients: one factory, one set of timeouts, for the web, the workers and the commands.

    connect(settings)                 redis-py's client (workers, RQ, operator commands, the admin API)
    connect_async(settings)           redis-py's asyncio client (the web's admission and health checks)
    warn_weak_tls(settings, log=log)  start-up: a warning line while REDIS_TLS_VERIFY weakens TLS

REDIS_URL says where Redis is (config/redis_target.py): one server, or the master that the
sentinels name. With Sentinel every new connection asks the sentinels for the master, and a
connection to a former master is dropped (redis-py's SentinelManagedConnection), so after a
failover the next command reaches the new master; RQ takes such a client as it takes any other.

TLS (rediss://, rediss+sentinel://) checks the server's certificate against REDIS_TLS_CA_FILE
(else the system's CAs) and the host name it was reached by; REDIS_TLS_CERT_FILE and
REDIS_TLS_KEY_FILE present a client certificate (redis-server's `tls-auth-clients`). With
Sentinel the same applies to the sentinels and to the master they name.

A Redis that stops answering costs a caller SOCKET_TIMEOUT at most: the web answers 503 well
inside CircleCI's 10 s, a worker's job fails and is retried. RQ raises the timeout itself where
it blocks on purpose (waiting for a job), and only there.
"""

from __future__ import annotations

import re
from typing import Any, cast

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import MasterNotFoundError, Sentinel

from config.errors import ConfigurationError
from config.redis_target import RedisTarget
from config.settings import Settings

SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
HEALTH_CHECK_INTERVAL = 30
TIMEOUTS = {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT}


def connect(settings: Settings) -> Redis:
    return cast(Redis, _client(settings, Redis, Sentinel))


def connect_async(settings: Settings) -> AsyncRedis:
    return cast(AsyncRedis, _client(settings, AsyncRedis, AsyncSentinel))


def _client(settings: Settings, redis_class: type[Any], sentinel_class: type[Any]) -> Any:
    """A client of REDIS_URL's server, or of the master its sentinels name (sync or asyncio alike)."""
    target = settings.redis_target
    if target is None:
        raise ConfigurationError("REDIS_URL is not set: point it at Redis, e.g. redis://127.0.0.1:6379/0")
    if not target.sentinels:
        return redis_class.from_url(target.url, **_options(settings))
    sentinel = sentinel_class(target.sentinels, sentinel_kwargs=_sentinel_options(settings), **TIMEOUTS)
    return sentinel.master_for(target.master, redis_class=redis_class, **_master_options(settings, target))


def warn_weak_tls(settings: Settings, *, log: Any) -> None:
    """Start-up: a warning line, in every process, while REDIS_TLS_VERIFY weakens TLS."""
    warning = tls_warning(settings)
    if warning is not None:
        log.warning("redis_tls_unverified", problem=warning)


def describe_failure(exc: Exception) -> str:
    """A Redis failure in a few words: for Sentinel, what each sentinel answered, not redis-py's
    rendering of every client it tried."""
    if isinstance(exc, MasterNotFoundError):
        master = str(exc).split("'")[1] if str(exc).count("'") >= 2 else "?"
        reasons = sorted(set(re.findall(r" - (?:\w+:)?(\w+)", str(exc)))) or ["none knows it"]
        return f"no sentinel named a master {master!r}: {', '.join(reasons)}"
    return str(exc)


def tls_warning(settings: Settings) -> str | None:
    """One sentence for the log when the server's certificate is not fully checked, else None."""
    target = settings.redis_target
    if target is None or not target.tls or settings.redis_tls_verify == "full":
        return None
    if settings.redis_tls_verify == "ca":
        return (
            "REDIS_TLS_VERIFY=ca: Redis's certificate is checked against the CA but not against the host name, "
            "so any certificate that CA issued is accepted"
        )
    return (
        "REDIS_TLS_VERIFY=none: Redis's certificate is not checked; the traffic is encrypted but whoever sits "
        "between this process and Redis can read and change events. Set REDIS_TLS_CA_FILE where the provider "
        "publishes its CA"
    )


def _options(settings: Settings) -> dict[str, Any]:
    """What every connection to the data gets: the timeouts, and TLS when the URL asks for it."""
    options: dict[str, Any] = {**TIMEOUTS, "health_check_interval": HEALTH_CHECK_INTERVAL}
    target = settings.redis_target
    if target is not None and target.tls:
        options.update(_tls(settings))
    return options


def _master_options(settings: Settings, target: RedisTarget) -> dict[str, Any]:
    options = {**_options(settings), "db": target.db, "username": target.username, "password": target.password}
    if target.tls:
        options["ssl"] = True  # redis-py's SentinelConnectionPool then makes TLS connections
    return options


def _sentinel_options(settings: Settings) -> dict[str, Any]:
    """The sentinels' own connections: TLS as the master's, their own password."""
    options: dict[str, Any] = dict(TIMEOUTS)
    if settings.redis_sentinel_password is not None:
        options["password"] = str(settings.redis_sentinel_password)
    target = settings.redis_target
    if target is not None and target.tls:
        options.update(ssl=True, **_tls(settings))
    return options


def _tls(settings: Settings) -> dict[str, Any]:
    verify = settings.redis_tls_verify
    return {
        "ssl_ca_certs": settings.redis_tls_ca_file,
        "ssl_certfile": settings.redis_tls_cert_file,
        "ssl_keyfile": settings.redis_tls_key_file,
        "ssl_cert_reqs": "none" if verify == "none" else "required",
        "ssl_check_hostname": verify == "full",
    }
