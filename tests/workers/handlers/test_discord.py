"""Discord: one embed within Discord's limits, and no mention can ping."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workers.handlers.conftest import alert_event, hostile_event, incomplete_event, load_event, make
from workers.handlers.discord import MAX_TOTAL, escape, size

EVENTS = {"complete": load_event, "hostile": hostile_event, "incomplete": incomplete_event, "alert": alert_event}


@pytest.mark.parametrize("name", list(EVENTS))
def test_embed_respects_discord_limits(name: str) -> None:
    payload = make("discord").render(EVENTS[name]())
    assert payload["allowed_mentions"] == {"parse": []}
    (embed,) = payload["embeds"]
    assert len(embed["title"]) <= 256 and len(embed["description"]) <= 4096
    assert len(embed["fields"]) <= 25
    assert all(len(f["name"]) <= 256 and 0 < len(f["value"]) <= 1024 for f in embed["fields"])
    assert size(embed) <= MAX_TOTAL


def test_embed_carries_the_facts(event: dict[str, Any]) -> None:
    (embed,) = make("discord").render(event)["embeds"]
    assert embed["title"] == "❌ build-test-deploy failed on main — webhook-service #131"
    assert embed["url"] == event["workflow"]["url"]
    assert embed["color"] == 0xE01E5A
    assert embed["timestamp"].startswith("2021-09-02T10:15:42")
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Pipeline"] == "#131" and fields["Failed jobs"].startswith("[test](https://")
    assert "…and 1 more" in embed["description"]


def test_hostile_values_are_escaped() -> None:
    (embed,) = make("discord").render(hostile_event())["embeds"]
    assert "\\<!channel\\>" in embed["description"]
    assert "@everyone" not in embed["description"] and "@\u200beveryone" in embed["description"]
    assert "[x](https://evil.test)" not in embed["description"]


def test_a_huge_event_is_cut_to_6000_characters(event: dict[str, Any]) -> None:
    event["failed_jobs"] = [
        {"name": f"job-{i}-" + "n" * 900, "web_url": None, "tests": None, "artifacts": []} for i in range(10)
    ]
    event["vcs"]["commit_subject"] = "s" * 5000
    (embed,) = make("discord").render(event)["embeds"]
    assert size(embed) <= MAX_TOTAL
    assert len(embed["description"]) <= 4096


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("@here", "@\u200bhere"), ("**x**", "\\*\\*x\\*\\*"), ("<@123>", "\\<@\u200b123\\>"), ("`a`", "\\`a\\`")],
)
def test_escape(raw: str, expected: str) -> None:
    assert escape(raw) == expected


def test_template_replaces_the_description(event: dict[str, Any]) -> None:
    (embed,) = make("discord", template="by {{ event.vcs.author_name | esc }}").render(event)["embeds"]
    assert embed["description"] == "by Author Name"


def test_a_commit_subject_printed_by_a_template_cannot_ping_or_link(event: dict[str, Any]) -> None:
    event["vcs"]["commit_subject"] = "<!channel> & <@U1> @everyone [x](https://evil.test)"
    payload = make("discord", template='{{ mention("123456789") }} {{ event.vcs.commit_subject }}').render(event)
    (embed,) = payload["embeds"]
    assert embed["description"] == (
        "<@123456789> \\<!channel\\> & \\<@\u200bU1\\> @\u200beveryone \\[x\\]\\(https\\://evil.test\\)"
    )
    assert payload["allowed_mentions"] == {"parse": []}
