"""Log handler: one structured `notification_logged` line with the message's essentials.

A `template` replaces the line's `text` field (the plain-text fallback by default); values are
printed as they are and `mention()` gives `@id`. An alert (workers/alert_message.py) is logged
with its title and text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import structlog

from workers.alert_message import alert_of, is_alert
from workers.handlers import transcript
from workers.handlers.base import Handler
from workers.handlers.view import labelled
from workers.message import Message

log = structlog.get_logger(__name__)


class LogHandler(Handler):
    type = "log"
    optional: ClassVar[Mapping[str, str | None]] = {"template": None}

    def render(self, event: dict[str, Any]) -> dict[str, Any]:
        if is_alert(event):
            alert = alert_of(event)
            return {"handler": self.name, "event_id": alert.alert_id, "event_type": "alert", "title": alert.title,
                    "text": alert.text}  # fmt: skip
        m = Message.from_event(event)
        return {
            "handler": self.name,
            "event_id": m.event_id,
            "event_type": m.event_type,
            "title": m.title,
            "status": m.status,
            "project": m.project_slug or m.project,
            "ref": m.ref_label,
            "workflow": m.workflow.label if m.workflow else None,
            "job": m.job.label if m.job else None,
            "pipeline_number": m.pipeline_number,
            "transition": m.transition,
            "failed_jobs": [j.name for j in m.failed_jobs],
            "failed_steps": m.failed_steps(),
            "url": m.url,
            "incomplete": m.incomplete,
            "text": self.summary(m, event, m.text),
        }

    @staticmethod
    def view(body: Any) -> list[str]:
        return [labelled("log line", f"notification_logged: {body.get('text', '')}")]

    def send(self, event: dict[str, Any], *, delivery_id: str, http: httpx.Client) -> None:
        """Write the line; nothing is posted."""
        line = self.render(event)
        transcript.note("log line notification_logged", line, self.secrets())
        log.info("notification_logged", delivery_id=delivery_id, **line)
