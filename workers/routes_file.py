"""The routes file: read, `${VAR}` substituted and checked, into `Routes` (workers/routes.py).

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

An optional `redact:` list adds regular expressions to the secrets masked in log tails
(workers/secret_mask.py): the first group of a match when the pattern has one, else the match.

An optional `alerts:` section names handlers told when deliveries are dead-lettered or CircleCI
refuses the token, at most once per `interval_seconds` each (workers/alerts.py):

```yaml
alerts:
  handlers: [ops-slack]
  interval_seconds: 300
```

An optional `actions:` section says who may approve, cancel or rerun from Slack
(workers/permissions.py): each grant names Slack user ids (`U…`/`W…`) and/or user group ids
(`S…`), never names, and may scope itself with `projects`, `branches`, `workflows`, `jobs` globs.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from config.errors import ConfigurationError
from config.settings import is_loopback
from config.suggestion import did_you_mean
from workers.action_buttons import ACTIONS
from workers.handlers import HANDLER_TYPES, build_handler, capabilities_of, identities
from workers.handlers.base import COMMON_OPTIONS, HandlerConfig
from workers.people import People, Person
from workers.permissions import GRANT_KEYS, SCOPE_KEYS, WHO_KEYS, Grant, Permissions
from workers.routes import (
    ALERT_INTERVAL_SECONDS,
    KNOWN_VALUES,
    MATCH_KEYS,
    OPTION_KEYS,
    AlertConfig,
    Pattern,
    Routes,
    Subscription,
)

TOP_LEVEL_KEYS = ("handlers", "subscriptions", "alerts", "people", "redact", "actions")
ALERT_KEYS = ("handlers", "interval_seconds")
ALERT_INTERVAL_RANGE = (1, 86400)
# Handler keys holding a URL a token or payload is sent to: https://, or http:// on loopback only,
# unless the handler says `allow_insecure_http: true` (issue 23 item 6)
URL_KEYS = ("url", "api_url")
INSECURE_HTTP = "allow_insecure_http"
# Dummy values for `load_routes(placeholders=True)`, by the key a `${VAR}` is the whole value of
# (besides a handler's own: `Handler.placeholders`): `.invalid` never resolves (RFC 2606), so
# nothing checked this way can be sent anywhere.
PLACEHOLDERS = {
    "url": "https://{name}.placeholder.invalid/",
    "": "placeholder-{name}",
}
SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
SLACK_GROUP = re.compile(r"S[A-Z0-9]{2,}")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_routes(
    path: str | Path,
    environ: Mapping[str, str],
    *,
    check_handler: Callable[[HandlerConfig], object] | None = None,
    placeholders: bool = False,
    reloading: bool = False,
) -> Routes:
    """Read, substitute and check a routes file.

    Raises one ConfigurationError listing every mistake in the file, a line each (also as
    `details["problems"]`), each naming the file, line, handler or subscription and key.

    `placeholders`: a `${VAR}` that is not set and has no default takes a dummy value of the
    shape its key expects (the handler type's `placeholders`, else PLACEHOLDERS), so CI can check
    a file without the real secrets.
    `check_handler` builds each handler once (imports callables, renders templates); by default
    `workers.handlers.build_handler`.
    `reloading`: the file is to replace routes in use, so it must have `subscriptions:` (`[]` to
    route nothing): a file cut short by an interrupted write or a half-updated ConfigMap loses
    its tail, and swapping it in would send nothing anywhere (issue 23, item 7).
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
    return _Reader(path, environ, placeholders, reloading=reloading).routes(root, check_handler)


class _Reader:
    """Walks the file once, noting every mistake and going on; `routes` raises them all together."""

    def __init__(self, path: Path, environ: Mapping[str, str], placeholders: bool, *, reloading: bool) -> None:
        self.path = path
        self.reloading = reloading
        self.environ = environ
        self.problems: list[str] = []
        self.placeholders: list[str] | None = [] if placeholders else None

    def error(self, node: yaml.Node | None, where: str, message: str) -> ConfigurationError:
        line = f", line {node.start_mark.line + 1}" if node is not None else ""
        return ConfigurationError(f"routes file {self.path}{line}: {where}: {message}")

    def note(self, node: yaml.Node | None, where: str, message: str) -> None:
        self.problems.append(self.error(node, where, message).message)

    @contextmanager
    def noting(self) -> Iterator[None]:
        """A mistake inside is noted and the walk goes on with the next item."""
        try:
            yield
        except ConfigurationError as exc:
            self.problems.append(exc.message)

    def mapping(self, node: yaml.Node | None, where: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, where, "expected a mapping")
        return {str(k.value): (k, v) for k, v in node.value}

    def scalar(self, node: yaml.Node, where: str, key: str = "", shapes: Mapping[str, str] | None = None) -> str:
        """A string value, `${VAR}` substituted (a placeholder of `shapes[key]`'s shape when asked)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            raise self.error(node, where, "expected a string")
        return self.substitute(str(node.value), node, where, key, shapes or {})

    def strings(self, node: yaml.Node, where: str) -> list[tuple[str, yaml.Node]]:
        """The strings of a string-or-list value; a bad item is noted and left out."""
        found = []
        for item in node.value if isinstance(node, yaml.SequenceNode) else [node]:
            with self.noting():
                found.append((self.scalar(item, where), item))
        return found

    def substitute(
        self, value: str, node: yaml.Node, where: str, key: str = "", shapes: Mapping[str, str] | None = None
    ) -> str:
        shape = (shapes or {}).get(key) or PLACEHOLDERS.get(key, PLACEHOLDERS[""])

        def replace(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in self.environ:
                return self.environ[name]
            if default is not None:
                return default
            if self.placeholders is not None:
                self.placeholders.append(name)
                dummy = name.lower().replace("_", "-")
                return shape.format(name=dummy) if m.group(0) == value else dummy
            raise self.error(node, where, f"environment variable {name} is not set and has no default")

        return _VAR.sub(replace, value)

    def routes(self, root: yaml.Node | None, check: Callable[[HandlerConfig], object] | None) -> Routes:
        top = self.mapping(root, "top level")
        for key, (k, _) in top.items():
            if key not in TOP_LEVEL_KEYS:
                expected = f"(expected {', '.join(TOP_LEVEL_KEYS)}){did_you_mean(key, TOP_LEVEL_KEYS)}"
                self.note(k, "top level", f"unknown key {key!r} {expected}")
        declared: dict[str, HandlerConfig | None] = {}
        if "handlers" not in top:
            self.note(root, "top level", "missing key 'handlers'")
        else:
            with self.noting():
                for name, (k, v) in self.mapping(top["handlers"][1], "handlers").items():
                    declared[name] = self.handler(name, k, v)
        handlers = {name: config for name, config in declared.items() if config is not None}
        for config in handlers.values():
            try:
                (check or _build)(config)
            except ConfigurationError as exc:
                self.problems.append(f"routes file {self.path}, line {config.line}: {exc.message}")
        subscriptions = []
        if self.reloading and "subscriptions" not in top:
            self.note(root, "top level", "missing key 'subscriptions' (a file cut short? write 'subscriptions: []' to "
                      "route nothing)")  # fmt: skip
        subs_node = top.get("subscriptions", (None, yaml.SequenceNode("tag:yaml.org,2002:seq", [])))[1]
        if isinstance(subs_node, yaml.SequenceNode):
            for i, node in enumerate(subs_node.value):
                with self.noting():
                    subscription = self.subscription(i, node, declared)
                    if subscription is not None:
                        subscriptions.append(subscription)
        else:
            self.note(subs_node, "subscriptions", "expected a list")
        first: dict[str, int] = {}
        for s in subscriptions:
            if s.name in first:
                where = f"routes file {self.path}, line {s.line}: subscription {s.name!r}"
                self.problems.append(f"{where}: name used twice (first on line {first[s.name]})")
            first.setdefault(s.name, s.line)
        alerts = None
        if "alerts" in top:
            with self.noting():
                alerts = self.alerts(*top["alerts"], declared)
        people = People()
        if "people" in top:
            with self.noting():
                people = self.people(top["people"][1])
        redact: tuple[str, ...] = ()
        if "redact" in top:
            with self.noting():
                redact = self.redact(top["redact"][1])
        permissions = Permissions()
        if "actions" in top:
            with self.noting():
                permissions = self.permissions(top["actions"][1])
        if self.problems:
            raise ConfigurationError("\n".join(self.problems), details={"problems": list(self.problems)})
        placeholders = tuple(dict.fromkeys(self.placeholders or ()))
        return Routes(
            handlers, subscriptions, placeholders, alerts=alerts, people=people, redact=redact, permissions=permissions
        )

    def redact(self, node: yaml.Node) -> tuple[str, ...]:
        """`redact:`: regular expressions masked in log tails (their first group, when they have
        one) besides the built-in secret patterns (workers/secret_mask.py); mistakes noted."""
        found = []
        for source, item in self.strings(node, "redact"):
            try:
                compiled = re.compile(source)
            except re.error as exc:
                self.note(item, "redact", f"invalid regex {source!r} ({exc})")
                continue
            if compiled.search("") is not None:
                self.note(item, "redact", f"{source!r} matches the empty string: it must match a secret's text")
                continue
            found.append(source)
        return tuple(found)

    def permissions(self, node: yaml.Node) -> Permissions:
        """`actions:`: per action a list of grants (users and/or groups, scope globs); mistakes noted."""
        grants: dict[str, tuple[Grant, ...]] = {}
        for action, (k, v) in self.mapping(node, "actions").items():
            where = f"actions, key {action!r}"
            if action not in ACTIONS:
                self.note(k, where, f"unknown action (expected {', '.join(ACTIONS)}){did_you_mean(action, ACTIONS)}")
                continue
            if not isinstance(v, yaml.SequenceNode) or not v.value:
                self.note(v, where, "expected a list of grants: - {users: [U…], projects: [...]}")
                continue
            found = []
            for i, item in enumerate(v.value):
                with self.noting():
                    found.append(self.grant(item, f"{where}, grant #{i + 1}"))
            grants[action] = tuple(found)
        return Permissions(grants)

    def grant(self, node: yaml.Node, where: str) -> Grant:
        items = self.mapping(node, where)
        ids: dict[str, list[str]] = {"users": [], "groups": []}
        scope: dict[str, tuple[Pattern, ...]] = {}
        for key, (k, v) in items.items():
            place = f"{where}, key {key!r}"
            if key not in GRANT_KEYS:
                self.note(k, place, f"unknown key (expected {', '.join(GRANT_KEYS)}){did_you_mean(key, GRANT_KEYS)}")
            elif key in WHO_KEYS:
                shape = SLACK_USER if key == "users" else SLACK_GROUP
                for value, item in self.strings(v, place):
                    if shape.fullmatch(value.strip()):
                        ids[key].append(value.strip())
                    else:
                        hint = "a Slack user id (U… or W…)" if key == "users" else "a Slack user group id (S…)"
                        self.note(item, place, f"{value!r} is not {hint}: names can be changed, ids cannot")
            else:
                patterns = []
                for value, item in self.strings(v, place):
                    with self.noting():
                        patterns.append(self.pattern(value, item, place))
                scope[key] = tuple(patterns)
        if not ids["users"] and not ids["groups"]:
            raise self.error(node, where, "names nobody: give users: [U…] and/or groups: [S…]")
        ordered = {key: scope[key] for key in SCOPE_KEYS if key in scope}
        return Grant(frozenset(ids["users"]), tuple(ids["groups"]), ordered, line=node.start_mark.line + 1)

    def people(self, node: yaml.Node) -> People:
        """`people:`: a commit e-mail or VCS login -> {slack, discord, teams, …, name}: a key for
        each registered platform that mentions people (workers/handlers); mistakes noted."""
        known = identities()
        keys = (*known, "name")
        found: dict[str, Person] = {}
        for who, (k, v) in self.mapping(node, "people").items():
            where = f"people {who!r}"
            with self.noting():
                ids: dict[str, str] = {}
                name = None
                for key, (key_node, value_node) in self.mapping(v, where).items():
                    place = f"{where}, key {key!r}"
                    if key not in keys:
                        hint = did_you_mean(key, keys)
                        self.note(key_node, place, f"unknown key (expected {', '.join(keys)}){hint}")
                        continue
                    with self.noting():
                        value = self.scalar(value_node, place).strip()
                        if key == "name":
                            name = value
                        elif not known[key].accepts(value):
                            self.note(value_node, place, f"{value!r} is not a {known[key].hint}")
                        else:
                            ids[key] = value
                found[who] = Person(ids=ids, name=name)
                if not ids:
                    self.note(k, where, f"names no chat identity (expected one of {', '.join(known)})")
        return People.of(found)

    def handler(self, name: str, key_node: yaml.Node, node: yaml.Node) -> HandlerConfig | None:
        """One handler's config, or None when it has mistakes (each noted)."""
        where = f"handler {name!r}"
        before = len(self.problems)
        with self.noting():
            items = self.mapping(node, where)
            if "type" not in items:
                raise self.error(key_node, where, "missing key 'type'")
            kind = self.scalar(items["type"][1], f"{where}, key 'type'")
            if kind not in HANDLER_TYPES:
                known = ", ".join(HANDLER_TYPES)
                message = f"unknown type {kind!r} (expected {known}){did_you_mean(kind, HANDLER_TYPES)}"
                raise self.error(items["type"][1], f"{where}, key 'type'", message)
            required, optional = frozenset(HANDLER_TYPES[kind].required), HANDLER_TYPES[kind].optional
            options: dict[str, str | None] = dict(optional)
            allowed = required | optional.keys() | COMMON_OPTIONS.keys() | {INSECURE_HTTP}
            for key, (k, v) in items.items():
                if key != "type":
                    with self.noting():
                        options[key] = self.option(kind, f"{where}, key {key!r}", k, v, allowed)
            for key in sorted(required - items.keys()):
                self.note(key_node, f"{where}, key {key!r}", f"missing required key for type {kind}")
            insecure = options.pop(INSECURE_HTTP, None)
            for key in URL_KEYS:
                if insecure != "true" and key in items and _in_clear(options.get(key)):
                    self.note(
                        items[key][1],
                        f"{where}, key {key!r}",
                        "plain http:// to a host that is not loopback would send its token or payload in clear:"
                        f" use https://, or set {INSECURE_HTTP}: true on this handler",
                    )
            if len(self.problems) == before:
                return HandlerConfig(name=name, type=kind, options=options, line=key_node.start_mark.line + 1)
        return None

    def option(self, kind: str, where: str, key_node: yaml.Node, node: yaml.Node, allowed: Iterable[str]) -> str:
        key = str(key_node.value)
        if key not in allowed:
            listed = ", ".join(sorted(allowed)) or "no other keys"
            hint = did_you_mean(key, allowed)
            raise self.error(key_node, where, f"unknown key for type {kind} (allowed: {listed}){hint}")
        # never echo the value: urls, keys and secrets are secrets
        value = self.scalar(node, where, key, HANDLER_TYPES[kind].placeholders)
        if not value.strip():
            raise self.error(node, where, "is empty")
        if key == "url" and not value.startswith(("https://", "http://")):
            raise self.error(node, where, "expected an http:// or https:// URL")
        if key in COMMON_OPTIONS and value.lower() not in COMMON_OPTIONS[key]:
            raise self.error(node, where, f"{value!r} is not one of {', '.join(COMMON_OPTIONS[key])}")
        return value

    def subscription(
        self, index: int, node: yaml.Node, declared: Mapping[str, HandlerConfig | None]
    ) -> Subscription | None:
        """One subscription, or None when it has mistakes (each noted); a handler with mistakes is still known."""
        before = len(self.problems)
        items = self.mapping(node, f"subscription #{index + 1}")
        name = None
        if "name" in items:
            with self.noting():
                name = self.scalar(items["name"][1], f"subscription #{index + 1}, key 'name'")
        where = f"subscription {name!r}" if name else f"subscription #{index + 1}"
        names = self.handler_names(node, items, where, declared)
        match: dict[str, tuple[Pattern, ...]] = {}
        options: dict[str, tuple[str, ...]] = {}
        for key, (k, v) in items.items():
            place = f"{where}, key {key!r}"
            if key in ("name", "handlers"):
                continue
            if key in OPTION_KEYS:
                allowed = OPTION_KEYS[key]
                values = [value.lower() for value, _ in self.strings(v, place)]
                for value in values:
                    if value not in allowed:
                        self.note(
                            v, place, f"{value!r} is not one of {', '.join(allowed)}{did_you_mean(value, allowed)}"
                        )
                options[key] = tuple(values)
                continue
            if key not in MATCH_KEYS:
                known = (*MATCH_KEYS, *OPTION_KEYS)
                self.note(k, place, f"unknown match key (expected {', '.join(known)}){did_you_mean(key, known)}")
                continue
            patterns = []
            for s, item in self.strings(v, place):
                with self.noting():
                    patterns.append(self.pattern(s, item, place, KNOWN_VALUES.get(key)))
            match[key] = tuple(patterns)
        self.check_capable(node, where, names, declared, options)
        if len(self.problems) > before:
            return None
        return Subscription(
            name=name or f"#{index + 1}",
            handlers=tuple(names),
            match=match,
            line=node.start_mark.line + 1,
            mentions=options.get("mentions", ("true",)) != ("false",),
            notify=options.get("notify", ()),
            job_replies=options.get("job_replies") == ("true",),
            skip_known_flaky=options.get("skip_known_flaky") == ("true",),
        )

    def check_capable(
        self,
        node: yaml.Node,
        where: str,
        names: Sequence[str],
        declared: Mapping[str, HandlerConfig | None],
        options: Mapping[str, tuple[str, ...]],
    ) -> None:
        """`notify:` and `job_replies: true` ask for what only some platforms can do (direct messages,
        threads): a subscription none of whose handlers can is a value that never does anything."""
        kinds = {n: config.type for n in names if (config := declared.get(n)) is not None}
        if not kinds:
            return  # its handlers have mistakes of their own, already noted
        wanted = []
        if options.get("notify"):
            wanted.append(("notify", "direct_messages", "send direct messages"))
        if options.get("job_replies") == ("true",):
            wanted.append(("job_replies", "threads", "reply in threads"))
        for key, capability, doing in wanted:
            if not any(getattr(capabilities_of(kind), capability) for kind in kinds.values()):
                able = sorted(k for k in HANDLER_TYPES if getattr(capabilities_of(k), capability))
                handlers = ", ".join(f"{n} ({kind})" for n, kind in kinds.items())
                self.note(node, f"{where}, key {key!r}", f"does nothing here: none of its handlers can {doing} "
                          f"({handlers}); the types that can: {', '.join(able) or 'none'}")  # fmt: skip

    def handler_names(
        self,
        node: yaml.Node,
        items: Mapping[str, tuple[yaml.Node, yaml.Node]],
        where: str,
        declared: Mapping[str, object],
    ) -> list[str]:
        """The names a required `handlers:` key lists that `handlers:` declares; the others noted."""
        names: list[str] = []
        if "handlers" not in items:
            self.note(node, f"{where}, key 'handlers'", "missing required key")
        for handler, item in (
            self.strings(items["handlers"][1], f"{where}, key 'handlers'") if "handlers" in items else ()
        ):
            if handler in declared:
                names.append(handler)
            else:
                hint = did_you_mean(handler, declared)
                self.note(item, f"{where}, key 'handlers'", f"unknown handler {handler!r}{hint}")
        return names

    def alerts(self, key_node: yaml.Node, node: yaml.Node, declared: Mapping[str, object]) -> AlertConfig | None:
        """The `alerts:` section, or None when it has mistakes (each noted)."""
        before = len(self.problems)
        items = self.mapping(node, "alerts")
        for key, (k, _) in items.items():
            if key not in ALERT_KEYS:
                expected = f"(expected {', '.join(ALERT_KEYS)}){did_you_mean(key, ALERT_KEYS)}"
                self.note(k, f"alerts, key {key!r}", f"unknown key {expected}")
        names = self.handler_names(node, items, "alerts", declared)
        if "handlers" in items and not names and len(self.problems) == before:
            self.note(items["handlers"][1], "alerts, key 'handlers'", "expected at least one handler")
        interval = ALERT_INTERVAL_SECONDS
        if "interval_seconds" in items:
            with self.noting():
                value_node = items["interval_seconds"][1]
                value = self.scalar(value_node, "alerts, key 'interval_seconds'")
                low, high = ALERT_INTERVAL_RANGE
                if not value.isdigit() or not low <= int(value) <= high:
                    message = f"expected whole seconds from {low} to {high}, got {value!r}"
                    raise self.error(value_node, "alerts, key 'interval_seconds'", message)
                interval = int(value)
        if len(self.problems) > before:
            return None
        line = key_node.start_mark.line + 1
        return AlertConfig(handlers=tuple(dict.fromkeys(names)), interval_seconds=interval, line=line)

    def pattern(self, source: str, node: yaml.Node, where: str, known: tuple[str, ...] | None = None) -> Pattern:
        if len(source) >= 2 and source.startswith("/") and source.endswith("/"):
            try:
                pattern = Pattern(source, re.compile(source[1:-1]))
            except re.error as exc:
                raise self.error(node, where, f"invalid regex {source!r} ({exc})") from None
        else:
            pattern = Pattern(source, re.compile(fnmatch.translate(source)))
        if known is not None and not any(pattern.matches(value) for value in known):
            hint = did_you_mean(source, known)
            raise self.error(node, where, f"{source!r} can never match: the values are {', '.join(known)}{hint}")
        return pattern


def _in_clear(url: str | None) -> bool:
    """An http:// URL whose host is not loopback."""
    if not url or not url.startswith("http://"):
        return False
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return True
    return not is_loopback(host)


def _build(config: HandlerConfig) -> object:
    return build_handler(config.name, config)
