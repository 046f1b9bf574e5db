"""The console's session: a signed cookie, nothing kept on the server (web processes keep no state).

    cie_session = base64url(JSON {"exp": epoch seconds, "csrf": 32 hex, "user": name or null})
                  "." hex(HMAC-SHA256)

`user` is the name a trusted SSO proxy gave (service/console/proxy_user.py); null for a login with
the admin token.

The key is derived from ADMIN_TOKEN, so changing the token ends every session. The cookie is
HttpOnly, SameSite=Strict, Path=/ui, Secure when the request came over https, and lives
UI_SESSION_SECONDS; an expired, altered or foreign cookie is no session. Every state-changing
form carries the session's `csrf` value, compared in constant time (`csrf_ok`).

Failed logins are counted per client address by service/login_limit.py, shared with the admin API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE = "cie_session"
PATH = "/ui"


@dataclass(frozen=True)
class Session:
    expires: float
    csrf: str
    user: str | None = None  # None: logged in with the admin token

    @property
    def who(self) -> str:
        """Who acts, for log lines: the proxy's user, or the admin token."""
        return self.user if self.user is not None else "(admin token)"


class SessionSigner:
    """Issues and reads session cookies with a key derived from the admin token."""

    def __init__(self, admin_token: str, *, lifetime: int) -> None:
        self.key = hmac.new(admin_token.encode(), b"circleci-events console session", hashlib.sha256).digest()
        self.admin_token = admin_token.encode()
        self.lifetime = lifetime

    def token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.strip().encode(), self.admin_token)

    def issue(self, *, now: float | None = None, user: str | None = None) -> tuple[str, Session]:
        expires = (time.time() if now is None else now) + self.lifetime
        session = Session(expires=expires, csrf=secrets.token_hex(16), user=user)
        data = {"exp": session.expires, "csrf": session.csrf, "user": user}
        payload = base64.urlsafe_b64encode(json.dumps(data).encode())
        return f"{payload.decode()}.{self._sign(payload)}", session

    def read(self, cookie: str | None, *, now: float | None = None) -> Session | None:
        """The session a cookie holds; None when absent, altered, malformed or expired."""
        if not cookie or "." not in cookie:
            return None
        payload, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(payload.encode())):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload.encode()))
            user = data.get("user")
            session = Session(
                expires=float(data["exp"]), csrf=str(data["csrf"]), user=None if user is None else str(user)
            )
        except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
            return None
        return session if session.expires > (time.time() if now is None else now) else None

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self.key, payload, hashlib.sha256).hexdigest()


def csrf_ok(session: Session, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), session.csrf.encode())
