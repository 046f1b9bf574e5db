"""POST /webhooks/circleci: the answers CircleCI and an operator see, for good and bad input."""

from __future__ import annotations

import asyncio
import json
import time

import fakeredis
import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer
from starlette.testclient import TestClient
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from config.clock import utc_now_text
from config.settings import Settings
from service.app import create_app
from service.signature import sign
from tests.clock import FakeClock
from tests.conftest import FIXTURES, SECRET, down_async, fresh
from tests.service.conftest import signed
from workers import metric_window
from workers.context import WorkerContext, installed

URL = "/webhooks/circleci"
SIGNATURE_FAILURES = "circleci_events_signature_failures_total"
ERROR_KEYS = {"error_code", "message", "details", "request_id"}


def assert_clean_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["error_code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    text = response.text
    assert "Traceback" not in text and SECRET not in text
    return body


def test_a_new_event_is_queued_with_202(client: TestClient, workflow_payload: dict, fake_server) -> None:
    response = client.post(URL, **signed(workflow_payload))
    assert response.status_code == 202
    assert response.json() == {"event_id": workflow_payload["id"], "status": "queued"}
    sync = fakeredis.FakeRedis(server=fake_server)
    queue = Queue("events", connection=sync, serializer=JSONSerializer)
    assert queue.count == 1
    job = queue.jobs[0]
    assert job.func_name == "workers.events.process_event"
    envelope = job.args[0]
    assert envelope["event_id"] == workflow_payload["id"]
    assert envelope["request_id"] == response.headers["x-request-id"]
    assert envelope["payload"] == workflow_payload


def test_a_duplicate_is_answered_200_and_not_queued_again(client, workflow_payload, fake_server) -> None:
    first = client.post(URL, **signed(workflow_payload))
    second = client.post(URL, **signed(workflow_payload))
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json() == {"event_id": workflow_payload["id"], "status": "duplicate"}
    assert Queue("events", connection=fakeredis.FakeRedis(server=fake_server)).count == 1


def test_the_queued_job_runs_on_a_real_rq_worker(client, workflow_payload, fake_server, settings) -> None:
    client.post(URL, **signed(workflow_payload))
    sync = fakeredis.FakeRedis(server=fake_server)
    queue = Queue("events", connection=sync, serializer=JSONSerializer)
    job_id = queue.job_ids[0]
    with installed(WorkerContext.build(settings, redis=sync)):  # no CIRCLE_TOKEN: the webhook's facts only
        SimpleWorker([queue], connection=sync, serializer=JSONSerializer).work(burst=True)
    job = Job.fetch(job_id, connection=sync, serializer=JSONSerializer)
    assert job.get_status() == "finished"
    assert job.return_value() == {"event_id": workflow_payload["id"], "status": "enriched", "complete": False}


def test_ping_is_answered_200_and_not_queued(client, fake_server) -> None:
    body = (FIXTURES / "ping.observed.raw-body.json").read_bytes()
    response = client.post(URL, **signed(body, event_type="ping"))
    assert response.status_code == 200
    assert response.json()["status"] == "ping"
    assert Queue("events", connection=fakeredis.FakeRedis(server=fake_server)).count == 0


def test_an_unknown_event_type_is_acknowledged_and_ignored(client, fake_server) -> None:
    response = client.post(URL, **signed({"id": "e-1", "type": "pipeline-started"}))
    assert response.status_code == 200
    assert response.json() == {"event_id": "e-1", "status": "ignored"}
    assert Queue("events", connection=fakeredis.FakeRedis(server=fake_server)).count == 0


@pytest.mark.parametrize(
    ("mutate", "status", "code"),
    [
        (lambda kw: kw["headers"].pop("circleci-signature"), 401, "signature_invalid"),
        (lambda kw: kw["headers"].update({"circleci-signature": "v1=" + "0" * 64}), 401, "signature_invalid"),
        (lambda kw: kw["headers"].update({"circleci-signature": "garbage"}), 401, "signature_invalid"),
        (lambda kw: kw["headers"].update({"content-type": "text/plain"}), 415, "unsupported_media_type"),
        (lambda kw: kw["headers"].pop("content-type"), 415, "unsupported_media_type"),
    ],
    ids=["no-signature", "wrong-signature", "garbled-signature", "text-plain", "no-content-type"],
)
def test_bad_deliveries_get_a_precise_error(client, workflow_payload, mutate, status, code) -> None:
    kwargs = signed(workflow_payload)
    mutate(kwargs)
    assert_clean_error(client.post(URL, **kwargs), status, code)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[" * 50_000 + b"]" * 50_000, 400, "invalid_json"),
        (b"[]", 422, "payload_invalid"),
        (json.dumps({"type": "workflow-completed", "id": "x"}).encode(), 422, "payload_invalid"),
    ],
    ids=["broken", "deeply-nested", "array", "missing-fields"],
)
def test_signed_but_invalid_bodies_get_400_or_422(client, body, status, code) -> None:
    assert_clean_error(client.post(URL, **signed(body, event_type="workflow-completed")), status, code)


