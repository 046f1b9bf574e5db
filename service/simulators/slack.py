"""A local Slack Web API: the methods the `slack_app` handler calls, checked as Slack checks them.

    circleci-events slack-simulator --port 8767 [--token xoxb-sim-token] [--print]

The API answers at /api/<method> (point a handler's `api_url` at http://127.0.0.1:8767/api/):
`chat.postMessage`, `chat.update`, `chat.getPermalink`, `users.lookupByEmail`,
`conversations.open`, `usergroups.users.list`, and `auth.test`. Arguments come as JSON, a form or the
query string; the bot token as
`Authorization: Bearer xoxb-…` (or a `token` argument). Errors are Slack's: HTTP 200
`{"ok": false, "error": "invalid_auth"}` (also `not_authed`, `missing_scope`,
`channel_not_found`, `not_in_channel`, `message_not_found`, `users_not_found`,
`invalid_blocks`, `no_text`, `msg_too_long`), and HTTP 429 with `Retry-After` for
`ratelimited`. Every message's blocks are validated with slack_sdk's Block Kit models
(service/simulators/slack_workspace.py). Control endpoints (no token):

    POST   /_slack/faults    {"method": "chat.postMessage", "error": "ratelimited", "retry_after": 2,
                              "times": 1} ({"error": "not_in_channel"}, {"status": 500}, {"delay": 2})
    GET    /_slack/faults    DELETE /_slack/faults
    GET    /_slack/messages  ?channel=ci   every message (replies too) with its edits and mentions
    GET    /_slack/view      ?channel=ci   the channel and its threads as a person reads them
    GET    /_slack/calls     {"calls": {"chat.postMessage": 3, ...}, "total": n}
    POST   /_slack/users     {"id": "U0LIN", "name": "lin", "email": "lin@example.com"}
    POST   /_slack/channels  {"id": "C0OPS", "name": "ops", "member": false}
    POST   /_slack/reset     forget messages, calls and faults
    POST   /_slack/click     {"url", "channel", "ts", "action_id", "user", "team"}: press a button,
                             a signed block_actions payload sent to url (slack_click.py)
    GET    /_slack/responses what was posted to the clicks' response_urls
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from service.simulators import slack_click
from service.simulators.slack_workspace import BOT_USER, Message, SlackError, Workspace

__all__ = ["create_slack_simulator"]

Method = Callable[[Workspace, dict[str, Any]], dict[str, Any]]
METHODS: dict[str, Method] = {
    "chat.postMessage": Workspace.post_message,
    "chat.update": Workspace.update,
    "chat.getPermalink": Workspace.permalink,
    "users.lookupByEmail": Workspace.lookup_by_email,
    "conversations.open": Workspace.open_conversation,
    "usergroups.users.list": Workspace.group_members,
    "auth.test": lambda workspace, args: {"user_id": BOT_USER, "team": "simulated", "bot_id": "B0BOT"},
}


async def _arguments(request: Request) -> dict[str, Any]:
    """The call's arguments: the query string, then a JSON or form body over it."""
    args: dict[str, Any] = dict(request.query_params)
    raw = await request.body()
    if not raw:
        return args
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(raw)
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(body, dict):
            raise SlackError("invalid_json")
        return args | body
    return args | dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _token(request: Request, args: dict[str, Any]) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else args.get("token")


async def _api(request: Request) -> Response:
    workspace: Workspace = request.app.state.workspace
    method = request.path_params["method"]
    try:
        args = await _arguments(request)
    except SlackError as exc:
        return JSONResponse({"ok": False, "error": exc.code})
    fault = workspace.take_fault(method)
    if fault is not None:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is not None:
            return PlainTextResponse(f"fault {fault.status}", status_code=fault.status)
        if fault.error == "ratelimited":
            headers = {"Retry-After": str(fault.retry_after)}
            return JSONResponse({"ok": False, "error": "ratelimited"}, status_code=429, headers=headers)
        if fault.error is not None:
            return JSONResponse({"ok": False, "error": fault.error})
    handler = METHODS.get(method)
    if handler is None:
        return JSONResponse({"ok": False, "error": "unknown_method"}, status_code=404)
    try:
        workspace.authorise(_token(request, args), method)
        answer = handler(workspace, args)
    except SlackError as exc:
        return JSONResponse({"ok": False, "error": exc.code, **exc.extra})
    on_change = request.app.state.on_change
    if on_change is not None and method in ("chat.postMessage", "chat.update"):
        on_change(method, workspace.find(answer["channel"], answer["ts"]))
    return JSONResponse({"ok": True, **answer})


async def _faults(request: Request) -> Response:
    workspace: Workspace = request.app.state.workspace
    if request.method == "POST":
        data = await request.json()
        added = [workspace.add_fault(**f) for f in (data if isinstance(data, list) else [data])]
        return JSONResponse({"faults": [asdict(f) for f in added]}, status_code=201)
    with workspace.lock:
        if request.method == "DELETE":
            workspace.faults.clear()
        return JSONResponse({"faults": [asdict(f) for f in workspace.faults]})


async def _messages(request: Request) -> Response:
    return JSONResponse(request.app.state.workspace.to_dict(request.query_params.get("channel")))


async def _view(request: Request) -> Response:
    return PlainTextResponse(request.app.state.workspace.view(request.query_params.get("channel", "")))


async def _calls(request: Request) -> Response:
    workspace: Workspace = request.app.state.workspace
    with workspace.lock:
        calls = {k: v for k, v in sorted(workspace.calls.items()) if v}
    return JSONResponse({"calls": calls, "total": sum(calls.values())})


async def _users(request: Request) -> Response:
    data = await request.json()
    user = request.app.state.workspace.add_user(data["id"], data.get("name") or data["id"], data["email"])
    return JSONResponse(asdict(user), status_code=201)


async def _channels(request: Request) -> Response:
    data = await request.json()
    channel = request.app.state.workspace.add_channel(data["id"], data["name"], member=data.get("member", True))
    return JSONResponse(asdict(channel), status_code=201)


async def _reset(request: Request) -> Response:
    request.app.state.workspace.reset()
    return JSONResponse({"reset": True})


def create_slack_simulator(
    workspace: Workspace | None = None,
    *,
    on_change: Callable[[str, Message | None], None] | None = None,
    signing_secret: str = slack_click.DEFAULT_SIGNING_SECRET,
    team_id: str = slack_click.DEFAULT_TEAM,
) -> Starlette:
    """The simulator app; `app.state.workspace` is the Python control object. `on_change` is
    called with the method and the message after each post or update."""
    app = Starlette(
        routes=[
            Route("/_slack/faults", _faults, methods=["GET", "POST", "DELETE"]),
            Route("/_slack/messages", _messages),
            Route("/_slack/view", _view),
            Route("/_slack/calls", _calls),
            Route("/_slack/users", _users, methods=["POST"]),
            Route("/_slack/channels", _channels, methods=["POST"]),
            Route("/_slack/reset", _reset, methods=["POST"]),
            Route("/_slack/click", slack_click.click, methods=["POST"]),
            Route("/_slack/respond/{n:int}", slack_click.respond, methods=["POST"]),
            Route("/_slack/responses", slack_click.responses),
            Route("/api/{method}", _api, methods=["GET", "POST"]),
        ]
    )
    app.state.workspace = workspace if workspace is not None else Workspace.example()
    app.state.on_change = on_change
    app.state.signing_secret = signing_secret
    app.state.team_id = team_id
    return app
