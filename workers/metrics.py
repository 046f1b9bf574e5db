"""The worker process's Prometheus metrics (its deliveries), in a registry of their own, served on
WORKER_HTTP_PORT."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

OUTCOMES = ("delivered", "retried", "rejected", "dead_lettered", "skipped_duplicate")


class DeliveryMetrics:
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
