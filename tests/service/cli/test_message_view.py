"""What `demo` and `preview` print of a rendered message, one view per handler type."""

from __future__ import annotations

import pytest

from service.cli.message_view import message_lines
from tests.workers.handlers.conftest import OPTIONS, load_event, make

TITLE = "❌ build-test-deploy failed on main — webhook-service #131"


@pytest.mark.parametrize(
    ("kind", "first", "shown"),
    [
        ("slack", f"slack text   {TITLE}", f"  [header]  {TITLE}"),
        ("teams", "card text    ", "  Status     failed"),
        ("discord", f"embed title  {TITLE}", "  Pipeline   #131"),
        ("pagerduty", "pagerduty    trigger · dedup_key ", f"summary      {TITLE} (broke main)"),
        ("webhook", "webhook      the enriched event as JSON (", None),
        ("python", f"python       calls {OPTIONS['python']['callable']}(event, log)", None),
        ("log", f"log line     notification_logged: {TITLE}", None),
    ],
)
def test_each_handler_type_shows_what_a_person_would_read(kind: str, first: str, shown: str | None) -> None:
    body = make(kind).render(load_event())
    lines = list(message_lines(kind, body if isinstance(body, dict) else load_event()))
    assert lines[0].startswith(first), lines
    assert shown is None or shown in lines, lines


def test_a_pagerduty_event_that_neither_triggers_nor_resolves_says_so() -> None:
    assert list(message_lines("pagerduty", {})) == ["pagerduty    nothing: this event neither triggers nor resolves"]


def test_a_type_without_a_view_is_shown_as_json() -> None:
    assert list(message_lines("fax", {"a": 1})) == ["{", '  "a": 1', "}"]
