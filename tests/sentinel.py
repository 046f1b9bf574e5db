"""A real Redis Sentinel (`redis-server --sentinel`) on a free port, watching a RedisServer of the tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.certificates import ServerTLS
from tests.conftest import RedisServer, wait_for_server

MASTER = "mymaster"


class SentinelServer(RedisServer):
    """One sentinel monitoring `master` under the name MASTER (quorum 1: it alone decides a failover).

    With `tls`, the sentinel listens on TLS only and reaches the master over TLS (`tls-replication`).
    """

    def __init__(
        self,
        directory: Path,
        master: RedisServer,
        *,
        password: str | None = None,
        master_password: str | None = None,
        tls: ServerTLS | None = None,
    ) -> None:
        super().__init__(directory, tls=tls, password=password)  # the sentinel's own password (requirepass)
        self.master = master
        self.master_password = master_password  # what it sends the master and its replicas

    def config(self) -> str:
        listen = [f"port {self.port}"]
        if self.tls is not None:
            tls = [f"{name} {value}" for name, value in self.tls.server_config().items()]
            listen = ["port 0", f"tls-port {self.port}", "tls-replication yes", *tls]
        lines = [
            "bind 127.0.0.1",
            *listen,
            f"dir {self.directory}",
            f"logfile {self.directory / 'sentinel.log'}",
            f"sentinel monitor {MASTER} 127.0.0.1 {self.master.port} 1",
            f"sentinel down-after-milliseconds {MASTER} 1000",
            f"sentinel failover-timeout {MASTER} 5000",
        ]
        if self.password is not None:
            lines.append(f"requirepass {self.password}")
        if self.master_password is not None:
            lines.append(f"sentinel auth-pass {MASTER} {self.master_password}")
        return "\n".join(lines) + "\n"

    def master_port(self) -> int | None:
        """The port of the server this sentinel calls the master once a failover is over (as redis-py
        reads it: SENTINEL MASTERS, up), or None while it is down or being replaced."""
        client = self.client()
        try:
            state = client.sentinel_masters().get(MASTER)
        finally:
            client.close()
        if not state or not state["is_master"] or state["is_sdown"] or state["is_odown"]:
            return None
        return int(state["port"])

    def start(self) -> SentinelServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: apt-get install redis-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"  # Sentinel rewrites its file: one of its own
        config.write_text(self.config())
        self.process = subprocess.Popen([binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL)
        client = self.client()
        wait_for_server(
            lambda: client.sentinel_get_master_addr_by_name(MASTER),
            self.process,
            f"the sentinel on port {self.port}",
            self.directory / "sentinel.log",
        )
        client.close()
        return self
