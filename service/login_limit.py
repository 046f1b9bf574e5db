"""Failed logins per client address, in this process: the admin API's bearer token and the console's form.

After BURST failures an address may try once more per REFILL_SECONDS; a try costs nothing until
it fails, and even the right token waits while the address is blocked (guessing is not
rewarded). One LoginLimit serves both doors of a web process (service/app.py), so guesses at
one count at the other. Each failure is logged by the door, without the token given.
"""

from __future__ import annotations

from config.clock import SYSTEM_CLOCK, Clock
from service.client_limit import ClientLimit

BURST = 5
REFILL_SECONDS = 30.0


class LoginLimit:
    """Failed logins per client address: BURST, then one per REFILL_SECONDS."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.buckets = ClientLimit(burst=BURST, per_second=1 / REFILL_SECONDS, clock=clock)

    def blocked_for(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now (a try costs nothing until it fails)."""
        wait = self.buckets.take(client)
        if wait == 0:
            self.buckets.charge(client, -1)  # only a failure pays
        return wait

    def failed(self, client: str) -> None:
        self.buckets.charge(client, 1)
