"""Where Redis is: REDIS_URL read and checked, for the one Redis factory (workers/connection.py).

    redis://[[user]:password@]host[:port][/db]            one Redis
    rediss://...                                           the same over TLS
    unix:///path/to/redis.sock[?db=N]                      a local socket
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]
    rediss+sentinel://...                                  the sentinels and the master over TLS

With Sentinel the client asks the sentinels (port 26379 unless given) which server is the master
named `master`, and asks again whenever a connection to it fails: a failover costs the callers a
reconnection, not a restart. The URL's user and password are the master's; the sentinels' own,
when they require one, is REDIS_SENTINEL_PASSWORD.

TLS is set by REDIS_TLS_* (config/settings.py), never by `ssl_*` query parameters in the URL:
redis-py would take `?ssl_cert_reqs=none` and turn verification off without a word.
Messages never show the URL: it may hold a password.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from redis.connection import parse_url as redis_py_parse_url

from config.errors import ConfigurationError

DIRECT_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
TLS_SCHEMES = ("rediss", "rediss+sentinel")
SENTINEL_PORT = 26379
EXAMPLE = (
    "e.g. redis://127.0.0.1:6379/0, rediss://..., or redis+sentinel://sentinel-1:26379,sentinel-2:26379/mymaster/0"
)


@dataclass(frozen=True)
class RedisTarget:
    """REDIS_URL taken apart: `sentinels` is empty for a direct URL, which redis-py reads itself."""

    url: str
    tls: bool
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_redis_url(url: str) -> RedisTarget:
    """REDIS_URL as a RedisTarget; ConfigurationError (without the URL) when it cannot be one."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigurationError(f"REDIS_URL is not a URL ({EXAMPLE})") from None
    scheme = parts.scheme.lower()
    if scheme not in DIRECT_SCHEMES + SENTINEL_SCHEMES:
        shown = f"'{scheme}://'" if scheme else "no scheme"
        raise ConfigurationError(f"REDIS_URL has {shown}: use redis://, rediss://, unix://, redis+sentinel:// or "
                                 f"rediss+sentinel:// ({EXAMPLE})")  # fmt: skip
    tls_parameters = sorted({name for name, _ in parse_qsl(parts.query) if name.lower().startswith("ssl")})
    if tls_parameters:
        raise ConfigurationError(
            f"REDIS_URL carries {', '.join(tls_parameters)}: remove it and set REDIS_TLS_CA_FILE or REDIS_TLS_VERIFY "
            "instead (see docs/deployment.md, Redis in production), so that weakened verification is never silent"
        )
    if scheme in DIRECT_SCHEMES:
        if scheme != "unix" and not parts.hostname:
            raise ConfigurationError(f"REDIS_URL names no host ({EXAMPLE})")
        try:
            port = parts.port  # urllib raises on a port that is not a number in range
        except ValueError:
            port = 0
        if scheme != "unix" and port == 0:
            raise ConfigurationError(f"REDIS_URL: the port after the host must be a number from 1 to 65535 ({EXAMPLE})")
        db = unquote(parts.path).strip("/")
        if scheme != "unix" and db and not db.isdigit():  # redis-py would quietly use database 0
            raise ConfigurationError(f"REDIS_URL: the database after the host must be a number, got {db[:20]!r}")
        try:  # the query's values, as redis-py will read them (its messages name the key, not the URL)
            redis_py_parse_url(url)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ConfigurationError(f"REDIS_URL: {str(exc).rstrip('.')} ({EXAMPLE})") from None
        return RedisTarget(url=url, tls=scheme in TLS_SCHEMES)
    return _sentinel_target(url, scheme)


def _sentinel_target(url: str, scheme: str) -> RedisTarget:
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    entries = hosts.split(",")
    sentinels = tuple(_sentinel(entry, n, len(entries)) for n, entry in enumerate(entries, start=1))
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2:
        raise ConfigurationError(
            "REDIS_URL: a redis+sentinel:// URL names the master after the sentinels, and then the database: "
            "redis+sentinel://sentinel-1:26379,sentinel-2:26379/mymaster/0"
        )
    if len(path) == 2 and not path[1].isdigit():
        raise ConfigurationError(f"REDIS_URL: the database after the master name must be a number, got {path[1]!r}")
    return RedisTarget(
        url=url,
        tls=scheme in TLS_SCHEMES,
        sentinels=sentinels,
        master=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def _sentinel(entry: str, position: int, count: int) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port`; the port is Sentinel's own unless given. The entry is not
    shown when it is wrong: a URL missing its `@` would show the password."""
    entry = entry.strip()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = entry.partition(":")
    port = port or str(SENTINEL_PORT)
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigurationError(
            f"REDIS_URL: sentinel {position} of {count} must be host or host:port (the sentinels separated by ',', "
            "then /master-name), with any user:password before an '@'"
        )
    return host, int(port)
