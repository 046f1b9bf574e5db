"""Lenient parsing of the timestamps CircleCI payloads carry, always into UTC-aware datetimes;
and our own epoch times as ISO 8601 text, the one form operators see them in.

Formats seen (circleci-pitfalls.md A9, circleci-webhooks.md 5.1 and 5.7):

* `happened_at`: ISO 8601 with `Z` and 3 or 6 fractional digits (DOCS-REF samples);
* `gitlab.commit_timestamp`: a `+00:00` offset (DOCS-REF GitLab sample);
* `circleci.event_time`: documented as ISO 8601 but observed in Go's `time.Time.String()`
  form, `2024-12-18 17:23:29.361740256 +0000 UTC`, with nanoseconds (CAP-PIPEDREAM).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from config.clock import utc_now_text

# Go's default layout "2006-01-02 15:04:05.999999999 -0700 MST", optionally followed by the
# monotonic clock reading (" m=+0.000000001") that time.Time.String() appends.
_GO_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2}) (?P<clock>\d{2}:\d{2}:\d{2})(?P<fraction>\.\d+)?"
    r" (?P<sign>[+-])(?P<hours>\d{2})(?P<minutes>\d{2})(?: [A-Za-z][A-Za-z0-9+-]*)?(?: m=[+-][\d.]+)?",
    re.ASCII,
)
# fromisoformat would also read digits of other scripts and week dates; a payload's time is
# plain ASCII, so anything else is garbage rather than a guess.
_ISO_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}([T ][\d:.,]+)?(Z|[+-]\d{2}:?\d{2}(:?\d{2})?)?", re.ASCII)


def parse_time(value: object) -> datetime | None:
    """Return `value` as a UTC-aware datetime, or None when it is not a timestamp we can read.

    Naive timestamps are taken as UTC, since CircleCI's are UTC. Fractions beyond microseconds
    are cut, not rounded.
    """
    try:
        moment = value if isinstance(value, datetime) else _read(value)
        if moment is None or moment.tzinfo is None:
            return None if moment is None else moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # out-of-range dates, or an offset past year 1 or 9999
        return None


def duration_seconds(start: object, stop: object) -> float | None:
    """Return the seconds from `start` to `stop`, or None when either is unreadable or stop comes first."""
    started, stopped = parse_time(start), parse_time(stop)
    if started is None or stopped is None or stopped < started:
        return None
    return (stopped - started).total_seconds()


def iso_time(epoch: float | None) -> str | None:
    """An epoch time (Redis keeps them so) as ISO 8601 UTC, `2026-11-27T23:40:00.123456Z`: the
    form of `received_at` and of every log line's timestamp."""
    return None if epoch is None else utc_now_text(epoch)


def _read(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    go = _GO_TIME.fullmatch(text)
    if go is not None:
        fraction = (go["fraction"] or "")[:7]  # the dot and at most six digits
        text = f"{go['date']}T{go['clock']}{fraction}{go['sign']}{go['hours']}:{go['minutes']}"
    elif _ISO_SHAPE.fullmatch(text) is None:
        return None
    return datetime.fromisoformat(text)
