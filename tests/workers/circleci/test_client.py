"""CircleCIClient over httpx.MockTransport: errors, retries, pagination, endpoints, secrecy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from config.errors import (
    CircleCIAPIError,
    CircleCIBadRequest,
    CircleCIForbidden,
    CircleCIInvalidResponse,
    CircleCIJobNumberMissing,
    CircleCINotFound,
    CircleCIPaginationError,
    CircleCIPathInvalid,
    CircleCIRateLimited,
    CircleCIRedirectRefused,
    CircleCIServerError,
    CircleCITimeout,
    CircleCIUnauthorized,
    CircleCIUnreachable,
)
from config.settings import Settings
from tests.workers.conftest import TOKEN, api_fixture
from workers.circleci.client import CircleCIClient, parse_retry_after
from workers.circleci.models import Job, TestResult

SLUG = "gh/circleci/webhook-service"


def answer(status: int = 200, body: object = None, text: str | None = None, **headers: str):
    """A handler answering every request the same way."""

    def handler(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        return httpx.Response(status, json=body if body is not None else {}, headers=headers)

    return handler


def sequence(*responses: httpx.Response | Exception, seen: list[httpx.Request] | None = None):
    """A handler answering with each response (or raising each exception) in turn."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler


# -- error mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "text", "error_class", "says"),
    [
        (401, {"message": "You must log in first"}, None, CircleCIUnauthorized, "personal API token"),
        (401, None, None, CircleCIUnauthorized, "project tokens are not supported"),
        (403, {"message": "Permission denied."}, None, CircleCIForbidden, "Permission denied."),
        (404, {"message": "Project not found"}, None, CircleCINotFound, "invalid token on a private"),
        (400, {"error": "OwnerID: must be a valid UUID."}, None, CircleCIBadRequest, "OwnerID"),
        (409, None, "conflict", CircleCIBadRequest, "conflict"),
        (429, {"message": "Rate limit exceeded."}, None, CircleCIRateLimited, "Rate limit exceeded."),
        (429, None, "Rate limited.", CircleCIRateLimited, "Rate limited."),
        (500, {"message": "Internal server error."}, None, CircleCIServerError, "Internal server"),
        (502, None, "<html>Bad Gateway</html>", CircleCIServerError, "Bad Gateway"),
    ],
)
def test_error_statuses_map_to_error_classes_naming_status_method_and_path(
    make_client, status, body, text, error_class, says
):
    client = make_client(answer(status, body, text), max_retries=0)

    with pytest.raises(error_class) as caught:
        client.workflow("wf-1")

    error = caught.value
    assert (error.status, error.method, error.path) == (status, "GET", "/workflow/wf-1")
    assert f"{status} to GET /workflow/wf-1" in error.message
    assert says in error.message
    assert error.code.startswith("circleci_")


@pytest.mark.parametrize(
    ("exception", "error_class"),
    [
        (httpx.ReadTimeout("slow"), CircleCITimeout),
        (httpx.ConnectTimeout("slow"), CircleCITimeout),
        (httpx.ConnectError("refused"), CircleCIUnreachable),
        (httpx.RemoteProtocolError("dropped"), CircleCIUnreachable),
    ],
)
def test_transport_failures_map_to_errors_without_status(make_client, exception, error_class):
    client = make_client(sequence(exception), max_retries=0)

    with pytest.raises(error_class) as caught:
        client.me()

    assert caught.value.status is None
    assert (caught.value.method, caught.value.path) == ("GET", "/me")


def test_a_2xx_that_is_not_json_raises_invalid_response(make_client):
    client = make_client(answer(200, text="<html>maintenance</html>"))

    with pytest.raises(CircleCIInvalidResponse, match="not JSON"):
        client.me()


def test_error_paths_never_carry_the_query_string(make_client):
    client = make_client(answer(404, {"message": "Project not found"}))

    with pytest.raises(CircleCINotFound) as caught:
        client.request("GET", "/context?owner-id=x&circle-token=secret")

    assert caught.value.path == "/context"
    assert "secret" not in str(caught.value)


