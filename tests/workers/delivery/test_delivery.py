"""Delivery, as the spec: every handler gets each event exactly once, whatever fails and retries.

Real redis-server, real RQ SimpleWorkers (burst mode) and the chat sink over real HTTP. The
worker context reads a fake clock. Retries are scheduled through RQ's scheduler;
`Deliveries.run()` moves scheduled jobs to the queue at once and the fake clock to the time they
were due, so no test sleeps for a backoff and a retry budget runs out after the same retries on
any machine.
"""

from __future__ import annotations

import json
import random
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis
from redis.client import Pipeline
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty
from structlog.testing import capture_logs

from config.errors import DeliveryRejected, DeliveryRetryable
from config.settings import Settings
from service.simulators.sink import Sink, create_sink
from tests.clock import FakeClock
from tests.conftest import load_fixture
from tests.server import running
from workers.context import WorkerContext, current, installed
from workers.delivery.dead_letters import DeadLetters
from workers.delivery.fan_out import fan_out
from workers.delivery.jobs import delivery_id_of, enqueue_delivery, job_id_of
from workers.delivery.replay import replay_dead_letter, replay_event
from workers.store import EventStore, received_epoch
from workers.worker import QUEUES, build_worker

pytestmark = pytest.mark.integration

PATHS = {"ops": "/slack/ops", "audit": "/hooks/audit", "teams": "/teams/ci"}


class SinkHandler:
    """A test double of a chat handler: posts a small JSON message, maps answers like the real ones."""

    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url

    def send(self, event: dict[str, Any], *, delivery_id: str, http: httpx.Client) -> None:
        body = {"text": f"{event['event_type']} {event['status']}", "event_id": event["event_id"]}
        try:
            answer = http.post(self.url, json=body, headers={"x-delivery-id": delivery_id})
        except httpx.TimeoutException:
            raise DeliveryRetryable("timed out", handler=self.name) from None
        if answer.status_code < 300:
            return
        details = {"handler": self.name, "status": answer.status_code, "body_excerpt": answer.text[:200]}
        if answer.status_code == 429:
            retry_after = float(answer.headers.get("retry-after", 1))
            raise DeliveryRetryable("rate limited", retry_after=retry_after, **details)
        if answer.status_code in (408,) or answer.status_code >= 500:
            raise DeliveryRetryable(f"answered {answer.status_code}", **details)
        raise DeliveryRejected(f"answered {answer.status_code}", **details)


class ThreadWorker(SimpleWorker):
    """A SimpleWorker that can run in a thread (no signal handlers, timer-based job timeouts)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


class Deliveries:
    """The system under test: Redis, the deliveries queue, the sink and a way to run workers."""

    def __init__(self, redis: Redis, sink: Sink, settings: Settings, clock: FakeClock | None = None) -> None:
        self.redis, self.sink, self.settings = redis, sink, settings
        self.clock = clock
        self.queue = Queue(settings.events_queue, connection=redis, serializer=JSONSerializer)
        self.scheduled = ScheduledJobRegistry(queue=self.queue)
        self.store = EventStore(redis, ttl=settings.enriched_event_ttl_seconds)
        self.dead = DeadLetters(redis, ttl=settings.enriched_event_ttl_seconds)

    def worker(self) -> SimpleWorker:
        return ThreadWorker([self.queue], connection=self.redis, serializer=JSONSerializer)

    def run(self, *, rounds: int = 30) -> None:
        """Work until nothing is queued or scheduled, running scheduled retries early."""
        for _ in range(rounds):
            self.worker().work(burst=True, with_scheduler=False)
            due = self.scheduled.get_job_ids()
            if not due:
                return
            self.promote(due)
        raise AssertionError("deliveries did not settle")

    def promote(self, job_ids: list[str]) -> None:
        """Queue the scheduled jobs now; the fake clock (if any) moves on to when the last was due."""
        if self.clock is not None:
            self.clock.advance_to(max(self.scheduled.get_scheduled_time(job_id).timestamp() for job_id in job_ids))
        for job_id in job_ids:
            self.scheduled.remove(job_id)
            self.queue.enqueue_job(Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer))

    def posts(self, handler: str = "ops") -> int:
        """Messages the handler's chat shows (answered 2xx)."""
        return len(self.sink.delivered(PATHS[handler]))

    def tries(self, handler: str = "ops") -> int:
        return len(self.sink.requests(PATHS[handler]))

    def state(self, event: dict[str, Any], handler: str = "ops") -> dict[str, Any]:
        return self.store.handler_state(event["event_id"], handler)


