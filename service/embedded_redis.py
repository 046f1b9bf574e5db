"""A throw-away redis-server for `circleci-events run` when REDIS_URL is not set.

It listens on a unix socket in a temporary folder and keeps nothing on disk: everything
queued is gone when it stops.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from config.errors import ConfigurationError


class EmbeddedRedis:
    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="circleci-events-redis-"))
        self.socket = self._dir / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigurationError(
                "no redis-server on PATH: install it (apt-get install redis-server) or set REDIS_URL"
            )
        self._process = subprocess.Popen(
            [
                binary,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._dir),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the parent, which stops Redis last
        )
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ConfigurationError(f"the embedded redis-server did not start within {timeout:.0f} s")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        shutil.rmtree(self._dir, ignore_errors=True)