# -- Retry-After and retries --------------------------------------------------------------


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("Fri, 31 Dec 1999 23:59:59", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_http_date(header, seconds):
    assert parse_retry_after(header, now=NOW) == seconds


def test_a_429_then_a_500_then_success_returns_the_answer_after_backing_off(make_client, clock):
    seen: list[httpx.Request] = []
    client = make_client(
        sequence(
            httpx.Response(429, text="Rate limited.", headers={"Retry-After": "2"}),
            httpx.Response(500, json={"message": "oops"}),
            httpx.Response(200, json={"id": "u", "login": "octo", "name": "Octo"}),
            seen=seen,
        )
    )

    user = client.me()

    assert user.login == "octo"
    assert len(seen) == 3
    assert 2.0 <= clock.sleeps[0] <= 2.0 + client.transport.backoff
    assert client.transport.backoff <= clock.sleeps[1] <= 2 * client.transport.backoff  # second try: ceiling 2x


def test_a_429_without_retry_after_backs_off_exponentially(make_client, clock):
    limited = httpx.Response(429, json={"message": "Rate limit exceeded."})
    client = make_client(sequence(limited, limited, limited, httpx.Response(200, json={})))

    client.me()

    assert len(clock.sleeps) == 3
    ceilings = [client.transport.backoff * 2**n for n in range(3)]
    for slept, ceiling in zip(clock.sleeps, ceilings, strict=True):
        assert ceiling / 2 <= slept <= ceiling


def test_a_429_asking_for_more_than_max_wait_raises_at_once_with_the_wait(make_client, clock):
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=600), usegmt=True)
    seen: list[httpx.Request] = []
    client = make_client(
        sequence(httpx.Response(429, text="Rate limited.", headers={"Retry-After": later}), seen=seen),
        max_wait=60,
    )

    with pytest.raises(CircleCIRateLimited) as caught:
        client.me()

    assert 590 <= caught.value.retry_after <= 600
    assert caught.value.details["retry_after"] == caught.value.retry_after
    assert len(seen) == 1
    assert clock.sleeps == []


def test_max_wait_per_call_overrides_the_client_default(make_client, clock):
    client = make_client(sequence(httpx.Response(429, headers={"Retry-After": "20"}), httpx.Response(200, json={})))

    with pytest.raises(CircleCIRateLimited) as caught:
        client.request("GET", "/me", max_wait=5)

    assert caught.value.retry_after == 20
    assert clock.sleeps == []


def test_retries_stop_at_the_deadline_and_raise_the_last_error(make_client, clock):
    seen: list[httpx.Request] = []
    client = make_client(
        sequence(httpx.Response(503, text="unavailable"), seen=seen),
        deadline=5.0,
        max_retries=100,
    )

    with pytest.raises(CircleCIServerError) as caught:
        client.workflow("wf-1")

    assert sum(clock.sleeps) <= 5.0
    assert caught.value.details["attempts"] == len(seen) > 1


def test_retries_stop_after_max_retries(make_client):
    seen: list[httpx.Request] = []
    client = make_client(sequence(httpx.ReadTimeout("slow"), seen=seen), max_retries=2)

    with pytest.raises(CircleCITimeout):
        client.workflow("wf-1")

    assert len(seen) == 3


def test_a_get_is_retried_after_a_timeout(make_client):
    client = make_client(sequence(httpx.ReadTimeout("slow"), httpx.Response(200, json={"id": "wf-1"})))

    assert client.workflow("wf-1").id == "wf-1"


@pytest.mark.parametrize("failure", [httpx.ReadTimeout("slow"), httpx.Response(500, json={"message": "boom"})])
def test_a_trigger_is_not_retried_when_it_may_have_landed(make_client, failure):
    seen: list[httpx.Request] = []
    client = make_client(sequence(failure, httpx.Response(201, json={"id": "p"}), seen=seen))

    with pytest.raises(CircleCIAPIError):
        client.trigger_pipeline(SLUG, branch="main")

    assert len(seen) == 1


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(429, text="Rate limited.", headers={"Retry-After": "1"}),
        httpx.ConnectError("refused"),
    ],
)
def test_a_trigger_is_retried_when_it_surely_did_not_land(make_client, failure):
    seen: list[httpx.Request] = []
    created = {"id": "p-1", "state": "created", "number": 7, "created_at": "2026-01-01T00:00:00Z"}
    client = make_client(sequence(failure, httpx.Response(201, json=created), seen=seen))

    assert client.trigger_pipeline(SLUG, branch="main").number == 7
    assert len(seen) == 2


# -- pagination ---------------------------------------------------------------------------


