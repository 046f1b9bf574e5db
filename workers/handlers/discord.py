"""Discord webhook: one embed, and `allowed_mentions` listing exactly whom it may ping.

Nothing pings (`allowed_mentions: {"parse": []}`) but, on a break, the people who broke it
(workers/people.py: the routes file's `people:` with a `discord` id): they are mentioned in
`content` and listed in `allowed_mentions.users`, unless the subscription says `mentions: false`.

The first message of a breakage (workers/threads.py) is posted with `?wait=true`, and its id kept
with the transition state; the fix edits it in place (`PATCH …/messages/{id}`: fixed, by whom,
after how long and how many pipelines) and then posts its own message.

Limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits):
title 256, description 4096, 25 fields, field name 256, field value 1024, footer 2048, and
6000 characters over the whole embed. CircleCI values have markdown backslash-escaped and
`@` followed by a zero-width space.

Each failed job's failing step is a field: its name and exit code, and the tail of its output
as a code block (no markdown inside; `@` followed by a zero-width space).

A `template` replaces the embed `description`; every value it prints is escaped like the rest,
and `mention()` gives `<@id>` (workers/handlers/template.py).

An alert (workers/alert_message.py) is one embed with its title and text; no template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from workers.alert_message import Alert, alert_of, is_alert
from workers.handlers.base import (
    Handler,
    failed_test_lines,
    post_json,
    safe_url,
    step_heading,
    summary_lines,
    tail_text,
)
from workers.handlers.capabilities import Capabilities, Identity
from workers.handlers.view import labelled
from workers.message import COLOUR, FailedJob, Message
from workers.threads import Thread, ThreadStore, breakage_of, thread_key
from workers.timestamps import parse_time

MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_TOTAL = 6000
# a Discord user id (a snowflake) as `people:` names one
IDENTITY = Identity("discord", re.compile(r"\d{15,25}"), "Discord user id (digits: Developer Mode, then Copy User ID)")
_MARKDOWN = re.compile(r"([\\`*_~|>#\-\[\]()<:])")


def escape(text: str) -> str:
    """Neutralise markdown, masked links and mentions in a Discord value."""
    return _MARKDOWN.sub(r"\\\1", text).replace("@", "@\u200b")


def mention(id: str) -> str:
    """`<@id>`; it shows as a mention and, with `allowed_mentions` empty, pings no one."""
    return f"<@{id}>"


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, never ending on a lone escaping backslash."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if (len(cut) - len(cut.rstrip("\\"))) % 2:
        cut = cut[:-1]
    return cut + "…"


def _masked(label: str, url: str | None) -> str:
    good = safe_url(url)
    return f"[{escape(label)}]({good})" if good and ")" not in good else escape(label)


def description(m: Message) -> str:
    """The default description: transition, commit, failed tests."""
    lines = summary_lines(m, escape)
    if m.failed_tests:
        lines += ["**Failed tests**", *failed_test_lines(m, escape)]
    if m.incomplete:
        lines.append(f"⚠️ incomplete: {escape(m.incomplete_reason or 'unknown reason')}")
    return "\n".join(lines)


def embed(m: Message, text: str) -> dict[str, Any]:
    """The embed for a message, within Discord's limits."""
    fields = [("Project", escape(m.project_slug or m.project))]
    if m.ref:
        fields.append(((m.ref_kind or "ref").title(), escape(m.ref)))
    if m.workflow:
        fields.append(("Workflow", _masked(m.workflow.label, m.workflow.url)))
    if m.job:
        fields.append(("Job", _masked(m.job.label, m.job.url)))
    if m.pipeline_number is not None:
        fields.append(("Pipeline", f"#{m.pipeline_number}"))
    if m.duration:
        fields.append(("Duration", m.duration))
    if m.failed_jobs:
        fields.append(("Failed jobs", "\n".join(_masked(j.name, j.url) for j in m.failed_jobs)))
    fields += [(f"Failed step · {escape(j.name)}", step_field(j)) for j in m.failed_jobs if j.step]
    if m.artifacts:
        fields.append(("Artifacts", "\n".join(_masked(a.label, a.url) for a in m.artifacts)))
    out: dict[str, Any] = {
        "title": clip(m.title.replace("@", "@\u200b"), MAX_TITLE),
        "description": clip(text, MAX_DESCRIPTION),
        "color": m.colour,
        "fields": [
            {"name": clip(n, MAX_FIELD_NAME), "value": clip(v, MAX_FIELD_VALUE), "inline": len(v) < 40}
            for n, v in fields
            if v
        ][:MAX_FIELDS],
        "footer": {"text": clip(f"CircleCI · {m.event_type} · {m.event_id}", MAX_FOOTER)},
    }
    if safe_url(m.url):
        out["url"] = m.url
    when = parse_time(m.happened_at)
    if when is not None:
        out["timestamp"] = when.isoformat()
    return _fit(out)


def step_field(job: FailedJob) -> str:
    """The failing step and its log tail as a code block: no markdown inside it, a ``` in the log
    cannot close it, and `@everyone` gets a zero-width space (embeds never ping; this is belt and braces)."""
    heading = step_heading(job, escape, quote="")
    step = job.step
    if step is None or step.log_tail is None:
        return heading
    room = MAX_FIELD_VALUE - len(heading) - 12
    code = tail_text(step, room).replace("```", "`\u200b``").replace("@", "@\u200b")
    if len(code) > room:
        code = "…\n" + code[-room:].split("\n", 1)[-1]
    return f"{heading}\n```\n{code}\n```"


