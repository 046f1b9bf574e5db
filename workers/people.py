"""People: who broke a build, and who they are on each chat platform.

The routes file's top-level `people:` maps a commit e-mail or a VCS login to chat identities,
one key per platform that mentions people (its handler declares the key and the id's shape:
workers/handlers/capabilities.py), and `name` (workers/routes_file.py reads and checks it):

    people:
      "ada@example.com": {slack: U0123ABCD, discord: "123456789012345678", teams: "ada@contoso.com"}
      grace-gh: {slack: U0GRACE, name: Grace}

E-mails match whatever their case; logins exactly. An event's culprits are the authors of its
commit (the author, then each `Co-authored-by:` trailer of the message) and whoever triggered
the pipeline (`pipeline.trigger_actor`, a VCS login). They are mentioned on a break only: the
transition `broken`, or a failing `first_seen`, of a workflow event.

Commit data is written by whoever pushes, so it chooses no one beyond limits the settings set
(issue 23 item 2): at most MENTION_MAX_PEOPLE people mentioned (default 10) and
MENTION_MAX_LOOKUPS e-mail look-ups (default 20) per event, in culprit order; the rest are
dropped and counted in one `mentions_capped` log line. A mention says whether `people:` named
the person (`listed`): a direct message goes only to a listed person unless the subscription
opts in to looked-up ones (workers/handlers/slack_app.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from workers.transition import is_failure

log = structlog.get_logger(__name__)
DEFAULT_MAX_PEOPLE = 10
DEFAULT_MAX_LOOKUPS = 20

ROLES = {"commit": "commit", "trigger": "triggered the pipeline"}
_CO_AUTHOR = re.compile(r"^co-authored-by:\s*(?P<name>[^<\n]*?)\s*<(?P<email>[^>\s]+)>\s*$", re.I | re.M)


@dataclass(frozen=True)
class Person:
    """One person's chat identities, by platform, and the name to show."""

    ids: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None


@dataclass(frozen=True)
class Culprit:
    """Someone an event names as having a hand in it: `commit` (an author) or `trigger`."""

    role: str
    name: str | None = None
    email: str | None = None
    login: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.login or self.email or "someone"


@dataclass(frozen=True)
class Mention:
    """A person to mention on one platform: their id there, the name to show, and why."""

    id: str
    name: str
    role: str
    # named in the routes file's `people:`, not only found by the e-mail a commit claims
    listed: bool = False

    @property
    def why(self) -> str:
        """What they did, as the mention line says it: `commit`, `triggered the pipeline`."""
        return ROLES.get(self.role, self.role)


@dataclass(frozen=True)
class People:
    """The routes file's `people:`, keyed by e-mail (lower case) or login."""

    entries: Mapping[str, Person] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Mapping[str, Person]) -> People:
        return cls({(k.lower() if "@" in k else k): v for k, v in entries.items()})

    def find(self, culprit: Culprit) -> Person | None:
        if culprit.email and (found := self.entries.get(culprit.email.lower())):
            return found
        return self.entries.get(culprit.login) if culprit.login else None

    def mentions(
        self,
        event: Mapping[str, Any],
        platform: str,
        lookup: Callable[[str], str | None] | None = None,
        *,
        max_people: int = DEFAULT_MAX_PEOPLE,
        max_lookups: int = DEFAULT_MAX_LOOKUPS,
    ) -> list[Mention]:
        """Who to mention on `platform` for an event's break, each once, in culprit order, at most
        `max_people`; a culprit with no id there is looked up by e-mail with `lookup` when given,
        at most `max_lookups` times (each e-mail once)."""
        found: dict[str, Mention] = {}
        asked: set[str] = set()
        skipped = 0
        for culprit in culprits(event):
            if len(found) >= max_people:
                skipped += 1
                continue
            person = self.find(culprit)
            id_ = person.ids.get(platform) if person else None
            listed = id_ is not None
            email = culprit.email.lower() if culprit.email else None
            if id_ is None and lookup is not None and email and email not in asked:
                if len(asked) >= max_lookups:
                    skipped += 1
                    continue
                asked.add(email)
                id_ = lookup(culprit.email or email)
            if id_ and id_ not in found:
                found[id_] = Mention(id_, (person.name if person else None) or culprit.label, culprit.role, listed)
        if skipped:
            log.warning(
                "mentions_capped", platform=platform, skipped=skipped, max_people=max_people, max_lookups=max_lookups
            )
        return list(found.values())


def culprits(event: Mapping[str, Any]) -> list[Culprit]:
    """The commit's author and co-authors, then the pipeline's trigger actor."""
    vcs = event.get("vcs") if isinstance(event.get("vcs"), Mapping) else {}
    pipeline = event.get("pipeline") if isinstance(event.get("pipeline"), Mapping) else {}
    assert isinstance(vcs, Mapping) and isinstance(pipeline, Mapping)
    found = []
    if vcs.get("author_email") or vcs.get("author_name"):
        found.append(Culprit("commit", _text(vcs.get("author_name")), _text(vcs.get("author_email"))))
    for match in _CO_AUTHOR.finditer(_text(vcs.get("commit_body")) or ""):
        found.append(Culprit("commit", match["name"] or None, match["email"]))
    if actor := _text(pipeline.get("trigger_actor")):
        found.append(Culprit("trigger", login=actor))
    return found


def is_break(event: Mapping[str, Any]) -> bool:
    """A workflow event that broke its ref: `broken`, or the first run seen, failing."""
    transition = event.get("transition")
    kind = transition.get("kind") if isinstance(transition, Mapping) else None
    return kind == "broken" or (kind == "first_seen" and is_failure(str(event.get("status") or "")))


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
