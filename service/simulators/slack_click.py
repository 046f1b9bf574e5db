"""The Slack simulator's "click": a button of a posted message pressed, as Slack reports it.

    POST /_slack/click  {"url": "http://127.0.0.1:8000/slack/interactions", "channel": "C0CI",
                         "ts": "<message ts>", "action_id": "circleci_events.approve",
                         "user": "U0ADA", "team": "T0SIM", "clicks": 1}

finds the button in the message's blocks and POSTs a `block_actions` payload to `url` as Slack
does: the form field `payload`, signed `v0=` with the simulator's signing secret (slack_sdk's
signer) and the current timestamp. Its `response_url` points back at the simulator
(`/_slack/respond/<n>`), which keeps what is posted there (`workspace.responses`, and
`GET /_slack/responses`). `clicks: 2` is a double click: two requests (each its own action_ts
and signature) sent at once; the answer lists each status. https://docs.slack.dev/reference/interaction-payloads/block_actions-payload
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.simulators.slack_workspace import Workspace

DEFAULT_SIGNING_SECRET = "sim-signing-secret"
DEFAULT_TEAM = "T0SIM"


def find_button(blocks: list[Any] | None, action_id: str) -> dict[str, Any] | None:
    for block in blocks or []:
        for element in block.get("elements") or [] if isinstance(block, dict) else []:
            if isinstance(element, dict) and element.get("type") == "button" and element.get("action_id") == action_id:
                return element
    return None


def block_actions(
    workspace: Workspace, *, channel: str, ts: str, action_id: str, user: str, team: str, response_url: str
) -> dict[str, Any]:
    """The payload Slack sends for a click on the button `action_id` of message (channel, ts)."""
    with workspace.lock:
        message = workspace.find(channel, ts)
        if message is None:
            raise LookupError(f"no message {ts} in {channel}")
        button = find_button(message.blocks, action_id)
        if button is None:
            raise LookupError(f"message {ts} has no button {action_id!r}")
        blocks, text = message.blocks, message.text
    now = f"{time.time():.6f}"
    return {
        "type": "block_actions",
        "user": {"id": user, "team_id": team},
        "team": {"id": team},
        "api_app_id": "A0SIM",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel},
        "message": {"type": "message", "ts": ts, "text": text, "blocks": blocks},
        "response_url": response_url,
        "trigger_id": f"sim.{now}",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": button.get("block_id", ""),
                "value": button.get("value"),
                "action_ts": now,
            }
        ],
    }


def signed_form(payload: dict[str, Any], secret: str, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The body (form field `payload`) and Slack's headers for it."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    headers = {"content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": stamp,
               "x-slack-signature": str(signature)}  # fmt: skip
    return body, headers


async def click(request: Request) -> Response:
    """POST /_slack/click: press a button; answers what the target answered."""
    workspace: Workspace = request.app.state.workspace
    data = await request.json()
    with workspace.lock:
        n = len(workspace.responses)
    response_url = f"{str(request.base_url).rstrip('/')}/_slack/respond/{n}"
    requests = []
    for _ in range(max(1, min(int(data.get("clicks", 1)), 10))):
        try:
            payload = block_actions(
                workspace, channel=data["channel"], ts=data["ts"], action_id=data["action_id"],
                user=data.get("user", "U0ADA"), team=data.get("team", request.app.state.team_id),
                response_url=response_url,
            )  # fmt: skip
        except LookupError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        requests.append(signed_form(payload, request.app.state.signing_secret))
    async with httpx.AsyncClient(timeout=10.0) as client:
        answers = await asyncio.gather(*(client.post(data["url"], content=b, headers=h) for b, h in requests))
    return JSONResponse({"status": answers[0].status_code, "statuses": [a.status_code for a in answers],
                         "body": answers[0].text[:2000]})  # fmt: skip


async def respond(request: Request) -> Response:
    """A response_url: keeps what is posted (ephemeral replies, replacements)."""
    workspace: Workspace = request.app.state.workspace
    try:
        data = await request.json()
    except ValueError:
        return JSONResponse({"ok": False, "error": "invalid_json"}, status_code=400)
    with workspace.lock:
        workspace.responses.append({"url": str(request.url.path), **(data if isinstance(data, dict) else {})})
    return JSONResponse({"ok": True})


async def responses(request: Request) -> Response:
    workspace: Workspace = request.app.state.workspace
    with workspace.lock:
        return JSONResponse({"responses": list(workspace.responses)})
