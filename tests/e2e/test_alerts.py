"""The notifier watches itself, on real processes: web, workers, a redis-server, a destination that
is down (nothing listens on its port), the CircleCI simulator and the chat sink taking the alerts."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from service.simulators.circleci import create_simulator
from service.simulators.sink import create_sink
from tests.conftest import free_port, fresh, load_fixture
from tests.server import running
from tests.service.conftest import signed
from tests.waiting import wait_until
from workers.alerts import GATHER_SECONDS
from workers.delivery.dead_letters import DeadLetters

EVENTS = 3
ROUTES = """\
handlers:
  audit: {{type: webhook, url: "http://127.0.0.1:{dead_port}/ci", secret: s3cr3t-audit}}
  ops: {{type: slack, url: "{sink}/slack/alerts"}}
subscriptions:
  - name: everything
    handlers: [audit]
alerts:
  handlers: [ops]
  interval_seconds: 600  # the test runs its second phase well within it, on a slow machine too
"""
FAST_DEATH = {
    "DELIVERY_RETRY_BUDGET_SECONDS": "1",
    "DELIVERY_BACKOFF_BASE_SECONDS": "0.5",
    "DELIVERY_BACKOFF_MAX_SECONDS": "1",
    "DELIVERY_TIMEOUT_SECONDS": "1",
}


def test_dead_letters_from_two_workers_make_one_alert_within_the_interval(
    tmp_path: Path, redis_url: str, web_factory, worker_factory
) -> None:
    sink_app = create_sink()
    sink = sink_app.state.sink
    with running(sink_app) as sink_url:
        routes = tmp_path / "routes.yaml"
        routes.write_text(ROUTES.format(dead_port=free_port(), sink=sink_url))
        env = {"ROUTES_FILE": str(routes), **FAST_DEATH}
        _, base = web_factory(redis_url, **env)
        workers = [worker_factory(redis_url, **env) for _ in range(2)]
        template = load_fixture("workflow-completed.failed.github-oauth.derived.json")
        client = redis.Redis.from_url(redis_url)
        letters = DeadLetters(client, ttl=60)

        def post_and_wait_for_dead_letters(count: int) -> None:
            for _ in range(count):
                payload = fresh({**template, "id": str(uuid.uuid4())})
                assert httpx.post(base + "/webhooks/circleci", **signed(payload)).status_code == 202
            expected = len(letters.list()) + count
            wait_until(lambda: len(letters.list()) == expected, "the deliveries dead-lettered")

        post_and_wait_for_dead_letters(1)
        (alert,) = wait_until(lambda: sink.delivered("/slack/alerts"), "the first alert")
        assert alert.body["blocks"][0]["text"]["text"] == "⚠️ circleci-events: 1 delivery dead-lettered"
        assert "retry_budget_exhausted: 1 (handler audit)" in alert.body["blocks"][1]["text"]["text"]

        post_and_wait_for_dead_letters(EVENTS - 1)
        # the next message waits for the interval: the window is held, and the only flush is due after it
        window_ends = time.time() + client.pttl("cie:alert:ops:window") / 1000
        assert window_ends > time.time() + GATHER_SECONDS
        scheduled = Queue("events", connection=client, serializer=JSONSerializer).scheduled_job_registry
        due = [scheduled.get_scheduled_time(i) for i in scheduled.get_job_ids() if i.startswith("alert-")]
        flushes = [when.timestamp() for when in due]
        assert len(flushes) == 1 and flushes[0] >= window_ends - 1, "one message per handler per interval"
        assert len(sink.delivered("/slack/alerts")) == 1
        waiting = client.hgetall("cie:alert:ops:counts")
        assert waiting[b"dead_letter|retry_budget_exhausted|audit|"] == str(EVENTS - 1).encode(), "told next"
        sent = [line for w in workers for line in w.log_lines() if line.get("event") == "alert_sent"]
        assert len(sent) == 1 and sent[0]["handler"] == "ops"
        assert not any(line.get("event") == "alert_failed" for w in workers for line in w.log_lines())
        client.close()


def test_a_token_circleci_refuses_is_told_once_with_what_to_do(
    tmp_path: Path, redis_url: str, web_factory, worker_factory
) -> None:
    sink_app = create_sink()
    with running(sink_app) as sink_url, running(create_simulator(token="the-valid-token")) as api_url:
        routes = tmp_path / "routes.yaml"
        routes.write_text(ROUTES.format(dead_port=free_port(), sink=sink_url).replace("[audit]", "[ops]", 1))
        env = {"ROUTES_FILE": str(routes), "CIRCLE_TOKEN": "a-revoked-token", "CIRCLECI_API_URL": f"{api_url}/api/v2"}
        _, base = web_factory(redis_url, **env)
        worker = worker_factory(redis_url, **env)
        template = load_fixture("workflow-completed.failed.github-oauth.derived.json")
        for _ in range(2):
            payload = fresh({**template, "id": str(uuid.uuid4())})
            assert httpx.post(base + "/webhooks/circleci", **signed(payload)).status_code == 202
        sink = sink_app.state.sink
        messages = wait_until(lambda: len(sink.delivered("/slack/alerts")) == 3 and sink.delivered("/slack/alerts"),
                            "two events and one alert")  # fmt: skip
        (alert,) = [m for m in messages if m.body["blocks"][0]["text"]["text"].startswith("⚠️")]
        title, text = alert.body["blocks"][0]["text"]["text"], alert.body["blocks"][1]["text"]["text"]
        assert title == "⚠️ circleci-events: CircleCI refused the API token for 2 events"
        assert "circleci_unauthorized: 2 (project github/circleci/webhook-service, status 401)" in text
        assert "circleci-events api me" in text
        refused = [line for line in worker.log_lines() if line.get("event") == "event_enriched"]
        assert [line["reason"].split(":")[0] for line in refused] == ["circleci_unauthorized"] * 2
