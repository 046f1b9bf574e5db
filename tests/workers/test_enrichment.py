"""Enrichment against the CircleCI simulator over real HTTP, counting the API calls it costs;
the tag-build cases also as unit tests over httpx.MockTransport and fakeredis."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
import redis
from rq import Queue
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from config.errors import CircleCIRateLimited, CircleCIServerError
from config.settings import Settings
from service.simulators.circleci import create_simulator
from service.simulators.circleci_data import Dataset
from tests.clock import FakeClock
from tests.conftest import load_fixture
from tests.server import running
from workers.circleci.cache import ApiCache
from workers.circleci.client import CircleCIClient
from workers.context import WorkerContext, install
from workers.enrichment import Enricher, count_api_call
from workers.events import process_event
from workers.routes_file import load_routes
from workers.transition import TransitionStore

PAGE = 5
JOBS = "GET /workflow/{id}/job"
TESTS = "GET /project/{project-slug}/{job-number}/tests"
ARTIFACTS = "GET /project/{project-slug}/{job-number}/artifacts"
DETAILS = "GET /project/{project-slug}/job/{job-number}"
PIPELINE = "GET /pipeline/{pipeline-id}"
V1_JOB = "GET /api/v1.1/project/{vcs}/{org}/{repo}/{job-number}"
OUTPUT = "GET /_sim/storage/output/{key}"
STEP_CALLS = 2  # per failed job: its v1.1 job, then its failing step's output
FLAKY_CALLS = 1  # per project per FLAKY_TESTS_TTL_SECONDS: Insights' known-flaky tests
# A GitHub OAuth tag build: the webhook says `branch: null`, no tag, null commit fields.
TAG_BUILD = "workflow-completed.tag.github-oauth.derived.json"
TAG_VCS = {"tag": "v1.4.0", "commit": {"subject": "Release 1.4.0", "body": "Changelog: ..."}}
ROUTES = """\
handlers:
  releases: {type: log}
  main: {type: log}
subscriptions:
  - {name: releases, handlers: [releases], tags: ["v*"]}
  - {name: main-only, handlers: [main], branches: [main]}
