"""Slack: Block Kit that slack_sdk accepts, every CircleCI value escaped, limits respected."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from tests.workers.handlers.conftest import alert_event, hostile_event, incomplete_event, load_event, make
from workers.handlers.base import safe_url
from workers.handlers.slack import clip, escape, link

EVENTS = {"complete": load_event, "hostile": hostile_event, "incomplete": incomplete_event, "alert": alert_event}


def texts(payload: dict[str, Any]) -> list[str]:
    """Every mrkdwn string in a payload, including the top-level text."""
    found = [payload["text"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload["blocks"])
    return found


def unescaped(text: str) -> list[str]:
    """`<` that do not open one of our links: `<https://...|label>`."""
    return [m for m in re.findall(r"<[^>]*>?", text) if not re.fullmatch(r"<https?://[^|<> ]+\|[^<>]*>", m)]


@pytest.mark.parametrize("name", list(EVENTS))
def test_slack_sdk_parses_and_validates_every_block(name: str) -> None:
    payload = make("slack").render(EVENTS[name]())
    assert 0 < len(payload["blocks"]) <= 50
    for data in payload["blocks"]:
        block = Block.parse(data)
        assert block is not None, data
        block.validate_json()
        assert block.to_dict() == data


def test_the_message_carries_the_facts(event: dict[str, Any]) -> None:
    payload = make("slack").render(event)
    everything = json.dumps(payload, ensure_ascii=False)
    assert payload["blocks"][0]["text"]["text"] == "❌ build-test-deploy failed on main — webhook-service #131"
    for fact in (
        "broke main",
        "#131",
        "1m 44s",
        "Author Name",
        "github/circleci/webhook-service",
        "and 1 more",
        "coverage/index.html",
        "|build-test-deploy>",
        "/jobs/1002|test>",
        "&lt;!channel&gt; &amp; `code`",
    ):
        assert fact in everything, fact  # fmt: skip
    assert payload["blocks"][-1]["type"] == "context"
    assert payload["text"].startswith("❌ build-test-deploy failed")


def test_hostile_values_arrive_as_text_never_as_mentions() -> None:
    payload = make("slack").render(hostile_event())
    for text in texts(payload):
        assert unescaped(text) == [], text
        assert "<!" not in text and "<@" not in text
    assert "&lt;!channel&gt;" in payload["blocks"][1]["text"]["text"]


def test_limits_truncate_long_values() -> None:
    payload = make("slack").render(hostile_event())
    assert len(payload["text"]) <= 3000
    for block in payload["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert len(block["elements"]) <= 10


def test_a_long_title_is_cut_to_the_header_limit(event: dict[str, Any]) -> None:
    event["workflow"]["name"] = "w" * 400
    header = make("slack").render(event)["blocks"][0]
    assert len(header["text"]["text"]) == 150 and header["text"]["text"].endswith("…")


@pytest.mark.parametrize(
    ("url", "expected"),
    [("https://ci.test/a", "<https://ci.test/a|a &lt;b&gt;>"), ("http://ci.test/a", "<http://ci.test/a|a &lt;b&gt;>"),
     ("javascript:alert(1)", "a &lt;b&gt;"), ("https://ci.test/a|evil", "a &lt;b&gt;"),
     ("https://ci.test/a>x", "a &lt;b&gt;"), (None, "a &lt;b&gt;"), ("", "a &lt;b&gt;")],
)  # fmt: skip
def test_links_validate_the_url_and_escape_the_label(url: str | None, expected: str) -> None:
    assert link("a <b>", url) == expected


def test_escape_covers_the_three_control_characters() -> None:
    assert escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert safe_url("ftp://x") is None


@pytest.mark.parametrize("limit", range(2, 40))
def test_clip_never_cuts_an_entity_or_a_link(limit: int) -> None:
    text = "ab &amp; <https://x.test/y|label> &lt;tail&gt;"
    out = clip(text, limit)
    assert len(out) <= limit
    body = out.removesuffix("…")
    assert body.count("<") == body.count(">")
    assert not re.search(r"&[a-z]*$", body)


def test_template_replaces_the_summary_and_the_fallback(event: dict[str, Any]) -> None:
    payload = make("slack", template="*{{ message.status }}* {{ event.vcs.commit_subject | esc }}").render(event)
    expected = "*failed* Make &lt;!channel&gt; &amp; `code` go faster"
    assert payload["blocks"][1]["text"]["text"] == expected
    assert payload["text"] == expected


def test_a_commit_subject_printed_by_a_template_arrives_escaped(event: dict[str, Any]) -> None:
    event["vcs"]["commit_subject"] = "<!channel> & <@U1>"
    payload = make("slack", template="{{ event.vcs.commit_subject }}").render(event)
    assert payload["blocks"][1]["text"]["text"] == payload["text"] == "&lt;!channel&gt; &amp; &lt;@U1&gt;"


def test_mentions_and_template_text_reach_slack_intact(event: dict[str, Any]) -> None:
    event["vcs"]["commit_subject"] = "<!channel> & <@U1>"
    template = '<!here> build broke, {{ mention("U0123ABCD") }}: {{ event.vcs.commit_subject }}'
    payload = make("slack", template=template).render(event)
    expected = "<!here> build broke, <@U0123ABCD>: &lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert payload["blocks"][1]["text"]["text"] == payload["text"] == expected
    Block.parse(payload["blocks"][1]).validate_json()
