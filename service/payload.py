"""The webhook payloads CircleCI documents, checked just enough to be safe to queue.

Payloads are open maps (CircleCI adds fields without notice), so unknown fields are kept as
they are and never rejected; only the fields the rest of the system relies on are required,
with their types. https://circleci.com/docs/reference/outbound-webhooks-reference/

What the workers later put into Redis keys, API paths and chat messages is checked here, at
the edge: ids are short ASCII tokens (CircleCI's are UUIDs), the project slug is three plain
path segments (vcs/org/project), `happened_at` is a time we can read, and nesting stops at
`MAX_DEPTH` levels (CircleCI's payloads use about five; the worker's JSON decoder, unlike
orjson here, would give up near a thousand).

Integers must fit in 64 bits (-2**63 to 2**64-1), what the workers' JSON encoder (orjson) writes:
orjson reads a larger one here as a float, but the workers read the stored body with Python's
json, get an unbounded int, and a handler that re-encodes the event (the signed webhook) failed
on every retry for the whole budget (issue 23 item 5). Such a delivery gets 422 naming the field.
Infinity, NaN and lone surrogates orjson already refuses: 400 `invalid_json`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from config.errors import InvalidJSON, PayloadInvalid
from workers.jobs import JOB_COMPLETED, PING, WORKFLOW_COMPLETED
from workers.timestamps import parse_time

EVENT_TYPES = (WORKFLOW_COMPLETED, JOB_COMPLETED, PING)

# field -> type, or a nested spec; a trailing "?" marks an optional field.
_Spec = dict[str, Any]
_COMMON: _Spec = {"id": str, "happened_at": str, "webhook": {"id": str, "name": str}}
_PROJECT: _Spec = {"id": str, "slug": str, "name": str}
_ORGANIZATION: _Spec = {"id": str, "name": str}
_PIPELINE: _Spec = {
    "id": str,
    "number": int,
    "created_at": str,
    "trigger": {"type": str},
    "trigger_parameters?": dict,
    "vcs?": dict,
}
_WORKFLOW: _Spec = {"id": str, "name": str, "created_at": str, "stopped_at?": str, "url": str}
SPECS: dict[str, _Spec] = {
    PING: _COMMON,
    WORKFLOW_COMPLETED: {
        **_COMMON,
        "project": _PROJECT,
        "organization": _ORGANIZATION,
        "pipeline": _PIPELINE,
        "workflow": {**_WORKFLOW, "status": str},
    },
    JOB_COMPLETED: {
        **_COMMON,
        "project": _PROJECT,
        "organization": _ORGANIZATION,
        "pipeline": _PIPELINE,
        # CircleCI's own GitLab job-completed sample has no workflow object.
        "workflow?": _WORKFLOW,
        "job": {
            "id": str,
            "number": int,
            "name": str,
            "status": str,
            "started_at": str,
            "stopped_at?": str,
        },
    },
}
_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object"}
MAX_DEPTH = 32
# the integers orjson encodes; orjson decodes any other as a float at least this large
MIN_INT, MAX_INT = -(2**63), 2**64 - 1
MAX_ID_CHARS = 128
_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_ID_CHARS - 1}}}", re.ASCII)
_SLUG_SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,200}", re.ASCII)


@dataclass(frozen=True)
class WebhookEvent:
    """One delivery: its id, its type (the header's, when it sent one) and the payload as sent."""

    id: str
    type: str
    payload: dict[str, Any]

    @property
    def body_type(self) -> str | None:
        value = self.payload.get("type")
        return value if isinstance(value, str) else None

    @property
    def happened_at(self) -> datetime | None:
        return parse_time(self.payload.get("happened_at"))


def parse_event(body: bytes, header_type: str | None) -> WebhookEvent:
    """Parse and check a delivery. The `circleci-event-type` header must agree with the body's `type`
    (the body is signed, the header is not); a body without `type` takes the header's.

    Unknown event types are returned unchecked beyond `id`, so the caller can acknowledge them.
    """
    try:
        payload = orjson.loads(body)  # UTF-8 only, as RFC 8259 asks; nesting capped at 1024
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"request body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(payload, dict):
        raise PayloadInvalid(
            f"expected a JSON object at the top level, got {type(payload).__name__}", details={"field": ""}
        )
    if _check_depth(payload):
        _check_integers(body)
    body_type = payload.get("type")
    header = (header_type or "").strip()
    if header and isinstance(body_type, str) and body_type != header:
        # the header is not signed, the body is: a relabelled delivery must not change how it is handled
        raise PayloadInvalid(
            f"the circleci-event-type header says {header[:64]!r} but the signed body's type is {body_type[:64]!r}",
            details={"field": "type"},
        )
    event_type = header or (body_type if isinstance(body_type, str) else "")
    if not event_type:
        raise PayloadInvalid(
            "missing event type: expected the circleci-event-type header or a string field 'type'",
            details={"field": "type"},
        )
    _check(payload, RULES.get(event_type, _ID_ONLY))
    return WebhookEvent(id=payload["id"], type=event_type, payload=payload)


_Rule = tuple[tuple[str, ...], str, type, bool, str]


def _rules(spec: _Spec, parents: tuple[str, ...] = ()) -> list[_Rule]:
    """The spec as a flat list, parents before children: (parents, name, type, optional, path)."""
    rules: list[_Rule] = []
    for key, expected in spec.items():
        name = key.rstrip("?")
        want = dict if isinstance(expected, dict) else expected
        rules.append((parents, name, want, key.endswith("?"), ".".join((*parents, name))))
        if isinstance(expected, dict):
            rules += _rules(expected, (*parents, name))
    return rules


RULES = {event_type: _rules(spec) for event_type, spec in SPECS.items()}
_ID_ONLY = _rules({"id": str})


def _check(obj: dict[str, Any], rules: list[_Rule]) -> None:
    for parents, name, want, optional, path in rules:
        node: Any = obj
        for parent in parents:
            node = node.get(parent)
            if node is None:  # an optional parent that is absent: nothing below it to check
                break
        else:
            value = node.get(name)
            if value is None:
                if optional:
                    continue
                raise PayloadInvalid(f"missing required field '{path}'", details={"field": path})
            # exact types: a JSON true is a bool, not the int a job number must be
            if type(value) is not want:
                raise PayloadInvalid(
                    f"field '{path}' must be {_TYPE_NAMES[want]}, got {_json_type(value)}",
                    details={"field": path, "expected": _TYPE_NAMES[want], "got": _json_type(value)},
                )
            if name == "id" and isinstance(value, str) and not value.strip():
                raise PayloadInvalid(f"field '{path}' must not be empty", details={"field": path})
            check = _VALUE_CHECKS.get(name if name == "id" else path)
            if check is not None and isinstance(value, str):
                check(path, value)


def _check_id(path: str, value: str) -> None:
    if not _ID.fullmatch(value):
        raise PayloadInvalid(
            f"field '{path}' must be 1 to {MAX_ID_CHARS} ASCII letters, digits, '.', '_' or '-' "
            f"(starting with a letter or digit), got {_shown(value)}",
            details={"field": path},
        )


def _check_slug(path: str, value: str) -> None:
    segments = value.split("/")
    if len(segments) != 3 or not all(_SLUG_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        raise PayloadInvalid(
            f"field '{path}' must be 3 '/'-separated segments of ASCII letters, digits, '.', '_' "
            f"or '-' (vcs/org/project, e.g. gh/org/repo), got {_shown(value)}",
            details={"field": path},
        )


def _check_time(path: str, value: str) -> None:
    if parse_time(value) is None:
        raise PayloadInvalid(
            f"field '{path}' must be an ISO 8601 time (e.g. 2026-11-30T12:00:00.000Z), got {_shown(value)}",
            details={"field": path},
        )


_VALUE_CHECKS = {"id": _check_id, "project.slug": _check_slug, "happened_at": _check_time}


def _shown(value: str) -> str:
    """A value fit for a one-line message: at most 40 characters, control characters escaped."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


def _check_depth(payload: dict[str, Any]) -> bool:
    """Refuse documents nested deeper than MAX_DEPTH (an explicit stack: no recursion to exhaust).
    True when a number is large enough to have been an integer beyond 64 bits."""
    stack: list[tuple[Any, int]] = [(payload, 1)]
    huge = False
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PayloadInvalid(
                f"the JSON document is nested more than {MAX_DEPTH} levels deep", details={"field": ""}
            )
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif isinstance(child, float) and not MIN_INT < child < 2**63:
                huge = True
    return huge


class _Huge(str):
    """An integer literal outside MIN_INT..MAX_INT, as read by Python's json."""


def _check_integers(body: bytes) -> None:
    """Read the body as the workers will (Python's json) and refuse an integer beyond 64 bits."""

    def integer(text: str) -> int | _Huge:
        value = int(text)
        return value if MIN_INT <= value <= MAX_INT else _Huge(text)

    stack: list[tuple[Any, str]] = [(json.loads(body, parse_int=integer), "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Huge):
            shown = node if len(node) <= 40 else node[:20] + "…"
            raise PayloadInvalid(
                f"field {path!r}: integer {shown} is outside the 64-bit range ({MIN_INT} to {MAX_INT}); "
                "send it as a string",
                details={"field": path},
            )
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend((child, f"{path}.{key}" if path else str(key)) for key, child in items)


def _json_type(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)
