"""Events delivered for real, in this process: fan_out, an RQ SimpleWorker in burst mode and the sink.

    with DeliveryFlow(redis_url, tmp_path) as flow:
        event = flow.deliver(flow.event())      # stored, routed, posted to the sink
        flow.sink.delivered("/slack/ops")       # what the chat shows
        flow.env                                # REDIS_URL, ROUTES_FILE, SINK for the CLI

The routes file sends every event to a Slack handler and a signed webhook on the sink.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from config.settings import Settings
from service.simulators.sink import Sink, create_sink
from tests.conftest import load_fixture
from tests.server import running
from workers.context import WorkerContext, installed
from workers.delivery.fan_out import fan_out

ROUTES = """\
handlers:
  ops: {type: slack, url: "${SINK}/slack/ops"}
  audit: {type: webhook, url: "${SINK}/hooks/audit", secret: "audit-secret"}
subscriptions:
  - {name: all, handlers: [ops, audit]}
"""


class DeliveryFlow:
    def __init__(self, redis_url: str, tmp_path: Path) -> None:
        self.redis_url = redis_url
        self.routes_file = tmp_path / "routes.yaml"
        self.routes_file.write_text(ROUTES)
        self.stack = ExitStack()

    def __enter__(self) -> DeliveryFlow:
        app = create_sink()
        self.sink: Sink = app.state.sink
        base = self.stack.enter_context(running(app))
        self.env = {"REDIS_URL": self.redis_url, "ROUTES_FILE": str(self.routes_file), "SINK": base}
        self.redis = Redis.from_url(self.redis_url)
        self.stack.callback(self.redis.close)
        context = WorkerContext.build(Settings.from_environ(self.env), redis=self.redis)
        self.stack.callback(context.close)
        self.stack.enter_context(installed(context))
        self.context = context
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def event(self, **overrides: Any) -> dict[str, Any]:
        """The enriched fixture with a new id, received now."""
        event = load_fixture("enriched/workflow-completed.failed.json")
        event |= {"event_id": str(uuid.uuid4()), "received_at": datetime.now(UTC).isoformat()}
        return event | overrides

    def deliver(self, event: dict[str, Any]) -> dict[str, Any]:
        """Route the event as process_event does, queue its deliveries and work them off."""
        fan_out(self.redis, event, self.context.routing.match(event), settings=self.context.settings)
        self.work()
        return event

    def work(self, *, rounds: int = 10) -> None:
        """Work until nothing is queued or scheduled, running scheduled retries at once."""
        queue = Queue(self.context.settings.events_queue, connection=self.redis, serializer=JSONSerializer)
        scheduled = ScheduledJobRegistry(queue=queue)
        for _ in range(rounds):
            SimpleWorker([queue], connection=self.redis, serializer=JSONSerializer).work(
                burst=True, with_scheduler=False
            )
            due = scheduled.get_job_ids()
            if not due:
                return
            for job_id in due:
                scheduled.remove(job_id)
                queue.enqueue_job(Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer))
        raise AssertionError("deliveries did not settle")
