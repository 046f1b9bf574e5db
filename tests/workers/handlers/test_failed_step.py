"""What broke, in every handler: the failing step and its log tail, escaped so a log cannot
mention anyone; known flakes marked; `log_tail: false` for channels that must never see logs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.workers.handlers.conftest import OPTIONS, load_event
from workers.handlers import build_handler
from workers.handlers.base import HandlerConfig

pytestmark = pytest.mark.unit

HOSTILE_LOG = "Step 5/9 : RUN make\n<!channel> <@U0BOSS> @everyone <at>Boss</at>\n```\nclosed?\nError: exit 2"
TYPES = ("slack", "slack_app", "teams", "discord", "pagerduty", "webhook", "python", "log")


def event(tail: str | None = HOSTILE_LOG, **step: Any) -> dict[str, Any]:
    data = load_event()
    data["vcs"]["commit_subject"] = "An ordinary commit"
    data["failed_jobs"][0]["failed_step"] = {
        "name": "docker build",
        "status": "failed",
        "exit_code": 2,
        "node_index": 0,
        "log_tail": tail,
        "truncated": False,
        "source": "v1.1",
        "reason": None,
    } | step
    failures = data["failed_jobs"][0]["tests"]["failures"]
    for failure in failures:
        failure.pop("known_flaky", None)
    failures[0]["known_flaky"] = {"times_flaked": 7}  # the first known to flake, the others not
    return data


def render(kind: str, data: dict[str, Any], **options: str) -> str:
    handler = build_handler(kind, HandlerConfig(kind, kind, {**OPTIONS[kind], **options}))
    body = handler.render(handler.shown(data))
    return body.decode() if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False)


@pytest.mark.parametrize("kind", TYPES)
def test_every_handler_shows_the_failing_step_and_its_tail(kind: str) -> None:
    shown = render(kind, event())
    assert "docker build" in shown and "closed?" in shown and "Error: exit 2" in shown


# what mentions someone on each platform, as the log wrote it
LIVE = {
    "slack": ("<!channel>", "<@U0BOSS>"),
    "slack_app": ("<!channel>", "<@U0BOSS>"),
    "teams": ("<at>Boss</at>", "<at>"),  # a Teams mention is <at>…</at> with an entity
    "discord": ("@everyone", "<@U0BOSS>"),
}


@pytest.mark.parametrize("kind", list(LIVE))
def test_a_log_cannot_mention_anyone_or_close_its_code_block(kind: str) -> None:
    shown = render(kind, event())
    for live in LIVE[kind]:
        assert live not in shown
    if kind == "discord":
        assert json.loads(shown)["allowed_mentions"] == {"parse": []}
    if kind != "teams":
        assert shown.count("```") == 2  # the log's own ``` cannot end the block early


def test_slack_shows_the_tail_as_an_escaped_code_block_after_the_step() -> None:
    body = json.loads(render("slack", event()))
    [section] = [b for b in body["blocks"] if "Failed step" in b.get("text", {}).get("text", "")]
    text = section["text"]["text"]
    assert text.startswith("*Failed step* `docker build` in test · exit 2\n```\n")
    assert "&lt;!channel&gt; &lt;@U0BOSS&gt;" in text and text.endswith("Error: exit 2\n```")


def test_a_step_without_its_tail_says_why() -> None:
    shown = render("slack", event(None, reason="the output URL answered 403 (expired or refused)"))
    assert "no log tail: the output URL answered 403 (expired or refused)" in shown


def test_a_long_tail_keeps_its_end_within_slacks_section_limit() -> None:
    body = json.loads(render("slack", event("\n".join(f"<line {i}>" for i in range(2000)))))
    [section] = [b for b in body["blocks"] if "Failed step" in b.get("text", {}).get("text", "")]
    text = section["text"]["text"]
    assert len(text) <= 3000 and text.endswith("&lt;line 1999&gt;\n```") and "\n…\n" in text


@pytest.mark.parametrize("kind", TYPES)
def test_log_tail_false_keeps_the_step_and_drops_the_tail(kind: str) -> None:
    shown = render(kind, event(), log_tail="false")
    assert "closed?" not in shown and "Error: exit 2" not in shown
    assert "docker build" in shown


def test_pagerduty_carries_the_step_in_custom_details() -> None:
    details = json.loads(render("pagerduty", event()))["payload"]["custom_details"]
    [step] = details["failed_steps"]
    assert step == {"job": "test", "step": "docker build", "outcome": "exit 2", "log_tail": HOSTILE_LOG,
                    "no_log_tail": None}  # fmt: skip
    assert details["known_flaky_tests"] == {"test_login <script>": 7} and details["only_known_flaky"] is False


@pytest.mark.parametrize("kind", ["slack", "teams", "discord"])
def test_known_flaky_tests_are_marked(kind: str) -> None:
    assert "known flaky, 7\u00d7 in 14 days" in render(kind, event())


def test_the_webhook_carries_the_typed_field() -> None:
    sent = json.loads(render("webhook", event()))
    assert sent["failed_jobs"][0]["failed_step"]["log_tail"] == HOSTILE_LOG
