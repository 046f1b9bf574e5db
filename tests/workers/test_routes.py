"""Routes: which subscriptions an event matches, and the first key it fails and why."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from workers.routes_file import load_routes
from workers.vcs import slug_forms

FIXTURE = Path(__file__).parents[1] / "fixtures" / "enriched" / "workflow-completed.failed.json"
CONFIG = Path(__file__).parents[2] / "config"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def routes(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Any:
    return load_routes(write(tmp_path, text), environ or {})


def event(**changes: Any) -> dict[str, Any]:
    data = json.loads(FIXTURE.read_text())
    for dotted, value in changes.items():
        section, _, field = dotted.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return data


BASE = "handlers:\n  a: {type: log}\n  b: {type: log}\nsubscriptions:\n  - name: s\n    handlers: [a]\n"
MATCHING = [
    ("events: workflow-completed", {}, True),
    ("events: [job-completed]", {}, False),
    ("projects: 'github/circleci/*'", {}, True),
    ("projects: 'gh/circleci/*'", {}, True),
    ("projects: 'gh/circleci/*'", {"project__slug": "github/circleci/x"}, True),
    ("projects: 'github/acme/*'", {}, False),
    ("projects: 'bitbucket/acme/api'", {"project__slug": "bb/acme/api"}, True),
    ("projects: 'circleci/*'", {"project__slug": "circleci/org-id/project-id"}, True),
    ("branches: main", {}, True),
    ("branches: Main", {}, False),
    ("branches: 'ma*'", {}, True),
    ("branches: ['release/*', main]", {}, True),
    ("branches: '/ma(in|ster)/'", {}, True),
    ("branches: '/ma/'", {}, False),
    ("branches: main", {"vcs__branch": None}, False),
    ("tags: 'v*'", {"vcs__tag": "v1.2.0", "vcs__branch": None}, True),
    ("tags: 'v*'", {}, False),
    ("workflows: build-test-deploy", {}, True),
    ("workflows: '/build-.*/'", {}, True),
    ("workflows: nightly", {}, False),
    ("workflows: nightly", {"workflow": None}, False),
    ("jobs: test", {}, True),
    ("jobs: deploy", {}, False),
    ("jobs: deploy", {"event_type": "job-completed", "job": {"name": "deploy"}}, True),
    ("jobs: test", {"event_type": "job-completed", "job": {"name": "deploy"}}, False),
    ("statuses: [failed, error]", {}, True),
    ("statuses: success", {}, False),
    ("transitions: [broken, fixed]", {}, True),
    ("transitions: fixed", {}, False),
    ("transitions: broken", {"transition": None}, False),
    ("branches: main\n    statuses: success", {}, False),
    ("branches: main\n    statuses: failed", {}, True),
]  # fmt: skip


@pytest.mark.parametrize(("keys", "changes", "matches"), MATCHING)
def test_match_keys(tmp_path: Path, keys: str, changes: dict[str, Any], matches: bool) -> None:
    loaded = routes(tmp_path, BASE + f"    {keys}\n")
    assert loaded.match(event(**changes)) == (["a"] if matches else [])


def test_a_missing_key_matches_everything(tmp_path: Path) -> None:
    assert routes(tmp_path, BASE).match({}) == ["a"]


def test_a_handler_named_by_two_subscriptions_is_delivered_once_in_stable_order(tmp_path: Path) -> None:
    loaded = routes(
        tmp_path,
        BASE + "  - name: t\n    handlers: [b, a]\n    statuses: failed\n  - name: u\n    handlers: [a]\n",
    )
    assert loaded.match(event()) == ["a", "b"]
    assert [s.name for s in loaded.matching_subscriptions(event())] == ["s", "t", "u"]
    assert [s.name for s in loaded.matching_subscriptions(event(status="success"))] == ["s", "u"]


@pytest.mark.parametrize(
    ("slug", "forms"),
    [("github/a/b", ("github/a/b", "gh/a/b")), ("gh/a/b", ("gh/a/b", "github/a/b")),
     ("bitbucket/a/b", ("bitbucket/a/b", "bb/a/b")), ("bb/a/b", ("bb/a/b", "bitbucket/a/b")),
     ("circleci/o/p", ("circleci/o/p",)), ("gh", ("gh",))],
)  # fmt: skip
def test_slug_forms(slug: str, forms: tuple[str, ...]) -> None:
    assert slug_forms(slug) == forms


@pytest.mark.parametrize(
    ("keys", "changes", "why"),
    [
        ("branches: 'release/*'", {}, "branches: 'main' does not match [release/*]"),
        ("statuses: failed", {"status": "success"}, "statuses: 'success' not in [failed]"),
        ("statuses: [failed, error]\n    branches: main", {"status": "success"},
         "statuses: 'success' not in [failed, error]"),
        ("branches: main\n    statuses: [failed]", {"vcs__branch": "dev", "status": "success"},
         "branches: 'dev' not in [main]"),  # the first key that fails, in file order
        ("transitions: broken", {"transition": None}, "transitions: none (no transition known)"),
        ("tags: 'v*'", {}, "tags: none (not a tag build)"),
        ("jobs: deploy", {}, "jobs: none of 'build', 'test', 'hold' is in [deploy]"),
        ("workflows: '/nightly-.*/'", {}, "workflows: 'build-test-deploy' does not match [/nightly-.*/]"),
        ("projects: 'gh/acme/*'", {}, "projects: none of 'github/circleci/webhook-service', "
         "'gh/circleci/webhook-service' matches [gh/acme/*]"),
        ("branches: main\n    statuses: failed", {}, None),
    ],
)  # fmt: skip
def test_a_subscription_says_the_first_key_an_event_fails_and_why(
    tmp_path: Path, keys: str, changes: dict[str, Any], why: str | None
) -> None:
    [(subscription, mismatch)] = routes(tmp_path, BASE + f"    {keys}\n").explain(event(**changes))
    assert subscription.name == "s"
    assert (None if mismatch is None else str(mismatch)) == why
    assert subscription.matches(event(**changes)) is (why is None)  # one place decides both


def test_an_approval_pending_event_goes_only_to_subscriptions_that_name_it(tmp_path: Path) -> None:
    loaded = routes(
        tmp_path,
        BASE.replace("handlers: [a]", "handlers: [a]\n    branches: [main]")
        + "  - {name: approvals, handlers: [b], events: [approval-pending], branches: [main]}\n",
    )
    approval = event(event_type="approval-pending", status="on_hold", transition=None)
    assert loaded.match(approval) == ["b"]
    assert (
        str(loaded.explain(approval)[0][1]) == "events: 'approval-pending' not in [workflow-completed, job-completed]"
    )
    assert loaded.match(event()) == ["a"]  # the webhook's events as before
    assert (loaded.listens_for("approval-pending"), routes(tmp_path, BASE).listens_for("approval-pending")) == (
        True,
        False,
    )
