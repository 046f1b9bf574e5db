"""Web and worker processes on a production Redis: over TLS (rediss://) and through Sentinel.

One signed delivery goes through the real web process (redis.asyncio) and is enriched by a real
worker process (RQ on the synchronous client), each reaching Redis only the way REDIS_URL says.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.certificates import Authority, ServerTLS
from tests.conftest import RedisServer, fresh, load_fixture
from tests.e2e.conftest import service_env
from tests.e2e.processes import Service, cli
from tests.sentinel import MASTER, SentinelServer
from tests.service.conftest import signed

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_server(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(
        tmp_path_factory.mktemp("redis-tls"), tls=ServerTLS(authority, authority.issue("server"))
    ).start()
    yield server
    server.stop()


def deliver(base: str, worker: Service) -> dict:
    """One signed workflow-completed through the web, until the worker has enriched it; its log line."""
    payload = fresh(load_fixture("workflow-completed.failed.github-oauth.derived.json"), seconds_ago=0)
    payload["id"] = str(uuid.uuid4())  # the TLS server serves the whole module
    assert httpx.get(base + "/readyz").status_code == 200
    response = httpx.post(base + "/webhooks/circleci", **signed(payload))
    assert response.status_code == 202, response.text
    return worker.wait_for_log(lambda line: line.get("event") == "event_enriched" and line["event_id"] == payload["id"])


def warnings_of(service: Service) -> list[dict]:
    return [line for line in service.log_lines() if line.get("event") == "redis_tls_unverified"]


def test_an_event_travels_over_rediss_verified_against_the_ca(
    tls_server: RedisServer, authority: Authority, web_factory, worker_factory
) -> None:
    env = {"REDIS_TLS_CA_FILE": str(authority.ca)}
    web, base = web_factory(tls_server.url, **env)
    worker = worker_factory(tls_server.url, **env)
    deliver(base, worker)
    assert warnings_of(web) == warnings_of(worker) == []


def test_verify_none_works_and_every_process_says_at_start_that_it_is_unverified(
    tls_server: RedisServer, web_factory, worker_factory
) -> None:
    web, base = web_factory(tls_server.url, REDIS_TLS_VERIFY="none")
    worker = worker_factory(tls_server.url, REDIS_TLS_VERIFY="none")
    deliver(base, worker)
    for service in (web, worker):
        [line] = warnings_of(service)
        assert line["level"] == "warning"
        assert "certificate is not checked" in line["problem"]


def test_a_process_refuses_a_redis_whose_certificate_it_cannot_verify(tls_server: RedisServer, tmp_path: Path) -> None:
    worker = Service(cli("worker"), env=service_env(tls_server.url), log_path=tmp_path / "worker.log").start()
    assert worker.process is not None
    assert worker.process.wait(timeout=60) == 1
    assert "certificate verify failed" in worker.output()
    assert "Traceback" not in worker.output()


@pytest.fixture
def sentinel_url(tmp_path: Path) -> Iterator[tuple[str, RedisServer]]:
    """A password-protected master behind a sentinel; stopped after the processes that use them."""
    master = RedisServer(tmp_path / "master", password="master-secret").start()
    sentinel = SentinelServer(tmp_path / "sentinel", master, master_password="master-secret").start()
    yield f"redis+sentinel://:master-secret@127.0.0.1:{sentinel.port}/{MASTER}/0", master
    sentinel.stop()
    master.stop()


def test_an_event_travels_through_sentinel_to_the_master(sentinel_url, web_factory, worker_factory) -> None:
    url, master = sentinel_url
    _, base = web_factory(url)
    worker = worker_factory(url)
    deliver(base, worker)
    assert master.client().dbsize() > 0  # the queue, the dedupe key and the event: on the master
