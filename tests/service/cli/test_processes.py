"""`web`, `worker` and `run` as an operator starts them: each mistake is one line and a non-zero
exit, before anything starts (`run` starts no child, so prints no `receiving on` line)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.cli.conftest import assert_one_clear_line, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


@pytest.mark.parametrize("command", ["web", "run"])
def test_a_busy_port_is_one_line_saying_what_to_do(busy_port: int, redis_url: str, command: str) -> None:
    env = {"PORT": str(busy_port), "HOST": "127.0.0.1", "CIRCLECI_WEBHOOK_SECRETS": "s", "REDIS_URL": redis_url}
    result = run_cli(command, env=env, timeout=30)
    assert_one_clear_line(result, 1)
    assert f"cannot listen on 127.0.0.1:{busy_port}: the port is in use" in result.err
    assert "set PORT to a free port" in result.err


def test_version_prints_the_installed_version() -> None:
    result = run_cli("--version", env={})
    assert result.code == 0 and re.fullmatch(r"circleci-events \d+\.\d+\.\d+\S*\n", result.out), result.out


MISTAKES = [
    ({"PORT": "70000"}, 2, "configuration error: PORT must be between 1 and 65535, got 70000"),
    ({"PORT": "http"}, 2, "configuration error: PORT must be a whole number, got 'http'"),
    ({"ROUTES_FILE": "/nonexistent/routes.yaml"}, 2, "routes file /nonexistent/routes.yaml: cannot be read"),
    ({"ROUTES_FILE": "BAD"}, 2, "line 2: handler 'ops', key 'type': unknown type 'slak'"),
    ({"REDIS_URL": "redis://127.0.0.1:1/0"}, 1, "cannot reach Redis (Error 111 connecting to 127.0.0.1:1"),
    ({"CIRCLECI_WEBHOOK_SECRETS": ""}, 2, "CIRCLECI_WEBHOOK_SECRETS"),
]


IDS = ["port-range", "port-text", "no-routes-file", "bad-routes", "redis-down", "no-secret"]


@pytest.mark.parametrize("command", ["web", "worker", "run"])
@pytest.mark.parametrize(("change", "code", "says"), MISTAKES, ids=IDS)
def test_a_mistake_at_start_is_one_line_and_nothing_starts(
    tmp_path: Path, redis_url: str, command: str, change: dict[str, str], code: int, says: str
) -> None:
    if command == "web" and "ROUTES_FILE" in change:
        pytest.skip("the web does not read the routes file")
    if command == "worker" and ("PORT" in change or "CIRCLECI_WEBHOOK_SECRETS" in change):
        pytest.skip("the worker does not listen or verify webhooks")
    bad = tmp_path / "routes.yaml"
    bad.write_text("handlers:\n  ops: {type: slak}\n")
    env = {"HOST": "127.0.0.1", "PORT": "0", "CIRCLECI_WEBHOOK_SECRETS": "s", "REDIS_URL": redis_url}
    env |= {k: str(bad) if v == "BAD" else v for k, v in change.items()}
    if env["PORT"] == "0":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            env["PORT"] = str(s.getsockname()[1])
    result = run_cli(command, env=env, timeout=30)
    assert_one_clear_line(result, code)
    assert says in result.err
