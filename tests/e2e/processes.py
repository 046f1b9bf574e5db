"""Real processes for end-to-end tests: `circleci-events web` and `worker`, started as users do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from tests.waiting import TIMEOUT, wait_until


class Service:
    """One child process whose combined output goes to a log file the test can read."""

    def __init__(self, command: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def wait_http(self, url: str, timeout: float = TIMEOUT) -> None:
        def answers() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.command} exited with {self.process.returncode}:\n{self.output()}")
            try:
                answer = httpx.get(url, timeout=1.0)
            except httpx.TransportError:
                return False
            # a stranger that took the port first answers too (a sink's 404): only a 2xx is ours
            return answer.is_success

        wait_until(answers, f"{url} answering", timeout, details=self.output)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.output().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines

    def wait_for_log(self, match: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((line for line in self.log_lines() if match(line)), None)

        return wait_until(found, "a matching log line", timeout, details=lambda: self.output()[-4000:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def stop_all(services: Iterable[Service], timeout: float = 15.0) -> None:
    """Stop every service at once (each its own grace, in parallel): a test's teardown waits for
    the slowest, not for the sum."""
    running = [s for s in services if s.process is not None and s.process.poll() is None]
    for service in running:
        assert service.process is not None
        service.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for service in running:
        assert service.process is not None
        try:
            service.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()
    for service in services:
        service.stop()  # closes its log; each has exited by now


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *args]
