from __future__ import annotations

import json
from collections.abc import Iterator

import fakeredis
import pytest
from starlette.testclient import TestClient

from config.settings import Settings
from service.app import create_app
from service.signature import sign
from tests.conftest import SECRET, fresh, load_fixture


@pytest.fixture
def fake_server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client(settings: Settings, fake_server: fakeredis.FakeServer) -> Iterator[TestClient]:
    app = create_app(settings, redis=fakeredis.FakeAsyncRedis(server=fake_server))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def signed(payload: dict | bytes, *, secret: str = SECRET, event_type: str | None = None) -> dict:
    """Keyword arguments for client.post: the body, its signature and the event type."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if event_type is None and isinstance(payload, dict):
        event_type = payload.get("type")
    headers = {"content-type": "application/json", "circleci-signature": sign(body, secret)}
    if event_type:
        headers["circleci-event-type"] = event_type
    return {"content": body, "headers": headers}


@pytest.fixture
def workflow_payload() -> dict:
    return fresh(load_fixture("workflow-completed.failed.github-oauth.derived.json"))
