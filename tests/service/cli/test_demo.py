"""`circleci-events demo` through the real entry point: three notifications, then nothing left running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ENTRY_POINT = Path(sys.executable).with_name("circleci-events")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.e2e
def test_demo_prints_the_three_notifications_and_stops_every_process() -> None:
    command = [str(ENTRY_POINT)] if ENTRY_POINT.exists() else [sys.executable, "-m", "service.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "REDIS_URL", "ROUTES_FILE"))}
    done = subprocess.run([*command, "demo"], env=env, capture_output=True, text=True, timeout=90)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    sections = done.stdout.split("── ")[1:]
    assert len(sections) == 3, done.stdout
    success, failure, fix = sections
    assert "transition   first_seen" in success and "succeeded on main" in success
    assert "transition   broken" in failure and "failed on main" in failure
    for test_name in ("test_new_endpoint_validates_input", "test_new_endpoint_rejects_unknown_fields"):
        assert test_name in failure
    assert "[section] *Failed tests*" in failure and "test-results/junit.xml" in failure
    assert "transition   fixed" in fix and "succeeded on main" in fix
    assert "keeps nothing across restarts" in done.stderr

    pids_line = next(line for line in done.stderr.splitlines() if "processes (pid)" in line)
    pids = [int(p) for p in re.findall(r" (\d+)(?:,|$)", pids_line)]
    assert len(pids) == 5, pids_line  # redis-server, simulator, sink, web, worker
    assert [pid for pid in pids if alive(pid)] == []
