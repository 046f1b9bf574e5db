"""Microsoft Teams through a Power Automate Workflows webhook: one Adaptive Card (1.4).

The Office 365 connector format is retired; Workflows take a message with an Adaptive Card
attachment (https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/cards-reference).

TextBlocks and FactSet values render a markdown subset: bold, italic, bullet and numbered lists,
links (https://learn.microsoft.com/adaptive-cards/create/textfeatures; Teams' "Format cards in
Teams"). Desktop and web parse it as CommonMark; the mobile clients' parser (AdaptiveCards'
shared MarkDownParser) honours a backslash only before `*` and `_` and shows it elsewhere, so
`escape` works by context, and with an invisible U+200B where it can:

    construct                          neutralised by
    `**b**`, `_i_`, `~~s~~`            a backslash before each `*`, `_`, `~` of a run that could
                                       open or close emphasis (`snake_case`, `a * b` stay as written)
    `[text](url)`                      U+200B between `]` and `(`: no client forms the link
    `- x`, `1. x`, `# x`, `---`, a     U+200B before it, at a line start (and, for the mobile
    table row, a fence, `[r]: url`     parser, `- x` and `1. x` after `[` `]` `)`)
    `<at>` mentions, `<url>`, HTML     `<` `>` become U+2039 and U+203A (single angle quotes)
    `\\*`, `&amp;`                     a backslash before the backslash or the `&`
    `{{DATE(…)}}`, `{{TIME(…)}}`       U+200B between the braces

Ordinary names (`feature/build-and-test`, `v1.2.3`, `#123`, `deploy (eu)`) are left as written.
A value's edges count as unknown neighbours: templates put values side by side.

Each failed job's failing step is named, and the tail of its output follows in a monospace
TextBlock, escaped like any value (a `<at>` in a log mentions no one).

On a break, the people who broke it (workers/people.py: `people:` with a `teams` user) are
mentioned under the title: `<at>name</at>` and an `msteams.entities` entry each, unless the
subscription says `mentions: false`. Workflows webhooks post a new message each time: none can
be updated or threaded.

A `template` replaces the summary TextBlock (the one under the title); every value it prints
is escaped like the rest, and `mention()` is plain text `@id` for now (workers/handlers/template.py).

An alert (workers/alert_message.py) is a card with its title and its lines; no template.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from workers.alert_message import Alert, alert_of, is_alert
from workers.handlers.base import Handler, failed_test_lines, safe_url, step_heading, summary_lines, tail_text
from workers.handlers.capabilities import Capabilities, Identity
from workers.handlers.view import labelled
from workers.message import FailedStep, Link, Message
from workers.people import Mention

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.4"
MAX_TEXT = 2000
MAX_ACTIONS = 6
COLOUR = {"success": "Good", "failed": "Attention", "error": "Attention", "unauthorized": "Warning"}
ZW = "\u200b"  # zero-width space: breaks markdown syntax, shows nothing
# In CommonMark a backslash before ASCII punctuation is an escape (before a line end, a line
# break), so the value's own is doubled.
_INLINE = re.compile(
    r"(?P<backslash>\\(?=[!-/:-@\[-`{-~\r\n]|\Z))|(?P<entity>&(?=#?\w+;))|(?P<run>\*+|_+|~~+)"
    r"|(?P<seam>\](?=\(|\Z))|(?P<date>\{(?=\{(?:DATE|TIME)\())|(?P<angle>[<>])"
)
_END = r"(?:[ \t\r\n]|\Z)"
_LINE_START = re.compile(
    rf"(?:^|(?<=[\r\n]))[ \t]*(?=[-+*]{_END}|#{{1,6}}{_END}|\d{{1,9}}[.)]{_END}"
    r"|[-*_=:|][-*_=:| \t]*(?:[\r\n]|\Z)|`{3}|~{3}|\[)"
)
# a Teams user as `people:` names one (a Workflows webhook can neither thread nor edit)
IDENTITY = Identity(
    "teams",
    re.compile(r"[A-Za-z0-9._%+@-]+"),
    "Teams user (a user principal name such as ada@contoso.com, or an Entra object id)",
)
_BLOCK_START = re.compile(r"(?<=[\[\])])(?=-[ \t]|\d{1,9}\.[ \t])")  # the mobile parser's other block starts


def escape(text: str) -> str:
    """Neutralise markdown and mentions in a TextBlock or Fact value, by context (see above)."""

    def inline(m: re.Match[str]) -> str:
        kind, found = m.lastgroup, m.group()
        if kind == "run":
            return found if _inert(text, m.start(), m.end(), found[0]) else "".join("\\" + c for c in found)
        if kind == "seam":
            return "]" + ZW
        if kind == "date":
            return "{" + ZW
        if kind == "angle":
            return "\u2039" if found == "<" else "\u203a"
        return "\\" + found  # a backslash or an entity's `&`

    escaped = _INLINE.sub(inline, text)
    escaped = _LINE_START.sub(lambda m: m.group() + ZW, escaped)
    return _BLOCK_START.sub(ZW, escaped)


def _inert(text: str, start: int, end: int, char: str) -> bool:
    """A delimiter run that can neither open nor close emphasis (CommonMark's flanking rules):
    spaces on both sides, or an `_` inside a word. A value's edges may touch anything."""
    if start == 0 or end == len(text):
        return False
    before, after = text[start - 1], text[end]
    return (_space(before) and _space(after)) or (char == "_" and before.isalnum() and after.isalnum())


def _space(char: str) -> bool:
    """CommonMark's Unicode whitespace (str.isspace also takes the separators U+001C-U+001F)."""
    return char in " \t\n\r\f" or unicodedata.category(char) == "Zs"


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
    for job in m.failed_jobs:
        if job.step:
            body.append(_text(step_heading(job, escape, quote="")))
            if job.step.log_tail:
                body.append(_text(tail_block(job.step), fontType="Monospace", size="Small"))
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


def tail_block(step: FailedStep) -> str:
    """The log tail escaped line by line (markdown, `<at>` mentions and all), its end kept within a TextBlock."""
    text = escape(tail_text(step, MAX_TEXT - 100))
    return text if len(text) <= MAX_TEXT else "…\n" + text[-(MAX_TEXT - 2) :].split("\n", 1)[-1]


def alert_card(alert: Alert) -> dict[str, Any]:
    """The Adaptive Card of an alert: the title, then its lines."""
    title = _text(escape(alert.title), size="Large", weight="Bolder", color="Attention")
    lines = _text("\n\n".join(escape(line) for line in alert.text.splitlines()))
    return {"$schema": SCHEMA, "type": "AdaptiveCard", "version": VERSION, "msteams": {"width": "Full"},
            "body": [title, lines], "actions": []}  # fmt: skip


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
    capabilities = Capabilities(identity=IDENTITY)

    @staticmethod
    def view(body: Any) -> list[str]:
        """The card's TextBlocks and facts."""
        lines = []
        for attachment in body.get("attachments") or []:
            for item in (attachment.get("content") or {}).get("body") or []:
                if item.get("type") == "TextBlock":
                    lines.append(labelled("card text", item.get("text", "")))
                elif item.get("type") == "FactSet":
                    lines += [labelled(f"  {f['title']}", f["value"]) for f in item.get("facts", [])]
        return lines

    def render(self, event: dict[str, Any]) -> dict[str, Any]:
        if is_alert(event):
            content = alert_card(alert_of(event))
        else:
            m = Message.from_event(event)
            content = with_mentions(card(m, self.summary(m, event, summary(m))), self.mentions(event))
        return {
            "type": "message",
            "attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": content}
            ],
        }
