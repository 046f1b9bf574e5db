"""A rendered message as a person would read it in a terminal: what `demo` and `preview` print.

Slack's Block Kit shows as its `text` and one line per block (`[header]`, `[section]`, …),
mrkdwn links as their labels; the other platforms as their title, text and fields; a webhook
or Python handler as what it is given. Each takes the body `Handler.render()` returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

_LINK = re.compile(r"<(?:https?://[^|>]+)\|([^>]*)>")
INDENT = " " * 13  # under the value of a `label        value` line


def readable(text: str) -> str:
    """Slack mrkdwn as a terminal shows it: `<url|label>` as its label, entities decoded."""
    return _LINK.sub(r"\1", text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def labelled(label: str, text: str) -> str:
    """`label        first line`, the next lines under the first."""
    return f"{label:<12} " + f"\n{INDENT}".join(text.splitlines() or [""])


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
    lines = [labelled("slack text", readable(body.get("text", ""))), "slack blocks"]
    return lines + ["  " + line for block in body.get("blocks", []) for line in block_lines(block)]


def _teams_lines(body: dict[str, Any]) -> list[str]:
    lines = []
    for attachment in body.get("attachments") or []:
        for item in (attachment.get("content") or {}).get("body") or []:
            if item.get("type") == "TextBlock":
                lines.append(labelled("card text", item.get("text", "")))
            elif item.get("type") == "FactSet":
                lines += [labelled(f"  {f['title']}", f["value"]) for f in item.get("facts", [])]
    return lines


def _discord_lines(body: dict[str, Any]) -> list[str]:
    lines = []
    for embed in body.get("embeds") or []:
        lines += [
            labelled("embed title", embed.get("title", "")),
            labelled("description", embed.get("description", "")),
        ]
        lines += [labelled(f"  {f['name']}", f["value"]) for f in embed.get("fields", [])]
    return lines


def _pagerduty_lines(body: dict[str, Any]) -> list[str]:
    if not body:
        return ["pagerduty    nothing: this event neither triggers nor resolves"]
    summary = (body.get("payload") or {}).get("summary")
    lines = [labelled("pagerduty", f"{body['event_action']} · dedup_key {body.get('dedup_key')}")]
    return lines + ([labelled("summary", summary)] if summary else [])


def _webhook_lines(body: dict[str, Any]) -> list[str]:
    size = len(json.dumps(body, separators=(",", ":")).encode())
    return [labelled("webhook", f"the enriched event as JSON ({size} bytes), signed: circleci-events-signature")]


def _python_lines(body: dict[str, Any]) -> list[str]:
    return [labelled("python", f"calls {body.get('callable')}(event, log)")]


def _log_lines(body: dict[str, Any]) -> list[str]:
    return [labelled("log line", f"notification_logged: {body.get('text', '')}")]


VIEWS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "slack": slack_lines,
    "teams": _teams_lines,
    "discord": _discord_lines,
    "pagerduty": _pagerduty_lines,
    "webhook": _webhook_lines,
    "python": _python_lines,
    "log": _log_lines,
}


def message_lines(kind: str, body: dict[str, Any]) -> Iterable[str]:
    """What a handler of type `kind` would post, as lines to print; JSON for a type without a view."""
    view = VIEWS.get(kind)
    return view(body) if view else json.dumps(body, indent=2, ensure_ascii=False).splitlines()
