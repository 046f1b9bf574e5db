"""POST /slack/interactions: a button clicked in Slack, verified, queued, answered within Slack's 3 s.

    1 cap the body (MAX_BODY_BYTES)
    2 verify X-Slack-Signature (`v0=` HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{raw body}`)
      against every SLACK_SIGNING_SECRET (rotation) with slack_sdk's SignatureVerifier: constant
      time, a timestamp more than 300 s off refused; before anything is parsed
    3 parse the form field `payload`: a `block_actions` payload with one of our action ids
    4 refuse a team other than SLACK_TEAM_ID (when set)
    5 queue `workers.actions.act(click)` once per request (a replayed body within the window is
      answered 200 and queued no second time), at the queue's front; answer 200 with no body

https://docs.slack.dev/authentication/verifying-requests-from-slack/ and
https://docs.slack.dev/reference/interaction-payloads/block_actions-payload. Nothing here calls
CircleCI: the worker authorizes the click, re-reads the workflow and acts (workers/actions.py).
One exception to "no calls on the request path": when Redis is down the click cannot be queued,
and the clicker is told so at once through the payload's `response_url` (an ephemeral message)
rather than left with a button that silently did nothing.

Keys:

    cie:slack:request:<sha256 of the signature>   string  "1", SET NX, 600 s: the request was queued
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import structlog
from redis.exceptions import RedisError
from slack_sdk import signature as slack_signature
from starlette.requests import Request
from starlette.responses import Response

from config.clock import SYSTEM_CLOCK, Clock, utc_now_text
from config.errors import InvalidJSON, PayloadInvalid, RedisUnavailable, SignatureError, SlackTeamRefused
from service.body import read_body
from workers.action_buttons import ACTION_IDS

log = structlog.get_logger("service.slack_interactions")
TIMESTAMP_HEADER = "x-slack-request-timestamp"
SIGNATURE_HEADER = "x-slack-signature"
WINDOW_SECONDS = 300  # Slack's own advice, and slack_sdk's check
REQUEST_PREFIX = "cie:slack:request:"
REQUEST_TTL_SECONDS = 2 * WINDOW_SECONDS
RESPONSE_URL_TIMEOUT_SECONDS = 2.0


class _SlackClock(slack_signature.Clock):
    """slack_sdk's clock, reading ours: its verifier and our window check see one time."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now()


class SlackVerifier:
    """Every configured signing secret's slack_sdk verifier; a request passes when one accepts it."""

    def __init__(self, secrets: list[str], clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.verifiers = [slack_signature.SignatureVerifier(s, _SlackClock(clock)) for s in secrets]

    def verify(self, body: bytes, timestamp: str | None, signature: str | None) -> None:
        """Raises SignatureError naming what is wrong (never the signature's value)."""
        if not signature:
            raise SignatureError(f"missing {SIGNATURE_HEADER} header: is this request from Slack?")
        if not timestamp or not timestamp.strip().isdigit():
            raise SignatureError(f"missing or non-numeric {TIMESTAMP_HEADER} header")
        if abs(self.clock.now() - int(timestamp)) > WINDOW_SECONDS:
            raise SignatureError(
                f"{TIMESTAMP_HEADER} is more than {WINDOW_SECONDS} s from now: a stale or replayed request"
            )
        if not signature.startswith("v0="):
            raise SignatureError(f"expected 'v0=<hex>' in {SIGNATURE_HEADER}")
        try:
            valid = any(v.is_valid(body, timestamp, signature) for v in self.verifiers)
        except UnicodeDecodeError:
            valid = False
        if not valid:
            raise SignatureError(f"{SIGNATURE_HEADER} does not match any SLACK_SIGNING_SECRET")


def sign(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """The headers Slack sends with `body` (the Slack simulator's clicks and the tests use them)."""
    signature = slack_signature.SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: str(signature)}


def parse_click(body: bytes) -> dict[str, Any]:
    """The click a verified body carries: action, button, user, team, channel, message, response_url."""
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    raw = fields.get("payload")
    if not raw:
        raise PayloadInvalid("expected the form field 'payload' (a Slack interaction payload)")
    try:
        payload = orjson.loads(raw[0])
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"the form field 'payload' is not valid JSON ({exc})") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        kind = payload.get("type") if isinstance(payload, dict) else type(payload).__name__
        raise PayloadInvalid(f"expected a block_actions payload, got type {kind!r}: only buttons are handled")
    actions = payload.get("actions")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
    action_id = action.get("action_id")
    if action_id not in ACTION_IDS:
        raise PayloadInvalid(f"unknown action_id {action_id!r} (expected one of {', '.join(ACTION_IDS)})")
    button = action.get("value")
    if not isinstance(button, str) or not button or len(button) > 200:
        raise PayloadInvalid("the button carries no id ('value')")

    def section(name: str) -> dict[str, Any]:
        value = payload.get(name)
        return value if isinstance(value, dict) else {}

    return {
        "action": ACTION_IDS[action_id],
        "button": button,
        "user_id": section("user").get("id"),
        "team_id": section("team").get("id") or section("user").get("team_id"),
        "channel_id": section("channel").get("id"),
        "message_ts": section("container").get("message_ts") or section("message").get("ts"),
        "response_url": payload.get("response_url"),
        "action_ts": action.get("action_ts"),
        # the message as the clicker sees it: the worker replaces its buttons with the outcome
        "message_blocks": section("message").get("blocks"),
        "message_text": section("message").get("text"),
    }


