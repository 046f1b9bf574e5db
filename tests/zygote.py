"""`python -m service.cli ARGS` as a real process, forked from an interpreter that has already
imported the command line.

Each command still runs in a process of its own — its own pid, environment, working directory,
stdin, stdout, stderr and exit code, its atexit handlers and threads ended as the interpreter
ends them — but it does not import Click, redis-py, httpx, structlog, Starlette and the product
again: those imports were ~0.6 CPU-seconds of every one of the few hundred commands the suite
runs, the largest part of its CPU time (issue 21, item 2).

The zygote is one single-threaded process per pytest process (forking a process with threads,
as pytest's own is, is unsafe). For each command it forks a keeper, which forks the command and
reports its pid, then its exit code, over the connection it was given. What the environment
decides at interpreter start is redone after the fork: `PYTHONPATH` entries go to the front of
`sys.path`, `TZ` is applied. What cannot be redone (`PYTHONHASHSEED`, `-X` options) is the
zygote's: commands that depend on those are started as plain subprocesses.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

PROGRAM = "python -m service.cli"  # what Click names the program in usage lines, as for `-m`

_ZYGOTE = r"""
import importlib, importlib.util, json, os, signal, socket, sys, time

from service.cli import COMMANDS, main

ARGV0 = importlib.util.find_spec("service.cli.__main__").origin  # sys.argv[0] under `python -m`

for target in sorted(set(COMMANDS.values())):
    importlib.import_module(target.split(":")[0])
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sys.argv[1])
server.listen(128)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the kernel
sys.stdout.write("ready\n")
sys.stdout.flush()
while True:
    conn, _ = server.accept()
    if os.fork():
        conn.close()
        continue
    # the keeper: reads the request, forks the command, reports its pid and exit code
    server.close()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    message, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    while chunk := conn.recv(1 << 16):
        message += chunk
    request = json.loads(message)
    pid = os.fork()
    if pid == 0:  # the command
        conn.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:0] = [os.path.abspath(p) for p in extra]
        time.tzset()
        sys.argv = [ARGV0, *request["args"]]
        main.main(args=request["args"], prog_name=request["program"])  # ends in SystemExit, as `-m` would
        raise SystemExit(0)
    for fd in fds:
        os.close(fd)
    conn.sendall(f"{pid}\n".encode())
    _, status = os.waitpid(pid, 0)
    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
    os._exit(0)
"""

_lock = threading.Lock()
_zygote: tuple[subprocess.Popen[str], str] | None = None


def _start() -> str:
    """The zygote's socket path, starting it on first use (in this process's environment)."""
    global _zygote
    with _lock:
        if _zygote is not None and _zygote[0].poll() is None:
            return _zygote[1]
        path = os.path.join(tempfile.mkdtemp(prefix="cie-zygote-"), "socket")
        process = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE, path],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[1],
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the command-line zygote did not start (exit code {process.wait()})")
        _zygote = (process, path)
        atexit.register(process.kill)
        return path


def run(
    args: list[str], *, env: dict[str, str], input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Like `subprocess.run([python, -m, service.cli, *args], env=env, capture_output=True,
    text=True, input=input, timeout=timeout)`."""
    path = _start()
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        stdin.write((input or "").encode())
        stdin.seek(0)
        request = {"args": args, "env": env, "cwd": os.getcwd(), "program": PROGRAM}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(path)
            socket.send_fds(conn, [json.dumps(request).encode()], [stdin.fileno(), stdout.fileno(), stderr.fileno()])
            conn.shutdown(socket.SHUT_WR)
            answer = b""
            try:
                while chunk := conn.recv(64):
                    answer += chunk
            except TimeoutError:
                if answer:
                    os.kill(int(answer.split(b"\n")[0]), signal.SIGKILL)
                raise subprocess.TimeoutExpired([PROGRAM, *args], timeout) from None
        lines = answer.split()
        if len(lines) != 2:
            raise RuntimeError(f"the command-line zygote answered {answer!r} for {args}")

        def text(file: tempfile._TemporaryFileWrapper[bytes]) -> str:
            file.seek(0)  # universal newlines, as text=True reads a pipe
            return file.read().decode().replace("\r\n", "\n").replace("\r", "\n")

        return subprocess.CompletedProcess([PROGRAM, *args], int(lines[1]), text(stdout), text(stderr))
