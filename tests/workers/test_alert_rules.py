"""The console tells which shipped alert rules would fire now, from the counts the product keeps.

Every rule of config/prometheus-alerts.yaml is evaluated (a rule of a form the console cannot read
fails here, not silently on the page), and each has a scenario below: the series it watches, just
over and just under its threshold, written the way the product writes them (workers/metric_window.py
on fakeredis, a fake clock). Changing a rule's threshold, window or matchers without looking at
what the console then shows makes its scenario fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import fakeredis
import pytest
import yaml

from tests.clock import FakeClock
from workers import alert_rules, metric_window
from workers.alert_rules import Observed, Rule, rules_of, shipped_rules

DEAD = "circleci_events_dead_letters_total"
ENRICHED = "circleci_events_enrichments_total"
ALERTS = "circleci_events_alerts_total"
SIGNATURE = "circleci_events_signature_failures_total"
DEPTH = "circleci_events_queue_depth"
MINUTE = 60.0


class Book:
    """Counts written as the product writes them, at times relative to `now`."""

    def __init__(self) -> None:
        self.redis = fakeredis.FakeRedis()
        self.clock = FakeClock()
        self.gauges: dict[str, dict[metric_window.Labels, float]] = {DEPTH: {}}

    def count(self, series: str, n: int = 1, *, ago: float = 0.0, **labels: str) -> None:
        with self.redis.pipeline() as pipe:
            metric_window.count(pipe, series, labels, self.clock.now() - ago, n)
            pipe.execute()

    def depth(self, queue: str, jobs: int) -> None:
        self.gauges[DEPTH][(("queue", queue),)] = float(jobs)

    def states(self, rules: tuple[Rule, ...] | None = None) -> dict[str, dict[str, object]]:
        return {r["alert"]: r for r in alert_rules.evaluate(Observed(self.redis, self.clock.now(), self.gauges), rules)}


@dataclass(frozen=True)
class Scenario:
    setup: Callable[[Book], None]
    state: str
    labels: dict[str, str] | None = None


def enrichments(book: Book, **outcomes: int) -> None:
    for outcome, n in outcomes.items():
        book.count(ENRICHED, n, outcome=outcome)


OPS = {"handler": "ops"}
# rule -> (what makes it hold, and what the console then says), (just short of it)
SCENARIOS: dict[str, tuple[Scenario, Scenario]] = {
    "CircleCIEventsDeadLetters": (
        Scenario(lambda b: b.count(DEAD, ago=14 * MINUTE, reason="rejected"), "firing", {"reason": "rejected"}),
        Scenario(lambda b: b.count(DEAD, ago=17 * MINUTE, reason="rejected"), "inactive"),
    ),
    "CircleCIEventsQueueBacklog": (
        Scenario(lambda b: b.depth("events", 101), "pending", {"queue": "events"}),
        Scenario(lambda b: b.depth("events", 100), "inactive"),
    ),
    "CircleCIEventsTokenRefused": (
        Scenario(lambda b: b.count(ENRICHED, outcome="circleci_forbidden"), "firing", {}),
        Scenario(lambda b: b.count(ENRICHED, outcome="circleci_timeout"), "inactive"),
    ),
    "CircleCIEventsEnrichmentFailing": (
        Scenario(lambda b: enrichments(b, circleci_timeout=6, complete=5), "pending", {}),
        Scenario(lambda b: enrichments(b, circleci_timeout=5, no_token=5), "inactive"),
    ),
    "CircleCIEventsAlertsFailing": (
        Scenario(lambda b: b.count(ALERTS, ago=29 * MINUTE, handler="ops", outcome="failed"), "firing", OPS),
        Scenario(lambda b: b.count(ALERTS, 3, handler="ops", outcome="sent"), "inactive"),
    ),
    "CircleCIEventsWebhookSignatureFailures": (
        Scenario(lambda b: b.count(SIGNATURE, 6, ago=5 * MINUTE), "firing", {}),
        Scenario(lambda b: b.count(SIGNATURE, 5, ago=5 * MINUTE), "inactive"),
    ),
}


def test_every_shipped_rule_is_evaluated_and_has_a_scenario() -> None:
    rules = shipped_rules()
    assert rules, "config/prometheus-alerts.yaml ships rules"
    for rule in rules:
        assert rule.problem is None, f"{rule.name}: {rule.problem}"
    states = Book().states()
    assert {name: s["state"] for name, s in states.items()} == dict.fromkeys(SCENARIOS, "inactive")


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_shipped_rule_holds_over_its_threshold_and_not_short_of_it(name: str) -> None:
    over, under = SCENARIOS[name]
    book = Book()
    over.setup(book)
    shown = book.states()[name]
    assert shown["state"] == over.state, shown
    assert [i["labels"] for i in shown["instances"]] == [over.labels]  # type: ignore[attr-defined]
    quiet = Book()
    under.setup(quiet)
    assert quiet.states()[name]["state"] == under.state == "inactive"


def test_the_summary_names_the_labels_and_the_value() -> None:
    book = Book()
    book.depth("events", 250)
    (instance,) = book.states()["CircleCIEventsQueueBacklog"]["instances"]  # type: ignore[misc]
    assert instance["summary"] == "circleci-events queue events has 250 jobs waiting"
    assert instance["value"] == 250


def test_firing_rules_come_first() -> None:
    book = Book()
    book.count(SIGNATURE, 50)
    assert alert_rules.evaluate(Observed(book.redis, book.clock.now(), book.gauges))[0]["alert"] == (
        "CircleCIEventsWebhookSignatureFailures"
    )


def one_rule(expr: str, **extra: object) -> tuple[Rule, ...]:
    document = {"groups": [{"name": "g", "rules": [{"alert": "Test", "expr": expr, "labels": {"severity": "warning"},
                                                   "annotations": {"summary": "s"}, **extra}]}]}  # fmt: skip
    return tuple(rules_of(yaml.safe_load(yaml.safe_dump(document))))


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("histogram_quantile(0.9, sum(rate(circleci_events_enqueue_seconds_bucket[5m]))) > 1", "is not sum/max"),
        (f"sum(increase({DEAD}[1d])) > 0", "longer than the counts are kept"),
        (f"sum(increase({DEAD}[15x])) > 0", "not a Prometheus duration"),
        (f"sum({DEAD}[15m]) > 0", "is not sum/max"),
        (f"sum(increase({DEAD}[15m]))", "does not end in a comparison"),
        (f'sum(increase({DEAD}{{reason~"x"}}[15m])) > 0', "label matchers"),
        ("sum(increase(circleci_events_deliveries_total[15m])) > 0", "not counted where the console can read it"),
        ("max(circleci_events_something) > 0", "not a gauge the console reads"),
        (f"sum by (reason) (rate({DEAD}[5m])) / sum(rate({DEAD}[5m])) > 0", "same labels"),
    ],
)
def test_a_rule_the_console_cannot_read_says_why(expr: str, reason: str) -> None:
    (shown,) = Book().states(one_rule(expr)).values()
    assert shown["state"] == "not_evaluated"
    assert reason in str(shown["problem"])


@pytest.mark.parametrize(
    ("matcher", "fires"),
    [('reason="a"', True), ('reason!="a"', False), ('reason=~"a|b"', True), ('reason!~"a|b"', False),
     ('reason=~"b"', False)],
)  # fmt: skip
def test_label_matchers(matcher: str, fires: bool) -> None:
    book = Book()
    book.count(DEAD, reason="a")
    (shown,) = book.states(one_rule(f"sum(increase({DEAD}{{{matcher}}}[5m])) > 0")).values()
    assert (shown["state"] == "firing") is fires


def test_a_ratio_with_nothing_counted_is_no_value_not_an_alert() -> None:
    (shown,) = Book().states(one_rule(f"sum(rate({DEAD}[5m])) / sum(rate({DEAD}[5m])) >= 0")).values()
    assert shown["state"] == "inactive"


def test_max_by_takes_the_largest_and_rate_divides_by_the_window() -> None:
    book = Book()
    book.count(DEAD, 120, reason="a")
    book.count(DEAD, 60, reason="b")
    (shown,) = book.states(one_rule(f"max(rate({DEAD}[1m])) >= 2")).values()
    assert shown["state"] == "firing" and shown["instances"][0]["value"] == 2  # type: ignore[index]
