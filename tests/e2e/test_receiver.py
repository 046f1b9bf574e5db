"""The receiver and a worker as real processes (uvicorn, RQ SimpleWorker) on a real redis-server."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import redis
from rq import Queue

from tests.conftest import RedisServer, fresh, load_fixture
from tests.service.conftest import signed

URL = "/webhooks/circleci"


def test_a_signed_event_reaches_a_worker_with_the_same_request_id(redis_url, web_factory, worker_factory) -> None:
    payload = fresh(load_fixture("workflow-completed.failed.github-oauth.derived.json"))
    web, base = web_factory(redis_url)
    worker = worker_factory(redis_url)
    kwargs = signed(payload)
    kwargs["headers"]["x-request-id"] = "trace-e2e-1"
    response = httpx.post(base + URL, **kwargs)
    assert response.status_code == 202, response.text
    assert response.headers["x-request-id"] == "trace-e2e-1"
    line = worker.wait_for_log(lambda line: line.get("event") == "event_enriched")
    assert line["request_id"] == "trace-e2e-1"
    assert line["event_id"] == payload["id"]
    assert line["project"] == payload["project"]["slug"]
    assert line["complete"] is False and "CIRCLE_TOKEN" in line["reason"]
    queued = web.wait_for_log(lambda line: line.get("event") == "event_queued")
    assert queued["request_id"] == "trace-e2e-1"


def test_concurrent_duplicates_through_the_real_server_queue_one_job(redis_url, web_factory) -> None:
    payload = fresh(load_fixture("job-completed.failed.github-oauth.derived.json"))
    _, base = web_factory(redis_url)
    with httpx.Client() as client, ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: client.post(base + URL, **signed(payload)).status_code, range(6)))
    assert sorted(answers) == [200] * 5 + [202]
    assert Queue("events", connection=redis.Redis.from_url(redis_url)).count == 1


def test_redis_stopped_mid_stream_gives_503_and_never_a_false_acceptance(tmp_path: Path, web_factory) -> None:
    server = RedisServer(tmp_path / "redis").start()
    _, base = web_factory(server.url)
    payload = fresh(load_fixture("workflow-completed.github-oauth.docs.json"))
    accepted, refused = [], []
    with httpx.Client(timeout=10) as client:
        for i in range(30):
            if i == 10:
                server.stop()
            if i == 20:
                server.start()
            event = dict(payload, id=f"stream-{i}")
            response = client.post(base + URL, **signed(event))
            assert response.status_code in (202, 503), response.text
            assert "Traceback" not in response.text
            (accepted if response.status_code == 202 else refused).append(event["id"])
            if response.status_code == 503:
                assert response.json()["error_code"] == "redis_unavailable"
                assert response.headers["retry-after"].isdigit()
    assert refused, "stopping Redis must refuse deliveries"
    # Nothing is kept across the restart (no persistence in this server), so the proof is
    # that every acceptance after the restart is queued and the refused ones can be retried.
    queue = Queue("events", connection=redis.Redis.from_url(server.url))
    after_restart = [e for e in accepted if int(e.split("-")[1]) >= 20]
    assert queue.count == len(after_restart)
    with httpx.Client(timeout=10) as client:
        for event_id in refused:
            assert client.post(base + URL, **signed(dict(payload, id=event_id))).status_code == 202
    server.stop()


def test_an_invalid_delivery_over_http_has_no_traceback_in_body_or_log(redis_url, web_factory) -> None:
    web, base = web_factory(redis_url)
    kwargs = signed(b'{"broken', event_type="workflow-completed")
    response = httpx.post(base + URL, **kwargs)
    assert response.status_code == 400
    assert response.json()["error_code"] == "invalid_json"
    web.wait_for_log(lambda line: line.get("event") == "webhook_rejected")
    log = web.output()
    assert "Traceback" not in log
    assert kwargs["headers"]["circleci-signature"][3:] not in log
    assert json.loads(response.text)["request_id"] == response.headers["x-request-id"]


def test_the_rate_limit_keys_on_the_forwarded_address_only_behind_a_trusted_proxy(redis_url, web_factory) -> None:
    """With TRUSTED_PROXIES, each X-Forwarded-For client has its own bucket; without, the proxy's."""
    payload = fresh(load_fixture("workflow-completed.github-oauth.docs.json"))

    def deliver(base: str, event_id: str, client_address: str) -> int:
        kwargs = signed(dict(payload, id=event_id))
        kwargs["headers"]["x-forwarded-for"] = client_address
        return httpx.post(base + URL, **kwargs).status_code

    limits = {"RATE_LIMIT_BURST": "1", "RATE_LIMIT_PER_SECOND": "0.01"}
    _, trusting = web_factory(redis_url, TRUSTED_PROXIES="127.0.0.1", **limits)
    assert [deliver(trusting, f"t-{i}", f"203.0.113.{i}") for i in range(3)] == [202, 202, 202]
    assert deliver(trusting, "t-9", "203.0.113.1") == 429

    _, direct = web_factory(redis_url, **limits)
    assert [deliver(direct, f"d-{i}", f"198.51.100.{i}") for i in range(2)] == [202, 429]
