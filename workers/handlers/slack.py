"""Slack incoming webhook: Block Kit with a `text` fallback.

Every CircleCI value is escaped for mrkdwn (`&`, `<`, `>`), so `<!channel>` in a commit
arrives as text. Links are `<url|label>` with the label escaped and only http(s) URLs without
`|`, `<`, `>` or spaces. Limits (https://api.slack.com/reference/block-kit/blocks): 50 blocks,
3000 characters of section text, 150 of header text, 10 context elements, 10 section fields.

Each failed job's failing step gets a section: its name and exit code, and the tail of its
output as a code block, escaped like everything else (a `<!channel>` printed by a job stays text).

On a break, the people who broke it (workers/people.py, through the routes file's `people:`)
are mentioned in a section under the header and at the start of `text`, unless the
subscription says `mentions: false`.

A `template` replaces the summary section (the first section under the header) and the
top-level `text`; its output is mrkdwn, every value it prints is escaped like the rest, and
`mention()` gives `<@U…>`, `<!subteam^S…>`, `<!here>`, `<!channel>` or `<!everyone>`
(workers/handlers/template.py).

An alert (workers/alert_message.py) is a header and one section with its text; no template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from workers.alert_message import Alert, alert_of, is_alert
from workers.handlers.base import Handler, failed_test_lines, safe_url, step_heading, summary_lines, tail_text
from workers.handlers.capabilities import Capabilities, Identity
from workers.handlers.view import labelled
from workers.message import FailedJob, Message
from workers.people import Mention

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_FIELD = 2000
MAX_HEADER = 150
MAX_CONTEXT = 10
MAX_FIELDS = 10
SPECIAL_MENTIONS = ("here", "channel", "everyone")
# a Slack member id, as `people:` names one (the `slack` and `slack_app` handlers share it)
IDENTITY = Identity(
    "slack", re.compile(r"[UW][A-Z0-9]{2,}"), "Slack member id (U… or W…: in a profile, ⋮ → Copy member ID)"
)
_LINK = re.compile(r"<(?:https?://[^|>]+)\|([^>]*)>")


def escape(text: str) -> str:
    """Escape a value for Slack mrkdwn: only `&`, `<` and `>` are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(id: str) -> str:
    """`<!here>`, `<!channel>`, `<!everyone>`; `<!subteam^S…>` for a user group; else `<@id>`."""
    if id in SPECIAL_MENTIONS:
        return f"<!{id}>"
    return f"<!subteam^{id}>" if id.startswith("S") else f"<@{id}>"


def link(label: str, url: str | None) -> str:
    """`<url|label>`, or the escaped label alone when the url is unusable."""
    good = safe_url(url)
    return f"<{good}|{escape(label)}>" if good else escape(label)


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, never cutting an entity or a link in half."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    if cut.rfind("&") > cut.rfind(";"):
        cut = cut[: cut.rfind("&")]
    return cut + "…"


def _plain(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION)}}


def summary(m: Message) -> str:
    """The default summary section: status, project, ref, transition and commit."""
    lines = [f"{m.emoji} *{escape(m.status_verb)}* · {escape(m.project)}"]
    if m.ref_label:
        lines[0] += f" · {escape(m.ref_label)}"
    return "\n".join(lines + summary_lines(m, escape, bold="*"))


def blocks(m: Message, summary_text: str) -> list[dict[str, Any]]:
    """The Block Kit blocks for a message, within Slack's limits."""
    out: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _plain(m.title, MAX_HEADER), "emoji": True}},
        _section(summary_text),
    ]
    fields = [f"*Project*\n{escape(m.project_slug or m.project)}"]
    if m.ref:
        fields.append(f"*{(m.ref_kind or 'ref').title()}*\n{escape(m.ref)}")
    if m.workflow:
        fields.append(f"*Workflow*\n{link(m.workflow.label, m.workflow.url)}")
    if m.job:
        fields.append(f"*Job*\n{link(m.job.label, m.job.url)}")
    if m.pipeline_number is not None:
        fields.append(f"*Pipeline*\n#{m.pipeline_number}")
    if m.duration:
        fields.append(f"*Duration*\n{m.duration}")
    if m.commit_author:
        fields.append(f"*Author*\n{escape(m.commit_author)}")
    out.append(
        {"type": "section", "fields": [{"type": "mrkdwn", "text": clip(f, MAX_FIELD)} for f in fields][:MAX_FIELDS]}
    )
    if m.failed_jobs:
        out.append(_section("*Failed jobs*\n" + "\n".join(f"• {link(j.name, j.url)}" for j in m.failed_jobs)))
    out += [_section(step_section(j)) for j in m.failed_jobs if j.step]
    if m.failed_tests:
        out.append(_section("*Failed tests*\n" + "\n".join(failed_test_lines(m, escape))))
    if m.artifacts:
        out.append(_section("*Artifacts*\n" + "\n".join(f"• {link(a.label, a.url)}" for a in m.artifacts)))
    context = [f"event `{escape(m.event_id)}`" if m.event_id else "CircleCI"]
    if m.revision:
        context.append(f"commit {escape(m.revision)}")
    if m.incomplete:
        context.append(f"⚠️ incomplete: {escape(m.incomplete_reason or 'unknown reason')}")
    out.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": clip(c, MAX_SECTION)} for c in context][:MAX_CONTEXT],
        }
    )
    return out[:MAX_BLOCKS]


