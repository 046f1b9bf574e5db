"""Liveness, readiness and the scrape: /readyz and /metrics ask Redis, so a client's calls are limited."""

from __future__ import annotations

import fakeredis
import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from config.settings import Settings
from service.app import create_app
from service.health import PROBE_BURST, PROBE_PER_SECOND
from tests.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def probed(settings: Settings, clock: FakeClock) -> TestClient:
    app = create_app(settings, redis=fakeredis.FakeAsyncRedis(), clock=clock)
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("path", ["/readyz", "/metrics"])
def test_a_flood_of_redis_backed_probes_from_one_address_gets_429(
    probed: TestClient, clock: FakeClock, path: str
) -> None:
    with probed, capture_logs() as logs:
        statuses = [probed.get(path).status_code for _ in range(PROBE_BURST + 30)]
        refused = probed.get(path)
        assert statuses.count(200) == PROBE_BURST and statuses.count(429) == 30
        assert refused.json()["error_code"] == "rate_limited" and path in refused.json()["message"]
        assert int(refused.headers["retry-after"]) >= 1
        clock.advance(1 / PROBE_PER_SECOND)
        assert probed.get(path).status_code == 200  # the bucket refills with time, not with requests
        assert probed.get("/healthz").status_code == 200  # liveness costs nothing and is never limited
    [line] = [x for x in logs if x["event"] == "request_refused"]  # sampled: one line for the whole flood
    assert line["path"] == path and line["error_code"] == "rate_limited"


def test_probes_and_deliveries_do_not_share_a_bucket(probed: TestClient) -> None:
    with probed:
        for _ in range(PROBE_BURST + 1):
            probed.get("/readyz")
        assert probed.get("/readyz").status_code == 429
        assert (
            probed.post("/webhooks/circleci", content=b"{}", headers={"content-type": "application/json"}).status_code
            == 401
        )
