"""Slack through a Slack app's bot token: one thread per breakage, its root message kept up to date.

A breakage is a (project, branch or tag, workflow) from the pipeline that broke it to the one
that fixed it (workers/transition.py's streak); its thread lives in workers/threads.py.

    transition                     what is sent
    broken (or a failing           the full failure message as the thread's root (chat.postMessage),
      first_seen)                  mentioning the commit's authors and the pipeline's trigger
                                   actor (workers/people.py: `people:`, else users.lookupByEmail,
                                   cached); with `notify: committer`, a direct message to the
                                   commit's author linking the thread (conversations.open),
                                   when `people:` names them (`notify: committer_by_email`
                                   also sends it to an author only the look-up found)
    still_failing                  a short reply in the thread ("still failing · pipeline #13 ·
                                   3 failed tests"), and the root updated with the streak
                                   ("failing since #11 · 3 pipelines · 2 h") (chat.update);
                                   without a known thread, a new root showing the streak
    fixed                          the root updated to show the fix (who, after how long and how
                                   many pipelines), and a reply in the thread; without a known
                                   thread, the message as a new top-level post
    a job event, with              a reply in the thread of its workflow's breakage, while one is
      `job_replies: true`          open (not yet fixed); else a top-level post
    approval-pending               the approval notice as a top-level post, with Approve and
                                   Cancel workflow buttons
    anything else, job events,     the message as a top-level post, as the `slack` handler's
      alerts

Buttons (workers/action_buttons.py) appear only for actions the routes file's `actions:` grants
someone on this event: Approve and Cancel workflow on an approval notice, Rerun failed jobs on a
breakage's root (moved to the newest failed pipeline's event when the root is updated, gone
once fixed). A button carries the event id only; the worker looks up what it acts on.

Each step is recorded in Redis the moment Slack answers (the root, each reply), so a retried
delivery skips what was posted; chat.update is the same call each time. The root shows the
newest pipeline's state only: a late retry of an older event replies but does not update it.
One delivery at a time changes a thread (its lock); another waits for a retry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import structlog

from config.errors import ConfigurationError, DeliveryRejected, DeliveryRetryable
from workers.action_buttons import APPROVE, CANCEL, RERUN, actions_block, with_actions
from workers.alert_message import alert_of, is_alert
from workers.handlers import slack
from workers.handlers.base import Handler, HandlerContext
from workers.handlers.capabilities import Capabilities
from workers.handlers.slack import MAX_HEADER, MAX_SECTION, alert_message, clip, message_body, summary, with_mentions
from workers.handlers.slack_api import SlackApi, SlackUsers
from workers.handlers.slack_thread import (
    context,
    dm_text,
    fixed_line,
    job_reply_text,
    reply_text,
    section,
    streak_line,
)
from workers.jobs import APPROVAL_PENDING, JOB_COMPLETED
from workers.message import Message
from workers.people import Mention, is_break
from workers.threads import Thread, ThreadStore, breakage_of, thread_key

log = structlog.get_logger("workers.handlers.slack_app")
DEFAULT_API_URL = "https://slack.com/api/"
ROOT = "root"
DM = "dm"


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
    capabilities = Capabilities(identity=slack.IDENTITY, threads=True, edits=True, buttons=True, direct_messages=True)
    required = ("token", "channel")
    optional: ClassVar[Mapping[str, str | None]] = {"api_url": DEFAULT_API_URL, "template": None}
    placeholders: ClassVar[Mapping[str, str]] = {"token": "xoxb-0000000000-placeholder"}
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
        self.users = SlackUsers(self.api, redis, token=str(options["token"])) if redis is not None else None

    def render(self, event: dict[str, Any], thread: Thread | None = None) -> dict[str, Any]:
        """The Web API calls `send` would make, given the breakage's thread as it stands (None: none
        yet); mentions through `people:` only (no look-ups), a direct message's channel unknown."""
        mentions = self.mentions(event)
        calls = self.plan(event, thread, mentions)
        if self._dm_due(event, thread) and (committer := self._committer(event, mentions)):
            ts = thread.ts if thread is not None else "<the root's ts>"
            calls += self._dm_calls(
                event, committer, "<the direct message>", thread.channel if thread else self.channel, ts
            )
        return {"calls": [call.to_dict() for call in calls]}

    def render_in_thread(self, event: dict[str, Any], thread_ts: str) -> dict[str, Any]:
        """What `render` shows when the event's breakage has its thread rooted at `thread_ts`: the
        root as this event would post it stands in for the breakage's first."""
        # without a streak (a preview's --transition names none) the breakage begins with this pipeline
        transition = dict(event.get("transition") or {})
        if transition.get("failing_since_pipeline_number") is None:
            transition["failing_since_pipeline_number"] = (event.get("pipeline") or {}).get("number")
        event = {**event, "transition": transition}
        [root, *_] = self.render(event)["calls"] or [{"text": "", "blocks": []}]
        root_message = {"text": root.get("text"), "blocks": root.get("blocks")}
        return self.render(event, Thread(breakage_of(event) or 0, self.channel, thread_ts, root_message))

    def group_members(self, group: str) -> frozenset[str]:
        """A Slack user group's user ids (usergroups.users.list), for `actions:` grants naming it."""
        return self.api.group_members(group)

    def update_message(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        """Show a click's outcome on the message that carried the buttons (chat.update)."""
        self.api.update(channel, ts, text, blocks)

    def plan(self, event: Mapping[str, Any], thread: Thread | None, mentions: Sequence[Mention] = ()) -> list[Call]:
        """The calls for an event, given its breakage's thread (or None) and, for a break's root,
        whom to mention; `thread` of another breakage is ignored. A direct message is not planned."""
        if is_alert(event):  # the notifier's own failures (workers/alerts.py): a post of their own
            return [Call("chat.postMessage", {"channel": self.channel, **alert_message(alert_of(event))})]
        m = Message.from_event(event)
        since = breakage_of(event)
        if since is None and thread is not None and self._job_reply(event) and not thread.fixed:
            return [self._reply(m, thread, job_reply_text(m))] if f"reply:{m.event_id}" not in thread.notes else []
        if since is None:
            return [self._post_message(event, m, record=None)]
        if thread is not None and thread.since != since:
            thread = None
        kind = m.transition
        if thread is None:
            if kind == "fixed":
                return [self._post_message(event, m, record=None)]
            return [self._post_message(event, m, record=ROOT, state=streak_line(m), mentions=mentions)]
        if kind not in ("still_failing", "fixed"):
            return []  # the root of this breakage is posted: this is a retry or a duplicate
        number = m.pipeline_number or 0
        update = self._update_root(event, m, thread) if number >= thread.latest and not thread.fixed else None
        reply = self._reply(m, thread, reply_text(m)) if f"reply:{m.event_id}" not in thread.notes else None
        # still failing: tell the thread, then the root; fixed: show the fix on the root first
        steps = [reply, update] if kind == "still_failing" else [update, reply]
        return [call for call in steps if call is not None]

    def send(self, event: dict[str, Any], *, delivery_id: str, http: httpx.Client) -> None:
        """Make the planned calls, recording each in the thread as Slack answers it."""
        threaded = breakage_of(event) is not None or self._job_reply(event)
        key = thread_key(self.name, event) if threaded else None
        if key is None or self.threads is None:  # no thread to keep (or no Redis to keep it in)
            for call in self.plan(event, None):
                self.api.call(call.method, **call.args)
            return
        lock = self.threads.lock(key, delivery_id)
        # held for one call at a time and renewed before each
        hold_ms = int((self.context.timeout_seconds * 4 + 5) * 1000)
        if not lock.acquire(hold_ms):
            # its holder is usually done within a second (the lock's hold is the worst case): the
            # delivery backoff decides when to look again
            raise DeliveryRetryable(
                f"handler {self.name!r}: another delivery is changing this breakage's thread; retrying",
                handler=self.name,
                retry_after=1.0,
                body_excerpt="thread busy",
            )

        def api_call(method: str, **args: Any) -> dict[str, Any]:
            if not lock.extend(hold_ms):
                raise DeliveryRetryable(f"handler {self.name!r}: lost this thread's lock; retrying", handler=self.name)
            return self.api.call(method, **args)

        try:
            thread = self.threads.get(key)
            if thread is not None and breakage_of(event) not in (None, thread.since):
                thread = None
            dm_due = self._dm_due(event, thread)
            wanted = is_break(event) and (thread is None or dm_due)
            lookup = self.users.by_email if self.users is not None else None
            mentions = self.mentions(event, lookup) if wanted else []
            for step in self.plan(event, thread, mentions):
                try:
                    answer = api_call(step.method, **step.args)
                except DeliveryRejected as exc:
                    if step.method != "chat.update" or exc.details.get("slack_error") != "message_not_found":
                        raise
                    # someone deleted the root: Slack keeps its thread, so replies still show
                    log.warning("slack_root_missing", handler=self.name, channel=step.args["channel"])
                    answer = {}
                self._record(key, event, step, answer)
            if dm_due and (committer := self._committer(event, mentions)):
                thread = self.threads.get(key)
                assert thread is not None
                self._direct_message(key, event, committer, thread, api_call)
        finally:
            lock.release()

    def _job_reply(self, event: Mapping[str, Any]) -> bool:
        """A job event that a subscription sends as a reply in its breakage's thread (`job_replies: true`)."""
        routes = self.context.routes
        return event.get("event_type") == JOB_COMPLETED and routes is not None and routes.job_replies(event, self.name)

    def _reply(self, m: Message, thread: Thread, text: str) -> Call:
        args = {"channel": thread.channel, "thread_ts": thread.ts, "text": text, "blocks": [section(text)]}
        return Call("chat.postMessage", args, record=f"reply:{m.event_id}")

    def _dm_due(self, event: Mapping[str, Any], thread: Thread | None) -> bool:
        """`notify: committer` on a break whose direct message has not been sent."""
        routes = self.context.routes
        wanted = routes is not None and bool({"committer", "committer_by_email"} & routes.notifies(event, self.name))
        return wanted and is_break(event) and (thread is None or DM not in thread.notes)

    def _committer(self, event: Mapping[str, Any], mentions: Sequence[Mention]) -> Mention | None:
        """Who a direct message goes to: the first author of the breaking commit that `people:`
        names; one only the commit's e-mail found, with `notify: committer_by_email` alone."""
        routes = self.context.routes
        any_author = routes is not None and "committer_by_email" in routes.notifies(event, self.name)
        first = next((m for m in mentions if m.role == "commit"), None)
        return first if first is not None and (first.listed or any_author) else None

    def _direct_message(
        self,
        key: str,
        event: Mapping[str, Any],
        committer: Mention,
        thread: Thread,
        call: Callable[..., dict[str, Any]],
    ) -> None:
        """conversations.open with the commit's author, and the message linking the thread."""
        assert self.threads is not None
        permalink = call("chat.getPermalink", channel=thread.channel, message_ts=thread.ts).get("permalink")
        opened, post = self._dm_calls(event, committer, "", thread.channel, thread.ts, permalink)
        channel = str(call(opened.method, **opened.args)["channel"]["id"])
        answer = call(post.method, **{**post.args, "channel": channel})
        self.threads.note(key, **{DM: str(answer.get("ts") or "")})

    def _dm_calls(
        self,
        event: Mapping[str, Any],
        committer: Mention,
        dm_channel: str,
        channel: str,
        ts: str,
        permalink: str | None = None,
    ) -> list[Call]:
        text = dm_text(Message.from_event(event), channel, permalink)
        return [
            Call("conversations.open", {"users": committer.id}),
            Call("chat.postMessage", {"channel": dm_channel, "text": text, "blocks": [section(text)]}, record=DM),
        ]

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
        self,
        event: Mapping[str, Any],
        m: Message,
        *,
        record: str | None,
        state: str | None = None,
        mentions: Sequence[Mention] = (),
    ) -> Call:
        """The full message (the `slack` handler's), with the streak or the mentions under the header."""
        body = message_body(m, self.summary(m, event, summary(m)), templated=self.template is not None)
        if state:
            body["blocks"].insert(1, context(state))
        body = with_mentions(body, mentions)
        buttons = self._buttons(event, m, root=record == ROOT)
        if buttons is not None:
            body["blocks"] = with_actions(body["blocks"], buttons)
        return Call("chat.postMessage", {"channel": self.channel, **body}, record)

    def _buttons(self, event: Mapping[str, Any], m: Message, *, root: bool) -> dict[str, Any] | None:
        """The actions block for the event (None: no buttons): only actions `actions:` grants here."""
        routes = self.context.routes
        if routes is None:
            return None
        if event.get("event_type") == APPROVAL_PENDING:
            offered = [APPROVE, CANCEL]
        elif root and m.transition in ("broken", "first_seen", "still_failing"):
            offered = [RERUN]
        else:
            return None
        granted = [a for a in offered if any(g.covers(event) for g in routes.permissions.grants.get(a, ()))]
        if not granted:
            return None
        workflow = m.workflow.label if m.workflow else ""
        return actions_block(granted, m.event_id, job=m.job.label if m.job else "", workflow=workflow)

    def _update_root(self, event: Mapping[str, Any], m: Message, thread: Thread) -> Call:
        """The root as first posted, with the breakage's state: the streak, or the fix."""
        original = list(thread.root.get("blocks") or [])
        notes: dict[str, str | int] = {"latest": m.pipeline_number or thread.latest}
        if m.transition == "fixed":
            header = f"✅ Fixed: {m.workflow.label if m.workflow else 'workflow'}"
            header += f" on {m.ref}" if m.ref else ""
            top = [
                {"type": "header", "text": {"type": "plain_text", "text": clip(header, MAX_HEADER), "emoji": True}},
                section(fixed_line(m)),
            ]
            blocks = with_actions(top + original[1:], None)  # fixed: nothing to rerun
            text = clip(f"{header} — {thread.root.get('text', '')}", MAX_SECTION)
            notes["fixed"] = "1"
        else:
            blocks = [*original[:1], context(streak_line(m) or ""), *original[1:]]
            blocks = with_actions(blocks, self._buttons(event, m, root=True))  # rerun the newest failure
            text = str(thread.root.get("text") or m.title)
        args = {"channel": thread.channel, "ts": thread.ts, "text": text, "blocks": blocks}
        return Call("chat.update", args, notes=notes)
