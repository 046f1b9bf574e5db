"""Ingest benchmark: signed ~5 KB deliveries at concurrency 64 against the real web process.

    python -m bench.ingest [--duration 8] [--runs 3]

Starts its own redis-server, the receiver (`circleci-events web`: uvicorn, httptools, uvloop)
pinned to CPU 0 and wrk pinned to CPU 1, and in the same run a no-op Starlette POST under the
same server settings (the ceiling). Prints accepted events/s, p50/p99 latency and the ratio to
the ceiling, and counts the queued jobs afterwards to prove every 202 is durable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from bench.processes import ROOT, free_port, pinned, redis_command, rss_mb, wait_http
from config.clock import utc_now_text
from service.signature import sign

SECRET = "bench-webhook-secret"
SAMPLE = ROOT / "tests" / "fixtures" / "workflow-completed.failed.github-oauth.derived.json"


def make_requests(path: Path, count: int) -> int:
    """Unique, signed deliveries padded to about 5 KB, as wrk's script reads them."""
    payload = json.loads(SAMPLE.read_text())
    payload["pipeline"]["vcs"]["commit"]["body"] = "x" * 4000
    payload["happened_at"] = utc_now_text()  # older than DEDUPE_TTL_SECONDS would be answered `expired`
    size = 0
    with path.open("w") as out:
        for _ in range(count):
            payload["id"] = str(uuid.uuid4())
            body = json.dumps(payload, separators=(",", ":"))
            size = len(body)
            out.write(f"{sign(body.encode(), SECRET)}\tworkflow-completed\t{body}\n")
    return size


def run_wrk(port: int, requests_file: Path, duration: int, connections: int, watch: int | None = None) -> dict:
    """wrk's figures; with `watch`, also that process's peak RSS while wrk runs (`rss_mb`)."""
    command = pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
                         "-s", str(ROOT / "bench" / "wrk_post.lua"), f"http://127.0.0.1:{port}", "--",
                         str(requests_file)])  # fmt: skip
    peak = 0.0
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as wrk:
        while wrk.poll() is None:
            peak = max(peak, rss_mb(watch)) if watch else 0.0
            time.sleep(0.2)
        stdout, stderr = wrk.communicate()
    if wrk.returncode:
        raise subprocess.CalledProcessError(wrk.returncode, command, stdout, stderr)
    line = next(x for x in stdout.splitlines() if x.startswith("WRK_JSON "))
    result = json.loads(line.removeprefix("WRK_JSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["rss_mb"] = max(peak, rss_mb(watch)) if watch else None
    return result


def start_server(command: list[str], env: dict[str, str], port: int, health: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(pinned(0, command), env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}{health}")
    return process


def one_run(tmp: Path, requests_file: Path, duration: int, connections: int) -> dict:
    redis_port = free_port()
    redis_proc = subprocess.Popen(redis_command(redis_port, tmp), stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    client = redis.Redis(port=redis_port)
    try:
        noop_port = free_port()
        noop = start_server(
            [sys.executable, "-m", "uvicorn", "bench.noop_app:app", "--port", str(noop_port), "--loop", "uvloop",
             "--http", "httptools", "--no-access-log", "--log-level", "warning"], {}, noop_port, "/webhooks/circleci",
        )  # fmt: skip
        try:
            ceiling = run_wrk(noop_port, requests_file, duration, connections)
        finally:
            noop.terminate()
            noop.wait()
        web_port = free_port()
        env = {
            "PORT": str(web_port), "HOST": "127.0.0.1", "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "CIRCLECI_WEBHOOK_SECRETS": SECRET, "RATE_LIMIT_BURST": "1000000", "RATE_LIMIT_PER_SECOND": "1000000",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"), "LOG_FORMAT": "json",
        }  # fmt: skip
        web = start_server([sys.executable, "-m", "service.cli", "web"], env, web_port, "/healthz")
        try:
            receiver = run_wrk(web_port, requests_file, duration, connections, watch=web.pid)
        finally:
            web.terminate()
            web.wait()
        queued = client.llen("rq:queue:events")
        accepted = receiver["statuses"].get("202", 0)
        return {"ceiling": ceiling, "receiver": receiver, "queued": queued, "accepted": accepted}
    finally:
        client.close()
        redis_proc.terminate()
        redis_proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--events", type=int, default=80_000, help="unique signed deliveries to prepare")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp_name:
        tmp = Path(tmp_name)
        requests_file = tmp / "requests.tsv"
        size = make_requests(requests_file, args.events)
        print(
            f"ingest: {args.events} unique signed deliveries of {size} bytes; "
            f"{args.runs} runs of {args.duration} s; c={args.connections}"
        )
        runs = [one_run(tmp, requests_file, args.duration, args.connections) for _ in range(args.runs)]
    rows = []
    for i, r in enumerate(runs, 1):
        rec, ceil = r["receiver"], r["ceiling"]
        accepted_rps = r["accepted"] / (rec["duration_us"] / 1e6)
        ratio = accepted_rps / ceil["rps"]
        durable = r["queued"] >= r["accepted"]
        other = {k: v for k, v in rec["statuses"].items() if k != "202"}
        rows.append({"accepted_rps": accepted_rps, "ceiling_rps": ceil["rps"], "ratio": ratio,
                     "p50_ms": rec["p50_us"] / 1000, "p99_ms": rec["p99_us"] / 1000, "durable": durable})  # fmt: skip
        print(f"run {i}: accepted {accepted_rps:,.0f}/s  ceiling {ceil['rps']:,.0f}/s  ratio {ratio:.2f}  "
              f"p50 {rec['p50_us'] / 1000:.1f} ms  p99 {rec['p99_us'] / 1000:.1f} ms  "
              f"202s {r['accepted']}  queued {r['queued']}  other {other or '-'}  "
              f"socket errors {rec['errors']}  web RSS {rec['rss_mb']:.0f} MB")  # fmt: skip
    summary = {}
    for key in ("accepted_rps", "ceiling_rps", "ratio", "p50_ms", "p99_ms"):
        values = [row[key] for row in rows]
        summary[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    summary["every_202_queued"] = all(row["durable"] for row in rows)
    print("summary (median [min-max]):")
    for key, v in summary.items():
        if isinstance(v, dict):
            print(f"  {key:13} {v['median']:,.2f} [{v['min']:,.2f} - {v['max']:,.2f}]")
    print(f"  every 202 queued: {summary['every_202_queued']}; target ratio >= 0.30 with p99 < 50 ms")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
