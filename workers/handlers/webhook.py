"""Generic webhook: the enriched event as compact UTF-8 JSON, signed the way CircleCI signs.

Headers: `circleci-events-signature: v1=<hex HMAC-SHA256 of the exact body bytes>` keyed with
the handler's `secret`, `circleci-events-delivery-id`, `circleci-events-event-type`. Receivers
verify it like CircleCI's own signature: the same scheme as the `circleci-signature` our
receiver checks (service/signature.py, which a test runs against `sign` here).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import orjson

from workers.handlers.base import Handler, post_json
from workers.handlers.view import labelled

SIGNATURE_HEADER = "circleci-events-signature"
DELIVERY_HEADER = "circleci-events-delivery-id"
EVENT_TYPE_HEADER = "circleci-events-event-type"


def sign(body: bytes, secret: str) -> str:
    """`v1=<lowercase hex HMAC-SHA256 of body>`, keyed with the secret's UTF-8 bytes."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookHandler(Handler):
    type = "webhook"
    required = ("url", "secret")

    def render(self, event: dict[str, Any]) -> bytes:
        return orjson.dumps(event)

    @staticmethod
    def view(body: Any) -> list[str]:
        size = len(orjson.dumps(body))
        return [labelled("webhook", f"the enriched event as JSON ({size} bytes), signed: {SIGNATURE_HEADER}")]

    def send(self, event: dict[str, Any], *, delivery_id: str, http: httpx.Client) -> None:
        """Post the signed event; the signature covers exactly the bytes sent."""
        body = self.render(event)
        headers = {
            SIGNATURE_HEADER: sign(body, str(self.options["secret"])),
            DELIVERY_HEADER: delivery_id,
            EVENT_TYPE_HEADER: str(event.get("event_type") or ""),
        }
        post_json(http, str(self.options["url"]), body, handler=self.name, secrets=self.secrets(), headers=headers)
