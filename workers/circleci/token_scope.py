"""Where CIRCLE_TOKEN may go: the API's host and the artifact hosts, over https.

Artifact URLs come from API answers and may redirect anywhere (pitfalls B4; an S3 signed URL is
common), and httpx strips only `Authorization` on a cross-origin redirect, never `Circle-Token`.
So the transport asks this object before it puts the token on a request to an absolute URL:

    scheme   https, or http on a loopback host (the local simulator)
    host     the API base URL's host, or one of CIRCLECI_ARTIFACT_HOSTS:
             `name` matches exactly, `*.name` any subdomain of name (not name itself)

Host names compare case-insensitively; httpx hands them over lower-cased and IDNA-encoded.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from config.settings import is_loopback

__all__ = ["TokenScope"]


class TokenScope:
    """The hosts CIRCLE_TOKEN may be sent to."""

    def __init__(self, api_url: str | httpx.URL, artifact_hosts: Iterable[str]) -> None:
        self.api_host = httpx.URL(str(api_url)).host.lower()
        patterns = [pattern.strip().lower() for pattern in artifact_hosts]
        self._exact = frozenset(p for p in patterns if not p.startswith("*."))
        self._suffixes = tuple(p[1:] for p in patterns if p.startswith("*."))  # "*.a.com" -> ".a.com"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_host={self.api_host!r})"

    def allows(self, url: httpx.URL) -> bool:
        """True when a request to `url` may carry the token."""
        host = url.host.lower()
        if not host:
            return False
        if url.scheme != "https" and not (url.scheme == "http" and is_loopback(host)):
            return False
        return host == self.api_host or host in self._exact or host.endswith(self._suffixes)
