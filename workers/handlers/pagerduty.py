"""PagerDuty Events API v2: trigger on broken or failed/error, resolve on fixed or success.

https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
The dedup_key is stable per (project slug in its long form, branch or tag, workflow name), and
for job events also the job name, so a job that passes never resolves its workflow's incident.
Other statuses (canceled, unauthorized) send nothing: `render` returns `{}`.
`render` shows the routing key as `[redacted]`; only `send` puts the real one in the body.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import structlog

from config.redaction import REDACTED
from config.routes import PAGERDUTY_URL, slug_forms
from workers.handlers.base import Handler, post_json
from workers.handlers.slack import safe_url
from workers.message import Message
from workers.timestamps import parse_time

MAX_SUMMARY = 1024
log = structlog.get_logger(__name__)


def action(m: Message) -> str | None:
    """`trigger`, `resolve`, or None when the event says nothing PagerDuty should hear."""
    if m.transition == "broken" or m.status in ("failed", "error"):
        return "trigger"
    if m.transition == "fixed" or m.status == "success":
        return "resolve"
    return None


def dedup_key(m: Message) -> str:
    """`circleci-events:` + sha1 of (long slug, ref, workflow name[, job name])."""
    forms = slug_forms(m.project_slug)
    slug = forms[-1] if m.project_slug.startswith(("gh/", "bb/")) else forms[0]
    parts = [slug, m.ref or "", m.workflow.label if m.workflow else ""]
    if m.event_type == "job-completed":
        parts.append(m.job.label if m.job else "")
    return "circleci-events:" + hashlib.sha1("\x1f".join(parts).encode()).hexdigest()


def body(event: dict[str, Any], routing_key: str) -> dict[str, Any]:
    """The Events API v2 body, or `{}` when nothing is to be sent."""
    m = Message.from_event(event)
    kind = action(m)
    if kind is None:
        return {}
    out: dict[str, Any] = {"routing_key": routing_key, "event_action": kind, "dedup_key": dedup_key(m)}
    if kind == "resolve":
        return out
    summary = m.title + (f" ({m.transition_phrase})" if m.transition_phrase else "")
    when = parse_time(m.happened_at)
    payload: dict[str, Any] = {
        "summary": summary if len(summary) <= MAX_SUMMARY else summary[: MAX_SUMMARY - 1] + "…",
        "source": m.project_slug or "circleci",
        "severity": "error",
        "component": m.workflow.label if m.workflow else m.project,
        "group": m.project_slug or m.project,
        "class": m.event_type or "circleci",
        "custom_details": {
            "status": m.status,
            "ref": m.ref_label,
            "pipeline_number": m.pipeline_number,
            "commit": m.commit_subject,
            "author": m.commit_author,
            "transition": m.transition,
            "failed_jobs": [j.name for j in m.failed_jobs],
            "failed_tests": [f"{t.classname}.{t.name}" if t.classname else t.name for t in m.failed_tests],
            "more_failed_tests": m.more_failed_tests,
            "incomplete": m.incomplete_reason if m.incomplete else None,
        },
    }
    if when is not None:
        payload["timestamp"] = when.isoformat()
    links = [m.workflow, m.job, *m.artifacts]
    out["payload"] = payload
    out["links"] = [{"href": x.url, "text": x.label[:100]} for x in links if x and safe_url(x.url)]
    out["client"] = "circleci-events"
    if safe_url(m.url):
        out["client_url"] = m.url
    return out


class PagerDutyHandler(Handler):
    type = "pagerduty"

    def render(self, event: dict[str, Any]) -> dict[str, Any]:
        return body(event, REDACTED)

    def send(self, event: dict[str, Any], *, delivery_id: str, http: httpx.Client) -> None:
        """Post the event to PagerDuty, or do nothing when it neither triggers nor resolves."""
        data = body(event, str(self.options["routing_key"]))
        if not data:
            log.info("pagerduty_skipped", handler=self.name, delivery_id=delivery_id, status=event.get("status"))
            return
        url = str(self.options.get("url") or PAGERDUTY_URL)
        post_json(http, url, data, handler=self.name, secrets=self.secrets())
