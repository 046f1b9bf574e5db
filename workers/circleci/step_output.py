"""Reading a step's output from its `output_url`: without the CircleCI token, bounded in bytes and time.

A v1.1 action's `output_url` is a presigned storage URL on another host (S3 for CircleCI cloud):
it needs no token, and CIRCLE_TOKEN goes to no host but the API's. So this has its own httpx
client, built with no auth header at all, not the API transport (whose token scope would allow
an artifact host): nothing here can send the token.

    request     GET with `Range: bytes=-max_bytes` (S3 answers the end of the object, 206)
    206         the bytes are the end; `partial` when they do not start at byte 0
    200         the host ignored the range: streamed, only the last max_bytes kept, and given
                up (LogTailUnavailable) past READ_FACTOR x max_bytes: a 50 MB log is not read whole
    3xx, 4xx, 5xx, timeout, transport failure, a URL that is not https (http only on loopback)
                LogTailUnavailable saying which; nothing is retried: a tail is not worth a delay
    deadline    the whole read ends within `timeout_seconds`

`before_request` runs before the request (the workers' shared API budget, the enrichment's count
of calls), as for the API's own calls.

The GET goes straight to the client's connection pool (workers/circleci/plain_get.py: the same
connections, TLS, timeouts and headers, gzip decoded by httpx.Response, httpcore's errors mapped
to httpx's; ~half the CPU of `httpx.Client.stream`) for a URL that needs no encoding on an origin
the client does not proxy; through httpx otherwise (a proxy for that origin, a URL with user
info or to encode, another transport, cookies kept from an earlier answer). Either way the same
headers go: Host, the client's own (Accept, Accept-Encoding, Connection, User-Agent) and Range.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx

from config.errors import LogTailUnavailable
from config.settings import is_loopback
from workers.circleci.plain_get import PlainGet

__all__ = ["READ_FACTOR", "StepOutput"]

READ_FACTOR = 16  # a host that ignores Range: read at most this many times max_bytes
MAX_ORIGINS = 64  # the plain paths kept, one per output origin (a storage host or a few)


class StepOutput:
    """Fetches output URLs; thread-safe, one per worker process."""

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout_seconds: float,
        transport: httpx.BaseTransport | None = None,
        before_request: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,
            transport=transport,
            headers={"user-agent": "circleci-events"},
        )
        self._before_request = before_request
        self._clock = clock
        self._plain: dict[tuple[str, str, int | None], PlainGet | None] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_bytes={self.max_bytes})"

    def close(self) -> None:
        self._http.close()

    def fetch(self, url: str) -> tuple[bytes, bool]:
        """(the output's last bytes, whether they are only its end); raises LogTailUnavailable."""
        target = _checked(url)
        if self._before_request is not None:
            self._before_request()
        deadline = self._clock() + self.timeout_seconds
        host = target.host
        try:
            with self._open(url, target) as response:
                status = response.status_code
                if status in (200, 206):
                    body, total = self._read(response, deadline, host)
                    partial = total > len(body) or (status == 206 and _starts_later(response))
                    return body, partial
                what = "expired or refused" if status in (400, 401, 403) else "not found" if status == 404 else ""
                raise LogTailUnavailable(f"the output URL answered {status}" + (f" ({what})" if what else ""))
        except httpx.TimeoutException:
            raise LogTailUnavailable(f"the output was not had within {self.timeout_seconds:g} s") from None
        except httpx.TransportError as exc:
            raise LogTailUnavailable(f"the output host {host} could not be reached ({type(exc).__name__})") from None

    def _open(self, url: str, target: httpx.URL) -> AbstractContextManager[httpx.Response]:
        """The GET of `target` (`url` as given), on the plain path when it takes it."""
        plain = self._plain_for(target)
        path = plain.target(url) if plain is not None and not self._http.cookies else None
        if plain is not None and path is not None:
            return plain.stream(path, [(b"range", f"bytes=-{self.max_bytes}".encode())])
        return self._http.stream("GET", target, headers={"range": f"bytes=-{self.max_bytes}"})

    def _plain_for(self, target: httpx.URL) -> PlainGet | None:
        key = (target.scheme, target.host, target.port)
        try:
            return self._plain[key]
        except KeyError:
            pass
        if len(self._plain) >= MAX_ORIGINS:
            self._plain.clear()
        plain = self._plain[key] = PlainGet.of(self._http, httpx.URL(scheme=key[0], host=key[1], port=key[2]))
        return plain

    def _read(self, response: httpx.Response, deadline: float, host: str) -> tuple[bytes, int]:
        """The last max_bytes of the body, and how many bytes it had."""
        kept = bytearray()
        total = 0
        for chunk in response.iter_bytes():
            total += len(chunk)
            kept += chunk
            if len(kept) > 2 * self.max_bytes:
                del kept[: len(kept) - self.max_bytes]
            if total > READ_FACTOR * self.max_bytes:
                raise LogTailUnavailable(
                    f"the output is larger than {READ_FACTOR * self.max_bytes} bytes and {host} ignores Range"
                )
            if self._clock() > deadline:
                raise LogTailUnavailable(f"the output was not had within {self.timeout_seconds:g} s")
        return bytes(kept[-self.max_bytes :]), total


def _checked(url: str) -> httpx.URL:
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise LogTailUnavailable("the output URL is not a URL") from None
    if target.scheme == "https" or (target.scheme == "http" and is_loopback(target.host)):
        return target
    raise LogTailUnavailable(f"the output URL is not https ({target.scheme or 'no scheme'})")


def _starts_later(response: httpx.Response) -> bool:
    """A 206's Content-Range `bytes 100-199/200`: does it start after byte 0?"""
    value = response.headers.get("content-range", "")
    try:
        start = int(value.split(" ", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return True
    return start > 0
