"""Issue 23's probes and a fuzz run against a real `circleci-events web`, for "before and after".

    python -m bench.probes [--root DIR] [--runs 3] [--fuzz 6000]

`--root` is a source tree to run (default: this one); `git archive REV | tar -x -C DIR` gives an
older one, run with this venv. Each run starts redis-server and `circleci-events web` on
127.0.0.1 (ADMIN_TOKEN set, rate limits at their defaults) and measures:

    pipelined abort      30 connections, each 3 pipelined signed deliveries then a reset:
                         ERROR lines and tracebacks in the web's log
    redirect Location    POST /webhooks/circleci/ with Host: evil.example: is `evil` in Location?
    /readyz, /metrics    300 calls each from one address at once: how many were answered 200
    admin guesses        40 wrong bearer tokens: 401s, 429s, admin_login_failed lines
    forwarded headers    100 requests with X-Forwarded-For from an untrusted peer: warning lines
    fuzz                 --fuzz requests (random bodies, signatures, headers, paths; 1 in 20 a
                         pipelined abort): 5xx answers, tracebacks and ERROR lines in the log,
                         the web's RSS after 300 warm-up requests and at the end

and prints each figure's median [min-max] over the runs. Every target is 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.processes import ROOT, free_port, load_average, redis_command, rss_mb, wait_http
from service.cli.send_test_event import sample_payload
from service.signature import sign
from workers.jobs import WORKFLOW_COMPLETED

SECRET = "bench-probes-secret-0123456789abcdef"
ADMIN_TOKEN = "bench-probes-admin-token-0123456789abcdef"
PATHS = ["/webhooks/circleci", "/webhooks/circleci/", "/readyz", "/metrics", "/admin/events", "/healthz", "/x"]


def signature(body: bytes) -> str:
    return sign(body, SECRET)


def delivery() -> bytes:
    """A signed workflow-completed delivery, valid and new (so it is queued: its answer waits for
    Redis), as one raw HTTP/1.1 request."""
    body = json.dumps(sample_payload(WORKFLOW_COMPLETED, "failed")).encode()
    head = (f"POST /webhooks/circleci HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"circleci-signature: {signature(body)}\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
    return head.encode() + body


def pipelined_abort(port: int, count: int = 3) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"".join(delivery() for _ in range(count)))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset on close
    time.sleep(0.05)


def fuzz_request(client: httpx.Client, base: str, rng: random.Random) -> int:
    """One random request; its status (0 when the connection failed)."""
    body = rng.choice(
        [
            rng.randbytes(rng.randint(0, 400)),
            json.dumps(
                {
                    "id": str(rng.random()),
                    "type": rng.choice(["ping", "workflow-completed", "job-completed", "x"]),
                    "n": rng.getrandbits(70),
                }
            ).encode(),
        ]
    )
    headers = {"content-type": rng.choice(["application/json", "text/plain", "application/x+json"])}
    kind = rng.randrange(4)
    if kind == 0:
        headers["circleci-signature"] = signature(body)
    elif kind == 1:
        headers["circleci-signature"] = "v1=" + rng.randbytes(32).hex()
    elif kind == 2:
        headers["x-forwarded-for"] = f"198.51.100.{rng.randrange(256)}"
        headers["authorization"] = "Bearer " + rng.randbytes(8).hex()
    headers["circleci-event-type"] = rng.choice(["ping", "workflow-completed", "job-completed", ""])
    method = rng.choice(["POST", "POST", "GET"])
    try:
        return client.request(method, base + rng.choice(PATHS), content=body if method == "POST" else None,
                              headers=headers).status_code  # fmt: skip
    except httpx.HTTPError:
        return 0


def log_lines(path: Path) -> list[dict[str, Any]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            found.append({"level": "raw", "event": line})
    return found


def one_run(root: Path, tmp: Path, fuzz: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    redis_port, port = free_port(), free_port()
    processes = [subprocess.Popen(redis_command(redis_port, tmp), stdout=subprocess.DEVNULL)]
    log = tmp / "web.log"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "REDIS", "ADMIN"))},
           "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CIRCLECI_WEBHOOK_SECRETS": SECRET,
           "ADMIN_TOKEN": ADMIN_TOKEN, "PORT": str(port), "HOST": "127.0.0.1", "LOG_FORMAT": "json",
           "REDIS_ALLOW_EVICTION": "1"}  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    figures: dict[str, float] = {}
    try:
        time.sleep(0.3)
        with log.open("ab") as out:
            web = subprocess.Popen([sys.executable, "-m", "service.cli", "web"], cwd=root, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        processes.append(web)
        wait_http(base + "/healthz")
        with httpx.Client(timeout=10) as client:
            before = len(log_lines(log))
            for _ in range(30):
                pipelined_abort(port)
            time.sleep(1)
            new = log_lines(log)[before:]
            figures["pipelined abort: ERROR lines"] = sum(line.get("level") == "error" for line in new)
            figures["pipelined abort: tracebacks"] = sum("Traceback" in json.dumps(line) for line in new)
            answer = client.post(base + "/webhooks/circleci/", headers={"host": "evil.example"})
            figures["307 Location names evil.example"] = float("evil" in answer.headers.get("location", ""))
            for path in ("/readyz", "/metrics"):
                figures[f"{path}: 200 of 300 at once"] = sum(client.get(base + path).status_code == 200
                                                             for _ in range(300))  # fmt: skip
            before = len(log_lines(log))
            wrong = [client.get(base + "/admin/events", headers={"authorization": "Bearer wrong"}).status_code
                     for _ in range(40)]  # fmt: skip
            figures["admin guesses: 401 of 40"] = wrong.count(401)
            figures["admin guesses: admin_login_failed lines"] = sum(
                line.get("event") == "admin_login_failed" for line in log_lines(log)[before:]
            )
            before = len(log_lines(log))
            for i in range(100):
                client.get(base + "/healthz", headers={"x-forwarded-for": f"203.0.113.{i}"})
            figures["forwarded headers: warning lines"] = sum(
                line.get("event") == "forwarded_headers_ignored" for line in log_lines(log)[before:]
            )
            for _ in range(300):
                fuzz_request(client, base, rng)
            rss_start, before, statuses = rss_mb(web.pid), len(log_lines(log)), []
            for i in range(fuzz):
                if i % 20 == 0:
                    pipelined_abort(port, count=2)
                statuses.append(fuzz_request(client, base, rng))
            time.sleep(1)
            new = log_lines(log)[before:]
            figures["fuzz: requests"] = len(statuses)
            figures["fuzz: 5xx"] = sum(s >= 500 for s in statuses)
            figures["fuzz: tracebacks in log"] = sum("Traceback" in json.dumps(line) for line in new)
            figures["fuzz: ERROR lines"] = sum(line.get("level") == "error" for line in new)
            figures["fuzz: RSS growth MB"] = rss_mb(web.pid) - rss_start
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.probes", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the source tree to run (default: this one)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fuzz", type=int, default=6000, help="fuzzed requests per run")
    args = parser.parse_args()
    print(f"bench.probes: {args.runs} run(s) of {args.root}; load average {load_average()}", flush=True)
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-probes-") as tmp:
            runs.append(one_run(args.root.resolve(), Path(tmp), args.fuzz, seed=i))
        print(f"run {i + 1}: load average {load_average()}", flush=True)
    for name in runs[0]:
        values = [run[name] for run in runs]
        print(f"{name:45} {statistics.median(values):8.1f} [{min(values):.1f}-{max(values):.1f}]")


if __name__ == "__main__":
    main()