async def receive_interaction(request: Request) -> Response:
    app = request.app.state
    settings = app.settings
    body = await read_body(request, settings.max_body_bytes, settings.web_body_timeout_seconds)
    signature = request.headers.get(SIGNATURE_HEADER)
    try:
        app.slack_verifier.verify(body, request.headers.get(TIMESTAMP_HEADER), signature)
        click = parse_click(body)
        if settings.slack_team_id and click["team_id"] != settings.slack_team_id:
            raise SlackTeamRefused(f"clicks from Slack workspace {click['team_id']!r} are not accepted (SLACK_TEAM_ID)")
    except (SignatureError, PayloadInvalid, InvalidJSON, SlackTeamRefused) as exc:
        log.warning("slack_interaction_refused", error_code=exc.code, reason=exc.message)
        raise
    structlog.contextvars.bind_contextvars(slack_user=click["user_id"], action=click["action"])
    click |= {"request_id": request.state.request_id, "received_at": utc_now_text()}
    request_key = REQUEST_PREFIX + hashlib.sha256(str(signature).encode()).hexdigest()
    try:
        queued = await app.click_queue.put(click, request_key=request_key, ttl=REQUEST_TTL_SECONDS)
    except RedisError as exc:
        log.error("slack_interaction_unqueued", error_type=type(exc).__name__)
        await tell_clicker(click.get("response_url"), "⚠️ circleci-events cannot take this click now (its Redis is "
                           "unavailable): nothing was done. Try again in a minute.")  # fmt: skip
        raise RedisUnavailable("Redis is unavailable; the click was not queued, nothing was done") from None
    log.info("slack_interaction_queued" if queued else "slack_interaction_replayed", button=click["button"])
    return Response(status_code=200)


async def tell_clicker(response_url: Any, text: str) -> None:
    """An ephemeral reply to the clicker through the payload's response_url; failures only logged."""
    if not isinstance(response_url, str) or not response_url.startswith(("https://", "http://")):
        return
    try:
        async with httpx.AsyncClient(timeout=RESPONSE_URL_TIMEOUT_SECONDS, follow_redirects=False) as client:
            await client.post(response_url, json={"response_type": "ephemeral", "replace_original": False,
                                                  "text": text})  # fmt: skip
    except httpx.HTTPError as exc:
        log.warning("slack_response_url_failed", error_type=type(exc).__name__)
