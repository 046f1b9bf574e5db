"""Reading a request body without trusting its declared size or waiting on it for ever."""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect, Request

from config.errors import BodyIncomplete, BodyTimeout, BodyTooLarge, UnsupportedMediaType


def require_json(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise UnsupportedMediaType(
            f"expected content-type application/json, got {media_type or 'none'!r}",
            details={"content_type": media_type},
        )


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body, or BodyTooLarge as soon as it is known to exceed `limit` bytes.

    A client that hangs up mid-body is a refused delivery (BodyIncomplete), not a server error;
    one that has not sent it all within `timeout` seconds (WEB_BODY_TIMEOUT_SECONDS) gets
    BodyTimeout, so a client sending a byte now and then cannot hold a request open.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except ClientDisconnect:
        raise BodyIncomplete(
            f"the client closed the connection after {size} bytes of the body (content-length {declared!r})",
            details={"received_bytes": size},
        ) from None
    except TimeoutError:
        raise BodyTimeout(
            f"the body was not complete within WEB_BODY_TIMEOUT_SECONDS={timeout:g}: "
            f"{size} bytes received (content-length {declared!r})",
            details={"received_bytes": size, "timeout_seconds": timeout},
        ) from None
    return b"".join(chunks)


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body exceeds MAX_BODY_BYTES={limit}", details={"limit": limit})
