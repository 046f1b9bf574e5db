"""post_json's status mapping, the registry, templates, and what every handler renders."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from config.errors import ConfigurationError, DeliveryRejected, DeliveryRetryable
from config.routes import HANDLER_KEYS, HandlerConfig
from tests.workers.handlers.conftest import CHAT_TYPES, OPTIONS, SECRET_URL, hostile_event, incomplete_event, make
from workers.handlers import HANDLER_TYPES, build_handler

POSTING = ("slack", "teams", "discord", "pagerduty", "webhook")


def test_registry_knows_every_type_the_routes_file_accepts() -> None:
    assert set(HANDLER_TYPES) == set(HANDLER_KEYS) == set(OPTIONS)
    assert all(cls.type == name for name, cls in HANDLER_TYPES.items())


def test_build_handler_refuses_an_unknown_type() -> None:
    with pytest.raises(ConfigurationError, match="handler 'x', key 'type'"):
        build_handler("x", HandlerConfig(name="x", type="fax", options={}))


@pytest.mark.parametrize("kind", POSTING)
@pytest.mark.parametrize("status", [200, 202, 204])
def test_send_succeeds_on_2xx(kind: str, status: int, event: dict[str, Any], http: Any, requests: list) -> None:
    make(kind).send(event, delivery_id="d-1", http=http(lambda r: httpx.Response(status)))
    assert len(requests) == 1
    assert requests[0].headers["content-type"] == "application/json"


@pytest.mark.parametrize("kind", POSTING)
@pytest.mark.parametrize(
    ("status", "error"),
    [(400, DeliveryRejected), (403, DeliveryRejected), (404, DeliveryRejected), (408, DeliveryRetryable),
     (429, DeliveryRetryable), (500, DeliveryRetryable), (503, DeliveryRetryable)],
)  # fmt: skip
def test_send_maps_status_onto_the_error_tree(
    kind: str, status: int, error: type[Exception], event: dict[str, Any], http: Any
) -> None:
    handler = make(kind, name="dest")
    secrets = [v for k, v in OPTIONS[kind].items() if k in ("url", "secret", "routing_key")]
    body = "bad request for " + " and ".join(secrets) + " /services/T000/B000/sEcReTtOkEn123 " + "z" * 500
    with pytest.raises(error) as info:
        handler.send(event, delivery_id="d", http=http(lambda r: httpx.Response(status, text=body)))
    exc = info.value
    assert exc.handler == "dest" and exc.status == status
    assert 0 < len(exc.body_excerpt) <= 200
    assert str(status) in str(exc)
    for secret in [*secrets, "sEcReTtOkEn123"] if kind != "pagerduty" else secrets:
        assert secret not in str(exc) and secret not in exc.body_excerpt


@pytest.mark.parametrize(
    ("header", "expected"), [("120", 120.0), ("http-date", 90.0), ("soon", None)], ids=["seconds", "date", "garbage"]
)
def test_429_carries_retry_after_in_both_forms(header: str, expected: float | None, event: Any, http: Any) -> None:
    if header == "http-date":
        header = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    client = http(lambda r: httpx.Response(429, headers={"Retry-After": header}))
    with pytest.raises(DeliveryRetryable) as info:
        make("slack").send(event, delivery_id="d", http=client)
    if expected is None:
        assert info.value.retry_after is None
    else:
        assert info.value.retry_after == pytest.approx(expected, abs=2)


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("timed out"), httpx.ConnectError(f"cannot reach {SECRET_URL}")],
    ids=["timeout", "connect"],
)
@pytest.mark.parametrize("kind", POSTING)
def test_timeouts_and_transport_errors_are_retryable(kind: str, failure: Exception, event: Any, http: Any) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        raise failure

    with pytest.raises(DeliveryRetryable) as info:
        make(kind).send(event, delivery_id="d", http=http(respond))
    assert info.value.status is None
    assert "sEcReTtOkEn123" not in str(info.value)


@pytest.mark.parametrize("kind", list(OPTIONS))
def test_repr_shows_no_secret(kind: str) -> None:
    handler = make(kind)
    config = HandlerConfig(name="h", type=kind, options=OPTIONS[kind])
    for text in (repr(handler), repr(config)):
        assert "sEcReTtOkEn123" not in text and "R0UTINGKEY" not in text and "webhook-secret" not in text


@pytest.mark.parametrize("kind", list(OPTIONS))
@pytest.mark.parametrize(
    "make_event", [incomplete_event, hostile_event, lambda: {}], ids=["incomplete", "hostile", "empty"]
)
def test_every_handler_renders_odd_events_without_raising(kind: str, make_event: Any) -> None:
    rendered = make(kind).render(make_event())
    assert isinstance(rendered, dict | bytes)
    json.dumps(rendered if isinstance(rendered, dict) else json.loads(rendered))


@pytest.mark.parametrize("kind", CHAT_TYPES)
def test_a_template_replaces_the_default_text(kind: str, event: dict[str, Any]) -> None:
    handler = make(kind, template="CUSTOM {{ message.status }} {{ event.vcs.commit_subject | esc }}")
    assert "CUSTOM failed" in json.dumps(handler.render(event), ensure_ascii=False)


@pytest.mark.parametrize("kind", CHAT_TYPES)
@pytest.mark.parametrize(
    ("template", "reason"),
    [("{{ message.title ", "does not compile"), ("{{ 1 // 0 }}", "fails on the sample event"),
     ("{{ event.clear() }}", "fails on the sample event")],
    ids=["syntax", "runtime", "sandbox"],
)  # fmt: skip
def test_a_broken_template_is_a_configuration_error_naming_the_handler(kind: str, template: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=f"handler 'ops', key 'template': {reason}"):
        make(kind, name="ops", template=template)


def test_a_template_that_breaks_on_one_event_falls_back_to_the_default(event: dict[str, Any]) -> None:
    handler = make("log", template="{{ 10 // event.pipeline.number }}")
    event["pipeline"]["number"] = 0
    assert handler.render(event)["text"].startswith("❌ build-test-deploy failed")
