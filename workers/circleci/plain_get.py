"""Plain GETs: an API path asked straight of the httpcore pool under the transport's httpx client.

An enrichment is mostly GETs of API paths (a workflow's jobs, a job's tests and artifacts, the
v1.1 job): ~0.95 ms of CPU each through `httpx.Client.send`, which parses the URL four times,
merges the client's URL, headers, params and cookies into a Request, runs the auth and redirect
machinery and keeps cookies; ~0.5 ms asked of the same connection pool directly. What stays the
client's, because it is the same pool and the same objects: its connections (keep-alive, TLS
with its `verify` and `cert`), its timeouts, its headers (Accept, Accept-Encoding, User-Agent),
the decoding of a gzip (or deflate, brotli, zstd) body, which httpx.Response does, and the
mapping of httpcore's errors to httpx's (so timeouts and transport errors are retried as before).

`PlainGet.of(client)` is None, and the transport sends through httpx as before, for anything it
does not handle:

    proxies             a mount on the client that takes the API's origin (HTTP(S)_PROXY,
                        ALL_PROXY from the environment, or given; an origin NO_PROXY names is
                        not proxied), or a pool that is not a plain ConnectionPool
    other transports    anything but httpx.HTTPTransport (tests' MockTransport, a custom one)
    auth, event hooks   the client has them
    cookies             the client holds any (the API authenticates by token; none is kept)

and per request: anything but GET, an absolute URL (artifacts, downloads: the token's scope and
the redirects they follow), and a streamed response. Redirects are never followed on an API call
(the client's follow_redirects=False): a 3xx is answered as it is, as through httpx.

`PlainGet.of(client, origin)` is the same for another origin than the client's base URL (a step's
output on a storage host: workers/circleci/step_output.py), with the same conditions for that
origin (a proxy that takes it, NO_PROXY); its `stream()` answers a response whose body is read as
it comes (`iter_bytes()` decodes it), for the caller to close. A plain GET keeps no cookies that
a response sets, and sends none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import httpcore
import httpx
from httpx._transports.default import ResponseStream, map_httpcore_exceptions

# what a path and query may hold as sent (already percent-encoded); anything else goes through httpx
_SENDABLE = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*")


class PlainGet:
    """GETs of paths under one httpx client's base URL (or another origin), through its connection pool."""

    def __init__(self, client: httpx.Client, pool: httpcore.ConnectionPool, base: httpx.URL) -> None:
        self._pool = pool
        self._scheme, self._host, self._port = base.raw_scheme, base.raw_host, base.port
        self.host = base.host
        # `origin` + `prefix` + a path is the URL; a URL that starts with `origin/` is this pool's too
        self.origin = f"{base.scheme}://{base.netloc.decode('ascii')}"
        self.prefix = base.raw_path.decode("ascii").rstrip("/")
        self._headers = [(b"Host", base.netloc), *client.headers.raw]
        self._extensions = {"timeout": client.timeout.as_dict()}

    @classmethod
    def of(cls, client: httpx.Client, origin: httpx.URL | None = None) -> PlainGet | None:
        """The plain path for `client` to its base URL or to `origin` (scheme, host and port), or
        None when it has what only httpx handles (see above)."""
        base = client.base_url if origin is None else origin
        transport = client._transport
        pool = getattr(transport, "_pool", None)
        if (
            type(transport) is not httpx.HTTPTransport
            or type(pool) is not httpcore.ConnectionPool
            # a proxy (or another mount) for the API's origin; NO_PROXY's entries route to the default
            or client._transport_for_url(base) is not transport
            or not isinstance(client.auth, type(None))
            or any(client.event_hooks.values())
            or client.cookies
            or base.scheme not in ("http", "https")
        ):
            return None
        return cls(client, pool, base)

    def target(self, url: str) -> str | None:
        """What follows the origin in `url` (an API path, or an absolute URL on this origin); None
        when it is another origin's, or holds what httpx would encode first."""
        if url.startswith("/"):
            path = self.prefix + url
        elif url.startswith(self.origin + "/"):
            path = url[len(self.origin) :]
        else:
            return None
        return path if _SENDABLE.fullmatch(path) else None

    def get(self, path: str, params: Mapping[str, Any] | None, headers: list[tuple[bytes, bytes]]) -> httpx.Response:
        """GET `path` (a `target()`) plus `params`, with `headers` added; the whole response,
        read and closed. Raises httpx's errors."""
        target = path.encode("ascii")
        if params:
            target += (b"&" if b"?" in target else b"?") + urlencode(params, doseq=True).encode("ascii")
        with map_httpcore_exceptions():
            answer = self._pool.handle_request(self._request(target, headers))
            try:
                body = b"".join(answer.stream)  # type: ignore[arg-type]
            finally:
                answer.close()
        # httpx.Response decodes the body by its Content-Encoding, as the client would have
        return httpx.Response(answer.status, headers=answer.headers, content=body)

    @contextmanager
    def stream(self, path: str, headers: list[tuple[bytes, bytes]]) -> Iterator[httpx.Response]:
        """GET `path` (a `target()`) with `headers` added; the response as its head arrived, its
        body read by `iter_bytes()` (decoded) and closed on leaving. Raises httpx's errors."""
        with map_httpcore_exceptions():
            answer = self._pool.handle_request(self._request(path.encode("ascii"), headers))
        # as httpx's HTTPTransport answers: the body's httpcore errors mapped to httpx's as it is read
        body = ResponseStream(answer.stream)  # type: ignore[arg-type]
        response = httpx.Response(answer.status, headers=answer.headers, stream=body)
        try:
            yield response
        finally:
            response.close()

    def _request(self, target: bytes, headers: list[tuple[bytes, bytes]]) -> httpcore.Request:
        return httpcore.Request(
            b"GET",
            httpcore.URL(scheme=self._scheme, host=self._host, port=self._port, target=target),
            headers=self._headers + headers,
            extensions=self._extensions,
        )
