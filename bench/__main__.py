"""`make bench`: every performance figure in one table, each next to its target, and the same as JSON.

    python -m bench [--quick] [--runs 3] [--only PART ...] [--skip-recovery]
                    [--recovery-kills 3] [--recovery-timeout 900] [--json bench/results/latest.json]

Each run measures, on real processes started for it (PART names the part for --only):

    ingest      bench.ingest: signed deliveries at c=64 against `web`, and a no-op ceiling (same run)
    workers     bench.worker: enrichment throughput (1 and 2 workers at 20 ms, 1 at 0 ms, and at
                0 ms with a delivery per event, against RQ's own no-op job rate on this machine),
                webhook to enriched event, API calls per event, worker RSS while working
    sink        bench.e2e: webhook POST until the sink holds the Slack message, at 20 ms, against
                the floor measured alongside (bench.floor: the same 3 API round trips, sink and
                one Redis hop with no product code), the log
                tail's API calls per failed job; Redis commands per event (all processes) and idle
    recovery    bench.recovery: two workers SIGKILLed while they enrich six events (API at 3 s),
                one fresh worker, until the six messages arrive; default worker settings

and the table gives the median [min-max] over the runs (for recovery, over every kill of every
run; a run meets its target when its median and its max do). The machine is shared: the load
average before and after every run is printed and kept in the JSON. `--quick` is a smoke run
(one short run of each, seconds) that checks the benchmark works; its figures mean little.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import e2e, ingest, recovery, worker
from bench.processes import ROOT, load_average

RESULTS = ROOT / "bench" / "results"
INGEST_RATIO, INGEST_P99_MS = 0.30, 50.0
SINK_FLOOR_RATIO, SINK_P99_RATIO = 1.15, 1.5
REDIS_COMMANDS_PER_EVENT = 45.0
TOP_COMMANDS = 15
RECOVERY_P50_S, RECOVERY_MAX_S = 30.0, 60.0
PARTS = ("ingest", "workers", "sink", "recovery")
NAIVE_CALLS = 1 + 3 * worker.JOBS
# bench.worker's figure names, as this table shows them
WORKER_NAMES = {
    "e2e p50": "webhook -> enriched p50",
    "e2e p99": "webhook -> enriched p99",
    "worker RSS max": "worker RSS under load",
}


def fig(value: float, unit: str, target: str, ratio: float | None, met: bool | None) -> dict[str, Any]:
    return {"value": value, "unit": unit, "target": target, "ratio": ratio, "met": met}


def ingest_figures(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rec, ceil = r["receiver"], r["ceiling"]
    rps = r["accepted"] / (rec["duration_us"] / 1e6)
    p50, p99, noop_p50 = rec["p50_us"] / 1000, rec["p99_us"] / 1000, ceil["p50_us"] / 1000
    return {
        "ingest events/s": fig(rps, "ev/s", f">= {INGEST_RATIO} x noop ceiling {ceil['rps']:,.0f}/s",
                               rps / ceil["rps"], rps / ceil["rps"] >= INGEST_RATIO and r["queued"] >= r["accepted"]),
        "ingest p50": fig(p50, "ms", f"noop ceiling's p50 {noop_p50:.1f} ms (ratio p50/noop)", p50 / noop_p50, None),
        "ingest p99": fig(p99, "ms", f"< {INGEST_P99_MS:.0f} ms", p99 / INGEST_P99_MS, p99 < INGEST_P99_MS),
        "web RSS under load": fig(rec["rss_mb"], "MB", "none set (reported)", None, None),
    }  # fmt: skip


def sink_figures(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    p50, p99, commands = r["p50_ms"], r["p99_ms"], r["redis"]
    floor50, floor99 = r["floor_p50_ms"], r["floor_p99_ms"]
    per_event = commands["commands_per_event"]
    text = f"the floor measured alongside ({r['critical_calls']} API round trips x {r['latency_ms']:g} ms, no product)"
    return {
        "webhook -> sink p50": fig(p50, "ms", f"<= {SINK_FLOOR_RATIO} x {text}'s p50", p50 / floor50,
                                   p50 / floor50 <= SINK_FLOOR_RATIO),
        "webhook -> sink p99": fig(p99, "ms", f"<= {SINK_P99_RATIO} x the floor's p99", p99 / floor99,
                                   p99 / floor99 <= SINK_P99_RATIO),
        "floor p50 (no product)": fig(floor50, "ms", "reported", None, None),
        "floor p99 (no product)": fig(floor99, "ms", "reported", None, None),
        "Redis commands/event": fig(per_event, "cmds", f"<= {REDIS_COMMANDS_PER_EVENT:.0f} (all processes)",
                                    per_event / REDIS_COMMANDS_PER_EVENT, per_event <= REDIS_COMMANDS_PER_EVENT),
        "idle Redis commands/s": fig(commands["idle_per_s"], "cmds/s", "none set (reported)", None, None),
        "log tail calls/failed job": fig(r["tail_calls_per_failed_job"], "calls",
                                         f"{worker.TAIL_CALLS} (v1.1 job + output)",
                                         r["tail_calls_per_failed_job"] / worker.TAIL_CALLS,
                                         r["tail_calls_per_failed_job"] <= worker.TAIL_CALLS),
    }  # fmt: skip


def api_calls_figure(worker_figs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    calls = worker_figs["API calls/event"]["value"]
    return {
        "API calls/event vs naive": fig(calls, "calls", f"< naive 1 + 3 x {worker.JOBS} = {NAIVE_CALLS}",
                                        calls / NAIVE_CALLS, calls < NAIVE_CALLS),
    }  # fmt: skip


def recovery_figures(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    seconds = r["seconds"]
    p50, worst = statistics.median(seconds), max(seconds)
    met = p50 <= RECOVERY_P50_S and worst <= RECOVERY_MAX_S and not any(k["capped"] for k in r["kills"])
    figure = fig(p50, "s", f"p50 <= {RECOVERY_P50_S:.0f} s, max <= {RECOVERY_MAX_S:.0f} s", p50 / RECOVERY_P50_S, met)
    return {"recovery after SIGKILL": figure | {"samples": seconds}}


def one_run(args: argparse.Namespace, requests_file: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    raw: dict[str, Any] = {"load_before": load_average()}
    figs: dict[str, dict[str, Any]] = {}
    if "ingest" in args.parts:
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            raw["ingest"] = ingest.one_run(Path(tmp), requests_file, args.duration, args.connections)
        figs |= ingest_figures(raw["ingest"])
    if "workers" in args.parts:
        with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
            raw["worker"] = worker.Run(args, Path(tmp)).execute()
        worker_figs = {WORKER_NAMES.get(k, k): v for k, v in worker.figures(raw["worker"], args).items()}
        figs |= worker_figs | api_calls_figure(worker_figs)
    if "sink" in args.parts:
        with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
            raw["sink"] = e2e.measure(args, Path(tmp))
        figs |= sink_figures(raw["sink"])
    if "recovery" in args.parts:
        with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
            raw["recovery"] = recovery.measure(args, Path(tmp))
        figs |= recovery_figures(raw["recovery"])
    raw["load_after"] = load_average()
    return raw, figs


def summarize(table: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    summary = {}
    for name, first in table[0].items():
        # a figure with `samples` (recovery: one per kill) pools them over the runs
        values = [v for figs in table for v in figs[name].get("samples", [figs[name]["value"]])]
        ratios = [figs[name]["ratio"] for figs in table if figs[name]["ratio"] is not None]
        mets = [figs[name]["met"] for figs in table if figs[name]["met"] is not None]
        summary[name] = {
            "median": statistics.median(values), "min": min(values), "max": max(values), "unit": first["unit"],
            "target": first["target"], "ratio": statistics.median(ratios) if ratios else None,
            "met_runs": f"{sum(mets)}/{len(mets)}" if mets else None,
        }  # fmt: skip
    return summary


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.1f}"


def print_table(summary: dict[str, dict[str, Any]]) -> None:
    rows = [("figure", "measured median [min-max]", "target", "ratio", "met")]
    for name, s in summary.items():
        measured = f"{_number(s['median'])} [{_number(s['min'])}-{_number(s['max'])}] {s['unit']}"
        ratio = "-" if s["ratio"] is None else f"{s['ratio']:.2f}"
        rows.append((name, measured, s["target"], ratio, s["met_runs"] or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def print_commands(measured: list[dict[str, Any]]) -> None:
    """Redis's commands per event and per idle second by command, the median over the runs, the most first."""
    for key, what in (("by_command", "per event"), ("idle_by_command", "per idle second")):
        names = {name for m in measured for name in m[key]}
        medians = {name: statistics.median(m[key].get(name, 0.0) for m in measured) for name in names}
        top = sorted(medians.items(), key=lambda item: -item[1])[:TOP_COMMANDS]
        print(f"Redis commands {what} (top {TOP_COMMANDS}): " + ", ".join(f"{n} {v:.1f}" for n, v in top))


