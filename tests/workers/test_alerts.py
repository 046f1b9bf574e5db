"""The notifier watches itself: dead letters and a refused token, told at most once per interval.

fakeredis stands in for Redis and httpx.MockTransport for Slack; the flush job is called as RQ
would call it. "The interval passes" is the window key deleted, as its TTL would.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import orjson
import pytest
from rq import Queue
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from structlog.testing import capture_logs

from config.settings import Settings
from workers import alerts, metric_window
from workers.alerts import GATHER_SECONDS, AlertBook, flush_alerts
from workers.context import WorkerContext, installed
from workers.delivery.dead_letters import DeadLetter, DeadLetters
from workers.jobs import FLUSH_ALERTS

ROUTES = """\
handlers:
  ops: {type: slack, url: "https://hooks.slack.test/services/T0/B0/alerts"}
  log: {type: log}
subscriptions:
  - name: everything
    handlers: [log]
"""
ALERTS = "alerts:\n  handlers: [ops]\n  interval_seconds: 300\n"


class Watched:
    """A worker's context on fakeredis whose Slack answers with `answer` and records each post."""

    def __init__(self, tmp_path: Path, server: fakeredis.FakeServer, routes: str = ROUTES + ALERTS) -> None:
        path = tmp_path / "routes.yaml"
        path.write_text(textwrap.dedent(routes))
        self.redis = fakeredis.FakeRedis(server=server)
        self.context = WorkerContext.build(Settings.from_environ({"ROUTES_FILE": str(path)}), redis=self.redis)
        self.posts: list[dict[str, Any]] = []
        self.answer: Callable[[], httpx.Response] = lambda: httpx.Response(200, text="ok")
        self.context.http = httpx.Client(transport=httpx.MockTransport(self._post))

    def _post(self, request: httpx.Request) -> httpx.Response:
        self.posts.append(orjson.loads(request.content))
        return self.answer()

    def dead_letter(self, reason: str = "retry_budget_exhausted", handler: str = "log", status: int = 503) -> None:
        letter = DeadLetter(delivery_id=f"e:{handler}", event_id="e", handler=handler, reason=reason,
                            last_status=status, dead_at=1.0)  # fmt: skip
        DeadLetters(self.redis, ttl=60).put(letter)
        alerts.dead_lettered(self.context, letter)

    def flush(self, handler: str = "ops") -> str:
        with installed(self.context):
            return flush_alerts(handler)

    def flushes(self) -> list[float]:
        """When the scheduled flush jobs are due (epoch seconds), soonest first."""
        registry = ScheduledJobRegistry(queue=Queue("events", connection=self.redis, serializer=JSONSerializer))
        jobs = [Queue("events", connection=self.redis, serializer=JSONSerializer).fetch_job(i)
                for i in registry.get_job_ids()]  # fmt: skip
        assert all(job is not None and job.func_name == FLUSH_ALERTS and job.args == ["ops"] for job in jobs)
        return sorted(registry.get_scheduled_time(job).timestamp() for job in jobs if job is not None)

    def interval_passes(self, handler: str = "ops") -> None:
        self.redis.delete(AlertBook.key(handler, "window"))

    def texts(self) -> list[str]:
        return [post["blocks"][1]["text"]["text"] for post in self.posts]

    def metric(self, name: str, **labels: str) -> float:
        return self.context.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def watched(tmp_path: Path, server: fakeredis.FakeServer) -> Iterator[Watched]:
    world = Watched(tmp_path, server)
    yield world
    world.context.close()


def test_a_burst_of_dead_letters_is_one_message_with_the_counts_and_the_reasons(watched: Watched) -> None:
    before = time.time()
    for reason, handler, status in [("retry_budget_exhausted", "log", 503)] * 2 + [("rejected", "ops", 400)]:
        watched.dead_letter(reason, handler, status)
    (due,) = watched.flushes()  # one flush for the burst, a few seconds on, so the burst is gathered
    assert before + GATHER_SECONDS <= due <= time.time() + GATHER_SECONDS + 1

    assert watched.flush() == "sent"
    (post,) = watched.posts
    assert post["blocks"][0]["text"]["text"] == "⚠️ circleci-events: 3 deliveries dead-lettered"
    lines = watched.texts()[0].splitlines()
    assert lines[1:3] == ["• retry_budget_exhausted: 2 (handler log, status 503)",
                          "• rejected: 1 (handler ops, status 400)"]  # fmt: skip
    assert "dead-letters list" in lines[3]
    assert not watched.redis.exists(AlertBook.key("ops", "counts")), "what was told is not told again"
    assert watched.metric("circleci_events_dead_letters_total", reason="retry_budget_exhausted") == 2
    assert watched.metric("circleci_events_alerts_total", handler="ops", outcome="sent") == 1


def test_what_metrics_counts_is_counted_per_minute_for_the_consoles_alert_rules(watched: Watched) -> None:
    watched.dead_letter("rejected")
    watched.dead_letter("rejected")
    alerts.enriched(watched.context, {"enrichment": {"error_code": "circleci_forbidden"}, "project": {"slug": "p"}})
    watched.answer = lambda: httpx.Response(500, text="down")
    assert watched.flush() == "failed"
    now = watched.context.clock.now()
    for series, labels in [
        ("circleci_events_dead_letters_total", {"reason": "rejected"}),
        ("circleci_events_enrichments_total", {"outcome": "circleci_forbidden"}),
        ("circleci_events_alerts_total", {"handler": "ops", "outcome": "failed"}),
    ]:
        counted = metric_window.increase(watched.redis, series, 60, now)
        assert counted == {tuple(sorted(labels.items())): watched.metric(series, **labels)} != {}, series


