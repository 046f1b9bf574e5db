"""The failing step: which step broke, and its tail read without the token."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from config.errors import LogTailUnavailable
from workers.circleci.client import CircleCIClient
from workers.circleci.step_output import StepOutput
from workers.failed_step import StepReader, failing_action
from workers.secret_mask import MASK, SecretMask

pytestmark = pytest.mark.unit
TOKEN = "api-token-never-at-storage"


def action(status: str, **more: Any) -> dict[str, Any]:
    return {"index": 0, "status": status, "exit_code": 0 if status == "success" else None} | more


def job(*steps: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"steps": [{"name": name, "actions": actions} for name, actions in steps]}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (job(("checkout", [action("success")]), ("make", [action("failed", exit_code=2)])), ("make", 0)),
        # the no-output timeout: `failed` and `exit_code` null, status timedout
        (job(("checkout", [action("success")]), ("hang", [action("timedout", failed=None)])), ("hang", 0)),
        # a background service is canceled when the job ends: not what broke
        (job(("postgres", [action("canceled", background=True)]), ("test", [action("failed")])), ("test", 0)),
        (job(("redis", [action("failed", background=True)]), ("test", [action("failed")])), ("test", 0)),
        (job(("lint", [action("failed", insignificant=True)]), ("test", [action("failed")])), ("test", 0)),
        (job(("deploy", [action("canceled")]), ("after", [action("infrastructure_fail")])), ("after", 0)),
        # parallel: the first failing node of the first failing step
        (
            job(("test", [action("success", index=0), action("failed", index=3), action("failed", index=1)])),
            ("test", 1),
        ),
        (job(("build", [action("success")]), ("running", [action("running")])), None),
    ],
    ids=[
        "failed",
        "timedout",
        "background-canceled",
        "background-failed",
        "insignificant",
        "infra",
        "parallel",
        "none",
    ],
)
def test_the_failing_step_is_the_first_that_broke(answer: dict[str, Any], expected: tuple[str, int] | None) -> None:
    found = failing_action(answer)
    assert (found[0], found[1]["index"]) == expected if found else expected is None


@pytest.mark.parametrize("answer", [{}, {"steps": []}, {"steps": None}, {"steps": "no"}])
def test_an_answer_without_steps_says_so(answer: dict[str, Any]) -> None:
    with pytest.raises(LogTailUnavailable, match="has no steps"):
        failing_action(answer)


class Recorder:
    """An httpx transport answering the v1.1 job and the storage URL, recording every request."""

    def __init__(self, output: bytes | None, status: int = 206, output_url: str | None = "https://s3.example/out/1"):
        self.requests: list[httpx.Request] = []
        self.output, self.status, self.output_url = output, status, output_url

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "circleci.com":
            failing = action("failed", exit_code=1, output_url=self.output_url, truncated=False)
            return httpx.Response(200, json=job(("Run make -e PASSWORD=ghp_" + "x" * 36, [failing])))
        if self.output is None:
            return httpx.Response(self.status, text="<Error><Code>AccessDenied</Code></Error>")
        return httpx.Response(self.status, content=self.output, headers={"content-range": "bytes 0-9/10"})


def reader(recorder: Recorder, **options: Any) -> StepReader:
    client = CircleCIClient(
        base_url="https://circleci.com/api/v2", token=TOKEN, transport=httpx.MockTransport(recorder)
    )
    output = StepOutput(max_bytes=4096, timeout_seconds=5, transport=httpx.MockTransport(recorder))
    return StepReader(client, output, mask=SecretMask(), **options)


def output(*messages: str) -> bytes:
    return json.dumps([{"message": m, "type": "out"} for m in messages]).encode()


def test_the_token_goes_to_the_api_and_never_to_the_storage_host() -> None:
    recorder = Recorder(output("\x1b[31mboom\x1b[0m\r\n"))
    step = reader(recorder).failed_step("gh/org/repo", 42)
    api, storage = recorder.requests
    assert api.url.path == "/api/v1.1/project/github/org/repo/42" and api.headers["circle-token"] == TOKEN
    assert storage.url.host == "s3.example" and storage.headers["range"] == "bytes=-4096"
    assert TOKEN not in str(storage.headers) and "authorization" not in storage.headers
    assert step == {
        "name": f"Run make -e PASSWORD={MASK}",
        "status": "failed",
        "exit_code": 1,
        "node_index": 0,
        "log_tail": "boom",
        "truncated": False,
        "source": "v1.1",
        "reason": None,
    }


@pytest.mark.parametrize(
    ("recorder", "reason"),
    [
        (Recorder(None, status=403), "answered 403 (expired or refused)"),
        (Recorder(None, status=404), "answered 404 (not found)"),
        (Recorder(b"not json", status=200), "not JSON"),
        (Recorder(output("x"), output_url=None), "no output URL"),
        (Recorder(output("x"), output_url="ftp://s3.example/out"), "not https"),
    ],
    ids=["expired", "gone", "not-json", "no-output-url", "not-https"],
)
def test_an_output_that_cannot_be_had_leaves_the_tail_out_saying_why(recorder: Recorder, reason: str) -> None:
    step = reader(recorder).failed_step("gh/org/repo", 42)
    assert step["log_tail"] is None and reason in str(step["reason"]) and step["name"]


def test_a_storage_host_ignoring_range_is_read_to_its_end_but_not_past_a_bound() -> None:
    big = output(*[f"line {i}\r\n" for i in range(20000)])  # ~470 kB, 16 x 4096 = 64 kB read at most
    step = reader(Recorder(big, status=200)).failed_step("gh/org/repo", 42)
    assert step["log_tail"] is None and "ignores Range" in str(step["reason"])
    small = output(*[f"line {i}\r\n" for i in range(400)])  # ~9 kB: its end is kept
    step = reader(Recorder(small, status=200), max_lines=3).failed_step("gh/org/repo", 42)
    assert step["log_tail"] == "line 397\nline 398\nline 399" and step["truncated"] is True


def test_github_app_and_gitlab_slugs_go_to_v1_1_as_circleci() -> None:
    recorder = Recorder(output("ok"))
    reader(recorder).failed_step("circleci/8a2b-org/5c1d-project", 7)
    assert recorder.requests[0].url.path == "/api/v1.1/project/circleci/8a2b-org/5c1d-project/7"