def make_event(**overrides: Any) -> dict[str, Any]:
    event = load_fixture("enriched/workflow-completed.failed.json")
    event["received_at"] = datetime.now(UTC).isoformat()
    return event | overrides


@pytest.fixture
def event() -> dict[str, Any]:
    return make_event()


@pytest.fixture
def deliveries(redis_url: str) -> Iterator[Deliveries]:
    settings = Settings.from_environ(
        {
            "REDIS_URL": redis_url,
            "DELIVERY_TIMEOUT_SECONDS": "1",
            "DELIVERY_BACKOFF_BASE_SECONDS": "2",
            "DELIVERY_RETRY_BUDGET_SECONDS": "3600",
        }
    )
    app = create_sink()
    redis = Redis.from_url(redis_url)
    with running(app) as base_url:
        handlers = {name: SinkHandler(name, base_url + path) for name, path in PATHS.items()}
        clock = FakeClock()
        context = WorkerContext.build(settings, redis=redis, handlers=handlers, rng=random.Random(7), clock=clock)
        with installed(context):
            yield Deliveries(redis, app.state.sink, settings, clock)
        context.close()
    redis.close()


def test_each_handler_gets_the_event_once(deliveries: Deliveries, event: dict) -> None:
    outcomes = fan_out(deliveries.redis, event, ["ops", "audit"])
    deliveries.run()
    assert outcomes == {f"{event['event_id']}:ops": "delivered", f"{event['event_id']}:audit": "delivered"}
    assert (deliveries.posts("ops"), deliveries.posts("audit")) == (1, 1)
    [message] = deliveries.sink.delivered(PATHS["ops"])
    assert message.headers["x-delivery-id"] == f"{event['event_id']}:ops"
    record = deliveries.store.record(event["event_id"])
    assert record is not None
    assert record["deliveries"]["ops"]["outcome"] == "delivered"
    assert record["deliveries"]["audit"]["attempts"] == 1