def step_section(job: FailedJob) -> str:
    """The failing step and its log tail as a code block, escaped: `<!channel>` or `<@U…>` in a
    log arrives as text, and a ``` in it cannot close the block."""
    heading = step_heading(job, escape, bold="*")
    step = job.step
    if step is None or step.log_tail is None:
        return heading
    room = MAX_SECTION - len(heading) - 16
    code = escape(tail_text(step, room)).replace("```", "`\u200b``")
    if len(code) > room:  # escaping made it longer: drop whole lines from its start
        code = "…\n" + code[-room:].split("\n", 1)[-1]
    return f"{heading}\n```\n{code}\n```"


def alert_message(alert: Alert) -> dict[str, Any]:
    """An alert: its title as the header and `text`, its lines in one section."""
    header = {"type": "header", "text": {"type": "plain_text", "text": _plain(alert.title, MAX_HEADER), "emoji": True}}
    return {"text": clip(escape(alert.title), MAX_SECTION), "blocks": [header, _section(escape(alert.text))]}


class SlackHandler(Handler):
    type = "slack"
    required = ("url",)
    optional: ClassVar[Mapping[str, str | None]] = {"template": None}
    escape = staticmethod(escape)
    mention = staticmethod(mention)
    capabilities = Capabilities(identity=IDENTITY)

    @staticmethod
    def view(body: Any) -> list[str]:
        return slack_lines(body)

    def render(self, event: dict[str, Any]) -> dict[str, Any]:
        if is_alert(event):
            return alert_message(alert_of(event))
        m = Message.from_event(event)
        body = message_body(m, self.summary(m, event, summary(m)), templated=self.template is not None)
        return with_mentions(body, self.mentions(event))


def message_body(m: Message, summary_text: str, *, templated: bool) -> dict[str, Any]:
    """`text` and `blocks` of a message whose summary section is `summary_text` (a template's
    output is also the `text`; else the plain-text fallback)."""
    fallback = summary_text if templated else escape(m.text)
    return {"text": clip(fallback, MAX_SECTION), "blocks": blocks(m, summary_text)}


def mention_line(mentions: Sequence[Mention]) -> str:
    """`👋 <@U0ADA> (commit) · <@U0GRACE> (triggered the pipeline)`."""
    return "👋 " + " · ".join(f"{mention(m.id)} ({m.why})" for m in mentions)


def with_mentions(body: dict[str, Any], mentions: Sequence[Mention]) -> dict[str, Any]:
    """The message with the mention line under its header and the mentions leading its `text`
    (what a notification shows)."""
    if not mentions:
        return body
    blocks = [*body["blocks"][:1], _section(mention_line(mentions)), *body["blocks"][1:]]
    text = " ".join(mention(m.id) for m in mentions) + " " + body["text"]
    return {**body, "text": clip(text, MAX_SECTION), "blocks": blocks[:MAX_BLOCKS]}


def readable(text: str) -> str:
    """Slack mrkdwn as a terminal shows it: `<url|label>` as its label, entities decoded."""
    return _LINK.sub(r"\1", text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def block_lines(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        return [f"[header]  {block['text']['text']}"]
    if kind == "section" and "fields" in block:
        return ["[fields]  " + " · ".join(readable(f["text"]).replace("\n", ": ", 1) for f in block["fields"])]
    if kind == "section":
        first, *rest = readable(block["text"]["text"]).splitlines() or [""]
        return [f"[section] {first}", *(f"          {line}" for line in rest)]
    if kind == "context":
        return ["[context] " + " · ".join(readable(e.get("text", "")) for e in block.get("elements", []))]
    return [f"[{kind}]"]


def slack_lines(body: dict[str, Any]) -> list[str]:
    """Block Kit as a terminal shows it: its `text`, then one line per block (`[header]`, …)."""
    lines = [labelled("slack text", readable(body.get("text", ""))), "slack blocks"]
    return lines + ["  " + line for block in body.get("blocks", []) for line in block_lines(block)]
