"""Permissions: the routes file's `actions:` allow-list, default deny, users and groups, scoped by globs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from config.errors import ConfigurationError
from workers.routes_file import load_routes

BASE = "handlers:\n  a: {type: log}\nsubscriptions: []\n"
ACTIONS = """
actions:
  approve:
    - users: [U0ADA]
      projects: ["gh/acme/*"]
      branches: [main]
    - groups: [S0RELEASE]
      jobs: ["hold-*"]
  rerun:
    - users: [U0ADA, U0GRACE]
"""
GROUPS = {"S0RELEASE": frozenset({"U0GRACE"})}


def permissions(tmp_path: Path, text: str = ACTIONS) -> Any:
    path = tmp_path / "routes.yaml"
    path.write_text(BASE + textwrap.dedent(text))
    return load_routes(path, {}).permissions


def approval(project: str = "gh/acme/api", branch: str = "main", job: str = "hold-prod") -> dict[str, Any]:
    return {"event_type": "approval-pending", "project": {"slug": project}, "vcs": {"branch": branch},
            "workflow": {"name": "deploy"}, "job": {"name": job}}  # fmt: skip


def members(group: str) -> frozenset[str]:
    return GROUPS.get(group, frozenset())


@pytest.mark.parametrize(
    ("action", "user", "event", "allowed"),
    [
        ("approve", "U0ADA", approval(), True),
        ("approve", "U0ADA", approval(project="gh/other/api"), False),  # a project the grant does not cover
        ("approve", "U0ADA", approval(branch="feature"), False),
        ("approve", "U0GRACE", approval(project="gh/other/api"), True),  # through the group, any project
        ("approve", "U0GRACE", approval(job="deploy-now"), False),
        ("approve", "U0EVE", approval(), False),  # named nowhere
        ("cancel", "U0ADA", approval(), False),  # no grant for the action: default deny
        ("rerun", "U0GRACE", approval(), True),
    ],
)
def test_a_user_may_act_only_where_a_grant_names_them_and_covers_the_event(tmp_path, action, user, event, allowed):
    assert permissions(tmp_path).allows(action, user, event, members) is allowed


def test_without_an_actions_section_nobody_may_do_anything(tmp_path) -> None:
    assert not permissions(tmp_path, "").allows("approve", "U0ADA", approval(), members)


def test_a_refusal_names_who_may(tmp_path) -> None:
    loaded = permissions(tmp_path)
    assert loaded.who("approve", approval()) == "<@U0ADA>, <!subteam^S0RELEASE>"
    assert "nobody may" in loaded.who("cancel", approval())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("actions:\n  aprove:\n    - users: [U0ADA]\n", "did you mean 'approve'?"),
        ("actions:\n  approve:\n    - users: [ada]\n", "'ada' is not a Slack user id (U… or W…)"),
        ("actions:\n  approve:\n    - groups: [U0ADA]\n", "'U0ADA' is not a Slack user group id (S…)"),
        ("actions:\n  approve:\n    - projects: ['gh/*']\n", "names nobody"),
        ("actions:\n  approve:\n    - users: [U0ADA]\n      branch: [main]\n", "did you mean 'branches'?"),
        ("actions:\n  approve: {users: [U0ADA]}\n", "expected a list of grants"),
        ("actions:\n  approve:\n    - users: [U0ADA]\n      jobs: ['/[/']\n", "invalid regex"),
    ],
)  # fmt: skip
def test_check_config_refuses_a_wrong_actions_section_naming_the_line(tmp_path, text, problem) -> None:
    with pytest.raises(ConfigurationError) as caught:
        permissions(tmp_path, text)
    assert problem in caught.value.message and ", line " in caught.value.message
