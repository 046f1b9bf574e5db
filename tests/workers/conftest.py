"""Fixtures for the CircleCI client tests: a client over httpx.MockTransport and a fake clock."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from workers.circleci.client import CircleCIClient

TOKEN = "CCIPAT_do-not-leak-this-token-0123456789"
API_URL = "https://circleci.test/api/v2"
FIXTURES = Path(__file__).parent.parent / "fixtures"


class FakeClock:
    """A monotonic clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(clock: FakeClock) -> Callable[..., CircleCIClient]:
    """Build a client whose every request goes to `handler(request) -> httpx.Response`."""

    def make(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> CircleCIClient:
        options: dict[str, Any] = {
            "base_url": API_URL,
            "token": TOKEN,
            "transport": httpx.MockTransport(handler),
            "sleep": clock.sleep,
            "clock": clock,
            "rng": random.Random(7),
        }
        options.update(kwargs)
        return CircleCIClient(**options)

    return make


def api_fixture(name: str) -> Any:
    return json.loads((FIXTURES / "api" / name).read_text())


SIM_TOKEN = "sim-token-for-tests"


@pytest.fixture
def live_simulator(clock: FakeClock):
    """The simulator (example dataset, pages of 2) in a real uvicorn server, and a client to it.

    Yields (simulator control object, base URL, client); the client sleeps on the fake clock.
    """
    from service.simulators.circleci import create_simulator
    from tests.server import running

    app = create_simulator(page_size=2, token=SIM_TOKEN)
    with running(app) as base_url:
        client = CircleCIClient(
            base_url=f"{base_url}/api/v2",
            token=SIM_TOKEN,
            sleep=clock.sleep,
            clock=clock,
            rng=random.Random(7),
        )
        with client:
            yield app.state.simulator, base_url, client


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    """A client of the session's real Redis (emptied before each test)."""
    client = Redis.from_url(redis_url)
    yield client
    client.close()
