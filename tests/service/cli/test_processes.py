"""`web` and `run` as an operator starts them: a busy port is one line and exit 1, before anything starts."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.reliability.conftest import descendants
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


# Runs the command in a session of its own whose controlling terminal is the pty on its standard
# input, as a shell in a terminal window runs it.
IN_TERMINAL = (
    "import fcntl, os, sys, termios; os.setsid(); fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def test_run_stops_when_its_terminal_hangs_up(redis_url: str) -> None:
    """`kill -HUP` makes `run` reload its workers' routes; the SIGHUP of a closed terminal still stops it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "REDIS_URL", "ROUTES_FILE"))}
    env |= {"PORT": str(free_port()), "HOST": "127.0.0.1", "CIRCLECI_WEBHOOK_SECRETS": "a-hangup-test-secret",
            "REDIS_URL": redis_url, "LOG_FORMAT": "json", "WORKERS": "1"}  # fmt: skip
    terminal, side = os.openpty()
    command = [sys.executable, "-c", IN_TERMINAL, sys.executable, "-m", "service.cli", "run"]
    process = subprocess.Popen(command, env=env, stdin=side, stdout=side, stderr=side)
    os.close(side)
    output = b""
    try:
        while b'"worker_started"' not in output:  # what the terminal shows
            ready, _, _ = select.select([terminal], [], [], 30)
            assert ready and process.poll() is None, output.decode(errors="replace")
            output += os.read(terminal, 65536)
        children = descendants(process.pid)
        assert len(children) >= 2  # the web and the worker
        os.close(terminal)  # the window is closed
        assert process.wait(timeout=30) == 0, "stopped as asked, not because a worker failed"
        assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "every child stopped"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
