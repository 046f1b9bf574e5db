"""Slack through a Slack app's bot token: one thread per breakage, its root message kept up to date.

A breakage is a (project, branch or tag, workflow) from the pipeline that broke it to the one
that fixed it (workers/transition.py's streak); its thread lives in workers/threads.py.

    transition                     what is sent
    broken (or a failing           the full failure message as the thread's root (chat.postMessage)
      first_seen)
    still_failing                  a short reply in the thread ("still failing · pipeline #13 ·
                                   3 failed tests"), and the root updated with the streak
                                   ("failing since #11 · 3 pipelines · 2 h") (chat.update);
                                   without a known thread, a new root showing the streak
    fixed                          the root updated to show the fix (who, after how long and how
                                   many pipelines), and a reply in the thread; without a known
                                   thread, the message as a new top-level post
    anything else, job events      the message as a top-level post, as the `slack` handler's

Each step is recorded in Redis the moment Slack answers (the root, each reply), so a retried
delivery skips what was posted; chat.update is the same call each time. The root shows the
newest pipeline's state only: a late retry of an older event replies but does not update it.
One delivery at a time changes a thread (its lock); another waits for a retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from config.errors import ConfigurationError, DeliveryRetryable
from workers.handlers import slack
from workers.handlers.base import Handler, HandlerContext
from workers.handlers.slack import MAX_HEADER, MAX_SECTION, clip, escape, link, message_body, summary
from workers.handlers.slack_api import SlackApi
from workers.jobs import WORKFLOW_COMPLETED
from workers.message import Message
from workers.threads import Thread, ThreadStore, thread_key
from workers.timestamps import duration_seconds
from workers.transition import is_failure

DEFAULT_API_URL = "https://slack.com/api/"
ROOT = "root"


@dataclass(frozen=True)
class Call:
    """One Web API call: the method, its arguments, and what to record in the thread once Slack
    answers (`root`, a `reply:<event id>` note, or nothing)."""

    method: str
    args: dict[str, Any]
    record: str | None = None
    notes: dict[str, str | int] = field(default_factory=dict)  # noted in the thread after the call

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **self.args}


class SlackAppHandler(Handler):
    type = "slack_app"
    required = ("token", "channel")
    optional: ClassVar[Mapping[str, str | None]] = {"api_url": DEFAULT_API_URL, "template": None}
    escape = staticmethod(slack.escape)
    mention = staticmethod(slack.mention)

    def __init__(self, name: str, options: Mapping[str, str | None], context: HandlerContext | None = None) -> None:
        super().__init__(name, options, context)
        api_url = str(options.get("api_url") or DEFAULT_API_URL)
        if not api_url.startswith(("https://", "http://")):
            raise ConfigurationError(f"handler {name!r}, key 'api_url': expected an http:// or https:// URL")
        if not str(options["token"]).startswith("xox"):
            # never the value: it is a secret
            raise ConfigurationError(f"handler {name!r}, key 'token': expected a Slack bot token (xoxb-…)")
        self.channel = str(options["channel"])
        self.api = SlackApi(
            handler=name,
            token=str(options["token"]),
            api_url=api_url,
            timeout=self.context.timeout_seconds,
            secrets=self.secrets(),
        )
        redis = self.context.redis
        self.threads = ThreadStore(redis, ttl=self.context.state_ttl_seconds) if redis is not None else None

    def render(self, event: dict[str, Any], thread: Thread | None = None) -> dict[str, Any]:
        """The Web API calls `send` would make, given the breakage's thread as it stands (None: none yet)."""
        return {"calls": [call.to_dict() for call in self.plan(event, thread)]}

    def plan(self, event: Mapping[str, Any], thread: Thread | None) -> list[Call]:
        """The calls for an event, given its breakage's thread (or None); `thread` of another
        breakage is ignored."""
        m = Message.from_event(event)
        since = breakage_of(event)
        if since is None:
            return [self._post_message(event, m, record=None)]
        if thread is not None and thread.since != since:
            thread = None
        kind = m.transition
        if thread is None:
            if kind == "fixed":
                return [self._post_message(event, m, record=None)]
            return [self._post_message(event, m, record=ROOT, state=streak_line(m, event))]
        if kind not in ("still_failing", "fixed"):
            return []  # the root of this breakage is posted: this is a retry or a duplicate
        number = m.pipeline_number or 0
        update = self._update_root(event, m, thread) if number >= thread.latest and not thread.fixed else None
        reply = None
        if f"reply:{m.event_id}" not in thread.notes:
            text = reply_text(m, event)
            args = {"channel": thread.channel, "thread_ts": thread.ts, "text": text, "blocks": [_section(text)]}
            reply = Call("chat.postMessage", args, record=f"reply:{m.event_id}")
        # still failing: tell the thread, then the root; fixed: show the fix on the root first
        steps = [reply, update] if kind == "still_failing" else [update, reply]
        return [call for call in steps if call is not None]

    def send(self, event: dict[str, Any], *, delivery_id: str, http: httpx.Client) -> None:
        """Make the planned calls, recording each in the thread as Slack answers it."""
        key = thread_key(self.name, event) if breakage_of(event) is not None else None
        if key is None or self.threads is None:  # no thread to keep (or no Redis to keep it in)
            for call in self.plan(event, None):
                self.api.call(call.method, **call.args)
            return
        lock = self.threads.lock(key)
        token = lock.acquire(int((self.context.timeout_seconds * 10 + 5) * 1000))
        if token is None:
            wait = lock.remaining_seconds() + 1.0
            raise DeliveryRetryable(
                f"handler {self.name!r}: another delivery is changing this breakage's thread; retrying",
                handler=self.name,
                retry_after=min(wait, 30.0),
                body_excerpt="thread busy",
            )
        try:
            thread = self.threads.get(key)
            for call in self.plan(event, thread):
                answer = self.api.call(call.method, **call.args)
                self._record(key, event, call, answer)
        finally:
            lock.release(token)

    def _record(self, key: str, event: Mapping[str, Any], call: Call, answer: Mapping[str, Any]) -> None:
        assert self.threads is not None
        if call.record == ROOT:
            since = breakage_of(event)
            assert since is not None
            m = Message.from_event(event)
            root = {"text": call.args["text"], "blocks": call.args.get("blocks") or []}
            thread = Thread(
                since=since,
                channel=str(answer.get("channel") or call.args["channel"]),
                ts=str(answer["ts"]),
                root=root,
                event_id=m.event_id,
                latest=m.pipeline_number or since,
            )
            self.threads.start(key, thread)
        elif call.record is not None:
            self.threads.note(key, **{call.record: str(answer.get("ts") or "")}, **call.notes)
        elif call.notes:
            self.threads.note(key, **call.notes)

    def _post_message(
        self, event: Mapping[str, Any], m: Message, *, record: str | None, state: str | None = None
    ) -> Call:
        """The full message (the `slack` handler's), with the streak under the header when given."""
        body = message_body(m, self.summary(m, event, summary(m)), templated=self.template is not None)
        blocks = list(body["blocks"])
        if state:
            blocks.insert(1, _context(state))
        return Call("chat.postMessage", {"channel": self.channel, "text": body["text"], "blocks": blocks}, record)

    def _update_root(self, event: Mapping[str, Any], m: Message, thread: Thread) -> Call:
        """The root as first posted, with the breakage's state: the streak, or the fix."""
        original = list(thread.root.get("blocks") or [])
        notes: dict[str, str | int] = {"latest": m.pipeline_number or thread.latest}
        if m.transition == "fixed":
            header = f"✅ Fixed: {m.workflow.label if m.workflow else 'workflow'}"
            header += f" on {m.ref}" if m.ref else ""
            top = [
                {"type": "header", "text": {"type": "plain_text", "text": clip(header, MAX_HEADER), "emoji": True}},
                _section(fixed_line(m, event)),
            ]
            blocks = top + original[1:]
            text = clip(f"{header} — {thread.root.get('text', '')}", MAX_SECTION)
            notes["fixed"] = "1"
        else:
            blocks = [*original[:1], _context(streak_line(m, event) or ""), *original[1:]]
            text = str(thread.root.get("text") or m.title)
        args = {"channel": thread.channel, "ts": thread.ts, "text": text, "blocks": blocks}
        return Call("chat.update", args, notes=notes)


