"""Issue 23's first-round probes of what a commit or a payload can make the product do, on real processes.

One stack per run: redis-server, `circleci-events simulator`, `slack-simulator` and `sink` (from
this tree), and `web` and one `worker` from `root` (an older tree runs with this venv). The routes
file sends each probe's events, told apart by branch, to one handler:

    mentions       a `slack` handler at the sink with the template `{{ mention(event.vcs.author_name) }}`:
                   a failing workflow whose commit author is named `channel`, then one named
                   `S0GROUP`; the text each message carries (`<!channel>`, `<!subteam^S0GROUP>`, or
                   the name as text)
    co-authors     a `slack_app` handler at the Slack simulator (`notify: committer`, `people:`
                   naming someone else): one failing workflow whose commit carries 300
                   `Co-authored-by:` lines (80 of them Slack users) and claims grace@example.com
                   (a user of the simulated workspace) as its author: users.lookupByEmail calls,
                   people mentioned in the root message, and who got the direct message; then 300
                   trailers none of whom is a Slack user: the look-ups they cost
    big integer    a `webhook` handler at the sink: a signed delivery carrying 2**70 in a field the
                   receiver does not check (`extra.count`; a checked one such as the pipeline
                   number is refused by type before and after): the web's status, then (if
                   accepted) the worker's failed attempts and what reached the sink within
                   BIG_INT_WAIT seconds

Every address is 127.0.0.1.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.processes import ROOT, Processes, free_port, redis_command, wait_until
from service.signature import sign

SECRET = "bench-probes-secret-0123456789abcdef"
SLACK_TOKEN = "xoxb-bench-probes"
CIRCLE_TOKEN = "bench-probes-token"
FAILED = ROOT / "service" / "simulators" / "samples" / "workflow-completed.failed.github-oauth.derived.json"
CO_AUTHORS, SLACK_USERS = 300, 80
CLAIMED = "grace@example.com"  # U0GRACE in the simulated workspace; `people:` does not name her
BIG_INT_WAIT = 20.0
DEADLINE = 60.0


def routes(directory: Path, sink: int, slack: int) -> Path:
    path = directory / "routes.yaml"
    path.write_text(
        "handlers:\n"
        f"  mention-probe: {{type: slack, url: 'http://127.0.0.1:{sink}/slack/mention',"
        " template: '{{ mention(event.vcs.author_name) }}'}\n"
        f"  app: {{type: slack_app, token: {SLACK_TOKEN}, channel: C0CI, api_url: 'http://127.0.0.1:{slack}/api/'}}\n"
        f"  hook: {{type: webhook, url: 'http://127.0.0.1:{sink}/hook', secret: bench-probes-hook-secret}}\n"
        "people:\n  ada@example.com: {slack: U0ADA}\n"
        "subscriptions:\n"
        "  - {name: mentions, handlers: [mention-probe], branches: ['probe-mention-*']}\n"
        "  - {name: people, handlers: [app], branches: ['probe-people*'], notify: committer}\n"
        "  - {name: big, handlers: [hook], branches: [probe-big]}\n"
    )
    return path


def failing_workflow(branch: str, *, author: str = "Author Name", email: str = "author.email@example.com",
                     body: str = "") -> dict[str, Any]:  # fmt: skip
    """The failed sample as a new delivery on `branch` (a first failure there: a break)."""
    payload: dict[str, Any] = copy.deepcopy(json.loads(FAILED.read_text()))
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    workflow, pipeline = payload["workflow"], payload["pipeline"]
    payload["id"], payload["happened_at"], workflow["stopped_at"] = str(uuid.uuid4()), now, now
    workflow["id"], pipeline["id"] = str(uuid.uuid4()), str(uuid.uuid4())
    pipeline["vcs"]["branch"] = branch
    pipeline["vcs"]["revision"] = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    pipeline["vcs"]["commit"] |= {"author": {"name": author, "email": email}, "body": body}
    return payload


def answers(http: httpx.Client, url: str) -> bool:
    return http.get(url).status_code == 200


class Stack:
    """redis-server, both simulators and the sink from this tree; web and one worker from `root`."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.procs = Processes(tmp)
        self.logs = tmp
        self.http = httpx.Client(timeout=10, trust_env=False)
        ports = {name: free_port() for name in ("redis", "sim", "slack", "sink", "web")}
        self.sim, self.slack = f"http://127.0.0.1:{ports['sim']}", f"http://127.0.0.1:{ports['slack']}"
        self.sink, self.web = f"http://127.0.0.1:{ports['sink']}", f"http://127.0.0.1:{ports['web']}"
        cli = [sys.executable, "-m", "service.cli"]
        plain = dict(os.environ)
        self.procs.start("redis", redis_command(ports["redis"], tmp), cpu=1, env=plain)
        self.procs.start("simulator", [*cli, "simulator", "--port", str(ports["sim"]), "--token", CIRCLE_TOKEN,
                         "--empty"], cpu=1, env=plain)  # fmt: skip
        self.procs.start("slack", [*cli, "slack-simulator", "--port", str(ports["slack"]), "--token", SLACK_TOKEN],
                         cpu=1, env=plain)  # fmt: skip
        self.procs.start("sink", [*cli, "sink", "--port", str(ports["sink"])], cpu=1, env=plain)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "REDIS", "ADMIN", "SLACK"))},
            "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
            "ROUTES_FILE": str(routes(tmp, ports["sink"], ports["slack"])),
            "CIRCLE_TOKEN": CIRCLE_TOKEN,
            "CIRCLECI_API_URL": f"{self.sim}/api/v2",
            "CIRCLECI_WEBHOOK_SECRETS": SECRET,
            "PORT": str(ports["web"]),
            "HOST": "127.0.0.1",
            "WORKER_HTTP_PORT": "0",
            "LOG_FORMAT": "json",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        wait_until(lambda: bool(redis.Redis(port=ports["redis"]).ping()), "redis-server", 20)
        self.procs.start("web", [*cli, "web"], cpu=1, env=env, cwd=root)
        self.procs.start("worker", [*cli, "worker"], cpu=0, env=env, cwd=root)
        for url in (f"{self.sim}/_sim/calls", f"{self.slack}/_slack/calls", f"{self.sink}/_sink/requests",
                    f"{self.web}/healthz"):  # fmt: skip
            wait_until(partial(answers, self.http, url), url, 30)

    def close(self) -> None:
        self.http.close()
        self.procs.stop_all()

    def deliver(self, payload: dict[str, Any], *, body: bytes | None = None) -> int:
        """The workflow loaded into the CircleCI simulator, then its webhook signed and posted: the status."""
        jobs = [{"name": "build", "status": "success"}, {"name": "test", "status": "failed"}]
        self.http.post(f"{self.sim}/_sim/workflows", json={"payload": payload, "jobs": jobs}).raise_for_status()
        body = json.dumps(payload).encode() if body is None else body
        headers = {"content-type": "application/json", "circleci-event-type": payload["type"],
                   "circleci-signature": sign(body, SECRET)}  # fmt: skip
        return self.http.post(f"{self.web}/webhooks/circleci", content=body, headers=headers).status_code

    def settle(self, quiet: float = 2.0) -> None:
        """Until the Slack simulator saw no new call for `quiet` seconds (the worker's job is done)."""
        last, since = -1, time.monotonic()
        while time.monotonic() - since < quiet:
            total = self.http.get(f"{self.slack}/_slack/calls").json()["total"]
            if total != last:
                last, since = total, time.monotonic()
            time.sleep(0.2)

    def sink_requests(self, path: str) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self.http.get(f"{self.sink}/_sink/requests", params={"path": path}).json()[
            "requests"
        ]
        return answer

    def slack_messages(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self.http.get(f"{self.slack}/_slack/messages").json()["messages"]
        return answer

    def worker_lines(self) -> list[dict[str, Any]]:
        found = []
        for line in (self.logs / "worker.log").read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                found.append({"event": line, "level": "raw"})
        return found


def arrived(stack: Stack, count: int) -> bool:
    return len(stack.sink_requests("/slack/mention")) >= count


def mentions(stack: Stack) -> dict[str, Any]:
    """The text of the message for an author named `channel`, then `S0GROUP`."""
    found: dict[str, Any] = {}
    for number, author in enumerate(("channel", "S0GROUP"), start=1):
        status = stack.deliver(failing_workflow(f"probe-mention-{number}", author=author))
        wait_until(partial(arrived, stack, number), "the mention message", DEADLINE)
        body = stack.sink_requests("/slack/mention")[number - 1]["body"]
        found[f"mentions: author {author!r}: status"] = status
        found[f"mentions: author {author!r}: the message's text"] = body.get("text") if isinstance(body, dict) else body
    return found


def roots(stack: Stack) -> list[dict[str, Any]]:
    """The slack_app's top-level messages in #ci."""
    return [m for m in stack.slack_messages() if m["channel"] == "C0CI" and not m.get("thread_ts")]


def co_authors(stack: Stack) -> dict[str, Any]:
    """300 `Co-authored-by:` trailers and an author only the commit claims."""
    for n in range(SLACK_USERS):
        stack.http.post(f"{stack.slack}/_slack/users", json={"id": f"U0P{n}", "name": f"person{n}",
                        "email": f"p{n}@example.com"}).raise_for_status()  # fmt: skip
    trailers = "".join(f"Co-authored-by: Person {n} <p{n}@example.com>\n" for n in range(CO_AUTHORS))
    status = stack.deliver(failing_workflow("probe-people", author="Grace", email=CLAIMED,
                                            body="Many hands.\n\n" + trailers))  # fmt: skip

    wait_until(lambda: len(roots(stack)) > 0, "the slack_app's root message", DEADLINE)
    stack.settle()
    found_root = roots(stack)[0]
    calls = stack.http.get(f"{stack.slack}/_slack/calls").json()["calls"]
    direct = sorted({m["channel"] for m in stack.slack_messages() if str(m["channel"]).startswith("D")})
    return {
        "co-authors: status": status,
        "co-authors: users.lookupByEmail calls": calls.get("users.lookupByEmail", 0),
        "co-authors: people mentioned": len(found_root.get("mentions") or []),
        "co-authors: direct messages to": ", ".join("U" + d[1:] for d in direct) or "nobody",
        "co-authors none on Slack: users.lookupByEmail calls": strangers(stack, calls.get("users.lookupByEmail", 0)),
    }


def strangers(stack: Stack, before: int) -> int:
    """300 more trailers, none of them a Slack user (every look-up misses): the look-ups they cost."""
    trailers = "".join(f"Co-authored-by: Stranger {n} <s{n}@example.com>\n" for n in range(CO_AUTHORS))
    stack.deliver(failing_workflow("probe-people-strangers", author="Nobody", email="nobody@example.com",
                                   body="More hands.\n\n" + trailers))  # fmt: skip
    wait_until(lambda: len(roots(stack)) > 1, "the second root message", DEADLINE)
    stack.settle()
    return int(stack.http.get(f"{stack.slack}/_slack/calls").json()["calls"].get("users.lookupByEmail", 0)) - before


def big_integer(stack: Stack) -> dict[str, Any]:
    """A signed delivery carrying 2**70: the status, then what the worker made of it."""
    payload = failing_workflow("probe-big")
    sent = copy.deepcopy(payload) | {"extra": {"count": "@big@"}}
    body = json.dumps(sent).replace('"@big@"', str(2**70)).encode()
    before = len(stack.worker_lines())
    status = stack.deliver(payload, body=body)
    time.sleep(BIG_INT_WAIT if status == 202 else 1)
    new = stack.worker_lines()[before:]
    retried = ("delivery_retry_scheduled", "delivery_dead_lettered", "delivery_rejected", "job_failed")
    return {
        "big integer: status": status,
        "big integer: failed attempts logged": sum(line.get("event") in retried for line in new),
        "big integer: reached the sink": len(stack.sink_requests("/hook")),
    }


def one_run(root: Path, tmp: Path) -> dict[str, Any]:
    stack = Stack(root, tmp)
    try:
        return {**mentions(stack), **co_authors(stack), **big_integer(stack)}
    finally:
        stack.close()
