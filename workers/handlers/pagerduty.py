"""PagerDuty Events API v2: the action follows the transition, or the status when there is none.

https://developer.pagerduty.com/docs/events-api-v2/trigger-events/

    event                        transition      action   why
    workflow-completed           broken          trigger
                                 still_failing   trigger  same dedup_key: folds into the open incident
                                 fixed           resolve
                                 first_seen      trigger on a failure (any status but success and
                                                 canceled, as transitions count), resolve on
                                                 success: the state may have expired while an
                                                 incident was open, and resolving an unknown
                                                 dedup_key is a no-op for PagerDuty
                                 passing         none     the previous status was success, so our last
                                                          action on this key was a resolve; an incident
                                                          can only still be open if that resolve was
                                                          dead-lettered, and the dead letter is the
                                                          visible, replayable record
                                 stale           none     an older run than the stored one: a trigger
                                                          would reopen an incident on a green branch
                                                          (issue 11 finding 6)
                                 canceled        none     says nothing about the code
                                 any other kind  none
    workflow-completed           none (no ref)   status: failed/error trigger, success resolve,
    job-completed                (ignored)       anything else none

The dedup_key is stable per (project slug in its long form, branch or tag, workflow name), and
for job events also the job name, so a job that passes never resolves its workflow's incident.
When there is no action, `render` returns `{}` and `send` posts nothing.

An alert (workers/alert_message.py) triggers with dedup_key `circleci-events:alert:<kinds>`, so
alerts about the same trouble fold into one incident until someone resolves it.
`render` shows the routing key as `[redacted]`; only `send` puts the real one in the body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, ClassVar

import httpx
import structlog

from config.redaction import REDACTED
from workers.alert_message import Alert, alert_of, is_alert
from workers.handlers.base import Handler, post_json, safe_url
from workers.handlers.view import labelled
from workers.jobs import WORKFLOW_COMPLETED
from workers.message import Message
from workers.timestamps import parse_time
from workers.transition import SUCCESS, is_failure
from workers.vcs import slug_forms

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
MAX_SUMMARY = 1024
log = structlog.get_logger(__name__)


def action(m: Message) -> str | None:
    """`trigger`, `resolve`, or None when the event says nothing PagerDuty should hear."""
    if m.event_type == WORKFLOW_COMPLETED and m.transition is not None:
        match m.transition:
            case "broken" | "still_failing":
                return "trigger"
            case "fixed":
                return "resolve"
            case "first_seen":
                return "trigger" if is_failure(m.status) else "resolve" if m.status == SUCCESS else None
            case _:  # passing, stale, canceled, and kinds this module does not know
                return None
    if m.status in ("failed", "error"):
        return "trigger"
    if m.status == SUCCESS:
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


def alert_body(alert: Alert, routing_key: str) -> dict[str, Any]:
    """An alert: a trigger, one incident per kind of trouble."""
    payload = {"summary": alert.title[:MAX_SUMMARY], "source": "circleci-events", "severity": "error",
               "component": "circleci-events", "class": "alert",
               "custom_details": {"text": alert.text, "counts": [asdict(c) for c in alert.counts]}}  # fmt: skip
    dedup = "circleci-events:alert:" + "+".join(alert.kinds)
    return {"routing_key": routing_key, "event_action": "trigger", "dedup_key": dedup, "payload": payload,
            "client": "circleci-events"}  # fmt: skip


def body(event: dict[str, Any], routing_key: str) -> dict[str, Any]:
    """The Events API v2 body, or `{}` when nothing is to be sent."""
    if is_alert(event):
        return alert_body(alert_of(event), routing_key)
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
            "known_flaky_tests": {t.name: t.known_flaky for t in m.failed_tests if t.known_flaky is not None},
            "only_known_flaky": m.only_known_flaky,
            "failed_steps": m.failed_steps(),
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
    required = ("routing_key",)
    optional: ClassVar[Mapping[str, str | None]] = {"url": PAGERDUTY_URL}
    placeholders: ClassVar[Mapping[str, str]] = {"routing_key": "0123456789abcdef0123456789abcdef"}  # 32 characters

    def render(self, event: dict[str, Any]) -> dict[str, Any]:
        return body(event, REDACTED)

    @staticmethod
    def view(body: Any) -> list[str]:
        """The event action and dedup key, and the summary; or that nothing would be sent."""
        if not body:
            return ["pagerduty    nothing: this event neither triggers nor resolves"]
        summary = (body.get("payload") or {}).get("summary")
        lines = [labelled("pagerduty", f"{body['event_action']} · dedup_key {body.get('dedup_key')}")]
        return lines + ([labelled("summary", summary)] if summary else [])

    def send(self, event: dict[str, Any], *, delivery_id: str, http: httpx.Client) -> None:
        """Post the event to PagerDuty, or do nothing when it neither triggers nor resolves."""
        data = body(event, str(self.options["routing_key"]))
        if not data:
            m = Message.from_event(event)
            log.info(
                "pagerduty_skipped",
                handler=self.name,
                delivery_id=delivery_id,
                status=m.status,
                transition=m.transition,
            )
            return
        url = str(self.options.get("url") or PAGERDUTY_URL)
        post_json(http, url, data, handler=self.name, secrets=self.secrets())
