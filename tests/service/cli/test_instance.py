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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from config.settings import Settings
from service.cli import instance
from tests.service.cli.conftest import assert_one_clear_line, run_cli


def settings(tmp_path: Path) -> Settings:
    return Settings.from_environ({"XDG_RUNTIME_DIR": str(tmp_path)})


def test_a_record_is_private_and_found_while_its_process_lives(tmp_path: Path) -> None:
    path = instance.record(settings(tmp_path), redis_url="unix:///r.sock", webhook_url="http://h/w", secret="s3")
    assert path == tmp_path / "circleci-events" / "instances" / f"{os.getpid()}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    found = instance.choose(settings(tmp_path))
    assert found is not None and (found.pid, found.redis_url, found.secret) == (os.getpid(), "unix:///r.sock", "s3")
    assert "s3" not in found.describe() + found.summary()
    instance.forget(settings(tmp_path))
    assert not path.exists() and instance.choose(settings(tmp_path)) is None


def test_a_record_whose_process_is_gone_is_deleted(tmp_path: Path) -> None:
    path = instance.record(settings(tmp_path), redis_url="redis://:pw@h/0", webhook_url="http://h/w", secret=None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = path.with_name(f"{int(dead.stdout)}.json")
    path.rename(stale)
    stale.write_text(json.dumps({**json.loads(stale.read_text()), "pid": int(dead.stdout)}))
    broken = path.with_name("1.json")
    broken.write_text("{not json")
    assert instance.live(settings(tmp_path)) == []
    assert not stale.exists() and not broken.exists()


def test_a_reused_pid_is_not_taken_for_the_run_that_had_it(tmp_path: Path) -> None:
    path = instance.record(settings(tmp_path), redis_url="unix:///r.sock", webhook_url="http://h/w", secret=None)
    path.write_text(json.dumps({**json.loads(path.read_text()), "process_start": "1"}))  # another process's start
    assert instance.live(settings(tmp_path)) == [] and not path.exists()


def test_describe_shows_no_redis_password(tmp_path: Path) -> None:
    instance.record(settings(tmp_path), redis_url="redis://:hunter2@h:6379/0", webhook_url="http://h/w", secret=None)
    found = instance.choose(settings(tmp_path))
    assert found is not None and "hunter2" not in found.describe() + found.summary()
    assert "h:6379/0" in found.describe()


RECORDING_RUN = (
    "import sys, time; from config.settings import Settings; from service.cli import instance; "
    "instance.record(Settings.from_environ(), redis_url=sys.argv[1], webhook_url=sys.argv[2], secret='s'); "
    "print('recorded', flush=True); time.sleep(120)"
)


@contextmanager
def recording_run(redis_url: str, webhook_url: str, shell: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A process that records itself as `run` does, and lives until the test ends it."""
    process = subprocess.Popen(
        [sys.executable, "-c", RECORDING_RUN, redis_url, webhook_url],
        env={**os.environ, **shell},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "recorded\n"
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.mark.integration
def test_two_runs_keep_two_records_and_commands_never_guess_between_them(tmp_path: Path, redis_url: str) -> None:
    shell = {"XDG_RUNTIME_DIR": str(tmp_path)}
    nowhere = "redis://127.0.0.1:1/0"
    with (
        recording_run(redis_url, "http://127.0.0.1:8001/webhooks/circleci", shell) as first,
        recording_run(nowhere, "http://127.0.0.1:8002/webhooks/circleci", shell) as second,
    ):
        for args in (("events", "list"), ("dead-letters", "list"), ("send-test-event",)):
            unclear = run_cli(*args, env=shell)
            assert_one_clear_line(unclear, 2)
            assert "2 `circleci-events run` are running on this machine" in unclear.err
            assert f"pid {first.pid} (webhooks at http://127.0.0.1:8001" in unclear.err
            assert f"pid {second.pid} (webhooks at http://127.0.0.1:8002" in unclear.err
            assert "--instance PID" in unclear.err
        assert [i.pid for i in instance.live(settings(tmp_path))] == [first.pid, second.pid]
        chosen = run_cli("events", "list", "--instance", str(first.pid), env=shell)
        assert chosen.code == 0 and f"using the instance `run` started (pid {first.pid}" in chosen.err
        wrong = run_cli("events", "list", "--instance", "1", env=shell)
        assert_one_clear_line(wrong, 2)
        assert "no `circleci-events run` with pid 1 is running" in wrong.err
        second.kill()
        second.wait()
        only = run_cli("events", "list", env=shell)
        assert only.code == 0 and f"using the instance `run` started (pid {first.pid}" in only.err
        assert [p.name for p in (tmp_path / "circleci-events" / "instances").iterdir()] == [f"{first.pid}.json"]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


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
        deadline = time.monotonic() + 60
        # recorded (before its web starts), its Redis answering, and its web listening
        while (
            instance.choose(settings(tmp_path)) is None
            or run_cli("events", "list", env=shell).code != 0
            or not listening(port)
        ):
            assert time.monotonic() < deadline and run.poll() is None, "run did not record itself or start its web"
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
    assert instance.live(settings(tmp_path)) == []
    after = run_cli("events", "list", env=shell)
    assert_one_clear_line(after, 2)
    assert "REDIS_URL is not set and no `circleci-events run` (make run) is running here" in after.err
    nowhere = run_cli("send-test-event", env=shell)
    assert_one_clear_line(nowhere, 2)
    assert "--url is required" in nowhere.err
