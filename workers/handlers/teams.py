"""Microsoft Teams through a Power Automate Workflows webhook: one Adaptive Card (1.4).

The Office 365 connector format is retired; Workflows take a message with an Adaptive Card
attachment (https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/cards-reference).
TextBlocks render a markdown subset, so CircleCI values have markdown characters
backslash-escaped and `<` `>` replaced, which also keeps `<at>` mentions from forming.

On a break, the people who broke it (workers/people.py: `people:` with a `teams` user) are
mentioned under the title: `<at>name</at>` and an `msteams.entities` entry each, unless the
subscription says `mentions: false`. Workflows webhooks post a new message each time: none can
be updated or threaded.

A `template` replaces the summary TextBlock (the one under the title); every value it prints
is escaped like the rest, and `mention()` is plain text `@id` for now (workers/handlers/template.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from workers.handlers.base import Handler, failed_test_lines, safe_url, summary_lines
from workers.message import Link, Message
from workers.people import Mention

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.4"
MAX_TEXT = 2000
MAX_ACTIONS = 6
COLOUR = {"success": "Good", "failed": "Attention", "error": "Attention", "unauthorized": "Warning"}
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def escape(text: str) -> str:
    """Neutralise markdown and mentions in a TextBlock value."""
    text = _MARKDOWN.sub(r"\\\1", text)
    return text.replace("<", "\u2039").replace(">", "\u203a")


def mention(id: str) -> str:
    """Plain text `@id` for now: a Teams mention needs an `msteams.entities` entry in the card."""
    return escape("@" + id)


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip("\\") + "…"


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": _clip(text), "wrap": True, **style}


def summary(m: Message) -> str:
    """The default summary: transition and commit."""
    return "\n\n".join(summary_lines(m, escape)) or escape(m.status_verb)


def card(m: Message, summary_text: str) -> dict[str, Any]:
    """The Adaptive Card for a message."""
    facts: list[tuple[str, str | None]] = [("Status", m.status), ("Project", m.project_slug or m.project)]
    if m.ref:
        facts.append(((m.ref_kind or "ref").title(), m.ref))
    facts += [("Workflow", m.workflow.label if m.workflow else None), ("Job", m.job.label if m.job else None)]
    facts += [("Pipeline", f"#{m.pipeline_number}" if m.pipeline_number is not None else None)]
    facts += [("Duration", m.duration), ("Author", m.commit_author), ("Commit", m.revision)]
    body: list[dict[str, Any]] = [
        _text(escape(m.title), size="Large", weight="Bolder", color=COLOUR.get(m.status, "Default")),
        _text(summary_text),
        {"type": "FactSet", "facts": [{"title": t, "value": _clip(escape(v))} for t, v in facts if v]},
    ]
    if m.failed_jobs:
        body.append(_text("**Failed jobs**\n\n" + "\n\n".join(f"- {escape(j.name)}" for j in m.failed_jobs)))
    if m.failed_tests:
        body.append(_text("**Failed tests**\n\n" + "\n\n".join(failed_test_lines(m, escape, bullet="-"))))
    if m.incomplete:
        body.append(_text(f"Incomplete: {escape(m.incomplete_reason or 'unknown reason')}", isSubtle=True))
    links = [m.workflow, m.job, *(Link(j.name, j.url) for j in m.failed_jobs), *m.artifacts]
    actions = [
        {"type": "Action.OpenUrl", "title": _clip(x.label, 100), "url": safe_url(x.url)}
        for x in links
        if x and safe_url(x.url)
    ]
    return {
        "$schema": SCHEMA,
        "type": "AdaptiveCard",
        "version": VERSION,
        "msteams": {"width": "Full"},
        "body": body,
        "actions": list({a["url"]: a for a in actions}.values())[:MAX_ACTIONS],
    }


def with_mentions(content: dict[str, Any], mentions: Sequence[Mention]) -> dict[str, Any]:
    """The card with a line of `<at>name</at>` mentions under the title, each with its
    `msteams.entities` entry (the user's UPN or Entra object id), which makes it a mention."""
    if not mentions:
        return content
    tags = [f"<at>{escape(x.name)}</at>" for x in mentions]
    line = _text("👋 " + " · ".join(f"{tag} ({x.why})" for tag, x in zip(tags, mentions, strict=True)))
    entities = [
        {"type": "mention", "text": tag, "mentioned": {"id": x.id, "name": x.name}}
        for tag, x in zip(tags, mentions, strict=True)
    ]
    body = [*content["body"][:1], line, *content["body"][1:]]
    return {**content, "body": body, "msteams": {**content["msteams"], "entities": entities}}


class TeamsHandler(Handler):
    type = "teams"
    required = ("url",)
    optional: ClassVar[Mapping[str, str | None]] = {"template": None}
    escape = staticmethod(escape)
    mention = staticmethod(mention)

    platform = "teams"

    def render(self, event: dict[str, Any]) -> dict[str, Any]:
        m = Message.from_event(event)
        content = with_mentions(card(m, self.summary(m, event, summary(m))), self.mentions(event))
        return {
            "type": "message",
            "attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": content}
            ],
        }
