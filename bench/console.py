"""The console and the cctray feed at size: page times with 1k and 100k stored events.

    python -m bench.console [--sizes 1000 100000] [--requests 20] [--screenshots DIR]

For each size: a fresh redis-server, filled through the worker's own store (EventStore.save and
record_attempt, so the indexes are the ones the worker keeps), 300 (project, branch, workflow)
transition states and 200 dead letters; then `service.cli web` with ADMIN_TOKEN and FEED_TOKEN,
logged in once, and each page requested `--requests` times after a warm-up. Prints the median
[min-max] milliseconds per page, end to end over HTTP on 127.0.0.1, against the 100 ms target.
With --screenshots, Debian's headless chromium (through Selenium) then logs in and saves each page
as DIR/<size>-<page>.png, whole, to be looked at.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.processes import ROOT, Processes, free_port, load_average, redis_command, wait_until
from workers.delivery.dead_letters import DeadLetter, DeadLetters
from workers.handlers import build_handler
from workers.handlers.base import HandlerConfig
from workers.store import EventStore
from workers.transition import TransitionStore

TARGET_MS = 100.0
MAX_SHOT_PX = 4000
TOKEN = "bench-admin-token-of-at-least-32-characters"
FEED = "bench-feed-token-16"
PROJECTS = [f"gh/acme/repo-{i}" for i in range(10)]
BRANCHES = ["main", "develop", *(f"feature/f-{i}" for i in range(8))]
WORKFLOWS = ["build", "deploy", "nightly"]
STATUSES = ["success"] * 8 + ["failed", "error"]
OUTCOMES = ["delivered"] * 17 + ["retrying", "dead_lettered", "rejected"]
SLACK_URL = "https://hooks.slack.com/services/T000/B000/bench"
TTL = 7 * 24 * 3600


class Batched:
    """Stands in for the client EventStore is given: its pipelines all queue on one, sent every
    BATCH events, so filling 100k events takes seconds, not one round trip per write."""

    def __init__(self, client: redis.Redis) -> None:
        self.pipe = client.pipeline(transaction=False)

    def pipeline(self, transaction: bool = False) -> Batched:
        return self

    def __enter__(self) -> Batched:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)

    def execute(self) -> list[int]:
        return [1]  # what record_attempt reads back (the attempt count) does not matter here

    def flush(self) -> None:
        self.pipe.execute()


BATCH = 500


def sent_message(event: dict[str, Any]) -> list[dict[str, str]]:
    """What a Slack handler sends for `event`, as a delivered attempt keeps it (the event page shows it)."""
    handler = build_handler("ops", HandlerConfig(name="ops", type="slack", options={"url": SLACK_URL}))
    return [{"to": "POST https://hooks.slack.com/…", "body": json.dumps(handler.render(event), ensure_ascii=False)}]


def fill(client: redis.Redis, count: int) -> list[str]:
    """`count` enriched events received over the last day, with their attempts (a delivered one with
    the Slack message it sent); returns their ids."""
    template = json.loads((ROOT / "tests/fixtures/enriched/workflow-completed.failed.json").read_text())
    sent = sent_message(template)
    batch = Batched(client)
    store, rng, now = EventStore(batch, ttl=TTL), random.Random(7), time.time()  # type: ignore[arg-type]
    ids: list[str] = []
    last: dict[tuple[str, str, str], bool] = {}
    for n in range(count):
        project, branch, workflow = rng.choice(PROJECTS), rng.choice(BRANCHES), rng.choice(WORKFLOWS)
        event = dict(template, event_id=str(uuid.UUID(int=rng.getrandbits(128))), status=rng.choice(STATUSES))
        event["received_at"] = datetime.fromtimestamp(now - 86400 * (count - n) / count, UTC).isoformat()
        event["project"] = {**template["project"], "slug": project}
        event["vcs"] = {**template["vcs"], "branch": branch}
        event["workflow"] = {**template["workflow"], "name": workflow, "status": event["status"]}
        event["pipeline"] = {**template["pipeline"], "number": n + 1}
        failed, before = event["status"] != "success", last.get((project, branch, workflow))
        kind = ("still_failing" if failed else "passing") if before == failed else ("broken" if failed else "fixed")
        last[(project, branch, workflow)] = failed
        event["transition"] = {"kind": kind}
        if not failed:
            event["failed_jobs"] = []
        store.save(event, handlers=["ops"])
        outcome = rng.choice(OUTCOMES)
        kept = sent if outcome == "delivered" else None
        store.record_attempt(event["event_id"], "ops", outcome=outcome, status=200, seconds=0.05, sent=kept)
        ids.append(event["event_id"])
        if n % BATCH == BATCH - 1:
            batch.flush()
    batch.flush()
    transitions = TransitionStore(client)
    for i, (project, branch, workflow) in enumerate((p, b, w) for p in PROJECTS for b in BRANCHES for w in WORKFLOWS):
        transitions.record(project=project, ref=branch, workflow=workflow, status=rng.choice(STATUSES),
                           pipeline_number=i + 1, happened_at=datetime.now(UTC).isoformat())  # fmt: skip
    letters = DeadLetters(client, ttl=TTL)
    for event_id in ids[-200:]:
        letters.put(DeadLetter(f"{event_id}:ops", event_id, "ops", "retry_budget_exhausted", 500, "fault", 9,
                               now - 600, now - 60, now - 60))  # fmt: skip
    return ids


def pages(ids: list[str]) -> dict[str, str]:
    middle = ids[len(ids) // 2]
    return {
        "overview": "/ui/",
        "events": "/ui/events",
        "events ?status=failed": "/ui/events?status=failed",
        "events ?project&branch": f"/ui/events?project={PROJECTS[3]}&branch=develop",
        "events ?outcome=rejected&workflow": "/ui/events?outcome=rejected&workflow=deploy",
        "events ?pipeline": f"/ui/events?pipeline={len(ids) // 3}",
        "events ?id_prefix": f"/ui/events?id_prefix={middle[:4]}",
        "event": f"/ui/events/{middle}",
        "dead letters": "/ui/dead-letters",
        "branch health": "/ui/branches",
        "configuration": "/ui/config",
        "cc.xml": "/cc.xml",
    }


def screenshots(base: str, paths: dict[str, str], folder: Path, size: int) -> None:
    """Each page as headless chromium shows it, logged in through the form, whole (up to MAX_SHOT_PX)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    os.environ.setdefault("SE_OFFLINE", "true")
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(base + "/ui/login")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "form[action='/ui/login'] button").click()
        wait_until(lambda: "/ui/login" not in driver.current_url, "the login", 30)
        for name, path in {"login": "/ui/login", **paths}.items():
            if path == "/cc.xml":
                continue
            if name == "login":
                driver.delete_all_cookies()
            driver.get(base + path)
            content = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
            clip = {
                "x": 0,
                "y": 0,
                "width": content["width"],
                "height": min(content["height"], MAX_SHOT_PX),
                "scale": 1,
            }
            shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
            file = f"{size}-{name.replace(' ', '_').replace('?', '').replace('&', '+')}.png"
            (folder / file).write_bytes(base64.b64decode(shot["data"]))
            if name == "login":
                driver.find_element(By.ID, "token").send_keys(TOKEN)
                driver.find_element(By.CSS_SELECTOR, "form[action='/ui/login'] button").click()
                wait_until(lambda: "/ui/login" not in driver.current_url, "the login", 30)
    finally:
        driver.quit()


