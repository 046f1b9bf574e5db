"""Settings, read from the environment here and nowhere else (twelve-factor).

Everything else takes a `Settings` (or the values it needs) through its constructor, so tests
build one from a plain dict: `Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": "s"})`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.config import Config
from starlette.datastructures import CommaSeparatedStrings, Secret

from config.errors import ConfigurationError

DEFAULT_API_URL = "https://circleci.com/api/v2"
DEFAULT_ROUTES_FILE = str(Path(__file__).parent / "routes.yaml")
LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    webhook_secrets: tuple[Secret, ...] = ()
    allow_unsigned_webhooks: bool = False
    circle_token: Secret | None = None
    circleci_api_url: str = DEFAULT_API_URL
    routes_file: str = DEFAULT_ROUTES_FILE
    log_format: str = "json"
    log_level: str = "INFO"
    admin_token: Secret | None = None
    max_body_bytes: int = 1024 * 1024
    rate_limit_burst: int = 200
    rate_limit_per_second: float = 100.0
    trusted_proxies: tuple[str, ...] = ()
    dedupe_ttl_seconds: int = 7 * 24 * 3600
    events_queue: str = "events"
    event_job_timeout_seconds: int = 300
    port: int = 8000
    host: str = "0.0.0.0"
    worker_count: int = 2
    # jobs one worker process runs at once, one RQ worker per thread (workers/worker.py)
    worker_concurrency: int = 4
    # enrichment (workers/enrichment.py)
    enrich_deadline_seconds: float = 120.0
    enrich_concurrency: int = 8
    enrich_max_failed_tests: int = 10
    enrich_max_artifacts: int = 20
    enrich_successful_jobs: bool = False
    api_cache_ttl_seconds: int = 3600
    api_rate_per_second: float = 10.0
    api_burst: int = 20
    transition_ttl_seconds: int = 90 * 24 * 3600
    # delivery (workers/delivery.py)
    delivery_retry_budget_seconds: int = 3600
    delivery_timeout_seconds: float = 10.0
    delivery_backoff_base_seconds: float = 5.0
    delivery_backoff_max_seconds: float = 600.0
    enriched_event_ttl_seconds: int = 7 * 24 * 3600
    worker_metrics_port: int = 0
    # how soon a job whose worker died (SIGKILL, OOM, lost host) runs again (workers/worker.py)
    worker_maintenance_interval_seconds: int = 600
    worker_abandoned_grace_seconds: int = 60

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; a wrong one raises ConfigurationError naming it."""
        env = dict(os.environ if environ is None else environ)
        config = Config(environ=env)
        try:
            settings = cls(
                redis_url=config("REDIS_URL", default=None) or None,
                webhook_secrets=tuple(
                    Secret(s) for s in config("CIRCLECI_WEBHOOK_SECRETS", cast=CommaSeparatedStrings, default="") if s
                ),
                allow_unsigned_webhooks=config("INSECURE_ALLOW_UNSIGNED_WEBHOOKS", cast=bool, default=False),
                circle_token=_secret(config("CIRCLE_TOKEN", default="")),
                circleci_api_url=config("CIRCLECI_API_URL", default=DEFAULT_API_URL).rstrip("/"),
                routes_file=config("ROUTES_FILE", default=DEFAULT_ROUTES_FILE),
                log_format=config("LOG_FORMAT", default="json").lower(),
                log_level=config("LOG_LEVEL", default="INFO").upper(),
                admin_token=_secret(config("ADMIN_TOKEN", default="")),
                max_body_bytes=config("MAX_BODY_BYTES", cast=int, default=1024 * 1024),
                rate_limit_burst=config("RATE_LIMIT_BURST", cast=int, default=200),
                rate_limit_per_second=config("RATE_LIMIT_PER_SECOND", cast=float, default=100.0),
                trusted_proxies=tuple(config("TRUSTED_PROXIES", cast=CommaSeparatedStrings, default="")),
                dedupe_ttl_seconds=config("DEDUPE_TTL_SECONDS", cast=int, default=7 * 24 * 3600),
                port=config("PORT", cast=int, default=8000),
                host=config("HOST", default="0.0.0.0"),
                worker_count=config("WORKERS", cast=int, default=2),
                worker_concurrency=config("WORKER_CONCURRENCY", cast=int, default=4),
                enrich_deadline_seconds=config("ENRICH_DEADLINE_SECONDS", cast=float, default=120.0),
                enrich_concurrency=config("ENRICH_CONCURRENCY", cast=int, default=8),
                enrich_max_failed_tests=config("ENRICH_MAX_FAILED_TESTS", cast=int, default=10),
                enrich_max_artifacts=config("ENRICH_MAX_ARTIFACTS", cast=int, default=20),
                enrich_successful_jobs=config("ENRICH_SUCCESSFUL_JOBS", cast=bool, default=False),
                api_cache_ttl_seconds=config("API_CACHE_TTL_SECONDS", cast=int, default=3600),
                api_rate_per_second=config("CIRCLECI_API_RATE_PER_SECOND", cast=float, default=10.0),
                api_burst=config("CIRCLECI_API_BURST", cast=int, default=20),
                transition_ttl_seconds=config("TRANSITION_TTL_SECONDS", cast=int, default=90 * 24 * 3600),
                delivery_retry_budget_seconds=config("DELIVERY_RETRY_BUDGET_SECONDS", cast=int, default=3600),
                delivery_timeout_seconds=config("DELIVERY_TIMEOUT_SECONDS", cast=float, default=10.0),
                delivery_backoff_base_seconds=config("DELIVERY_BACKOFF_BASE_SECONDS", cast=float, default=5.0),
                delivery_backoff_max_seconds=config("DELIVERY_BACKOFF_MAX_SECONDS", cast=float, default=600.0),
                enriched_event_ttl_seconds=config("ENRICHED_EVENT_TTL_SECONDS", cast=int, default=7 * 24 * 3600),
                worker_metrics_port=config("WORKER_METRICS_PORT", cast=int, default=0),
                event_job_timeout_seconds=config("EVENT_JOB_TIMEOUT_SECONDS", cast=int, default=300),
                worker_maintenance_interval_seconds=config(
                    "WORKER_MAINTENANCE_INTERVAL_SECONDS", cast=int, default=600
                ),
                worker_abandoned_grace_seconds=config("WORKER_ABANDONED_GRACE_SECONDS", cast=int, default=60),
            )
        except ValueError as exc:
            # starlette's Config says which variable and value it could not cast
            raise ConfigurationError(f"{exc}; fix the environment variable and start again") from None
        settings.check()
        return settings

    def check(self) -> None:
        if self.log_format not in LOG_FORMATS:
            raise ConfigurationError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigurationError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        if self.max_body_bytes <= 0:
            raise ConfigurationError(f"MAX_BODY_BYTES must be positive, got {self.max_body_bytes}")
        if self.rate_limit_burst <= 0 or self.rate_limit_per_second <= 0:
            raise ConfigurationError("RATE_LIMIT_BURST and RATE_LIMIT_PER_SECOND must be positive")
        if self.api_burst <= 0 or self.api_rate_per_second <= 0:
            raise ConfigurationError("CIRCLECI_API_BURST and CIRCLECI_API_RATE_PER_SECOND must be positive")
        if self.worker_concurrency <= 0:
            raise ConfigurationError(f"WORKER_CONCURRENCY must be positive, got {self.worker_concurrency}")
        if self.enrich_concurrency <= 0:
            raise ConfigurationError(f"ENRICH_CONCURRENCY must be positive, got {self.enrich_concurrency}")
        if self.delivery_retry_budget_seconds <= 0 or self.delivery_timeout_seconds <= 0:
            raise ConfigurationError("DELIVERY_RETRY_BUDGET_SECONDS and DELIVERY_TIMEOUT_SECONDS must be positive")
        if self.delivery_backoff_base_seconds < 0 or self.delivery_backoff_max_seconds < 0:
            raise ConfigurationError("DELIVERY_BACKOFF_BASE_SECONDS and DELIVERY_BACKOFF_MAX_SECONDS must be >= 0")
        if self.enriched_event_ttl_seconds <= 0:
            raise ConfigurationError(
                f"ENRICHED_EVENT_TTL_SECONDS must be positive, got {self.enriched_event_ttl_seconds}"
            )
        if min(self.event_job_timeout_seconds, self.worker_maintenance_interval_seconds) <= 0:
            raise ConfigurationError(
                "EVENT_JOB_TIMEOUT_SECONDS and WORKER_MAINTENANCE_INTERVAL_SECONDS must be positive"
            )
        if self.worker_abandoned_grace_seconds < 0:
            raise ConfigurationError(
                f"WORKER_ABANDONED_GRACE_SECONDS must be >= 0, got {self.worker_abandoned_grace_seconds}"
            )
        if not self.circleci_api_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"CIRCLECI_API_URL must start with http:// or https://, got {self.circleci_api_url!r}"
            )

    def require_webhook_secrets(self) -> None:
        """The receiver refuses to start without a secret unless insecure mode is asked for."""
        if not self.webhook_secrets and not self.allow_unsigned_webhooks:
            raise ConfigurationError(
                "CIRCLECI_WEBHOOK_SECRETS is not set: set it to the webhook's secret token "
                "(comma-separate several to rotate), or set INSECURE_ALLOW_UNSIGNED_WEBHOOKS=1 for local development"
            )


def _secret(value: str) -> Secret | None:
    return Secret(value) if value else None
