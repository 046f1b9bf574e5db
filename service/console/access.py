"""Who may see the console and how its answers are sent: login, sessions, CSRF, headers, templates.

Every page goes through `Access.page` (a session, or a redirect to the login form) and every
form post through `Access.action` (a session and its CSRF token, or 403 with nothing done).
Answers carry the headers below; templates are Jinja2 with autoescape, so anything CircleCI sent
(commit subjects, branch and job names, log tails) is shown as text.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import structlog
from jinja2 import Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from config.errors import RedisUnavailable
from config.log_sampler import LogSampler
from config.settings import Settings
from service.console.proxy_user import ProxyUser
from service.console.session import COOKIE, PATH, Session, SessionSigner, csrf_ok
from service.login_limit import LoginLimit
from service.trusted_proxies import peer_of
from workers import operations
from workers.timestamps import parse_time

log = structlog.get_logger("service.console")
HERE = Path(__file__).parent
HEADERS = {  # lower case, as ASGI sends header names
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
MAX_FORM_BYTES = 64 * 1024
View = Callable[[Request, Session], Awaitable[Response]]

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True)


def when(value: object) -> str:
    """A stored time (ISO 8601 text or epoch seconds) as `2026-12-07 03:57:10 UTC`; a dash when there is none."""
    moment = parse_time(value) if isinstance(value, str) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "\u2013"


def indented(text: str) -> str:
    """A request body as sent, indented when it is JSON (it is kept compact)."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


templates.filters["when"] = when
templates.filters["indented"] = indented


class Access:
    """The login form and the session checks of the console, built once per app."""

    def __init__(self, settings: Settings, *, limit: LoginLimit | None = None) -> None:
        assert settings.admin_token is not None
        self.signer = SessionSigner(str(settings.admin_token), lifetime=settings.ui_session_seconds)
        self.limit = limit or LoginLimit()
        header = settings.console_user_header
        self.proxy = ProxyUser(header, settings.trusted_proxies, log_sampler=LogSampler()) if header else None

    def session_of(self, request: Request) -> tuple[Session | None, str | None]:
        """The request's session, and a new cookie when a trusted proxy names a user the cookie is
        not for (the proxy's word starts the user's session: no login form behind SSO)."""
        session = self.signer.read(request.cookies.get(COOKIE))
        user = self.proxy.user_of(request) if self.proxy is not None else None
        if user is None or (session is not None and session.user == user):
            return session, None
        cookie, session = self.signer.issue(user=user)
        log.info("console_login", client=peer_of(request), user=user, via="proxy")
        return session, cookie

    def set_cookie(self, request: Request, response: Response, cookie: str) -> None:
        response.set_cookie(
            COOKIE, cookie, max_age=self.signer.lifetime, path=PATH, httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )  # fmt: skip

    def page(self, view: View) -> Callable[[Request], Awaitable[Response]]:
        """A GET view: with a session, else a redirect to the login form (nothing of the page shown)."""

        async def endpoint(request: Request) -> Response:
            session, cookie = self.session_of(request)
            if session is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"{PATH}/login?next={quote(target, safe='')}", status_code=303)
            response = await guarded(view, request, session)
            if cookie is not None:
                self.set_cookie(request, response, cookie)
            return response

        return endpoint

    def action(self, view: View) -> Callable[[Request], Awaitable[Response]]:
        """A form post: a session and its CSRF token, else 403 and nothing done."""

        async def endpoint(request: Request) -> Response:
            session, cookie = self.session_of(request)
            form = await form_of(request)
            request.state.form = form
            if session is None:
                return render(request, "denied.html", {"reason": "Your session has expired: log in again."}, 403)
            if cookie is not None or not csrf_ok(session, form.get("csrf")):  # a new session: no form has its token
                log.warning("console_csrf_rejected", path=request.url.path, user=session.who)
                return render(request, "denied.html", {"reason": "The form's CSRF token is missing or wrong."}, 403)
            return await guarded(view, request, session)

        return endpoint

    async def login_form(self, request: Request) -> Response:
        return render(request, "login.html", {"next": safe_next(request.query_params.get("next"))})

    async def login(self, request: Request) -> Response:
        client = request.client.host if request.client else "-"
        form = await form_of(request)
        target = safe_next(str(form.get("next") or ""))
        wait = self.limit.blocked_for(client)
        if wait:
            log.warning("console_login_throttled", client=client, retry_after=round(wait))
            context = {"next": target, "error": f"Too many failed logins: try again in {round(wait + 0.5)} s."}
            return render(request, "login.html", context, 429, headers={"Retry-After": str(round(wait + 0.5))})
        if not self.signer.token_matches(str(form.get("token") or "")):
            self.limit.failed(client)
            log.warning("console_login_failed", client=client)
            return render(request, "login.html", {"next": target, "error": "That is not the admin token."}, 401)
        cookie, _ = self.signer.issue()
        log.info("console_login", client=client, via="token")
        response = RedirectResponse(target, status_code=303)
        self.set_cookie(request, response, cookie)
        return response

    async def logout(self, request: Request, session: Session) -> Response:
        response = RedirectResponse(f"{PATH}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
        return response


async def guarded(view: View, request: Request, session: Session) -> Response:
    """The view's answer; an id that is not stored is a 404 page (409 for a dead letter that cannot be
    replayed), Redis away a page with a banner: never a stack trace."""
    try:
        return await view(request, session)
    except (operations.NotFound, operations.NotReplayable) as exc:
        status = 409 if isinstance(exc, operations.NotReplayable) else 404
        return render(request, "missing.html", {"session": session, "message": exc.message}, status)
    except RedisUnavailable:
        context = {"session": session, "banner": "Redis is not answering: nothing can be read or changed right now."}
        return render(request, "unavailable.html", context, 503, headers={"Retry-After": "5"})


async def form_of(request: Request) -> dict[str, str]:
    """An urlencoded form post as a dict (first value of each field); at most MAX_FORM_BYTES read.
    The forms are ours and small; parsing them here spares a multipart library."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path of the console, never another site."""
    if value and value.startswith(PATH) and not value.startswith("//") and "\\" not in value:
        return value
    return PATH + "/"


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    status: int = 200,
    *,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    html = templates.get_template(name).render(request=request, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status, headers=headers)


class SecurityHeaders:
    """Adds HEADERS to every answer under /ui."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in HEADERS.items() if k.encode() not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, sending)
