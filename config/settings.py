"""Settings, read from the environment here and nowhere else (twelve-factor).

Everything else takes a `Settings` (or the values it needs) through its constructor, so tests
build one from a plain dict: `Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": "s"})`. The
routes file's `${VAR}` are taken from `Settings.environ`, the mapping the settings were read from.

Every variable is listed once, in `VARIABLES`, with its type and its range. A wrong value stops
the process with one line that names the variable and what is wrong; the value itself is shown
only for variables that hold no secret. Lists are split on `,` alone and each entry stripped of
surrounding whitespace: no shell rules, so `#`, `\\`, quotes and `=` are ordinary characters of a
secret, and an empty entry is an error rather than something dropped without a word.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.datastructures import Secret

from config.errors import ConfigurationError
from config.redis_target import RedisTarget, parse_redis_url

DEFAULT_API_URL = "https://circleci.com/api/v2"
DEFAULT_ROUTES_FILE = str(Path(__file__).parent / "routes.yaml")
# Where CircleCI serves artifacts (`https://<n>-<id>-gh.circle-artifacts.com/0/<path>`); the API's
# own host is always allowed. The token goes to no other host.
DEFAULT_ARTIFACT_HOSTS = ("circleci.com", "*.circleci.com", "circle-artifacts.com", "*.circle-artifacts.com")
LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DAY = 24 * 3600
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
MIN_ADMIN_TOKEN_CHARS = 32
MIN_FEED_TOKEN_CHARS = 16
HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,100}")  # RFC 9110 token, as normalised to lower case
# A shorter webhook secret can be guessed, and the log redaction, which hides every occurrence of
# it, would hide pieces of ordinary words and so reveal it (`[redacted]rcle[redacted]-signature`)
MIN_WEBHOOK_SECRET_CHARS = 16
MAX_WEB_PROCESSES = 128
# How much of the Redis server's certificate is checked: chain and host name, the chain alone
# (a certificate that does not name the address used), or nothing (encrypted, not authenticated).
REDIS_TLS_VERIFY_MODES = ("full", "ca", "none")


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    redis_allow_eviction: bool = False
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 1000
    # TLS for rediss:// and rediss+sentinel:// (workers/connection.py); the system's CAs by default
    redis_tls_ca_file: str | None = None
    redis_tls_cert_file: str | None = None
    redis_tls_key_file: str | None = None
    redis_tls_verify: str = "full"
    redis_sentinel_password: Secret | None = None
    webhook_secrets: tuple[Secret, ...] = ()
    allow_unsigned_webhooks: bool = False
    circle_token: Secret | None = None
    circleci_api_url: str = DEFAULT_API_URL
    artifact_hosts: tuple[str, ...] = DEFAULT_ARTIFACT_HOSTS
    routes_file: str = DEFAULT_ROUTES_FILE
    log_format: str = "json"
    log_level: str = "INFO"
    admin_token: Secret | None = None
    # the cctray feed's own read-only token (service/cctray.py); the console's session lifetime (service/console/)
    feed_token: Secret | None = None
    ui_session_seconds: int = 8 * 3600
    # behind an SSO proxy: the header naming the console's user, believed only from TRUSTED_PROXIES peers
    console_user_header: str | None = None
    # Slack interactivity (service/slack_interactions.py): every listed signing secret is accepted
    # (rotation); without one, POST /slack/interactions does not exist. A team id refuses others.
    slack_signing_secrets: tuple[Secret, ...] = ()
    slack_team_id: str | None = None
    max_body_bytes: int = 1024 * 1024
    # what one web process takes from a client before it is authenticated (service/http_protocol.py)
    web_max_header_bytes: int = 32 * 1024
    web_header_timeout_seconds: float = 10.0
    web_body_timeout_seconds: float = 10.0
    web_max_connections: int = 1000
    # per client address (not TRUSTED_PROXIES): open connections, and requests begun, not complete
    web_max_client_connections: int = 100
    web_max_client_incomplete: int = 20
    rate_limit_burst: int = 200
    rate_limit_per_second: float = 100.0
    trusted_proxies: tuple[str, ...] = ()
    dedupe_ttl_seconds: int = 7 * DAY
    events_queue: str = "events"
    event_job_timeout_seconds: int = 300
    port: int = 8000
    host: str = "0.0.0.0"
    # web processes sharing the port (service/cli/web_server.py); `web --workers` overrides it
    web_concurrency: int = 1
    worker_count: int = 2
    # jobs one worker process runs at once, one RQ worker per thread (workers/worker.py)
    worker_concurrency: int = 4
    # dotted names of job functions a worker runs besides the product's own (workers/worker.py)
    worker_allowed_jobs: tuple[str, ...] = ()
    # enrichment (workers/enrichment.py)
    enrich_deadline_seconds: float = 120.0
    enrich_concurrency: int = 8
    enrich_max_failed_tests: int = 10
    enrich_max_artifacts: int = 20
    enrich_successful_jobs: bool = False
    api_cache_ttl_seconds: int = 3600
    # the failing step's log tail (workers/failed_step.py): on|off, its size, the time it may take
    log_tail: bool = True
    log_tail_lines: int = 20
    log_tail_chars: int = 2500
    log_tail_seconds: float = 5.0
    log_tail_bytes: int = 256 * 1024  # read from the end of the output, at most
    # Insights' known-flaky tests, kept per project in Redis for all workers
    flaky_tests_ttl_seconds: int = 3600
    api_rate_per_second: float = 10.0
    api_burst: int = 20
    transition_ttl_seconds: int = 90 * DAY
    # whom commit data may make a chat handler ping, per event (workers/people.py)
    mention_max_people: int = 10
    mention_max_lookups: int = 20
    # delivery (workers/delivery/)
    delivery_retry_budget_seconds: int = 3600
    delivery_timeout_seconds: float = 10.0
    delivery_backoff_base_seconds: float = 5.0
    delivery_backoff_max_seconds: float = 600.0
    enriched_event_ttl_seconds: int = 7 * DAY
    # the worker process's own HTTP port: /healthz, /readyz, /metrics (workers/health.py); 0 = none
    worker_http_port: int = 0
    # where it listens: this host only unless told otherwise (Kubernetes probes need 0.0.0.0)
    worker_http_host: str = "127.0.0.1"
    # a running job's lease: a job whose worker died (SIGKILL, OOM, lost host) runs again once its
    # lease lapses (workers/lease.py, workers/reaper.py)
    worker_lease_seconds: int = 10
    # SIGTERM: running jobs get this long to finish, the rest go back to the queue (workers/supervisor.py)
    worker_shutdown_grace_seconds: float = 25.0
    # RQ's own registry clean-up (finished, failed, scheduled jobs past their TTL)
    worker_maintenance_interval_seconds: int = 600
    # the mapping these settings were read from: the routes file's ${VAR} come from it
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; a wrong one raises ConfigurationError naming it."""
        env = os.environ if environ is None else environ
        for name, what in RETIRED.items():
            if name in env:
                raise ConfigurationError(f"{name} {what}: unset it")
        values = {v.field: v.read(env[v.name]) for v in VARIABLES if v.name in env}
        settings = cls(**values, environ=dict(env))
        settings.check()
        return settings

    def check(self) -> None:
        """Settings that must agree with each other, and URLs that must be safe to send a token to."""
        if self.log_format not in LOG_FORMATS:
            raise ConfigurationError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigurationError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        if self.delivery_backoff_base_seconds > self.delivery_backoff_max_seconds:
            raise ConfigurationError(
                f"DELIVERY_BACKOFF_BASE_SECONDS ({self.delivery_backoff_base_seconds:g}) must not exceed "
                f"DELIVERY_BACKOFF_MAX_SECONDS ({self.delivery_backoff_max_seconds:g})"
            )
        if self.enriched_event_ttl_seconds < self.delivery_retry_budget_seconds:
            raise ConfigurationError(
                f"ENRICHED_EVENT_TTL_SECONDS ({self.enriched_event_ttl_seconds}) must be at least "
                f"DELIVERY_RETRY_BUDGET_SECONDS ({self.delivery_retry_budget_seconds}): a delivery still "
                "retrying needs its stored event"
            )
        if self.event_job_timeout_seconds < self.delivery_timeout_seconds:
            raise ConfigurationError(
                f"EVENT_JOB_TIMEOUT_SECONDS ({self.event_job_timeout_seconds}) must be at least "
                f"DELIVERY_TIMEOUT_SECONDS ({self.delivery_timeout_seconds:g})"
            )
        if self.admin_token is not None and len(str(self.admin_token)) < MIN_ADMIN_TOKEN_CHARS:
            raise ConfigurationError(
                f"ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_CHARS} characters (it guards replays of every event): "
                "make one with `openssl rand -hex 32`"
            )
        if self.feed_token is not None and len(str(self.feed_token)) < MIN_FEED_TOKEN_CHARS:
            raise ConfigurationError(
                f"FEED_TOKEN must be at least {MIN_FEED_TOKEN_CHARS} characters: make one with `openssl rand -hex 16`"
            )
        self.check_console_user_header()
        for position, secret in enumerate(self.webhook_secrets, 1):
            if len(str(secret)) < MIN_WEBHOOK_SECRET_CHARS:
                raise ConfigurationError(
                    f"CIRCLECI_WEBHOOK_SECRETS: secret {position} of {len(self.webhook_secrets)} has "
                    f"{len(str(secret))} characters, fewer than {MIN_WEBHOOK_SECRET_CHARS}: make one with "
                    "`openssl rand -hex 32` and set it on the webhook and here"
                )
        check_api_url(self.circleci_api_url)
        self.check_redis()

    def check_console_user_header(self) -> None:
        """A header name, believed only from a proxy the settings name, for a console that exists."""
        header = self.console_user_header
        if header is None:
            return
        if not HEADER_NAME.fullmatch(header):
            raise ConfigurationError(
                f"CONSOLE_USER_HEADER must be an HTTP header name such as X-Forwarded-User, got {header!r}"
            )
        if not self.trusted_proxies:
            raise ConfigurationError(
                "CONSOLE_USER_HEADER needs TRUSTED_PROXIES: the header is believed only from those addresses "
                "(the SSO proxy's); without them anyone could name themselves"
            )
        if self.admin_token is None:
            raise ConfigurationError("CONSOLE_USER_HEADER needs ADMIN_TOKEN: without it there is no console (/ui)")

    def check_redis(self) -> None:
        """REDIS_URL parses, and the TLS and Sentinel settings apply to it: a CA file next to a plain
        redis:// URL would let an operator believe the traffic is encrypted."""
        if self.redis_tls_verify not in REDIS_TLS_VERIFY_MODES:
            raise ConfigurationError(
                f"REDIS_TLS_VERIFY must be one of {', '.join(REDIS_TLS_VERIFY_MODES)}, got {self.redis_tls_verify!r}"
            )
        tls_settings = [name for name, value in self._redis_tls_settings() if value]
        target = self.redis_target
        if tls_settings and (target is None or not target.tls):
            raise ConfigurationError(
                f"{', '.join(tls_settings)} set, but REDIS_URL does not use TLS: use rediss:// "
                "(or rediss+sentinel://), or unset them"
            )
        if bool(self.redis_tls_cert_file) != bool(self.redis_tls_key_file):
            raise ConfigurationError("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together: set both or neither")
        for name, value in self._redis_tls_settings()[:3]:
            if value and not Path(value).is_file():
                raise ConfigurationError(f"{name}: no such file {value!r}")
        if self.redis_sentinel_password is not None and (target is None or not target.sentinels):
            raise ConfigurationError(
                "REDIS_SENTINEL_PASSWORD is set, but REDIS_URL names no sentinels: use redis+sentinel:// or unset it"
            )

    def _redis_tls_settings(self) -> list[tuple[str, str | None]]:
        verify = None if self.redis_tls_verify == "full" else self.redis_tls_verify
        return [
            ("REDIS_TLS_CA_FILE", self.redis_tls_ca_file),
            ("REDIS_TLS_CERT_FILE", self.redis_tls_cert_file),
            ("REDIS_TLS_KEY_FILE", self.redis_tls_key_file),
            ("REDIS_TLS_VERIFY", verify),
        ]

    @property
    def redis_target(self) -> RedisTarget | None:
        """REDIS_URL taken apart (config/redis_target.py); None when it is unset."""
        return parse_redis_url(self.redis_url) if self.redis_url else None

    def require_webhook_secrets(self) -> None:
        """The receiver refuses to start without a secret unless insecure mode is asked for."""
        if not self.webhook_secrets and not self.allow_unsigned_webhooks:
            raise ConfigurationError(
                "CIRCLECI_WEBHOOK_SECRETS is not set: set it to the webhook's secret token "
                "(comma-separate several to rotate), or set INSECURE_ALLOW_UNSIGNED_WEBHOOKS=1 for local development"
            )

    @property
    def circleci_v1_url(self) -> str:
        """API v1.1's base, derived from CIRCLECI_API_URL: `…/api/v2` → `…/api/v1.1` (cloud, CircleCI
        Server and the simulator alike); a URL without `/api/v2` gets `/api/v1.1` appended."""
        return v1_url(self.circleci_api_url)

    @property
    def runtime_dir(self) -> Path:
        """A folder of this user's where `run` records how to reach it: $XDG_RUNTIME_DIR/circleci-events,
        else ~/.cache/circleci-events (service/cli/instance.py)."""
        base = self.environ.get("XDG_RUNTIME_DIR") or str(Path(self.environ.get("HOME") or Path.home()) / ".cache")
        return Path(base) / "circleci-events"

    def secret_values(self) -> list[str]:
        """Every secret these settings hold, for the log redaction (config/logging.py)."""
        values = [str(s) for s in (*self.webhook_secrets, *self.slack_signing_secrets)]
        values += [str(s) for s in (self.circle_token, self.admin_token, self.feed_token) if s is not None]
        raw = urlsplit(self.redis_url).password if self.redis_url else None
        passwords = {raw, unquote(raw)} if raw else set()  # as written in the URL, and as sent
        if self.redis_sentinel_password is not None:
            passwords.add(str(self.redis_sentinel_password))
        return values + sorted(passwords)


