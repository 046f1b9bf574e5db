"""Handlers: one module per platform, and the registry that builds them from the routes file."""

from __future__ import annotations

from config.errors import ConfigurationError
from config.routes import HandlerConfig
from workers.handlers.base import Handler
from workers.handlers.discord import DiscordHandler
from workers.handlers.log import LogHandler
from workers.handlers.pagerduty import PagerDutyHandler
from workers.handlers.python import PythonHandler
from workers.handlers.slack import SlackHandler
from workers.handlers.teams import TeamsHandler
from workers.handlers.webhook import WebhookHandler

__all__ = ["HANDLER_TYPES", "Handler", "build_handler"]

HANDLER_TYPES: dict[str, type[Handler]] = {
    "slack": SlackHandler,
    "teams": TeamsHandler,
    "discord": DiscordHandler,
    "pagerduty": PagerDutyHandler,
    "webhook": WebhookHandler,
    "python": PythonHandler,
    "log": LogHandler,
}


def build_handler(name: str, config: HandlerConfig) -> Handler:
    """The handler for one routes-file entry; imports callables and checks templates now."""
    cls = HANDLER_TYPES.get(config.type)
    if cls is None:
        raise ConfigurationError(f"handler {name!r}, key 'type': unknown type {config.type!r}")
    return cls(name, config.options)
