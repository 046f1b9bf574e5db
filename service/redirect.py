"""Redirects that point at this service, whatever Host the request claimed.

Starlette's routers answer `/webhooks/circleci/` with a 307 to `/webhooks/circleci`, and build
that Location from the request's own `Host` header: `Host: evil.example` came back as
`location: http://evil.example/webhooks/circleci`, so a cache or a client that trusts the
answer could be sent elsewhere (issue 23, item 7). Every redirect of ours is to this service, so
an absolute Location is cut to its path and query (RFC 9110 allows a relative reference); the
console's own redirects are already relative and pass unchanged.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOCATION = b"location"


def relative(location: bytes) -> bytes:
    """`location` without its scheme and host: `/path?query`, never `//host` (which is one too)."""
    parts = urlsplit(location.decode("latin-1"))
    if not parts.scheme and not parts.netloc:
        return location
    path = "/" + parts.path.lstrip("/")
    return (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")


class RelativeRedirects:
    """Pure ASGI middleware: a response's Location header made relative."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_relative(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, relative(value) if name.lower() == LOCATION else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_relative)
