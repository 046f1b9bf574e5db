"""The alert message: what the notifier says about itself, as a small event every handler renders.

An alert travels through a handler's ordinary `send(event, ...)` as this event (schema 1):

    {"schema_version": 1, "event_type": "alert", "event_id": "alert-<hex>",
     "happened_at": <ISO 8601, when it was sent>,
     "alert": {"title", "text", "since", "until",
               "counts": [{"kind", "reason", "subject", "status", "count"}, ...]}}

    kind                 reason                               subject          status
    dead_letter          retry_budget_exhausted, rejected,    the delivery's   the last HTTP status,
                         unknown_handler, event_expired,      handler (`-` for  or null
                         undecodable                          undecodable)
    enrichment_refused   circleci_unauthorized (401),         the project      401 or 403
                         circleci_forbidden (403)

Chat handlers show `title` and `text` (escaped for their platform; templates do not apply),
PagerDuty triggers one incident per kind of trouble, a webhook gets the JSON above, a `python`
handler the dict. Like the enriched event, it is plain data with no platform escaping.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from workers.timestamps import parse_time

ALERT = "alert"
DEAD_LETTER = "dead_letter"
ENRICHMENT_REFUSED = "enrichment_refused"
KINDS = (DEAD_LETTER, ENRICHMENT_REFUSED)
HINTS = {
    DEAD_LETTER: "See them with `circleci-events dead-letters list`; replay them once the cause is fixed.",
    ENRICHMENT_REFUSED: "Events go out without CircleCI's details. Check the token with `circleci-events api me`:"
    " CIRCLE_TOKEN must be a valid personal API token with access to the project.",
}


@dataclass(frozen=True)
class AlertCount:
    """How often one kind of trouble happened since the handler's last alert."""

    kind: str
    reason: str
    subject: str
    status: int | None
    count: int

    def line(self) -> str:
        status = f", status {self.status}" if self.status is not None else ""
        where = "handler" if self.kind == DEAD_LETTER else "project"
        return f"{self.reason}: {self.count} ({where} {self.subject}{status})"


@dataclass(frozen=True)
class Alert:
    """One alert: the counts one handler had not been told about, from `since` to `until` (epoch seconds)."""

    alert_id: str
    since: float
    until: float
    counts: tuple[AlertCount, ...]

    @classmethod
    def new(cls, counts: list[AlertCount], *, since: float, until: float) -> Alert:
        ordered = sorted(counts, key=lambda c: (KINDS.index(c.kind) if c.kind in KINDS else 9, -c.count, c.reason))
        return cls(alert_id="alert-" + uuid.uuid4().hex[:16], since=since, until=until, counts=tuple(ordered))

    def total(self, kind: str) -> int:
        return sum(c.count for c in self.counts if c.kind == kind)

    @property
    def title(self) -> str:
        parts = []
        if dead := self.total(DEAD_LETTER):
            parts.append(f"{dead} {'delivery' if dead == 1 else 'deliveries'} dead-lettered")
        if refused := self.total(ENRICHMENT_REFUSED):
            parts.append(f"CircleCI refused the API token for {refused} {'event' if refused == 1 else 'events'}")
        return "⚠️ circleci-events: " + ("; ".join(parts) or "trouble")

    @property
    def text(self) -> str:
        """Plain text, one line per count, then what to do; each platform escapes it."""
        lines = [f"Since {_iso(self.since)}:"]
        for kind in dict.fromkeys(c.kind for c in self.counts):
            lines += [f"• {c.line()}" for c in self.counts if c.kind == kind]
            if kind in HINTS:
                lines.append(HINTS[kind])
        return "\n".join(lines)

    @property
    def kinds(self) -> list[str]:
        return list(dict.fromkeys(c.kind for c in self.counts))

    def to_event(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "event_type": ALERT,
            "event_id": self.alert_id,
            "happened_at": _iso(self.until),
            "alert": {
                "title": self.title,
                "text": self.text,
                "since": _iso(self.since),
                "until": _iso(self.until),
                "counts": [asdict(c) for c in self.counts],
            },
        }


def is_alert(event: Mapping[str, Any]) -> bool:
    return event.get("event_type") == ALERT and isinstance(event.get("alert"), Mapping)


def alert_of(event: Mapping[str, Any]) -> Alert:
    """The Alert an alert event carries (what a handler renders); tolerant of missing fields."""
    body: Mapping[str, Any] = event.get("alert") or {}
    counts = [
        AlertCount(
            kind=str(c.get("kind") or ""),
            reason=str(c.get("reason") or ""),
            subject=str(c.get("subject") or "-"),
            status=_int(c.get("status")),
            count=_int(c.get("count")) or 0,
        )
        for c in body.get("counts") or ()
        if isinstance(c, Mapping)
    ]
    since, until = parse_time(body.get("since")), parse_time(body.get("until"))
    return Alert(
        alert_id=str(event.get("event_id") or ""),
        since=since.timestamp() if since else 0.0,
        until=until.timestamp() if until else 0.0,
        counts=tuple(counts),
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
