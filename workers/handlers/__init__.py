"""Handlers: one module per platform, each declaring its routes-file keys, and the registry.

Adding a platform is one module here and one line in `HANDLER_TYPES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from config.errors import ConfigurationError
from workers.handlers.base import Handler, HandlerConfig, HandlerContext
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

__all__ = ["HANDLER_TYPES", "Handler", "HandlerConfig", "HandlerContext", "build_handler", "build_handlers"]

HANDLER_TYPES: Mapping[str, type[Handler]] = {
    cls.type: cls
    for cls in (
        SlackHandler,
        SlackAppHandler,
        TeamsHandler,
        DiscordHandler,
        PagerDutyHandler,
        WebhookHandler,
        PythonHandler,
        LogHandler,
    )
}


def build_handler(name: str, config: HandlerConfig, context: HandlerContext | None = None) -> Handler:
    """The handler for one routes-file entry; imports callables and checks templates now."""
    cls = HANDLER_TYPES.get(config.type)
    if cls is None:
        raise ConfigurationError(f"handler {name!r}, key 'type': unknown type {config.type!r}")
    return cls(name, config.options, context)


def build_handlers(routes: Routes, context: HandlerContext | None = None) -> dict[str, Handler]:
    """Every handler the routes file names, sharing `context` (Redis, the routes, TTLs)."""
    return {name: build_handler(name, config, context) for name, config in routes.handlers.items()}
