"""Session-wide fixtures: a real redis-server on a free port, settings, signing helpers."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

from config.settings import Settings
from service.simulators.slack import create_slack_simulator
from tests.certificates import ServerTLS
from tests.server import running
from tests.waiting import wait_until

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
SECRET = "test-webhook-secret"
DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1: a Redis that is down
# how every time an operator sees is written (workers.timestamps.iso_time)
ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def down_async() -> AsyncRedis:
    """An asyncio client of a Redis that is down, giving up at once (no retries to wait out)."""
    return AsyncRedis.from_url(DOWN, retry=AsyncRetry(NoBackoff(), 0))


# A folder of its own makes a layer; elsewhere, using the real Redis makes a test `integration`.
FOLDER_LAYERS = ("e2e", "reliability", "browser")
LAYERS = ("unit", "integration", *FOLDER_LAYERS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test gets exactly one layer: its folder's, the one it (or its module) declares, or
    `integration` when it uses the real Redis, else `unit`."""
    layers = {item.nodeid: _layer(item) for item in items}
    for item in items:
        for node in item.listchain():  # a module's `pytestmark` sits on the module node
            node.own_markers[:] = [m for m in node.own_markers if m.name not in LAYERS]
        item.add_marker(layers[item.nodeid])


def _layer(item: pytest.Item) -> str:
    folder = Path(str(item.path)).relative_to(TESTS).parts[0]
    declared = {m.name for m in item.iter_markers() if m.name in LAYERS}
    if folder in FOLDER_LAYERS:
        return folder
    if "e2e" in declared:
        return "e2e"
    if declared or {"redis_server", "redis_url"} & set(getattr(item, "fixturenames", ())):
        return "integration"
    return "unit"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_server(answers: Callable[[], object], process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    """Until `answers()` is true without a connection error; a failed test if `process` exits or the wait times out."""

    def started() -> bool:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}; see {log}")
        try:
            return bool(answers())
        except redis.ConnectionError:
            return False

    try:
        wait_until(started, f"{what} answering")
    except AssertionError as exc:
        pytest.fail(f"{exc}; see {log}")


class RedisServer:
    """A redis-server process of our own, on 127.0.0.1 and a free port."""

    def __init__(
        self,
        directory: Path,
        *,
        appendonly: bool = False,
        args: tuple[str, ...] = (),
        tls: ServerTLS | None = None,
        password: str | None = None,
    ) -> None:
        self.port = free_port()
        self.directory = directory
        self.appendonly = appendonly
        self.args = args  # more redis-server options, e.g. ("--replicaof", "127.0.0.1", "6379")
        self.tls = tls  # TLS only (no plain port): `port` is the TLS port
        self.password = password  # requirepass, and masterauth as a replica
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client of this server for the test itself (over TLS, verified, when the server has it)."""
        options = self.tls.client_options() if self.tls is not None else {}
        return redis.Redis(port=self.port, password=self.password, **options)  # type: ignore[arg-type]

    def listen_args(self) -> list[str]:
        auth = ["--requirepass", self.password, "--masterauth", self.password] if self.password else []
        if self.tls is None:
            return ["--port", str(self.port), *auth]
        return ["--port", "0", "--tls-port", str(self.port), "--tls-replication", "yes", *self.tls.server_args(), *auth]

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: apt-get install redis-server (.ci/run does it)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", *self.listen_args(), "--save", "",
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
             "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log"), *self.args],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = self.client()
        wait_for_server(client.ping, self.process, f"redis-server on port {self.port}", self.directory / "redis.log")
        client.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` records itself under XDG_RUNTIME_DIR for commands in other shells to find
    (service/cli/instance.py): each test gets its own, inherited by every process it starts, so
    a `run` of one test is never the instance a command of another test finds."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session's real Redis, emptied before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture(scope="module")
def slack_served() -> Iterator[tuple[str, Any]]:
    """The Slack simulator served on a real port for a module: its base URL and its Workspace."""
    app = create_slack_simulator()
    with running(app) as base:
        yield base, app.state.workspace


@pytest.fixture
def settings() -> Settings:
    return Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": SECRET, "LOG_LEVEL": "DEBUG"})


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def fresh(payload: dict, *, seconds_ago: float = 0.0) -> dict:
    """`payload` as CircleCI would send it now: `happened_at` is the current time.

    The receiver answers `expired` to a delivery older than DEDUPE_TTL_SECONDS (a replayed
    capture), and the samples in fixtures/ date from 2021 to 2024.
    """
    moment = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return {**payload, "happened_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