def test_a_422_names_the_field(client, workflow_payload) -> None:
    del workflow_payload["workflow"]["status"]
    body = assert_clean_error(client.post(URL, **signed(workflow_payload)), 422, "payload_invalid")
    assert body["details"]["field"] == "workflow.status"


def test_a_body_over_the_limit_gets_413_by_declared_length(settings, fake_server) -> None:
    small = Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": SECRET, "MAX_BODY_BYTES": "100"})
    app = create_app(small, redis=fakeredis.FakeAsyncRedis(server=fake_server))
    with TestClient(app) as client:
        kwargs = signed(b'{"id": "' + b"x" * 200 + b'"}', event_type="workflow-completed")
        assert_clean_error(client.post(URL, **kwargs), 413, "body_too_large")


def test_a_streamed_body_over_the_limit_gets_413_without_content_length(fake_server) -> None:
    small = Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": SECRET, "MAX_BODY_BYTES": "100"})
    app = create_app(small, redis=fakeredis.FakeAsyncRedis(server=fake_server))

    def chunks():
        for _ in range(10):
            yield b"x" * 50

    with TestClient(app) as client:
        response = client.post(URL, content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in response.request.headers
        assert_clean_error(response, 413, "body_too_large")


def test_a_client_hanging_up_mid_body_is_a_refused_delivery_not_a_server_error(settings, fake_server) -> None:
    app = create_app(settings, redis=fakeredis.FakeAsyncRedis(server=fake_server))
    messages = iter([{"type": "http.request", "body": b'{"id": "x', "more_body": True}, {"type": "http.disconnect"}])
    sent: list[dict] = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": URL, "raw_path": URL.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"500")],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    with capture_logs() as logs:
        asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["error_code"] == "body_incomplete"
    assert [line["event"] for line in logs] == ["webhook_rejected"]
    assert logs[0]["log_level"] == "warning"


def test_rate_limit_answers_429_with_retry_after(fake_server, workflow_payload) -> None:
    tight = Settings.from_environ(
        {"CIRCLECI_WEBHOOK_SECRETS": SECRET, "RATE_LIMIT_BURST": "2", "RATE_LIMIT_PER_SECOND": "0.5"}
    )
    app = create_app(tight, redis=fakeredis.FakeAsyncRedis(server=fake_server))
    with TestClient(app) as client:
        answers = [client.post(URL, **signed(dict(workflow_payload, id=f"e-{i}"))) for i in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert_clean_error(answers[2], 429, "rate_limited")
    assert 1 <= int(answers[2].headers["retry-after"]) <= 2


def test_redis_down_gives_503_with_retry_after(settings, workflow_payload) -> None:
    down = down_async()
    with TestClient(create_app(settings, redis=down)) as client:
        response = client.post(URL, **signed(workflow_payload))
        assert_clean_error(response, 503, "redis_unavailable")
        assert response.headers["retry-after"].isdigit()
        assert_clean_error(client.get("/readyz"), 503, "redis_unavailable")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "not_found"),
        ("GET", URL, 405, "method_not_allowed"),
        ("PUT", "/healthz", 405, "method_not_allowed"),
    ],
)
def test_unknown_paths_and_methods_use_the_error_format(client, method, path, status, code) -> None:
    assert_clean_error(client.request(method, path), status, code)


