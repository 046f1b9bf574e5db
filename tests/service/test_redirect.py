"""Redirects point at this service: the Host a request claims never comes back in a Location."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from service.redirect import relative


@pytest.mark.parametrize(
    ("method", "path", "location"),
    [
        ("POST", "/webhooks/circleci/", "/webhooks/circleci"),
        ("GET", "/healthz/", "/healthz"),
        ("GET", "/readyz/?probe=1", "/readyz?probe=1"),
    ],
)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8443", "127.0.0.1:9"])
def test_a_trailing_slash_redirect_does_not_echo_the_host_header(
    client: TestClient, method: str, path: str, location: str, host: str
) -> None:
    response = client.request(method, path, headers={"host": host}, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == location


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (b"http://evil.example/webhooks/circleci", b"/webhooks/circleci"),
        (b"https://evil.example:8443/ui/events?page=2", b"/ui/events?page=2"),
        (b"//evil.example/x", b"/x"),
        (b"http://evil.example//evil.example/x", b"/evil.example/x"),
        (b"http://evil.example", b"/"),
        (b"/ui/login?next=%2Fui%2F", b"/ui/login?next=%2Fui%2F"),
    ],
)
def test_an_absolute_location_keeps_only_its_path_and_query(given: bytes, expected: bytes) -> None:
    assert relative(given) == expected
