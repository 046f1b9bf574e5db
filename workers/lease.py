"""Leases: a running job's claim on its place in RQ's started registry, seconds long, renewed while it runs.

RQ's started registry (`rq:wip:<queue>`, a sorted set of `<job id>:<execution id>`) scores each
running job with the time its claim ends. RQ sets that to the job's timeout plus a minute, so a
job whose worker died (SIGKILL, OOM, a lost node) was found only after 6 minutes and more. Here
the claim is WORKER_LEASE_SECONDS long (10 by default) and one thread per process renews the
claims of every job the process runs, in one command (`ZADD XX`) every fifth of a lease. A
process that dies stops renewing: its jobs' leases lapse within a lease, and any live worker's
reaper (workers/reaper.py) puts them back on the queue.

A job running past its own timeout plus a lease is no longer renewed: RQ's timer should have
stopped it, and a thread stuck where the timer cannot reach lets its job run elsewhere.

The same thread renews the process's delivery locks (`cie:lock:<delivery>`, workers/delivery/
lock.py) while their sends run: a lock lasts a lease too, so a post that died with its worker
blocks the delivery's next attempt for seconds, not for the longest a send may take.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from redis import Redis

from config.clock import SYSTEM_CLOCK, Clock

RENEWALS_PER_LEASE = 5


@dataclass(frozen=True)
class Claim:
    """One running job: its registry entry and when (monotonic) renewing it stops."""

    entry: str
    renew_until: float


class Leases:
    """The leases of the jobs one process runs."""

    def __init__(self, redis: Redis, registry_key: str, *, seconds: int, clock: Clock = SYSTEM_CLOCK) -> None:
        self.redis, self.clock = redis, clock
        self.registry_key = registry_key
        self.seconds = seconds
        self.renew_every = seconds / RENEWALS_PER_LEASE
        self._claims: dict[str, Claim] = {}
        self._keys: dict[str, Claim] = {}  # delivery locks: key -> until when it is renewed
        self._lock = threading.Lock()

    def expiry(self) -> float:
        """The score a claim taken or renewed now gets: now plus one lease."""
        return self.clock.now() + self.seconds

    def hold(self, entry: str, job_timeout: float | None) -> None:
        """Renew `entry` from now on (the worker wrote it with `expiry()` as it started the job)."""
        limit = (job_timeout if job_timeout and job_timeout > 0 else 365 * 86400) + self.seconds
        with self._lock:
            self._claims[entry] = Claim(entry, self.clock.monotonic() + limit)

    def drop(self, entry: str) -> None:
        with self._lock:
            self._claims.pop(entry, None)

    def hold_key(self, key: str, longest: float) -> None:
        """Renew the expiry of `key` (a lock this process holds) for at most `longest` seconds."""
        with self._lock:
            self._keys[key] = Claim(key, self.clock.monotonic() + longest)

    def drop_key(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def held(self) -> list[str]:
        with self._lock:
            return list(self._claims)

    def renew(self) -> int:
        """Push every claim still within its job's timeout one lease further; how many were renewed."""
        now = self.clock.monotonic()
        with self._lock:
            live = [c.entry for c in self._claims.values() if c.renew_until > now]
            keys = [c.entry for c in self._keys.values() if c.renew_until > now]
        if not live and not keys:
            return 0
        with self.redis.pipeline(transaction=False) as pipe:
            if live:  # XX: a claim the job's end (or a reaper) removed meanwhile is not written back
                pipe.zadd(self.registry_key, dict.fromkeys(live, self.expiry()), xx=True)
            for key in keys:
                pipe.expire(key, self.seconds, xx=True)  # XX: only a lock that still exists
            pipe.execute()
        return len(live)
