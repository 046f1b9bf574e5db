"""Mentions in the incoming-webhook handlers: the routes file's `people:` on a break, exactly those
users allowed to be pinged, nothing on other transitions or when a subscription turns them off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.workers.handlers.conftest import SECRET_URL, load_event, make
from workers.handlers import build_handlers
from workers.handlers.base import Handler, HandlerContext
from workers.routes_file import load_routes

ROUTES = f"""\
handlers:
  slack: {{type: slack, url: "{SECRET_URL}"}}
  discord: {{type: discord, url: "{SECRET_URL}"}}
  teams: {{type: teams, url: "{SECRET_URL}"}}
people:
  "author@example.com": {{slack: U0ADA, discord: "111111111111111111", teams: ada@contoso.com, name: Ada}}
  ada-gh: {{slack: U0GRACE, discord: "222222222222222222", teams: grace@contoso.com, name: "Grace <H>"}}
subscriptions:
  - name: all
    handlers: [slack, discord, teams]
"""


def handlers(tmp_path: Path, extra: str = "") -> dict[str, Handler]:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES + extra)
    routes = load_routes(path, {})
    return build_handlers(routes, HandlerContext(routes=routes))


def broken() -> dict[str, Any]:
    return load_event()  # broken, author@example.com, triggered by ada-gh


def test_slack_mentions_the_author_and_the_trigger_actor(tmp_path: Path) -> None:
    body = handlers(tmp_path)["slack"].render(broken())
    assert body["text"].startswith("<@U0ADA> <@U0GRACE> ")
    assert body["blocks"][1]["text"]["text"] == "👋 <@U0ADA> (commit) · <@U0GRACE> (triggered the pipeline)"


def test_discord_pings_exactly_the_people_it_mentions(tmp_path: Path) -> None:
    body = handlers(tmp_path)["discord"].render(broken())
    assert body["content"] == "👋 <@111111111111111111> (commit) · <@222222222222222222> (triggered the pipeline)"
    assert body["allowed_mentions"] == {"parse": [], "users": ["111111111111111111", "222222222222222222"]}


def test_teams_mentions_are_at_tags_with_their_entities(tmp_path: Path) -> None:
    card = handlers(tmp_path)["teams"].render(broken())["attachments"][0]["content"]
    line = card["body"][1]["text"]
    assert line == "👋 <at>Ada</at> (commit) · <at>Grace \u2039H\u203a</at> (triggered the pipeline)"
    assert card["msteams"]["entities"] == [
        {"type": "mention", "text": "<at>Ada</at>", "mentioned": {"id": "ada@contoso.com", "name": "Ada"}},
        {
            "type": "mention",
            "text": "<at>Grace \u2039H\u203a</at>",
            "mentioned": {"id": "grace@contoso.com", "name": "Grace <H>"},
        },
    ]


@pytest.mark.parametrize("kind", ["still_failing", "fixed", "passing"])
def test_only_the_break_mentions(tmp_path: Path, kind: str) -> None:
    event = broken()
    event["transition"]["kind"] = kind
    built = handlers(tmp_path)
    assert "<@U0ADA>" not in str(built["slack"].render(event))
    assert built["discord"].render(event)["allowed_mentions"] == {"parse": []}
    assert "entities" not in built["teams"].render(event)["attachments"][0]["content"]["msteams"]


def test_mentions_false_on_the_subscription_turns_them_off(tmp_path: Path) -> None:
    built = handlers(tmp_path, "    mentions: false\n")
    assert "<@" not in str(built["slack"].render(broken()))
    assert "content" not in built["discord"].render(broken())


def test_without_people_nobody_is_mentioned() -> None:
    assert make("discord").render(broken())["allowed_mentions"] == {"parse": []}