def print_kills(measured: list[dict[str, Any]]) -> None:
    kills = [k for m in measured for k in m["kills"]]
    each = ", ".join(f"{k['seconds']:.1f}{' (capped)' if k['capped'] else ''}" for k in kills)
    m = measured[0]
    print(
        f"recovery after SIGKILL, per kill: {each} s ({m['events']} events; {m['workers_killed']} workers of "
        f"{m['concurrency']} threads killed; API {m['api_seconds']:g} s a call; floor {m['floor_s']:.0f} s)"
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: one tiny run of each part")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="where the JSON goes (default bench/results/latest.json)")
    parser.add_argument(
        "--only", nargs="+", choices=PARTS, metavar="PART", help=f"run these parts alone ({', '.join(PARTS)})"
    )
    parser.add_argument("--skip-recovery", action="store_true", help="all parts but recovery (minutes per kill)")
    parser.add_argument("--root", type=Path, help="the tree whose web and workers run (default: this one)")
    parser.add_argument("--recovery-kills", type=int, help="SIGKILLs per run (default 3; --quick 1)")
    parser.add_argument(
        "--recovery-timeout",
        type=float,
        default=900.0,
        help="seconds a kill may take to recover; a slower one counts as this, not met",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.parts = [p for p in (args.only or PARTS) if not (args.skip_recovery and p == "recovery")]
    if not args.parts:
        parser.error("--skip-recovery leaves no part to run")
    args.recovery_kills = args.recovery_kills or (1 if quick else 3)
    # what bench.ingest, bench.worker and bench.e2e read, at their own defaults unless --quick
    args.runs = 1 if quick else args.runs
    args.duration, args.connections, args.requests = (1, 64, 2_000) if quick else (8, 64, 80_000)
    args.events, args.e2e_events, args.sink_events = (10, 5, 10) if quick else (200, 50, 100)
    args.idle_seconds = 5.0
    args.latency_ms, args.page_size, args.timeout = 20.0, 20, 180.0
    args.concurrency, args.noop_jobs = 4, (50 if quick else 500)
    args.json = args.json or RESULTS / ("quick.json" if quick else "latest.json")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    for tool, package in (("wrk", "wrk"), ("redis-server", "redis-server"), ("taskset", "util-linux")):
        if not shutil.which(tool) and (tool != "wrk" or "ingest" in args.parts):
            raise SystemExit(f"bench: {tool} is not installed: apt-get install {package}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so every `finally` stops its processes
    print(f"bench: {args.runs} run(s) of {', '.join(args.parts)}{' (quick smoke run)' if args.quick else ''}; "
          f"{os.cpu_count()} CPUs; "
          f"load average (1/5/15 min) {load_average()}", flush=True)  # fmt: skip
    runs, table = [], []
    with tempfile.TemporaryDirectory(prefix="bench-requests-") as tmp:
        requests_file = Path(tmp) / "requests.tsv"
        if "ingest" in args.parts:
            ingest.make_requests(requests_file, args.requests)
        for i in range(1, args.runs + 1):
            raw, figs = one_run(args, requests_file)
            print(f"run {i}: load average before {raw['load_before']}, after {raw['load_after']}", flush=True)
            runs.append(raw)
            table.append(figs)
    summary = summarize(table)
    print_table(summary)
    if "sink" in args.parts:
        print_commands([r["sink"]["redis"] for r in runs])
    if "recovery" in args.parts:
        print_kills([r["recovery"] for r in runs])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    record = {"args": {k: str(v) for k, v in vars(args).items()}, "cpus": os.cpu_count(),
              "load_average": [[r["load_before"], r["load_after"]] for r in runs],
              "summary": summary, "figures": table, "runs": runs}  # fmt: skip
    args.json.write_text(json.dumps(record, indent=2, default=str))
    print(f"bench: written to {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")


if __name__ == "__main__":
    main()
