"""Click -> CircleCI call: a Slack Approve button pressed until CircleCI (the simulator) is asked.

    python -m bench.clicks [--runs 5] [--clicks 10] [--latency-ms 0]

Real processes, as users run them: redis-server, `circleci-events simulator`, `slack-simulator`,
`web` (SLACK_SIGNING_SECRET set) and one `worker`. Per click: a job-completed webhook whose
workflow waits on an approval job (the demo's scenario) is delivered; once its notice is in the
Slack simulator's #ci, its Approve button is pressed through the simulator (`POST /_slack/click`:
a signed block_actions request to the web's /slack/interactions). The time is the simulator's
clock of the approve call (`/_sim/call-times`: time.monotonic, one clock for every process of
the machine) minus the moment before the press: the Slack simulator signing and posting, the
web's signature check and enqueue, the worker taking the job, the allow-list, the re-read of the
workflow's jobs (one API call, at --latency-ms) and the approve call itself.

Each run starts every process afresh and gives the p50 of its clicks (after one warm-up click);
the report is the median of the runs' p50 with their min and max, and the load average around
each run (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.processes import Processes, free_port, load_average, redis_command, wait_until
from service.cli.demo_events import APPROVER, approval_scenario
from service.signature import sign
from service.simulators.circleci_data import SAMPLES

APPROVE = "POST /workflow/{id}/approve/{approval_request_id}"
SECRET = "bench-webhook-secret"
SIGNING_SECRET = "bench-slack-signing-secret"
SLACK_TOKEN = "xoxb-bench-token"
CIRCLE_TOKEN = "bench-token"
CHANNEL = "C0CI"  # the Slack simulator's #ci
DEADLINE = 60.0


def routes(directory: Path, slack_port: int) -> Path:
    path = directory / "routes.yaml"
    path.write_text(
        "handlers:\n"
        f"  ci: {{type: slack_app, token: {SLACK_TOKEN}, channel: {CHANNEL},"
        f" api_url: 'http://127.0.0.1:{slack_port}/api/'}}\n"
        "subscriptions:\n  - {name: approvals, handlers: [ci], events: [approval-pending]}\n"
        f"actions:\n  approve:\n    - users: [{APPROVER}]\n"
    )
    return path


class Stack:
    """redis-server, both simulators, web and one worker, each a process of its own."""

    def __init__(self, tmp: Path, latency_ms: float) -> None:
        self.procs = Processes(tmp)
        self.http = httpx.Client(timeout=10, trust_env=False)
        ports = {name: free_port() for name in ("redis", "sim", "slack", "web")}
        self.sim, self.slack = f"http://127.0.0.1:{ports['sim']}", f"http://127.0.0.1:{ports['slack']}"
        self.web = f"http://127.0.0.1:{ports['web']}"
        cli = [sys.executable, "-m", "service.cli"]
        last = max(0, (os.cpu_count() or 1) - 1)
        self.procs.start("redis", redis_command(ports["redis"], tmp), cpu=last, env=dict(os.environ))
        self.procs.start("simulator", [*cli, "simulator", "--port", str(ports["sim"]), "--token", CIRCLE_TOKEN,
                         "--latency-ms", str(latency_ms), "--empty"], cpu=last, env=dict(os.environ))  # fmt: skip
        self.procs.start("slack", [*cli, "slack-simulator", "--port", str(ports["slack"]), "--token", SLACK_TOKEN,
                         "--signing-secret", SIGNING_SECRET], cpu=last, env=dict(os.environ))  # fmt: skip
        env = {
            **os.environ,
            "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
            "ROUTES_FILE": str(routes(tmp, ports["slack"])),
            "CIRCLE_TOKEN": CIRCLE_TOKEN,
            "CIRCLECI_API_URL": f"{self.sim}/api/v2",
            "CIRCLECI_WEBHOOK_SECRETS": SECRET,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "PORT": str(ports["web"]),
            "HOST": "127.0.0.1",
            "WORKERS": "1",
            "WORKER_HTTP_PORT": "0",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        wait_until(lambda: redis.Redis(port=ports["redis"]).ping(), "redis-server", 20)
        self.procs.start("web", [*cli, "web"], cpu=last, env=env)
        self.procs.start("worker", [*cli, "worker"], cpu=0, env=env)
        for url in (f"{self.sim}/_sim/calls", f"{self.slack}/_slack/calls", f"{self.web}/healthz"):
            wait_until(partial(self.answers, url), url, 30)

    def answers(self, url: str) -> bool:
        return self.http.get(url).status_code == 200

    def close(self) -> None:
        self.http.close()
        self.procs.stop_all()

    def notices(self) -> list[dict[str, Any]]:
        messages = self.http.get(f"{self.slack}/_slack/messages", params={"channel": "ci"}).json()["messages"]
        return [m for m in messages if "waits for approval" in m["text"]]

    def deliver(self) -> None:
        """A workflow waiting on its approval job, loaded into the simulator; its webhook, signed."""
        scenario = approval_scenario(SAMPLES)
        loaded = self.http.post(f"{self.sim}/_sim/workflows", json={"payload": scenario.payload, "jobs": scenario.jobs})
        if loaded.status_code != 201:
            raise RuntimeError(f"bench: the simulator refused the workflow: {loaded.status_code} {loaded.text[:200]}")
        body = json.dumps(scenario.payload).encode()
        headers = {"content-type": "application/json", "circleci-event-type": scenario.payload["type"],
                   "circleci-signature": sign(body, SECRET)}  # fmt: skip
        answer = self.http.post(f"{self.web}/webhooks/circleci", content=body, headers=headers)
        if answer.status_code != 202:
            raise RuntimeError(f"bench: the receiver answered {answer.status_code}: {answer.text[:200]}")

    def approvals(self) -> int:
        return int(self.http.get(f"{self.sim}/_sim/calls").json()["calls"].get(APPROVE, 0))

    def click(self) -> float:
        """Deliver, wait for the new notice, press Approve: milliseconds to the approve call."""
        before, seen = self.approvals(), len(self.notices())
        self.deliver()
        wait_until(lambda: len(self.notices()) > seen, "the approval notice", DEADLINE, 0.01)
        notice = self.notices()[-1]
        press = {"url": f"{self.web}/slack/interactions", "channel": CHANNEL, "ts": notice["ts"],
                 "action_id": "circleci_events.approve", "user": APPROVER}  # fmt: skip
        started = time.monotonic()
        answer = self.http.post(f"{self.slack}/_slack/click", json=press).json()
        if answer.get("status") != 200:
            raise RuntimeError(f"bench: the web answered the click with {answer}")
        wait_until(lambda: self.approvals() > before, "the approve call", DEADLINE, 0.005)
        called = float(self.http.get(f"{self.sim}/_sim/call-times").json()["at"][APPROVE])
        return (called - started) * 1000


def one_run(clicks: int, latency_ms: float) -> dict[str, Any]:
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-clicks-") as tmp:
        stack = Stack(Path(tmp), latency_ms)
        try:
            stack.click()  # warms web and worker up
            samples = [stack.click() for _ in range(clicks)]
        finally:
            stack.close()
    return {"p50_ms": statistics.median(samples), "samples_ms": samples, "load": [load_before, load_average()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clicks", type=int, default=10, help="clicks per run, after one warm-up")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every simulated API answer")
    args = parser.parse_args()
    runs = []
    for number in range(1, args.runs + 1):
        run = one_run(args.clicks, args.latency_ms)
        runs.append(run)
        ordered = sorted(run["samples_ms"])
        print(f"run {number}: p50 {run['p50_ms']:.1f} ms [{ordered[0]:.1f}-{ordered[-1]:.1f}] over {args.clicks} "
              f"clicks; load average {run['load'][0]} -> {run['load'][1]}", flush=True)  # fmt: skip
    p50s = [r["p50_ms"] for r in runs]
    median = statistics.median(p50s)
    print(f"click -> CircleCI approve call p50 (API at {args.latency_ms:g} ms): median {median:.1f} ms "
          f"[{min(p50s):.1f}-{max(p50s):.1f}] over {args.runs} runs of {args.clicks} clicks")  # fmt: skip


if __name__ == "__main__":
    main()
