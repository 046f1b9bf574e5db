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


def test_mentions_and_lookups_are_capped_per_event() -> None:
    body = "".join(f"Co-authored-by: P{n} <p{n}@example.com>\n" for n in range(300))
    event = {"vcs": {"author_email": "p0@example.com", "commit_body": body}}
    asked: list[str] = []

    def lookup(email: str) -> str:
        asked.append(email)
        return "U" + email.split("@")[0].upper()

    found = People().mentions(event, "slack", lookup, max_people=10, max_lookups=20)
    assert len(found) == 10 and len(asked) == 10 and not any(m.listed for m in found)
    misses = People().mentions(event, "slack", lambda email: asked.append(email) and None, max_lookups=20)
    assert misses == [] and len(asked) == 30  # each e-mail once (p0 is author and co-author), 20 at most


def test_a_mention_says_whether_people_names_the_person() -> None:
    people = People.of({"ada@example.com": Person({"slack": "U0ADA"})})
    event = {"vcs": {"author_email": "Ada@example.com", "commit_body": "Co-authored-by: G <g@example.com>"}}
    found = people.mentions(event, "slack", lambda email: "U0G")
    assert [(m.id, m.listed) for m in found] == [("U0ADA", True), ("U0G", False)]
