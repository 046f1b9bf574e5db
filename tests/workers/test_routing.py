"""Routes reloaded in a running worker: swapped whole, a bad file refused, one version of the routes per event.

The worker process does this on SIGHUP (tests/reliability/test_routes_reload.py); here the
context is reloaded directly and events are delivered to the real sink through a real Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config.errors import ConfigurationError
from config.settings import Settings
from tests.conftest import fresh, load_fixture
from tests.service.delivery_flow import ROUTES, DeliveryFlow
from workers.context import WorkerContext, installed
from workers.delivery.fan_out import fan_out
from workers.delivery.replay import replay_dead_letter
from workers.events import process_event

OLD, NEW = "/slack/ops", "/slack/moved"
MOVED = ROUTES.replace(OLD, NEW)  # the handler `ops` posts somewhere else


@pytest.fixture
def flow(redis_url: str, tmp_path: Path) -> Iterator[DeliveryFlow]:
    with DeliveryFlow(redis_url, tmp_path) as flow:
        yield flow


def test_a_reload_sends_the_next_event_where_the_rewritten_file_says(flow: DeliveryFlow) -> None:
    flow.deliver(flow.event())
    flow.routes_file.write_text(MOVED)
    routing = flow.context.reload_routes()
    assert routing is flow.context.routing
    assert routing.summary() == {"handlers": ["audit", "ops"], "subscriptions": 1}
    flow.deliver(flow.event())
    assert (len(flow.sink.delivered(OLD)), len(flow.sink.delivered(NEW))) == (1, 1)


def test_a_file_that_does_not_load_is_refused_and_the_routes_before_stay(flow: DeliveryFlow) -> None:
    before = flow.context.routing
    flow.routes_file.write_text(MOVED.replace("type: slack", "type: slak"))
    with pytest.raises(ConfigurationError, match="unknown type 'slak'"):
        flow.context.reload_routes()
    assert flow.context.routing is before
    flow.deliver(flow.event())
    assert (len(flow.sink.delivered(OLD)), len(flow.sink.delivered(NEW))) == (1, 0)


def test_a_fan_out_sends_with_the_routes_the_event_was_matched_with(flow: DeliveryFlow) -> None:
    event = flow.event()
    matched_with = flow.context.routing
    handlers = matched_with.match(event)
    flow.routes_file.write_text(MOVED)
    flow.context.reload_routes()  # lands between the match and the sends
    fan_out(flow.redis, event, handlers, settings=flow.context.settings, routing=matched_with)
    flow.work()
    assert (len(flow.sink.delivered(OLD)), len(flow.sink.delivered(NEW))) == (1, 0)


def test_an_event_keeps_the_routes_its_job_started_with_when_a_reload_lands_during_enrichment(
    flow: DeliveryFlow,
) -> None:
    contexts: list[WorkerContext] = []

    def circleci(request: httpx.Request) -> httpx.Response:
        """CircleCI's first answer comes after the file was rewritten and reloaded."""
        if contexts[0].routing is started_with:
            flow.routes_file.write_text(MOVED)
            contexts[0].reload_routes()
        return httpx.Response(401, json={"message": "Invalid token provided."})

    settings = Settings.from_environ(
        {**flow.env, "CIRCLE_TOKEN": "t", "CIRCLECI_API_URL": "https://circleci.test/api/v2"}
    )
    context = WorkerContext.build(settings, redis=flow.redis, api_transport=httpx.MockTransport(circleci))
    contexts.append(context)
    started_with = context.routing
    payload = fresh(load_fixture("workflow-completed.failed.github-oauth.derived.json")) | {"id": str(uuid.uuid4())}
    envelope = {"event_id": payload["id"], "event_type": payload["type"], "request_id": "r", "payload": payload}
    try:
        with installed(context):
            assert process_event(envelope)["status"] == "enriched"
    finally:
        context.close()
    assert context.routing is not started_with  # the reload happened, during the job
    assert (len(flow.sink.delivered(OLD)), len(flow.sink.delivered(NEW))) == (1, 0)


def test_a_replay_after_a_reload_sends_with_the_routes_of_the_time_of_the_replay(flow: DeliveryFlow) -> None:
    flow.sink.add_fault(kind="bad_request", path=OLD, times=None)  # refused: dead-lettered at once
    event = flow.deliver(flow.event())
    flow.routes_file.write_text(MOVED)  # the operator's fix
    flow.context.reload_routes()
    assert replay_dead_letter(flow.redis, f"{event['event_id']}:ops") is not None
    flow.work()
    assert (len(flow.sink.delivered(OLD)), len(flow.sink.delivered(NEW))) == (0, 1)
