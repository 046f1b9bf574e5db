"""Removing secret values from text: log lines, error excerpts, dead letters.

A `Redactor` knows a set of secret strings and replaces each occurrence with `[redacted]` in
one pass (longest first, so a secret containing another is removed whole). Chat webhook URLs
carry their credential in the path or the query, and a server may echo any part of it, so
`url_secrets` lists the path, the query and every segment or value that can be a credential:
one that looks like a token (`sig=` of a Teams Workflows URL, the last segment of a Slack or
Discord URL) or a query value named like one (`?key=`, `?token=`). Scheme, host and port are
no credential and stay, so `https://hooks.slack.com/services/T…/B…/x…` reads
`https://hooks.slack.com/[redacted]`; a path or query with nothing of the kind (`/ci`, `/x`) is
no secret either, so it cannot cut pieces out of unrelated URLs (`https://ci.example.com`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

REDACTED = "[redacted]"


def looks_like_token(part: str) -> bool:
    """Long, or of letters and digits both: `triggers` and `2016-06-01` are not, `B0A1x…` is."""
    return len(part) >= 16 or (len(part) >= 8 and any(c.isdigit() for c in part) and any(c.isalpha() for c in part))


# A query value under a key ending in one of these is a credential whatever it looks like
# (`?key=hunter`, `?access_token=…`, `?api-key=…`).
CREDENTIAL_KEYS = ("sig", "signature", "token", "key", "secret", "password", "auth", "code")


def _credential(value: str) -> bool:
    """A value that may be a credential: a token among its `/` pieces (a base64 token may hold
    `/`; Teams' `sp=/triggers/manual/run` is words)."""
    return any(looks_like_token(piece) for piece in value.split("/"))


def _credential_key(key: str) -> bool:
    return key.lower().replace("_", "").replace("-", "").endswith(CREDENTIAL_KEYS)


def url_secrets(url: str) -> list[str]:
    """The parts of `url` that may be a credential, raw and percent-decoded; never its scheme,
    host or port. A URL that cannot be parsed is a secret whole."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return [url]
    found = [parts.password] if parts.password else []
    if parts.username and looks_like_token(parts.username):
        found.append(parts.username)
    segments = [s for s in parts.path.split("/") if _credential(s)]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    values = [v for k, v in pairs if v and (_credential(v) or _credential_key(k))]
    if segments:
        found.append(parts.path.lstrip("/"))
    if values:
        found.append(parts.query)
    found += segments + values
    found += [unquote(p) for p in found if "%" in p]
    return list(dict.fromkeys(found))


class Redactor:
    """Replaces every known secret with `[redacted]`; thread-safe, secrets can be added later."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            known = self._secrets | {s for s in secrets if s}
            if known != self._secrets:
                ordered = sorted(known, key=len, reverse=True)
                self._secrets = known
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def __len__(self) -> int:
        return len(self._secrets)

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(REDACTED, text) if pattern is not None else text

    def redact_value(self, value: Any) -> Any:
        """`value` with secrets removed from every string in it (dicts, lists and tuples walked)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        if isinstance(value, BaseException):
            return self.redact(f"{type(value).__name__}: {value}")
        return value

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """structlog processor: the last step before rendering, for our lines and every library's."""
        if self._pattern is None:
            return event_dict
        for key, value in event_dict.items():
            if isinstance(value, str | Mapping | list | tuple | BaseException):
                event_dict[key] = self.redact_value(value)
        return event_dict


# Handler options in the routes file that hold a credential (a chat webhook URL is one).
SECRET_OPTIONS = ("url", "secret", "routing_key", "token")


def option_secrets(options: Mapping[str, str | None]) -> list[str]:
    """The secret values among a handler's options; URLs broken into their credential parts."""
    found: list[str] = []
    for key, value in options.items():
        if key in SECRET_OPTIONS and value:
            found += url_secrets(value) if key == "url" else [value]
    return found
