"""Permissions: who may act on CircleCI from Slack, from the routes file's `actions:` section.

```yaml
actions:
  approve:                            # also: cancel, rerun
    - users: [U0123ABCD]              # Slack user ids; and/or groups: [S0123ABCD] (user groups)
      projects: ["github/acme/*"]     # optional globs: projects, branches, workflows, jobs
```

The CircleCI call runs with the service's token, so this list is all that stands between a
Slack user and that token's power. The default is deny: an action with no grant, or a user no
grant names, may do nothing. A grant allows a user it names (directly, or through a user group
whose members Slack lists: usergroups.users.list, cached) on an event every given glob matches
(the same values as subscriptions: `jobs` is a job event's job, or any job of a workflow event).
Slack ids only, never names: a display name can be changed by its owner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workers.action_buttons import ACTIONS

if TYPE_CHECKING:  # workers/routes.py holds the Permissions of its file
    from workers.routes import Pattern

SCOPE_KEYS = ("projects", "branches", "workflows", "jobs")
WHO_KEYS = ("users", "groups")
GRANT_KEYS = (*WHO_KEYS, *SCOPE_KEYS)


@dataclass(frozen=True)
class Grant:
    users: frozenset[str]
    groups: tuple[str, ...]
    scope: Mapping[str, tuple[Pattern, ...]]
    line: int = 0

    def covers(self, event: Mapping[str, Any]) -> bool:
        """Every scope key given matches one of the event's values."""
        from workers.routes import event_values

        return all(
            any(p.matches(v) for p in patterns for v in event_values(event, key))
            for key, patterns in self.scope.items()
        )


@dataclass(frozen=True)
class Permissions:
    grants: Mapping[str, tuple[Grant, ...]] = field(default_factory=dict)

    def allows(
        self, action: str, user: str, event: Mapping[str, Any], members: Callable[[str], frozenset[str]]
    ) -> bool:
        """Whether `user` may take `action` on `event`; `members(group)` lists a user group's users
        (asked only for grants that cover the event and do not name the user)."""
        for grant in self.grants.get(action, ()):
            if not grant.covers(event):
                continue
            if user in grant.users or any(user in members(group) for group in grant.groups):
                return True
        return False

    def who(self, action: str, event: Mapping[str, Any]) -> str:
        """Who may, for a refusal: `<@U…>` and `<!subteam^S…>` of the grants covering the event."""
        names = [f"<@{u}>" for g in self.grants.get(action, ()) if g.covers(event) for u in sorted(g.users)] + [
            f"<!subteam^{s}>" for g in self.grants.get(action, ()) if g.covers(event) for s in g.groups
        ]
        return ", ".join(dict.fromkeys(names)) or "nobody may: an operator adds a grant under `actions:`"

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(a for a in ACTIONS if self.grants.get(a))
