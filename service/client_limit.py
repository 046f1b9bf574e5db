"""Token buckets per client address, held in this process: every webhook request pays first.

The shared bucket (workers/token_bucket.py) runs in Redis inside the admission, after the
signature check, so it counts valid deliveries across all web processes. This one costs no
round trip and runs before the body is read, so a client without the secret is throttled too;
a wrong signature costs it SIGNATURE_FAILURE_TOKENS more, so guessing is throttled quickly.
Both buckets use RATE_LIMIT_BURST and RATE_LIMIT_PER_SECOND.

Memory is bounded: at most `max_clients` buckets, the least recently seen dropped first. A
dropped bucket is a full one when its client comes back, so a client that owns more addresses
than that escapes the per-process limit (`WEB_MAX_CONNECTIONS` still bounds the process).
"""

from __future__ import annotations

from config.clock import SYSTEM_CLOCK, Clock

SIGNATURE_FAILURE_TOKENS = 10
MAX_CLIENTS = 10_000


class ClientLimit:
    """Buckets of `burst` tokens per client, refilled at `per_second`."""

    def __init__(
        self,
        *,
        burst: int,
        per_second: float,
        max_clients: int = MAX_CLIENTS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._burst = float(burst)
        self._rate = per_second
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # client -> [tokens, when counted]; oldest first

    def take(self, client: str) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there is."""
        bucket = self._bucket(client)
        if bucket[0] < 1:
            return (1 - bucket[0]) / self._rate
        bucket[0] -= 1
        return 0.0

    def charge(self, client: str, tokens: float) -> None:
        """Take `tokens` whatever is left: a bucket below zero is a debt paid by waiting."""
        self._bucket(client)[0] -= tokens

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, client: str) -> list[float]:
        now = self._clock.monotonic()
        bucket = self._buckets.pop(client, None)
        if bucket is None:
            if len(self._buckets) >= self._max_clients:
                del self._buckets[next(iter(self._buckets))]
            bucket = [self._burst, now]
        else:
            bucket[0] = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
            bucket[1] = now
        self._buckets[client] = bucket  # last in the dict: the most recently seen
        return bucket
