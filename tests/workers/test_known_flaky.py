"""Known-flaky tests: Insights' answer in either casing, matched to failed tests."""

from __future__ import annotations

import pytest

from workers.known_flaky import FlakyIndex, compact, supported

pytestmark = pytest.mark.unit

KEBAB = {"test-name": "test_login", "classname": "tests.auth", "file": "tests/auth.py", "job-name": "test",
         "times-flaked": 7, "time-wasted": 30}  # fmt: skip
SNAKE = {k.replace("-", "_"): v for k, v in KEBAB.items()}


@pytest.mark.parametrize("item", [KEBAB, SNAKE], ids=["kebab-case (the spec)", "snake_case (the live API)"])
def test_both_casings_are_read(item: dict) -> None:
    [row] = compact([item])
    assert row == {"test_name": "test_login", "classname": "tests.auth", "file": "tests/auth.py", "job_name": "test",
                   "times_flaked": 7}  # fmt: skip


@pytest.mark.parametrize(
    "item", [{}, {"test_name": "x"}, {"test_name": None, "times_flaked": 1}, {"times_flaked": "7"}]
)
def test_malformed_entries_are_left_out(item: dict) -> None:
    assert compact([item]) == []


@pytest.mark.parametrize(
    ("job", "test", "times"),
    [
        ("test", {"name": "test_login", "classname": "tests.auth", "file": None}, 7),
        ("test", {"name": "test_login", "classname": None, "file": "tests/auth.py"}, 7),
        ("test", {"name": "test_login", "classname": "other", "file": "other.py"}, None),
        ("lint", {"name": "test_login", "classname": "tests.auth"}, None),  # flaky in another job
        ("test", {"name": "test_logout", "classname": "tests.auth"}, None),
    ],
)
def test_a_failed_test_matches_on_name_job_and_classname_or_file(job: str, test: dict, times: int | None) -> None:
    assert FlakyIndex(compact([KEBAB])).times(job, test) == times


def test_circleci_slugs_are_not_supported_by_insights() -> None:
    assert supported("gh/org/repo") and supported("github/org/repo") and not supported("circleci/abc/def")
