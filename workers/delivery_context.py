"""What delivery jobs share in one worker process: settings, handlers, one HTTP client, metrics.

It is built once, lazily, on the first delivery (from `Settings.from_environ()` and the routes
file) and reused by every later job, so connections to chat services stay open. Tests build
their own and install it with `use_context(...)`.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram

from config.logging import REDACTOR
from config.settings import Settings

if TYPE_CHECKING:
    from config.routes import Routes

OUTCOMES = ("delivered", "retried", "rejected", "dead_lettered", "skipped_duplicate")


class Handler(Protocol):
    """A destination: renders the event for its platform and sends it, or raises HandlerError."""

    def send(self, event: dict[str, Any], *, delivery_id: str, http: httpx.Client) -> None: ...

    def secrets(self) -> list[str]: ...


class DeliveryMetrics:
    """Prometheus metrics of the delivery jobs, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "circleci_events_deliveries",
            "Delivery jobs by handler and outcome: " + ", ".join(OUTCOMES),
            ["handler", "outcome"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "circleci_events_delivery_attempts",
            "Sends tried, by handler",
            ["handler"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "circleci_events_delivery_latency_seconds",
            "Seconds from webhook receipt (the event's received_at) to successful delivery",
            ["handler"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600),
            registry=self.registry,
        )


@dataclass
class DeliveryContext:
    settings: Settings
    handlers: Mapping[str, Handler]
    http: httpx.Client
    routes: Routes | None = None  # None: contexts built by hand in tests, routing nothing
    metrics: DeliveryMetrics = field(default_factory=DeliveryMetrics)
    rng: random.Random = field(default_factory=random.Random)

    def close(self) -> None:
        self.http.close()


def http_client(settings: Settings) -> httpx.Client:
    """The one client every handler sends through: explicit timeouts, no redirects followed."""
    timeout = settings.delivery_timeout_seconds
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        follow_redirects=False,
        headers={"user-agent": "circleci-events"},
    )


def build_context(settings: Settings, environ: Mapping[str, str]) -> DeliveryContext:
    """Load the routes file (`${VAR}` from `environ`) and build every handler it names."""
    from config.routes import load_routes
    from workers.handlers import build_handler

    routes = load_routes(settings.routes_file, environ)
    handlers = {name: build_handler(name, config) for name, config in routes.handlers.items()}
    # from here on no log line of this process shows a handler's URL, key or signing secret
    REDACTOR.add(secret for handler in handlers.values() for secret in handler.secrets())
    return DeliveryContext(settings=settings, handlers=handlers, http=http_client(settings), routes=routes)


_context: DeliveryContext | None = None
_lock = threading.Lock()


def get_context() -> DeliveryContext:
    """The process's context, built on first use."""
    global _context
    if _context is None:
        with _lock:
            if _context is None:
                # config/ reads the variables; this only hands the process's mapping over
                _context = build_context(Settings.from_environ(), os.environ)
    return _context


def current_settings() -> Settings:
    """The installed context's settings, else the environment's (without building handlers)."""
    context = _context
    return context.settings if context is not None else _environ_settings()


@cache
def _environ_settings() -> Settings:
    return Settings.from_environ()


def set_context(context: DeliveryContext | None) -> DeliveryContext | None:
    """Install `context` (None: build again on next use); returns the one it replaces."""
    global _context
    with _lock:
        previous, _context = _context, context
    return previous


@contextmanager
def use_context(context: DeliveryContext) -> Iterator[DeliveryContext]:
    """Deliver with `context` inside the block, and restore the previous one after."""
    previous = set_context(context)
    try:
        yield context
    finally:
        set_context(previous)
