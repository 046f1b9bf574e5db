"""Handlers: one module per platform, each declaring its routes-file keys, what its platform can
do (`capabilities`) and how its messages read in a terminal (`view`); and the registry.

Adding a platform is one module here and its registration: one line in the tuple below (or
`register(MyHandler)`). The routes file (types, keys, `people:` ids), check-config, preview,
demo and the Slack button clicks ask the registry, never a list of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from config.errors import ConfigurationError
from workers.handlers.base import Handler, HandlerConfig, HandlerContext
from workers.handlers.capabilities import ButtonHost, Capabilities, Identity
from workers.handlers.discord import DiscordHandler
from workers.handlers.log import LogHandler
from workers.handlers.pagerduty import PagerDutyHandler
from workers.handlers.python import PythonHandler
from workers.handlers.slack import SlackHandler
from workers.handlers.slack_app import SlackAppHandler
from workers.handlers.teams import TeamsHandler
from workers.handlers.webhook import WebhookHandler

if TYPE_CHECKING:
    from workers.routes import Routes

__all__ = [
    "HANDLER_TYPES",
    "ButtonHost",
    "Capabilities",
    "Handler",
    "HandlerConfig",
    "HandlerContext",
    "Identity",
    "build_handler",
    "build_handlers",
    "button_hosts",
    "capabilities_of",
    "identities",
    "register",
]

# by `type`, in registration order: what error messages list (and `people:` keys, in the order
# their platforms first appear)
HANDLER_TYPES: dict[str, type[Handler]] = {}


def register(cls: type[Handler]) -> type[Handler]:
    """Make a handler class known by its `type`, after checking that it does what its
    capabilities say: a platform that threads renders in a thread, one with buttons can show a
    click's outcome, and a `people:` key means one id shape whichever platform declares it."""
    what = f"handler class {cls.__name__}"
    if not cls.type or cls.type in HANDLER_TYPES:
        raise ValueError(f"{what}: type {cls.type!r} is empty or already registered")
    can = cls.capabilities
    if can.threads and cls.render_in_thread is Handler.render_in_thread:
        raise ValueError(f"{what}: capabilities say threads, so it must override render_in_thread")
    if can.buttons and not all(callable(getattr(cls, m, None)) for m in ("group_members", "update_message")):
        raise ValueError(f"{what}: capabilities say buttons, so it must implement ButtonHost")
    known = identities()
    if can.identity is not None and known.get(can.identity.key, can.identity) != can.identity:
        raise ValueError(f"{what}: people: key {can.identity.key!r} is already declared with another id shape")
    HANDLER_TYPES[cls.type] = cls
    return cls


def identities() -> dict[str, Identity]:
    """The `people:` keys (`slack`, `discord`, `teams`, …) of every registered platform that
    mentions people, with what an id there looks like."""
    found: dict[str, Identity] = {}
    for cls in HANDLER_TYPES.values():
        identity = cls.capabilities.identity
        if identity is not None:
            found.setdefault(identity.key, identity)
    return found


def capabilities_of(kind: str) -> Capabilities:
    """What a registered handler type can do; an unknown type can do nothing."""
    cls = HANDLER_TYPES.get(kind)
    return cls.capabilities if cls is not None else Capabilities()


def build_handler(name: str, config: HandlerConfig, context: HandlerContext | None = None) -> Handler:
    """The handler for one routes-file entry; imports callables and checks templates now."""
    cls = HANDLER_TYPES.get(config.type)
    if cls is None:
        raise ConfigurationError(f"handler {name!r}, key 'type': unknown type {config.type!r}")
    return cls(name, config.options, context)


def build_handlers(routes: Routes, context: HandlerContext | None = None) -> dict[str, Handler]:
    """Every handler the routes file names, sharing `context` (Redis, the routes, TTLs)."""
    return {name: build_handler(name, config, context) for name, config in routes.handlers.items()}


def button_hosts(handlers: Mapping[str, Handler]) -> dict[str, ButtonHost]:
    """Those of `handlers` whose platform posts buttons, by name: what a click acts through."""
    return {n: h for n, h in handlers.items() if h.capabilities.buttons and isinstance(h, ButtonHost)}


for _cls in (
    SlackHandler,
    SlackAppHandler,
    DiscordHandler,
    TeamsHandler,
    PagerDutyHandler,
    WebhookHandler,
    PythonHandler,
    LogHandler,
):
    register(_cls)
