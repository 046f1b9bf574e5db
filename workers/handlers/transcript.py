"""What one delivery sent, as it went out: each request's destination and body, secrets removed,
for the event's record. The console shows it as "the message as it was sent", which the routes
loaded now may no longer render the same way (a template changed, a person was looked up).

A delivery attempt opens a transcript (`recording()`); `post_json`, the Slack app's message calls
and the log and Python handlers add to the open one, in the delivery's own thread. Nothing is
noted outside an attempt (check-config, preview and the demo render without one).

A transcript keeps at most MAX_CHARS characters of bodies: a longer body is cut, saying how much.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from config.logging import REDACTOR
from config.redaction import Redactor

MAX_CHARS = 16_000


@dataclass
class Transcript:
    """The requests of one delivery attempt, in order: `{"to": ..., "body": text}`."""

    sent: list[dict[str, str]] = field(default_factory=list)
    chars: int = 0

    def add(self, to: str, body: Mapping[str, Any] | bytes | str, secrets: list[str]) -> None:
        if isinstance(body, bytes):
            text = body.decode("utf-8", "replace")
        elif isinstance(body, str):
            text = body
        else:
            text = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
        text = REDACTOR.redact(Redactor(secrets).redact(text))
        room = max(0, MAX_CHARS - self.chars)
        if len(text) > room:
            text = text[:room] + f"\n… ({len(text) - room} more characters not kept)"
        self.chars += len(text)
        self.sent.append({"to": to, "body": text})


_open: ContextVar[Transcript | None] = ContextVar("transcript", default=None)


@contextmanager
def recording() -> Iterator[Transcript]:
    """A transcript that the sends inside the block add to."""
    transcript = Transcript()
    token = _open.set(transcript)
    try:
        yield transcript
    finally:
        _open.reset(token)


def note(to: str, body: Mapping[str, Any] | bytes | str, secrets: list[str]) -> None:
    """Add one request to the open transcript, if any."""
    transcript = _open.get()
    if transcript is not None:
        transcript.add(to, body, secrets)


def destination(method: str, url: str) -> str:
    """A request's destination without its credentials: a chat webhook's path is its secret, so
    only the method, scheme and host are kept."""
    parts = urlsplit(url)
    return f"{method} {parts.scheme}://{parts.hostname or '?'}{'' if parts.port is None else f':{parts.port}'}/…"