def size(e: dict[str, Any]) -> int:
    """Characters Discord counts towards the 6000 total."""
    fields = sum(len(f["name"]) + len(f["value"]) for f in e["fields"])
    return len(e["title"]) + len(e["description"]) + fields + len(e["footer"]["text"])


def _fit(e: dict[str, Any]) -> dict[str, Any]:
    excess = size(e) - MAX_TOTAL
    if excess > 0:
        e["description"] = clip(e["description"], max(1, len(e["description"]) - excess - 1))
    while size(e) > MAX_TOTAL and e["fields"]:
        e["fields"].pop()
    return e


def alert_embed(alert: Alert) -> dict[str, Any]:
    """The embed of an alert: its title and text, red."""
    footer = {"text": clip(f"circleci-events · {alert.alert_id}", MAX_FOOTER)}
    return {"title": clip(alert.title, MAX_TITLE), "description": clip(escape(alert.text), MAX_DESCRIPTION),
            "color": 0xE01E5A, "fields": [], "footer": footer}  # fmt: skip


def fixed_line(m: Message) -> str:
    """`✅ **Fixed** in [#14](url) by Ada after 3 failed pipelines · 2 h (failing since #11)`."""
    number = f"#{m.pipeline_number}" if m.pipeline_number is not None else "the latest pipeline"
    where = _masked(number, m.url)
    who = f" by {escape(m.commit_author)}" if m.commit_author else ""
    return f"✅ **Fixed** in {where}{who} {m.fix_phrase} (failing since #{m.failing_since_pipeline_number})"


def fixed_version(root: Mapping[str, Any], m: Message) -> dict[str, Any]:
    """The break's message as posted, now saying it was fixed: title, colour and a first line."""
    embeds = [dict(e) for e in root.get("embeds") or [{}]]
    title = f"✅ Fixed: {m.workflow.label if m.workflow else 'workflow'}" + (f" on {m.ref}" if m.ref else "")
    first = embeds[0]
    first["title"] = clip(title.replace("@", "@\u200b"), MAX_TITLE)
    first["color"] = COLOUR["success"]
    first["description"] = clip(fixed_line(m) + "\n\n" + str(first.get("description") or ""), MAX_DESCRIPTION)
    return {**root, "embeds": [_fit(first), *embeds[1:]], "allowed_mentions": {"parse": []}}


def message_url(url: str, message_id: str) -> str:
    """`…/webhooks/{id}/{token}/messages/{message id}`, keeping the webhook URL's query (thread_id)."""
    parts = httpx.URL(url)
    return str(parts.copy_with(path=parts.path.rstrip("/") + f"/messages/{message_id}"))


class DiscordHandler(Handler):
    type = "discord"
    required = ("url",)
    optional: ClassVar[Mapping[str, str | None]] = {"template": None}
    escape = staticmethod(escape)
    mention = staticmethod(mention)
    # a breakage's first message is edited in place when it is fixed (no threads: a new post each time)
    capabilities = Capabilities(identity=IDENTITY, edits=True)

    @staticmethod
    def view(body: Any) -> list[str]:
        """Each embed's title, description and fields."""
        lines = []
        for e in body.get("embeds") or []:
            lines += [labelled("embed title", e.get("title", "")), labelled("description", e.get("description", ""))]
            lines += [labelled(f"  {f['name']}", f["value"]) for f in e.get("fields", [])]
        return lines

    def render(self, event: dict[str, Any]) -> dict[str, Any]:
        if is_alert(event):
            return {"embeds": [alert_embed(alert_of(event))], "allowed_mentions": {"parse": []}}
        m = Message.from_event(event)
        body: dict[str, Any] = {"embeds": [embed(m, self.summary(m, event, description(m)))]}
        mentions = self.mentions(event)
        if mentions:  # only in `content` do mentions ping; allowed_mentions lets exactly these users
            body["content"] = "👋 " + " · ".join(f"{mention(x.id)} ({x.why})" for x in mentions)
        body["allowed_mentions"] = {"parse": [], "users": [x.id for x in mentions]} if mentions else {"parse": []}
        return body

    def send(self, event: dict[str, Any], *, delivery_id: str, http: httpx.Client) -> None:
        """Post the message. The first message of a breakage is posted with `?wait=true` and its id
        kept (workers/threads.py); the fix edits it in place (PATCH) before posting its own."""
        body = self.render(event)
        url, secrets = str(self.options["url"]), self.secrets()
        since, redis = breakage_of(event), self.context.redis
        key = thread_key(self.name, event)
        if since is None or key is None or redis is None:
            post_json(http, url, body, handler=self.name, secrets=secrets)
            return
        threads = ThreadStore(redis, ttl=self.context.state_ttl_seconds)
        thread = threads.get(key)
        thread = thread if thread is not None and thread.since == since else None
        m = Message.from_event(event)
        if thread is None and m.transition != "fixed":  # the breakage's first message here
            waiting = str(httpx.URL(url).copy_merge_params({"wait": "true"}))  # answers the message, with its id
            answer = post_json(http, waiting, body, handler=self.name, secrets=secrets)
            message_id = _json(answer).get("id")
            if message_id:
                record = Thread(since, "", str(message_id), body, m.event_id, m.pipeline_number or since)
                threads.start(key, record)
            return
        if thread is not None and m.transition in ("broken", "first_seen"):
            return  # this breakage's first message is posted: a retry or a duplicate
        if thread is not None and m.transition == "fixed" and not thread.fixed:
            edited = fixed_version(thread.root, m)
            post_json(http, message_url(url, thread.ts), edited, handler=self.name, secrets=secrets, method="PATCH")
            threads.note(key, fixed="1")
        post_json(http, url, body, handler=self.name, secrets=secrets)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
