"""Fixtures for the CircleCI client tests: a client over httpx.MockTransport and a fake clock
(it moves only when the client sleeps)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from tests.clock import FakeClock
from workers.circleci.client import CircleCIClient

TOKEN = "CCIPAT_do-not-leak-this-token-0123456789"
API_URL = "https://circleci.test/api/v2"
FIXTURES = Path(__file__).parent.parent / "fixtures"


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
