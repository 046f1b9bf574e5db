"""Known-flaky tests: Insights' `GET /insights/{project-slug}/flaky-tests`, matched to failed tests.

"A flaky test is a test that passed and failed in the same commit"; `times_flaked` counts over a
rolling 14 days, per job (/work/shared/reference/next-features.md, section 2). The spec's fields
are kebab-case, the live API's snake_case: the client's models take both. A failed test is
known to flake when an entry has its test name and job name, and its classname or its file.

Insights does not support `circleci/<org-id>/<project-id>` slugs (GitHub App, GitLab): those are
not asked (`UNSUPPORTED`). The answer is kept per project in Redis for all workers
(workers/circleci/cache.py, FLAKY_TESTS_TTL_SECONDS).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["UNSUPPORTED", "FlakyIndex", "compact", "supported"]

UNSUPPORTED = "Insights does not support circleci/ project slugs (GitHub App, GitLab): no known-flaky marks"
_FIELDS = ("test_name", "classname", "file", "job_name", "times_flaked")


def supported(slug: str) -> bool:
    return not slug.startswith("circleci/")


def compact(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What is kept of the answer (snake_case keys whichever casing came): the fields matched on."""
    kept = []
    for item in items:
        row = {name: item.get(name, item.get(name.replace("_", "-"))) for name in _FIELDS}
        if isinstance(row["test_name"], str) and isinstance(row["times_flaked"], int):
            kept.append(row)
    return kept


class FlakyIndex:
    """Looks up a failed test among a project's known-flaky tests."""

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._rows: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        for row in rows:
            self._rows.setdefault((str(row.get("job_name") or ""), str(row["test_name"])), []).append(row)

    def times(self, job_name: str | None, test: Mapping[str, Any]) -> int | None:
        """How often the test flaked in the last 14 days in this job; None when it is not known to."""
        for row in self._rows.get((job_name or "", str(test.get("name") or "")), []):
            same_class = bool(row.get("classname")) and row.get("classname") == test.get("classname")
            same_file = bool(row.get("file")) and row.get("file") == test.get("file")
            if same_class or same_file:
                return int(row["times_flaked"])
        return None