def test_a_sane_request_id_is_kept_and_a_bad_one_replaced(client) -> None:
    assert client.get("/healthz", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    replaced = client.get("/healthz", headers={"x-request-id": "bad id\twith spaces"}).headers["x-request-id"]
    assert replaced != "bad id\twith spaces" and len(replaced) == 32


def test_log_lines_carry_request_and_event_ids_but_no_secret_or_signature(client, workflow_payload) -> None:
    kwargs = signed(workflow_payload)
    bad = signed(dict(workflow_payload, id="other"), secret="wrong-secret")
    with capture_logs(processors=[merge_contextvars]) as logs:
        ok = client.post(URL, **kwargs)
        refused = client.post(URL, **bad)
    assert refused.status_code == 401
    queued = next(line for line in logs if line["event"] == "event_queued")
    assert queued["request_id"] == ok.headers["x-request-id"]
    assert queued["event_id"] == workflow_payload["id"]
    rejected = next(line for line in logs if line["event"] == "webhook_rejected")
    assert rejected["request_id"] == refused.headers["x-request-id"]
    dumped = json.dumps(logs)
    for secret in (SECRET, kwargs["headers"]["circleci-signature"][3:], bad["headers"]["circleci-signature"][3:]):
        assert secret not in dumped


def test_health_ready_and_metrics(client, workflow_payload) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    client.post(URL, **signed(workflow_payload))
    client.post(URL, **signed(workflow_payload))
    client.post(URL, **signed(workflow_payload, secret="nope"))
    text = client.get("/metrics").text
    assert 'circleci_events_webhook_requests_total{outcome="queued"} 1.0' in text
    assert 'circleci_events_webhook_requests_total{outcome="duplicate"} 1.0' in text
    assert 'circleci_events_webhook_requests_total{outcome="signature_invalid"} 1.0' in text
    assert "circleci_events_signature_failures_total 1.0" in text
    assert 'circleci_events_queue_depth{queue="events"} 1.0' in text
    assert "circleci_events_enqueue_seconds_count 2.0" in text  # the duplicate asked Redis too


def test_a_signature_failure_is_counted_for_the_consoles_alert_rules_as_on_metrics(
    client, workflow_payload, fake_server
) -> None:
    for _ in range(3):
        client.post(URL, **signed(workflow_payload, secret="nope"))
    on_metrics = client.get("/metrics").text
    counted = metric_window.increase(fakeredis.FakeRedis(server=fake_server), SIGNATURE_FAILURES, 60, time.time())
    assert "circleci_events_signature_failures_total 3.0" in on_metrics
    assert counted == {(): 3}


def test_the_app_refuses_to_start_without_a_secret() -> None:
    from config.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="CIRCLECI_WEBHOOK_SECRETS"):
        create_app(Settings.from_environ({}), redis=fakeredis.FakeAsyncRedis())


def test_insecure_mode_accepts_unsigned_and_warns_on_every_request(workflow_payload) -> None:
    insecure = Settings.from_environ({"INSECURE_ALLOW_UNSIGNED_WEBHOOKS": "1"})
    with TestClient(create_app(insecure, redis=fakeredis.FakeAsyncRedis())) as client, capture_logs() as logs:
        for i in range(2):
            body = json.dumps(dict(workflow_payload, id=f"u-{i}")).encode()
            assert client.post(URL, content=body, headers={"content-type": "application/json"}).status_code == 202
    assert [line["event"] for line in logs].count("webhook_signature_unchecked") == 2


def test_signature_is_checked_over_the_exact_bytes(client, workflow_payload) -> None:
    body = json.dumps(workflow_payload).encode()
    headers = {"content-type": "application/json", "circleci-signature": sign(body, SECRET)}
    reformatted = json.dumps(workflow_payload, indent=1).encode()
    assert client.post(URL, content=reformatted, headers=headers).status_code == 401


@pytest.mark.parametrize(
    "secrets, accepted, refused",
    [
        # A '#' once started a shell comment: only 's3' was kept, and 's3' signed a forged body.
        (
            "s3#Xq9vLongRandomSecretValue,new-rotated-secret",
            ["s3#Xq9vLongRandomSecretValue", "new-rotated-secret"],
            ["s3"],
        ),
        (
            r"a\b-0123456789abcdef,'quoted-0123456789',\"dq-0123456789abc\"",
            [r"a\b-0123456789abcdef", "'quoted-0123456789'", r"\"dq-0123456789abc\""],
            ["ab-0123456789abcdef", "quoted-0123456789", "dq-0123456789abc", '"dq-0123456789abc"'],
        ),
        ("key=val ue-0123456789", ["key=val ue-0123456789"], ["key", "key=val"]),
    ],
)
def test_only_the_configured_secrets_sign_whatever_characters_they_hold(
    workflow_payload, secrets: str, accepted: list[str], refused: list[str]
) -> None:
    settings = Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": secrets})
    with TestClient(create_app(settings, redis=fakeredis.FakeAsyncRedis())) as client:
        for i, secret in enumerate(accepted):
            answer = client.post(URL, **signed(dict(workflow_payload, id=f"ok-{i}"), secret=secret))
            assert answer.status_code == 202, secret
        for i, secret in enumerate(refused):
            answer = client.post(URL, **signed(dict(workflow_payload, id=f"forged-{i}"), secret=secret))
            assert answer.status_code == 401, secret


