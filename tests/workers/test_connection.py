"""The one Redis factory against real servers: rediss:// with a CA made by openssl, and Sentinel.

Every server here is a redis-server of the test's own (TLS with `--tls-port`, Sentinel with
`--sentinel`) on 127.0.0.1 and a free port; the synchronous client (workers, RQ) and the asyncio
client (the web) are both checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from redis.sentinel import MasterNotFoundError
from rq import Queue, SimpleWorker
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from config.settings import Settings
from tests.certificates import Authority, ServerTLS
from tests.conftest import RedisServer
from tests.sentinel import MASTER, SentinelServer
from tests.waiting import wait_until
from workers.connection import connect, connect_async, describe_failure, tls_warning

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """A CA that vouches for none of our servers."""
    return Authority.create(tmp_path_factory.mktemp("other-ca"), "other-ca")


@pytest.fixture(scope="module")
def tls_server(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """TLS only, its certificate naming 127.0.0.1 and localhost."""
    tls = ServerTLS(authority, authority.issue("server"))
    server = RedisServer(tmp_path_factory.mktemp("redis-tls"), tls=tls).start()
    yield server
    server.stop()


def settings_for(url: str, **env: str) -> Settings:
    return Settings.from_environ({"REDIS_URL": url, **env})


def round_trip(settings: Settings) -> None:
    """A write with the synchronous client, read back with the asyncio one."""
    client = connect(settings)
    try:
        client.set("round-trip", "sync")
    finally:
        client.close()

    async def read() -> bytes | None:
        client = connect_async(settings)
        try:
            value: bytes | None = await client.get("round-trip")
            return value
        finally:
            await client.aclose()

    assert asyncio.run(read()) == b"sync"


def test_rediss_verifies_the_server_against_the_ca_file(tls_server: RedisServer, authority: Authority) -> None:
    settings = settings_for(tls_server.url, REDIS_TLS_CA_FILE=str(authority.ca))
    round_trip(settings)
    assert tls_warning(settings) is None


@pytest.mark.parametrize("ca", ["system", "stranger"])
def test_rediss_refuses_a_server_its_ca_does_not_vouch_for(
    tls_server: RedisServer, stranger: Authority, ca: str
) -> None:
    env = {"REDIS_TLS_CA_FILE": str(stranger.ca)} if ca == "stranger" else {}
    client = connect(settings_for(tls_server.url, **env))
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        client.ping()


def test_full_verification_checks_the_host_name_and_ca_mode_does_not(authority: Authority, tmp_path: Path) -> None:
    tls = ServerTLS(authority, authority.issue("elsewhere", names=("DNS:redis.internal",)))
    server = RedisServer(tmp_path / "redis", tls=tls).start()
    try:
        full = settings_for(server.url, REDIS_TLS_CA_FILE=str(authority.ca))
        with pytest.raises(redis.ConnectionError, match=r"IP address mismatch|hostname"):
            connect(full).ping()
        chain_only = settings_for(server.url, REDIS_TLS_CA_FILE=str(authority.ca), REDIS_TLS_VERIFY="ca")
        round_trip(chain_only)
        assert "not against the host name" in (tls_warning(chain_only) or "")
    finally:
        server.stop()


def test_verify_none_accepts_any_certificate_and_says_so(tls_server: RedisServer) -> None:
    """Heroku Redis: a self-signed certificate and no CA to check it against."""
    settings = settings_for(tls_server.url, REDIS_TLS_VERIFY="none")
    round_trip(settings)
    warning = tls_warning(settings) or ""
    assert warning.startswith("REDIS_TLS_VERIFY=none: Redis's certificate is not checked")


def test_a_client_certificate_is_presented_when_the_server_asks_for_one(authority: Authority, tmp_path: Path) -> None:
    client_cert = authority.issue("client", names=())
    tls = ServerTLS(authority, authority.issue("server-mtls"), auth_clients="yes", client=client_cert)
    server = RedisServer(tmp_path / "redis", tls=tls).start()
    try:
        anonymous = connect(settings_for(server.url, REDIS_TLS_CA_FILE=str(authority.ca)))
        with pytest.raises(redis.ConnectionError):
            anonymous.ping()
        round_trip(
            settings_for(
                server.url,
                REDIS_TLS_CA_FILE=str(authority.ca),
                REDIS_TLS_CERT_FILE=str(client_cert.cert),
                REDIS_TLS_KEY_FILE=str(client_cert.key),
            )
        )
    finally:
        server.stop()


# -- Sentinel ----------------------------------------------------------------------------------


def test_a_sentinel_url_reaches_the_master_it_names(tmp_path: Path) -> None:
    master = RedisServer(tmp_path / "master").start()
    sentinel = SentinelServer(tmp_path / "sentinel", master).start()
    try:
        round_trip(settings_for(f"redis+sentinel://127.0.0.1:{sentinel.port}/{MASTER}/0"))
        assert master.client().get("round-trip") == b"sync"
    finally:
        sentinel.stop()
        master.stop()


def test_the_masters_password_and_the_sentinels_own_are_each_sent_where_they_belong(tmp_path: Path) -> None:
    master = RedisServer(tmp_path / "master", password="master-secret").start()
    sentinel = SentinelServer(
        tmp_path / "sentinel", master, password="sentinel-secret", master_password="master-secret"
    ).start()
    url = f"redis+sentinel://:master-secret@127.0.0.1:{sentinel.port}/{MASTER}/3"
    try:
        with pytest.raises(MasterNotFoundError) as refused:
            connect(settings_for(url)).ping()  # the sentinel asks for its own password
        assert describe_failure(refused.value) == f"no sentinel named a master '{MASTER}': AuthenticationError"
        round_trip(settings_for(url, REDIS_SENTINEL_PASSWORD="sentinel-secret"))
        assert redis.Redis(port=master.port, password="master-secret", db=3).get("round-trip") == b"sync"
    finally:
        sentinel.stop()
        master.stop()


def test_rediss_sentinel_speaks_tls_to_the_sentinel_and_to_the_master(authority: Authority, tmp_path: Path) -> None:
    tls = ServerTLS(authority, authority.issue("sentinel-tls"))
    master = RedisServer(tmp_path / "master", tls=tls).start()
    sentinel = SentinelServer(tmp_path / "sentinel", master, tls=tls).start()
    try:
        url = f"rediss+sentinel://127.0.0.1:{sentinel.port}/{MASTER}/0"
        round_trip(settings_for(url, REDIS_TLS_CA_FILE=str(authority.ca)))
        assert master.client().get("round-trip") == b"sync"
    finally:
        sentinel.stop()
        master.stop()


def test_rq_schedules_and_runs_jobs_on_a_client_the_sentinel_gave(tmp_path: Path) -> None:
    """RQ's scheduler rebuilds its own pool from the client's (rq.connections.parse_connection): it
    keeps Sentinel's connection class, so scheduled retries reach the master too."""
    master = RedisServer(tmp_path / "master").start()
    sentinel = SentinelServer(tmp_path / "sentinel", master).start()
    client = connect(settings_for(f"redis+sentinel://127.0.0.1:{sentinel.port}/{MASTER}/0"))
    try:
        queue = Queue("events", connection=client, serializer=JSONSerializer)
        job = queue.enqueue_in(timedelta(0), "builtins.len", [1, 2, 3])
        scheduler = RQScheduler([queue], connection=client, serializer=JSONSerializer)
        assert scheduler.acquire_locks() == {"events"}
        scheduler.enqueue_scheduled_jobs()
        assert master.client().llen("rq:queue:events") == 1
        SimpleWorker([queue], connection=client, serializer=JSONSerializer).work(burst=True)
        assert job.get_status() == "finished" and job.return_value() == 3
    finally:
        client.close()
        sentinel.stop()
        master.stop()


def test_after_the_master_dies_and_a_replica_is_promoted_the_same_client_writes_to_it(tmp_path: Path) -> None:
    master = RedisServer(tmp_path / "master").start()
    replica = RedisServer(tmp_path / "replica", args=("--replicaof", "127.0.0.1", str(master.port))).start()
    sentinel = SentinelServer(tmp_path / "sentinel", master).start()
    settings = settings_for(f"redis+sentinel://127.0.0.1:{sentinel.port}/{MASTER}/0")
    client = connect(settings)
    try:
        client.set("before", "1")
        wait_until(lambda: replica.client().get("before") == b"1", "the replica to catch up")
        wait_until(lambda: sentinel.client().sentinel_slaves(MASTER) != [], "the sentinel to see the replica")
        master.stop()
        wait_until(lambda: sentinel.master_port() == replica.port, "the sentinel to promote the replica")
        client.set("after", "2")  # its connection to the dead master fails; the sentinel names the new one
        round_trip(settings)
        assert replica.client().mget("before", "after", "round-trip") == [b"1", b"2", b"sync"]
    finally:
        client.close()
        sentinel.stop()
        replica.stop()
        master.stop()
