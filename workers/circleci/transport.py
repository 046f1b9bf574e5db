"""The transport under `CircleCIClient`: one `httpx.Client`, retries, errors mapped into our tree.

    CircleCITransport.request()   send, map errors, retry 429/5xx/timeouts within a deadline
    CircleCITransport.json()      the same, decoding the JSON body
    CircleCITransport.paginate()  follow `next_page_token` as `page-token` until it is null

The token is set on each request, not on the httpx client: an API path always gets it, an
absolute URL (an artifact) only where workers.circleci.token_scope allows, and a download's redirects are
followed here, by hand, so the token stops at the first hop to another host.

A GET of an API path goes straight to the client's connection pool (workers/circleci/plain_get.py:
half the CPU), unless the client has what only httpx handles (proxies, other transports, auth,
hooks, cookies); everything else, and every request of such a client, goes through httpx.

Facts: /work/shared/reference/circleci-api-v2.md and circleci-pitfalls.md (section B).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self

import httpx
import structlog
from starlette.datastructures import Secret

from config.clock import SYSTEM_CLOCK, Clock
from config.errors import (
    CircleCIAPIError,
    CircleCIBadRequest,
    CircleCIForbidden,
    CircleCIInvalidResponse,
    CircleCINotFound,
    CircleCIPaginationError,
    CircleCIRateLimited,
    CircleCIRedirectRefused,
    CircleCIServerError,
    CircleCITimeout,
    CircleCIUnauthorized,
    CircleCIUnreachable,
)
from config.settings import DEFAULT_API_URL, DEFAULT_ARTIFACT_HOSTS
from workers.backoff import backoff
from workers.circleci.plain_get import PlainGet
from workers.circleci.token_scope import TokenScope

__all__ = ["DEFAULT_TIMEOUT", "MAX_REDIRECTS", "CircleCITransport", "parse_retry_after"]

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
MAX_REDIRECTS = 5  # a download's hops after the first request
TOKEN_HEADER = "Circle-Token"
TOKEN_HEADER_RAW = TOKEN_HEADER.encode()
# The request never reached CircleCI, so even a non-idempotent POST may be sent again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_HINTS = {
    401: "check CIRCLE_TOKEN is a personal API token; project tokens are not supported by v2",
    404: "an invalid token on a private project also gives 404",
}
_WITHHELD_HINT = (
    "CIRCLE_TOKEN was withheld from {host}: it goes only to the API host and the hosts in "
    "CIRCLECI_ARTIFACT_HOSTS, over https"
)
_ERRORS: dict[int, type[CircleCIAPIError]] = {
    401: CircleCIUnauthorized,
    403: CircleCIForbidden,
    404: CircleCINotFound,
    429: CircleCIRateLimited,
}


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: integer seconds or an HTTP-date.

    Both forms occur; CircleCI's own chunk-cli accepts both
    (https://github.com/CircleCI-Public/chunk-cli/pull/417).
    """
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _label(target: str) -> str:
    """The path shown in messages and logs: never a host's query string (it may hold a token)."""
    return httpx.URL(target).path if "://" in target else target.split("?", 1)[0]


def _redirect_target(response: httpx.Response, method: str, path: str) -> httpx.URL:
    """The absolute http(s) URL a redirect points to; never shown whole (it may be signed)."""
    try:
        location = response.url.join(response.headers["Location"])
    except httpx.InvalidURL:
        location = httpx.URL()
    if location.scheme not in ("http", "https") or not location.host:
        raise CircleCIRedirectRefused(
            f"{method} {path} was redirected ({response.status_code}) to something that is not an http(s) URL",
            status=response.status_code,
            method=method,
            path=path,
        )
    return location


def _error_text(response: httpx.Response) -> str:
    """The human part of an error body: {"message"}, {"error"}, or plain text ("Rate limited.")."""
    text = response.text.strip()
    try:
        body = response.json()
    except ValueError:
        return text[:200]
    if isinstance(body, dict):
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, dict):  # v3 shape {"error": {"title", "detail"}}
                value = value.get("detail") or value.get("title")
            if value:
                return str(value)[:200]
    return text[:200]


