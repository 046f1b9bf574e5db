"""`GET /cc.xml`: absent without FEED_TOKEN, 401 with a challenge without it, a cctray feed of the
transition state with it: valid against the cctray XSD and read by BuildNotify's own parser."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from xml.etree import ElementTree

import pytest
import redis
import xmlschema
from starlette.testclient import TestClient

from config.settings import Settings
from service.app import create_app
from service.cctray import feed
from tests.conftest import FIXTURES, SECRET
from workers.transition import TransitionStore

pytestmark = pytest.mark.integration

FEED = "feed-token-of-16-or-more"
ADMIN = "admin-token-value-of-at-least-32-characters"
BEARER = {"authorization": f"Bearer {FEED}"}
SCHEMA = xmlschema.XMLSchema(FIXTURES / "cctray" / "cctray.xsd")
WORKFLOW_URL = "https://app.circleci.com/pipelines/github/acme/api/{}/workflows/wf-{}"


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    env = {"REDIS_URL": redis_url, "CIRCLECI_WEBHOOK_SECRETS": SECRET, "FEED_TOKEN": FEED, "ADMIN_TOKEN": ADMIN}
    with TestClient(create_app(Settings.from_environ(env)), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def transitions(redis_url: str) -> Iterator[TransitionStore]:
    client = redis.Redis.from_url(redis_url)
    yield TransitionStore(client)
    client.close()


def record(store: TransitionStore, status: str, number: int, *, project: str = "gh/acme/api", ref: str = "main",
           workflow: str = "build", at: str = "2026-12-01T10:00:00+01:00") -> None:  # fmt: skip
    store.record(project=project, ref=ref, workflow=workflow, status=status, pipeline_number=number,
                 happened_at=at, web_url=WORKFLOW_URL.format(number, number))  # fmt: skip


def projects(body: bytes) -> list[dict[str, str]]:
    return [dict(p.attrib) for p in ElementTree.fromstring(body).iter("Project")]


def test_without_feed_token_the_route_does_not_exist(redis_url: str) -> None:
    settings = Settings.from_environ({"REDIS_URL": redis_url, "CIRCLECI_WEBHOOK_SECRETS": SECRET})
    with TestClient(create_app(settings)) as client:
        assert client.get("/cc.xml", headers=BEARER).status_code == 404


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer wrong-token-wrong-token",
        f"Bearer {ADMIN}",  # the admin token is not the feed's
        "Basic " + base64.b64encode(b"radiator:wrong").decode(),
        "Basic not-base64!",
        f"Token {FEED}",
        FEED,
    ],
    ids=["none", "wrong-bearer", "admin-token", "wrong-basic", "bad-basic", "other-scheme", "no-scheme"],
)
def test_without_the_feed_token_it_is_401_with_a_challenge_and_no_cookie(
    client: TestClient, header: str | None
) -> None:
    answer = client.get("/cc.xml", headers={"authorization": header} if header else {}, follow_redirects=False)
    assert answer.status_code == 401
    assert "Basic" in answer.headers["www-authenticate"] and "Bearer" in answer.headers["www-authenticate"]
    assert "set-cookie" not in answer.headers and FEED not in answer.text
    assert answer.json()["error_code"] == "unauthorized"


@pytest.mark.parametrize(
    "header",
    [f"Bearer {FEED}", "Basic " + base64.b64encode(f"radiator:{FEED}".encode()).decode()],
    ids=["bearer", "basic"],
)
def test_bearer_or_basic_with_the_feed_token_reads_the_feed(client: TestClient, header: str) -> None:
    answer = client.get("/cc.xml", headers={"authorization": header})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    assert projects(answer.content) == []


def test_one_project_per_ref_and_workflow_from_the_transition_state(
    client: TestClient, transitions: TransitionStore
) -> None:
    record(transitions, "success", 10)
    record(transitions, "failed", 11)  # main broke at 11
    record(transitions, "error", 3, ref="feature/x")
    record(transitions, "unauthorized", 4, workflow="deploy")
    answer = client.get("/cc.xml", headers=BEARER)
    assert projects(answer.content) == [
        {"name": "gh/acme/api :: feature/x :: build", "activity": "Sleeping", "lastBuildStatus": "Exception",
         "lastBuildTime": "2026-12-01T09:00:00.000Z", "webUrl": WORKFLOW_URL.format(3, 3), "lastBuildLabel": "3"},
        {"name": "gh/acme/api :: main :: build", "activity": "Sleeping", "lastBuildStatus": "Failure",
         "lastBuildTime": "2026-12-01T09:00:00.000Z", "webUrl": WORKFLOW_URL.format(11, 11), "lastBuildLabel": "11"},
        {"name": "gh/acme/api :: main :: deploy", "activity": "Sleeping", "lastBuildStatus": "Unknown",
         "lastBuildTime": "2026-12-01T09:00:00.000Z", "webUrl": WORKFLOW_URL.format(4, 4), "lastBuildLabel": "4"},
    ]  # fmt: skip


def test_the_feed_is_valid_against_the_cctray_schema(client: TestClient, transitions: TransitionStore) -> None:
    record(transitions, "success", 1)
    record(transitions, "failed", 2, ref="<b>&\"'")
    record(transitions, "failed", 3, at="not a time")
    SCHEMA.validate(client.get("/cc.xml", headers=BEARER).content)


def test_buildnotify_reads_the_feed(client: TestClient, transitions: TransitionStore) -> None:
    cctray = pytest.importorskip(
        "buildnotifylib.core.cctray", reason="make installs buildnotify (requirements-clients.lock)"
    )
    record(transitions, "success", 5)
    record(transitions, "failed", 6, ref="release")

    class Server:
        url = "http://127.0.0.1/cc.xml"
        prefix = None
        timezone = "None"
        excluded_projects: tuple[str, ...] = ()

    read = cctray.parse(client.get("/cc.xml", headers=BEARER).content, Server())
    assert [(p.name, p.status, p.last_build_label) for p in read] == [
        ("gh/acme/api :: main :: build", "Success", "5"),
        ("gh/acme/api :: release :: build", "Failure", "6"),
    ]
    assert all(p.build_time is not None and p.url.startswith("https://app.circleci.com/") for p in read)


def test_project_and_branch_narrow_the_feed(client: TestClient, transitions: TransitionStore) -> None:
    record(transitions, "success", 1)
    record(transitions, "success", 2, ref="dev")
    record(transitions, "success", 3, project="gh/acme/web")
    names = [p["name"] for p in projects(client.get("/cc.xml?project=gh/acme/api&branch=dev", headers=BEARER).content)]
    assert names == ["gh/acme/api :: dev :: build"]
    assert projects(client.get("/cc.xml?branch=%3Cnone%3E", headers=BEARER).content) == []


def test_names_from_circleci_are_escaped_as_xml() -> None:
    state = {"project": "gh/a/b", "ref": '"><x/>', "workflow": "w&w", "status": "success", "pipeline_number": 1,
             "happened_at": "2026-01-01T00:00:00Z", "web_url": None}  # fmt: skip
    [project] = projects(feed([state]))
    assert project["name"] == 'gh/a/b :: "><x/> :: w&w'
    assert project["webUrl"] == "https://app.circleci.com/pipelines/gh/a/b"


def test_redis_down_is_503_in_the_error_format(redis_url: str) -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:1", "CIRCLECI_WEBHOOK_SECRETS": SECRET, "FEED_TOKEN": FEED}
    with TestClient(create_app(Settings.from_environ(env)), raise_server_exceptions=False) as client:
        answer = client.get("/cc.xml", headers=BEARER)
    assert answer.status_code == 503
    assert answer.json()["error_code"] == "redis_unavailable"


def test_the_feed_reads_the_state_index_and_scans_no_keyspace(
    client: TestClient, transitions: TransitionStore, redis_url: str
) -> None:
    for number, ref in enumerate(["main", "develop", "release"], 1):
        record(transitions, "failed", number, ref=ref)
    stats = redis.Redis.from_url(redis_url)
    stats.config_resetstat()
    for query in ("", "?project=gh/acme/api", "?project=gh/acme/api&branch=main"):
        assert client.get("/cc.xml" + query, headers=BEARER).status_code == 200
    ran = {name.removeprefix("cmdstat_") for name in stats.info("commandstats")}
    stats.close()
    assert ran and not ran & {"scan", "keys", "hscan", "sscan", "zscan"}, sorted(ran)
