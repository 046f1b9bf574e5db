"""Issue 23's first-round probes, before and after: what a commit, a payload or a stranger can do.

    python -m bench.probes_first [--root DIR] [--runs 3]

`--root` is a source tree to run (default: this one); `git archive REV | tar -x -C DIR` gives an
older one, run with this venv. Each run starts its processes afresh (bench/probes_commits.py:
mentions, co-authors, a big integer; bench/probes_strangers.py: rate limit, connections, the
worker's HTTP port, a short secret) and the report gives each figure's median [min-max] over the
runs, or its distinct values when it is text. Every target is 127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import probes_commits, probes_strangers
from bench.processes import ROOT, load_average

Probe = Callable[[Path, Path], dict[str, Any]]
PROBES: dict[str, Probe] = {
    "commits": probes_commits.one_run,
    "rate limit": probes_strangers.rate_limit,
    "connections": probes_strangers.connections,
    "worker port": probes_strangers.worker_port,
    "short secret": probes_strangers.short_secret,
}


def one_run(root: Path, only: list[str]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, probe in PROBES.items():
        if only and name not in only:
            continue
        with tempfile.TemporaryDirectory(prefix="bench-probes-first-") as tmp:
            figures |= probe(root, Path(tmp))
    return figures


def summary(values: list[Any]) -> str:
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        low, high = min(values), max(values)
        return f"{statistics.median(values):g}" + ("" if low == high else f" [{low:g}-{high:g}]")
    distinct = list(dict.fromkeys(str(v) for v in values))
    return " | ".join(distinct)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.probes_first", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the source tree to run (default: this one)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", action="append", default=[], choices=list(PROBES), help="one probe (repeatable)")
    args = parser.parse_args()
    print(f"bench.probes_first: {args.runs} run(s) of {args.root}; load average {load_average()}", flush=True)
    runs = []
    for i in range(args.runs):
        runs.append(one_run(args.root.resolve(), args.only))
        print(f"run {i + 1}: load average {load_average()}", flush=True)
    for name in runs[0]:
        print(f"{name:55} {summary([run.get(name) for run in runs])}")


if __name__ == "__main__":
    main()
