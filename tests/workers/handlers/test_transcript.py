"""What a delivery sent, as it went out: kept only inside an attempt, without credentials, bounded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.workers.handlers.conftest import OPTIONS, SECRET_URL, make
from workers.handlers import transcript

POSTING = ("slack", "teams", "discord", "pagerduty", "webhook")


@pytest.mark.parametrize("kind", POSTING)
def test_each_posting_handler_notes_the_body_it_posted(
    kind: str, event: dict[str, Any], http: Any, requests: list
) -> None:
    with transcript.recording() as kept:
        make(kind).send(event, delivery_id="d-1", http=http())
    [request] = requests
    [sent] = kept.sent
    assert json.loads(sent["body"]) == json.loads(_redacted(request.content.decode(), kind))
    assert sent["to"].startswith("POST https://") and sent["to"].endswith("/…")


def _redacted(body: str, kind: str) -> str:
    for secret in OPTIONS[kind].values():
        body = body.replace(secret, "[redacted]")
    return body


def test_no_credential_is_kept(event: dict[str, Any], http: Any) -> None:
    """A chat webhook's URL is its credential; PagerDuty's routing key travels in the body."""
    with transcript.recording() as kept:
        make("slack").send(event, delivery_id="d-1", http=http())
        make("pagerduty").send(event, delivery_id="d-2", http=http())
    text = json.dumps(kept.sent)
    assert "sEcReTtOkEn123" not in text and "/services/" not in text
    assert OPTIONS["pagerduty"]["routing_key"] not in text and "[redacted]" in text


def test_nothing_is_kept_outside_an_attempt(event: dict[str, Any], http: Any) -> None:
    with transcript.recording() as kept:
        pass
    make("slack").send(event, delivery_id="d-1", http=http())  # preview, check-config, the demo
    assert kept.sent == []


def test_a_long_body_is_cut_and_says_by_how_much() -> None:
    with transcript.recording() as kept:
        transcript.note("POST x", "a" * (transcript.MAX_CHARS - 10), [])
        transcript.note("POST x", "b" * 50, [])
        transcript.note("POST x", "c", [])
    first, second, third = kept.sent
    assert len(first["body"]) == transcript.MAX_CHARS - 10
    assert second["body"] == "b" * 10 + "\n… (40 more characters not kept)"
    assert third["body"] == "\n… (1 more characters not kept)"


def test_the_destination_keeps_only_scheme_host_and_port() -> None:
    assert transcript.destination("POST", SECRET_URL) == "POST https://hooks.example.test/…"
    assert transcript.destination("PATCH", "http://127.0.0.1:8766/a/b?c=d") == "PATCH http://127.0.0.1:8766/…"
