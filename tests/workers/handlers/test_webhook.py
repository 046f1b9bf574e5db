"""Generic webhook: the enriched event, compact UTF-8 JSON, signed like CircleCI signs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.signature import SignatureVerifier
from service.signature import sign as circleci_sign
from tests.workers.handlers.conftest import hostile_event, make
from workers.handlers import webhook


def test_the_signature_verifies_with_the_project_verifier(http: Any, requests: list) -> None:
    event = hostile_event()
    make("webhook").send(event, delivery_id="del-7", http=http())
    (request,) = requests
    SignatureVerifier(["webhook-secret-value"]).verify(request.content, request.headers["circleci-events-signature"])
    assert request.headers["circleci-events-delivery-id"] == "del-7"
    assert request.headers["circleci-events-event-type"] == "workflow-completed"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == event


def test_the_body_is_compact_utf8(event: dict[str, Any]) -> None:
    event["vcs"]["commit_subject"] = "ünï 🎉"
    body = make("webhook").render(event)
    assert isinstance(body, bytes)
    assert "ünï 🎉".encode() in body
    assert body == json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("secret", ["s", "ünï-secret", "a#b,c=d", "x" * 200])
def test_the_handler_signs_as_circleci_signs_what_the_receiver_verifies(secret: str) -> None:
    body = b'{"event_id": "e1", "status": "failed"}'
    signature = webhook.sign(body, secret)
    assert signature == circleci_sign(body, secret)
    SignatureVerifier([secret]).verify(body, signature)
