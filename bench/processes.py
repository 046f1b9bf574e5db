"""What every benchmark shares: ports, CPU pinning, child processes, waiting, and /proc readings."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int, command: list[str]) -> list[str]:
    """`command` run on one CPU with taskset, when there is more than one CPU and taskset exists."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *command]
    return command


def redis_command(port: int, directory: Path) -> list[str]:
    """A redis-server on 127.0.0.1:`port` that writes nothing to disk."""
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory)]  # fmt: skip


def _die_with_parent() -> None:
    """Children get SIGKILL if this process dies without cleaning up (Linux prctl)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def descendants(pid: int) -> list[int]:
    """Child processes, recursively, whichever thread forked them (RQ's scheduler is a forked child of its worker)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in children.read_text().split():
                found += [int(child), *descendants(int(child))]
    return found


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


class Processes:
    """Every process a run starts, each logging to `logs/<name>.log`; `stop_all()` ends them, also after an error."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, command: list[str], *, cpu: int, env: dict[str, str], cwd: Path = ROOT
    ) -> subprocess.Popen[bytes]:
        """`command` pinned to `cpu`, run in `cwd` (`python -m` imports that tree's code: --root)."""
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                pinned(cpu, command), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        self.running.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL, as the OOM killer sends it, and then its children: RQ's forked scheduler outlives its worker."""
        children = descendants(process.pid)
        process.kill()
        process.wait(timeout=5)
        _kill_all(children)
        if process in self.running:
            self.running.remove(process)

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM (SIGKILL 5 s later), and SIGKILL for any child it leaves behind."""
        children = descendants(process.pid) if process.poll() is None else []
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        _kill_all(children)
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        for process in list(reversed(self.running)):
            self.stop(process)


def wait_until(check: Callable[[], bool], what: str, timeout: float, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.TransportError, redis.ConnectionError):
            pass
        time.sleep(step)
    raise TimeoutError(f"bench: {what} not within {timeout:.0f} s")


def wait_http(url: str, timeout: float = 20) -> None:
    """Until `url` answers at all."""
    wait_until(lambda: httpx.get(url, timeout=1) is not None, url, timeout)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (/proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
