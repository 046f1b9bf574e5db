"""circleci-signature: v1 = lowercase hex HMAC-SHA256 of the raw body, any configured secret."""

from __future__ import annotations

import json

import pytest

from config.errors import SignatureError
from service.signature import SignatureVerifier, sign, v1_values
from tests.conftest import FIXTURES

VECTORS = json.loads((FIXTURES / "signature-fixtures.json").read_text())
PING_BODY = (FIXTURES / "ping.observed.raw-body.json").read_bytes()


@pytest.mark.parametrize("vector", VECTORS["docs_vectors"], ids=lambda v: v["body"])
def test_sign_matches_circleci_documented_vectors(vector: dict) -> None:
    assert sign(vector["body"].encode(), vector["secret"]) == "v1=" + vector["v1"]


@pytest.mark.parametrize("vector", VECTORS["docs_vectors"], ids=lambda v: v["body"])
def test_verify_accepts_documented_vectors(vector: dict) -> None:
    SignatureVerifier([vector["secret"]]).verify(vector["body"].encode(), "v1=" + vector["v1"])


def test_verify_accepts_the_real_ping_raw_body() -> None:
    local = VECTORS["local_vectors"]
    assert len(PING_BODY) == 175
    SignatureVerifier([local["secret"]]).verify(PING_BODY, local["example_header_for_ping"])


def test_verify_checks_only_v1_among_future_versions() -> None:
    local = VECTORS["local_vectors"]
    SignatureVerifier([local["secret"]]).verify(PING_BODY, local["example_header_with_future_versions"])


def test_verify_rejects_a_reserialized_body() -> None:
    local = VECTORS["local_vectors"]
    pretty = json.dumps(json.loads(PING_BODY), indent=2).encode()
    with pytest.raises(SignatureError):
        SignatureVerifier([local["secret"]]).verify(pretty, local["example_header_for_ping"])


def test_any_configured_secret_is_accepted_for_rotation() -> None:
    body = b'{"id":"x"}'
    verifier = SignatureVerifier(["old-secret", "new-secret"])
    verifier.verify(body, sign(body, "old-secret"))
    verifier.verify(body, sign(body, "new-secret"))
    with pytest.raises(SignatureError):
        verifier.verify(body, sign(body, "other-secret"))


def test_a_downgrade_to_another_version_is_refused() -> None:
    body = b"{}"
    digest = sign(body, "s").removeprefix("v1=")
    with pytest.raises(SignatureError, match="found none"):
        SignatureVerifier(["s"]).verify(body, f"v0={digest}")


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (None, "missing circleci-signature"),
        ("", "missing circleci-signature"),
        ("   ", "missing circleci-signature"),
        ("sha1=abc", "found none"),
        ("v1", "without '='"),
        ("v1=", "v1 value of 0 characters"),
        ("v1=" + "A" * 64, "64 lowercase hex"),
        ("v1=" + "0" * 63, "v1 value of 63"),
        ("v1=" + "0" * 64, "does not match"),
        ("v2=" + "0" * 64 + ",garbage", "without '='"),
    ],
)
def test_missing_garbled_or_wrong_headers_are_refused_without_echoing_them(header: str | None, says: str) -> None:
    with pytest.raises(SignatureError) as caught:
        SignatureVerifier(["s"]).verify(b"{}", header)
    assert says in caught.value.message
    assert "0" * 63 not in caught.value.message and "A" * 64 not in caught.value.message


def test_header_entries_are_split_on_the_first_equals_sign() -> None:
    # The docs' sample uses split('='), which breaks on '=' inside a value.
    assert v1_values("v2=a=b, v1=" + "f" * 64) == ["f" * 64]


def test_verifier_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        SignatureVerifier([])
