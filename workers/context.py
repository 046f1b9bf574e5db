"""The worker process's one context: everything its jobs share, built once from the settings.

    context = WorkerContext.build(settings)   Redis, the routes and their handlers, the API client
                                              and its shared budget, the enricher, the handlers'
                                              HTTP client, the delivery metrics
    install(context)                          what `current()` returns from now on, in every thread
    current()                                 the installed context (jobs call this)
    context.reload_routes()                   the routes file read again and swapped in whole
                                              (SIGHUP); a bad file raises and the old routes stay

RQ jobs take JSON arguments, so a job cannot be handed the context: `run_worker` builds it from
the Settings it is given and installs it before the first job; tests install their own with
`installed(context)`. Nothing here reads the environment; the routes file's `${VAR}` come from
`settings.environ`. A job takes `context.routing` once, when it starts (workers/routing.py), so a
reload never mixes two versions of the routes in one event's fan-out. Building an httpx client
costs ~27 ms of CPU (it loads the certificate bundle), more than a job's calls, so each is built
once here and shared by every worker thread.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from redis import Redis

from config.clock import SYSTEM_CLOCK, Clock
from config.settings import Settings
from workers.circleci.budget import ApiBudget
from workers.circleci.cache import ApiCache
from workers.circleci.client import CircleCIClient
from workers.circleci.step_output import StepOutput
from workers.connection import connect
from workers.enrichment import Enricher, count_api_call
from workers.event_index import KeyRefresh
from workers.failed_step import StepReader
from workers.handlers import Handler
from workers.lease import Leases
from workers.metrics import DeliveryMetrics
from workers.routing import Routing, load_routing
from workers.secret_mask import SecretMask
from workers.transition import TransitionStore

# A job may sleep this long for CircleCI before it reschedules itself instead.
API_MAX_WAIT_SECONDS = 5.0
API_CALL_DEADLINE_SECONDS = 15.0
SEND_THREADS = 16


@dataclass
class WorkerContext:
    settings: Settings
    redis: Redis
    routing: Routing  # replaced whole by reload_routes; a job reads it once, at its start
    http: httpx.Client  # every handler sends through it
    enricher: Enricher
    client: CircleCIClient | None = None  # None without CIRCLE_TOKEN: events go on with the webhook's facts
    pool: ThreadPoolExecutor | None = None
    # first delivery attempts of one event run at once here (workers/delivery/fan_out.py)
    sends: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(SEND_THREADS, "send"))
    metrics: DeliveryMetrics = field(default_factory=DeliveryMetrics)
    # the worker process's leases (workers/supervisor.py sets them): delivery locks last one, renewed
    leases: Leases | None = None
    rng: random.Random = field(default_factory=random.Random)
    clock: Clock = SYSTEM_CLOCK  # what its jobs wait, retry, expire and measure by
    # the keys whose TTL this process set lately: the event index's (workers/event_index.py) and the
    # alert rules' per-minute counts (workers/metric_window.py)
    key_refresh: KeyRefresh = field(default_factory=KeyRefresh)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        redis: Redis | None = None,
        api_transport: httpx.BaseTransport | None = None,
        output_transport: httpx.BaseTransport | None = None,
        handlers: Mapping[str, Handler] | None = None,
        rng: random.Random | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> WorkerContext:
        """Everything a worker's jobs need; a broken routes file raises ConfigurationError here.

        `handlers` replaces the routes file (then nothing is routed); `api_transport` is the
        httpx transport under the API client, `output_transport` the one under the step output
        reader, which never carries the token (tests); `clock` is what the jobs read time from (a
        fake one in tests).
        """
        if redis is None:
            redis = connect(settings)
        # handlers keep state in Redis (slack_app's threads, Discord's message ids)
        routing = load_routing(settings, redis) if handlers is None else Routing(None, handlers)
        budget = ApiBudget(redis, per_second=settings.api_rate_per_second, burst=settings.api_burst, clock=clock)
        key_refresh = KeyRefresh()

        def before_api_request() -> None:
            budget.take()
            count_api_call()

        client = None
        if settings.circle_token is not None:
            client = CircleCIClient.from_settings(
                settings,
                transport=api_transport,
                before_request=before_api_request,
                deadline=API_CALL_DEADLINE_SECONDS,
                max_wait=API_MAX_WAIT_SECONDS,
                clock=clock,
            )
        pool = ThreadPoolExecutor(settings.enrich_concurrency, thread_name_prefix="enrich")
        steps = None
        if client is not None and settings.log_tail:
            output = StepOutput(
                max_bytes=settings.log_tail_bytes,
                timeout_seconds=settings.log_tail_seconds,
                transport=output_transport,
                before_request=before_api_request,
            )
            steps = StepReader(
                client,
                output,
                mask=redaction_mask(routing),
                max_lines=settings.log_tail_lines,
                max_chars=settings.log_tail_chars,
            )
        enricher = Enricher(
            client,
            cache=ApiCache(redis, ttl_seconds=settings.api_cache_ttl_seconds),
            transitions=TransitionStore(
                redis, ttl_seconds=settings.transition_ttl_seconds, clock=clock, refresh=key_refresh
            ),
            pool=pool,
            max_failed_tests=settings.enrich_max_failed_tests,
            max_artifacts=settings.enrich_max_artifacts,
            successful_jobs=settings.enrich_successful_jobs,
            steps=steps,
            log_tail_seconds=settings.log_tail_seconds,
            flaky_ttl_seconds=settings.flaky_tests_ttl_seconds,
        )
        return cls(
            settings=settings,
            redis=redis,
            routing=routing,
            http=http_client(settings),
            enricher=enricher,
            client=client,
            pool=pool,
            rng=rng or random.Random(),
            clock=clock,
            key_refresh=key_refresh,
        )

    def reload_routes(self) -> Routing:
        """Read the routes file again and make it current in every worker thread at once; jobs
        already running finish with the version they took. A bad file raises ConfigurationError
        and the current routes stay."""
        self.routing = load_routing(self.settings, self.redis, reloading=True)
        if self.enricher.steps is not None:
            self.enricher.steps.mask = redaction_mask(self.routing)
        return self.routing

    def close(self) -> None:
        self.sends.shutdown(wait=False)
        self.http.close()
        if self.pool is not None:
            self.pool.shutdown(wait=False)
        if self.client is not None:
            self.client.close()
        if self.enricher.steps is not None:
            self.enricher.steps.output.close()


def redaction_mask(routing: Routing) -> SecretMask:
    """The secret patterns masked in log tails: the built-in ones and the routes file's `redact:`."""
    return SecretMask(routing.routes.redact if routing.routes is not None else ())


def http_client(settings: Settings) -> httpx.Client:
    """The one client every handler sends through: explicit timeouts, no redirects followed."""
    timeout = settings.delivery_timeout_seconds
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        follow_redirects=False,
        headers={"user-agent": "circleci-events"},
    )


_current: WorkerContext | None = None


def current() -> WorkerContext:
    """The installed context; jobs run only inside a worker that installed one."""
    if _current is None:
        raise RuntimeError("no worker context is installed: jobs run inside `circleci-events worker`")
    return _current


def install(context: WorkerContext | None) -> WorkerContext | None:
    """Make `context` the process's (None: none); returns the one it replaces."""
    global _current
    previous, _current = _current, context
    return previous


@contextmanager
def installed(context: WorkerContext) -> Iterator[WorkerContext]:
    """`context` is current inside the block; the previous one after."""
    previous = install(context)
    try:
        yield context
    finally:
        install(previous)