def breakage_of(event: Mapping[str, Any]) -> int | None:
    """The pipeline number that broke the event's ref, when the event is part of a breakage
    (a failing workflow, or the fix); None otherwise."""
    transition = event.get("transition")
    if event.get("event_type") != WORKFLOW_COMPLETED or not isinstance(transition, Mapping):
        return None
    kind, since = transition.get("kind"), transition.get("failing_since_pipeline_number")
    failing = kind in ("broken", "still_failing") or (kind == "first_seen" and is_failure(str(event.get("status"))))
    return since if isinstance(since, int) and (failing or kind == "fixed") else None


def elapsed(seconds: float | None) -> str | None:
    """`45 s`, `12 min`, `2 h 5 min`, `3 d 4 h`."""
    if seconds is None:
        return None
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h" + (f" {s % 3600 // 60} min" if s % 3600 >= 60 else "")
    return f"{s // 86400} d" + (f" {s % 86400 // 3600} h" if s % 86400 >= 3600 else "")


def _streak(m: Message, event: Mapping[str, Any]) -> tuple[Any, int, str | None]:
    transition = event.get("transition") or {}
    count = transition.get("failed_pipelines") or 1
    took = elapsed(duration_seconds(transition.get("failing_since"), event.get("happened_at")))
    return transition.get("failing_since_pipeline_number"), int(count), took


def streak_line(m: Message, event: Mapping[str, Any]) -> str | None:
    """`🔴 failing since #11 · 3 pipelines · 2 h · latest #13` (mrkdwn); None for a first failure."""
    since, count, took = _streak(m, event)
    if count < 2:
        return None
    parts = [f"🔴 *failing since #{since}*", f"{count} pipelines", took]
    latest = link(f"#{m.pipeline_number}", m.url) if m.pipeline_number is not None else None
    return " · ".join(p for p in [*parts, f"latest {latest}" if latest else None] if p)


def fixed_line(m: Message, event: Mapping[str, Any]) -> str:
    """`✅ *fixed* in #14 by Ada after 3 failed pipelines · 2 h (failing since #11)` (mrkdwn)."""
    since, count, took = _streak(m, event)
    where = link(f"#{m.pipeline_number}", m.url) if m.pipeline_number is not None else "the latest pipeline"
    who = f" by {escape(m.commit_author)}" if m.commit_author else ""
    after = f" after {count} failed pipeline{'s' if count != 1 else ''}" + (f" · {took}" if took else "")
    return f"✅ *fixed* in {where}{who}{after} (failing since #{since})"


def reply_text(m: Message, event: Mapping[str, Any]) -> str:
    """The short reply of a thread: still failing with the pipeline and its failures, or the fix."""
    if m.transition == "fixed":
        return fixed_line(m, event)
    pipeline = link(f"pipeline #{m.pipeline_number}", m.url) if m.pipeline_number is not None else None
    failed_tests = len(m.failed_tests) + m.more_failed_tests
    failures = (
        f"{failed_tests} failed test{'s' if failed_tests != 1 else ''}"
        if failed_tests
        else ("failed: " + ", ".join(escape(j.name) for j in m.failed_jobs) if m.failed_jobs else None)
    )
    line = " · ".join(p for p in (f"{m.emoji} still failing", pipeline, failures) if p)
    if m.commit_subject:
        line += "\n" + escape(m.commit_subject) + (f" — {escape(m.commit_author)}" if m.commit_author else "")
    return line


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, MAX_SECTION)}]}
