"""A Redis that evicts is refused, one without AOF or CONFIG is a warning: on real redis-servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from structlog.testing import capture_logs

from config.errors import ConfigurationError
from tests.conftest import RedisServer
from workers.durability import Durability, ensure_durable, read_durability

pytestmark = pytest.mark.integration


@pytest.fixture
def server_with(tmp_path: Path) -> Iterator:
    started: list[RedisServer] = []

    def start(*args: str, appendonly: bool = False) -> redis.Redis:
        started.append(RedisServer(tmp_path / f"redis-{len(started)}", appendonly=appendonly, args=args).start())
        return redis.Redis(port=started[-1].port)

    yield start
    for server in started:
        server.stop()


def test_an_evicting_redis_stops_the_process_with_what_to_set(server_with) -> None:
    client = server_with("--maxmemory", "10mb", "--maxmemory-policy", "allkeys-lru", appendonly=True)
    with pytest.raises(ConfigurationError) as info:
        ensure_durable(client, allow_eviction=False, log=None)
    message = info.value.message
    assert "maxmemory-policy allkeys-lru" in message
    assert "set maxmemory-policy noeviction" in message and "REDIS_ALLOW_EVICTION=1" in message


def test_the_override_accepts_eviction_with_a_warning(server_with) -> None:
    import structlog

    client = server_with("--maxmemory-policy", "volatile-lru", appendonly=True)
    with capture_logs() as logs:
        ensure_durable(client, allow_eviction=True, log=structlog.get_logger())
    assert [line["event"] for line in logs] == ["redis_not_durable"]
    assert "accepted: REDIS_ALLOW_EVICTION is set" in logs[0]["problem"]


def test_no_append_only_file_is_a_warning(server_with) -> None:
    client = server_with(appendonly=False)
    assert read_durability(client) == Durability(eviction_policy="noeviction", appendonly=False)
    assert read_durability(client).check(allow_eviction=False) == [
        "Redis keeps no append-only file (appendonly no): a restart loses every queued event; "
        "set appendonly yes (appendfsync everysec) in production"
    ]


def test_a_durable_redis_says_nothing(server_with) -> None:
    client = server_with(appendonly=True)
    assert read_durability(client).check(allow_eviction=False) == []


def test_a_managed_redis_that_refuses_config_get_is_a_warning_and_goes_on(server_with) -> None:
    client = server_with("--rename-command", "CONFIG", "", appendonly=True)
    durability = read_durability(client)
    assert durability == Durability(None, None)
    [warning] = durability.check(allow_eviction=False)
    assert "refused CONFIG GET" in warning
