"""The web receiver's app factory.

Serve it with `circleci-events web` (service/cli/processes.py): a bare `uvicorn
service.app:create_app --factory` runs without the header limits of service/http_protocol.py
and without WEB_MAX_CONNECTIONS.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from config.clock import SYSTEM_CLOCK, Clock
from config.log_sampler import LogSampler
from config.settings import Settings
from service.admin import admin_mount
from service.cctray import cc_xml
from service.click_queue import ClickQueue
from service.client_limit import ClientLimit
from service.console.pages import console_mount
from service.errors import EXCEPTION_HANDLERS
from service.health import PROBE_BURST, PROBE_PER_SECOND, healthz, metrics, readyz
from service.intake import Intake
from service.login_limit import LoginLimit
from service.metrics import WebMetrics
from service.redirect import RelativeRedirects
from service.request_id import RequestIdMiddleware
from service.signature import SignatureVerifier
from service.slack_interactions import SlackVerifier, receive_interaction
from service.webhook import receive_webhook
from workers.connection import connect_async


def create_app(
    settings: Settings | None = None,
    *,
    redis: Redis | None = None,
    web_metrics: WebMetrics | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Starlette:
    """Build the receiver. Raises ConfigurationError when it must not start. `clock`: what the
    rate limits, the log sampling, the age check of a delivery and Slack's request timestamps
    are checked against."""
    settings = settings or Settings.from_environ()
    settings.require_webhook_secrets()
    if redis is None:
        redis = connect_async(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    routes: list[BaseRoute] = [
        Route("/webhooks/circleci", receive_webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if settings.slack_signing_secrets:  # without a signing secret the route does not exist
        routes.append(Route("/slack/interactions", receive_interaction, methods=["POST"]))
    if settings.admin_token is not None:  # without a token the admin routes do not exist at all
        login_limit = LoginLimit(clock=clock)  # one count of failed logins for both doors
        routes.append(admin_mount(settings, login_limit=login_limit))
        routes.append(console_mount(settings, login_limit=login_limit))
    if settings.feed_token is not None:  # nor the cctray feed without its own
        routes.append(Route("/cc.xml", cc_xml, methods=["GET"]))
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestIdMiddleware), Middleware(RelativeRedirects)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.redis = redis
    app.state.clock = clock
    app.state.metrics = web_metrics or WebMetrics()
    app.state.client_limit = ClientLimit(
        burst=settings.rate_limit_burst, per_second=settings.rate_limit_per_second, clock=clock
    )
    app.state.probe_limit = ClientLimit(
        burst=PROBE_BURST, per_second=PROBE_PER_SECOND, clock=clock
    )  # /readyz, /metrics
    app.state.rejection_log = LogSampler(clock=clock)  # also given to the HTTP protocol by `circleci-events web`
    app.state.verifier = (
        SignatureVerifier([str(s) for s in settings.webhook_secrets]) if settings.webhook_secrets else None
    )
    app.state.slack_verifier = SlackVerifier([str(s) for s in settings.slack_signing_secrets], clock)
    app.state.click_queue = ClickQueue(redis, queue_name=settings.events_queue)
    app.state.intake = Intake(
        redis,
        queue_name=settings.events_queue,
        dedupe_ttl=settings.dedupe_ttl_seconds,
        rate_limit_burst=settings.rate_limit_burst,
        rate_limit_per_second=settings.rate_limit_per_second,
        job_timeout=settings.event_job_timeout_seconds,
        wait_replicas=settings.redis_wait_replicas,
        wait_timeout_ms=settings.redis_wait_timeout_ms,
    )
    return app
