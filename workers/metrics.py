"""The worker process's Prometheus metrics (its enrichments, deliveries, dead letters and alerts), in a
registry of their own, served on WORKER_HTTP_PORT. config/prometheus-alerts.yaml alerts on them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

OUTCOMES = ("delivered", "retried", "rejected", "dead_lettered", "skipped_duplicate")
# an enrichment's outcome is `complete`, `no_token`, or the error code of what failed (config/errors.py)
ENRICHMENT_OUTCOMES = ("complete", "no_token")
ALERT_OUTCOMES = ("sent", "failed")


class DeliveryMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "circleci_events_deliveries",
            "Delivery jobs by handler and outcome: " + ", ".join(OUTCOMES),
            ["handler", "outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "circleci_events_dead_letters",
            "Dead letters kept, by reason (retry_budget_exhausted, rejected, undecodable, ...)",
            ["reason"],
            registry=self.registry,
        )
        self.enrichments = Counter(
            "circleci_events_enrichments",
            "Events enriched, by outcome: complete, no_token, or the error code of the API call that failed",
            ["outcome"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "circleci_events_alerts",
            "Alerts to the routes file's `alerts:` handlers, by handler and outcome: " + ", ".join(ALERT_OUTCOMES),
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