def paged(pages: dict[str | None, tuple[list[object], str | None]], seen: list[str | None]):
    """A handler serving `pages[page_token] = (items, next_page_token)`."""

    def handler(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("page-token")
        seen.append(token)
        items, next_token = pages[token]
        return httpx.Response(200, json={"items": items, "next_page_token": next_token})

    return handler


def test_pagination_follows_next_page_token_sent_back_as_page_token(make_client):
    pages = {None: ([{"id": "a"}], "t1")} | {
        f"t{n}": ([{"id": f"x{n}"}], f"t{n + 1}" if n < 6 else None) for n in range(1, 7)
    }
    seen: list[str | None] = []
    client = make_client(paged(pages, seen))

    jobs = client.workflow_jobs("wf-1")

    assert [j.id for j in jobs] == ["a", "x1", "x2", "x3", "x4", "x5", "x6"]
    assert seen == [None, "t1", "t2", "t3", "t4", "t5", "t6"]


def test_an_empty_page_with_a_token_is_not_the_end(make_client):
    pages = {None: ([], "t1"), "t1": ([], "t2"), "t2": ([{"name": "late"}], None)}
    seen: list[str | None] = []
    client = make_client(paged(pages, seen))

    assert [t.name for t in client.job_tests(SLUG, 136)] == ["late"]
    assert seen == [None, "t1", "t2"]


def test_a_repeating_page_token_raises_after_yielding_what_came(make_client):
    pages = {None: ([{"id": "a"}], "t1"), "t1": ([{"id": "b"}], "t1")}
    client = make_client(paged(pages, []))
    got: list[object] = []

    with pytest.raises(CircleCIPaginationError, match="already sent") as caught:
        got.extend(client.paginate("/workflow/wf-1/job"))

    assert got == [{"id": "a"}, {"id": "b"}]
    assert caught.value.path == "/workflow/wf-1/job"


def test_pagination_stops_at_the_page_cap_with_an_error(make_client):
    pages = {None: ([1], "t1")} | {f"t{n}": ([n], f"t{n + 1}") for n in range(1, 100)}
    seen: list[str | None] = []
    client = make_client(paged(pages, seen), max_pages=3)

    with pytest.raises(CircleCIPaginationError, match="cap of 3"):
        list(client.paginate("/workflow/wf-1/job"))

    assert len(seen) == 3


def test_a_list_answer_without_items_raises_invalid_response(make_client):
    client = make_client(answer(200, {"jobs": []}))

    with pytest.raises(CircleCIInvalidResponse, match="items"):
        client.workflow_jobs("wf-1")


# -- endpoints and requests ---------------------------------------------------------------


@pytest.mark.parametrize(
    "slug",
    [
        "gh/circleci/webhook-service",
        "github/circleci/webhook-service",
        "bb/team/repo",
        "bitbucket/team/repo",
        "circleci/43G3kM5RtfFE7v5sa4nWAU/44n9pujWcTnVZ2b5S8Fnat",
    ],
)
def test_slugs_are_sent_exactly_as_given_with_slashes_as_path_separators(make_client, slug):
    seen: list[httpx.Request] = []
    client = make_client(sequence(httpx.Response(200, json=api_fixture("get-job-details.synth.json")), seen=seen))

    client.job_details(slug, 136)

    assert seen[0].url.raw_path.decode() == f"/api/v2/project/{slug}/job/136"


@pytest.mark.parametrize("method", ["job_details", "job_tests", "job_artifacts"])
def test_job_endpoints_refuse_a_missing_job_number_before_calling(make_client, method):
    seen: list[httpx.Request] = []
    client = make_client(sequence(httpx.Response(200, json={}), seen=seen))

    with pytest.raises(CircleCIJobNumberMissing, match="approval jobs"):
        getattr(client, method)(SLUG, None)

    assert seen == []


def test_workflow_jobs_are_typed_and_approval_jobs_are_recognised(make_client):
    client = make_client(answer(200, api_fixture("list-workflow-jobs.synth.json")))

    jobs = client.workflow_jobs("wf-1")

    assert [(j.name, j.job_number, j.is_approval) for j in jobs] == [
        ("build", 135, False),
        ("test", 136, False),
        ("hold-for-approval", None, True),
    ]
    assert jobs[1].dependencies == ("0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",)


def test_models_keep_unknown_fields_in_raw_and_default_missing_ones():
    job = Job.from_dict({"name": "deploy/prod", "type": "build", "job_number": 3, "new": 1})
    test = TestResult.from_dict({"result": "failure"})

    assert (job.name, job.status, job.raw["new"], job.is_approval) == ("deploy/prod", None, 1, False)
    assert job.to_dict() == {"name": "deploy/prod", "type": "build", "job_number": 3, "new": 1}
    assert test.failed and test.message is None


@pytest.mark.parametrize(
    ("call", "method", "path", "body"),
    [
        (
            lambda c: c.trigger_pipeline(SLUG, branch="main", parameters={"deploy": True}),
            "POST",
            f"/project/{SLUG}/pipeline",
            {"branch": "main", "parameters": {"deploy": True}},
        ),
        (
            lambda c: c.rerun_workflow("wf-1", from_failed=True),
            "POST",
            "/workflow/wf-1/rerun",
            {"from_failed": True},
        ),
        (
            lambda c: c.rerun_workflow("wf-1", jobs=["j-1"], enable_ssh=True),
            "POST",
            "/workflow/wf-1/rerun",
            {"jobs": ["j-1"], "enable_ssh": True},
        ),
        (
            lambda c: c.create_context("ctx", owner_id="org-1"),
            "POST",
            "/context",
            {"name": "ctx", "owner": {"id": "org-1", "type": "organization"}},
        ),
        (
            lambda c: c.set_context_env_var("ctx-1", "API_KEY", "v"),
            "PUT",
            "/context/ctx-1/environment-variable/API_KEY",
            {"value": "v"},
        ),
        (
            lambda c: c.create_project_env_var(SLUG, "FOO", "bar"),
            "POST",
            f"/project/{SLUG}/envvar",
            {"name": "FOO", "value": "bar"},
        ),
        (
            lambda c: c.create_webhook(
                "p-1", name="ours", url="https://x.test/hook", events=["job-completed"], signing_secret="s"
            ),
            "POST",
            "/webhook",
            {
                "name": "ours",
                "url": "https://x.test/hook",
                "events": ["job-completed"],
                "signing-secret": "s",
                "verify-tls": True,
                "scope": {"id": "p-1", "type": "project"},
            },
        ),
        (lambda c: c.update_webhook("wh-1", signing_secret="new"), "PUT", "/webhook/wh-1", {"signing-secret": "new"}),
        (
            lambda c: c.update_webhook("wh-1", events=["workflow-completed"], verify_tls=False),
            "PUT",
            "/webhook/wh-1",
            {"events": ["workflow-completed"], "verify-tls": False},
        ),
        (lambda c: c.delete_webhook("wh-1"), "DELETE", "/webhook/wh-1", None),
        (lambda c: c.project(SLUG), "GET", f"/project/{SLUG}", None),
        (lambda c: c.cancel_workflow("wf-1"), "POST", "/workflow/wf-1/cancel", None),
        (lambda c: c.approve_job("wf-1", "ap-1"), "POST", "/workflow/wf-1/approve/ap-1", None),
        (lambda c: c.delete_context("ctx-1"), "DELETE", "/context/ctx-1", None),
        (lambda c: c.delete_project_env_var(SLUG, "FOO"), "DELETE", f"/project/{SLUG}/envvar/FOO", None),
    ],
)
def test_operations_send_the_documented_method_path_and_body(make_client, call, method, path, body):
    seen: list[httpx.Request] = []
    client = make_client(sequence(httpx.Response(200, json={"message": "ok"}), seen=seen))

    call(client)

    request = seen[0]
    assert (request.method, request.url.path) == (method, f"/api/v2{path}")
    assert (json.loads(request.content) if request.content else None) == body
    assert request.headers["Circle-Token"] == TOKEN
    assert request.headers["Accept"] == "application/json"


@pytest.mark.parametrize(
    ("status", "body", "skipped", "message"),
    [
        (201, {"id": "p-1", "state": "created", "number": 9, "created_at": "2026-01-01T00:00:00Z"}, False, None),
        (200, {"message": "Pipeline skipped: [ci skip]"}, True, "Pipeline skipped: [ci skip]"),
    ],
)
def test_run_pipeline_uses_three_segments_and_reports_a_skip(make_client, status, body, skipped, message):
    seen: list[httpx.Request] = []
    client = make_client(sequence(httpx.Response(status, json=body), seen=seen))

    result = client.run_pipeline("circleci/org-id/project-id", config={"branch": "main"})

    assert seen[0].url.raw_path == b"/api/v2/project/circleci/org-id/project-id/pipeline/run"
    assert json.loads(seen[0].content) == {"config": {"branch": "main"}}
    assert (result.skipped, result.message) == (skipped, message)


def test_webhooks_are_listed_by_project_scope_and_read_in_both_spellings(make_client):
    seen: list[httpx.Request] = []
    items = [
        {"id": "wh-1", "url": "https://a.test", "verify-tls": True, "signing-secret": "xxxxcret", "events": []},
        {"id": "wh-2", "url": "https://b.test", "verify_tls": False, "signing_secret": "xxxxcret", "created_at": "t"},
    ]
    client = make_client(sequence(httpx.Response(200, json={"items": items, "next_page_token": None}), seen=seen))

    hooks = client.webhooks("p-1")

    assert dict(seen[0].url.params) == {"scope-id": "p-1", "scope-type": "project"}
    assert [(h.id, h.verify_tls, h.signing_secret) for h in hooks] == [
        ("wh-1", True, "xxxxcret"),
        ("wh-2", False, "xxxxcret"),
    ]
    assert hooks[1].created_at == "t"
    assert "xxxxcret" not in repr(hooks[0])


def test_org_pipelines_ask_by_org_slug_and_follow_every_page(make_client):
    seen: list[httpx.Request] = []
    client = make_client(
        sequence(
            httpx.Response(200, json={"items": [{"project_slug": "gh/acme/a"}], "next_page_token": "t1"}),
            httpx.Response(200, json={"items": [{"project_slug": "gh/acme/b"}], "next_page_token": None}),
            seen=seen,
        )
    )

    slugs = [p.project_slug for p in client.org_pipelines("gh/acme")]

    assert slugs == ["gh/acme/a", "gh/acme/b"]
    assert [(r.url.path, dict(r.url.params)) for r in seen] == [
        ("/api/v2/pipeline", {"org-slug": "gh/acme"}),
        ("/api/v2/pipeline", {"org-slug": "gh/acme", "page-token": "t1"}),
    ]


def test_run_pipeline_refuses_a_slug_that_is_not_three_segments(make_client):
    client = make_client(answer(201, {}))

    with pytest.raises(CircleCIPathInvalid, match="a project slug is 3 segments"):
        client.run_pipeline("gh/only-two")


# -- ids, names and slugs in paths (issue 11, finding 12) ---------------------------------

V = object()  # where the value under test goes in a call's arguments

# (method, its arguments, the argument V stands for, the path with the encoded value at {v})
ID_ARGUMENTS = [
    ("pipeline", (V,), "pipeline_id", "/pipeline/{v}"),
    ("pipeline_workflows", (V,), "pipeline_id", "/pipeline/{v}/workflow"),
    ("workflow", (V,), "workflow_id", "/workflow/{v}"),
    ("workflow_jobs", (V,), "workflow_id", "/workflow/{v}/job"),
    ("cancel_workflow", (V,), "workflow_id", "/workflow/{v}/cancel"),
    ("rerun_workflow", (V,), "workflow_id", "/workflow/{v}/rerun"),
    ("approve_job", (V, "ap-1"), "workflow_id", "/workflow/{v}/approve/ap-1"),
    ("approve_job", ("wf-1", V), "approval_request_id", "/workflow/wf-1/approve/{v}"),
    ("delete_context", (V,), "context_id", "/context/{v}"),
    ("context_env_vars", (V,), "context_id", "/context/{v}/environment-variable"),
    ("set_context_env_var", (V, "K", "x"), "context_id", "/context/{v}/environment-variable/K"),
    ("set_context_env_var", ("ctx-1", V, "x"), "name", "/context/ctx-1/environment-variable/{v}"),
    ("delete_context_env_var", ("ctx-1", V), "name", "/context/ctx-1/environment-variable/{v}"),
    ("delete_project_env_var", (SLUG, V), "name", f"/project/{SLUG}/envvar/{{v}}"),
    ("webhook", (V,), "webhook_id", "/webhook/{v}"),
    ("update_webhook", (V,), "webhook_id", "/webhook/{v}"),
    ("delete_webhook", (V,), "webhook_id", "/webhook/{v}"),
]
# (method, its arguments): V is the slug
SLUG_ARGUMENTS = [
    ("project", (V,)),
    ("trigger_pipeline", (V,)),
    ("run_pipeline", (V,)),
    ("pipelines", (V,)),
    ("job_details", (V, 7)),
    ("job_tests", (V, 7)),
    ("job_artifacts", (V, 7)),
    ("project_env_vars", (V,)),
    ("create_project_env_var", (V, "K", "x")),
    ("delete_project_env_var", (V, "K")),
    ("checkout_keys", (V,)),
    ("flaky_tests", (V,)),
]
ANY_ANSWER = {"items": [], "next_page_token": None, "message": "ok", "flaky-tests": []}


def call_with(client: CircleCIClient, method: str, arguments: tuple[object, ...], value: str) -> None:
    result = getattr(client, method)(*(value if a is V else a for a in arguments))
    if isinstance(result, Iterator):  # pipelines() is lazy
        list(result)


def id_rows():
    return [pytest.param(*row, id=f"{row[0]}-{row[2]}") for row in ID_ARGUMENTS]


def slug_rows():
    return [pytest.param(*row, id=row[0]) for row in SLUG_ARGUMENTS]


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("../../x", "..%2F..%2Fx"),
        ("a/b", "a%2Fb"),
        ("%2e%2e", "%252e%252e"),
        ("é?x=1#y", "%C3%A9%3Fx%3D1%23y"),  # non-ASCII letters are encoded, not refused
        ("a b;c", "a%20b%3Bc"),
    ],
)
@pytest.mark.parametrize(("method", "arguments", "argument", "path"), id_rows())
def test_ids_and_names_go_into_paths_as_one_encoded_segment(
    make_client, method, arguments, argument, path, value, encoded
):
    seen: list[httpx.Request] = []
    client = make_client(sequence(httpx.Response(200, json=ANY_ANSWER), seen=seen))

    call_with(client, method, arguments, value)

    assert seen[0].url.raw_path.decode() == "/api/v2" + path.format(v=encoded)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "an empty segment"),
        (".", "a '.' segment"),
        ("..", "a '..' segment"),
        ("x\r\nHost: evil", "control character '\\r'"),
        ("nul\x00", "control character '\\x00'"),
        ("del\x7f", "control character '\\x7f'"),
    ],
)
@pytest.mark.parametrize(("method", "arguments", "argument", "path"), id_rows())
def test_an_id_that_cannot_be_a_segment_is_refused_before_any_request(
    make_client, method, arguments, argument, path, value, says
):
    seen: list[httpx.Request] = []
    client = make_client(sequence(httpx.Response(200, json=ANY_ANSWER), seen=seen))

    with pytest.raises(CircleCIPathInvalid) as caught:
        call_with(client, method, arguments, value)

    assert caught.value.message.startswith(f"{argument} {value!r} cannot go into ")
    assert says in caught.value.message
    assert (caught.value.code, caught.value.details) == ("circleci_path_invalid", {"argument": argument})
    assert seen == []


