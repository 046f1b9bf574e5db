"""`circleci-events demo`: from a signed webhook to a rendered chat message, on this machine only.

It starts an embedded Redis, the local CircleCI simulator, a chat sink and the Slack simulator
(`circleci-events simulator`, `sink` and `slack-simulator`), `web` and one `worker`, posts four
signed workflow events (a success, a failure with failed tests, one a known flake, and a failed
docker build shown with its log tail, another failure, the fix),
waits for each to reach the sink and prints what arrived, then the #ci channel of the Slack app
as a person reads it: the breakage's one thread, its root updated, the mentions. Last, a deploy
workflow stops at an approval job: the notice is posted with an Approve button, the Slack
simulator clicks it (a signed request to the web's /slack/interactions) and the message shows
who approved, once CircleCI (the simulator) was asked. Everything it
starts is stopped and its temporary folder removed on the way out.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import click
import httpx

from config.settings import Settings
from service.cli.child_process import die_with_parent
from service.cli.common import clear_errors, fail
from service.cli.demo_events import (
    APPROVER,
    AUTHOR,
    KNOWN_FLAKY,
    SLACK_TOKEN_VAR,
    WEBHOOK_SECRET_VAR,
    Scenario,
    approval_scenario,
    describe,
    routes_yaml,
    scenarios,
)
from service.cli.embedded_redis import EmbeddedRedis
from service.signature import sign
from service.simulators.circleci_data import SAMPLES

SCRUBBED = ("REDIS_URL", "CIRCLE", "ROUTES_FILE", "ADMIN_TOKEN", "WORKER_HTTP_PORT", "PORT", "HOST")


class DemoError(Exception):
    """Something did not start or did not arrive in time; the message says what."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """The demo's processes and folder; `close()` stops them (newest first) and removes the folder."""

    def __init__(self, environ: Mapping[str, str], deadline: float) -> None:
        self.environ, self.deadline = environ, deadline
        self.tmp = Path(tempfile.mkdtemp(prefix="circleci-events-demo-"))
        self.redis = EmbeddedRedis()
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.http = httpx.Client(timeout=5, trust_env=False)

    def start(self, name: str, module: str, *args: str, env: dict[str, str] | None = None) -> None:
        with (self.tmp / f"{name}.log").open("ab") as log:
            self.children[name] = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                cwd=self.tmp,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops the children in order
                preexec_fn=die_with_parent,
            )

    def log_tail(self, name: str) -> str:
        lines = (self.tmp / f"{name}.log").read_text(errors="replace").strip().splitlines()
        return lines[-1][:300] if lines else "(no output)"

    def wait(self, check: Callable[[], bool], what: str) -> None:
        """Until `check()` holds; a DemoError when a child exits or the deadline passes."""
        while True:
            with contextlib.suppress(httpx.TransportError):
                if check():
                    return
            for name, child in self.children.items():
                if child.poll() is not None:
                    raise DemoError(f"{name} exited with code {child.returncode}: {self.log_tail(name)}")
            if time.monotonic() > self.deadline:
                raise DemoError(f"{what} did not happen in time; the demo's time limit passed")
            time.sleep(0.05)

    def pids(self) -> str:
        named = [f"redis-server {self.redis.pid}"] + [f"{n} {c.pid}" for n, c in self.children.items()]
        return ", ".join(named)

    def close(self) -> None:
        for child in reversed(self.children.values()):
            if child.poll() is None:
                child.terminate()
        for child in reversed(self.children.values()):
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=5)
        self.http.close()
        self.redis.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _received(stack: Stack, sink: str, path: str) -> list[dict[str, Any]]:
    """What the sink answered 200 at `path`, oldest first."""
    answer = stack.http.get(f"{sink}/_sink/requests", params={"path": path}).json()
    return [r for r in answer["requests"] if r["status"] == 200]


def _arrived(stack: Stack, sink: str, path: str, count: int) -> bool:
    return len(_received(stack, sink, path)) >= count


def _logged(stack: Stack, event_id: str) -> bool:
    """The log handler's `notification_logged` line for the event is in the worker's log."""
    for raw in (stack.tmp / "worker.log").read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            line = json.loads(raw)
            if line.get("event") == "notification_logged" and line.get("event_id") == event_id:
                return True
    return False


