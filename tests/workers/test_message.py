"""The neutral message: what every notification says, from complete and incomplete events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workers.message import MAX_TESTS, Message, sample_event

FIXTURE = Path(__file__).parents[1] / "fixtures" / "enriched" / "workflow-completed.failed.json"


@pytest.fixture
def event() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def test_the_sample_event_templates_are_checked_against_is_the_fixture(event: dict[str, Any]) -> None:
    assert sample_event() == event, "regenerate config/sample-event.yaml from the enriched fixture"


def test_a_failed_workflow(event: dict[str, Any]) -> None:
    m = Message.from_event(event)
    assert m.title == "❌ build-test-deploy failed on main — webhook-service #131"
    assert (m.status, m.emoji, m.colour) == ("failed", "❌", 0xE01E5A)
    assert (m.ref, m.ref_kind, m.ref_label) == ("main", "branch", "branch main")
    assert m.workflow and m.workflow.url == event["workflow"]["url"] and m.url == m.workflow.url
    assert m.job is None and m.pipeline_number == 131 and m.duration == "1m 44s"
    assert m.commit_subject == "Make <!channel> & `code` go faster"  # raw: each platform escapes
    assert (m.commit_author, m.revision) == ("Author Name", "f2e7b1c")
    assert (m.transition, m.transition_phrase) == ("broken", "broke main")
    assert [(j.name, j.tests_failed) for j in m.failed_jobs] == [("test", 3)]
    assert [t.name for t in m.failed_tests] == ["test_login <script>", "test_logout"]
    assert m.more_failed_tests == 1
    assert [a.label for a in m.artifacts] == ["coverage/index.html"]
    assert not m.incomplete and m.incomplete_reason is None
    assert m.text.splitlines()[:3] == [
        m.title,
        "Transition: broke main",
        "Commit: " + m.commit_subject + " (Author Name)",
    ]
    assert "test_logout and 1 more" in m.text


@pytest.mark.parametrize(
    ("kind", "phrase"),
    [("broken", "broke main"), ("fixed", "fixed main"), ("still_failing", "still failing on main"),
     ("passing", "still passing on main"), ("stale", "older than the last run seen on main"), ("weird", "weird")],
)  # fmt: skip
def test_transition_phrases(event: dict[str, Any], kind: str, phrase: str) -> None:
    event["transition"] = {"kind": kind}
    assert Message.from_event(event).transition_phrase == phrase


def test_a_tag_and_a_job_event(event: dict[str, Any]) -> None:
    event.update(event_type="job-completed", status="success")
    event["vcs"].update(branch=None, tag="v1.2.0")
    event["job"] = {"name": "deploy", "web_url": "https://ci.test/job/9", "duration_seconds": 3725}
    m = Message.from_event(event)
    assert m.title == "✅ deploy succeeded on v1.2.0 — webhook-service #131"
    assert m.ref_label == "tag v1.2.0" and m.url == "https://ci.test/job/9" and m.duration == "1h 2m 5s"


def test_the_digest_lists_the_first_tests_and_counts_the_rest(event: dict[str, Any]) -> None:
    failures = [{"name": f"t{i}", "classname": "c", "file": "f", "message": "m"} for i in range(12)]
    event["failed_jobs"][0]["tests"] = {"total": 50, "failed": 20, "more": 8, "failures": failures}
    m = Message.from_event(event)
    assert len(m.failed_tests) == MAX_TESTS and m.more_failed_tests == 20 - MAX_TESTS


@pytest.mark.parametrize(
    "event",
    [{}, {"status": None, "project": None, "vcs": None, "failed_jobs": None, "jobs": "x"},
     {"event_type": "job-completed", "status": "failed", "project": {"slug": "gh/a/b"}, "pipeline": {"number": "7"},
      "failed_jobs": [None, {"tests": {"failures": [None, {}]}, "artifacts": [{"url": None}]}],
      "enrichment": {"complete": False, "reason": "api_unavailable"}}],
    ids=["empty", "nulls", "webhook-facts"],
)  # fmt: skip
def test_incomplete_events_build_a_message(event: dict[str, Any]) -> None:
    m = Message.from_event(event)
    assert m.incomplete and m.title and m.text
    assert m.text.endswith(f"(incomplete: {m.incomplete_reason})")
    assert m.failed_tests == () or all(isinstance(t.name, str) for t in m.failed_tests)
    json.dumps(m.to_dict())


def test_a_long_multiline_commit_keeps_its_first_line_capped(event: dict[str, Any]) -> None:
    event["vcs"]["commit_subject"] = "x" * 5000 + "\nsecond line"
    assert Message.from_event(event).commit_subject == "x" * 1000
