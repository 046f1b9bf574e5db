"""What counts as our webhook differing: the visible fields, and a masked secret's visible tail."""

from __future__ import annotations

import pytest

from service.cli.project_webhooks import Desired, Outcome, differences, secret_may_match
from workers.circleci.models import Webhook

DESIRED = Desired(url="https://events.example.com/webhooks/circleci", secret="s3cret-A1b2")


@pytest.mark.parametrize(
    ("masked", "may_match"),
    [
        ("xxxxA1b2", True),  # project variables' mask: xxxx and the last four
        ("****A1b2", True),
        ("xxxxZ9y8", False),
        ("xxxx", True),  # shows nothing: cannot tell, so not called different
        ("****", True),
        ("", False),  # no secret set
        (None, False),
    ],
)
def test_a_masked_secret_may_match_when_its_visible_tail_ends_ours(masked, may_match):
    assert secret_may_match(masked, DESIRED.secret) is may_match


@pytest.mark.parametrize(
    ("fields", "changed"),
    [
        ({}, []),
        ({"events": ["job-completed", "workflow-completed"]}, []),  # order does not matter
        ({"events": ["workflow-completed"]}, ["events"]),
        ({"verify-tls": False}, ["verify-tls"]),
        ({"verify_tls": False}, ["verify-tls"]),  # the 2026 spelling
        ({"name": "renamed"}, ["name"]),
        ({"signing-secret": "xxxxZ9y8"}, ["signing-secret"]),
    ],
)
def test_differences_name_the_fields_that_are_not_as_desired(fields, changed):
    webhook = {
        "name": "circleci-events",
        "url": DESIRED.url,
        "events": ["workflow-completed", "job-completed"],
        "verify-tls": True,
        "signing-secret": "xxxxA1b2",
    }
    if "verify_tls" in fields:
        del webhook["verify-tls"]

    assert differences(Webhook.from_dict(webhook | fields), DESIRED) == changed


def test_the_desired_webhook_and_outcomes_never_show_the_secret():
    outcome = Outcome("gh/acme/api", "updated", "signing-secret", dry_run=True)

    assert DESIRED.secret not in repr(DESIRED)
    assert outcome.line() == "gh/acme/api: would update (signing-secret)"
    assert Outcome("gh/acme/api", "failed", "CircleCI API answered 403").line() == (
        "gh/acme/api: failed: CircleCI API answered 403"
    )
