"""Teams: an Adaptive Card in a Workflows message, with markdown and mentions neutralised."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.workers.handlers.conftest import alert_event, hostile_event, incomplete_event, load_event, make
from workers.handlers.teams import escape

EVENTS = {"complete": load_event, "hostile": hostile_event, "incomplete": incomplete_event, "alert": alert_event}


def card(event: dict[str, Any]) -> dict[str, Any]:
    message = make("teams").render(event)
    assert message["type"] == "message"
    (attachment,) = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    return attachment["content"]


@pytest.mark.parametrize("name", list(EVENTS))
def test_the_card_carries_what_its_schema_requires(name: str) -> None:
    content = card(EVENTS[name]())
    assert content["type"] == "AdaptiveCard"
    assert content["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert tuple(int(p) for p in content["version"].split(".")) >= (1, 4)
    assert content["body"] and all(b["type"] in ("TextBlock", "FactSet") for b in content["body"])
    for block in content["body"]:
        if block["type"] == "TextBlock":
            assert isinstance(block["text"], str) and block["text"]
        else:
            assert all(set(f) == {"title", "value"} and f["value"] for f in block["facts"])
    for action in content["actions"]:
        assert action["type"] == "Action.OpenUrl" and action["url"].startswith("https://") and action["title"]


def test_the_card_carries_the_facts_and_links(event: dict[str, Any]) -> None:
    content = card(event)
    facts = {f["title"]: f["value"] for f in content["body"][2]["facts"]}
    assert facts["Status"] == "failed" and facts["Pipeline"] == "\\#131" and facts["Branch"] == "main"
    assert "broke main" in content["body"][1]["text"]
    urls = [a["url"] for a in content["actions"]]
    assert event["workflow"]["url"] in urls and event["failed_jobs"][0]["web_url"] in urls
    assert len(urls) == len(set(urls))


def test_hostile_values_are_neutralised() -> None:
    content = card(hostile_event())
    text = json.dumps(content["body"], ensure_ascii=False)
    assert "<at>" not in text and "<!channel>" not in text and "](https://evil" not in text
    assert all(len(b["text"]) <= 2000 for b in content["body"] if b["type"] == "TextBlock")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("*b* _i_", "\\*b\\* \\_i\\_"), ("[x](http://e)", "\\[x\\]\\(http://e\\)"),
     ("<at>A</at>", "\u2039at\u203aA\u2039/at\u203a"), ("ünï 🎉", "ünï 🎉")],
)  # fmt: skip
def test_escape(raw: str, expected: str) -> None:
    assert escape(raw) == expected


def test_template_replaces_the_summary_block(event: dict[str, Any]) -> None:
    content = make("teams", template="{{ event.vcs.author_name | esc }} did it").render(event)
    assert content["attachments"][0]["content"]["body"][1]["text"] == "Author Name did it"


def test_a_commit_subject_printed_by_a_template_is_neutralised(event: dict[str, Any]) -> None:
    subject = "<!channel> & <@U1> <at>Boss</at> [x](https://evil.test)"
    event["vcs"]["commit_subject"] = subject
    content = make("teams", template='{{ mention("U1") }}: {{ event.vcs.commit_subject }}').render(event)
    text = content["attachments"][0]["content"]["body"][1]["text"]
    assert text == "@U1: " + escape(subject)
    assert "<at>" not in text and "](https" not in text
