"""Issue 23's first-round probes of what a stranger on the network can do to the web and the worker.

Each probe starts its own redis-server (from PATH) and `circleci-events web` or `worker` from
`root` (an older tree runs with this venv), all on 127.0.0.1, at the shipped defaults:

    rate limit      35 badly signed requests a second for 12 s, each with its own X-Forwarded-For
                    (a proxy's clients; TRUSTED_PROXIES unset, as compose and Kubernetes ship it),
                    while 10 real deliveries come through the same proxy: how many got 429
    connections     1,000 connections from 127.0.0.2, each a request cut off inside its headers,
                    held open; meanwhile 10 real deliveries from 127.0.0.3: their statuses
                    (0: no answer within 10 s)
    worker port     `worker` with WORKER_HTTP_PORT and no host set: the address it listens on;
                    then (host 127.0.0.1 where the tree has no WORKER_HTTP_HOST) 100 connections
                    reset inside their request line: new lines on stderr and stdout (JSON or not);
                    then 2,000 idle connections: the worker's threads before and after
    short secret    `web` with CIRCLECI_WEBHOOK_SECRETS of 2 characters (`ci`): refused at start
                    (exit status, lines), or, once up, what the log prints of `circleci-signature`
                    after a badly signed request

Loopback is 127.0.0.0/8 on Linux, so 127.0.0.2 and 127.0.0.3 are other client addresses of
the same machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.processes import Processes, descendants, free_port, redis_command, wait_until
from service.cli.send_test_event import sample_payload
from service.signature import sign
from workers.jobs import WORKFLOW_COMPLETED

SECRET = "bench-probes-secret-0123456789abcdef"
LINGER_RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close sends a reset


class Web:
    """redis-server and one `web` (or `worker`) from `root`, on 127.0.0.1."""

    def __init__(self, root: Path, tmp: Path, **extra: str) -> None:
        self.root, self.tmp = root, tmp
        self.procs = Processes(tmp)
        self.redis_port, self.port = free_port(), free_port()
        self.procs.start("redis", redis_command(self.redis_port, tmp), cpu=1, env=dict(os.environ))
        wait_until(lambda: bool(redis.Redis(port=self.redis_port).ping()), "redis-server", 20)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "REDIS", "ADMIN", "SLACK"))},
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CIRCLECI_WEBHOOK_SECRETS": SECRET,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "LOG_FORMAT": "json",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            **extra,
        }
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self, role: str, **extra: str) -> Any:
        env = {k: v for k, v in {**self.env, **extra}.items() if v is not None and v != "-"}
        return self.procs.start(role, [sys.executable, "-m", "service.cli", role], cpu=0, env=env, cwd=self.root,
                                apart=True)  # fmt: skip

    def lines(self, role: str, stream: str = "log") -> list[str]:
        return (self.tmp / f"{role}.{stream}").read_text(errors="replace").splitlines()

    def close(self) -> None:
        self.procs.stop_all()


def delivery() -> tuple[bytes, dict[str, str]]:
    body = json.dumps(sample_payload(WORKFLOW_COMPLETED, "failed")).encode()
    return body, {"content-type": "application/json", "circleci-event-type": WORKFLOW_COMPLETED,
                  "circleci-signature": sign(body, SECRET)}  # fmt: skip


def rate_limit(root: Path, tmp: Path) -> dict[str, Any]:
    """35 bad requests/s through an untrusted proxy and 10 real deliveries through it too."""
    web = Web(root, tmp)
    statuses: list[int] = []
    stop = threading.Event()

    def bad() -> None:
        with httpx.Client(timeout=10, trust_env=False) as client:
            started, n = time.monotonic(), 0
            while not stop.is_set():
                body = json.dumps({"type": "workflow-completed", "id": str(n)}).encode()
                headers = {"content-type": "application/json", "circleci-signature": "v1=" + os.urandom(32).hex(),
                           "x-forwarded-for": f"198.51.100.{n % 250 + 1}"}  # fmt: skip
                with contextlib.suppress(httpx.HTTPError):
                    client.post(web.base + "/webhooks/circleci", content=body, headers=headers)
                n += 1
                time.sleep(max(0.0, started + n / 35 - time.monotonic()))

    try:
        web.start("web")
        wait_http_ok(web.base + "/healthz")
        sender = threading.Thread(target=bad, daemon=True)
        sender.start()
        time.sleep(2)
        with httpx.Client(timeout=10, trust_env=False) as client:
            for n in range(10):
                body, headers = delivery()
                headers["x-forwarded-for"] = f"203.0.113.{n + 1}"
                statuses.append(client.post(web.base + "/webhooks/circleci", content=body, headers=headers).status_code)
                time.sleep(1)
        stop.set()
        sender.join(15)
    finally:
        stop.set()
        web.close()
    return {"rate limit: real deliveries 429 of 10": statuses.count(429),
            "rate limit: real deliveries 202 of 10": statuses.count(202)}  # fmt: skip


@contextlib.contextmanager
def half_sent(port: int, count: int, source: str) -> Iterator[int]:
    """`count` connections from `source`, each a request cut off in its headers; yields how many connected."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            conn = socket.socket()
            conn.settimeout(5)
            try:
                conn.bind((source, 0))
                conn.connect(("127.0.0.1", port))
                conn.sendall(b"POST /webhooks/circleci HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
            except OSError:
                conn.close()
                continue
            held.append(conn)
        yield len(held)
    finally:
        for conn in held:
            conn.close()


def connections(root: Path, tmp: Path) -> dict[str, Any]:
    """1,000 half-sent requests from 127.0.0.2; 10 real deliveries from 127.0.0.3 meanwhile."""
    web = Web(root, tmp)
    statuses: list[int] = []
    try:
        web.start("web")
        wait_http_ok(web.base + "/healthz")
        transport = httpx.HTTPTransport(local_address="127.0.0.3")
        with half_sent(web.port, 1000, "127.0.0.2") as opened, httpx.Client(transport=transport, timeout=10) as client:
            for _ in range(10):
                body, headers = delivery()
                headers["connection"] = "close"
                try:
                    statuses.append(client.post(web.base + "/webhooks/circleci", content=body, headers=headers)
                                    .status_code)  # fmt: skip
                except httpx.HTTPError:
                    statuses.append(0)
                time.sleep(0.5)
    finally:
        web.close()
    counts = {status: statuses.count(status) for status in sorted(set(statuses))}
    return {"connections: half-sent held open": opened,
            "connections: real deliveries by status": ", ".join(f"{n} x {s}" for s, n in counts.items())}  # fmt: skip


def listening(port: int) -> str:
    """The local address a socket listens on at `port` (/proc/net/tcp, tcp6), or 'none'."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                if len(address) == 8:
                    found.append(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    found.append("[" + ("::" if int(address, 16) == 0 else address) + "]")
    return ", ".join(found) or "none"


def threads(pid: int) -> int:
    total = 0
    for each in (pid, *descendants(pid)):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    total += int(line.split()[1])
    return total


def worker_port(root: Path, tmp: Path) -> dict[str, Any]:
    """Where the worker's HTTP port listens by default; reset and idle connections against it."""
    web = Web(root, tmp)
    figures: dict[str, Any] = {}
    try:
        http_port = free_port()
        default = web.start("worker", HOST="-", WORKER_HTTP_PORT=str(http_port))
        wait_until(lambda: listening(http_port) != "none", "the worker's HTTP port", 30)
        figures["worker port: listens on by default"] = listening(http_port)
        web.procs.stop(default)
        worker = web.start("worker", WORKER_HTTP_PORT=str(http_port), WORKER_HTTP_HOST="127.0.0.1")
        wait_http_ok(f"http://127.0.0.1:{http_port}/healthz")
        time.sleep(1)
        out, err = len(web.lines("worker")), len(web.lines("worker", "err"))
        for _ in range(100):
            with socket.create_connection(("127.0.0.1", http_port), timeout=5) as conn:
                conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127")
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        time.sleep(2)
        new = web.lines("worker")[out:] + web.lines("worker", "err")[err:]
        figures["worker port: 100 resets: stderr lines"] = len(web.lines("worker", "err")) - err
        figures["worker port: 100 resets: lines not JSON"] = sum(not is_json(line) for line in new)
        figures["worker port: 100 resets: JSON lines"] = sum(is_json(line) for line in new)
        figures["worker port: threads idle"] = threads(worker.pid)
        idle: list[socket.socket] = []
        try:
            for _ in range(2000):
                with contextlib.suppress(OSError):
                    idle.append(socket.create_connection(("127.0.0.1", http_port), timeout=5))
            time.sleep(2)
            figures["worker port: threads with 2,000 idle connections"] = threads(worker.pid)
        finally:
            for conn in idle:
                conn.close()
    finally:
        web.close()
    return figures


def is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def short_secret(root: Path, tmp: Path) -> dict[str, Any]:
    """`web` with a 2-character webhook secret: refused, or what its log prints of the header's name."""
    web = Web(root, tmp, CIRCLECI_WEBHOOK_SECRETS="ci")
    try:
        process = web.start("web")
        wait_until(lambda: process.poll() is not None or healthy(web.base), "the web's start or exit", 30)
        if process.poll() is not None:
            lines = web.lines("web") + web.lines("web", "err")
            return {"short secret: exit status": process.returncode, "short secret: output lines": len(lines),
                    "short secret: says": lines[-1][:160] if lines else ""}  # fmt: skip
        with httpx.Client(timeout=10, trust_env=False) as client:
            client.post(web.base + "/webhooks/circleci", content=b"{}", headers={"content-type": "application/json"})
        time.sleep(1)
        shown = [line for line in web.lines("web") + web.lines("web", "err") if "rcle[redacted]" in line]
        return {"short secret: exit status": "running", "short secret: lines revealing it": len(shown),
                "short secret: says": next((part for part in shown[0].split('"') if "rcle[redacted]" in part), "")
                if shown else ""}  # fmt: skip
    finally:
        web.close()


def healthy(base: str) -> bool:
    return httpx.get(base + "/healthz", timeout=1).status_code == 200


def wait_http_ok(url: str) -> None:
    wait_until(lambda: httpx.get(url, timeout=1).status_code == 200, url, 30)
