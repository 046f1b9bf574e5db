"""At most one log line per key and interval, carrying the count of the lines left out.

A client without the webhook secret can make a request for every token it has; a warning for
each would let it fill the logs. Lines about such refusals go through a LogSampler keyed by
client address and error code: the first in an interval is written, with `suppressed=<lines
left out since the last one written>`. Metrics still count every refusal.
"""

from __future__ import annotations

from config.clock import SYSTEM_CLOCK, Clock

REJECTION_LOG_INTERVAL_SECONDS = 60.0
MAX_KEYS = 10_000


class LogSampler:
    """Lets one line per key through every `interval` seconds; remembers at most `max_keys` keys."""

    def __init__(
        self,
        *,
        interval: float = REJECTION_LOG_INTERVAL_SECONDS,
        max_keys: int = MAX_KEYS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._interval = interval
        self._max_keys = max_keys
        self._clock = clock
        self._keys: dict[str, list[float]] = {}  # key -> [when last written, left out since]; oldest first

    def admit(self, key: str) -> int | None:
        """None: leave this line out. Else write it, with this many lines left out before it."""
        now = self._clock.monotonic()
        entry = self._keys.get(key)
        if entry is not None and now - entry[0] < self._interval:
            entry[1] += 1
            return None
        if entry is None:
            if len(self._keys) >= self._max_keys:
                del self._keys[next(iter(self._keys))]  # its count is lost; the metrics keep it
            suppressed = 0
        else:
            suppressed = int(entry[1])
            del self._keys[key]
        self._keys[key] = [now, 0]
        return suppressed

    def __len__(self) -> int:
        return len(self._keys)
