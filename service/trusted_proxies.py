"""TRUSTED_PROXIES: which connection peers are the operator's proxies, and who the peer was.

uvicorn's proxy-headers middleware replaces the ASGI `client` with X-Forwarded-For's address
(from a trusted peer) before the app sees it. `PeerAddress`, put outside that middleware by
`circleci-events web`, keeps the connection's own peer in the scope under PEER first; `peer_of`
reads it, or the `client` where nothing kept it (which is the peer whenever nothing rewrote it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

PEER = "circleci_events.peer"


class TrustedProxies:
    """The listed addresses and CIDR networks (settings checked their form)."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.networks = [ipaddress.ip_network(entry, strict=False) for entry in entries]

    def __contains__(self, address: object) -> bool:
        try:
            ip = ipaddress.ip_address(str(address))
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


class PeerAddress:
    """Keeps the connection's peer address in the scope, before a forwarded one replaces `client`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[PEER] = scope.get("client")
        await self.app(scope, receive, send)


def peer_of(request: Request) -> str:
    """The address of the connection's peer (not a forwarded client's)."""
    peer = request.scope.get(PEER, request.scope.get("client"))
    return str(peer[0]) if peer else ""
