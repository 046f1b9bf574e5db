"""The state behind the local Slack Web API: one workspace's channels, users, messages and faults.

Every message body is checked the way Slack checks it: `text` or `blocks` required, at most 50
blocks, and each block parsed and validated with slack_sdk's Block Kit models (an unknown
type, a missing field, text past a limit, or a key the model does not know is
`invalid_blocks`). Messages keep every earlier version, so a test can count the edits.

    Workspace.example()          #ci (C0CI, the app is a member), #private (C0PRIVATE, it is
                                 not), users ada@example.com (U0ADA), grace@example.com (U0GRACE),
                                 and the bot token `xoxb-sim-token` with chat:write,
                                 users:read.email and im:write
"""

from __future__ import annotations

import fnmatch
import html
import json
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

MAX_BLOCKS = 50
MAX_TEXT = 40000
SCOPES = ("chat:write", "users:read.email", "im:write", "usergroups:read")
BOT_USER = "U0BOT"
# the scope each method needs (https://api.slack.com/methods)
METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "users.lookupByEmail": "users:read.email",
    "conversations.open": "im:write",
    "usergroups.users.list": "usergroups:read",
}
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)\|([^>]*)>")


class SlackError(Exception):
    """An answer `{"ok": false, "error": code}` (HTTP 200, as Slack answers its errors)."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


@dataclass
class Channel:
    id: str
    name: str
    member: bool = True  # the app is in the channel; when False, posts get not_in_channel
    is_im: bool = False
    user: str | None = None  # the other side of a direct message


@dataclass
class User:
    id: str
    name: str
    email: str


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None
    reply_broadcast: bool = False
    edits: int = 0
    versions: list[dict[str, Any]] = field(default_factory=list)  # earlier {text, blocks}, oldest first
    visible: bool = True  # a reply to a ts that does not exist: Slack says ok and shows it nowhere

    @property
    def mentions(self) -> list[str]:
        """The user ids this message mentions (`<@U…>`), in order, each once."""
        found = _MENTION.findall(self.text) + [m for b in self.blocks or [] for m in _MENTION.findall(str(b))]
        return list(dict.fromkeys(found))


@dataclass
class SlackFault:
    """Answers `times` matching calls (None: all) after letting `after` through.

    `error` is Slack's error code (`ratelimited` is HTTP 429 with `Retry-After`, the others
    HTTP 200 `ok: false`); `status` instead answers that HTTP status with a plain body; a
    `delay` alone answers slowly but normally."""

    method: str = "*"
    error: str | None = None
    status: int | None = None
    retry_after: int = 1
    delay: float = 0.0
    times: int | None = 1
    after: int = 0
    seen: int = 0
    fired: int = 0

    def take(self, method: str) -> bool:
        if not fnmatch.fnmatchcase(method, self.method):
            return False
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


@dataclass
class Workspace:
    channels: dict[str, Channel] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    tokens: dict[str, tuple[str, ...]] = field(default_factory=dict)  # token -> its scopes
    messages: list[Message] = field(default_factory=list)
    faults: list[SlackFault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    groups: dict[str, list[str]] = field(default_factory=dict)  # user group id -> user ids
    responses: list[dict[str, Any]] = field(default_factory=list)  # what was posted to response_urls
    lock: threading.RLock = field(default_factory=threading.RLock)
    _serial: int = 0

    @classmethod
    def example(cls, token: str = "xoxb-sim-token") -> Workspace:
        workspace = cls(tokens={token: SCOPES})
        workspace.add_channel("C0CI", "ci")
        workspace.add_channel("C0PRIVATE", "private", member=False)
        workspace.add_user("U0ADA", "ada", "ada@example.com")
        workspace.add_user("U0GRACE", "grace", "grace@example.com")
        return workspace

    # -- set-up ------------------------------------------------------------------------------

    def add_channel(self, id: str, name: str, *, member: bool = True) -> Channel:
        with self.lock:
            self.channels[id] = channel = Channel(id, name.lstrip("#"), member)
            return channel

    def add_user(self, id: str, name: str, email: str) -> User:
        with self.lock:
            self.users[id] = user = User(id, name, email)
            return user

    def add_group(self, id: str, users: list[str]) -> None:
        with self.lock:
            self.groups[id] = list(users)

    def add_fault(self, **fields: Any) -> SlackFault:
        fault = SlackFault(**fields)
        with self.lock:
            self.faults.append(fault)
        return fault

    def reset(self) -> None:
        """Forget messages, calls and faults; channels, users and tokens stay."""
        with self.lock:
            self.messages.clear()
            self.faults.clear()
            self.calls.clear()

    def take_fault(self, method: str) -> SlackFault | None:
        with self.lock:
            self.calls[method] += 1
            return next((f for f in self.faults if f.take(method)), None)

    # -- the Web API methods ---------------------------------------------------------------

    def authorise(self, token: str | None, method: str) -> None:
        if not token:
            raise SlackError("not_authed")
        scopes = self.tokens.get(token)
        if scopes is None:
            raise SlackError("invalid_auth")
        needed = METHOD_SCOPES.get(method)
        if needed and needed not in scopes:
            raise SlackError("missing_scope", needed=needed, provided=",".join(scopes))

    def post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._postable(args.get("channel"))
        text, blocks = _content(args)
        thread_ts = args.get("thread_ts")
        if thread_ts is not None and not re.fullmatch(r"\d+\.\d+", str(thread_ts)):
            raise SlackError("invalid_thread_ts")
        with self.lock:
            root = self.find(channel.id, str(thread_ts)) if thread_ts else None
            self._serial += 1
            message = Message(
                channel=channel.id,
                ts=f"{int(time.time())}.{self._serial:06d}",
                text=text,
                blocks=blocks,
                thread_ts=str(thread_ts) if thread_ts else None,
                reply_broadcast=str(args.get("reply_broadcast", "")).lower() in ("true", "1"),
                visible=not thread_ts or (root is not None and root.thread_ts is None),
            )
            self.messages.append(message)
        return {"channel": channel.id, "ts": message.ts, "message": _as_slack(message)}

    def update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        if channel_id not in self.channels:
            raise SlackError("channel_not_found")
        text, blocks = _content(args)
        with self.lock:
            message = self.find(channel_id, ts)
            if message is None:
                raise SlackError("message_not_found")
            message.versions.append({"text": message.text, "blocks": message.blocks})
            message.text, message.blocks, message.edits = text, blocks, message.edits + 1
        return {"channel": channel_id, "ts": ts, "text": text, "message": _as_slack(message)}

    def group_members(self, args: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            users = self.groups.get(str(args.get("usergroup") or ""))
        if users is None:
            raise SlackError("no_such_subteam")
        return {"users": list(users)}

    def permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel") or ""), str(args.get("message_ts") or "")
        if self.find(channel, ts) is None:
            raise SlackError("message_not_found")
        return {
            "channel": channel,
            "permalink": f"https://simulated.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def lookup_by_email(self, args: dict[str, Any]) -> dict[str, Any]:
        email = str(args.get("email") or "").strip().lower()
        if not email:
            raise SlackError("invalid_arguments")
        user = next((u for u in self.users.values() if u.email.lower() == email), None)
        if user is None:
            raise SlackError("users_not_found")
        return {"user": {"id": user.id, "name": user.name, "profile": {"email": user.email}}}

    def open_conversation(self, args: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if len(users) != 1:
            raise SlackError("invalid_arguments" if not users else "not_implemented")
        if users[0] not in self.users:
            raise SlackError("user_not_found")
        with self.lock:
            im = next((c for c in self.channels.values() if c.is_im and c.user == users[0]), None)
            if im is None:
                im = Channel(f"D{users[0][1:]}", users[0], True, is_im=True, user=users[0])
                self.channels[im.id] = im
        return {"channel": {"id": im.id}}

    # -- what a test or a person looks at ----------------------------------------------------

    def find(self, channel: str, ts: str) -> Message | None:
        with self.lock:
            return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    def channel_messages(self, channel: str) -> list[Message]:
        """The channel's top-level messages (no replies), oldest first; `channel` an id or name."""
        found = self._channel(channel)
        with self.lock:
            return [m for m in self.messages if found and m.channel == found.id and m.thread_ts is None]

    def replies(self, message: Message) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m.channel == message.channel and m.thread_ts == message.ts]

    def view(self, channel: str) -> str:
        """The channel as a person sees it: each message, `(edited)`, and its thread indented."""
        found = self._channel(channel)
        if found is None:
            return f"(no channel {channel})"
        label = f"@{self.users[found.user].name}" if found.user in self.users else f"#{found.name}"
        lines = [f"{label} ({found.id})"]
        for message in self.channel_messages(found.id):
            lines += _show(message, self, "  ")
            for reply in self.replies(message):
                lines += _show(reply, self, "      │ ")
        return "\n".join(lines)

    def to_dict(self, channel: str | None = None) -> dict[str, Any]:
        with self.lock:
            found = self._channel(channel) if channel else None
            messages = [m for m in self.messages if channel is None or (found and m.channel == found.id)]
            return {"messages": [asdict(m) | {"mentions": m.mentions} for m in messages]}

    # -- helpers ---------------------------------------------------------------------------

    def _channel(self, given: str | None) -> Channel | None:
        value = str(given or "").strip()
        with self.lock:
            if value in self.channels:
                return self.channels[value]
            if value in self.users:  # a user id: the app's direct message with that user
                return next((c for c in self.channels.values() if c.is_im and c.user == value), None)
            return next((c for c in self.channels.values() if c.name == value.lstrip("#") and not c.is_im), None)

    def _postable(self, given: Any) -> Channel:
        channel = self._channel(given)
        if channel is None and str(given or "") in self.users:
            channel = self.channels[self.open_conversation({"users": given})["channel"]["id"]]
        if channel is None:
            raise SlackError("channel_not_found")
        if not channel.member:
            raise SlackError("not_in_channel")
        return channel


