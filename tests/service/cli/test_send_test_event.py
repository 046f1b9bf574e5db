"""`circleci-events send-test-event`: a signed sample webhook, posted to a running receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from config.settings import Settings
from service.app import create_app
from tests.conftest import SECRET
from tests.server import running
from tests.service.cli.conftest import assert_one_clear_line, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver(redis_url: str) -> Iterator[str]:
    settings = Settings.from_environ(
        {"REDIS_URL": redis_url, "CIRCLECI_WEBHOOK_SECRETS": f"old-webhook-secret,{SECRET}"}
    )
    with running(create_app(settings)) as base:
        yield base


def send(*args: str, env: dict[str, str] | None = None) -> dict:
    result = run_cli("send-test-event", *args, "--json", env=env or {})
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.mark.parametrize(
    ("event_type", "status", "answer"),
    [
        ("workflow-completed", "failed", (202, "queued")),
        ("job-completed", "success", (202, "queued")),
        ("ping", "success", (200, "ping")),
    ],
)
def test_the_receiver_accepts_the_signed_sample(receiver: str, event_type: str, status: str, answer: tuple) -> None:
    sent = send("--url", receiver, "--type", event_type, "--status", status, "--secret", SECRET)
    assert (sent["status_code"], sent["answer"]["status"]) == answer
    assert sent["answer"]["event_id"] == sent["sent_event_id"]


def test_each_sample_has_a_new_id(receiver: str) -> None:
    first, second = (send("--url", receiver + "/webhooks/circleci", "--secret", SECRET) for _ in range(2))
    assert first["sent_event_id"] != second["sent_event_id"]
    assert second["answer"]["status"] == "queued"


def test_the_secret_defaults_to_the_first_configured_one(receiver: str) -> None:
    sent = send("--url", receiver, env={"CIRCLECI_WEBHOOK_SECRETS": f"{SECRET},newer-webhook-secret"})
    assert sent["status_code"] == 202


def test_the_text_output_names_the_event_and_the_answer(receiver: str) -> None:
    result = run_cli("send-test-event", "--url", receiver, "--status", "failed", "--secret", SECRET, env={})
    assert result.code == 0, result.err
    assert result.out.startswith("sent workflow-completed (failed) event ")
    assert result.out.splitlines()[1].startswith('202 {"event_id"')


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (("--secret", "wrong"), 1, "answered 401 signature_invalid: circleci-signature does not match"),
        ((), 2, "no signing secret: pass --secret or set CIRCLECI_WEBHOOK_SECRETS"),
    ],
    ids=["wrong-secret", "no-secret"],
)
def test_a_refused_or_unsigned_event_fails_in_one_line(receiver: str, args: tuple, code: int, expected: str) -> None:
    result = run_cli("send-test-event", "--url", receiver, *args, env={})
    assert_one_clear_line(result, code)
    assert expected in result.err
    assert "wrong" not in result.err


@pytest.mark.parametrize(
    ("url", "code", "expected"),
    [
        ("http://127.0.0.1:1", 1, "cannot reach http://127.0.0.1:1/webhooks/circleci (ConnectError)"),
        ("ftp://example.com", 2, "--url must be an http:// or https:// URL"),
    ],
    ids=["unreachable", "not-http"],
)
def test_a_bad_url_fails_in_one_line(url: str, code: int, expected: str) -> None:
    result = run_cli("send-test-event", "--url", url, "--secret", SECRET, env={})
    assert_one_clear_line(result, code)
    assert expected in result.err
