"""The lenient timestamp parser: every format CircleCI sends, UTC out, None for garbage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.timestamps import duration_seconds, iso_time, parse_time


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # happened_at, 3 and 6 fractional digits (DOCS-REF samples)
        ("2021-09-01T22:49:34.317Z", datetime(2021, 9, 1, 22, 49, 34, 317000, tzinfo=UTC)),
        ("2022-05-27T16:20:13.954328Z", datetime(2022, 5, 27, 16, 20, 13, 954328, tzinfo=UTC)),
        ("2021-09-01T22:48:53Z", datetime(2021, 9, 1, 22, 48, 53, tzinfo=UTC)),
        # gitlab.commit_timestamp
        ("2022-04-13T11:10:16+00:00", datetime(2022, 4, 13, 11, 10, 16, tzinfo=UTC)),
        ("2022-04-13T13:10:16+02:00", datetime(2022, 4, 13, 11, 10, 16, tzinfo=UTC)),
        # circleci.event_time as observed (Go's time.Time.String(), nanoseconds cut to micro)
        ("2024-12-18 17:23:29.361740256 +0000 UTC", datetime(2024, 12, 18, 17, 23, 29, 361740, tzinfo=UTC)),
        ("2024-12-18 10:23:29.5 -0700 MST", datetime(2024, 12, 18, 17, 23, 29, 500000, tzinfo=UTC)),
        ("2024-12-18 17:23:29 +0000 UTC m=+0.000000001", datetime(2024, 12, 18, 17, 23, 29, tzinfo=UTC)),
        ("2024-12-18T17:23:29.361740256Z", datetime(2024, 12, 18, 17, 23, 29, 361740, tzinfo=UTC)),
        # naive: CircleCI's times are UTC
        ("2024-12-18T17:23:29", datetime(2024, 12, 18, 17, 23, 29, tzinfo=UTC)),
        ("  2021-09-01T22:48:53Z\n", datetime(2021, 9, 1, 22, 48, 53, tzinfo=UTC)),
        (datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), datetime(2024, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_time_reads_every_circleci_format_as_utc(value: object, expected: datetime) -> None:
    parsed = parse_time(value)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "garbage",
        "yesterday",
        1734542609,
        1734542609.5,
        True,
        ["2021-09-01T22:48:53Z"],
        {"at": "2021-09-01T22:48:53Z"},
        "2021-13-01T22:48:53Z",
        "2021-02-30T00:00:00Z",
        "2021-09-01T25:00:00Z",
        "\uff12\uff10\uff12\uff11-09-01T22:48:53Z",  # fullwidth digits
        "2021-W35-3",  # ISO week date: valid ISO, never sent, more likely garbage
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "2024-12-18 17:23:29 UTC",  # Go-like without the numeric offset
    ],
)
def test_parse_time_returns_none_for_garbage(value: object) -> None:
    assert parse_time(value) is None


@given(st.one_of(st.text(), st.from_regex(r"\d{4}-\d{2}-\d{2}[T ][\d:.+ -]{0,40}[A-Z]{0,4}", fullmatch=True)))
def test_parse_time_never_raises_on_any_string(value: str) -> None:
    parsed = parse_time(value)
    assert parsed is None or parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("start", "stop", "expected"),
    [
        ("2021-09-01T22:49:03.616Z", "2021-09-01T22:49:34.170Z", 30.554),
        ("2022-05-27T16:20:07.631Z", "2022-05-27T16:20:13.954328Z", 6.323328),
        ("2024-12-18 17:23:29.361740256 +0000 UTC", "2024-12-18T17:23:30.361740Z", 1.0),
        # a canceled workflow's first delivery has stopped_at == created_at (CANNY-CANCEL)
        ("2021-09-01T22:49:03.616Z", "2021-09-01T22:49:03.616Z", 0.0),
    ],
)
def test_duration_seconds_measures_between_two_timestamps(start: str, stop: str, expected: float) -> None:
    assert duration_seconds(start, stop) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("start", "stop"),
    [
        ("2021-09-01T22:49:03.616Z", None),  # stopped_at is absent while a workflow runs
        (None, "2021-09-01T22:49:03.616Z"),
        ("2021-09-01T22:49:03.616Z", ""),
        ("garbage", "2021-09-01T22:49:03.616Z"),
        ("2021-09-01T22:49:34.170Z", "2021-09-01T22:49:03.616Z"),  # stop before start
    ],
)
def test_duration_seconds_is_none_when_either_end_is_missing_or_backwards(start: object, stop: object) -> None:
    assert duration_seconds(start, stop) is None


@pytest.mark.parametrize(
    ("epoch", "text"),
    [(0.0, "1970-01-01T00:00:00.000000Z"), (1767225600.25, "2026-01-01T00:00:00.250000Z"), (None, None)],
)
def test_iso_time_writes_an_epoch_time_as_utc_iso_8601_that_parse_time_reads_back(
    epoch: float | None, text: str | None
) -> None:
    assert iso_time(epoch) == text
    if epoch is not None:
        assert parse_time(text) == datetime.fromtimestamp(epoch, UTC)
