"""The JSON Schema of the enriched event, generated from its TypedDicts (workers/enriched_event.py).

    python -m workers.event_schema > config/enriched-event.schema.json

A test checks the committed file is what this prints. The walk knows what the TypedDicts use:
str, int, float, bool, None, Literal, unions, list[X], dict[str, X], NotRequired and nested
TypedDicts (each one `$defs` entry). Objects stay open (`additionalProperties` is not false):
fields are added over time and a consumer must not refuse them.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, NotRequired, Union, get_args, get_origin, get_type_hints, is_typeddict

import orjson

from workers.enriched_event import SCHEMA_VERSION, EnrichedEvent

DESCRIPTION = (
    "The event circleci-events sends to webhook handlers and Python handlers, and stores. A field may be null "
    "when CircleCI did not say or the API could not be asked (enrichment.complete says which); objects stay "
    "open: accept fields you do not know, new ones are added without a new schema_version."
)
_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def json_schema() -> dict[str, Any]:
    """The enriched event's JSON Schema (draft 2020-12)."""
    defs: dict[str, Any] = {}
    root = _object(EnrichedEvent, defs)
    root["properties"]["schema_version"] = {"const": SCHEMA_VERSION}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"circleci-events enriched event, schema version {SCHEMA_VERSION}",
        "description": DESCRIPTION,
        **root,
        "$defs": dict(sorted(defs.items())),
    }


def _doc(text: str | None) -> str:
    return " ".join((text or "").split())


def _object(cls: Any, defs: dict[str, Any]) -> dict[str, Any]:
    hints = get_type_hints(cls, include_extras=True)
    properties, required = {}, []
    for name, hint in hints.items():
        if get_origin(hint) is NotRequired:
            hint = get_args(hint)[0]
        else:
            required.append(name)
        properties[name] = _type(hint, defs)
    out: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if cls.__doc__ and cls.__doc__ != typing.TypedDict.__doc__ and cls is not EnrichedEvent:
        out = {"description": _doc(cls.__doc__), **out}
    return out


def _type(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(hint)
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if hint is Any:
        return {}
    if is_typeddict(hint):
        name = hint.__name__
        if name not in defs:
            defs[name] = {}  # reserved first: a TypedDict may (one day) hold itself
            defs[name] = _object(hint, defs)
        return {"$ref": f"#/$defs/{name}"}
    if origin is Literal:
        return {"enum": list(get_args(hint))}
    if origin in (Union, types.UnionType):
        options = [_type(arg, defs) for arg in get_args(hint)]
        if all(set(o) == {"type"} for o in options):
            return {"type": [o["type"] for o in options]}
        return {"anyOf": options}
    if origin is list:
        return {"type": "array", "items": _type(get_args(hint)[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type(get_args(hint)[1], defs)}
    raise TypeError(f"the event schema generator does not know {hint!r}")


def render() -> bytes:
    """The committed file's bytes: the schema as indented JSON and a final newline."""
    return orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2) + b"\n"


if __name__ == "__main__":
    import sys

    sys.stdout.buffer.write(render())
