"""What Redis executed, by command: INFO commandstats read before and after a phase.

Every client's commands count (web, workers, their heartbeats and maintenance), and so do
the commands a Lua script runs and MULTI/EXEC themselves: what Redis did, not what one
process asked for. The INFO that reads `before` is counted in `after`; `since` takes it off.
"""

from __future__ import annotations

from collections import Counter

import redis


def calls(client: redis.Redis) -> Counter[str]:
    """Calls so far per command (`hset`, `client|setname`, ...)."""
    stats = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()})


def since(client: redis.Redis, before: Counter[str]) -> Counter[str]:
    """Calls per command since `before` was read, without the INFO that read it."""
    delta = calls(client) - before
    delta["info"] -= 1
    return +delta  # drops the zero `info`


def per(counts: Counter[str], divisor: float) -> dict[str, float]:
    """`counts` / `divisor`, most frequent first."""
    return {name: n / divisor for name, n in counts.most_common()}
