"""The running instance: `run` records how to reach it; commands in another shell find it and say so."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.settings import Settings
from service.cli import instance
from tests.service.cli.conftest import assert_one_clear_line, run_cli


def settings(tmp_path: Path) -> Settings:
    return Settings.from_environ({"XDG_RUNTIME_DIR": str(tmp_path)})


def test_a_record_is_private_and_found_while_its_process_lives(tmp_path: Path) -> None:
    path = instance.record(settings(tmp_path), redis_url="unix:///r.sock", webhook_url="http://h/w", secret="s3")
    assert path == tmp_path / "circleci-events" / "instance.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    found = instance.find(settings(tmp_path))
    assert found is not None and (found.pid, found.redis_url, found.secret) == (os.getpid(), "unix:///r.sock", "s3")
    assert "s3" not in found.describe()
    instance.forget(settings(tmp_path))
    assert not path.exists() and instance.find(settings(tmp_path)) is None


def test_a_record_whose_process_is_gone_is_ignored(tmp_path: Path) -> None:
    path = instance.record(settings(tmp_path), redis_url="redis://:pw@h/0", webhook_url="http://h/w", secret=None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path.write_text(json.dumps({**json.loads(path.read_text()), "pid": int(dead.stdout)}))
    assert instance.find(settings(tmp_path)) is None
    path.write_text("{not json")
    assert instance.find(settings(tmp_path)) is None


def test_describe_shows_no_redis_password(tmp_path: Path) -> None:
    instance.record(settings(tmp_path), redis_url="redis://:hunter2@h:6379/0", webhook_url="http://h/w", secret=None)
    found = instance.find(settings(tmp_path))
    assert found is not None and "hunter2" not in found.describe() and "h:6379/0" in found.describe()


@pytest.mark.e2e
def test_commands_in_a_fresh_shell_find_the_running_run(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    shell = {"XDG_RUNTIME_DIR": str(tmp_path), "LOG_FORMAT": "json"}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "REDIS_URL", "ROUTES_FILE"))}
    run = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "run"],
        env={
            **base,
            **shell,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "CIRCLECI_WEBHOOK_SECRETS": "dev-webhook-secret",
            "WORKERS": "1",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while instance.find(settings(tmp_path)) is None or run_cli("events", "list", env=shell).code != 0:
            assert time.monotonic() < deadline and run.poll() is None, "run did not record itself"
            time.sleep(0.2)
        sent = run_cli("send-test-event", "--status", "failed", "--json", env=shell)
        assert sent.code == 0, sent.err
        assert f"sending to the instance `run` started (pid {run.pid}" in sent.err
        event_id = json.loads(sent.out)["sent_event_id"]
        deadline = time.monotonic() + 20
        while event_id not in (listed := run_cli("events", "list", env=shell)).out:
            assert time.monotonic() < deadline, listed
            time.sleep(0.2)
        assert f"using the instance `run` started (pid {run.pid}" in listed.err
        assert "dev-webhook-secret" not in sent.err + listed.err
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
    assert instance.find(settings(tmp_path)) is None
    after = run_cli("events", "list", env=shell)
    assert_one_clear_line(after, 2)
    assert "REDIS_URL is not set and no `circleci-events run` (make run) is running here" in after.err
    nowhere = run_cli("send-test-event", env=shell)
    assert_one_clear_line(nowhere, 2)
    assert "--url is required" in nowhere.err
