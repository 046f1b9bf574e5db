"""Reverse-proxy SSO for the console: the user a trusted proxy names in CONSOLE_USER_HEADER.

The header is believed only when the connection's own peer (service/trusted_proxies.py `peer_of`,
not X-Forwarded-For's client) is in TRUSTED_PROXIES.

From any other peer the header is ignored: the request is served as one without it (the login
form), and `console_user_header_ignored` is logged, sampled per peer. A value that is not a user
name (empty, over MAX_USER_CHARS, or characters other than letters, digits and `._@+=,:/\\-`) is
ignored too, and logged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import structlog
from starlette.requests import Request

from config.log_sampler import LogSampler
from service.trusted_proxies import TrustedProxies, peer_of

log = structlog.get_logger("service.console")
MAX_USER_CHARS = 200
USER = re.compile(rf"[\w.@+=,:/\\-]{{1,{MAX_USER_CHARS}}}")


class ProxyUser:
    """Who the trusted proxy says the user is, if the request came from it."""

    def __init__(self, header: str, trusted: Sequence[str], *, log_sampler: LogSampler) -> None:
        self.header = header.lower()
        self.trusted = TrustedProxies(trusted)
        self.log_sampler = log_sampler

    def user_of(self, request: Request) -> str | None:
        """The user named by a trusted peer; None without the header, or from any other peer."""
        value = request.headers.get(self.header)
        if value is None:
            return None
        peer = peer_of(request)
        if peer not in self.trusted:
            suppressed = self.log_sampler.admit(f"{peer} {self.header}")
            if suppressed is not None:
                log.warning("console_user_header_ignored", peer=peer, header=self.header, suppressed=suppressed,
                            reason="the peer is not in TRUSTED_PROXIES")  # fmt: skip
            return None
        user = value.strip()
        if not USER.fullmatch(user):
            log.warning("console_user_header_invalid", peer=peer, header=self.header, chars=len(user))
            return None
        return user
