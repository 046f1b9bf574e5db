"""Teams: an Adaptive Card in a Workflows message, with markdown and mentions neutralised.

What a value looks like is checked the way Teams shows it: rendered with markdown-it (the
CommonMark parser of desktop and web, in its CommonMark and markdown-it-default presets), and
against the constructs the mobile clients' own parser forms (workers/handlers/teams.py).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from tests.workers.handlers.conftest import alert_event, hostile_event, incomplete_event, load_event, make
from workers.handlers.teams import ZW, escape

PARSERS = [MarkdownIt("commonmark"), MarkdownIt("js-default")]
# The mobile parser forms a link from `](` and a list item from `- ` or `1. ` at a block start.
MOBILE_LINK = "]("
MOBILE_LIST = re.compile(r"(?:^|[\r\n\[\])])(?:-[ \t]|\d+\.[ \t])")

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
    assert facts["Status"] == "failed" and facts["Pipeline"] == "#131" and facts["Branch"] == "main"
    assert "broke main" in content["body"][1]["text"]
    urls = [a["url"] for a in content["actions"]]
    assert event["workflow"]["url"] in urls and event["failed_jobs"][0]["web_url"] in urls
    assert len(urls) == len(set(urls))


def test_hostile_values_are_neutralised() -> None:
    content = card(hostile_event())
    text = json.dumps(content["body"], ensure_ascii=False)
    assert "<at>" not in text and "<!channel>" not in text and "](https://evil" not in text
    assert all(len(b["text"]) <= 2000 for b in content["body"] if b["type"] == "TextBlock")


def shown(text: str, parser: MarkdownIt) -> tuple[set[str], str]:
    """The HTML elements markdown-it makes of `text` and the text a reader sees, spaces collapsed."""
    rendered = parser.render(text)
    tags = set(re.findall(r"<([a-z0-9]+)", rendered))
    seen = html.unescape(re.sub(r"<[^>]+>", " ", rendered)).replace(ZW, "")
    return tags, " ".join(seen.split())


def as_written(value: str) -> str:
    return " ".join(value.replace("<", "\u2039").replace(">", "\u203a").split())


def assert_reads_as_plain_text(value: str) -> None:
    escaped = escape(value)
    for parser in PARSERS:
        tags, seen = shown(escaped, parser)
        assert tags <= {"p", "br"}, (value, escaped, parser.render(escaped))
        assert seen == as_written(value), (value, escaped)
    assert MOBILE_LINK not in escaped and not MOBILE_LIST.search(escaped), (value, escaped)


ORDINARY = [
    "feature/build-and-test", "build-and-test", "v1.2.3", "#123", "release/2024.06", "snake_case_job",
    "deploy (eu-west-1)", "a * b", "fix: handle 3.5% of cases!", "rust/lint-test-build", "Jane O'Neil",
    "ünï 🎉", "C:\\build\\out", "x = y + 1", "@U1", "@a_b", "1.2.3-rc.1+build.5", "#131",
]  # fmt: skip


@pytest.mark.parametrize("name", ORDINARY)
def test_an_ordinary_name_is_left_as_written(name: str) -> None:
    assert escape(name) == name
    assert_reads_as_plain_text(name)


HOSTILE = {
    "bold": "**x**", "italic": "_x_", "star italic": "*b* _i_", "dunder": "__init__", "strike": "~~gone~~",
    "link": "[click](http://evil)", "link in text": "see [click](https://evil.test) now",
    "image": "![x](https://evil.test/p.png)", "reference": "[r]: https://evil.test\n\n[r]",
    "bullet": "- item", "bullet after a line": "ok\n- item", "star bullet": "* item", "plus bullet": "+ item",
    "numbered": "1. item", "numbered paren": "1) item", "numbered after a line": "ok\r2. item",
    "heading": "# big", "rule": "---", "setext": "title\n===", "fence": "```\ncode", "table": "a|b\n-|-",
    "mention": "<at>Boss</at>", "autolink": "<https://evil.test>", "html": "<b>x</b>",
    "entity": "&lt;at&gt; &#42;", "escape": "\\*not bold\\*", "hard break": "a\\\nb",
    "separator is no space": "a\x1c*\x1cb\x1c*\x1cc",
    "mobile list after paren": "(x)- y", "mobile numbered after bracket": "[x]1. y",
    "everything": "<!channel> <@U123> <at>Boss</at> [x](https://evil.test) *b* _i_ & <> ünï",
}  # fmt: skip


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_markdown_links_lists_and_mentions_in_a_value_read_as_plain_text(value: str) -> None:
    assert_reads_as_plain_text(value)
    assert "<at>" not in escape(value)


@given(st.text(alphabet="ab1 _*~[]()-+#.!:|=<>&;\\`\n\x1c\u00a0é🎉", max_size=24).map(lambda s: re.sub(" +", " ", s)))
def test_any_value_reads_as_plain_text(value: str) -> None:
    # Runs of spaces are collapsed: 4 leading spaces would make an indented code block; code spans
    # (backticks) change nothing a reader could be misled by, so they are left alone.
    if "`" in value:
        assert MOBILE_LINK not in escape(value)
        return
    assert_reads_as_plain_text(value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("*b* _i_", "\\*b\\* \\_i\\_"), ("[x](http://e)", f"{ZW}[x]{ZW}(http://e)"),
     ("<at>A</at>", "\u2039at\u203aA\u2039/at\u203a"), ("ünï 🎉", "ünï 🎉"), ("- a", f"{ZW}- a"),
     ("x\\*", "x\\\\\\*"), ("{{DATE(2017-02-14T06:00:00Z, SHORT)}}", f"{{{ZW}{{DATE(2017-02-14T06:00:00Z, SHORT)}}}}")],
)  # fmt: skip
def test_escape(raw: str, expected: str) -> None:
    assert escape(raw) == expected


def test_ordinary_names_on_the_card_have_no_backslashes(event: dict[str, Any]) -> None:
    event["vcs"]["branch"] = "feature/build-and-test"
    event["workflow"]["name"] = "build-and-test"
    event["failed_jobs"][0]["name"] = "unit-tests (py3.12)"
    content = card(event)
    facts = {f["title"]: f["value"] for f in content["body"][2]["facts"]}
    assert facts["Branch"] == "feature/build-and-test" and facts["Workflow"] == "build-and-test"
    assert "- unit-tests (py3.12)" in content["body"][3]["text"]
    assert "\\" not in json.dumps([b for b in content["body"] if b["type"] == "FactSet"])


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
