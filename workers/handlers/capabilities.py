"""What a platform can do, declared once by its handler class and asked of the registry.

    capability        the handler                                          who asks
    identity          mentions the people `people:` names by this key      Handler.mentions; the
                      (`slack: U0123ABCD`); None: it mentions no one        routes file's `people:`
    threads           replies in a breakage's thread (render_in_thread)    preview --thread
    edits             updates a message it posted, in place                check-config
    buttons           posts buttons that act on CircleCI (`actions:`);      workers/actions.py
                      a click's outcome is shown through it (ButtonHost)
    direct_messages   messages the committer (`notify: committer`)         check-config

The handler registry (workers/handlers/__init__.py) checks each declaration against its class
when the class is registered, so no other module keeps a list of platforms.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Identity:
    """How `people:` names someone on a platform: the key (`slack`), what an id there looks like,
    and where a person finds theirs (what a mistake's message says)."""

    key: str
    pattern: re.Pattern[str]
    hint: str

    def accepts(self, value: str) -> bool:
        return self.pattern.fullmatch(value) is not None


@dataclass(frozen=True)
class Capabilities:
    """What a handler's platform can do (see the table above); the default can do none of it."""

    identity: Identity | None = None
    threads: bool = False
    edits: bool = False
    buttons: bool = False
    direct_messages: bool = False

    @property
    def mentions(self) -> bool:
        return self.identity is not None

    def names(self) -> Iterator[str]:
        """What it can do, in the table's order, as check-config prints it (`mentions`, `threads`, …)."""
        for f in fields(self):
            if f.name == "identity":
                if self.identity is not None:
                    yield "mentions"
            elif getattr(self, f.name):
                yield f.name.replace("_", " ")


@runtime_checkable
class ButtonHost(Protocol):
    """What a handler whose capabilities say `buttons` also does for a click (workers/actions.py):
    list a user group's members (an `actions:` grant may name a group) and show the click's
    outcome on the message that carried the buttons."""

    def group_members(self, group: str) -> frozenset[str]: ...

    def update_message(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None: ...
