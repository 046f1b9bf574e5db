"""PagerDuty: trigger on broken/failed/error, resolve on fixed/success, one dedup_key per workflow and ref."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.workers.handlers.conftest import hostile_event, make

KEY = "R0UTINGKEY0123456789"


@pytest.mark.parametrize(
    ("status", "transition", "action"),
    [("failed", "broken", "trigger"), ("failed", "still_failing", "trigger"), ("error", None, "trigger"),
     ("success", "fixed", "resolve"), ("success", "passing", "resolve"), ("success", None, "resolve"),
     ("canceled", "canceled", None), ("unauthorized", None, None), ("other", "stale", None)],
)  # fmt: skip
def test_action_follows_status_and_transition(
    status: str, transition: str | None, action: str | None, event: dict[str, Any]
) -> None:
    event["status"] = status
    event["transition"] = {"kind": transition} if transition else None
    body = make("pagerduty").render(event)
    assert body.get("event_action") == action


def test_trigger_body(event: dict[str, Any]) -> None:
    body = make("pagerduty").render(event)
    assert body["routing_key"] == "[redacted]"
    payload = body["payload"]
    assert payload["severity"] == "error" and payload["source"] == "github/circleci/webhook-service"
    assert payload["component"] == "build-test-deploy" and payload["group"] == "github/circleci/webhook-service"
    assert "broke main" in payload["summary"]
    assert payload["custom_details"]["failed_jobs"] == ["test"]
    assert payload["custom_details"]["failed_tests"][0] == "tests.test_auth.test_login <script>"
    assert {link["href"] for link in body["links"]} >= {event["workflow"]["url"]}


def test_summary_is_at_most_1024_characters() -> None:
    event = hostile_event()
    event["workflow"]["name"] = "w" * 3000
    assert len(make("pagerduty").render(event)["payload"]["summary"]) <= 1024


def test_dedup_key_is_stable_per_project_ref_and_workflow(event: dict[str, Any]) -> None:
    handler = make("pagerduty")
    key = handler.render(event)["dedup_key"]
    assert key.startswith("circleci-events:") and len(key) == len("circleci-events:") + 40
    fixed = json.loads(json.dumps(event))
    fixed.update(status="success", transition={"kind": "fixed"}, event_id="other")
    fixed["pipeline"]["number"] = 132
    fixed["project"]["slug"] = "gh/circleci/webhook-service"  # the short form is the same project
    assert handler.render(fixed) == {"routing_key": "[redacted]", "event_action": "resolve", "dedup_key": key}
    for section, field, value in [
        ("vcs", "branch", "dev"),
        ("workflow", "name", "nightly"),
        ("project", "slug", "gh/x/y"),
    ]:
        other = json.loads(json.dumps(event))
        other[section][field] = value
        assert handler.render(other)["dedup_key"] != key


def test_send_posts_the_real_routing_key_to_the_configured_url(
    event: dict[str, Any], http: Any, requests: list
) -> None:
    make("pagerduty").send(event, delivery_id="d", http=http(lambda r: httpx.Response(202, json={"status": "success"})))
    (request,) = requests
    assert str(request.url) == "https://events.pagerduty.test/v2/enqueue"
    assert json.loads(request.content)["routing_key"] == KEY


def test_default_url_is_the_events_api(event: dict[str, Any], http: Any, requests: list) -> None:
    from config.routes import PAGERDUTY_URL

    make("pagerduty", url=PAGERDUTY_URL).send(event, delivery_id="d", http=http())
    assert str(requests[0].url) == "https://events.pagerduty.com/v2/enqueue"


def test_nothing_is_sent_for_a_canceled_workflow(event: dict[str, Any], http: Any, requests: list) -> None:
    event.update(status="canceled", transition={"kind": "canceled"})
    make("pagerduty").send(event, delivery_id="d", http=http())
    assert requests == []
