"""The Slack Web API as the `slack_app` handler calls it: slack_sdk's WebClient, errors mapped onto ours.

    Slack's answer                                  error raised
    HTTP 429 (`ratelimited`)                        DeliveryRetryable, retry_after from Retry-After
    HTTP 5xx, `internal_error`, `fatal_error`,      DeliveryRetryable
      `service_unavailable`, `request_timeout`
    timeout, refused, DNS, TLS (no answer)          DeliveryRetryable (status None)
    any other `ok: false`                           DeliveryRejected, with what to do for the ones
                                                    an operator can fix (ADVICE): invalid_auth,
                                                    not_in_channel, channel_not_found, missing_scope…

WebClient's own retries are off (`retry_handlers=[]`): its RateLimitErrorRetryHandler would
sleep out Retry-After inside the send, holding a worker thread and the delivery's lock past
DELIVERY_TIMEOUT_SECONDS, invisible to `events show` and lost if the worker stops, and its
ConnectionErrorRetryHandler would resend a post that may have arrived. Our delivery retries
already wait for Retry-After without holding anything, count each attempt, survive restarts
and end in a dead letter, for every handler alike. The bot token never appears in a message.
"""

from __future__ import annotations

import hashlib
import http.client
import math
import socket
import ssl
from typing import Any
from urllib.error import URLError

import structlog
from redis import Redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from config.errors import DeliveryRejected, DeliveryRetryable, HandlerError
from workers.circleci.transport import parse_retry_after
from workers.handlers import transcript
from workers.handlers.base import EXCERPT_CHARS, redact

log = structlog.get_logger("workers.handlers.slack_app")
LOOKUP_PREFIX = "cie:slack-user:"
LOOKUP_TTL_SECONDS = 24 * 3600
RETRYABLE = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})
# the bot token scope each method needs (https://api.slack.com/methods), for missing_scope's advice
SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "users.lookupByEmail": "users:read.email",
    "conversations.open": "im:write",
    "usergroups.users.list": "usergroups:read",
}
REINSTALL = "then reinstall the app to the workspace and update the token"
ADVICE = {
    "invalid_auth": "the bot token is not valid: check the handler's token (xoxb-…) and that the app is installed",
    "not_authed": "no bot token was sent: set the handler's token (xoxb-…)",
    "account_inactive": "the app's bot user was deactivated: reinstall the app and update the token",
    "token_revoked": "the bot token was revoked: reinstall the app and update the token",
    "token_expired": "the bot token expired: reinstall the app and update the token",
    "not_in_channel": "the app is not a member of {channel}: invite it there (/invite @<your app> in {channel})",
    "channel_not_found": "Slack knows no channel {channel} the app can see: use the channel's id (C…) from its"
    " details, and for a private channel invite the app to it first",
    "is_archived": "{channel} is archived: unarchive it or point the handler at another channel",
    "missing_scope": "the app lacks the scope {needed}: add it under OAuth & Permissions, " + REINSTALL,
    "restricted_action": "the workspace does not let the app post in {channel}: ask a Slack admin",
    "invalid_blocks": "Slack refused the message's blocks: check the handler's template",
    "msg_too_long": "the message is too long for Slack: shorten the handler's template",
}


