"""REDIS_URL's forms, and the TLS and Sentinel settings that must agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.errors import ConfigurationError
from config.redis_target import RedisTarget, parse_redis_url
from config.settings import Settings


@pytest.mark.parametrize(
    "url, target",
    [
        ("redis://127.0.0.1:6379/0", RedisTarget("redis://127.0.0.1:6379/0", tls=False)),
        ("rediss://:pw@redis.example.com:6380/1", RedisTarget("rediss://:pw@redis.example.com:6380/1", tls=True)),
        ("unix:///run/redis.sock?db=2", RedisTarget("unix:///run/redis.sock?db=2", tls=False)),
        (
            "redis+sentinel://s-1:26380,s-2/mymaster",
            RedisTarget("redis+sentinel://s-1:26380,s-2/mymaster", False, (("s-1", 26380), ("s-2", 26379)), "mymaster"),
        ),
        (
            "rediss+sentinel://app:p%40ss@10.0.0.1,[::1]:5000/cache-master/3",
            RedisTarget(
                "rediss+sentinel://app:p%40ss@10.0.0.1,[::1]:5000/cache-master/3",
                tls=True,
                sentinels=(("10.0.0.1", 26379), ("::1", 5000)),
                master="cache-master",
                db=3,
                username="app",
                password="p@ss",
            ),
        ),
    ],
)
def test_redis_url_forms(url: str, target: RedisTarget) -> None:
    assert parse_redis_url(url) == target


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://:s3cr3t-pw@redis:6379", "REDIS_URL has 'http://': use redis://"),
        ("redis://:s3cr3t-pw@:6379/0", "REDIS_URL names no host"),
        # urllib raised on these past the check: a 46-line traceback at start (issue 23 item 7)
        ("redis://:s3cr3t-pw@h:notaport/0", "REDIS_URL: the port after the host must be a number"),
        ("redis://:s3cr3t-pw@h:70000/0", "REDIS_URL: the port after the host must be a number"),
        # redis-py read '/abc' as database 0 without a word, and raised on a bad query value at start
        ("redis://:s3cr3t-pw@h:6379/abc", "REDIS_URL: the database after the host must be a number, got 'abc'"),
        ("redis://:s3cr3t-pw@h/0?socket_timeout=soon", "REDIS_URL: Invalid value for 'socket_timeout' in connection"),
        ("unix://:s3cr3t-pw@/run/redis.sock?db=zero", "REDIS_URL: Invalid value for 'db' in connection URL"),
        ("rediss://:s3cr3t-pw@h/0?ssl_cert_reqs=none", "REDIS_URL carries ssl_cert_reqs: remove it and set REDIS_TLS_"),
        ("redis+sentinel://:s3cr3t-pw@s-1:26379", "REDIS_URL: a redis+sentinel:// URL names the master"),
        ("redis+sentinel://s-1/m/0/extra", "REDIS_URL: a redis+sentinel:// URL names the master"),
        ("redis+sentinel://s-1/m/zero", "REDIS_URL: the database after the master name must be a number"),
        ("redis+sentinel://user:s3cr3t-pw/m", "REDIS_URL: sentinel 1 of 1 must be host or host:port"),
        ("redis+sentinel://s-1,,s-2/m", "REDIS_URL: sentinel 2 of 3 must be host or host:port"),
    ],
)
def test_a_wrong_redis_url_is_one_line_that_never_shows_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_environ({"REDIS_URL": url})
    assert info.value.message.startswith(message)
    assert "s3cr3t-pw" not in info.value.message


@pytest.fixture
def pem(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return str(path)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"REDIS_URL": "redis://h:6379", "REDIS_TLS_CA_FILE": "PEM"},
         "REDIS_TLS_CA_FILE set, but REDIS_URL does not use TLS: use rediss://"),
        ({"REDIS_URL": "redis+sentinel://s/m", "REDIS_TLS_VERIFY": "none"},
         "REDIS_TLS_VERIFY set, but REDIS_URL does not use TLS"),
        ({"REDIS_TLS_CA_FILE": "PEM"}, "REDIS_TLS_CA_FILE set, but REDIS_URL does not use TLS"),
        ({"REDIS_URL": "rediss://h", "REDIS_TLS_CERT_FILE": "PEM"},
         "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together"),
        ({"REDIS_URL": "rediss://h", "REDIS_TLS_CA_FILE": "/nowhere/ca.pem"},
         "REDIS_TLS_CA_FILE: no such file '/nowhere/ca.pem'"),
        ({"REDIS_URL": "rediss://h", "REDIS_TLS_VERIFY": "sometimes"},
         "REDIS_TLS_VERIFY must be one of full, ca, none, got 'sometimes'"),
        ({"REDIS_URL": "redis://h", "REDIS_SENTINEL_PASSWORD": "s3cr3t-pw"},
         "REDIS_SENTINEL_PASSWORD is set, but REDIS_URL names no sentinels"),
    ],
)  # fmt: skip
def test_tls_and_sentinel_settings_must_fit_the_url(env: dict[str, str], message: str, pem: str) -> None:
    env = {name: pem if value == "PEM" else value for name, value in env.items()}
    with pytest.raises(ConfigurationError) as info:
        Settings.from_environ(env)
    assert info.value.message.startswith(message)
    assert "s3cr3t-pw" not in info.value.message


def test_tls_settings_are_read_with_a_tls_url(pem: str) -> None:
    settings = Settings.from_environ(
        {"REDIS_URL": "rediss+sentinel://s/m", "REDIS_TLS_CA_FILE": pem, "REDIS_TLS_CERT_FILE": pem,
         "REDIS_TLS_KEY_FILE": pem, "REDIS_TLS_VERIFY": "CA"}
    )  # fmt: skip
    assert (settings.redis_tls_ca_file, settings.redis_tls_verify) == (pem, "ca")
    assert settings.redis_target is not None and settings.redis_target.tls


def test_secret_values_hold_the_masters_and_the_sentinels_passwords() -> None:
    settings = Settings.from_environ(
        {"REDIS_URL": "redis+sentinel://:m%2Fpw@s-1,s-2/mymaster", "REDIS_SENTINEL_PASSWORD": "sentinel-pw"}
    )
    assert sorted(settings.secret_values()) == ["m%2Fpw", "m/pw", "sentinel-pw"]