def test_between_enrichment_and_the_first_post_redis_is_asked_once(
    deliveries: Deliveries, event: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The enrichment's writes, the event stored and each attempt's lock and delivered check: one round trip."""
    deliveries.redis.ping()  # a connection in the pool: its handshake is not the fan-out's
    sent: list[object] = []
    original = AbstractConnection.send_packed_command

    def send_packed_command(connection: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        sent.append(args)  # one round trip: a command, or a pipeline's commands together
        original(connection, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send_packed_command)
    at_post: list[int] = []
    deliveries.sink.on_receive = lambda received: at_post.append(len(sent))
    writes = [lambda pipe: pipe.set("cie:test:cached", 1), lambda pipe: pipe.publish("cie:test", "hi")]
    outcomes = fan_out(deliveries.redis, event, ["ops", "audit"], writes=writes)
    assert set(outcomes.values()) == {"delivered"}
    assert min(at_post) == 1 and len(at_post) == 2  # the other post may follow the first one's record
    assert deliveries.redis.get("cie:test:cached") == b"1"
    assert deliveries.store.load(event["event_id"]) is not None
    assert deliveries.redis.keys("cie:lock:*") == []  # each released with its success


def test_a_lock_held_by_another_worker_as_the_fan_out_asks_is_a_later_job(deliveries: Deliveries, event: dict) -> None:
    deliveries.redis.set(f"cie:lock:{event['event_id']}:ops", "theirs", px=5000)
    assert fan_out(deliveries.redis, event, ["ops"]) == {f"{event['event_id']}:ops": "lock_busy"}
    assert deliveries.tries() == 0
    assert deliveries.redis.get(f"cie:lock:{event['event_id']}:ops") == b"theirs"  # not ours to free
    assert len(deliveries.scheduled.get_job_ids()) == 1


def test_a_success_frees_the_lock_whoever_holds_it_and_whoever_takes_it_next_finds_it_delivered(
    deliveries: Deliveries, event: dict
) -> None:
    """Our lock expired mid-post and another worker took it: the success's plain DEL frees theirs
    too (one command, not a compare-and-delete's three), and the attempt it lets in sends nothing."""
    lock = f"cie:lock:{event['event_id']}:ops"
    deliveries.sink.on_receive = lambda received: deliveries.redis.set(lock, "theirs", px=60_000)
    assert fan_out(deliveries.redis, event, ["ops"]) == {f"{event['event_id']}:ops": "delivered"}
    assert deliveries.redis.exists(lock) == 0
    deliveries.sink.on_receive = None
    enqueue_delivery(deliveries.redis, deliveries.settings, event["event_id"], "ops", "after", delay=0)
    deliveries.run()
    assert deliveries.tries() == 1


def test_a_success_whose_record_meets_a_redis_outage_waits_for_redis_and_is_not_posted_again(
    deliveries: Deliveries, event: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis goes away between the chat's answer and the record: failing the job would run it
    again once Redis is back and, with no record, post again. The record waits for Redis instead."""
    refusals = {"left": 0}
    execute = Pipeline.execute

    def away_for_a_while(pipe: Pipeline, raise_on_error: bool = True) -> Any:
        if refusals["left"]:
            refusals["left"] -= 1
            pipe.reset()  # as redis-py leaves a pipeline whose execute failed
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return execute(pipe, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", away_for_a_while)
    deliveries.sink.on_receive = lambda received: refusals.update(left=3)
    with capture_logs() as logs:
        assert fan_out(deliveries.redis, event, ["ops"]) == {f"{event['event_id']}:ops": "delivered"}
    assert refusals["left"] == 0 and deliveries.clock is not None and deliveries.clock.sleeps == [0.1, 0.2, 0.4]
    assert [line["event"] for line in logs if line["event"].startswith("redis_outage")] == [
        "redis_outage_waiting",
        "redis_outage_ridden_out",
    ]
    assert deliveries.state(event)["outcome"] == "delivered"
    deliveries.sink.on_receive = None
    enqueue_delivery(deliveries.redis, deliveries.settings, event["event_id"], "ops", "again", delay=0)
    deliveries.run()
    assert deliveries.tries() == 1


def test_a_forced_replay_frees_only_its_own_lock(deliveries: Deliveries, event: dict) -> None:
    """A forced replay sends whatever the delivered key says: it releases by compare-and-delete."""
    lock = f"cie:lock:{event['event_id']}:ops"
    fan_out(deliveries.redis, event, ["ops"])
    deliveries.sink.on_receive = lambda received: deliveries.redis.set(lock, "theirs", px=60_000)
    replay_event(deliveries.redis, event["event_id"], "ops", force=True, settings=deliveries.settings)
    deliveries.run()
    assert deliveries.tries() == 2
    assert deliveries.redis.get(lock) == b"theirs"


def test_a_delivery_recorded_before_the_fan_out_took_its_lock_is_not_posted_again(
    deliveries: Deliveries, event: dict
) -> None:
    """The delivered check comes after the lock, in the same round trip: the lock order holds."""
    deliveries.redis.set(f"cie:delivered:{event['event_id']}:ops", "{}")
    assert fan_out(deliveries.redis, event, ["ops"]) == {f"{event['event_id']}:ops": "skipped_duplicate"}
    assert deliveries.tries() == 0
    assert deliveries.redis.keys("cie:lock:*") == []


def test_a_handler_named_twice_gets_one_delivery(deliveries: Deliveries, event: dict) -> None:
    assert fan_out(deliveries.redis, event, ["ops", "ops"]) == {f"{event['event_id']}:ops": "delivered"}
    deliveries.run()
    assert deliveries.posts() == 1


def test_the_first_attempt_runs_in_the_enrichment_job_and_only_a_retry_is_a_job(
    deliveries: Deliveries, event: dict
) -> None:
    deliveries.sink.add_fault(path=PATHS["ops"], status=500, times=1)
    assert fan_out(deliveries.redis, event, ["ops", "audit"]) == {
        f"{event['event_id']}:ops": "retried",
        f"{event['event_id']}:audit": "delivered",
    }
    assert (deliveries.tries("ops"), deliveries.posts("audit")) == (1, 1)
    assert deliveries.queue.count == 0 and len(deliveries.scheduled.get_job_ids()) == 1
    deliveries.run()
    assert (deliveries.posts("ops"), deliveries.posts("audit")) == (1, 1)


def test_first_attempts_run_at_once_so_a_slow_destination_holds_back_no_other(
    deliveries: Deliveries, event: dict
) -> None:
    # each answered after 0.8 s: one after the other, the second would arrive 0.8 s after the first
    deliveries.sink.add_fault(kind="slow", path=PATHS["ops"], delay=0.8)
    deliveries.sink.add_fault(kind="slow", path=PATHS["audit"], delay=0.8)
    outcomes = fan_out(deliveries.redis, event, ["ops", "audit", "teams"])
    assert set(outcomes.values()) == {"delivered"}
    [ops], [audit] = deliveries.sink.requests(PATHS["ops"]), deliveries.sink.requests(PATHS["audit"])
    assert abs(ops.at - audit.at) < 0.8, "the second slow send arrived while the first was held"


def test_an_enrichment_that_runs_again_leaves_handlers_with_an_outcome_alone(
    deliveries: Deliveries, event: dict
) -> None:
    """Its worker died after the first attempts: one delivered, one waiting for its retry."""
    deliveries.sink.add_fault(path=PATHS["ops"], status=500, times=1)
    fan_out(deliveries.redis, event, ["ops", "audit"])
    assert fan_out(deliveries.redis, event, ["ops", "audit"], rerun=True) == {}
    assert (deliveries.tries("ops"), deliveries.tries("audit")) == (1, 1)
    assert len(deliveries.scheduled.get_job_ids()) == 1, "one retry chain, not two"
    deliveries.run()
    assert (deliveries.posts("ops"), deliveries.posts("audit")) == (1, 1)


def test_a_duplicate_event_posts_nothing_more(deliveries: Deliveries, event: dict) -> None:
    fan_out(deliveries.redis, event, ["ops"])
    deliveries.run()
    with capture_logs() as logs:
        fan_out(deliveries.redis, event, ["ops"])  # the enrichment job ran again, not knowing it had
        replay_event(deliveries.redis, event["event_id"])  # an operator replays without force
        deliveries.run()
    assert deliveries.posts() == 1
    assert [line["event"] for line in logs if line["event"].startswith("delivery_")] == [
        "delivery_skipped_duplicate"
    ] * 2


def test_a_forced_replay_posts_again(deliveries: Deliveries, event: dict) -> None:
    fan_out(deliveries.redis, event, ["ops", "audit"])
    deliveries.run()
    assert replay_event(deliveries.redis, event["event_id"], "ops", force=True) == [f"{event['event_id']}:ops"]
    deliveries.run()
    assert (deliveries.posts("ops"), deliveries.posts("audit")) == (2, 1)


def test_429_waits_at_least_retry_after_then_delivers(deliveries: Deliveries, event: dict) -> None:
    deliveries.sink.add_fault(path=PATHS["ops"], status=429, retry_after=30)
    fan_out(deliveries.redis, event, ["ops"])
    deliveries.worker().work(burst=True, with_scheduler=False)
    [retry] = deliveries.scheduled.get_job_ids()
    tried_at = deliveries.state(event)["last_attempt_at"]
    assert deliveries.scheduled.get_scheduled_time(retry).timestamp() >= tried_at + 30
    deliveries.run()
    assert (deliveries.tries(), deliveries.posts()) == (2, 1)
    assert deliveries.state(event)["outcome"] == "delivered"


def test_500s_are_retried_with_growing_backoff_until_delivered(deliveries: Deliveries, event: dict) -> None:
    deliveries.sink.add_fault(path=PATHS["ops"], status=500, times=3)
    with capture_logs() as logs:
        fan_out(deliveries.redis, event, ["ops"])
        deliveries.run()
    assert (deliveries.tries(), deliveries.posts()) == (4, 1)
    retries = [line for line in logs if line["event"] == "delivery_retry_scheduled"]
    assert [line["status"] for line in retries] == [500, 500, 500]
    waits = [line["retry_in_seconds"] for line in retries]
    assert waits[0] <= 2 < waits[2]  # base 2 s, doubling, jitter in [0.5, 1]
    assert deliveries.state(event)["attempts"] == 4


def test_a_timeout_is_retried(deliveries: Deliveries, event: dict) -> None:
    deliveries.sink.add_fault(kind="slow", path=PATHS["ops"], delay=1.5)
    fan_out(deliveries.redis, event, ["ops"])
    deliveries.run()
    assert deliveries.tries() == 2
    assert (deliveries.state(event)["outcome"], deliveries.state(event)["attempts"]) == ("delivered", 2)


def test_a_400_fails_fast_as_a_configuration_error(deliveries: Deliveries, event: dict) -> None:
    deliveries.sink.add_fault(kind="bad_request", path=PATHS["ops"], times=None)
    with capture_logs() as logs:
        fan_out(deliveries.redis, event, ["ops"])
        deliveries.run()
    assert deliveries.tries() == 1
    [rejected] = [line for line in logs if line["event"] == "delivery_rejected"]
    assert (rejected["log_level"], rejected["status"]) == ("error", 400)
    letter = deliveries.dead.get(f"{event['event_id']}:ops")
    assert letter is not None
    assert (letter.reason, letter.last_status, letter.body_excerpt, letter.attempts) == (
        "rejected",
        400,
        "invalid_payload",
        1,
    )


def test_one_handler_failing_never_stops_another(deliveries: Deliveries, event: dict) -> None:
    deliveries.sink.add_fault(kind="bad_request", path=PATHS["ops"], times=None)
    deliveries.sink.add_fault(kind="down", path=PATHS["teams"], times=2)
    fan_out(deliveries.redis, event, ["ops", "teams", "audit"])
    deliveries.run()
    assert (deliveries.posts("ops"), deliveries.posts("teams"), deliveries.posts("audit")) == (0, 1, 1)
    assert deliveries.tries("audit") == 1  # the teams retries never re-posted audit


def test_out_of_budget_goes_to_dead_letters_then_replay_posts_once(deliveries: Deliveries) -> None:
    # received with 40 s left of its one-hour budget: backoffs of 2, 4, 8, 16 s (jitter takes up
    # to half of each; RQ's scheduler rounds up to the second) run out of it. On the fake clock,
    # every retry runs exactly when it was due: the same retries fit on any machine.
    clock = deliveries.clock
    assert clock is not None
    event = make_event(received_at=datetime.fromtimestamp(clock.now() - 3600 + 40, UTC).isoformat())
    deliveries.sink.add_fault(kind="down", path=PATHS["ops"], duration=3600, body="upstream down")
    with capture_logs() as logs:
        fan_out(deliveries.redis, event, ["ops"])
        deliveries.run()
    delivery_id = f"{event['event_id']}:ops"
    letter = deliveries.dead.get(delivery_id)
    assert letter is not None
    assert (letter.reason, letter.last_status, letter.body_excerpt) == ("retry_budget_exhausted", 503, "upstream down")
    assert letter.attempts == deliveries.tries() == 5  # with this rng's jitter: 4 retries fit, a 5th would not
    assert letter.first_attempt_at is not None and letter.last_attempt_at is not None
    assert 2 + 4 + 8 <= letter.last_attempt_at - letter.first_attempt_at <= 40
    assert letter.dead_at == clock.now() <= received_epoch(event) + 3600
    waits = [line["retry_in_seconds"] for line in logs if line["event"] == "delivery_retry_scheduled"]
    assert len(waits) == letter.attempts - 1
    assert [d.delivery_id for d in deliveries.dead.list()] == [delivery_id]
    assert [line["event"] for line in logs if line["log_level"] == "error"] == ["delivery_dead_lettered"]

    deliveries.sink.clear_faults()  # the chat service is back
    assert replay_dead_letter(deliveries.redis, delivery_id) is not None
    assert replay_dead_letter(deliveries.redis, delivery_id) is None  # the letter is gone
    deliveries.run()
    assert deliveries.posts() == 1
    assert deliveries.dead.get(delivery_id) is None
    replay_event(deliveries.redis, event["event_id"], "ops")  # a later duplicate replay
    deliveries.run()
    assert deliveries.posts() == 1


def test_a_replay_renders_with_the_handlers_of_the_time_of_sending(deliveries: Deliveries, event: dict) -> None:
    deliveries.sink.add_fault(kind="bad_request", path=PATHS["ops"], times=None)
    fan_out(deliveries.redis, event, ["ops"])
    deliveries.run()
    handlers = current().routing.handlers
    handlers["ops"].url = handlers["audit"].url  # type: ignore[attr-defined]  # the fix
    replay_dead_letter(deliveries.redis, f"{event['event_id']}:ops")
    deliveries.run()
    assert deliveries.posts("audit") == 1


def test_an_expired_event_is_dead_lettered(deliveries: Deliveries, event: dict) -> None:
    queue_delivery_job(deliveries, event)  # a retry, waiting
    deliveries.redis.delete(f"cie:event:{event['event_id']}")
    deliveries.run()
    letter = deliveries.dead.get(f"{event['event_id']}:ops")
    assert letter is not None and letter.reason == "event_expired"
    assert deliveries.tries() == 0


def test_an_unknown_handler_is_dead_lettered(deliveries: Deliveries, event: dict) -> None:
    fan_out(deliveries.redis, event, ["gone"])
    deliveries.run()
    letter = deliveries.dead.get(f"{event['event_id']}:gone")
    assert letter is not None and letter.reason == "unknown_handler"


def test_two_workers_racing_the_same_delivery_post_once(deliveries: Deliveries, event: dict) -> None:
    deliveries.sink.add_fault(kind="slow", path=PATHS["ops"], delay=0.5)  # both start while one sends
    queue_delivery_job(deliveries, event)
    replay_event(deliveries.redis, event["event_id"], "ops")  # a second job for the same delivery
    assert deliveries.queue.count == 2
    workers = [threading.Thread(target=deliveries.worker().work, kwargs={"burst": True}) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=30)
    deliveries.run()  # whoever found the lock taken retries later and finds the success
    assert deliveries.posts() == 1


def test_the_job_logs_carry_the_delivery_ids(deliveries: Deliveries, event: dict) -> None:
    from structlog.contextvars import merge_contextvars

    deliveries.sink.add_fault(path=PATHS["ops"], status=500, times=1)
    with capture_logs(processors=[merge_contextvars]) as logs:
        fan_out(deliveries.redis, event, ["ops", "audit"], job_id="enrichment-job")
        deliveries.run()
    [retried] = [line for line in logs if line["event"] == "delivery_retry_scheduled"]
    [audit, ops] = sorted((line for line in logs if line["event"] == "delivery_succeeded"), key=lambda x: x["handler"])
    for line in retried, audit, ops:
        assert line["event_id"] == event["event_id"]
        assert line["delivery_id"] == f"{event['event_id']}:{line['handler']}"
        assert line["request_id"] == event["request_id"]
    assert retried["handler"] == "ops" and retried["job_id"] == audit["job_id"] == "enrichment-job"
    assert ops["job_id"] == job_id_of(f"{event['event_id']}:ops", "retry-1")


def test_metrics_count_outcomes_attempts_and_time_to_delivery(deliveries: Deliveries, event: dict) -> None:
    deliveries.sink.add_fault(path=PATHS["ops"], status=500)
    fan_out(deliveries.redis, event, ["ops"])
    deliveries.run()
    fan_out(deliveries.redis, make_event(event_id="other"), ["ops"])
    replay_event(deliveries.redis, event["event_id"], "ops")
    deliveries.run()
    registry = current().metrics.registry

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("circleci_events_deliveries_total", handler="ops", outcome="retried") == 1
    assert value("circleci_events_deliveries_total", handler="ops", outcome="delivered") == 2
    assert value("circleci_events_deliveries_total", handler="ops", outcome="skipped_duplicate") == 1
    assert value("circleci_events_delivery_attempts_total", handler="ops") == 3
    assert value("circleci_events_delivery_latency_seconds_count", handler="ops") == 2


def queue_delivery_job(deliveries: Deliveries, event: dict, handler: str = "ops") -> str:
    """A delivery job as a retry or a replay makes one, for an event stored without a first attempt."""
    deliveries.store.save(event, handlers=[handler])
    job_id = job_id_of(delivery_id_of(event["event_id"], handler), "test")
    assert enqueue_delivery(deliveries.redis, deliveries.settings, event["event_id"], handler, job_id)
    return job_id


def test_a_worker_finishes_deliveries_before_it_enriches_the_next_event(deliveries: Deliveries, event: dict) -> None:
    """A burst of events must not hold back the retries of the ones already enriched."""
    waiting = Queue("events", connection=deliveries.redis, serializer=JSONSerializer).enqueue("os.getcwd")
    queue_delivery_job(deliveries, event)
    build_worker(deliveries.redis, QUEUES).work(burst=True, max_jobs=1)
    assert deliveries.posts() == 1
    assert waiting.get_status() == "queued"


def test_a_taken_job_stays_recoverable_until_it_starts(deliveries: Deliveries, event: dict) -> None:
    """From one queue RQ moves a job into an intermediate list (LMOVE) that the reaper recovers
    from; from several it pops the job (BLPOP), and a worker killed then lost it."""
    queue_delivery_job(deliveries, event)
    queues = [Queue(name, connection=deliveries.redis, serializer=JSONSerializer) for name in QUEUES]
    job, queue = Queue.dequeue_any(queues, timeout=None, connection=deliveries.redis)  # then the worker dies
    assert job.id in [i.decode() for i in deliveries.redis.lrange(queue.intermediate_queue_key, 0, -1)]


def deliver_through_routes(redis_url: str, tmp_path: Path) -> tuple[Deliveries, dict[str, Any], str]:
    """One event through a routes file's slack and signed-webhook handlers to the sink; the
    deliveries, the event and the sink's URL."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "handlers:\n"
        "  ops: {type: slack, url: '${SINK}/slack/ops'}\n"
        "  audit: {type: webhook, url: '${SINK}/hooks/audit', secret: '${AUDIT_SECRET}'}\n"
        "subscriptions:\n"
        "  - {name: all, handlers: [ops, audit]}\n"
    )
    app = create_sink()
    redis = Redis.from_url(redis_url)
    with running(app) as base_url:
        environ = {"REDIS_URL": redis_url, "ROUTES_FILE": str(routes), "SINK": base_url, "AUDIT_SECRET": "s3cret-value"}
        context = WorkerContext.build(Settings.from_environ(environ), redis=redis)
        with installed(context):
            deliveries = Deliveries(redis, app.state.sink, context.settings)
            event = make_event()
            fan_out(redis, event, ["ops", "audit"])
            deliveries.run()
        context.close()
    return deliveries, event, base_url


def test_the_handlers_of_a_routes_file_deliver_through_the_shared_client(redis_url: str, tmp_path: Path) -> None:
    deliveries, event, _ = deliver_through_routes(redis_url, tmp_path)
    [slack] = deliveries.sink.delivered("/slack/ops")
    assert "blocks" in slack.body and "text" in slack.body
    [audit] = deliveries.sink.delivered("/hooks/audit")
    assert audit.body["event_id"] == event["event_id"]
    assert audit.headers["circleci-events-delivery-id"] == f"{event['event_id']}:audit"
    deliveries.redis.close()


def test_a_delivered_attempt_keeps_what_it_sent_without_the_destinations_credentials(
    redis_url: str, tmp_path: Path
) -> None:
    """The console's "as it was sent": each request's body as the destination took it, and where
    it went without the URL's path (a chat webhook's path is its credential)."""
    deliveries, event, base_url = deliver_through_routes(redis_url, tmp_path)
    record = deliveries.store.record(event["event_id"])
    assert record is not None
    sent = {a["handler"]: a["sent"] for a in record["attempts"] if a["outcome"] == "delivered"}
    for handler, path in (("ops", "/slack/ops"), ("audit", "/hooks/audit")):
        [taken] = deliveries.sink.delivered(path)
        [request] = sent[handler]
        assert json.loads(request["body"]) == taken.body
        assert request["to"] == f"POST {base_url}/…"
    kept = json.dumps(record["attempts"])
    assert "/slack/ops" not in kept and "/hooks/audit" not in kept and "s3cret-value" not in kept
    deliveries.redis.close()


def test_an_attempt_records_what_went_wrong_and_how_long_it_took(redis_url: str, tmp_path: Path) -> None:
    """A destination that refuses connections: the record and the dead letter say so, not just 'retrying'."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens once the socket is closed
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"handlers:\n  ops: {{type: slack, url: 'http://127.0.0.1:{port}/x'}}\n"
        "subscriptions:\n  - {handlers: [ops]}\n"
    )
    redis = Redis.from_url(redis_url)
    environ = {"REDIS_URL": redis_url, "ROUTES_FILE": str(routes), "DELIVERY_RETRY_BUDGET_SECONDS": "1"}
    clock = FakeClock()
    context = WorkerContext.build(Settings.from_environ(environ), redis=redis, clock=clock)
    with installed(context):
        event = make_event(received_at=datetime.fromtimestamp(clock.now() - 10, UTC).isoformat())
        assert fan_out(redis, event, ["ops"]) == {f"{event['event_id']}:ops": "dead_lettered"}
    context.close()
    [attempt] = EventStore(redis).record(event["event_id"])["attempts"]  # type: ignore[index]
    assert attempt["outcome"] == "dead_lettered" and attempt["status"] is None
    assert "connection refused ([Errno 111] Connection refused)" in attempt["error"]
    assert attempt["seconds"] == 0  # measured on the fake clock, which stood still
    letter = DeadLetters(redis, ttl=60).get(f"{event['event_id']}:ops")
    assert letter is not None and letter.body_excerpt == "connection refused ([Errno 111] Connection refused)"
    redis.close()