@pytest.mark.parametrize(
    ("slug", "encoded"),
    [
        ("gh/my org/é%20x", "gh/my%20org/%C3%A9%2520x"),
        ("gh/org/a%2Fb", "gh/org/a%252Fb"),
        ("gh/org/repo?x=1", "gh/org/repo%3Fx%3D1"),
        ("gh/org/repo#frag", "gh/org/repo%23frag"),
    ],
)
@pytest.mark.parametrize(("method", "arguments"), slug_rows())
def test_each_part_of_a_slug_is_encoded_and_its_slashes_stay_separators(make_client, method, arguments, slug, encoded):
    seen: list[httpx.Request] = []
    client = make_client(sequence(httpx.Response(200, json=ANY_ANSWER), seen=seen))

    call_with(client, method, arguments, slug)

    assert f"/{encoded}/" in seen[0].url.raw_path.decode() + "/"  # GET /project/{slug} ends with it


@pytest.mark.parametrize(
    "slug", ["gh/org/..", "gh/../x", "gh//repo", "./org/repo", "gh/org/re\npo", "gh/org/repo/envvar", "gh/org"]
)
@pytest.mark.parametrize(("method", "arguments"), slug_rows())
def test_a_slug_with_an_empty_dot_or_control_part_is_refused_before_any_request(make_client, method, arguments, slug):
    seen: list[httpx.Request] = []
    client = make_client(sequence(httpx.Response(200, json=ANY_ANSWER), seen=seen))

    with pytest.raises(CircleCIPathInvalid, match=r"^slug '"):
        call_with(client, method, arguments, slug)

    assert seen == []


