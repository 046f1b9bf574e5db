"""When `circleci-events run` is ready, and what it then tells its user.

Ready means: the web answers GET /readyz with 200 (Redis answers and keeps what it is given)
and every worker process has an RQ worker registered in Redis (RQ's own registry, by pid).
`run` asks at each tick of its loop until both hold, then prints where to send a webhook, how
to send a test event and how CircleCI can reach a laptop, once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

import httpx
import redis
from rq import Worker

PROBE_TIMEOUT_SECONDS = 1.0


class Readiness:
    """`check()` until it is True: the web at `base_url` ready and a registered worker in each of `worker_pids`."""

    def __init__(self, redis_client: redis.Redis, base_url: str, worker_pids: Iterable[int]) -> None:
        self.redis = redis_client
        self.base_url = base_url
        self.worker_pids = set(worker_pids)
        self.web_ready = False

    def check(self) -> bool:
        if not self.web_ready:
            try:
                answer = httpx.get(f"{self.base_url}/readyz", timeout=PROBE_TIMEOUT_SECONDS)
            except httpx.HTTPError:
                return False  # not listening yet
            self.web_ready = answer.status_code == 200
            if not self.web_ready:
                return False
        try:
            registered = {w.pid for w in Worker.all(connection=self.redis)}
        except redis.RedisError:
            return False
        return self.worker_pids <= registered


def program() -> str:
    """How the user ran this command: `.venv/bin/circleci-events` under `make run`, else `circleci-events`."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) != "circleci-events":
        return "circleci-events"
    relative = os.path.relpath(argv0)
    return relative if not relative.startswith("..") else argv0


def ready_lines(
    *, webhook_url: str, secrets: int, address: str, seconds: float, console: bool = False, feed: bool = False
) -> list[str]:
    """What `run` prints once ready (no secret: the Makefile names the development one); the
    console's and the cctray feed's addresses when ADMIN_TOKEN and FEED_TOKEN turn them on."""
    command = program()
    which = (
        "the secret in CIRCLECI_WEBHOOK_SECRETS" if secrets == 1 else f"any of the {secrets} CIRCLECI_WEBHOOK_SECRETS"
    )
    if secrets == 0:
        which = "nothing (INSECURE_ALLOW_UNSIGNED_WEBHOOKS is set)"
    base = webhook_url.removesuffix("/webhooks/circleci")
    pages = [f"  console:    {base}/ui   (sign in with ADMIN_TOKEN)"] if console else []
    pages += [f"  cctray:     {base}/cc.xml   (Bearer or Basic with FEED_TOKEN)"] if feed else []
    return [
        f"ready in {seconds:.1f} s",
        f"  webhooks:   POST {webhook_url}, signed with {which}",
        *pages,
        f"  test event: {command} send-test-event --status failed   (in another shell; then `{command} events list`)",
        f"  CircleCI:   reaches this machine only through a tunnel that forwards https to {address}; "
        f"then `{command} webhooks ensure --url https://<tunnel host> <project slug>`",
        "  Ctrl-C stops",
    ]
