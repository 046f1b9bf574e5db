"""Delivery: one RQ job per (event, handler), posted once.

    fan_out.py       store the enriched event, queue one delivery job per handler
    jobs.py          delivery ids, how a delivery job is queued, and the job `deliver`
    attempt.py       one run of the job: check, lock, send, record, retry or dead-letter
    lock.py          the keys that make a delivery's effect happen once
    dead_letters.py  deliveries that ran out of retries or were refused
    replay.py        queue them again

Exactly-once effect: a success is recorded per delivery (`cie:delivered:<delivery_id>`, SET NX)
and a delivery that finds it does nothing unless forced; a short lock (`cie:lock:<delivery_id>`,
SET NX PX) held while sending keeps two workers from posting the same delivery at once.

`deliver` is exported here: RQ imports it by the dotted name stored with every queued job,
`workers.delivery.deliver`.
"""

from workers.delivery.attempt import deliver

__all__ = ["deliver"]
