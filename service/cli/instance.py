"""The running instances: what each `run` records so that commands in another shell find it.

    <runtime dir>/instances/<pid>.json   {"pid", "process_start", "redis_url", "webhook_url",
                                          "secret", "started_at"}

Each `run` writes its own record once its Redis is up (an embedded Redis listens on a socket in
a fresh temporary folder: nothing else could find it) and removes it when it stops, so two
`run`s on one machine (on two ports) never overwrite each other. `events`, `dead-letters`,
`send-test-event`, `web` and `worker` read the records when REDIS_URL (or --url) is not given:
they take the only live one and say which; with several they stop and ask for `--instance PID`,
listing them, rather than guess a Redis. A record whose process is gone (or whose pid now
belongs to another process: `process_start` differs) is stale and deleted by the next reader.
Each record holds the webhook secret `run` accepts and the Redis URL, so it is written 0600 in
a 0700 folder of the user's (Settings.runtime_dir).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.errors import CircleCIEventsError
from config.settings import Settings

FOLDER = "instances"
INSTANCE_OPTION = "--instance"


class InstanceUnclear(CircleCIEventsError):
    """Several `run`s are live and none was chosen, or the one chosen is not running: exit 2."""

    code = "instance_unclear"


@dataclass(frozen=True)
class Instance:
    pid: int
    redis_url: str
    webhook_url: str
    secret: str | None
    started_at: str
    process_start: str | None = None  # the kernel's start time of `pid`, where it can be read

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
            process_start=None if data.get("process_start") is None else str(data["process_start"]),
        )

    def describe(self) -> str:
        """Which instance, without its secret or a Redis password."""
        return (
            f"the instance `run` started (pid {self.pid}, since {self.started_at}, Redis {redis_shown(self.redis_url)})"
        )

    def summary(self) -> str:
        """One item of a list of instances: enough to tell two apart."""
        redis = redis_shown(self.redis_url)
        return f"pid {self.pid} (webhooks at {self.webhook_url}, Redis {redis}, since {self.started_at})"


def redis_shown(url: str) -> str:
    """A Redis URL without its password."""
    return url.split("@")[-1] if "@" in url else url


def _folder(settings: Settings) -> Path:
    return settings.runtime_dir / FOLDER


def record(settings: Settings, *, redis_url: str, webhook_url: str, secret: str | None) -> Path:
    """Write this process's record (atomically: a reader sees all of it or none)."""
    folder = _folder(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for private in (settings.runtime_dir, folder):
        os.chmod(private, 0o700)
    pid = os.getpid()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    instance = Instance(pid, redis_url, webhook_url, secret, started_at, process_start(pid))
    path = folder / f"{pid}.json"
    partial = folder / f".{pid}.json.partial"
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as f:
        json.dump(instance.to_dict(), f)
    os.replace(partial, path)
    return path


def forget(settings: Settings) -> None:
    """Remove this process's record."""
    with contextlib.suppress(FileNotFoundError):
        (_folder(settings) / f"{os.getpid()}.json").unlink()


def live(settings: Settings) -> list[Instance]:
    """The records of the `run`s still running, oldest first; stale and unreadable records are deleted."""
    found = []
    for path in sorted(_folder(settings).glob("*.json")):
        instance = _read(path)
        if instance is not None and _alive(instance):
            found.append(instance)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return sorted(found, key=lambda i: (i.started_at, i.pid))


def choose(settings: Settings, pid: int | None = None) -> Instance | None:
    """The instance a command uses: the one with `pid` when given, else the only live one, else
    None when none runs; InstanceUnclear (listing them) when `pid` is not running or several are."""
    running = live(settings)
    listing = "; ".join(i.summary() for i in running)
    if pid is not None:
        chosen = next((i for i in running if i.pid == pid), None)
        if chosen is None:
            others = f"the running ones: {listing}" if running else "none is running"
            raise InstanceUnclear(f"no `circleci-events run` with pid {pid} is running on this machine; {others}")
        return chosen
    if len(running) > 1:
        raise InstanceUnclear(
            f"{len(running)} `circleci-events run` are running on this machine: {listing}; "
            f"choose one with {INSTANCE_OPTION} PID (or set REDIS_URL)"
        )
    return running[0] if running else None


def process_start(pid: int) -> str | None:
    """When the kernel started `pid` (field 22 of /proc/<pid>/stat, in clock ticks since boot), or
    None where /proc is not there: with the pid it names one process, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # the command name in parentheses may hold spaces


def _read(path: Path) -> Instance | None:
    try:
        return Instance.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(instance: Instance) -> bool:
    try:
        os.kill(instance.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process has this pid: the start time below tells
    return instance.process_start is None or process_start(instance.pid) in (None, instance.process_start)