class SlackApi:
    """One bot token at one Web API URL; every call answers a dict or raises a HandlerError."""

    def __init__(self, *, handler: str, token: str, api_url: str, timeout: float, secrets: list[str]) -> None:
        self.handler = handler
        self.timeout = timeout
        self.secrets = secrets
        base_url = api_url if api_url.endswith("/") else api_url + "/"
        self.web = WebClient(token=token, base_url=base_url, timeout=math.ceil(timeout), retry_handlers=[])

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]] | None, **more: Any) -> dict[str, Any]:
        """chat.postMessage; `more` is thread_ts, reply_broadcast…"""
        args = {k: v for k, v in more.items() if v is not None}
        return self.call("chat.postMessage", channel=channel, text=text, blocks=blocks, **args)

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None) -> dict[str, Any]:
        return self.call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)

    def user_by_email(self, email: str) -> str | None:
        """The user id with this e-mail; None when Slack knows no such user (`users_not_found`)."""
        try:
            answer = self.call("users.lookupByEmail", email=email)
        except DeliveryRejected as exc:
            if exc.details.get("slack_error") == "users_not_found":
                return None
            raise
        user = answer.get("user")
        return str(user["id"]) if isinstance(user, dict) and user.get("id") else None

    def group_members(self, group: str) -> frozenset[str]:
        """The user ids of a Slack user group (usergroups.users.list)."""
        users = self.call("usergroups.users.list", usergroup=group).get("users")
        return frozenset(str(u) for u in users) if isinstance(users, list) else frozenset()

    def call(self, method: str, **args: Any) -> dict[str, Any]:
        """One Web API call (JSON body); its answer, or the mapped error."""
        channel = str(args.get("channel") or "")
        if method.startswith("chat."):  # a message, not a lookup
            transcript.note(method, args, self.secrets)
        try:
            response = self.web.api_call(method, json={k: v for k, v in args.items() if v is not None})
        except SlackApiError as exc:
            raise self._refused(method, channel, exc) from None
        except (OSError, http.client.HTTPException, SlackClientError) as exc:
            what = self._unanswered(exc)
            raise DeliveryRetryable(f"handler {self.handler!r}: {method}: {what}", handler=self.handler) from None
        return dict(response.data) if isinstance(response.data, dict) else {}

    def _refused(self, method: str, channel: str, exc: SlackApiError) -> HandlerError:
        response = exc.response
        status = int(response.status_code)
        data = response.data if isinstance(response.data, dict) else {}
        code = str(data.get("error") or f"HTTP {status}")
        needed = data.get("needed") or SCOPES.get(method, "the method needs")
        advice = ADVICE.get(code, "").format(channel=channel or "the channel", needed=needed)
        said = f"{method}: Slack answered {code}" + (f" ({advice})" if advice else "")
        message = redact(f"handler {self.handler!r}: {said}", self.secrets)
        excerpt = redact(said, self.secrets)[:EXCERPT_CHARS]
        retryable = status in (408, 429) or status >= 500 or code in RETRYABLE
        retry_after = parse_retry_after(_header(response.headers, "retry-after")) if status == 429 else None
        return (DeliveryRetryable if retryable else DeliveryRejected)(
            message,
            handler=self.handler,
            status=status,
            retry_after=retry_after,
            body_excerpt=excerpt,
            details={"slack_error": code},
        )

    def _unanswered(self, exc: Exception) -> str:
        """What went wrong before any answer, without the URL or the token."""
        reason: object = exc.reason if isinstance(exc, URLError) else exc
        if isinstance(reason, TimeoutError | socket.timeout) or "timed out" in str(reason):
            return f"timeout: no answer within {self.timeout:g} s"
        if isinstance(reason, ssl.SSLError):
            return f"TLS failure: {redact(str(reason), self.secrets)[:EXCERPT_CHARS]}"
        if isinstance(reason, socket.gaierror):
            return "DNS: the host name does not resolve"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        return f"could not connect ({type(reason).__name__})"


def _header(headers: Any, name: str) -> str | None:
    """A header from slack_sdk's response headers (a dict of str, or of lists for 429s)."""
    for key, value in dict(headers or {}).items():
        if str(key).lower() == name:
            return str(value[0] if isinstance(value, list) and value else value)
    return None


class SlackUsers:
    """users.lookupByEmail, cached in Redis, misses too, so a break asks Slack once a day per person.

        cie:slack-user:<token digest>:<e-mail digest>   string  the user id, or "" when Slack knows
                                                        no one with that e-mail; TTL 1 day

    Digests (SHA-256): no token and no e-mail address in a key name. A retryable failure is
    raised (the delivery is retried before anything is posted); a refusal other than "no such
    user" (missing_scope: users:read.email, …) is logged with what to do, and the person is not
    mentioned.
    """

    def __init__(self, api: SlackApi, redis: Redis, *, token: str, ttl: int = LOOKUP_TTL_SECONDS) -> None:
        self.api, self.redis, self.ttl = api, redis, ttl
        self.prefix = LOOKUP_PREFIX + hashlib.sha256(token.encode()).hexdigest()[:16] + ":"

    def by_email(self, email: str) -> str | None:
        key = self.prefix + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        cached = self.redis.get(key)
        if cached is not None:
            return (cached.decode() if isinstance(cached, bytes) else str(cached)) or None
        try:
            user = self.api.user_by_email(email)
        except DeliveryRejected as exc:
            log.warning("slack_lookup_refused", handler=self.api.handler, error=exc.body_excerpt)
            return None
        self.redis.set(key, user or "", ex=self.ttl)
        return user
