"""Web and worker on a Redis that would evict accepted events: refused at start-up, unready later."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import RedisServer
from tests.e2e.conftest import service_env
from tests.e2e.processes import cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def evicting(tmp_path: Path):
    server = RedisServer(tmp_path / "redis", args=("--maxmemory", "20mb", "--maxmemory-policy", "allkeys-lru")).start()
    yield server
    server.stop()


@pytest.mark.parametrize("role", ["web", "worker"])
def test_web_and_worker_refuse_an_evicting_redis_in_one_line(evicting: RedisServer, role: str) -> None:
    env = {**os.environ, **service_env(evicting.url, PORT="1")}
    done = subprocess.run(cli(role), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("circleci-events:")]
    assert len(lines) == 1, done.stderr
    assert "maxmemory-policy allkeys-lru" in lines[0] and "maxmemory-policy noeviction" in lines[0]


def test_the_override_lets_them_run_with_a_warning(evicting: RedisServer, web_factory) -> None:
    web, base = web_factory(evicting.url, REDIS_ALLOW_EVICTION="1")
    assert httpx.get(base + "/readyz").status_code == 200
    web.wait_for_log(lambda line: line.get("event") == "redis_not_durable" and "accepted" in line["problem"])


def test_readyz_turns_unready_when_redis_starts_evicting(redis_url: str, web_factory) -> None:
    _, base = web_factory(redis_url)
    assert httpx.get(base + "/readyz").status_code == 200
    client = redis.Redis.from_url(redis_url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        answer = httpx.get(base + "/readyz")
        assert answer.status_code == 503
        assert answer.json()["error_code"] == "redis_evicts"
    finally:
        client.config_set("maxmemory-policy", "noeviction")
    assert httpx.get(base + "/readyz").status_code == 200