def test_a_refused_value_is_cut_in_the_message(make_client):
    seen: list[httpx.Request] = []
    client = make_client(sequence(httpx.Response(200, json=ANY_ANSWER), seen=seen))
    huge = "A" * 10_000 + "\n"

    with pytest.raises(CircleCIPathInvalid) as caught:
        client.workflow(huge)

    assert caught.value.message == (
        f"workflow_id {'A' * 40!r}… cannot go into /workflow/{{workflow_id}}: it holds the control character '\\n'"
    )
    assert seen == []


# -- where the token goes (issue 11, finding 7) -------------------------------------------


def tokens_sent(client: CircleCIClient, urls: list[str], seen: list[httpx.Request], tmp_path: Path) -> list[str | None]:
    """Download each URL and say which Circle-Token each request carried."""
    for number, url in enumerate(urls):
        client.download_artifact(url, tmp_path / str(number))
    return [request.headers.get("Circle-Token") for request in seen]


def recording(seen: list[httpx.Request]):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"artifact")

    return handler


# The client under test talks to https://circleci.test/api/v2 with the default allow-list.
TOKEN_SCOPE = [
    ("https://136-84996744-gh.circle-artifacts.com/0/coverage/index.html", TOKEN),
    ("https://circle-artifacts.com/0/x", TOKEN),
    ("https://output.circleci.com/output/job/1/artifacts/0/x", TOKEN),
    ("https://circleci.com/api/v1.1/project/gh/o/r/1/artifacts/0/x", TOKEN),
    ("https://circleci.test/api/v2/artifact/x", TOKEN),  # the API's own host
    ("https://1-2-GH.Circle-Artifacts.COM/0/x", TOKEN),  # host names compare case-insensitively
    ("https://evil.test/0/x", None),
    ("https://circle-artifacts.com.evil.test/0/x", None),
    ("https://evilcircle-artifacts.com/0/x", None),
    ("https://circleci.com@evil.test/0/x", None),  # userinfo, not the host
    ("https://circleci.test.evil.test/api/v2/x", None),
    ("http://1-2-gh.circle-artifacts.com/0/x", None),  # plain http off loopback
    ("http://circleci.test/api/v2/artifact/x", None),
    ("http://127.0.0.1:8765/0/x", None),  # loopback, but neither the API's host nor listed
]


