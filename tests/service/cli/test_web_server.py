"""`circleci-events web --workers N` (or WEB_CONCURRENCY=N): N real uvicorn processes on one socket.

Which process the kernel hands a connection to is its choice, so what is checked is what holds
whatever it chooses: N processes, children of the one started, each holding the listening
socket; every delivery answered; /metrics adding up all of them from any process; a killed one
replaced; SIGTERM ending every one of them.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, fresh, load_fixture
from tests.e2e.conftest import service_env
from tests.e2e.processes import Service, cli
from tests.service.conftest import signed

pytestmark = pytest.mark.e2e


def start_web(redis_url: str, tmp_path: Path, *args: str, **env: str) -> tuple[Service, str, int]:
    port = free_port()
    web = Service(cli("web", *args), env=service_env(redis_url, PORT=str(port), **env), log_path=tmp_path / "web.log")
    web.start()
    base = f"http://127.0.0.1:{port}"
    web.wait_http(base + "/healthz")
    return web, base, port


def serving_pids(web: Service, count: int) -> set[int]:
    """The pids of the last `count` processes that logged web_started (waiting for them)."""
    deadline = time.monotonic() + 30
    while True:
        started = [line["pid"] for line in web.log_lines() if line.get("event") == "web_started"]
        if len(started) >= count:
            return set(started[-count:])
        assert time.monotonic() < deadline, f"{count} web processes did not start:\n{web.output()[-3000:]}"
        time.sleep(0.05)


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found |= {int(child) for child in task.read_text().split()}
    return found


def listening_inode(port: int) -> str:
    """The inode of the socket listening on 127.0.0.1:`port` (/proc/net/tcp, state 0A)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            return fields[9]
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def sockets_of(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def deliver(base: str, count: int) -> list[int]:
    """`count` distinct signed deliveries at once, each on a connection of its own."""
    template = fresh(load_fixture("workflow-completed.failed.github-oauth.derived.json"))

    def post(_: int) -> int:
        with httpx.Client(timeout=10) as client:
            return client.post(base + "/webhooks/circleci", **signed(dict(template, id=str(uuid.uuid4())))).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(post, range(count)))


@pytest.mark.parametrize(
    "args, env, processes",
    [(("--workers", "3"), {}, 3), ((), {"WEB_CONCURRENCY": "2"}, 2), (("--workers", "2"), {"WEB_CONCURRENCY": "5"}, 2)],
    ids=["--workers", "WEB_CONCURRENCY", "--workers-wins"],
)
def test_n_processes_serve_one_socket_and_all_exit_on_sigterm(
    redis_url: str, tmp_path: Path, args: tuple[str, ...], env: dict[str, str], processes: int
) -> None:
    web, base, port = start_web(redis_url, tmp_path, *args, **env)
    assert web.process is not None
    pids = serving_pids(web, processes)
    assert len(pids) == processes and web.process.pid not in pids
    assert pids <= children(web.process.pid)
    listener = listening_inode(port)
    assert all(listener in sockets_of(pid) for pid in pids)

    assert deliver(base, 30) == [202] * 30
    for _ in range(6):  # each scrape on a new connection: any process answers for all of them
        assert 'circleci_events_webhook_requests_total{outcome="queued"} 30.0' in httpx.get(base + "/metrics").text

    assert web.stop(signal.SIGTERM, timeout=30) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert "Traceback" not in web.output()


def test_a_killed_web_process_is_replaced_and_the_others_keep_serving(redis_url: str, tmp_path: Path) -> None:
    web, base, _ = start_web(redis_url, tmp_path, "--workers", "2")
    assert web.process is not None
    first = serving_pids(web, 2)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    assert deliver(base, 10) == [202] * 10
    replacement = serving_pids(web, 3) - first  # a third web_started: the process started in its place
    assert len(replacement) == 1 and replacement <= children(web.process.pid)
    assert victim not in children(web.process.pid)
    assert deliver(base, 10) == [202] * 10
    assert web.stop(signal.SIGTERM, timeout=30) == 0
