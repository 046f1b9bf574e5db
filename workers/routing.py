"""One version of the routes file as a worker uses it: the subscriptions and the handlers built from them.

    routing = load_routing(settings)     read, check and build; a bad file raises ConfigurationError
    routing.match(event)                 the handler names an event goes to
    routing.handlers[name]               the handler that sends to one of them

The worker's context holds one Routing and a reload (SIGHUP) replaces it whole, with one
assignment. A job takes the context's Routing once, when it starts, and uses only that one: an
event is matched and fanned out with the subscriptions and handlers of one version of the file,
never some of each. `${VAR}` come from `settings.environ`, the environment the process started
with: a reload sees a changed file, not a changed environment (a process's environment cannot be
changed from outside it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis import Redis

from config.logging import REDACTOR
from config.settings import Settings
from workers.handlers import Handler, HandlerContext, build_handlers
from workers.routes import Routes
from workers.routes_file import load_routes


@dataclass(frozen=True)
class Routing:
    routes: Routes | None  # None: handlers given by hand (tests), routing nothing
    handlers: Mapping[str, Handler]

    def match(self, event: Mapping[str, Any]) -> list[str]:
        """The handler names `event` goes to (none without routes)."""
        return self.routes.match(event) if self.routes is not None else []

    def listens_for(self, event_type: str) -> bool:
        """Whether some subscription names `event_type` in its `events:`."""
        return self.routes is not None and self.routes.listens_for(event_type)

    def summary(self) -> dict[str, Any]:
        """What a log line says of it: handler names and the subscription count, never an option."""
        subscriptions = len(self.routes.subscriptions) if self.routes is not None else 0
        return {"handlers": sorted(self.handlers), "subscriptions": subscriptions}


def load_routing(settings: Settings, redis: Redis | None = None, *, reloading: bool = False) -> Routing:
    """The routes file of `settings`, checked and its handlers built (sharing `redis`, for the
    handlers that keep state there); raises ConfigurationError. `reloading`: see load_routes."""
    routes = load_routes(settings.routes_file, settings.environ, reloading=reloading)
    handlers = build_handlers(routes, handler_context(settings, redis, routes))
    # from here on no log line of this process shows a handler's URL, key or signing secret
    REDACTOR.add(secret for handler in handlers.values() for secret in handler.secrets())
    return Routing(routes, handlers)


def handler_context(settings: Settings, redis: Redis | None, routes: Routes | None = None) -> HandlerContext:
    """What the process's handlers share: its Redis, the routes, the state TTL and the timeout."""
    return HandlerContext(
        redis=redis,
        routes=routes,
        state_ttl_seconds=settings.transition_ttl_seconds,
        timeout_seconds=settings.delivery_timeout_seconds,
        max_mentions=settings.mention_max_people,
        max_lookups=settings.mention_max_lookups,
    )
