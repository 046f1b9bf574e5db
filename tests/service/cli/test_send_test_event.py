"""`circleci-events send-test-event`: a signed sample webhook, posted to a running receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

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
    assert result.out.startswith("sent workflow-completed (failed, pipeline #42 on main) event ")
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


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict]]]:
    """A receiver that keeps the payloads it is sent (it checks no signature)."""
    received: list[dict] = []

    async def keep(request: Request) -> JSONResponse:
        received.append(json.loads(await request.body()))
        return JSONResponse({"status": "queued"}, status_code=202)

    with running(Starlette(routes=[Route("/webhooks/circleci", keep, methods=["POST"])])) as base:
        yield base, received


@pytest.mark.parametrize(
    ("args", "workflow_status", "branch", "number"),
    [((), "success", "main", 42),
     (("--pipeline", "7", "--branch", "release/2.0", "--status", "failed"), "failed", "release/2.0", 7)],
)  # fmt: skip
def test_the_pipeline_branch_and_status_are_the_ones_asked_for(
    recorder: tuple[str, list[dict]], args: tuple, workflow_status: str, branch: str, number: int
) -> None:
    base, received = recorder
    send("--url", base, "--secret", SECRET, *args)
    [payload] = received
    assert (payload["workflow"]["status"], payload["pipeline"]["vcs"]["branch"]) == (workflow_status, branch)
    assert payload["pipeline"]["number"] == number and f"/{number}/workflows/" in payload["workflow"]["url"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [(("--status", "failure"), "--status 'failure' is not a status: the statuses are success, failed, error, "
                               "canceled, unauthorized; did you mean 'failed'?"),
     (("--type", "job-completed", "--status", "error"), "a job-completed event's status is one of success, failed"),
     (("--pipeline", "0"), "Invalid value for '--pipeline'"),
     (("--branch", "my branch"), "--branch 'my branch' cannot be a branch name")],
    ids=["misspelt-status", "job-error", "pipeline-0", "branch-space"],
)  # fmt: skip
def test_a_value_no_webhook_could_carry_exits_2(args: tuple, expected: str) -> None:
    result = run_cli("send-test-event", "--url", "http://127.0.0.1:1", "--secret", SECRET, *args, env={})
    assert_one_clear_line(result, 2)
    assert expected in result.err


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