def validate_blocks(blocks: Any) -> list[str]:
    """What is wrong with a `blocks` value by slack_sdk's Block Kit models; empty when nothing."""
    if not isinstance(blocks, list):
        return ["blocks must be a list"]
    if len(blocks) > MAX_BLOCKS:
        return [f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"]
    problems = []
    for i, data in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}]"
        try:
            block = Block.parse(data) if isinstance(data, dict) else None
            if block is None:
                problems.append(f"unknown or missing block type {where}")
                continue
            block.validate_json()
        except (SlackObjectFormationError, KeyError, TypeError, ValueError) as exc:
            problems.append(f"{exc} {where}")
            continue
        if block.to_dict() != data:
            problems.append(f"fields the Block Kit model does not know, or malformed ones {where}")
    return problems


def _content(args: dict[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
    text, blocks = args.get("text"), args.get("blocks")
    if isinstance(blocks, str):  # form-encoded calls send blocks as a JSON string
        try:
            blocks = json.loads(blocks)
        except ValueError:
            raise SlackError("invalid_blocks_format") from None
    if not text and not blocks:
        raise SlackError("no_text")
    if blocks is not None and (problems := validate_blocks(blocks)):
        raise SlackError("invalid_blocks", errors=problems, response_metadata={"messages": problems})
    text = "" if text is None else str(text)
    if len(text) > MAX_TEXT:
        raise SlackError("msg_too_long")
    return text, blocks


def _as_slack(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "message", "user": BOT_USER, "text": m.text, "ts": m.ts}
    if m.blocks is not None:
        out["blocks"] = m.blocks
    if m.thread_ts:
        out["thread_ts"] = m.thread_ts
    return out


def readable(text: str, workspace: Workspace) -> str:
    """mrkdwn as it shows: `<@U…>` as @name, links as their label, dates as their fallback, entities decoded."""

    def user(match: re.Match[str]) -> str:
        found = workspace.users.get(match[1])
        return "@" + (found.name if found else match[1])

    text = _MENTION.sub(user, text)
    text = re.sub(r"<!(here|channel|everyone)>", r"@\1", text)
    text = re.sub(r"<!date\^\d+\^[^|>]*\|([^>]*)>", r"\1", text)  # a date: its fallback text
    return html.unescape(_LINK.sub(r"\2", text))


def _show(m: Message, workspace: Workspace, indent: str) -> list[str]:
    clock = time.strftime("%H:%M:%S", time.localtime(int(m.ts.split(".")[0])))
    edited = f" (edited {m.edits} time{'s' if m.edits > 1 else ''})" if m.edits else ""
    lines = [f"{indent}{clock} circleci-events{edited}"]
    parts = []
    for block in m.blocks or []:
        if isinstance(block.get("text"), dict):
            parts.append(str(block["text"].get("text", "")))
        for row in ("fields", "elements"):  # a block's fields or context on one line
            items = [i["text"] for i in block.get(row, []) if isinstance(i, dict) and isinstance(i.get("text"), str)]
            if items:
                parts.append(" · ".join(item.replace("\n", ": ", 1) for item in items))
    for part in parts or [m.text]:
        lines += [f"{indent}  {line}" for line in readable(part, workspace).splitlines()]
    return lines
