"""Generic webhook: the enriched event, compact UTF-8 JSON, signed like CircleCI signs."""

from __future__ import annotations

import json
from typing import Any

from service.signature import SignatureVerifier
from tests.workers.handlers.conftest import hostile_event, make


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
