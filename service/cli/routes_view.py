"""The routes file as an operator may see it: handlers and subscriptions with every secret redacted.

Webhook URLs of Slack, Teams, Discord and generic webhooks carry their token in the path, and
PagerDuty routing keys and webhook secrets are secrets outright: a URL shows as its scheme and
host only, a key or secret as `[redacted]`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from config.redaction import REDACTED, SECRET_OPTIONS, Redactor
from config.settings import Settings
from workers.handlers import capabilities_of
from workers.handlers.base import HandlerConfig
from workers.routes import Routes, Subscription
from workers.routes_file import load_routes

SECRET_KEYS = tuple(k for k in SECRET_OPTIONS if k != "url")


def read_routes(path: str | None, settings: Settings, *, placeholders: bool = False) -> tuple[Path, Routes]:
    """Load and check the routes file (default: ROUTES_FILE), `${VAR}` from the settings' environment."""
    chosen = Path(path or settings.routes_file)
    return chosen, load_routes(chosen, settings.environ, placeholders=placeholders)


def redacted_url(url: str) -> str:
    """Scheme, host and port only: `https://hooks.slack.com/…`, `https://ci.example.com:8443/…`."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # never the user or password
    return f"{parts.scheme}://{host}/…" if parts.scheme else REDACTED


def redacted_options(config: HandlerConfig) -> dict[str, str]:
    """A handler's options safe to print."""
    shown: dict[str, str] = {}
    for key, value in config.options.items():
        if value is None:
            continue
        if key in SECRET_KEYS:
            shown[key] = REDACTED
        elif key == "url":
            shown[key] = redacted_url(value)
        elif key == "template":
            shown[key] = "custom"
        else:
            shown[key] = value
    return shown


def handler_row(config: HandlerConfig) -> dict[str, Any]:
    """A handler as check-config and the console list it: with what its platform can do
    (`mentions`, `threads`, `edits`, `buttons`, `direct messages`: its handler's capabilities)."""
    can = list(capabilities_of(config.type).names())
    return {
        "name": config.name,
        "type": config.type,
        "can": can,
        "line": config.line,
        "options": redacted_options(config),
    }


def subscription_row(subscription: Subscription) -> dict[str, Any]:
    match = {key: [p.source for p in patterns] for key, patterns in subscription.match.items()}
    return {
        "name": subscription.name,
        "handlers": list(subscription.handlers),
        "match": match,
        "line": subscription.line,
    }


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (URLs in their credential parts too) replaced by `[redacted]`."""
    return Redactor(secrets).redact(text)