def check_api_url(url: str) -> None:
    """The token goes to CIRCLECI_API_URL: https, or plain http on loopback (the local simulator)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ConfigurationError(f"CIRCLECI_API_URL must be an http(s) URL with a host, got {url!r}")
    if parts.scheme == "http" and not is_loopback(host):
        raise ConfigurationError(
            f"CIRCLECI_API_URL must use https (plain http only on loopback, for a local simulator), got {url!r}: "
            "CIRCLE_TOKEN would cross the network in clear"
        )


def v1_url(api_url: str) -> str:
    """`https://circleci.com/api/v2` → `https://circleci.com/api/v1.1`; `http://127.0.0.1:8765` →
    `http://127.0.0.1:8765/api/v1.1`."""
    parts = urlsplit(api_url)
    path = parts.path.rstrip("/")
    prefix = path[: path.rindex("/api/v2")] if "/api/v2" in path else path
    return f"{parts.scheme}://{parts.netloc}{prefix}/api/v1.1"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- reading one variable ---------------------------------------------------------------------


def _entries(name: str, raw: str) -> tuple[str, ...]:
    """`a, b,c` → ('a', 'b', 'c'); split on `,` only; blank as a whole is no entries at all."""
    if not raw.strip():
        return ()
    entries = tuple(part.strip() for part in raw.split(","))
    for position, entry in enumerate(entries, start=1):
        if not entry:
            raise ConfigurationError(
                f"{name}: entry {position} of {len(entries)} is empty; remove the stray comma "
                "(entries are split on ',' and stripped of surrounding spaces)"
            )
    return entries


def _network(name: str, entry: str) -> str:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        raise ConfigurationError(
            f"{name}: {entry!r} is not an IP address or CIDR network; list your proxies explicitly "
            "(e.g. 10.0.0.5,10.1.0.0/16), '*' is not accepted"
        ) from None
    return entry


def _dotted_name(name: str, entry: str) -> str:
    if not all(part.isidentifier() for part in entry.split(".")) or "." not in entry:
        raise ConfigurationError(f"{name}: {entry!r} is not a dotted function name such as mypackage.jobs.cleanup")
    return entry


def _host_pattern(name: str, entry: str) -> str:
    host = entry.lower()
    label = host.removeprefix("*.")
    if not label or "*" in label or "/" in label or ":" in label:
        raise ConfigurationError(f"{name}: {entry!r} must be a host name, or '*.' and a domain")
    if host.startswith("*.") and "." not in label:
        raise ConfigurationError(f"{name}: {entry!r} would match a whole top-level domain; name the domain")
    return host


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Variable:
    """One environment variable: the Settings field it fills, its type and its accepted range."""

    name: str
    field: str
    kind: str  # text | optional | secret | secrets | int | float | bool | networks | hosts
    low: float | None = None
    high: float | None = None
    normalise: Callable[[str], str] | None = None

    @property
    def secret(self) -> bool:
        return self.kind in ("secret", "secrets") or self.name == "REDIS_URL"

    def read(self, raw: str) -> Any:
        shown = "" if self.secret else f", got {raw!r}"
        if self.kind == "text":
            return self.normalise(raw.strip()) if self.normalise else raw.strip()
        if self.kind == "optional":
            value = raw.strip() or None
            return self.normalise(value) if value and self.normalise else value
        if self.kind == "secret":
            return Secret(raw.strip()) if raw.strip() else None
        if self.kind == "secrets":
            return tuple(Secret(s) for s in _entries(self.name, raw))
        if self.kind == "networks":
            return tuple(_network(self.name, e) for e in _entries(self.name, raw))
        if self.kind == "names":
            return tuple(_dotted_name(self.name, e) for e in _entries(self.name, raw))
        if self.kind == "hosts":
            return tuple(_host_pattern(self.name, e) for e in _entries(self.name, raw))
        if self.kind == "bool":
            value = raw.strip().lower()
            if value not in _TRUE + _FALSE:
                raise ConfigurationError(f"{self.name} must be true or false (1/0, yes/no, on/off){shown}")
            return value in _TRUE
        number: float
        try:
            number = int(raw.strip()) if self.kind == "int" else float(raw.strip())
        except ValueError:
            kind = "a whole number" if self.kind == "int" else "a number"
            raise ConfigurationError(f"{self.name} must be {kind}{shown}") from None
        if not math.isfinite(number):
            raise ConfigurationError(f"{self.name} must be a finite number{shown}")
        self.check_range(number)
        return number

    def check_range(self, number: float) -> None:
        low, high = self.low, self.high
        if (low is not None and number < low) or (high is not None and number > high):
            if low == 1 and high is None:
                raise ConfigurationError(f"{self.name} must be positive, got {_num(number)}")
            if high is None:
                raise ConfigurationError(f"{self.name} must be at least {_num(low)}, got {_num(number)}")
            raise ConfigurationError(f"{self.name} must be between {_num(low)} and {_num(high)}, got {_num(number)}")


def _num(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else f"{value}"


def _vars(*rows: tuple[Any, ...] | Variable) -> tuple[Variable, ...]:
    return tuple(row if isinstance(row, Variable) else Variable(*row) for row in rows)


VARIABLES: tuple[Variable, ...] = _vars(
    ("REDIS_URL", "redis_url", "optional"),
    ("REDIS_ALLOW_EVICTION", "redis_allow_eviction", "bool"),
    ("REDIS_WAIT_REPLICAS", "redis_wait_replicas", "int", 0, 16),
    ("REDIS_WAIT_TIMEOUT_MS", "redis_wait_timeout_ms", "int", 10, 5000),
    ("REDIS_TLS_CA_FILE", "redis_tls_ca_file", "optional"),
    ("REDIS_TLS_CERT_FILE", "redis_tls_cert_file", "optional"),
    ("REDIS_TLS_KEY_FILE", "redis_tls_key_file", "optional"),
    Variable("REDIS_TLS_VERIFY", "redis_tls_verify", "text", normalise=str.lower),
    ("REDIS_SENTINEL_PASSWORD", "redis_sentinel_password", "secret"),
    ("CIRCLECI_WEBHOOK_SECRETS", "webhook_secrets", "secrets"),
    ("INSECURE_ALLOW_UNSIGNED_WEBHOOKS", "allow_unsigned_webhooks", "bool"),
    ("CIRCLE_TOKEN", "circle_token", "secret"),
    Variable("CIRCLECI_API_URL", "circleci_api_url", "text", normalise=lambda url: url.rstrip("/")),
    ("CIRCLECI_ARTIFACT_HOSTS", "artifact_hosts", "hosts"),
    ("ROUTES_FILE", "routes_file", "text"),
    Variable("LOG_FORMAT", "log_format", "text", normalise=str.lower),
    Variable("LOG_LEVEL", "log_level", "text", normalise=str.upper),
    ("ADMIN_TOKEN", "admin_token", "secret"),
    ("FEED_TOKEN", "feed_token", "secret"),
    ("UI_SESSION_SECONDS", "ui_session_seconds", "int", 60, 30 * DAY),
    Variable("CONSOLE_USER_HEADER", "console_user_header", "optional", normalise=str.lower),
    ("SLACK_SIGNING_SECRET", "slack_signing_secrets", "secrets"),
    ("SLACK_TEAM_ID", "slack_team_id", "optional"),
    ("MAX_BODY_BYTES", "max_body_bytes", "int", 1, 64 * 1024 * 1024),
    ("WEB_MAX_HEADER_BYTES", "web_max_header_bytes", "int", 1024, 1024 * 1024),
    ("WEB_HEADER_TIMEOUT_SECONDS", "web_header_timeout_seconds", "float", 0.1, 300),
    ("WEB_BODY_TIMEOUT_SECONDS", "web_body_timeout_seconds", "float", 0.1, 300),
    ("WEB_MAX_CONNECTIONS", "web_max_connections", "int", 1, 1_000_000),
    ("WEB_MAX_CLIENT_CONNECTIONS", "web_max_client_connections", "int", 1, 1_000_000),
    ("WEB_MAX_CLIENT_INCOMPLETE", "web_max_client_incomplete", "int", 1, 1_000_000),
    ("RATE_LIMIT_BURST", "rate_limit_burst", "int", 1, 10_000_000),
    ("RATE_LIMIT_PER_SECOND", "rate_limit_per_second", "float", 0.001, 10_000_000),
    ("TRUSTED_PROXIES", "trusted_proxies", "networks"),
    ("DEDUPE_TTL_SECONDS", "dedupe_ttl_seconds", "int", 3600, 365 * DAY),
    ("PORT", "port", "int", 1, 65535),
    ("HOST", "host", "text"),
    ("WEB_CONCURRENCY", "web_concurrency", "int", 1, MAX_WEB_PROCESSES),
    ("WORKERS", "worker_count", "int", 1, 64),
    ("WORKER_CONCURRENCY", "worker_concurrency", "int", 1, None),
    ("WORKER_ALLOWED_JOBS", "worker_allowed_jobs", "names"),
    ("ENRICH_DEADLINE_SECONDS", "enrich_deadline_seconds", "float", 0, DAY),
    ("ENRICH_CONCURRENCY", "enrich_concurrency", "int", 1, None),
    ("ENRICH_MAX_FAILED_TESTS", "enrich_max_failed_tests", "int", 0, 1000),
    ("ENRICH_MAX_ARTIFACTS", "enrich_max_artifacts", "int", 0, 1000),
    ("ENRICH_SUCCESSFUL_JOBS", "enrich_successful_jobs", "bool"),
    ("API_CACHE_TTL_SECONDS", "api_cache_ttl_seconds", "int", 1, 30 * DAY),
    ("LOG_TAIL", "log_tail", "bool"),
    ("LOG_TAIL_LINES", "log_tail_lines", "int", 1, 500),
    ("LOG_TAIL_CHARS", "log_tail_chars", "int", 100, 20_000),
    ("LOG_TAIL_SECONDS", "log_tail_seconds", "float", 0.1, 60),
    ("LOG_TAIL_BYTES", "log_tail_bytes", "int", 1024, 4 * 1024 * 1024),
    ("FLAKY_TESTS_TTL_SECONDS", "flaky_tests_ttl_seconds", "int", 60, DAY),
    ("CIRCLECI_API_RATE_PER_SECOND", "api_rate_per_second", "float", 0.001, 10_000_000),
    ("CIRCLECI_API_BURST", "api_burst", "int", 1, 10_000_000),
    ("TRANSITION_TTL_SECONDS", "transition_ttl_seconds", "int", 3600, 10 * 365 * DAY),
    ("MENTION_MAX_PEOPLE", "mention_max_people", "int", 0, 100),
    ("MENTION_MAX_LOOKUPS", "mention_max_lookups", "int", 0, 100),
    ("DELIVERY_RETRY_BUDGET_SECONDS", "delivery_retry_budget_seconds", "int", 1, None),
    ("DELIVERY_TIMEOUT_SECONDS", "delivery_timeout_seconds", "float", 0.1, 300),
    ("DELIVERY_BACKOFF_BASE_SECONDS", "delivery_backoff_base_seconds", "float", 0, 3600),
    ("DELIVERY_BACKOFF_MAX_SECONDS", "delivery_backoff_max_seconds", "float", 0, DAY),
    ("ENRICHED_EVENT_TTL_SECONDS", "enriched_event_ttl_seconds", "int", 60, 365 * DAY),
    ("WORKER_HTTP_PORT", "worker_http_port", "int", 0, 65535),
    ("WORKER_HTTP_HOST", "worker_http_host", "text"),
    ("WORKER_LEASE_SECONDS", "worker_lease_seconds", "int", 3, 600),
    ("WORKER_SHUTDOWN_GRACE_SECONDS", "worker_shutdown_grace_seconds", "float", 0, 3600),
    ("EVENT_JOB_TIMEOUT_SECONDS", "event_job_timeout_seconds", "int", 1, DAY),
    ("WORKER_MAINTENANCE_INTERVAL_SECONDS", "worker_maintenance_interval_seconds", "int", 1, 3600),
)
# Variables that once meant something: set, they stop the process instead of being ignored.
RETIRED = {
    "WORKER_METRICS_PORT": "is now WORKER_HTTP_PORT (the port serves /metrics, /healthz and /readyz)",
    "WORKER_ABANDONED_GRACE_SECONDS": (
        "is gone: a job whose worker died runs again once its lease lapses (WORKER_LEASE_SECONDS, default 10)"
    ),
}
_FIELDS = {f.name for f in fields(Settings)}
assert all(v.field in _FIELDS for v in VARIABLES), "every variable fills a Settings field"
