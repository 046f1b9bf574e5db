"""Routes: which handlers exist and which events each subscription sends them.

A `Subscription` matches an event when every key it gives has a value matching one of its
patterns; `Routes.match` names the handlers an event goes to, and `Routes.explain` says, per
subscription, the first key that failed and why (`preview`). Match values are globs (fnmatch,
case-sensitive) unless written `/like this/` (a regex that must match the whole value). The
file these come from is read and checked by workers/routes_file.py.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workers.handlers.base import HandlerConfig
from workers.jobs import APPROVAL_PENDING, JOB_COMPLETED, WORKFLOW_COMPLETED
from workers.people import People
from workers.permissions import Permissions
from workers.transition import KINDS
from workers.vcs import slug_forms

ALERT_INTERVAL_SECONDS = 300  # the default: at most one alert per handler every 5 minutes
MATCH_KEYS = ("events", "projects", "branches", "tags", "workflows", "jobs", "statuses", "transitions")
# what a subscription asks of its handlers besides matching: mentions on a break (on unless
# `mentions: false`), `notify: committer` (a direct message to whoever broke it, when `people:`
# names them; `committer_by_email` also to one only the commit's e-mail found) and
# `job_replies: true` (job events reply in their breakage's thread), the last two for handlers
# whose platform sends direct messages and threads (their capabilities: slack_app);
# `skip_known_flaky: true`: not sent an event whose every failing test Insights knows to flake
OPTION_KEYS = {
    "mentions": ("true", "false"),
    "notify": ("committer", "committer_by_email"),
    "job_replies": ("true", "false"),
    "skip_known_flaky": ("true", "false"),
}
# CircleCI's workflow and job statuses (API v2's enums, a superset of what webhooks document:
# ../shared/reference/circleci-api-v2.md), our transition kinds, the event types we route.
STATUSES = (
    "success", "running", "not_run", "failed", "error", "failing", "on_hold", "canceled", "unauthorized",
    "retried", "queued", "not_running", "infrastructure_fail", "timedout", "terminated-unknown", "blocked",
)  # fmt: skip
KNOWN_VALUES = {
    "events": (WORKFLOW_COMPLETED, JOB_COMPLETED, APPROVAL_PENDING),
    "statuses": STATUSES,
    "transitions": KINDS,
}
# Events the worker derives: only a subscription that names them in `events:` gets them, so a
# routes file written before they existed sends what it always sent.
DERIVED_EVENTS = (APPROVAL_PENDING,)


@dataclass(frozen=True)
class Pattern:
    source: str
    regex: re.Pattern[str] = field(repr=False)

    def matches(self, value: str) -> bool:
        return self.regex.fullmatch(value) is not None

    @property
    def literal(self) -> bool:
        """A plain value: neither a glob nor a /regex/."""
        return self.regex.pattern == fnmatch.translate(self.source) and not any(c in self.source for c in "*?[")


# What a subscription without `events:` matches (DERIVED_EVENTS are not among them).
_WEBHOOK_EVENTS = tuple(Pattern(e, re.compile(fnmatch.translate(e))) for e in (WORKFLOW_COMPLETED, JOB_COMPLETED))

# What an event that has no value for a key is not, in a Mismatch's words.
ABSENT = {"branches": "no branch known", "tags": "not a tag build", "transitions": "no transition known"}
SKIP_KNOWN_FLAKY = "skip_known_flaky"


@dataclass(frozen=True)
class Mismatch:
    """Why an event does not match a subscription: the first key whose values match none of its patterns."""

    key: str
    values: tuple[str, ...]
    patterns: tuple[Pattern, ...]

    def __str__(self) -> str:
        """`branches: 'main' does not match [release/*]`, `statuses: 'success' not in [failed]`,
        `transitions: none (no transition known)`."""
        if self.key == SKIP_KNOWN_FLAKY:
            return f"{SKIP_KNOWN_FLAKY}: every failing test is known to flake (Insights)"
        wanted = "[" + ", ".join(p.source for p in self.patterns) + "]"
        if not self.values:
            return f"{self.key}: none ({ABSENT.get(self.key, 'the event has none')})"
        literal = all(p.literal for p in self.patterns)
        if len(self.values) == 1:
            return f"{self.key}: {self.values[0]!r} {'not in' if literal else 'does not match'} {wanted}"
        shown = ", ".join(repr(v) for v in self.values[:5]) + (", …" if len(self.values) > 5 else "")
        return f"{self.key}: none of {shown} {'is in' if literal else 'matches'} {wanted}"


@dataclass(frozen=True)
class Subscription:
    """A named filter: an event matches when every given key has a value matching one of its patterns."""

    name: str
    handlers: tuple[str, ...]
    match: Mapping[str, tuple[Pattern, ...]]
    line: int = 0
    mentions: bool = True
    notify: tuple[str, ...] = ()
    job_replies: bool = False
    skip_known_flaky: bool = False

    def mismatch(self, event: Mapping[str, Any]) -> Mismatch | None:
        """The first key (in file order) the event fails, with its values; None when it matches.
        A derived event (approval-pending) matches only a subscription that names it in `events:`.
        With `skip_known_flaky`, an event made only of known-flaky failures does not match."""
        kind = event.get("event_type")
        if kind in DERIVED_EVENTS and "events" not in self.match:
            return Mismatch("events", (str(kind),), _WEBHOOK_EVENTS)
        for key, patterns in self.match.items():
            values = event_values(event, key)
            if not any(p.matches(v) for p in patterns for v in values):
                return Mismatch(key, tuple(values), patterns)
        if self.skip_known_flaky and event.get("only_known_flaky") is True:
            return Mismatch(SKIP_KNOWN_FLAKY, ("true",), ())
        return None

    def matches(self, event: Mapping[str, Any]) -> bool:
        return self.mismatch(event) is None


@dataclass(frozen=True)
class AlertConfig:
    """The `alerts:` section: who is told when the notifier itself fails, and how often at most."""

    handlers: tuple[str, ...]
    interval_seconds: int = ALERT_INTERVAL_SECONDS
    line: int = 0


@dataclass(frozen=True)
class Routes:
    handlers: dict[str, HandlerConfig]
    subscriptions: list[Subscription]
    placeholders: tuple[str, ...] = ()  # the variables given a dummy value (load_routes(placeholders=True))
    alerts: AlertConfig | None = None  # no `alerts:` section: nobody is told
    people: People = field(default_factory=People)
    redact: tuple[str, ...] = ()  # `redact:`: regular expressions masked in log tails
    permissions: Permissions = field(default_factory=Permissions)  # `actions:`; none: nobody may act

    def explain(self, event: Mapping[str, Any]) -> list[tuple[Subscription, Mismatch | None]]:
        """Every subscription in file order, with why the event does not match it (None: it does)."""
        return [(s, s.mismatch(event)) for s in self.subscriptions]

    def matching_subscriptions(self, event: Mapping[str, Any]) -> list[Subscription]:
        """The subscriptions an event matches, in file order."""
        return [s for s, mismatch in self.explain(event) if mismatch is None]

    def match(self, event: Mapping[str, Any]) -> list[str]:
        """The handler names an event goes to: each once, in order of first mention."""
        return list(dict.fromkeys(name for s in self.matching_subscriptions(event) for name in s.handlers))

    def mentions_on(self, event: Mapping[str, Any], handler: str) -> bool:
        """Whether `handler` mentions people for this event: unless a matching subscription that
        names it says `mentions: false`."""
        return all(s.mentions for s in self.matching_subscriptions(event) if handler in s.handlers)

    def notifies(self, event: Mapping[str, Any], handler: str) -> frozenset[str]:
        """Whom `handler` also tells directly for this event (`notify:` of the matching subscriptions)."""
        return frozenset(n for s in self.matching_subscriptions(event) if handler in s.handlers for n in s.notify)

    def listens_for(self, event_type: str) -> bool:
        """Whether some subscription names `event_type` in its `events:` (a derived event is worth
        an API call only then)."""
        return any(p.matches(event_type) for s in self.subscriptions for p in s.match.get("events", ()))

    def job_replies(self, event: Mapping[str, Any], handler: str) -> bool:
        """Whether a job event goes to `handler` as a reply in its breakage's thread (`job_replies: true`)."""
        return any(s.job_replies for s in self.matching_subscriptions(event) if handler in s.handlers)


def event_values(event: Mapping[str, Any], key: str) -> list[str]:
    """The values of an enriched event a match key compares; empty when the event has none."""

    def get(section: str, name: str) -> Any:
        part = event.get(section)
        return part.get(name) if isinstance(part, Mapping) else None

    if key == "events":
        values: list[Any] = [event.get("event_type")]
    elif key == "projects":
        slug = get("project", "slug")
        values = list(slug_forms(slug)) if isinstance(slug, str) else []
    elif key == "branches":
        values = [get("vcs", "branch")]
    elif key == "tags":
        values = [get("vcs", "tag")]
    elif key == "workflows":
        values = [get("workflow", "name")]
    elif key == "jobs":
        # a job event matches its own job; a workflow event matches any of its jobs
        values = [get("job", "name")] if event.get("job") else [j.get("name") for j in _dicts(event.get("jobs"))]
    elif key == "statuses":
        values = [event.get("status")]
    else:
        values = [get("transition", "kind")]
    return [str(v) for v in values if v is not None]


def _dicts(value: Any) -> Iterable[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