"""


def twelve_jobs() -> list[dict]:
    """11 build jobs (two failed, with 12 tests each: 3 failures) and one approval job."""
    jobs: list[dict] = [{"name": f"build-{i}", "status": "success", "tests": []} for i in range(9)]
    for name in ("test-unit", "test-e2e"):
        tests = [{"name": f"{name} {i}", "result": "success"} for i in range(9)]
        tests += [{"name": f"{name} broken {i}", "result": "failure", "message": f"boom {i}\nline 2"} for i in range(3)]
        jobs.append({"name": name, "status": "failed", "tests": tests, "artifacts": ["report.html", "log.txt"]})
    jobs.append({"name": "hold", "type": "approval"})
    return jobs


class World:
    """A simulator with one workflow loaded, served over HTTP, and a worker context pointed at it,
    on a fake clock (the API client's retries sleep on it; deadlines pass when a test says)."""

    def __init__(self, base: str, app, redis_url: str) -> None:
        self.sim = app.state.simulator
        self.redis = redis.Redis.from_url(redis_url)
        self.settings = Settings.from_environ(
            {"CIRCLE_TOKEN": "sim-token", "CIRCLECI_API_URL": base, "REDIS_URL": redis_url,
             "CIRCLECI_API_RATE_PER_SECOND": "1000", "CIRCLECI_API_BURST": "1000"}
        )  # fmt: skip
        self.clock = FakeClock()
        self.context = WorkerContext.build(self.settings, redis=self.redis, clock=self.clock)

    def load(self, payload: dict, jobs: list[dict]) -> list[dict]:
        return self.sim.dataset.add_workflow_from_webhook(payload, jobs)["jobs"]

    def calls(self, key: str) -> int:
        return self.sim.call_count(*key.split(" ", 1))

    def envelope(self, payload: dict, received_at: str | None = None) -> dict:
        """The job's envelope, received now by the world's clock: a deadline counts from it, so on the
        real clock a busy machine's seconds between building the world and the envelope would eat it."""
        return envelope(payload, received_at or datetime.fromtimestamp(self.clock.now(), UTC).isoformat())

    def enrich(self, payload: dict, *, may_defer: bool = True, received_at: str | None = None) -> dict:
        return self.context.enricher.enrich(self.envelope(payload, received_at), may_defer=may_defer)


def envelope(payload: dict, received_at: str | None = None) -> dict:
    return {
        "event_id": payload["id"],
        "event_type": payload["type"],
        "request_id": "req-1",
        "received_at": received_at or datetime.now(UTC).isoformat(),
        "payload": payload,
    }


@pytest.fixture
def world(redis_url: str) -> Iterator[World]:
    app = create_simulator(Dataset(), page_size=PAGE)
    with running(app) as base:
        w = World(base, app, redis_url)
        yield w
        w.context.close()


@pytest.fixture
def failed_workflow() -> dict:
    return load_fixture("workflow-completed.failed.github-oauth.derived.json")


def test_a_failed_workflow_gets_every_job_and_the_failed_jobs_tests_and_artifacts(world, failed_workflow) -> None:
    world.load(failed_workflow, twelve_jobs())
    event = world.enrich(failed_workflow)

    assert event["schema_version"] == 1 and event["status"] == "failed"
    assert len(event["jobs"]) == 12
    approval = next(j for j in event["jobs"] if j["type"] == "approval")
    assert approval["number"] is None and approval["web_url"] is None
    assert [j["name"] for j in event["failed_jobs"]] == ["test-unit", "test-e2e"]
    for job in event["failed_jobs"]:
        assert job["tests"]["total"] == 12 and job["tests"]["failed"] == 3
        assert job["tests"]["failures"][0]["message"] == "boom 0\nline 2"
        assert [a["path"] for a in job["artifacts"]] == ["report.html", "log.txt"]
        assert job["web_url"].endswith(f"/jobs/{job['number']}")
    assert event["enrichment"] == {
        "complete": True,
        "reason": None,
        "error_code": None,
        "api_calls": 11 + 2 * STEP_CALLS + FLAKY_CALLS,
        "sources": {"vcs": "webhook"},
    }

    # the minimum: job pages + each failed job's test pages and artifact pages; no job details
    job_pages, test_pages = math.ceil(12 / PAGE), math.ceil(12 / PAGE)
    assert world.calls(JOBS) == job_pages
    assert world.calls(TESTS) == 2 * test_pages
    assert world.calls(ARTIFACTS) == 2
    assert world.calls(DETAILS) == 0
    assert world.calls(V1_JOB) == 2 and world.calls(OUTPUT) == 2
    naive = 1 + 3 * 12
    assert event["enrichment"]["api_calls"] - 2 * STEP_CALLS - FLAKY_CALLS == job_pages + 2 * test_pages + 2 < naive


def test_failed_tests_are_cut_at_the_configured_number(world, failed_workflow) -> None:
    world.context.enricher.max_failed_tests = 2
    world.load(failed_workflow, twelve_jobs())
    tests = world.enrich(failed_workflow)["failed_jobs"][0]["tests"]
    assert len(tests["failures"]) == 2 and tests["more"] == 1 and tests["failed"] == 3


def test_job_completed_then_workflow_completed_asks_nothing_twice(world, failed_workflow) -> None:
    jobs = world.load(failed_workflow, twelve_jobs())
    failed = [j for j in jobs if j.get("status") == "failed"]
    for position, job in enumerate(failed):
        job_event = copy.deepcopy(load_fixture("job-completed.failed.github-oauth.derived.json"))
        job_event["id"] = f"job-event-{job['job_number']}"
        job_event["project"] = failed_workflow["project"]
        job_event["workflow"] = {k: v for k, v in failed_workflow["workflow"].items() if k != "status"}
        job_event["job"].update(number=job["job_number"], name=job["name"], status="failed", id=job["id"])
        enriched = world.enrich(job_event)
        # details, 3 test pages, artifacts; the v1.1 job and the step's output
        assert enriched["enrichment"]["api_calls"] == 1 + 3 + 1 + STEP_CALLS + (FLAKY_CALLS if position == 0 else 0)
        assert enriched["failed_jobs"][0]["tests"]["failed"] == 3
    before = {key: world.calls(key) for key in (TESTS, ARTIFACTS)}

    event = world.enrich(failed_workflow)
    assert {key: world.calls(key) for key in (TESTS, ARTIFACTS)} == before
    assert event["enrichment"]["api_calls"] == 3  # only the workflow's job pages: the steps are cached too
    assert [j["failed_step"]["name"] for j in event["failed_jobs"]] == ["Run test-unit", "Run test-e2e"]
    assert event["failed_jobs"][1]["tests"]["failed"] == 3


def test_a_successful_job_completed_fetches_only_its_details(world) -> None:
    payload = load_fixture("job-completed.github-oauth.docs.json")
    world.sim.dataset.add_workflow_from_webhook(
        {**payload, "workflow": {**payload["workflow"], "status": "success"}},
        [{"name": payload["job"]["name"], "number": payload["job"]["number"], "status": "success"}],
    )
    event = world.enrich(payload)
    assert event["enrichment"]["complete"] is True
    assert world.calls(DETAILS) == 1 and world.calls(TESTS) == 0 and world.calls(ARTIFACTS) == 0
    assert event["jobs"][0]["executor"]["resource_class"] == "medium"
    assert event["failed_jobs"] == []


def test_a_429_then_success_is_retried_within_the_job(world, failed_workflow) -> None:
    world.load(failed_workflow, twelve_jobs())
    world.sim.add_fault(path="/workflow/*/job", status=429, retry_after=1, times=1)
    event = world.enrich(failed_workflow)
    assert event["enrichment"]["complete"] is True
    assert world.calls(JOBS) == 3 + 1


def test_a_long_429_is_raised_so_the_job_can_reschedule(world, failed_workflow) -> None:
    world.load(failed_workflow, twelve_jobs())
    world.sim.add_fault(path="/workflow/*/job", status=429, retry_after=120, times=None)
    with pytest.raises(CircleCIRateLimited) as caught:
        world.enrich(failed_workflow, may_defer=True)
    assert caught.value.retry_after == 120


def test_5xx_past_the_deadline_delivers_the_webhook_facts_marked_incomplete(world, failed_workflow) -> None:
    world.load(failed_workflow, twelve_jobs())
    world.sim.add_fault(path="/workflow/*/job", status=500, times=None)
    world.context.client.transport.max_retries = 1  # the in-call retry is covered in test_circleci.py
    with pytest.raises(CircleCIServerError):
        world.enrich(failed_workflow, may_defer=True)
    event = world.enrich(failed_workflow, may_defer=False)
    assert event["enrichment"]["complete"] is False
    assert event["enrichment"]["reason"].startswith("circleci_server_error")
    assert event["status"] == "failed" and event["workflow"]["name"] == failed_workflow["workflow"]["name"]
    assert event["vcs"]["branch"] == failed_workflow["pipeline"]["vcs"]["branch"]
    assert event["transition"]["kind"] == "first_seen"  # transitions need no API


def test_a_401_is_not_retried_and_the_event_goes_on_incomplete(world, failed_workflow) -> None:
    world.load(failed_workflow, twelve_jobs())
    world.sim.add_fault(path="/workflow/*/job", status=401, times=None)
    event = world.enrich(failed_workflow, may_defer=True)
    assert event["enrichment"]["complete"] is False
    assert "circleci_unauthorized" in event["enrichment"]["reason"]
    assert event["enrichment"]["error_code"] == "circleci_unauthorized"
    assert world.calls(JOBS) == 1


def test_a_refused_token_is_the_reason_given_whatever_else_failed(world, failed_workflow) -> None:
    world.load(failed_workflow, twelve_jobs())
    world.sim.add_fault(path="/project/*/tests", status=404, times=None)
    world.sim.add_fault(path="/project/*/artifacts", status=403, times=None)
    event = world.enrich(failed_workflow, may_defer=False)
    assert event["enrichment"]["error_code"] == "circleci_forbidden"
    assert event["enrichment"]["reason"].startswith("circleci_forbidden: ")


def test_process_event_defers_through_the_scheduler_then_gives_up_at_the_deadline(world, failed_workflow) -> None:
    world.load(failed_workflow, twelve_jobs())
    world.sim.add_fault(path="/workflow/*/job", status=503, times=None)
    world.context.client.transport.max_retries = 0
    install(world.context)
    try:
        deferred = process_event(world.envelope(failed_workflow))
        assert deferred["status"] == "deferred" and deferred["attempt"] == 1
        registry = ScheduledJobRegistry("events", connection=world.redis, serializer=JSONSerializer)
        (job_id,) = registry.get_job_ids()
        rescheduled = Queue("events", connection=world.redis, serializer=JSONSerializer).fetch_job(job_id)
        assert rescheduled.args[0]["attempt"] == 1 and rescheduled.args[0]["event_id"] == failed_workflow["id"]

        assert registry.get_scheduled_time(job_id).timestamp() > world.clock.now()  # later, by the clock

        world.clock.advance(world.settings.enrich_deadline_seconds + 1)  # the API still fails past the deadline
        done = process_event(rescheduled.args[0])
        assert done == {"event_id": failed_workflow["id"], "status": "enriched", "complete": False}
    finally:
        install(None)


@pytest.mark.parametrize(
    ("fixture", "branch", "tag"),
    [
        ("workflow-completed.github-oauth.docs.json", None, None),
        ("workflow-completed.canceled.bitbucket-cloud.derived.json", None, None),
        ("workflow-completed.gitlab.docs.json", "main", None),
    ],
)
def test_samples_of_every_vcs_enrich(world, fixture: str, branch: str | None, tag: str | None) -> None:
    payload = load_fixture(fixture)
    world.load(payload, [{"name": "build", "status": "success"}, {"name": "test", "status": "failed", "tests": []}])
    event = world.enrich(payload)
    expected = payload["pipeline"].get("vcs", {}).get("branch") or branch
    assert event["vcs"]["branch"] == expected
    assert event["project"]["slug"] == payload["project"]["slug"]
    assert event["enrichment"]["complete"] is True
    assert [j["name"] for j in event["failed_jobs"]] == ["test"]
    assert event["failed_jobs"][0]["tests"] == {"total": 0, "failed": 0, "more": 0, "failures": []}


def test_transitions_over_a_sequence_of_pipelines_including_one_out_of_order(world) -> None:
    base = load_fixture("workflow-completed.github-oauth.docs.json")

    def pipeline(number: int, status: str, minute: int) -> dict:
        payload = copy.deepcopy(base)
        payload["id"] = f"evt-{number}-{status}"
        payload["pipeline"]["number"] = number
        payload["workflow"].update(id=f"00000000-0000-0000-0000-00000000{number:04d}", status=status)
        payload["happened_at"] = f"2026-01-01T10:{minute:02d}:00Z"
        world.load(payload, [{"name": "build", "status": status, "tests": []}])
        return payload

    kinds = [
        world.enrich(pipeline(n, s, m))["transition"]["kind"]
        for n, s, m in [(10, "success", 0), (11, "failed", 1), (13, "failed", 3), (12, "success", 2),
                        (14, "canceled", 4), (15, "success", 5)]
    ]  # fmt: skip
    assert kinds == ["first_seen", "broken", "still_failing", "stale", "canceled", "fixed"]


def test_a_workflows_transition_is_recorded_while_its_failed_jobs_tests_are_asked(world, failed_workflow) -> None:
    """Its round trip overlaps the API's answers, not the time after them."""
    world.load(failed_workflow, twelve_jobs())
    world.sim.add_fault(path="/project/*/tests", status=None, delay=1.0, times=None)
    key = "cie:transition:*"
    with ThreadPoolExecutor(1) as pool:
        enriching = pool.submit(world.enrich, failed_workflow)
        deadline = time.monotonic() + 0.9  # the tests' answers are a second away
        while not world.redis.keys(key) and time.monotonic() < deadline:
            time.sleep(0.01)
        recorded_while_asking = bool(world.redis.keys(key)) and not enriching.done()
        event = enriching.result(timeout=30)
    assert recorded_while_asking
    assert event["transition"]["kind"] == "first_seen" and event["enrichment"]["complete"] is True


# -- tag builds whose webhook names no branch or tag ---------------------------------------------


def test_a_tag_build_whose_webhook_names_no_ref_gets_its_tag_commit_and_actor_from_the_pipeline(world) -> None:
    payload = load_fixture(TAG_BUILD)
    world.sim.dataset.add_workflow_from_webhook(payload, [{"name": "publish", "status": "success"}], vcs=TAG_VCS)

    event = world.enrich(payload)

    assert event["vcs"]["tag"] == "v1.4.0" and event["vcs"]["branch"] is None and event["vcs"]["ref_kind"] == "tag"
    assert event["vcs"]["commit_subject"] == "Release 1.4.0" and event["vcs"]["commit_body"] == "Changelog: ..."
    assert event["vcs"]["revision"] == payload["pipeline"]["vcs"]["revision"]
    assert event["pipeline"]["trigger_actor"] == world.sim.dataset.user["login"]
    assert event["enrichment"] == {
        "complete": True,
        "reason": None,
        "error_code": None,
        "api_calls": 2,
        "sources": {"vcs": "pipeline"},
    }
    assert world.calls(PIPELINE) == 1
    assert event["transition"]["kind"] == "first_seen"
    assert world.redis.exists("cie:transition:github%2Facme%2Fpayments-api:tag%3Av1.4.0:release")


def test_a_webhook_naming_its_branch_never_asks_the_pipeline(world, failed_workflow) -> None:
    world.load(failed_workflow, [{"name": "build", "status": "success"}])
    event = world.enrich(failed_workflow)
    assert world.calls(PIPELINE) == 0 and event["enrichment"]["sources"] == {"vcs": "webhook"}
    assert event["pipeline"]["trigger_actor"] is None


# The same over httpx.MockTransport: a CircleCI that answers from a table, counting each path.


class FakeCircleCI:
    def __init__(self, pipeline_status: int = 200) -> None:
        self.pipeline_status = pipeline_status
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v2")
        self.asked.append(path)
        if path.startswith("/pipeline/"):
            if self.pipeline_status != 200:
                return httpx.Response(self.pipeline_status, json={"message": "Pipeline not found."})
            vcs = {"provider_name": "GitHub", "revision": "5e7a" * 10, "tag": "v1.4.0",
                   "origin_repository_url": "https://github.com/acme/payments-api",
                   "target_repository_url": "https://github.com/acme/payments-api",
                   "commit": {"subject": "Release 1.4.0", "body": None}}  # fmt: skip
            trigger = {"type": "webhook", "received_at": "2024-05-14T09:39:05Z", "actor": {"login": "release-bot"}}
            return httpx.Response(200, json={"id": path.rsplit("/", 1)[1], "vcs": vcs, "trigger": trigger})
        if path.endswith("/job") and path.startswith("/workflow/"):
            job = {"id": "j1", "name": "publish", "type": "build", "status": "success", "job_number": 7}
            return httpx.Response(200, json={"items": [job], "next_page_token": None})
        return httpx.Response(200, json={"web_url": "https://app.circleci.com/x", "duration": 1000})

    def count(self, prefix: str) -> int:
        return sum(p.startswith(prefix) for p in self.asked)


@pytest.fixture
def offline() -> Iterator[Callable[..., tuple[Enricher, FakeCircleCI]]]:
    pools: list[ThreadPoolExecutor] = []

    def build(**fake: int) -> tuple[Enricher, FakeCircleCI]:
        api = FakeCircleCI(**fake)
        store = fakeredis.FakeRedis()
        client = CircleCIClient(base_url="https://circleci.test/api/v2", token="t", transport=httpx.MockTransport(api),
                                max_retries=0, clock=FakeClock(), before_request=count_api_call)  # fmt: skip
        pools.append(ThreadPoolExecutor(2))
        enricher = Enricher(client, cache=ApiCache(store, ttl_seconds=60), transitions=TransitionStore(store),
                            pool=pools[-1])  # fmt: skip
        return enricher, api

    yield build
    for pool in pools:
        pool.shutdown()


def tag_job_event(workflow_event: dict) -> dict:
    """The job-completed event of the tag build's job `publish`."""
    job = copy.deepcopy(workflow_event)
    job.update(id="tag-job-event", type="job-completed")
    job["workflow"] = {k: v for k, v in job["workflow"].items() if k != "status"}
    job["job"] = {"id": "j1", "name": "publish", "number": 7, "status": "success",
                  "started_at": "2024-05-14T09:40:00Z", "stopped_at": "2024-05-14T09:41:00Z"}  # fmt: skip
    return job


def test_the_pipeline_fills_the_tag_and_commit_and_a_tags_subscription_matches(offline, tmp_path: Path) -> None:
    enricher, api = offline()
    event = enricher.enrich(envelope(load_fixture(TAG_BUILD)), may_defer=True)

    assert (event["vcs"]["tag"], event["vcs"]["ref_kind"], event["vcs"]["commit_subject"]) == (
        "v1.4.0",
        "tag",
        "Release 1.4.0",
    )
    assert event["vcs"]["revision"] == load_fixture(TAG_BUILD)["pipeline"]["vcs"]["revision"]  # the webhook's, kept
    assert event["pipeline"]["trigger_actor"] == "release-bot"
    assert event["enrichment"]["sources"] == {"vcs": "pipeline"} and event["enrichment"]["complete"] is True
    assert api.count("/pipeline/") == 1
    (tmp_path / "routes.yaml").write_text(ROUTES)
    assert load_routes(tmp_path / "routes.yaml", {}).match(event) == ["releases"]


def test_the_pipeline_is_asked_once_for_all_the_events_of_a_tag_build(offline) -> None:
    enricher, api = offline()
    workflow = load_fixture(TAG_BUILD)
    job_event = enricher.enrich(envelope(tag_job_event(workflow)), may_defer=True)
    workflow_event = enricher.enrich(envelope(workflow), may_defer=True)

    assert job_event["vcs"]["tag"] == workflow_event["vcs"]["tag"] == "v1.4.0"
    assert workflow_event["enrichment"]["sources"] == {"vcs": "pipeline"}
    assert api.count("/pipeline/") == 1 and workflow_event["enrichment"]["api_calls"] == 1  # the job page only


def test_transitions_of_a_tag_build_are_kept_per_tag(offline) -> None:
    enricher, _ = offline()
    first = load_fixture(TAG_BUILD)
    again = copy.deepcopy(first) | {"id": "tag-build-again", "happened_at": "2024-05-14T10:41:22Z"}
    again["pipeline"] = again["pipeline"] | {"id": "5e7f9b1d-3f5c-4b7e-9a1b-3d5f7b9c1e3a", "number": 413}
    again["workflow"] = again["workflow"] | {"status": "failed"}

    kinds = [enricher.enrich(envelope(p), may_defer=True)["transition"]["kind"] for p in (first, again)]
    assert kinds == ["first_seen", "broken"]


@pytest.mark.parametrize(("status", "code"), [(404, "circleci_not_found"), (401, "circleci_unauthorized")])
def test_a_failed_pipeline_call_delivers_the_webhooks_facts_and_says_why(offline, status: int, code: str) -> None:
    enricher, _ = offline(pipeline_status=status)
    event = enricher.enrich(envelope(load_fixture(TAG_BUILD)), may_defer=True)

    assert event["vcs"]["tag"] is None and event["vcs"]["revision"] is not None
    assert event["enrichment"]["complete"] is False and event["enrichment"]["reason"].startswith(code)
    assert event["enrichment"]["sources"] == {"vcs": "webhook"} and event["pipeline"]["trigger_actor"] is None
    assert event["jobs"][0]["name"] == "publish"  # the rest of the enrichment went on
    assert event["transition"] is None  # no ref: nothing to compare with


def test_a_pipeline_call_failing_with_5xx_defers_then_delivers_incomplete(offline) -> None:
    enricher, _ = offline(pipeline_status=503)
    payload = load_fixture(TAG_BUILD)
    with pytest.raises(CircleCIServerError):
        enricher.enrich(envelope(payload), may_defer=True)
    event = enricher.enrich(envelope(payload), may_defer=False)
    assert event["enrichment"]["complete"] is False and event["enrichment"]["reason"].startswith(
        "circleci_server_error"
    )


def enrich_green_before(world, failed_workflow) -> dict:
    """A green pipeline (#130) on the same ref, enriched: the failure after it breaks the ref."""
    green = copy.deepcopy(failed_workflow)
    green["id"], green["workflow"]["id"], green["pipeline"]["id"] = "green", "wf-green", "pl-green"
    green["workflow"]["status"], green["pipeline"]["number"] = "success", 130
    world.load(green, [{"name": "build"}])
    return world.enrich(green)


def test_a_break_asks_once_who_triggered_the_pipeline(world, failed_workflow) -> None:
    first = enrich_green_before(world, failed_workflow)
    assert first["pipeline"]["trigger_actor"] is None  # not a break: nobody asked
    world.load(failed_workflow, twelve_jobs())
    event = world.enrich(failed_workflow)

    assert event["transition"]["kind"] == "broken"
    assert event["pipeline"]["trigger_actor"] == world.sim.dataset.user["login"]
    assert world.calls("GET /pipeline/{pipeline-id}") == 1
    assert event["enrichment"]["api_calls"] == 11 + 2 * STEP_CALLS + FLAKY_CALLS + 1


def test_a_trigger_actor_the_api_cannot_give_leaves_the_event_complete(world, failed_workflow) -> None:
    enrich_green_before(world, failed_workflow)
    world.load(failed_workflow, twelve_jobs())
    world.sim.add_fault(path="/pipeline/*", status=500, times=None)
    event = world.enrich(failed_workflow)
    assert event["pipeline"]["trigger_actor"] is None and event["enrichment"]["complete"] is True


# -- the failing step and its log tail (issue 22) ---------------------------------------------


def failing_jobs(output: Any = None, **step: Any) -> list[dict]:
    """A passing build and a docker build that failed in its `docker build` step, whose output is
    `output` (default: ANSI, redraws and a token)."""
    if output is None:
        output = "\x1b[1mStep 5/9 : RUN make\x1b[0m\r\n10%\r55%\r100%\r\nexport T=ghp_" + "Z" * 36 + "\r\nError 1\r\n"
    steps = [
        {"name": "Checkout code", "output": "ok\r\n"},
        {"name": "postgres", "background": True, "status": "canceled", "output": "db up\r\n"},
        {"name": "docker build", "status": "failed", "exit_code": 1, "output": output} | step,
    ]
    return [
        {"name": "build", "status": "success"},
        {"name": "build-image", "status": "failed", "tests": [], "steps": steps},
    ]


def test_a_failed_job_gains_its_failing_step_and_the_tail_of_its_output(world, failed_workflow) -> None:
    world.load(failed_workflow, failing_jobs())
    event = world.enrich(failed_workflow)
    [job] = event["failed_jobs"]
    assert job["failed_step"] == {
        "name": "docker build",
        "status": "failed",
        "exit_code": 1,
        "node_index": 0,
        "log_tail": "Step 5/9 : RUN make\n100%\nexport T=[masked]\nError 1",
        "truncated": False,
        "source": "v1.1",
        "reason": None,
    }
    assert event["enrichment"]["complete"] is True and "notes" not in event["enrichment"]
    assert world.calls(V1_JOB) == 1 and world.calls(OUTPUT) == 1
    assert world.sim.tokens_at_storage == 0  # the storage route refuses a token: none came


def test_the_storage_route_refuses_a_circleci_token(world, failed_workflow) -> None:
    """What proves the test above: the simulator's storage host answers 403 to a token."""
    world.load(failed_workflow, failing_jobs())
    number = world.sim.dataset.jobs[failed_workflow["workflow"]["id"]][1]["job_number"]
    url = world.context.client.job_v1("gh/circleci/webhook-service", number)["steps"][2]["actions"][0]["output_url"]
    assert httpx.get(url, headers={"Circle-Token": "sim-token"}).status_code == 403
    assert httpx.get(url).status_code == 200 and world.sim.tokens_at_storage == 1


def test_log_tail_off_asks_nothing_more(redis_url, failed_workflow) -> None:
    app = create_simulator(Dataset(), page_size=PAGE)
    with running(app) as base:
        world = World(base, app, redis_url)
        world.context.close()
        world.settings = Settings.from_environ({**world.settings.environ, "LOG_TAIL": "off"})
        world.context = WorkerContext.build(world.settings, redis=world.redis)
        world.load(failed_workflow, failing_jobs())
        event = world.enrich(failed_workflow)
        world.context.close()
    assert "failed_step" not in event["failed_jobs"][0] and world.calls(V1_JOB) == 0


BAD_OUTPUT = {
    "no-steps": ({"steps": [{"name": "x", "status": "success"}]}, "no failing step"),
    "no-output-url": ({"has_output": False, "output": None}, "no output URL"),
    "not-json": ({"output": b"<html>Bad Gateway</html>"}, "not JSON"),
    "binary": ({"output": bytes(range(256)) * 40}, "the output"),
    "invalid-utf-8": ({"output": b'[{"message": "' + b"\xc3\x28\xa0\xa1" * 300 + b'"}]'}, "binary"),
}


@pytest.mark.parametrize("case", list(BAD_OUTPUT))
def test_an_unreadable_output_sends_the_event_without_the_tail_saying_why(world, failed_workflow, case) -> None:
    change, reason = BAD_OUTPUT[case]
    jobs = failing_jobs()
    if "steps" in change:
        jobs[1]["steps"] = change["steps"]
    else:
        jobs[1]["steps"][2].update(change)
    world.load(failed_workflow, jobs)
    event = world.enrich(failed_workflow)
    [job] = event["failed_jobs"]
    step = job["failed_step"]
    assert step is None or step["log_tail"] is None
    assert reason in " ".join(event["enrichment"]["notes"]) and event["enrichment"]["reason"].startswith("build-image")
    assert event["enrichment"]["complete"] is True  # the facts are all there: only the tail is missing


@pytest.mark.parametrize(
    ("status", "said"), [(403, "403 (expired or refused)"), (404, "404 (not found)"), (500, "500")]
)
def test_an_output_url_that_answers_an_error_is_said(world, failed_workflow, status, said) -> None:
    world.load(failed_workflow, failing_jobs())
    world.sim.add_fault(path="/_sim/storage/*", status=status, times=None)
    event = world.enrich(failed_workflow)
    assert event["failed_jobs"][0]["failed_step"]["log_tail"] is None
    assert said in event["enrichment"]["notes"][0]


@pytest.mark.parametrize(
    ("fault", "said"), [({"status": 404}, "answered 404"), ({"status": 429, "retry_after": 60}, "429")]
)
def test_a_v1_1_answer_that_fails_is_a_note_never_a_deferral(world, failed_workflow, fault, said) -> None:
    world.load(failed_workflow, failing_jobs())
    world.sim.add_fault(path="/api/v1.1/*", times=None, **fault)
    event = world.enrich(failed_workflow, may_defer=True)  # the tail never defers the event
    assert event["failed_jobs"][0]["failed_step"] is None and event["enrichment"]["complete"] is True
    assert said in event["enrichment"]["notes"][0]


def test_a_50_mb_log_is_read_from_its_end_only(world, failed_workflow) -> None:
    lines = [f"compiling module {i}\r\n" for i in range(1_000_000)]  # ~26 MB of messages, 50 MB of JSON
    world.load(failed_workflow, failing_jobs(output=[*lines, "\x1b[31mError: out of memory\x1b[0m\r\n"]))
    event = world.enrich(failed_workflow)
    step = event["failed_jobs"][0]["failed_step"]
    assert step["log_tail"].endswith("compiling module 999999\nError: out of memory") and step["truncated"] is True


def test_a_log_not_had_within_the_bound_never_holds_the_notification(world, failed_workflow) -> None:
    world.context.enricher.log_tail_seconds = 0.5
    world.load(failed_workflow, failing_jobs())
    # slower than the output reader's own timeout (LOG_TAIL_SECONDS, 5 s): had the enrichment
    # waited for it, the tail would be there or the reason would be the reader's timeout
    world.sim.add_fault(path="/_sim/storage/*", status=None, delay=10.0, times=None)
    event = world.enrich(failed_workflow)
    assert event["failed_jobs"][0]["failed_step"] is None
    assert "not had within 0.5 s" in event["enrichment"]["notes"][0]


# -- known-flaky tests (issue 22, item 5) -----------------------------------------------------

INSIGHTS = "GET /insights/{project-slug}/flaky-tests"
SLUG = "gh/circleci/webhook-service"


def flaky(world, job: str, *numbers: int, times: int = 7) -> None:
    for i in numbers:
        world.sim.dataset.add_flaky_test(
            SLUG, test_name=f"{job} broken {i}", classname=job, job_name=job, times_flaked=times
        )


@pytest.mark.parametrize("casing", ["kebab", "snake"])
def test_known_flaky_tests_are_marked_and_insights_is_asked_once_per_project(world, failed_workflow, casing) -> None:
    world.sim.dataset.flaky_casing = casing
    world.load(failed_workflow, twelve_jobs())
    flaky(world, "test-unit", 0, 1, 2)
    flaky(world, "test-e2e", 0, times=2)
    event = world.enrich(failed_workflow)
    unit, e2e = event["failed_jobs"]
    assert [t.get("known_flaky") for t in unit["tests"]["failures"]] == [{"times_flaked": 7}] * 3
    assert [t.get("known_flaky") for t in e2e["tests"]["failures"]] == [{"times_flaked": 2}, None, None]
    assert event["only_known_flaky"] is False  # test-e2e failed tests not known to flake
    again = world.enrich({**failed_workflow, "id": "another-delivery"})
    assert world.calls(INSIGHTS) == 1 and again["failed_jobs"][0]["tests"]["failures"][0]["known_flaky"]
    assert "notes" not in event["enrichment"]


def test_an_event_failing_only_known_flaky_tests_says_so_and_a_subscription_may_skip_it(
    world, failed_workflow, tmp_path
) -> None:
    world.load(failed_workflow, twelve_jobs())
    flaky(world, "test-unit", 0, 1, 2)
    flaky(world, "test-e2e", 0, 1, 2)
    event = world.enrich(failed_workflow)
    assert event["only_known_flaky"] is True
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text(
        "handlers:\n  pager: {type: log}\n  chat: {type: log}\n"
        "subscriptions:\n  - {name: pager, handlers: [pager], skip_known_flaky: true}\n"
        "  - {name: chat, handlers: [chat]}\n"
    )
    routes = load_routes(routes_file, {})
    assert routes.match(event) == ["chat"]
    assert str(routes.explain(event)[0][1]) == "skip_known_flaky: every failing test is known to flake (Insights)"
    assert routes.match({**event, "only_known_flaky": False}) == ["pager", "chat"]


def test_a_failure_without_test_results_is_never_only_known_flaky(world, failed_workflow) -> None:
    world.load(failed_workflow, failing_jobs())  # a docker build: no tests
    flaky(world, "build-image", 0)
    assert world.enrich(failed_workflow)["only_known_flaky"] is False


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ({"status": 200, "body": {"unexpected": []}}, "circleci_invalid_response"),
        ({"status": 200, "body": "not json"}, "circleci_invalid_response"),
        ({"status": 404}, "circleci_not_found"),
    ],
)
def test_an_insights_answer_that_cannot_be_read_leaves_the_marks_out_saying_why(
    world, failed_workflow, fault, said
) -> None:
    world.load(failed_workflow, twelve_jobs())
    flaky(world, "test-unit", 0, 1, 2)
    world.sim.add_fault(path="/insights/*", times=None, **fault)
    event = world.enrich(failed_workflow, may_defer=True)
    assert "only_known_flaky" not in event
    assert not any("known_flaky" in t for j in event["failed_jobs"] for t in j["tests"]["failures"])
    assert event["enrichment"]["complete"] is True and said in event["enrichment"]["notes"][-1]


def test_circleci_slugs_skip_insights_and_say_so(world) -> None:
    payload = load_fixture("workflow-completed.github-app.observed.json")
    payload["workflow"]["status"] = "failed"
    world.load(payload, [{"name": "test", "status": "failed"}])
    event = world.enrich(payload)
    assert world.calls(INSIGHTS) == 0 and "only_known_flaky" not in event
    assert "Insights does not support circleci/ project slugs" in event["enrichment"]["notes"][-1]
    assert event["failed_jobs"][0]["failed_step"]["log_tail"]  # v1.1 takes these slugs as vcs `circleci`