class CircleCITransport:
    """Sends API v2 calls; thread-safe, so one per process serves every worker thread."""

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_API_URL,
        token: str | Secret | None = None,
        artifact_hosts: Iterable[str] = DEFAULT_ARTIFACT_HOSTS,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        max_retries: int = 4,
        deadline: float = 30.0,
        max_wait: float = 30.0,
        max_pages: int = 50,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        before_request: Callable[[], None] | None = None,
    ) -> None:
        """`before_request` runs before each request is sent (the shared API budget, the count of
        an enrichment's calls); what it raises ends the call."""
        headers = {"Accept": "application/json"}
        if http_client is None:
            http_client = httpx.Client(
                base_url=base_url.rstrip("/"),
                headers=headers,
                timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
                transport=transport,
                follow_redirects=False,
            )
        else:
            http_client.headers.update(headers)
        self._http = http_client
        self._plain = PlainGet.of(http_client)  # None: every request through httpx
        self.base_url = str(http_client.base_url)
        self._token = None if token is None else str(token)
        self._scope = TokenScope(http_client.base_url, artifact_hosts)
        self._origin_allowed = self._scope.allows(http_client.base_url)
        self.max_retries = max_retries
        self.deadline = deadline
        self.max_wait = max_wait
        self.max_pages = max_pages
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._deprecations_seen: set[tuple[str, str]] = set()
        self._before_request = before_request

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transport, retries, error mapping -------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        max_wait: float | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send one call, retrying 429, 5xx and timeouts with jittered backoff within the deadline.

        A non-idempotent call (a POST unless said otherwise) is retried on 429, on 5xx never
        and on a timeout only when the request was never sent: it may have landed.
        A 429 asking for longer than `max_wait` raises CircleCIRateLimited at once, so an
        RQ job can reschedule itself instead of sleeping.
        """
        method = method.upper()
        target, path = path, _label(path)
        idempotent = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        max_wait = self.max_wait if max_wait is None else max_wait
        started = self._clock.monotonic()
        attempt = 0
        while True:
            response, error, retryable = self._attempt(method, target, path, params, json, idempotent, stream)
            if error is None:
                assert response is not None
                return response
            delay = self._delay(attempt)
            if isinstance(error, CircleCIRateLimited) and error.retry_after is not None:
                if error.retry_after > max_wait:
                    raise error
                delay = error.retry_after + self._rng.uniform(0, self.backoff)
            elapsed = self._clock.monotonic() - started
            if not retryable or attempt >= self.max_retries or elapsed + delay > self.deadline:
                error.details.setdefault("attempts", attempt + 1)
                raise error
            log.info(
                "circleci_api_retry",
                method=method,
                path=path,
                status=error.status,
                error_code=error.code,
                attempt=attempt + 1,
                delay=round(delay, 3),
            )
            self._clock.sleep(delay)
            attempt += 1

    def _attempt(
        self,
        method: str,
        target: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        idempotent: bool,
        stream: bool,
    ) -> tuple[httpx.Response | None, CircleCIAPIError | None, bool]:
        """One try: (response, None, _) or (None, error, retryable)."""
        try:
            response, withheld_from = self._send(method, target, path, params, json, stream)
        except httpx.TimeoutException as exc:
            message = f"CircleCI API did not answer {method} {path} in time ({type(exc).__name__})"
            error: CircleCIAPIError = CircleCITimeout(message, method=method, path=path)
            return None, error, idempotent or isinstance(exc, _NOT_SENT)
        except httpx.TransportError as exc:
            message = f"CircleCI API unreachable for {method} {path}: {type(exc).__name__}"
            error = CircleCIUnreachable(message, method=method, path=path)
            return None, error, idempotent or isinstance(exc, _NOT_SENT)
        self._note_deprecation(response, method, path)
        if response.status_code < 400:
            return response, None, False
        if stream:
            response.read()
            response.close()
        error = self._map_error(response, method, path, withheld_from)
        retryable = response.status_code == 429 or (response.status_code >= 500 and idempotent)
        return None, error, retryable

    def _send(
        self,
        method: str,
        target: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        stream: bool,
    ) -> tuple[httpx.Response, str | None]:
        """Send `target`; for a download (`stream`) follow at most MAX_REDIRECTS redirects.

        Returns the last response and the host the token was withheld from (None when it went,
        or there is none). An API path carries the token; an absolute URL only when the scope
        allows it; a redirect keeps it only while the host stays the same allowed host, and once
        dropped it never comes back.
        """
        plain = self._plain
        plain_ok = plain is not None and method == "GET" and not stream and json is None
        sendable = plain.target(target) if plain_ok and plain is not None else None
        if sendable is not None:  # straight to the client's pool (workers/circleci/plain_get.py)
            assert plain is not None
            # an API path always carries the token; another path on the API's origin (v1.1) as the scope says
            token = self._token if target.startswith("/") or self._origin_allowed else None
            if self._before_request is not None:
                self._before_request()
            headers = [] if token is None else [(TOKEN_HEADER_RAW, token.encode())]
            return plain.get(sendable, params, headers), plain.host if self._token and token is None else None
        request = self._http.build_request(method, target, params=params, json=json)
        relative = not httpx.URL(target).is_absolute_url
        token = self._token if relative or self._scope.allows(request.url) else None
        for _ in range(MAX_REDIRECTS + 1):
            if token is None:
                request.headers.pop(TOKEN_HEADER, None)
            else:
                request.headers[TOKEN_HEADER] = token
            if self._before_request is not None:
                self._before_request()
            response = self._http.send(request, stream=stream, follow_redirects=False)
            if not (stream and response.has_redirect_location):
                withheld = self._token is not None and token is None
                return response, request.url.host if withheld else None
            response.close()
            location = _redirect_target(response, method, path)
            if location.host != request.url.host or not self._scope.allows(location):
                token = None
            request = self._http.build_request("GET", location)
        raise CircleCIRedirectRefused(
            f"{method} {path} was redirected more than {MAX_REDIRECTS} times (last to {request.url.host})",
            status=response.status_code,
            method=method,
            path=path,
        )

    def _map_error(
        self, response: httpx.Response, method: str, path: str, withheld_from: str | None = None
    ) -> CircleCIAPIError:
        status = response.status_code
        text = _error_text(response)
        hint = _HINTS.get(status)
        if withheld_from is not None and status in (401, 403, 404):
            hint = _WITHHELD_HINT.format(host=withheld_from)
        message = f"CircleCI API answered {status} to {method} {path}: {text or '(empty body)'}"
        if hint:
            message += f" ({hint})"
        details = {"body": text}
        if status == 429:
            now = datetime.fromtimestamp(self._clock.now(), UTC)
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
            if retry_after is None:  # documented fallback: seconds until the window resets
                retry_after = parse_retry_after(
                    response.headers.get("RateLimit-Reset") or response.headers.get("X-RateLimit-Reset"), now=now
                )
            return CircleCIRateLimited(message, retry_after=retry_after, method=method, path=path, details=details)
        cls = _ERRORS.get(status) or (CircleCIServerError if status >= 500 else CircleCIBadRequest)
        return cls(message, status=status, method=method, path=path, details=details)

    def _delay(self, attempt: int) -> float:
        return backoff(attempt, base=self.backoff, cap=self.max_backoff, rng=self._rng)

    def _note_deprecation(self, response: httpx.Response, method: str, path: str) -> None:
        """Log Deprecation/Sunset headers once each, as the official CLI warns about them."""
        for header in ("Deprecation", "Sunset"):
            value = response.headers.get(header)
            if value is None:
                continue
            with self._lock:
                if (header, value) in self._deprecations_seen:
                    continue
                self._deprecations_seen.add((header, value))
            log.warning(
                "circleci_api_deprecation",
                header=header.lower(),
                value=value,
                method=method,
                path=path,
                link=response.headers.get("Link"),
            )

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """`request` and decode its JSON body."""
        return self.decode(self.request(method, path, **kwargs), method.upper(), path)

    def decode(self, response: httpx.Response, method: str, path: str) -> Any:
        """The JSON body of a 2xx; one that is not JSON raises CircleCIInvalidResponse."""
        try:
            return response.json()
        except ValueError:
            raise CircleCIInvalidResponse(
                f"CircleCI API answered {response.status_code} to {method} {path} "
                f"with a body that is not JSON: {response.text[:100]!r}",
                status=response.status_code,
                method=method,
                path=path,
            ) from None

    def paginate(
        self, path: str, *, params: Mapping[str, Any] | None = None, max_pages: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield the items of every page until `next_page_token` is null.

        An empty page with a token is not the end (pitfalls B8). A repeating token or more
        than `max_pages` pages raises CircleCIPaginationError after the items already yielded.
        """
        cap = max_pages or self.max_pages
        seen: set[str] = set()
        token: str | None = None
        for page in range(1, cap + 1):
            query = {**(params or {}), **({"page-token": token} if token else {})}
            body = self.json("GET", path, params=query)
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise CircleCIInvalidResponse(
                    f"expected {{'items': [...]}} from GET {path}, got {type(body).__name__}",
                    status=200,
                    method="GET",
                    path=path,
                )
            yield from items
            token = body.get("next_page_token")
            if not token:
                return
            if token in seen:
                raise CircleCIPaginationError(
                    f"GET {path} sent back a page token it already sent, after {page} pages",
                    method="GET",
                    path=path,
                    details={"pages": page},
                )
            seen.add(token)
        raise CircleCIPaginationError(
            f"GET {path} still had more pages after the cap of {cap}",
            method="GET",
            path=path,
            details={"pages": cap},
        )