def test_a_capture_older_than_the_dedupe_window_is_answered_expired_and_not_queued(
    client, workflow_payload, fake_server, settings
) -> None:
    old = fresh(workflow_payload, seconds_ago=settings.dedupe_ttl_seconds + 60)
    with capture_logs() as logs:
        response = client.post(URL, **signed(old))
    assert response.status_code == 200
    assert response.json() == {"event_id": old["id"], "status": "expired"}
    assert Queue("events", connection=fakeredis.FakeRedis(server=fake_server), serializer=JSONSerializer).count == 0
    assert [line["event"] for line in logs] == ["event_expired"]
    assert 'circleci_events_webhook_requests_total{outcome="expired"} 1.0' in client.get("/metrics").text
    recent = fresh(workflow_payload, seconds_ago=settings.dedupe_ttl_seconds - 60)
    assert client.post(URL, **signed(recent)).status_code == 202


@pytest.mark.parametrize("field, value", [("id", "evt\r\nX-Injected: 1"), ("workflow.id", "../../x")])
def test_ids_that_could_travel_into_paths_or_headers_get_422_naming_the_field(
    client, workflow_payload, field: str, value: str
) -> None:
    payload = json.loads(json.dumps(workflow_payload))
    *parents, last = field.split(".")
    node = payload
    for key in parents:
        node = node[key]
    node[last] = value
    body = assert_clean_error(client.post(URL, **signed(payload)), 422, "payload_invalid")
    assert body["details"] == {"field": field}


def test_an_event_no_replica_confirmed_is_answered_503_for_circleci_to_retry(redis_url, workflow_payload) -> None:
    from redis.asyncio import Redis as AsyncRedis

    settings = Settings.from_environ(
        {"CIRCLECI_WEBHOOK_SECRETS": SECRET, "REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_TIMEOUT_MS": "20"}
    )
    with TestClient(create_app(settings, redis=AsyncRedis.from_url(redis_url))) as client:
        response = client.post(URL, **signed(workflow_payload))
        body = assert_clean_error(response, 503, "redis_not_replicated")
        assert "1 Redis replica(s)" in body["message"]
        assert response.headers["retry-after"].isdigit()
        # the retry is a duplicate, and still not confirmed by any replica
        assert_clean_error(client.post(URL, **signed(workflow_payload)), 503, "redis_not_replicated")


