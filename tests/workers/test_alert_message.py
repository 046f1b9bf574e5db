"""The alert message: what the notifier says about itself, and the event handlers render it from."""

from __future__ import annotations

from workers.alert_message import ALERT, DEAD_LETTER, ENRICHMENT_REFUSED, Alert, AlertCount, alert_of, is_alert

SINCE, UNTIL = 1_767_225_600.0, 1_767_225_900.0  # 2026-01-01T00:00:00Z, five minutes later


def alert(*counts: AlertCount) -> Alert:
    return Alert.new(list(counts), since=SINCE, until=UNTIL)


def test_the_title_counts_each_kind_and_the_text_says_what_happened_and_what_to_do() -> None:
    shown = alert(
        AlertCount(ENRICHMENT_REFUSED, "circleci_unauthorized", "gh/acme/api", 401, 4),
        AlertCount(DEAD_LETTER, "rejected", "audit", 400, 1),
        AlertCount(DEAD_LETTER, "retry_budget_exhausted", "ops-slack", 503, 2),
    )
    assert shown.title == ("⚠️ circleci-events: 3 deliveries dead-lettered; CircleCI refused the API token for 4 events")
    assert shown.text.splitlines() == [
        "Since 2026-01-01T00:00:00Z:",
        "• retry_budget_exhausted: 2 (handler ops-slack, status 503)",
        "• rejected: 1 (handler audit, status 400)",
        "See them with `circleci-events dead-letters list`; replay them once the cause is fixed.",
        "• circleci_unauthorized: 4 (project gh/acme/api, status 401)",
        "Events go out without CircleCI's details. Check the token with `circleci-events api me`: CIRCLE_TOKEN "
        "must be a valid personal API token with access to the project.",
    ]
    assert shown.kinds == [DEAD_LETTER, ENRICHMENT_REFUSED]


def test_one_of_a_kind_is_singular() -> None:
    assert alert(AlertCount(DEAD_LETTER, "undecodable", "-", None, 1)).title.endswith(": 1 delivery dead-lettered")
    assert alert(AlertCount(ENRICHMENT_REFUSED, "circleci_forbidden", "gh/a/b", 403, 1)).title.endswith("for 1 event")


def test_the_event_carries_title_text_and_counts_and_reads_back_as_the_same_alert() -> None:
    sent = alert(AlertCount(DEAD_LETTER, "rejected", "audit", 400, 2))
    event = sent.to_event()
    assert is_alert(event) and event["event_type"] == ALERT and event["event_id"].startswith("alert-")
    assert event["alert"]["title"] == sent.title and event["alert"]["text"] == sent.text
    assert event["alert"]["since"] == "2026-01-01T00:00:00Z" and event["happened_at"] == "2026-01-01T00:05:00Z"
    assert event["alert"]["counts"] == [
        {"kind": "dead_letter", "reason": "rejected", "subject": "audit", "status": 400, "count": 2}
    ]
    assert alert_of(event) == sent


def test_an_enriched_event_is_not_an_alert_and_a_garbled_alert_still_renders() -> None:
    assert not is_alert({"event_type": "workflow-completed", "alert": {}})
    garbled = alert_of({"event_type": ALERT, "alert": {"counts": [{"count": "x"}, 7], "since": "yesterday"}})
    assert garbled.counts == (AlertCount("", "", "-", None, 0),)
    assert garbled.title == "⚠️ circleci-events: trouble"
