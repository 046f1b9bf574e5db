"""PagerDuty: the action follows the transition (the status without one), one dedup_key per workflow and ref."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from redis import Redis
from structlog.testing import capture_logs

from tests.workers.handlers.conftest import alert_event, hostile_event, load_event, make
from workers.message import TRANSITION
from workers.transition import TransitionStore

KEY = "R0UTINGKEY0123456789"


# (transition kind, workflow status, action): every kind workers/transition.py can return.
BY_TRANSITION = [
    ("broken", "failed", "trigger"), ("broken", "error", "trigger"), ("broken", "unauthorized", "trigger"),
    ("still_failing", "failed", "trigger"), ("still_failing", "infrastructure_fail", "trigger"),
    ("fixed", "success", "resolve"),
    ("first_seen", "failed", "trigger"), ("first_seen", "error", "trigger"),
    ("first_seen", "unauthorized", "trigger"), ("first_seen", "infrastructure_fail", "trigger"),
    ("first_seen", "success", "resolve"),
    ("passing", "success", None),
    ("stale", "failed", None), ("stale", "error", None), ("stale", "success", None),
    ("canceled", "canceled", None),
    ("a_kind_from_the_future", "failed", None),
]  # fmt: skip


def test_the_table_covers_every_transition_kind() -> None:
    assert {kind for kind, _, _ in BY_TRANSITION} >= set(TRANSITION)


@pytest.mark.parametrize(("kind", "status", "action"), BY_TRANSITION)
def test_a_workflow_event_with_a_transition_acts_on_the_transition(
    kind: str, status: str, action: str | None, event: dict[str, Any]
) -> None:
    event["status"] = event["workflow"]["status"] = status
    event["transition"] = {"kind": kind, "previous_status": None, "previous_pipeline_number": None}
    assert make("pagerduty").render(event).get("event_action") == action


STATUS_RULE = [("failed", "trigger"), ("error", "trigger"), ("success", "resolve"),
               ("canceled", None), ("unauthorized", None), ("infrastructure_fail", None)]  # fmt: skip


@pytest.mark.parametrize(("status", "action"), STATUS_RULE)
def test_a_workflow_event_without_a_transition_acts_on_the_status(
    status: str, action: str | None, event: dict[str, Any]
) -> None:
    event["status"] = event["workflow"]["status"] = status
    event["transition"] = None  # no branch or tag known
    assert make("pagerduty").render(event).get("event_action") == action


@pytest.mark.parametrize("transition", [None, "stale", "passing"])
@pytest.mark.parametrize(("status", "action"), STATUS_RULE)
def test_a_job_event_acts_on_the_status(
    status: str, action: str | None, transition: str | None, event: dict[str, Any]
) -> None:
    event.update(event_type="job-completed", status=status, transition=transition and {"kind": transition})
    event["job"] = {"name": "test", "status": status, "web_url": event["workflow"]["url"] + "/jobs/1002"}
    assert make("pagerduty").render(event).get("event_action") == action


@pytest.mark.integration
def test_a_late_failure_older_than_a_fix_does_not_reopen_the_incident(
    redis: Redis, http: Any, requests: list[httpx.Request]
) -> None:
    """Issue 11 finding 6: success #300, failed #301, success #302, then #299's failure arrives late."""
    store = TransitionStore(redis)
    handler = make("pagerduty")
    client = http(lambda r: httpx.Response(202, json={"status": "success"}))
    kinds, sent = {}, {}
    for number, status, happened_at in [
        (300, "success", "2024-12-18T10:00:00Z"),
        (301, "failed", "2024-12-18T11:00:00Z"),
        (302, "success", "2024-12-18T12:00:00Z"),
        (299, "failed", "2024-12-18T09:00:00Z"),
    ]:
        event = load_event()
        event.update(event_id=f"e-{number}", status=status, happened_at=happened_at)
        event["workflow"]["status"] = status
        event["pipeline"]["number"] = number
        transition = store.record(  # what workers/enrichment.py records for a workflow on a branch
            project=event["project"]["slug"],
            ref=event["vcs"]["branch"],
            workflow=event["workflow"]["name"],
            status=status,
            pipeline_number=number,
            happened_at=happened_at,
        )
        event["transition"] = transition.to_dict()
        kinds[number] = transition.kind
        before = len(requests)
        with capture_logs() as logs:
            handler.send(event, delivery_id=f"d-{number}", http=client)
        sent[number] = [json.loads(r.content) for r in requests[before:]]
        if not sent[number]:
            assert [(x["event"], x["transition"]) for x in logs] == [("pagerduty_skipped", transition.kind)]
    assert kinds == {300: "first_seen", 301: "broken", 302: "fixed", 299: "stale"}
    actions = {number: [body["event_action"] for body in bodies] for number, bodies in sent.items()}
    assert actions == {300: ["resolve"], 301: ["trigger"], 302: ["resolve"], 299: []}
    assert len({body["dedup_key"] for bodies in sent.values() for body in bodies}) == 1


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
    from workers.handlers.pagerduty import PAGERDUTY_URL

    make("pagerduty", url=PAGERDUTY_URL).send(event, delivery_id="d", http=http())
    assert str(requests[0].url) == "https://events.pagerduty.com/v2/enqueue"


def test_nothing_is_sent_for_a_canceled_workflow(event: dict[str, Any], http: Any, requests: list) -> None:
    event.update(status="canceled", transition={"kind": "canceled"})
    make("pagerduty").send(event, delivery_id="d", http=http())
    assert requests == []


def test_an_alert_triggers_one_incident_per_kind_of_trouble() -> None:
    body = make("pagerduty").render(alert_event())
    assert body["event_action"] == "trigger" and body["dedup_key"] == "circleci-events:alert:dead_letter"
    assert body["payload"]["summary"] == "⚠️ circleci-events: 2 deliveries dead-lettered"
    assert body["payload"]["source"] == "circleci-events" and body["payload"]["severity"] == "error"
    assert body["payload"]["custom_details"]["counts"][0]["reason"] == "retry_budget_exhausted"
