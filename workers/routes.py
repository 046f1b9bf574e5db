"""The routes file: which handlers exist and which events each subscription sends them.

```yaml
handlers:
  ops-slack: {type: slack, url: "${SLACK_OPS_WEBHOOK}"}
subscriptions:
  - name: main-failures
    handlers: [ops-slack]
    branches: [main, "/release-\\d+/"]
```

`${VAR}` and `${VAR:-default}` are taken from the `environ` mapping the caller passes (the
environment, as `Settings.environ` holds it). Every mistake is a ConfigurationError naming the
file, the handler or subscription, the key and the line. A handler's keys are the ones its
class declares (workers/handlers/). Match values are globs (fnmatch, case-sensitive) unless
written `/like this/` (a regex that must match the whole value). A value of `events`,
`statuses` or `transitions` that can match none of the values those keys ever see is an error
("did you mean"): a typo there would silence a subscription for good.

An optional `alerts:` section names handlers told when deliveries are dead-lettered or CircleCI
refuses the token, at most once per `interval_seconds` each (workers/alerts.py):

```yaml
alerts:
  handlers: [ops-slack]
  interval_seconds: 300
```
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from config.errors import ConfigurationError
from workers.handlers import HANDLER_TYPES, build_handler
from workers.handlers.base import HandlerConfig
from workers.jobs import JOB_COMPLETED, WORKFLOW_COMPLETED
from workers.transition import KINDS
from workers.vcs import slug_forms

MATCH_KEYS = ("events", "projects", "branches", "tags", "workflows", "jobs", "statuses", "transitions")
# CircleCI's workflow and job statuses (API v2's enums, a superset of what webhooks document:
# ../shared/reference/circleci-api-v2.md), our transition kinds, the event types we route.
STATUSES = (
    "success", "running", "not_run", "failed", "error", "failing", "on_hold", "canceled", "unauthorized",
    "retried", "queued", "not_running", "infrastructure_fail", "timedout", "terminated-unknown", "blocked",
)  # fmt: skip
KNOWN_VALUES = {"events": (WORKFLOW_COMPLETED, JOB_COMPLETED), "statuses": STATUSES, "transitions": KINDS}
ALERT_KEYS = ("handlers", "interval_seconds")
ALERT_INTERVAL_SECONDS = 300  # the default: at most one alert per handler every 5 minutes
ALERT_INTERVAL_RANGE = (1, 86400)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Pattern:
    source: str
    regex: re.Pattern[str] = field(repr=False)

    def matches(self, value: str) -> bool:
        return self.regex.fullmatch(value) is not None


@dataclass(frozen=True)
class Subscription:
    """A named filter: an event matches when every given key has a value matching one of its patterns."""

    name: str
    handlers: tuple[str, ...]
    match: Mapping[str, tuple[Pattern, ...]]
    line: int = 0

    def matches(self, event: Mapping[str, Any]) -> bool:
        return all(
            any(p.matches(v) for p in patterns for v in event_values(event, key))
            for key, patterns in self.match.items()
        )


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
    alerts: AlertConfig | None = None  # no `alerts:` section: nobody is told

    def matching_subscriptions(self, event: Mapping[str, Any]) -> list[Subscription]:
        """The subscriptions an event matches, in file order (for previews)."""
        return [s for s in self.subscriptions if s.matches(event)]

    def match(self, event: Mapping[str, Any]) -> list[str]:
        """The handler names an event goes to: each once, in order of first mention."""
        return list(dict.fromkeys(name for s in self.matching_subscriptions(event) for name in s.handlers))


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


def load_routes(
    path: str | Path,
    environ: Mapping[str, str],
    *,
    check_handler: Callable[[HandlerConfig], object] | None = None,
) -> Routes:
    """Read, substitute and check a routes file; raises ConfigurationError naming file, place, key and line.

    `check_handler` builds each handler once (imports callables, renders templates); by default
    `workers.handlers.build_handler`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"routes file {path}: cannot be read ({exc.strerror})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise ConfigurationError(f"routes file {path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return _Reader(path, environ).routes(root, check_handler)


class _Reader:
    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ

    def error(self, node: yaml.Node | None, where: str, message: str) -> ConfigurationError:
        line = f", line {node.start_mark.line + 1}" if node is not None else ""
        return ConfigurationError(f"routes file {self.path}{line}: {where}: {message}")

    def mapping(self, node: yaml.Node | None, where: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, where, "expected a mapping")
        return {str(k.value): (k, v) for k, v in node.value}

    def scalar(self, node: yaml.Node, where: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            raise self.error(node, where, "expected a string")
        return self.substitute(str(node.value), node, where)

    def strings(self, node: yaml.Node, where: str) -> list[tuple[str, yaml.Node]]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        return [(self.scalar(item, where), item) for item in items]

    def substitute(self, value: str, node: yaml.Node, where: str) -> str:
        def replace(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in self.environ:
                return self.environ[name]
            if default is not None:
                return default
            raise self.error(node, where, f"environment variable {name} is not set and has no default")

        return _VAR.sub(replace, value)

    def routes(self, root: yaml.Node | None, check: Callable[[HandlerConfig], object] | None) -> Routes:
        top = self.mapping(root, "top level")
        for key, (k, _) in top.items():
            if key not in ("handlers", "subscriptions", "alerts"):
                raise self.error(k, "top level", f"unknown key {key!r} (expected handlers, subscriptions, alerts)")
        if "handlers" not in top:
            raise self.error(root, "top level", "missing key 'handlers'")
        handlers = {
            name: self.handler(name, k, v) for name, (k, v) in self.mapping(top["handlers"][1], "handlers").items()
        }
        if check is None:

            def check(config: HandlerConfig) -> object:
                return build_handler(config.name, config)

        for config in handlers.values():
            try:
                check(config)
            except ConfigurationError as exc:
                raise ConfigurationError(f"routes file {self.path}, line {config.line}: {exc.message}") from None
        subs_node = top.get("subscriptions", (None, yaml.SequenceNode("tag:yaml.org,2002:seq", [])))[1]
        if not isinstance(subs_node, yaml.SequenceNode):
            raise self.error(subs_node, "subscriptions", "expected a list")
        subscriptions = [self.subscription(i, node, handlers) for i, node in enumerate(subs_node.value)]
        names = [s.name for s in subscriptions]
        for s in subscriptions:
            if names.count(s.name) > 1:
                raise self.error(None, f"subscription {s.name!r}", f"name used twice (line {s.line})")
        alerts = self.alerts(*top["alerts"], handlers) if "alerts" in top else None
        return Routes(handlers=handlers, subscriptions=subscriptions, alerts=alerts)

    def handler(self, name: str, key_node: yaml.Node, node: yaml.Node) -> HandlerConfig:
        where = f"handler {name!r}"
        items = self.mapping(node, where)
        if "type" not in items:
            raise self.error(key_node, where, "missing key 'type'")
        kind = self.scalar(items["type"][1], f"{where}, key 'type'")
        if kind not in HANDLER_TYPES:
            known = ", ".join(HANDLER_TYPES)
            raise self.error(items["type"][1], f"{where}, key 'type'", f"unknown type {kind!r} (expected {known})")
        required, optional = frozenset(HANDLER_TYPES[kind].required), HANDLER_TYPES[kind].optional
        options: dict[str, str | None] = dict(optional)
        for key, (k, v) in items.items():
            if key == "type":
                continue
            if key not in required and key not in optional:
                allowed = ", ".join(sorted(required | optional.keys())) or "no other keys"
                raise self.error(k, f"{where}, key {key!r}", f"unknown key for type {kind} (allowed: {allowed})")
            # never echo the value: urls, keys and secrets are secrets
            value = self.scalar(v, f"{where}, key {key!r}")
            if not value.strip():
                raise self.error(v, f"{where}, key {key!r}", "is empty")
            if key == "url" and not value.startswith(("https://", "http://")):
                raise self.error(v, f"{where}, key 'url'", "expected an http:// or https:// URL")
            options[key] = value
        for key in sorted(required - items.keys()):
            raise self.error(key_node, f"{where}, key {key!r}", f"missing required key for type {kind}")
        return HandlerConfig(name=name, type=kind, options=options, line=key_node.start_mark.line + 1)

    def subscription(self, index: int, node: yaml.Node, handlers: Mapping[str, HandlerConfig]) -> Subscription:
        items = self.mapping(node, f"subscription #{index + 1}")
        name = self.scalar(items["name"][1], f"subscription #{index + 1}, key 'name'") if "name" in items else None
        where = f"subscription {name!r}" if name else f"subscription #{index + 1}"
        if "handlers" not in items:
            raise self.error(node, f"{where}, key 'handlers'", "missing required key")
        names = self.handler_names(items["handlers"][1], where, handlers)
        match: dict[str, tuple[Pattern, ...]] = {}
        for key, (k, v) in items.items():
            if key in ("name", "handlers"):
                continue
            if key not in MATCH_KEYS:
                raise self.error(k, f"{where}, key {key!r}", f"unknown match key (expected {', '.join(MATCH_KEYS)})")
            place = f"{where}, key {key!r}"
            match[key] = tuple(
                self.pattern(s, item, place, KNOWN_VALUES.get(key)) for s, item in self.strings(v, place)
            )
        return Subscription(
            name=name or f"#{index + 1}", handlers=tuple(names), match=match, line=node.start_mark.line + 1
        )

    def handler_names(self, node: yaml.Node, where: str, handlers: Mapping[str, HandlerConfig]) -> list[str]:
        """The handler names a `handlers:` key lists, each one defined under `handlers:`."""
        names: list[str] = []
        for handler, item in self.strings(node, f"{where}, key 'handlers'"):
            if handler not in handlers:
                raise self.error(item, f"{where}, key 'handlers'", f"unknown handler {handler!r}")
            names.append(handler)
        return names

    def alerts(self, key_node: yaml.Node, node: yaml.Node, handlers: Mapping[str, HandlerConfig]) -> AlertConfig:
        items = self.mapping(node, "alerts")
        for key, (k, _) in items.items():
            if key not in ALERT_KEYS:
                raise self.error(k, f"alerts, key {key!r}", f"unknown key (expected {', '.join(ALERT_KEYS)})")
        if "handlers" not in items:
            raise self.error(node, "alerts, key 'handlers'", "missing required key")
        names = self.handler_names(items["handlers"][1], "alerts", handlers)
        if not names:
            raise self.error(items["handlers"][1], "alerts, key 'handlers'", "expected at least one handler")
        interval = ALERT_INTERVAL_SECONDS
        if "interval_seconds" in items:
            value_node = items["interval_seconds"][1]
            value = self.scalar(value_node, "alerts, key 'interval_seconds'")
            low, high = ALERT_INTERVAL_RANGE
            if not value.isdigit() or not low <= int(value) <= high:
                raise self.error(
                    value_node,
                    "alerts, key 'interval_seconds'",
                    f"expected whole seconds from {low} to {high}, got {value!r}",
                )
            interval = int(value)
        return AlertConfig(
            handlers=tuple(dict.fromkeys(names)), interval_seconds=interval, line=key_node.start_mark.line + 1
        )

    def pattern(self, source: str, node: yaml.Node, where: str, known: tuple[str, ...] | None = None) -> Pattern:
        if len(source) >= 2 and source.startswith("/") and source.endswith("/"):
            try:
                pattern = Pattern(source, re.compile(source[1:-1]))
            except re.error as exc:
                raise self.error(node, where, f"invalid regex {source!r} ({exc})") from None
        else:
            pattern = Pattern(source, re.compile(fnmatch.translate(source)))
        if known is not None and not any(pattern.matches(value) for value in known):
            close = difflib.get_close_matches(source, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise self.error(node, where, f"{source!r} can never match: the values are {', '.join(known)}{hint}")
        return pattern


def _dicts(value: Any) -> Iterable[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
