"""The console behind an SSO proxy, on a real `circleci-events web`: uvicorn's proxy headers replace
the client address with X-Forwarded-For's before the app sees it, so the user header must be
judged by the connection's own peer. 127.0.0.1 is the trusted proxy; 127.0.0.2, another address
of the loopback network, is anyone else.
"""

from __future__ import annotations

import httpx

TOKEN = "admin-token-value-of-at-least-32-characters"
HEADER = "X-Forwarded-User"


def from_address(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30, follow_redirects=False)


def test_the_user_header_is_believed_from_the_proxy_and_ignored_from_anyone_else(redis_url, web_factory) -> None:
    _, base = web_factory(redis_url, ADMIN_TOKEN=TOKEN, TRUSTED_PROXIES="127.0.0.1", CONSOLE_USER_HEADER=HEADER)
    with from_address("127.0.0.1") as proxy:
        # the proxy forwards a client of its own: the app's client address becomes 203.0.113.7
        answer = proxy.get(base + "/ui/", headers={HEADER: "alice", "X-Forwarded-For": "203.0.113.7"})
    assert answer.status_code == 200 and ">alice</span>" in answer.text
    with from_address("127.0.0.2") as spoofer:
        for forwarded in ({}, {"X-Forwarded-For": "127.0.0.1"}):
            refused = spoofer.get(base + "/ui/", headers={HEADER: "alice", **forwarded})
            assert refused.status_code == 303 and refused.headers["location"].startswith("/ui/login")
            assert "cie_session" not in refused.cookies
