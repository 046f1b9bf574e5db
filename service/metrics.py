"""Prometheus metrics of the web process, served at GET /metrics.

`circleci_events_webhook_requests_total{outcome}` counts every delivery by outcome: `queued`,
`duplicate`, `ping`, `ignored`, or the error code (`signature_invalid`, `rate_limited`,
`redis_unavailable`, ...), so signature failures, duplicates and rate-limited deliveries are
each one label of it.

With several web processes (`web --workers N`) each counts what it serves into prometheus_client's
multiprocess files in `shared_dir`, and render() adds them up: a scrape that reaches any one
process answers for all of them. The queue depth, read from Redis at scrape time, is the same
whichever process reads it (the most recent reading is served).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector


class WebMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, *, shared_dir: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self._outcomes: dict[str, Any] = {}
        self.requests = Counter(
            "circleci_events_webhook_requests",
            "Webhook deliveries by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.signature_failures = Counter(
            "circleci_events_signature_failures",
            "Deliveries refused because circleci-signature was missing, garbled or wrong",
            registry=self.registry,
        )
        self.enqueue_seconds = Histogram(
            "circleci_events_enqueue_seconds",
            "Time of the atomic dedupe-and-enqueue call to Redis",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "circleci_events_queue_depth",
            "Jobs waiting in each RQ queue, read at scrape time",
            ["queue"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.scraped = self.registry
        if shared_dir is not None:
            self.scraped = CollectorRegistry()
            MultiProcessCollector(self.scraped, path=shared_dir)  # type: ignore[no-untyped-call]

    def outcome(self, name: str) -> Any:
        """The requests counter of one outcome (looked up once: `labels()` costs a lock and a hash)."""
        child = self._outcomes.get(name)
        if child is None:
            child = self._outcomes[name] = self.requests.labels(name)
        return child

    def render(self) -> bytes:
        return generate_latest(self.scraped)
