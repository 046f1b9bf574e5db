"""How `run` sees the routes file change: once per new content, after it held still for a look."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.cli.routes_watch import RoutesWatch

FILE = "handlers: {audit: {type: log}}\n"


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(FILE)
    return path


def write(path: Path, text: str, *, later_by_ns: int = 10**9) -> None:
    """Write `text` and move the modification time on (some file systems tick only every few ms)."""
    mtime = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(mtime + later_by_ns, mtime + later_by_ns))


def looks(watch: RoutesWatch, count: int) -> list[bool]:
    return [watch.changed() for _ in range(count)]


def test_an_untouched_file_never_counts_as_changed(routes: Path) -> None:
    assert looks(RoutesWatch(routes), 5) == [False] * 5


def test_a_new_content_counts_once_when_it_held_still_for_a_look(routes: Path) -> None:
    watch = RoutesWatch(routes)
    write(routes, FILE.replace("audit", "ops"))
    assert looks(watch, 4) == [False, True, False, False]


def test_a_save_in_two_steps_counts_once_written(routes: Path) -> None:
    watch = RoutesWatch(routes)
    write(routes, "")  # an editor truncates ...
    assert watch.changed() is False
    write(routes, FILE.replace("audit", "ops"))  # ... then writes, before the next look
    assert looks(watch, 3) == [False, True, False]


def test_a_save_without_edits_is_no_change(routes: Path) -> None:
    watch = RoutesWatch(routes)
    write(routes, FILE)
    assert looks(watch, 3) == [False, False, False]


def test_a_file_replaced_by_a_rename_counts(routes: Path) -> None:
    watch = RoutesWatch(routes)
    replacement = routes.with_suffix(".tmp")
    write(replacement, FILE.replace("audit", "ops"))
    replacement.replace(routes)
    assert looks(watch, 2) == [False, True]


def test_a_file_that_went_missing_counts_and_so_does_its_return(routes: Path) -> None:
    watch = RoutesWatch(routes)
    routes.unlink()
    assert looks(watch, 2) == [False, True]  # the workers say they cannot read it and keep their routes
    write(routes, FILE)
    assert looks(watch, 2) == [False, True]
