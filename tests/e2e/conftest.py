from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SECRET, free_port
from tests.e2e.processes import Service, cli, stop_all
from tests.reliability.conftest import scenario  # noqa: F401  (the whole system, for tests here too)


def service_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "CIRCLECI_WEBHOOK_SECRETS": SECRET,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "HOST": "127.0.0.1",
        **extra,
    }


@pytest.fixture
def web_factory(tmp_path: Path) -> Iterator:
    started: list[Service] = []

    def start(redis_url: str, **extra: str) -> tuple[Service, str]:
        for _ in range(3):  # a free port may be taken by another test's process before the web binds it
            port = free_port()
            web = Service(
                cli("web"), env=service_env(redis_url, PORT=str(port), **extra), log_path=tmp_path / f"web-{port}.log"
            )
            web.start()
            base = f"http://127.0.0.1:{port}"
            try:
                web.wait_http(base + "/healthz")
            except AssertionError:
                if "the port is in use" not in web.output():
                    raise
                continue
            started.append(web)
            return web, base
        raise AssertionError("three free ports in a row were taken before the web could listen")

    yield start
    stop_all(started)


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator:
    started: list[Service] = []

    def start(redis_url: str, **extra: str) -> Service:
        worker = Service(
            cli("worker"), env=service_env(redis_url, **extra), log_path=tmp_path / f"worker-{len(started)}.log"
        )
        started.append(worker.start())
        return worker

    yield start
    stop_all(started)
