"""The running instance: what `run` records so that commands in another shell find it.

    <runtime dir>/instance.json   {"pid", "redis_url", "webhook_url", "secret", "started_at"}

`run` writes it once its Redis is up (an embedded Redis listens on a socket in a fresh
temporary folder: nothing else could find it) and removes it when it stops. `events`,
`dead-letters` and `send-test-event` read it when REDIS_URL (or --url, --secret) is not given,
and say which instance they use. It holds the webhook secret `run` accepts and the Redis URL,
so it is written 0600 in a 0700 folder of the user's (Settings.runtime_dir). A record whose
process is gone is stale: ignored, and replaced by the next `run`.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.settings import Settings

FILE_NAME = "instance.json"


@dataclass(frozen=True)
class Instance:
    pid: int
    redis_url: str
    webhook_url: str
    secret: str | None
    started_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instance:
        return cls(
            pid=int(data["pid"]),
            redis_url=str(data["redis_url"]),
            webhook_url=str(data["webhook_url"]),
            secret=None if data.get("secret") is None else str(data["secret"]),
            started_at=str(data["started_at"]),
        )

    def describe(self) -> str:
        """Which instance, without its secret or a Redis password."""
        redis = self.redis_url.split("@")[-1] if "@" in self.redis_url else self.redis_url
        return f"the instance `run` started (pid {self.pid}, since {self.started_at}, Redis {redis})"


def record(settings: Settings, *, redis_url: str, webhook_url: str, secret: str | None) -> Path:
    folder = settings.runtime_dir
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    instance = Instance(os.getpid(), redis_url, webhook_url, secret, datetime.now(UTC).isoformat(timespec="seconds"))
    path = folder / FILE_NAME
    partial = folder / f".{FILE_NAME}.{os.getpid()}"
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as f:
        json.dump(instance.to_dict(), f)
    os.replace(partial, path)  # a reader sees the old record or the new one, never half of one
    return path


def forget(settings: Settings) -> None:
    """Remove the record if it is this process's."""
    found = _read(settings.runtime_dir / FILE_NAME)
    if found is not None and found.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            (settings.runtime_dir / FILE_NAME).unlink()


def find(settings: Settings) -> Instance | None:
    """The record of a `run` still running, else None."""
    found = _read(settings.runtime_dir / FILE_NAME)
    return found if found is not None and _alive(found.pid) else None


def _read(path: Path) -> Instance | None:
    try:
        return Instance.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