def test_the_token_goes_only_to_the_api_host_and_the_artifact_hosts_over_https(make_client, tmp_path: Path):
    seen: list[httpx.Request] = []
    client = make_client(recording(seen))

    sent = tokens_sent(client, [url for url, _ in TOKEN_SCOPE], seen, tmp_path)

    assert list(zip([url for url, _ in TOKEN_SCOPE], sent, strict=True)) == TOKEN_SCOPE


def test_the_simulator_on_loopback_gets_the_token_over_plain_http(make_client, tmp_path: Path):
    seen: list[httpx.Request] = []
    client = make_client(recording(seen), base_url="http://127.0.0.1:8765/api/v2")
    urls = [
        "http://127.0.0.1:8765/_sim/artifacts/gh/o/r/1/0/junit.xml",
        "http://localhost:8765/_sim/artifacts/gh/o/r/1/0/junit.xml",
        "http://1-2-gh.circle-artifacts.com/0/junit.xml",
    ]

    assert tokens_sent(client, urls, seen, tmp_path) == [TOKEN, None, None]


def test_circleci_artifact_hosts_replaces_the_default_allow_list(tmp_path: Path):
    settings = Settings.from_environ({"CIRCLE_TOKEN": TOKEN, "CIRCLECI_ARTIFACT_HOSTS": "*.artifacts.example"})
    seen: list[httpx.Request] = []
    urls = [
        "https://eu.artifacts.example/0/x",
        "https://artifacts.example/0/x",
        "https://1-2-gh.circle-artifacts.com/0/x",
        "https://circleci.com/api/v2/x",  # the API's host
    ]

    with CircleCIClient.from_settings(settings, transport=httpx.MockTransport(recording(seen))) as client:
        sent = tokens_sent(client, urls, seen, tmp_path)

    assert sent == [TOKEN, None, None, TOKEN]