def _thread_shows(stack: Stack, slack: str, replies: int) -> bool:
    """The #ci thread has its root and `replies` replies, and the root was updated as often."""
    messages = stack.http.get(f"{slack}/_slack/messages", params={"channel": "ci"}).json()["messages"]
    roots = [m for m in messages if not m["thread_ts"]]
    return len(roots) == 1 and roots[0]["edits"] == replies and len(messages) == 1 + replies


def run_demo(stack: Stack) -> None:
    sim_port, sink_port, web_port, slack_port = free_port(), free_port(), free_port(), free_port()
    sim, sink, web, slack = (f"http://127.0.0.1:{p}" for p in (sim_port, sink_port, web_port, slack_port))
    token, webhook_secret, handler_secret, signing_secret = (secrets.token_urlsafe(16) for _ in range(4))
    slack_token = "xoxb-" + secrets.token_urlsafe(16)
    routes = stack.tmp / "routes.yaml"
    routes.write_text(routes_yaml(sink, f"{slack}/api/"))
    redis_url = stack.redis.start()
    click.echo(f"demo: started {stack.redis.describe()}", err=True)
    stack.start("simulator", "service.cli", "simulator", "--port", str(sim_port), "--token", token, "--empty")
    stack.start("sink", "service.cli", "sink", "--port", str(sink_port), "--print")
    stack.start(
        "slack", "service.cli", "slack-simulator", "--port", str(slack_port), "--token", slack_token,
        "--signing-secret", signing_secret,
    )  # fmt: skip
    env = {k: v for k, v in stack.environ.items() if not k.startswith(SCRUBBED)}
    env |= {
        "REDIS_URL": redis_url, "CIRCLE_TOKEN": token, "CIRCLECI_API_URL": f"{sim}/api/v2",
        "ROUTES_FILE": str(routes), "CIRCLECI_WEBHOOK_SECRETS": webhook_secret, WEBHOOK_SECRET_VAR: handler_secret,
        SLACK_TOKEN_VAR: slack_token, "SLACK_SIGNING_SECRET": signing_secret,
        "HOST": "127.0.0.1", "PORT": str(web_port), "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
        "DELIVERY_BACKOFF_BASE_SECONDS": "0.5",
    }  # fmt: skip
    stack.start("web", "service.cli", "web", env=env)
    stack.start("worker", "service.cli", "worker", env=env)
    stack.wait(lambda: stack.http.get(f"{sim}/_sim/calls").status_code == 200, "the simulator starting")
    flaky = {"project": scenarios(SAMPLES)[1].payload["project"]["slug"], "tests": [KNOWN_FLAKY], "casing": "snake"}
    if stack.http.post(f"{sim}/_sim/flaky-tests", json=flaky).status_code != 201:
        raise DemoError("the simulator refused the known-flaky test")
    stack.wait(lambda: stack.http.get(f"{sink}/_sink/requests").status_code == 200, "the sink starting")
    stack.wait(lambda: stack.http.post(f"{slack}/_slack/users", json=AUTHOR).status_code == 201, "Slack starting")
    stack.wait(lambda: stack.http.get(f"{web}/healthz").status_code == 200, "the web process starting")
    click.echo(f"demo: processes (pid): {stack.pids()}", err=True)
    click.echo(f"demo: receiving on {web}/webhooks/circleci; CircleCI simulator {sim}; chat sink {sink}\n", err=True)
    for number, scenario in enumerate(scenarios(SAMPLES), 1):
        _deliver(stack, sim, web, webhook_secret, scenario)
        stack.wait(partial(_arrived, stack, sink, "/slack/demo", number), f"Slack message {number}")
        stack.wait(partial(_arrived, stack, sink, "/webhook/demo", number), f"webhook post {number}")
        stack.wait(partial(_logged, stack, scenario.payload["id"]), f"the log handler's line {number}")
        if number > 1:  # the break posts the thread's root; each later event replies and updates it
            replies = number - 2
            # before the next event: CircleCI promises no order, and an older event's reply that lost
            # the thread's lock to a newer one would land after it (and leave the newer root alone)
            stack.wait(partial(_thread_shows, stack, slack, replies), f"the Slack thread after message {number}")
        slack_body = _received(stack, sink, "/slack/demo")[number - 1]["body"]
        webhook = _received(stack, sink, "/webhook/demo")[number - 1]["body"]
        click.echo("\n".join(describe(number, scenario, slack_body, webhook)) + "\n")
    view = stack.http.get(f"{slack}/_slack/view", params={"channel": "ci"}).text
    click.echo("── the Slack app's #ci channel: one thread for the breakage ──\n" + view + "\n")
    _approve(stack, sim, web, slack, webhook_secret)


