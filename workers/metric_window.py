"""The alerting counters counted again in Redis, per minute, so that any process (the console in the
web process) can tell what `increase(counter[15m])` is, summed over every web and worker process
as Prometheus sums them.

    cie:count:<series>:<minute>   hash   JSON of the label values, sorted ({"reason": "rejected"}) -> count
                                         of that minute (epoch seconds // 60); expires TTL_SECONDS after it
                                         (after a worker process's first count of it: see `count`)

`count(pipe, ...)` is queued on the same pipeline, sync or asyncio, wherever the Prometheus counter
is incremented (workers/alerts.py `counted`, the web's signature check), so the two cannot count
differently. `increase(...)` adds up the minutes a window touches: the oldest minute is counted
whole, so a window may hold up to a minute more than Prometheus's extrapolated `increase`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter
from redis import Redis

from workers.event_index import KeyRefresh
from workers.store import text

PREFIX = "cie:count:"
MINUTE = 60
TTL_SECONDS = 2 * 3600  # the longest window a rule may use (workers/alert_rules.py checks)
Labels = tuple[tuple[str, str], ...]
# The counters the alert rules watch, as Prometheus names their series.
COUNTED = frozenset({
    "circleci_events_dead_letters_total",
    "circleci_events_enrichments_total",
    "circleci_events_alerts_total",
    "circleci_events_signature_failures_total",
})  # fmt: skip


def series(counter: Counter) -> str:
    """The series a Prometheus counter shows on /metrics: its name and `_total`."""
    (family,) = counter.describe()
    return f"{family.name}_total"


def key(series: str, minute: int) -> str:
    return f"{PREFIX}{series}:{minute}"


def count(
    pipe: Any, series: str, labels: Mapping[str, str], now: float, n: int = 1, *, refresh: KeyRefresh | None = None
) -> None:
    """Queue on `pipe` (a redis-py pipeline, sync or asyncio) one more of `series` with `labels` at `now`.

    With `refresh` (a worker process's, held by its context), the minute's key gets its EXPIRE only
    with the process's first count of it, not with every one: a minute's key is written within
    that minute, so a TTL set then still outlasts every window (one command less per event)."""
    if series not in COUNTED:
        raise ValueError(f"{series} is not one of metric_window.COUNTED")
    name = key(series, int(now // MINUTE))
    pipe.hincrby(name, json.dumps(dict(labels), sort_keys=True), n)
    if refresh is None or refresh.due(name, now, TTL_SECONDS):
        pipe.expire(name, TTL_SECONDS)


def increase(redis: Redis, series: str, seconds: float, now: float) -> dict[Labels, float]:
    """How many of `series` were counted in the last `seconds`, per label set."""
    last = int(now // MINUTE)
    first = int((now - seconds) // MINUTE)
    with redis.pipeline(transaction=False) as pipe:
        for minute in range(first, last + 1):
            pipe.hgetall(key(series, minute))
        minutes = pipe.execute()
    total: dict[Labels, float] = {}
    for counts in minutes:
        for field, value in counts.items():
            labels = tuple(sorted(json.loads(text(field)).items()))
            total[labels] = total.get(labels, 0) + int(value)
    return total
