"""Who broke a build and who they are in chat: culprits of an event, the `people:` map."""

from __future__ import annotations

from typing import Any

import pytest

from workers.people import Culprit, Mention, People, Person, culprits, is_break


def event(**vcs: Any) -> dict[str, Any]:
    base = {"author_name": "Ada Lovelace", "author_email": "Ada@Example.com", "commit_body": ""}
    return {
        "status": "failed",
        "vcs": base | vcs,
        "pipeline": {"trigger_actor": "grace-gh"},
        "transition": {"kind": "broken"},
    }


def test_culprits_are_the_author_the_co_authors_and_the_trigger_actor() -> None:
    body = (
        "Fix it.\n\nCo-authored-by: Lin <lin@example.com>\n"
        "co-authored-by:   Bo  <bo@example.com>  \nSigned-off-by: X <x@e>"
    )
    assert culprits(event(commit_body=body)) == [
        Culprit("commit", "Ada Lovelace", "Ada@Example.com"),
        Culprit("commit", "Lin", "lin@example.com"),
        Culprit("commit", "Bo", "bo@example.com"),
        Culprit("trigger", login="grace-gh"),
    ]


def test_odd_events_have_no_culprits_and_do_not_raise() -> None:
    assert culprits({}) == culprits({"vcs": None, "pipeline": "x"}) == []


def test_people_match_emails_whatever_their_case_and_logins_exactly() -> None:
    people = People.of({"ada@example.com": Person({"slack": "U0ADA"}), "Grace-GH": Person({"slack": "U0G"})})
    assert people.find(Culprit("commit", email="ADA@example.COM")) == Person({"slack": "U0ADA"})
    assert people.find(Culprit("trigger", login="grace-gh")) is None
    assert people.find(Culprit("trigger", login="Grace-GH")) == Person({"slack": "U0G"})


def test_mentions_use_people_then_the_lookup_each_person_once() -> None:
    people = People.of({"grace-gh": Person({"slack": "U0ADA"}, name="Ada")})
    looked: list[str] = []

    def lookup(email: str) -> str | None:
        looked.append(email)
        return "U0ADA"

    found = people.mentions(event(), "slack", lookup)
    assert found == [Mention("U0ADA", "Ada Lovelace", "commit")]  # the trigger actor is the same person
    assert looked == ["Ada@Example.com"]
    assert people.mentions(event(), "discord") == []


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [("broken", "failed", True), ("first_seen", "error", True), ("first_seen", "success", False),
     ("still_failing", "failed", False), ("fixed", "success", False)],
)  # fmt: skip
def test_a_break_is_broken_or_a_failing_first_run(kind: str, status: str, expected: bool) -> None:
    assert is_break({"status": status, "transition": {"kind": kind}}) is expected
