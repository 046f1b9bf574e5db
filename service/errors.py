"""Every error answer of the web process: `{"error_code", "message", "details", "request_id"}`.

Never a stack trace, a secret or a signature: messages come from our own error tree, and an
unexpected exception is answered with a generic message (its details go to the log).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from config.errors import CircleCIEventsError, RateLimited, RedisUnavailable, WebhookError

log = structlog.get_logger("service.errors")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}
REDIS_RETRY_AFTER = 5


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = error_body(code, message, details, getattr(request.state, "request_id", None))
    return JSONResponse(body, status_code=status, headers=headers)


def error_body(code: str, message: str, details: dict[str, Any] | None, request_id: str | None) -> dict[str, Any]:
    """The one error format; also written by service/http_protocol.py before any app runs."""
    return {"error_code": code, "message": message, "details": details or {}, "request_id": request_id}


async def project_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CircleCIEventsError)
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, round(exc.retry_after + 0.5)))}
    if isinstance(exc, RedisUnavailable):
        headers = {"Retry-After": str(REDIS_RETRY_AFTER)}
    status = exc.http_status if isinstance(exc, WebhookError | RedisUnavailable) else 500
    return error_response(request, status, exc.code, exc.message, exc.details, headers)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if exc.status_code != 404 else f"no route for {request.method} {request.url.path}"
    if exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(request, exc.status_code, code, message, headers=exc.headers)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("request_failed", error_type=type(exc).__name__)
    return error_response(request, 500, "internal_error", "internal error; the request id is in the logs")


EXCEPTION_HANDLERS = {
    CircleCIEventsError: project_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