def _approve(stack: Stack, sim: str, web: str, slack: str, secret: str) -> None:
    """A workflow waiting on an approval job: the notice with its buttons, a click on Approve, the result."""
    _deliver(stack, sim, web, secret, approval_scenario(SAMPLES))
    stack.wait(lambda: _notice(stack, slack) is not None, "the approval notice in #ci")
    notice = _notice(stack, slack)
    assert notice is not None
    click.echo(f"── 5. a deploy waiting for approval: the notice, with buttons ──\n{notice['text']}\n")
    pressed = {"url": f"{web}/slack/interactions", "channel": "C0CI", "ts": notice["ts"],
               "action_id": "circleci_events.approve", "user": APPROVER}  # fmt: skip
    answer = stack.http.post(f"{slack}/_slack/click", json=pressed).json()
    if answer.get("status") != 200:
        raise DemoError(f"the web answered the click with {answer}")
    approve = "POST /workflow/{id}/approve/{approval_request_id}"
    stack.wait(lambda: stack.http.get(f"{sim}/_sim/calls").json()["calls"].get(approve) == 1, "the approve call")
    stack.wait(lambda: (_notice(stack, slack) or {}).get("edits") == 1, "the notice updated")
    view = stack.http.get(f"{slack}/_slack/view", params={"channel": "ci"}).text
    approved = [line for line in view.splitlines() if "Approved by" in line]
    click.echo(f"{APPROVER} clicked Approve: CircleCI was asked once; the message now says:\n"
               + "\n".join(approved) + "\n")  # fmt: skip


def _notice(stack: Stack, slack: str) -> dict[str, Any] | None:
    messages = stack.http.get(f"{slack}/_slack/messages", params={"channel": "ci"}).json()["messages"]
    return next((m for m in messages if "waits for approval" in m["text"]), None)


def _deliver(stack: Stack, sim: str, web: str, secret: str, scenario: Scenario) -> None:
    """Load the workflow into the simulator, then POST its signed webhook as CircleCI does."""
    loaded = stack.http.post(f"{sim}/_sim/workflows", json={"payload": scenario.payload, "jobs": scenario.jobs})
    if loaded.status_code != 201:
        raise DemoError(f"the simulator refused the sample workflow: {loaded.status_code} {loaded.text[:200]}")
    body = json.dumps(scenario.payload).encode()
    headers = {
        "content-type": "application/json",
        "circleci-event-type": scenario.payload["type"],
        "circleci-signature": sign(body, secret),
    }
    answer = stack.http.post(f"{web}/webhooks/circleci", content=body, headers=headers)
    if answer.status_code != 202:
        raise DemoError(f"the receiver answered {answer.status_code} to {scenario.title}: {answer.text[:200]}")


@click.command()
@click.option("--timeout", default=60.0, show_default=True, help="Seconds the whole demo may take.")
@clear_errors
def demo(timeout: float) -> None:
    """Post a success, two failures and the fix to a local stack and print the notifications; no accounts needed."""
    stack = Stack(Settings.from_environ().environ, time.monotonic() + timeout)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the children
    error = None
    try:
        run_demo(stack)
    except DemoError as exc:
        error = str(exc)
    finally:
        # a second Ctrl-C or SIGTERM must not cut the clean-up short; close() is bounded by its waits
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.close()
        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, previous)
    if error:
        fail(f"demo: {error}")
    click.echo("demo: done; every process stopped and its temporary files removed", err=True)
