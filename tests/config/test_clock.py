"""The timestamp format RQ's job records and our log lines share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rq.utils import utcparse

from config.clock import utc_now_text
from workers.timestamps import parse_time


@pytest.mark.parametrize("now", [0.0, 1_764_286_800.5, 1_764_286_800.999999, 1_764_286_801.000001])
def test_the_text_is_what_rq_and_our_parser_read_back(now: float) -> None:
    text = utc_now_text(now)
    expected = datetime.fromtimestamp(now, UTC)
    assert utcparse(text) == expected.replace(microsecond=utcparse(text).microsecond)
    assert abs((parse_time(text) - expected).total_seconds()) < 1e-5
    assert text.endswith("Z") and len(text) == len("2026-11-27T23:40:00.123456Z")


def test_consecutive_seconds_are_formatted_afresh() -> None:
    assert utc_now_text(1_764_286_800.25).startswith("2025-11-27T23:40:00.25")
    assert utc_now_text(1_764_286_801.5).startswith("2025-11-27T23:40:01.5")
