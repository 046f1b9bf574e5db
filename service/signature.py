"""CircleCI's webhook signature: `circleci-signature: v1=<hex>`, checked before anything is parsed.

v1 is the lowercase hex HMAC-SHA256 of the raw request body, keyed with the secret's UTF-8
bytes. The header is a comma-separated list of `version=value` pairs; only v1 is checked, so an
attacker cannot downgrade to a weaker version. Several secrets may be configured at once so a
secret can be rotated without dropping deliveries.
https://circleci.com/docs/guides/integration/outbound-webhooks/#validate-outbound-webhooks
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

from config.errors import SignatureError

HEADER = "circleci-signature"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sign(body: bytes, secret: str) -> str:
    """The header value CircleCI would send for this body and secret."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def v1_values(header: str | None) -> list[str]:
    """The v1 signatures in a header value; raises SignatureError when there is none usable.

    Messages never repeat the header's value: it is a signature.
    """
    if not header or not header.strip():
        raise SignatureError(f"missing {HEADER} header; expected 'v1=<hex>'", details={"header": HEADER})
    values = []
    for pair in header.split(","):
        version, sep, value = pair.strip().partition("=")
        if not sep:
            raise SignatureError(
                f"expected comma-separated 'version=value' pairs in {HEADER}, got an entry without '='",
                details={"header": HEADER},
            )
        if version.strip() == "v1":
            value = value.strip()
            if not _HEX64.fullmatch(value):
                raise SignatureError(
                    f"expected 'v1=<64 lowercase hex characters>' in {HEADER}, got a v1 value of "
                    f"{len(value)} characters",
                    details={"header": HEADER},
                )
            values.append(value)
    if not values:
        raise SignatureError(f"expected a 'v1=<hex>' entry in {HEADER}, found none", details={"header": HEADER})
    return values


class SignatureVerifier:
    """Accepts a body when any v1 signature matches any configured secret."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("SignatureVerifier needs at least one secret")
        self._keys = [s.encode() for s in secrets]

    def verify(self, body: bytes, header: str | None) -> None:
        candidates = v1_values(header)
        matched = False
        # Compare against every key and every candidate, so timing does not reveal which matched.
        for key in self._keys:
            expected = hmac.digest(key, body, "sha256").hex()  # OpenSSL's one-shot HMAC
            for candidate in candidates:
                matched |= hmac.compare_digest(expected, candidate)
        if not matched:
            raise SignatureError(
                f"{HEADER} does not match the body for any configured secret "
                "(check CIRCLECI_WEBHOOK_SECRETS against the webhook's secret token)",
                details={"header": HEADER},
            )
