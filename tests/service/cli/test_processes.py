"""`web` and `run` as an operator starts them: a busy port is one line and exit 1, before anything starts."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

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