def redirects(chain: list[str], seen: list[httpx.Request]):
    """A handler sending each URL of `chain` on to the next one; the last answers 200."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        position = chain.index(str(request.url))
        if position + 1 < len(chain):
            return httpx.Response(302, headers={"Location": chain[position + 1]})
        return httpx.Response(200, content=b"<html>coverage</html>")

    return handler


@pytest.mark.parametrize(
    "hops",
    [
        pytest.param(
            [
                ("https://136-84996744-gh.circle-artifacts.com/0/coverage/index.html", TOKEN),
                ("https://136-84996744-gh.circle-artifacts.com/blob/index.html", TOKEN),  # same host: kept
                ("https://bucket.s3.amazonaws.com/index.html?X-Amz-Signature=abc", None),  # another host
                ("https://136-84996744-gh.circle-artifacts.com/0/again.html", None),  # never comes back
            ],
            id="to-s3-and-back",
        ),
        pytest.param(
            [
                ("https://circleci.com/api/v1.1/project/gh/o/r/1/artifacts/0/x", TOKEN),
                ("https://1-2-gh.circle-artifacts.com/0/x", None),  # also allowed, but another host
            ],
            id="between-allowed-hosts",
        ),
        pytest.param(
            [
                ("https://1-2-gh.circle-artifacts.com/0/x", TOKEN),
                ("http://1-2-gh.circle-artifacts.com/0/x", None),  # down to plain http
            ],
            id="to-plain-http",
        ),
    ],
)
def test_a_redirect_to_another_host_drops_the_token_for_that_hop_and_every_later_one(make_client, tmp_path: Path, hops):
    seen: list[httpx.Request] = []
    chain = [url for url, _ in hops]
    client = make_client(redirects(chain, seen))

    written = client.download_artifact(chain[0], tmp_path / "out" / "index.html")

    assert [(str(r.url), r.headers.get("Circle-Token")) for r in seen] == hops
    assert written.read_bytes() == b"<html>coverage</html>"
    assert list(written.parent.iterdir()) == [written]


@pytest.mark.parametrize(
    ("location", "says", "requests"),
    [
        ("https://1-2-gh.circle-artifacts.com/0/x", "redirected more than 5 times", 6),
        ("ftp://files.test/x", "is not an http", 1),
        ("file:///etc/passwd", "is not an http", 1),
    ],
)
def test_a_redirect_loop_or_a_redirect_off_http_is_refused(make_client, tmp_path: Path, location, says, requests):
    seen: list[httpx.Request] = []
    client = make_client(sequence(httpx.Response(302, headers={"Location": location}), seen=seen))

    with pytest.raises(CircleCIRedirectRefused, match=says) as caught:
        client.download_artifact("https://1-2-gh.circle-artifacts.com/0/x", tmp_path / "x")

    assert (caught.value.code, caught.value.status, caught.value.path) == ("circleci_redirect_refused", 302, "/0/x")
    assert len(seen) == requests
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(401, CircleCIUnauthorized), (403, CircleCIForbidden), (404, CircleCINotFound)],
)
def test_a_download_refused_without_the_token_says_the_token_was_withheld(make_client, tmp_path, status, error_class):
    seen: list[httpx.Request] = []
    client = make_client(sequence(httpx.Response(status, json={"message": "Access Denied"}), seen=seen))

    with pytest.raises(error_class) as caught:
        client.download_artifact("https://files.evil.test/0/report.xml", tmp_path / "report.xml")

    message = str(caught.value)
    assert "CIRCLE_TOKEN was withheld from files.evil.test" in message
    assert "CIRCLECI_ARTIFACT_HOSTS" in message
    assert TOKEN not in message
    assert "Circle-Token" not in seen[0].headers


def test_a_failed_download_leaves_no_file_and_names_only_the_path(make_client, tmp_path: Path):
    client = make_client(answer(401, {"message": "You must log in first"}))
    url = "https://1-2-gh.circle-artifacts.com/0/report.xml?circle-token=leaky"

    with pytest.raises(CircleCIUnauthorized) as caught:
        client.download_artifact(url, tmp_path / "report.xml")

    assert caught.value.path == "/0/report.xml"
    assert "leaky" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


# -- secrecy and logs ---------------------------------------------------------------------


def test_the_token_never_appears_in_errors_reprs_or_logs(make_client):
    client = make_client(
        sequence(
            httpx.Response(429, text="Rate limited.", headers={"Retry-After": "1"}),
            httpx.Response(401, json={"message": "Invalid token provided."}),
        )
    )

    with capture_logs() as logs, pytest.raises(CircleCIUnauthorized) as caught:
        client.me()

    assert logs and logs[0]["event"] == "circleci_api_retry"
    everything = repr(logs) + str(caught.value) + repr(caught.value.details) + repr(client)
    assert TOKEN not in everything


def test_deprecation_and_sunset_headers_are_logged_once(make_client):
    headers = {"Deprecation": "true", "Sunset": "Wed, 01 Jul 2026 00:00:00 GMT"}
    client = make_client(answer(200, {"items": [], "next_page_token": None}, **headers))

    with capture_logs() as logs:
        client.job_artifacts(SLUG, 1)
        client.job_artifacts(SLUG, 2)

    events = [(e["event"], e["header"]) for e in logs]
    assert events == [
        ("circleci_api_deprecation", "deprecation"),
        ("circleci_api_deprecation", "sunset"),
    ]


def test_from_settings_takes_the_url_and_token_from_settings():
    settings = Settings.from_environ({"CIRCLE_TOKEN": TOKEN, "CIRCLECI_API_URL": "http://127.0.0.1:8765/"})
    seen: list[httpx.Request] = []

    with CircleCIClient.from_settings(
        settings, transport=httpx.MockTransport(sequence(httpx.Response(200, json={}), seen=seen))
    ) as client:
        client.me()

    assert str(seen[0].url) == "http://127.0.0.1:8765/me"
    assert seen[0].headers["Circle-Token"] == TOKEN