def asgi_post(app, receive, headers: list[tuple[bytes, bytes]], client: str = "203.0.113.7") -> list[dict]:
    """One POST straight through the ASGI app with our own `receive`; the messages it sent back."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": URL, "raw_path": URL.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": (client, 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    return sent


def test_a_body_that_does_not_arrive_in_time_gets_408(fake_server) -> None:
    slow = Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": SECRET, "WEB_BODY_TIMEOUT_SECONDS": "0.2"})
    app = create_app(slow, redis=fakeredis.FakeAsyncRedis(server=fake_server))
    chunks = iter([{"type": "http.request", "body": b'{"id": "x', "more_body": True}])

    async def receive() -> dict:
        message = next(chunks, None)
        if message is None:
            await asyncio.Event().wait()  # the rest never comes
        return message

    sent = asgi_post(app, receive, [(b"content-type", b"application/json"), (b"content-length", b"500")])
    assert sent[0]["status"] == 408
    body = json.loads(sent[1]["body"])
    assert body["error_code"] == "body_timeout"
    assert "WEB_BODY_TIMEOUT_SECONDS=0.2" in body["message"] and body["details"]["received_bytes"] == 9


def test_a_client_over_its_limit_is_refused_before_its_body_is_read(fake_server) -> None:
    tight = Settings.from_environ(
        {"CIRCLECI_WEBHOOK_SECRETS": SECRET, "RATE_LIMIT_BURST": "3", "RATE_LIMIT_PER_SECOND": "0.01"}
    )
    app = create_app(tight, redis=fakeredis.FakeAsyncRedis(server=fake_server))
    headers = [(b"content-type", b"text/plain")]

    async def unread() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    answers = [asgi_post(app, unread, headers)[0]["status"] for _ in range(3)]
    assert answers == [415, 415, 415]  # no signature, no JSON: each still costs a token

    async def never_read() -> dict:
        raise AssertionError("the body of a limited client was read")

    sent = asgi_post(app, never_read, headers)
    assert sent[0]["status"] == 429
    assert json.loads(sent[1]["body"])["error_code"] == "rate_limited"
    assert int(dict(sent[0]["headers"])[b"retry-after"]) >= 1
    assert asgi_post(app, unread, headers, client="203.0.113.8")[0]["status"] == 415  # another client


def test_a_wrong_signature_costs_the_client_more_tokens_than_a_delivery(fake_server, workflow_payload) -> None:
    env = {"CIRCLECI_WEBHOOK_SECRETS": SECRET, "RATE_LIMIT_BURST": "22", "RATE_LIMIT_PER_SECOND": "0.01"}
    app = create_app(Settings.from_environ(env), redis=fakeredis.FakeAsyncRedis(server=fake_server))
    with TestClient(app) as client:
        forged = [client.post(URL, **signed(workflow_payload, secret="guess")).status_code for _ in range(3)]
        after = client.post(URL, **signed(workflow_payload, secret="guess"))
    assert forged == [401, 401, 429]  # 2 * (1 + SIGNATURE_FAILURE_TOKENS) = 22, then none left
    assert_clean_error(after, 429, "rate_limited")
    assert "wrong signature costs 10 more" in after.json()["message"]


@pytest.mark.parametrize(
    "bad",
    [{"secret": "guess"}, {"headers": {"content-type": "application/json"}},
     {"headers": {"content-type": "text/plain"}}],
    ids=["forged", "unsigned", "not-json"],
)  # fmt: skip
def test_bad_requests_never_spend_the_tokens_of_signed_deliveries(fake_server, workflow_payload, bad: dict) -> None:
    """Behind a proxy every client is one address: 35 bad requests must not 429 real deliveries (issue 23 item 3)."""
    env = {"CIRCLECI_WEBHOOK_SECRETS": SECRET, "RATE_LIMIT_BURST": "10", "RATE_LIMIT_PER_SECOND": "0.01"}
    app = create_app(Settings.from_environ(env), redis=fakeredis.FakeAsyncRedis(server=fake_server))
    good = []
    with TestClient(app) as client:
        for i in range(10):
            for _ in range(35):
                if "secret" in bad:
                    client.post(URL, **signed(workflow_payload, secret=bad["secret"]))
                else:
                    client.post(URL, content=json.dumps(workflow_payload), headers=bad["headers"])
            good.append(client.post(URL, **signed(dict(workflow_payload, id=f"real-{i}"))).status_code)
        refused = client.post(URL, **signed(workflow_payload, secret="guess"))
    assert good == [202] * 10
    assert_clean_error(refused, 429, "rate_limited")


def test_refusals_before_the_signature_is_verified_are_logged_once_per_client_and_code(
    client, workflow_payload
) -> None:
    with capture_logs() as logs:
        for _ in range(5):
            assert client.post(URL, **signed(workflow_payload, secret="guess")).status_code == 401
        for _ in range(3):
            assert client.post(URL, content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
    rejected = [line for line in logs if line["event"] == "webhook_rejected"]
    assert [(line["error_code"], line["client"], line["suppressed"]) for line in rejected] == [
        ("signature_invalid", "testclient", 0),
        ("unsupported_media_type", "testclient", 0),
    ]
    metrics = client.get("/metrics").text
    assert 'circleci_events_webhook_requests_total{outcome="signature_invalid"} 5.0' in metrics
    assert "circleci_events_signature_failures_total 5.0" in metrics
    assert 'circleci_events_webhook_requests_total{outcome="unsupported_media_type"} 3.0' in metrics


def test_refusals_of_signed_requests_are_logged_each_time(client) -> None:
    with capture_logs() as logs:
        for _ in range(3):
            response = client.post(URL, **signed(b"[]", event_type="workflow-completed"))
            assert response.status_code == 422
    assert [line["error_code"] for line in logs if line["event"] == "webhook_rejected"] == ["payload_invalid"] * 3


def test_the_receipt_time_and_the_age_check_read_the_apps_clock(
    settings, workflow_payload, fake_server: fakeredis.FakeServer
) -> None:
    clock = FakeClock()
    app = create_app(settings, redis=fakeredis.FakeAsyncRedis(server=fake_server), clock=clock)
    queue = Queue("events", connection=fakeredis.FakeRedis(server=fake_server), serializer=JSONSerializer)
    with TestClient(app) as client:
        assert client.post(URL, **signed(fresh(dict(workflow_payload, id="now")))).status_code == 202
        [job] = queue.get_jobs()
        assert job.args[0]["received_at"] == utc_now_text(clock.now())  # the retry budget starts here
        clock.advance(settings.dedupe_ttl_seconds + 1)  # a capture made then, replayed now
        replayed = fresh(dict(workflow_payload, id="then"))  # happened_at: the real now, a window ago by the clock
        answer = client.post(URL, **signed(replayed))
    assert answer.json() == {"event_id": "then", "status": "expired"}