def test_within_the_interval_nothing_more_is_sent_and_the_next_message_counts_what_came_since(
    watched: Watched,
) -> None:
    watched.dead_letter()
    assert watched.flush() == "sent"
    watched.dead_letter("rejected")
    watched.dead_letter("rejected")
    (due,) = watched.flushes()[1:]  # the first flush job is still listed; the second waits for the window
    assert due >= time.time() + 290
    assert watched.flush() == "later", "the window is held for the interval"
    assert len(watched.posts) == 1

    watched.interval_passes()
    assert watched.flush() == "sent"
    assert len(watched.posts) == 2
    assert watched.posts[1]["blocks"][0]["text"]["text"] == "⚠️ circleci-events: 2 deliveries dead-lettered"
    assert watched.flush() == "nothing"


def test_several_workers_share_one_limit(tmp_path: Path, server: fakeredis.FakeServer, watched: Watched) -> None:
    other = Watched(tmp_path, server)  # a second worker process on the same Redis
    watched.dead_letter()
    other.dead_letter()
    assert len(watched.flushes()) == 1, "the second worker finds the flush scheduled"
    outcomes = [watched.flush(), other.flush(), other.flush()]
    assert outcomes == ["sent", "nothing", "nothing"]
    assert len(watched.posts) + len(other.posts) == 1
    assert "2 deliveries" in watched.posts[0]["text"]
    other.context.close()


def test_failures_during_a_send_wait_for_the_next_message(watched: Watched) -> None:
    watched.dead_letter()

    def answer_while_another_dies() -> httpx.Response:
        alerts.dead_lettered(watched.context, DeadLetter("x:log", "x", "log", "event_expired"))
        return httpx.Response(200)

    watched.answer = answer_while_another_dies
    assert watched.flush() == "sent"
    assert "1 delivery dead-lettered" in watched.posts[0]["text"]
    watched.interval_passes()
    assert watched.flush() == "sent"
    assert "event_expired: 1" in watched.texts()[1]


def test_an_alert_that_fails_is_logged_once_per_interval_never_dead_lettered_nor_alerted_on(watched: Watched) -> None:
    watched.answer = lambda: httpx.Response(500, text="slack is down")
    watched.dead_letter()
    letters = len(DeadLetters(watched.redis, ttl=60).list())
    with capture_logs() as logs:
        assert watched.flush() == "failed"
        for _ in range(3):
            watched.dead_letter()
            assert watched.flush() == "later"
    failed = [line for line in logs if line["event"] == "alert_failed"]
    assert len(failed) == 1 and failed[0]["log_level"] == "error"
    assert "destination answered 500" in failed[0]["error"] and "alerts" not in failed[0]["error"]
    assert len(DeadLetters(watched.redis, ttl=60).list()) == letters, "an alert never becomes a dead letter"
    assert Queue("events", connection=watched.redis).count == 0, "no delivery job for an alert"
    assert watched.metric("circleci_events_alerts_total", handler="ops", outcome="failed") == 1

    watched.answer = lambda: httpx.Response(200)
    watched.interval_passes()
    assert watched.flush() == "sent"
    assert "4 deliveries dead-lettered" in watched.posts[-1]["text"], "what failed to go out is told next time"


@pytest.mark.parametrize(
    ("enrichment", "outcome", "told"),
    [({"complete": True, "error_code": None}, "complete", False),
     ({"complete": False, "error_code": None}, "no_token", False),
     ({"complete": False, "error_code": "circleci_server_error"}, "circleci_server_error", False),
     ({"complete": False, "error_code": "circleci_unauthorized"}, "circleci_unauthorized", True),
     ({"complete": False, "error_code": "circleci_forbidden"}, "circleci_forbidden", True)],
)  # fmt: skip
def test_every_enrichment_is_counted_and_a_refused_token_is_told(
    watched: Watched, enrichment: dict[str, Any], outcome: str, told: bool
) -> None:
    alerts.enriched(watched.context, {"project": {"slug": "gh/acme/api"}, "enrichment": enrichment})
    assert watched.metric("circleci_events_enrichments_total", outcome=outcome) == 1
    assert watched.flush() == ("sent" if told else "nothing")
    if told:
        assert "CircleCI refused the API token for 1 event" in watched.posts[0]["text"]
        assert f"{outcome}: 1 (project gh/acme/api, status" in watched.texts()[0]
        assert "circleci-events api me" in watched.texts()[0]


def test_without_an_alerts_section_failures_are_counted_but_nobody_is_told(
    tmp_path: Path, server: fakeredis.FakeServer
) -> None:
    quiet = Watched(tmp_path, server, routes=ROUTES)
    quiet.dead_letter()
    alerts.enriched(quiet.context, {"enrichment": {"error_code": "circleci_unauthorized"}})
    assert quiet.metric("circleci_events_dead_letters_total", reason="retry_budget_exhausted") == 1
    assert quiet.redis.keys("cie:alert:*") == [] and quiet.flushes() == []
    assert quiet.flush() == "not_configured"
    quiet.context.close()
