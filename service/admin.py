"""The admin HTTP API, mounted under /admin only when ADMIN_TOKEN is set.

    GET  /admin/events?status=&limit=          newest first
    GET  /admin/events/{event_id}              what happened to it and who was told
    POST /admin/events/{event_id}/replay       ?handler=&force= (or the same keys in a JSON body)
    GET  /admin/dead-letters?limit=
    POST /admin/dead-letters/{delivery_id}/replay

Every route wants `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time; anything
else is a 401 `unauthorized` in the receiver's error format, logged as `admin_login_failed`
(client and path, never what was given) and counted by the LoginLimit the console shares
(service/login_limit.py): past it, 429 `rate_limited` with Retry-After, whatever the token, and
one sampled `admin_login_throttled` line. The store and replay code is
synchronous redis-py: each request opens a short-lived client and runs in the thread pool.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from config.errors import ConfigurationError
from config.settings import Settings
from service.errors import error_response
from service.login_limit import LoginLimit
from service.store_call import store_call as _call
from workers import operations

log = structlog.get_logger("service.admin")
Endpoint = Callable[[Request], Awaitable[Response]]
MAX_LIMIT = 1000


def admin_mount(settings: Settings, *, login_limit: LoginLimit) -> Mount:
    """The /admin routes, each behind the bearer token; failed tries counted in `login_limit`."""
    if settings.admin_token is None or not settings.redis_url:
        raise ConfigurationError("the admin API needs ADMIN_TOKEN and REDIS_URL")
    token = str(settings.admin_token).encode()

    def route(path: str, endpoint: Endpoint, method: str) -> Route:
        return Route(path, Guarded(endpoint, token, login_limit), methods=[method])

    return Mount(
        "/admin",
        routes=[
            route("/events", list_events, "GET"),
            route("/events/{event_id}", show_event, "GET"),
            route("/events/{event_id}/replay", replay_event, "POST"),
            route("/dead-letters", list_dead_letters, "GET"),
            route("/dead-letters/{delivery_id}/replay", replay_dead_letter, "POST"),
        ],
    )


class Guarded:
    """An admin route's ASGI app: the token check, then the endpoint; expected errors as error bodies."""

    def __init__(self, endpoint: Endpoint, token: bytes, login_limit: LoginLimit) -> None:
        self.endpoint = endpoint
        self.token = token
        self.login_limit = login_limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        client = request.client.host if request.client else "unknown"
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        response: Response
        wait = self.login_limit.blocked_for(client)
        if wait:
            response = self._throttled(request, client, wait)
        elif not (scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token)):
            self.login_limit.failed(client)
            log.warning("admin_login_failed", client=client, path=request.url.path)
            message = "expected 'Authorization: Bearer <ADMIN_TOKEN>'"
            headers = {"WWW-Authenticate": "Bearer"}
            response = error_response(request, 401, "unauthorized", message, headers=headers)
        else:
            try:
                response = await self.endpoint(request)
            except operations.NotFound as exc:
                response = error_response(request, 404, exc.code, exc.message)
            except operations.NotReplayable as exc:
                response = error_response(request, 409, exc.code, exc.message)
            except BadRequest as exc:
                response = error_response(request, 400, "bad_request", str(exc))
        await response(scope, receive, send)

    @staticmethod
    def _throttled(request: Request, client: str, wait: float) -> Response:
        retry_after = round(wait + 0.5)
        suppressed = request.app.state.rejection_log.admit(f"{client} admin_login_throttled")
        if suppressed is not None:
            log.warning("admin_login_throttled", client=client, retry_after=retry_after, suppressed=suppressed)
        message = f"too many failed logins from {client}: try again in {retry_after} s"
        return error_response(request, 429, "rate_limited", message, headers={"Retry-After": str(retry_after)})


class BadRequest(ValueError):
    """A query parameter or body the admin API cannot use."""


def _limit(request: Request, default: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}, got {raw!r}")
    return int(raw)


async def _options(request: Request) -> dict[str, Any]:
    """`handler` and `force` from the query string, overridden by a JSON object body."""
    options: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if body.strip():
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadRequest("the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("expected a JSON object body with 'handler' and/or 'force'")
        options |= data
    force = options.get("force", False)
    if isinstance(force, str):
        force = force.lower() in ("1", "true", "yes")
    handler = options.get("handler")
    if handler is not None and not isinstance(handler, str):
        raise BadRequest("handler must be a string")
    return {"handler": handler or None, "force": bool(force)}


async def list_events(request: Request) -> Response:
    status = request.query_params.get("status") or None
    rows = await _call(request, operations.list_events, status=status, limit=_limit(request, 50))
    return JSONResponse({"events": rows})


async def show_event(request: Request) -> Response:
    return JSONResponse(await _call(request, operations.event_record, request.path_params["event_id"]))


async def replay_event(request: Request) -> Response:
    event_id = request.path_params["event_id"]
    outcome = await _call(request, operations.replay, event_id, **(await _options(request)))
    return JSONResponse({"event_id": event_id, **outcome}, status_code=202)


async def list_dead_letters(request: Request) -> Response:
    letters = await _call(request, operations.dead_letters, limit=_limit(request, 100))
    return JSONResponse({"dead_letters": letters})


async def replay_dead_letter(request: Request) -> Response:
    delivery_id = request.path_params["delivery_id"]
    job_id = await _call(request, operations.replay_dead_letter, delivery_id)
    return JSONResponse({"delivery_id": delivery_id, "job_id": job_id}, status_code=202)
