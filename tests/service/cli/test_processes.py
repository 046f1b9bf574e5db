"""`web`, `worker` and `run` as an operator starts them: each mistake is one line and a non-zero
exit, before anything starts (`run` starts no child, so prints no `started web` line)."""

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
    env = {
        "PORT": str(busy_port),
        "HOST": "127.0.0.1",
        "CIRCLECI_WEBHOOK_SECRETS": "a-webhook-secret-of-length",
        "REDIS_URL": redis_url,
    }
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
    ({"REDIS_URL": "redis://127.0.0.1:6379/zero"}, 2, "REDIS_URL: the database after the host must be a number"),
    ({"REDIS_URL": "redis://127.0.0.1:6379/0?socket_timeout=x"}, 2, "REDIS_URL: Invalid value for 'socket_timeout'"),
    ({"REDIS_URL": "DB99"}, 1, "Redis refused a command (DB index is out of range); check REDIS_URL"),
]


IDS = ["port-range", "port-text", "no-routes-file", "bad-routes", "redis-down", "no-secret", "redis-db-text",
       "redis-query-value", "redis-db-missing"]  # fmt: skip


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
    env = {
        "HOST": "127.0.0.1",
        "PORT": "0",
        "CIRCLECI_WEBHOOK_SECRETS": "a-webhook-secret-of-length",
        "REDIS_URL": redis_url,
    }
    env |= {k: str(bad) if v == "BAD" else v for k, v in change.items()}
    if env["REDIS_URL"] == "DB99":  # the test's Redis, a database it does not have
        env["REDIS_URL"] = redis_url.rsplit("/", 1)[0] + "/99"
    if env["PORT"] == "0":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            env["PORT"] = str(s.getsockname()[1])
    result = run_cli(command, env=env, timeout=30)
    assert_one_clear_line(result, code)
    assert says in result.err


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


def run_until_ready(env: dict[str, str]) -> list[str]:
    """Start `run`, read its stderr until it says it is ready, stop it; the lines it printed."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "REDIS_URL", "ROUTES_FILE"))}
    base |= {"PORT": str(free_port()), "HOST": "127.0.0.1", "LOG_FORMAT": "console", "WORKERS": "2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "run"],
        env=base | env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stderr is not None
    output = b""
    try:
        while b"circleci-events:   Ctrl-C stops" not in output:
            ready, _, _ = select.select([process.stderr], [], [], 60)
            chunk = os.read(process.stderr.fileno(), 65536) if ready else b""
            assert chunk, "run ended or said nothing for 60 s: " + output.decode(errors="replace")
            output += chunk
    finally:
        process.terminate()
        process.wait(timeout=60)
    return output.decode().splitlines()


def test_run_says_what_it_starts_then_where_to_send_webhooks_and_warns_once() -> None:
    lines = run_until_ready({"CIRCLECI_WEBHOOK_SECRETS": "a-progress-secret"})
    said = [line.removeprefix("circleci-events: ") for line in lines if line.startswith("circleci-events: ")]
    assert said[0].startswith("warning: started a throw-away Redis at unix://")
    assert "keeps nothing across restarts" in said[0]
    assert re.fullmatch(r"started web \(pid \d+\) on http://127\.0\.0\.1:\d+", said[1]), said[1]
    assert re.fullmatch(
        r"started 2 workers \(pid \d+, \d+\), each running up to 4 jobs at once, routes from .+", said[2]
    )
    assert re.fullmatch(r"ready in \d+\.\d s", said[3]), said[3]
    port = said[1].rsplit(":", 1)[1]
    assert said[4] == (f"  webhooks:   POST http://127.0.0.1:{port}/webhooks/circleci, signed with the secret in "
                       "CIRCLECI_WEBHOOK_SECRETS")  # fmt: skip
    assert said[5].startswith("  test event: circleci-events send-test-event --status failed")
    assert f"forwards https to 127.0.0.1:{port}" in said[6]
    warnings = [line for line in lines if "warning" in line.lower() or "not_durable" in line]
    assert warnings == [lines[0]], "the throw-away Redis is said once, not by the web and each worker again"
    assert "a-progress-secret" not in "".join(lines)
    assert not any("console:" in line or "cctray:" in line for line in lines)  # off without their tokens


def test_run_says_where_the_console_and_the_cctray_feed_are_when_their_tokens_are_set() -> None:
    admin, feed = "an-admin-token-of-32-characters-$(x)", "a-feed-token-'quoted'-value"
    lines = run_until_ready({"CIRCLECI_WEBHOOK_SECRETS": "a-progress-secret", "ADMIN_TOKEN": admin, "FEED_TOKEN": feed})
    [web] = [line for line in lines if "started web" in line]
    base = web.rsplit(" on ", 1)[1]
    assert f"circleci-events:   console:    {base}/ui   (sign in with ADMIN_TOKEN)" in lines
    assert f"circleci-events:   cctray:     {base}/cc.xml   (Bearer or Basic with FEED_TOKEN)" in lines
    assert admin not in "".join(lines) and feed not in "".join(lines)


def test_run_on_your_redis_says_its_risks_once(redis_url: str) -> None:
    lines = run_until_ready(
        {"CIRCLECI_WEBHOOK_SECRETS": "first-webhook-secret,second-webhook-secret", "REDIS_URL": redis_url}
    )
    assert f"circleci-events: using your Redis at {redis_url} (REDIS_URL)" in lines
    assert len([line for line in lines if "redis_not_durable" in line]) == 1  # the test Redis keeps no AOF
    assert any("signed with any of the 2 CIRCLECI_WEBHOOK_SECRETS" in line for line in lines)
