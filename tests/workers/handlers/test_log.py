"""Log handler: one `notification_logged` line with the message's essentials."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from tests.workers.handlers.conftest import make


def test_one_line_with_the_essentials(event: dict[str, Any], http: Any, requests: list) -> None:
    with capture_logs() as logs:
        make("log", name="audit-log").send(event, delivery_id="d-1", http=http())
    (line,) = logs
    assert line["event"] == "notification_logged" and line["log_level"] == "info"
    assert line["handler"] == "audit-log" and line["delivery_id"] == "d-1"
    assert line["title"].startswith("❌ build-test-deploy failed") and line["transition"] == "broken"
    assert line["failed_jobs"] == ["test"]
    assert requests == []


def test_template_replaces_the_text_field(event: dict[str, Any]) -> None:
    assert make("log", template="{{ message.project }}!").render(event)["text"] == "webhook-service!"


def test_a_template_prints_values_and_mentions_as_plain_text(event: dict[str, Any]) -> None:
    event["vcs"]["commit_subject"] = "<!channel> & <@U1>"
    text = make("log", template='{{ mention("oncall") }} {{ event.vcs.commit_subject }}').render(event)["text"]
    assert text == "@oncall <!channel> & <@U1>"
