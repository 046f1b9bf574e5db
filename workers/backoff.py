"""The one backoff formula: exponential, capped, with jitter.

    backoff(attempt, base=b, cap=c) = min(c, b * 2**attempt) * uniform(0.5, 1)

Half of each wait is fixed, so retries never bunch at zero; the other half is random, so many
workers that failed together do not retry together. `attempt` counts from 0. Used by the API
transport's in-call retries, enrichment's deferrals and delivery retries.
"""

from __future__ import annotations

import random
from typing import Protocol


class Uniform(Protocol):
    def uniform(self, a: float, b: float, /) -> float: ...


def backoff(attempt: int, *, base: float, cap: float, rng: Uniform = random) -> float:
    return float(min(cap, base * 2.0**attempt) * rng.uniform(0.5, 1.0))
