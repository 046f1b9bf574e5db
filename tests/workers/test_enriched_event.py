"""The enriched event's one typed home: the shipped JSON Schema is generated from it, and the
sample event, the enriched fixture and docs/event.md's table agree with it."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, get_type_hints, is_typeddict

import jsonschema
import pytest

from workers import event_schema
from workers.enriched_event import EnrichedEvent
from workers.message import sample_event

ROOT = Path(__file__).parents[2]
SCHEMA_FILE = ROOT / "config" / "enriched-event.schema.json"
FIXTURE = ROOT / "tests" / "fixtures" / "enriched" / "workflow-completed.failed.json"

pytestmark = pytest.mark.unit


def closed(schema: Any) -> Any:
    """The schema with every object closed (`additionalProperties: false`): a field the
    TypedDicts do not know then fails validation, so the sample cannot drift from the type."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if "properties" in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


def validate(event: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(closed(event_schema.json_schema())).validate(event)


def test_the_committed_schema_is_the_one_the_typeddicts_generate() -> None:
    assert SCHEMA_FILE.read_bytes() == event_schema.render(), (
        "regenerate it: .venv/bin/python -m workers.event_schema > config/enriched-event.schema.json"
    )


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_FILE.read_text()))


@pytest.mark.parametrize("event", [sample_event(), json.loads(FIXTURE.read_text())], ids=["sample", "fixture"])
def test_the_sample_event_and_the_fixture_have_the_typed_shape(event: dict[str, Any]) -> None:
    validate(event)


def test_a_field_the_type_does_not_know_fails_the_check() -> None:
    event = copy.deepcopy(sample_event())
    event["failed_jobs"][0]["failed_stepp"] = None
    with pytest.raises(jsonschema.ValidationError, match="failed_stepp"):
        validate(event)


def test_the_schema_keeps_objects_open_for_consumers() -> None:
    """Fields are added over time: the shipped schema must not make a consumer refuse them."""
    event = copy.deepcopy(sample_event())
    event["a_field_of_tomorrow"] = 1
    jsonschema.Draft202012Validator(event_schema.json_schema()).validate(event)


def readme_rows() -> dict[str, str]:
    """docs/event.md's table of the enriched event: field name -> meaning."""
    text = (ROOT / "docs" / "event.md").read_text()
    section = text.split("# The enriched event", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|", 1)]
        if len(cells) == 2 and cells[0].startswith("`"):
            for name in re.findall(r"`([a-z_]+)`", cells[0]):
                rows[name] = cells[1]
    return rows


def test_the_docs_table_names_every_field_of_the_event_and_no_other() -> None:
    assert set(readme_rows()) == set(get_type_hints(EnrichedEvent))


def test_the_docs_list_the_keys_of_each_object_field() -> None:
    """A row whose first code span is `{a, b, …}` lists that object's keys: every required one,
    and no key the type does not have."""
    hints = get_type_hints(EnrichedEvent)
    checked = 0
    for name, meaning in readme_rows().items():
        listed = re.match(r"[^`]*`\{([^`{}]*)\}`", meaning)
        if not listed:
            continue
        hint = hints[name]
        typed = next((a for a in getattr(hint, "__args__", (hint,)) if is_typeddict(a)), hint)
        if getattr(typed, "__origin__", None) is list:
            typed = typed.__args__[0]
        assert is_typeddict(typed), name
        keys = [k.strip() for k in listed.group(1).split(",")]
        assert set(typed.__required_keys__) <= set(keys) <= set(get_type_hints(typed)), name
        checked += 1
    assert checked >= 8
