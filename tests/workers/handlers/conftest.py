"""Fixtures for the handler tests: events (complete, hostile, incomplete), handlers, a mock HTTP client."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from workers.alert_message import DEAD_LETTER, Alert, AlertCount
from workers.handlers import Handler, build_handler
from workers.handlers.base import HandlerConfig

FIXTURE = Path(__file__).parents[2] / "fixtures" / "enriched" / "workflow-completed.failed.json"
SECRET_URL = "https://hooks.example.test/services/T000/B000/sEcReTtOkEn123"
HOSTILE = "<!channel> <!here> <@U123> @everyone @here <at>Boss</at> [x](https://evil.test) *b* _i_ `rm -rf` & <> ünï 🎉"
OPTIONS: dict[str, dict[str, str]] = {
    "slack": {"url": SECRET_URL},
    "slack_app": {"token": "xoxb-0000-sEcReTtOkEn123", "channel": "#ci", "api_url": "http://127.0.0.1:1/api/"},
    "teams": {"url": SECRET_URL},
    "discord": {"url": SECRET_URL},
    "webhook": {"url": SECRET_URL, "secret": "webhook-secret-value"},
    "pagerduty": {"routing_key": "R0UTINGKEY0123456789", "url": "https://events.pagerduty.test/v2/enqueue"},
    "python": {"callable": "tests.workers.handlers.callables:record"},
    "log": {},
}
CHAT_TYPES = ("slack", "slack_app", "teams", "discord", "log")


def load_event() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def incomplete_event() -> dict[str, Any]:
    """Only the webhook's own facts, with nulls where enrichment would have filled in."""
    return {
        "schema_version": 1,
        "event_id": "e-1",
        "event_type": "job-completed",
        "happened_at": None,
        "status": "failed",
        "project": {"id": "p", "slug": "gh/acme/api", "name": None},
        "organization": None,
        "pipeline": {"id": "x", "number": None},
        "vcs": {"branch": None, "tag": None, "commit_subject": None},
        "workflow": None,
        "job": {"name": None, "web_url": None},
        "jobs": [],
        "failed_jobs": [],
        "transition": None,
        "enrichment": {"complete": False, "reason": "api_unavailable", "api_calls": 3},
    }


def hostile_event() -> dict[str, Any]:
    """CircleCI values written to break out: mentions, markup, unicode, 10k characters."""
    event = load_event()
    event["vcs"]["commit_subject"] = HOSTILE + " " + "x" * 10_000
    event["vcs"]["author_name"] = "<!subteam^S1> Mallory & <@U1>"
    event["workflow"]["name"] = "<!channel> wf"
    event["vcs"]["branch"] = "feat/<@U999>&`x`"
    event["failed_jobs"][0]["name"] = "<!everyone> job"
    event["failed_jobs"][0]["tests"]["failures"][0]["message"] = HOSTILE * 50
    return event


def alert_event() -> dict[str, Any]:
    """An alert (workers/alert_message.py): two dead letters of one handler."""
    counts = [AlertCount(DEAD_LETTER, "retry_budget_exhausted", "ops-slack", 503, 2)]
    return Alert.new(counts, since=1_767_225_600.0, until=1_767_225_900.0).to_event()


def make(kind: str, name: str = "h", **options: str) -> Handler:
    return build_handler(name, HandlerConfig(name=name, type=kind, options={**OPTIONS[kind], **options}))


@pytest.fixture
def event() -> dict[str, Any]:
    return load_event()


@pytest.fixture
def requests() -> list[httpx.Request]:
    return []


@pytest.fixture
def http(requests: list[httpx.Request]) -> Iterator[Callable[..., httpx.Client]]:
    """A factory of httpx clients over MockTransport that answer with `respond` and record requests."""
    clients: list[httpx.Client] = []

    def factory(respond: Callable[[httpx.Request], httpx.Response] | None = None) -> httpx.Client:
        def handler(request: httpx.Request) -> httpx.Response:
            requests.append(request)
            return respond(request) if respond else httpx.Response(200, text="ok")

        client = httpx.Client(transport=httpx.MockTransport(handler))
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
