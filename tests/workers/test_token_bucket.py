"""The shared token bucket: one string per bucket, three commands a take, Redis's clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_py
from redis import Redis

from tests.conftest import RedisServer
from workers.token_bucket import RATE_LIMIT_PREFIX, TOKEN_BUCKET_LUA, tokens_left

TAKE = (
    TOKEN_BUCKET_LUA
    + """
local granted, wait = take_tokens(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
return {granted, tostring(wait)}
"""
)
KEY = RATE_LIMIT_PREFIX + "test"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Redis]:
    """A redis-server of the test's own: its command counts are this test's alone."""
    server = RedisServer(tmp_path / "own-redis").start()
    client = server.client()
    yield client
    client.close()
    server.stop()


def take(client: Redis, rate: float, burst: int, wanted: int = 1) -> tuple[int, float]:
    granted, wait = client.eval(TAKE, 1, KEY, rate, burst, wanted)
    return int(granted), float(wait)


def test_a_missing_bucket_is_full_and_a_take_leaves_the_rest(redis_url: str) -> None:
    client = redis_py.Redis.from_url(redis_url)
    assert tokens_left(client, KEY) is None
    assert take(client, 0.001, 10, 4) == (4, 0.0)
    assert tokens_left(client, KEY) == pytest.approx(6, abs=0.01)


def test_an_empty_bucket_says_how_long_until_its_next_token(redis_url: str) -> None:
    client = redis_py.Redis.from_url(redis_url)
    assert take(client, 0.5, 2, 2)[0] == 2
    granted, wait = take(client, 0.5, 2)
    assert granted == 0
    assert 1.9 < wait <= 2.0  # one token at 0.5/s


def test_the_bucket_expires_once_it_would_be_full_again(redis_url: str) -> None:
    client = redis_py.Redis.from_url(redis_url)
    take(client, 10, 20)
    assert 2000 < client.pttl(KEY) <= 3000  # 20 / 10 s, plus a second


def test_a_state_that_does_not_parse_is_a_full_bucket(redis_url: str) -> None:
    client = redis_py.Redis.from_url(redis_url)
    client.set(KEY, "garbage")
    assert take(client, 0.001, 3) == (1, 0.0)
    assert tokens_left(client, KEY) == pytest.approx(2, abs=0.01)


def test_a_take_is_three_commands_besides_the_script(own_redis: Redis) -> None:
    """TIME, GET, SET with PX: a hash cost four (HMGET, HSET, EXPIRE), on every webhook delivery."""
    take(own_redis, 10, 20)
    before = {name: int(s["calls"]) for name, s in own_redis.info("commandstats").items()}
    take(own_redis, 10, 20)
    after = {name: int(s["calls"]) for name, s in own_redis.info("commandstats").items()}
    ran = {name.removeprefix("cmdstat_"): after[name] - before.get(name, 0) for name in after}
    ran = {name: n for name, n in ran.items() if n and name != "info"}
    assert ran == {"eval": 1, "time": 1, "get": 1, "set": 1}
