"""`circleci-events demo` through the real entry point: the notifications, the Slack thread, nothing left running."""

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
def test_demo_prints_the_notifications_and_the_thread_and_stops_every_process() -> None:
    command = [str(ENTRY_POINT)] if ENTRY_POINT.exists() else [sys.executable, "-m", "service.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "REDIS_URL", "ROUTES_FILE"))}
    done = subprocess.run([*command, "demo"], env=env, capture_output=True, text=True, timeout=90)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    sections = done.stdout.split("── ")[1:]
    assert len(sections) == 6, done.stdout
    success, failure, still, fix, channel, approval = sections
    assert "transition   first_seen" in success and "succeeded on main" in success
    assert "transition   broken" in failure and "failed on main" in failure
    for test_name in ("test_new_endpoint_validates_input", "test_new_endpoint_rejects_unknown_fields"):
        assert test_name in failure
    assert "[section] *Failed tests*" in failure and "test-results/junit.xml" in failure
    # what broke: the docker build's failing step and the end of its log, ANSI gone; a known flake marked
    assert "[section] *Failed step* `docker build` in build-image · exit 1" in failure
    assert "error: pg_config executable not found." in failure and "\x1b[" not in failure
    assert "test_new_endpoint_rejects_unknown_fields · 🟡 known flaky, 7\u00d7 in 14 days" in failure
    assert "transition   still_failing" in still
    assert "transition   fixed" in fix and "succeeded on main" in fix
    # the Slack app's channel: one root, edited twice, mentioning the author and the trigger actor
    assert channel.count("(edited 2 times)") == 1 and channel.count("broke main") == 1
    assert "@author (commit) · @grace (triggered the pipeline)" in channel
    assert "│   ❌ still failing · pipeline #132 · 2 failed tests" in channel
    assert "│   ✅ *fixed* in #133 by Author Name after 2 failed pipelines" in channel
    assert "keeps nothing across restarts" in done.stderr
    # a deploy waiting on an approval job, approved from its Slack message: CircleCI asked once
    assert "deploy waits for approval: hold-for-deploy on main" in approval
    assert "pipeline triggered by octocat" in approval
    assert "CircleCI was asked once" in approval and "✅ Approved by @ada at " in approval

    pids_line = next(line for line in done.stderr.splitlines() if "processes (pid)" in line)
    pids = [int(p) for p in re.findall(r" (\d+)(?:,|$)", pids_line)]
    assert len(pids) == 6, pids_line  # redis-server, simulator, sink, slack, web, worker
    assert [pid for pid in pids if alive(pid)] == []
