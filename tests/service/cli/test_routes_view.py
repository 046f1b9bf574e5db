"""How check-config and preview show a handler's URL: scheme, host and port, never the rest."""

from __future__ import annotations

import pytest

from service.cli.routes_view import redacted_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/xoxTOKEN", "https://hooks.slack.com/…"),
        ("https://ci.example.com:8443/x", "https://ci.example.com:8443/…"),
        ("https://bot:pa55w0rd@hooks.example.com:8443/x", "https://hooks.example.com:8443/…"),
        ("http://[::1]:8766/slack/ops", "http://[::1]:8766/…"),
        ("not a url", "[redacted]"),
    ],
)
def test_a_url_shows_its_scheme_host_and_port_only(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
