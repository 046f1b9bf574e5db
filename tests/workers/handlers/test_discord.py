"""Discord: one embed within Discord's limits, no mention can ping, the break's message edited on the fix."""

from __future__ import annotations

import json
from typing import Any

import fakeredis
import httpx
import pytest

from tests.workers.handlers.conftest import (
    SECRET_URL,
    alert_event,
    hostile_event,
    incomplete_event,
    load_event,
    make,
)
from workers.handlers import build_handler
from workers.handlers.base import HandlerConfig, HandlerContext
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


# The break's message edited in place on the fix (issue 16, item 4).


def discord_at(kind: str, number: int, status: str = "failed") -> dict[str, Any]:
    event = load_event()
    event["event_id"] = f"e{number}"
    event["pipeline"]["number"] = number
    event["status"] = event["workflow"]["status"] = status
    event["transition"] |= {"kind": kind, "failed_pipelines": 2 if kind == "fixed" else 1}
    event["vcs"]["author_name"] = "Grace"
    return event


def test_the_fix_edits_the_breaks_message_in_place(http: Any, requests: list[httpx.Request]) -> None:
    redis = fakeredis.FakeRedis()
    handler = build_handler(
        "d", HandlerConfig(name="d", type="discord", options={"url": SECRET_URL}), HandlerContext(redis=redis)
    )

    def respond(request: httpx.Request) -> httpx.Response:
        wait = request.url.params.get("wait") == "true"
        return httpx.Response(200, json={"id": "900000000000000001"}) if wait else httpx.Response(204)

    client = http(respond)
    broken = discord_at("broken", 131)
    handler.send(broken, delivery_id="e131:d", http=client)
    handler.send(broken, delivery_id="e131:d", http=client)  # a retry: the break's message is posted
    handler.send(discord_at("fixed", 133, "success"), delivery_id="e133:d", http=client)

    assert [(r.method, r.url.path.rsplit("/", 2)[-2:], dict(r.url.params)) for r in requests] == [
        ("POST", ["B000", "sEcReTtOkEn123"], {"wait": "true"}),
        ("PATCH", ["messages", "900000000000000001"], {}),
        ("POST", ["B000", "sEcReTtOkEn123"], {}),
    ]
    edited = json.loads(requests[1].content)
    assert edited["embeds"][0]["title"] == "✅ Fixed: build-test-deploy on main"
    assert edited["embeds"][0]["description"].startswith("✅ **Fixed** in [\\#133](")
    assert "by Grace after 2 failed pipelines" in edited["embeds"][0]["description"]
    assert edited["allowed_mentions"] == {"parse": []}


def test_without_redis_every_message_is_a_plain_post(http: Any, requests: list[httpx.Request]) -> None:
    make("discord").send(discord_at("broken", 131), delivery_id="e:d", http=http())
    assert [(r.method, dict(r.url.params)) for r in requests] == [("POST", {})]
