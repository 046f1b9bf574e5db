"""Generic webhook: the enriched event as compact UTF-8 JSON, signed the way CircleCI signs.

Headers: `circleci-events-signature: v1=<hex HMAC-SHA256 of the exact body bytes>` keyed with
the handler's `secret`, `circleci-events-delivery-id`, `circleci-events-event-type`. Receivers
verify it like CircleCI's own signature (see service/signature.py).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from service.signature import sign
from workers.handlers.base import Handler, post_json

SIGNATURE_HEADER = "circleci-events-signature"
DELIVERY_HEADER = "circleci-events-delivery-id"
EVENT_TYPE_HEADER = "circleci-events-event-type"


class WebhookHandler(Handler):
    type = "webhook"
    required = ("url", "secret")

    def render(self, event: dict[str, Any]) -> bytes:
        return orjson.dumps(event)

    def send(self, event: dict[str, Any], *, delivery_id: str, http: httpx.Client) -> None:
        """Post the signed event; the signature covers exactly the bytes sent."""
        body = self.render(event)
        headers = {
            SIGNATURE_HEADER: sign(body, str(self.options["secret"])),
            DELIVERY_HEADER: delivery_id,
            EVENT_TYPE_HEADER: str(event.get("event_type") or ""),
        }
        post_json(http, str(self.options["url"]), body, handler=self.name, secrets=self.secrets(), headers=headers)
