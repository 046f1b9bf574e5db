"""The approval-pending notice on every platform: workflow, approval job, who triggered, commit, link."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.workers.handlers.conftest import load_event, make
from workers.approvals import approval_event
from workers.circleci.models import Job
from workers.message import Message

WORKFLOW_URL = "https://app.circleci.com/pipelines/gh/acme/api/512/workflows/wf-1"


def notice() -> dict[str, Any]:
    source = load_event() | {"event_type": "job-completed", "transition": None}
    source["workflow"] = {**source["workflow"], "id": "wf-1", "name": "deploy", "url": WORKFLOW_URL}
    source["pipeline"] = {**source["pipeline"], "number": 512, "trigger_actor": "grace"}
    hold = Job(id="job-hold", name="hold-for-prod", type="approval", status="on_hold", approval_request_id="req-1")
    return approval_event(source, hold, [hold])


def test_the_message_names_workflow_approval_job_trigger_commit_and_link() -> None:
    m = Message.from_event(notice())
    assert m.title.startswith("⏸️ deploy waits for approval: hold-for-prod on ")
    assert m.transition_phrase == "approval needed for hold-for-prod · pipeline triggered by grace"
    assert m.url == WORKFLOW_URL and m.commit_subject
    assert "hold-for-prod" in m.text and WORKFLOW_URL in m.text


@pytest.mark.parametrize("kind", ["slack", "slack_app", "teams", "discord", "log", "webhook", "python"])
def test_every_handler_renders_the_notice(kind: str) -> None:
    body = make(kind).render(notice())
    rendered = body.decode() if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False)
    assert "hold-for-prod" in rendered
    assert "wf-1" in rendered  # the workflow's link (or, for data handlers, its id)


def test_pagerduty_is_not_paged_for_an_approval() -> None:
    assert make("pagerduty").render(notice()) == {}