def measure(size: int, requests: int, tmp: Path, shots: Path | None = None) -> dict[str, list[float]]:
    procs = Processes(tmp)
    redis_port, web_port = free_port(), free_port()
    try:
        procs.start("redis", redis_command(redis_port, tmp), cpu=0, env={})
        client = redis.Redis(port=redis_port)
        wait_until(lambda: bool(client.ping()), "redis", 20)
        started = time.monotonic()
        ids = fill(client, size)
        print(f"  {size:,} events stored in {time.monotonic() - started:.0f} s", flush=True)
        env = {
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "PORT": str(web_port), "HOST": "127.0.0.1",
            "ADMIN_TOKEN": TOKEN, "FEED_TOKEN": FEED, "INSECURE_ALLOW_UNSIGNED_WEBHOOKS": "1",
            "REDIS_ALLOW_EVICTION": "1", "LOG_LEVEL": "WARNING", "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }  # fmt: skip
        procs.start("web", [sys.executable, "-m", "service.cli", "web"], cpu=1, env=env)
        base = f"http://127.0.0.1:{web_port}"
        http = httpx.Client(base_url=base, timeout=30, trust_env=False)
        wait_until(lambda: http.get("/healthz").status_code == 200, "web", 30)
        http.post("/ui/login", data={"token": TOKEN})
        times: dict[str, list[float]] = {}
        for name, path in pages(ids).items():
            headers = {"authorization": f"Bearer {FEED}"} if path == "/cc.xml" else {}
            assert http.get(path, headers=headers).status_code == 200, path  # warm-up, and it must answer
            samples = []
            for _ in range(requests):
                begin = time.perf_counter()
                http.get(path, headers=headers).raise_for_status()
                samples.append((time.perf_counter() - begin) * 1000)
            times[name] = samples
        if shots is not None:
            screenshots(base, pages(ids), shots, size)
        return times
    finally:
        procs.stop_all()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--screenshots", type=Path, help="a folder for a PNG of each page at each size")
    args = parser.parse_args(argv)
    print(f"bench.console: load average {load_average()}", flush=True)
    results: dict[int, dict[str, list[float]]] = {}
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
            results[size] = measure(size, args.requests, Path(tmp), args.screenshots)
    names = list(next(iter(results.values())))
    header = ["page", *(f"{s:,} events: median [min-max] ms" for s in args.sizes), f"< {TARGET_MS:.0f} ms"]
    rows = [header]
    for name in names:
        cells = [
            f"{statistics.median(v):.1f} [{min(v):.1f}-{max(v):.1f}]" for v in (results[s][name] for s in args.sizes)
        ]
        met = all(statistics.median(results[s][name]) < TARGET_MS for s in args.sizes)
        rows.append([name, *cells, "yes" if met else "NO"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(f"bench.console: load average {load_average()}")


if __name__ == "__main__":
    main()
