"""Run an ASGI app in a real uvicorn server on 127.0.0.1, in a background thread.

with running(app) as base_url:
    httpx.get(f"{base_url}/me")
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def running(app: Any, *, lifespan: str = "auto", startup_timeout: float = 10.0, **tls: Any) -> Iterator[str]:
    """Serve `app` on a free port; yields the base URL once it accepts, stops it on exit.
    `tls`: uvicorn's ssl_certfile and ssl_keyfile, for https."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        log_config=None,  # leave the process's logging (and structlog capture) alone
        log_level="warning",
        ws="none",
        access_log=False,
        **tls,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"{'https' if tls else 'http'}://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
