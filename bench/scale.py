"""Scale-out: events/s as worker processes are added on one Redis, with the CPU each event costs.

    python -m bench.scale [--processes 1 2 4] [--concurrency 1 4] [--events 200] [--latency-ms 20]
                          [--runs 1] [--root DIR] [--json PATH]

Issue 26, item 5: N local worker processes stand for N hosts' workers on one Redis. At each
point (processes x WORKER_CONCURRENCY) bench.worker's throughput phase runs `--events` 12-job
workflows with one delivery each (the default routes: a log line), the simulator answering
after `--latency-ms`: events/s from the job records, and over the phase the CPU milliseconds per
event of the workers together, of Redis and of the simulator, and the Redis commands per event
(INFO commandstats: every process's, the bench's enqueue and polls too, a few).

Worker i is pinned to CPU i modulo the CPUs; Redis and the simulator share the last one. On a
2-CPU machine the curve flattens once the workers and the simulator fill both: the CPU column
says when. The last line is what one Redis sustains at the measured commands per event: its
own CPU per command, measured at the busiest point, gives its commands per second on one core,
divided by the commands an event costs (an estimate: Redis's throughput is CPU-bound and
single-threaded; its network I/O threads and pipelining move it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.processes import ROOT, load_average
from bench.worker import Run

ROUTES = str(ROOT / "config" / "routes.yaml")  # a log line per event: one delivery each


def point(args: argparse.Namespace, processes: int, concurrency: int) -> dict[str, Any]:
    """One throughput phase at `processes` x `concurrency`, on a Redis of its own."""
    args.concurrency = concurrency
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        run = Run(args, Path(tmp))
        try:
            run.start_redis()
            phase = run.throughput(args.latency_ms, processes, routes=ROUTES)
        finally:
            run.redis.close()
            run.procs.stop_all()
    cpu = phase["cpu_ms_per_event"]
    return {
        "processes": processes,
        "concurrency": concurrency,
        "events_per_s": phase["events_per_s"],
        "worker_cpu_ms_per_event": cpu["workers"],
        "redis_cpu_ms_per_event": cpu["redis"],
        "simulator_cpu_ms_per_event": cpu["simulator"],
        "redis_commands_per_event": phase["redis_commands_per_event"],
        "outcomes": phase["outcomes"],
    }


def redis_ceiling(points: list[dict[str, Any]]) -> dict[str, float]:
    """Events/s one Redis core sustains: its measured CPU per command at the busiest point."""
    busiest = max(points, key=lambda p: p["events_per_s"])
    per_command_ms = busiest["redis_cpu_ms_per_event"] / busiest["redis_commands_per_event"]
    commands_per_s = 1000 / per_command_ms if per_command_ms > 0 else float("inf")
    per_event = statistics.median(p["redis_commands_per_event"] for p in points)
    return {"redis_us_per_command": 1000 * per_command_ms, "redis_commands_per_s": commands_per_s,
            "commands_per_event": per_event, "events_per_s": commands_per_s / per_event}  # fmt: skip


def summarise(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per point, each figure's median [min-max] over the runs."""
    rows = []
    for i, first in enumerate(runs[0]):
        row: dict[str, Any] = {"processes": first["processes"], "concurrency": first["concurrency"]}
        for name in ("events_per_s", "worker_cpu_ms_per_event", "redis_cpu_ms_per_event",
                     "simulator_cpu_ms_per_event", "redis_commands_per_event"):  # fmt: skip
            values = [run[i][name] for run in runs]
            row[name] = (statistics.median(values), min(values), max(values))
        rows.append(row)
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    print(f"  {'processes x threads':20} {'events/s':>22} {'worker CPU ms/ev':>20} {'redis CPU ms/ev':>18} "
          f"{'sim CPU ms/ev':>16} {'cmds/ev':>8}")  # fmt: skip

    def cell(v: tuple[float, float, float]) -> str:
        return f"{v[0]:.1f} [{v[1]:.1f}-{v[2]:.1f}]"

    for r in rows:
        print(f"  {r['processes']} x {r['concurrency']:<16} {cell(r['events_per_s']):>22} "
              f"{cell(r['worker_cpu_ms_per_event']):>20} {cell(r['redis_cpu_ms_per_event']):>18} "
              f"{cell(r['simulator_cpu_ms_per_event']):>16} {r['redis_commands_per_event'][0]:8.1f}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4], help="WORKER_CONCURRENCY values")
    parser.add_argument("--events", type=int, default=200, help="events per point")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--page-size", type=int, default=20, help="the simulator's page size")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds a point may take")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--root", type=Path, help="the tree whose workers run (default: this one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    grid = [(p, c) for c in args.concurrency for p in args.processes]
    print(f"scale: {args.runs} run(s) of {len(grid)} points, {args.events} events each, API {args.latency_ms:g} ms, "
          f"a delivery per event; load average {load_average()}", flush=True)  # fmt: skip
    runs = []
    for i in range(1, args.runs + 1):
        runs.append([point(args, p, c) for p, c in grid])
        print(f"run {i} done; load average {load_average()}", flush=True)
    rows = summarise(runs)
    print_rows(rows)
    ceiling = redis_ceiling([pt for run in runs for pt in run])
    c = ceiling
    print(f"  one Redis: {c['redis_us_per_command']:.1f} us CPU a command -> ~{c['redis_commands_per_s']:,.0f} "
          f"commands/s on one core; at {c['commands_per_event']:.1f} commands an event: "
          f"~{c['events_per_s']:,.0f} events/s")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "rows": rows, "redis": ceiling}, indent=2, default=str))


if __name__ == "__main__":
    main()
