"""Plain GETs: API paths straight to the client's pool, over real sockets; httpx for what they do not handle."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from config.errors import CircleCIRateLimited, CircleCITimeout, CircleCIUnreachable
from tests.certificates import Authority
from tests.clock import FakeClock
from tests.server import running
from workers.circleci.client import CircleCIClient
from workers.circleci.plain_get import PlainGet

SLUG = "gh/acme/app"


class Recorder:
    """A stand-in API: records each request's target and headers, answers from `answers` or pages."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.answers: list[Response] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    @property
    def app(self) -> Starlette:
        async def any_get(request: Request) -> Response:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            self.seen.append((target, dict(request.headers)))
            if self.answers:
                return self.answers.pop(0)
            token = request.query_params.get("page-token")
            if token is None:
                return JSONResponse({"items": [{"n": 1}], "next_page_token": "a b/c+=="})
            return JSONResponse({"items": [{"n": 2, "token": token}], "next_page_token": None})

        return Starlette(routes=[Route("/{path:path}", any_get)])


@pytest.fixture
def api() -> Any:
    recorder = Recorder()
    app = recorder.app
    with running(app) as base_url:
        yield recorder, base_url


def client_for(base_url: str, **options: Any) -> CircleCIClient:
    options = {"clock": FakeClock(), "rng": random.Random(7), **options}
    return CircleCIClient(base_url=f"{base_url}/api/v2", token="tok", **options)


def test_a_plain_client_sends_api_gets_on_the_pool_with_its_headers_and_the_token(api) -> None:
    recorder, base_url = api
    with client_for(base_url) as client:
        assert PlainGet.of(client.transport._http) is not None
        items = list(client.paginate("/project/gh/acme/app/pipeline", params={"branch": "main"}))
    assert items == [{"n": 1}, {"n": 2, "token": "a b/c+=="}]  # pagination: the token sent back as given
    [(first, headers), (second, _)] = recorder.seen
    assert first == "/api/v2/project/gh/acme/app/pipeline?branch=main"
    assert second == "/api/v2/project/gh/acme/app/pipeline?branch=main&page-token=a+b%2Fc%2B%3D%3D"
    assert headers["circle-token"] == "tok"
    assert headers["accept"] == "application/json"
    assert "gzip" in headers["accept-encoding"]
    assert headers["host"] == httpx.URL(base_url).netloc.decode()


def test_a_gzip_body_is_decoded(api) -> None:
    recorder, base_url = api
    body = json.dumps({"items": [{"n": 7}], "next_page_token": None}).encode()
    recorder.answers.append(Response(gzip.compress(body), headers={"content-encoding": "gzip"},
                                     media_type="application/json"))  # fmt: skip
    with client_for(base_url) as client:
        assert list(client.paginate("/x")) == [{"n": 7}]


def test_a_429_with_retry_after_and_a_500_are_retried_on_the_plain_path(api) -> None:
    recorder, base_url = api
    clock = FakeClock()
    recorder.answers += [Response("Rate limited.", 429, headers={"Retry-After": "2"}),
                         Response("oops", 500), JSONResponse({"ok": True})]  # fmt: skip
    with client_for(base_url, clock=clock) as client:
        assert client.json("GET", "/me") == {"ok": True}
    assert len(recorder.seen) == 3
    assert 2 <= clock.sleeps[0] < 2.5


def test_a_429_asking_too_long_raises_with_its_wait(api) -> None:
    recorder, base_url = api
    recorder.answers.append(Response("Rate limited.", 429, headers={"Retry-After": "120"}))
    with client_for(base_url, max_wait=5) as client, pytest.raises(CircleCIRateLimited) as raised:
        client.json("GET", "/me")
    assert raised.value.retry_after == 120


def test_a_timeout_on_the_plain_path_is_the_api_timeout_error() -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        import asyncio

        await asyncio.sleep(2)

    with (
        running(slow) as slow_url,
        client_for(slow_url, timeout=0.2, max_retries=0) as client,
        pytest.raises(CircleCITimeout),
    ):
        client.json("GET", "/me")


def test_a_v1_url_on_the_api_origin_goes_plain_with_the_token(api) -> None:
    recorder, base_url = api
    recorder.answers.append(JSONResponse({"steps": []}))
    with client_for(base_url) as client:
        assert client.job_v1(SLUG, 12) == {"steps": []}
    [(target, headers)] = recorder.seen
    assert target == "/api/v1.1/project/github/acme/app/12"
    assert headers["circle-token"] == "tok"


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("/workflow/w%201/job", "/api/v2/workflow/w%201/job"),
        ("{origin}/api/v1.1/project/github/a/b/1", "/api/v1.1/project/github/a/b/1"),
        ("https://circle-artifacts.com/0/x.xml", None),  # another origin: httpx, and the token scope
        ("{origin}.evil.example/x", None),
        ("/workflow/ünï/job", None),  # what httpx would encode first
        ("/workflow/a b/job", None),
    ],
)
def test_only_paths_on_the_api_origin_that_need_no_encoding_go_plain(api, url: str, target: str | None) -> None:
    _, base_url = api
    plain = PlainGet.of(httpx.Client(base_url=f"{base_url}/api/v2"))
    assert plain is not None
    assert plain.target(url.format(origin=base_url)) == target


@pytest.mark.parametrize(
    "options",
    [
        {"transport": httpx.MockTransport(lambda r: httpx.Response(200))},
        {"proxy": "http://127.0.0.1:9"},
        {"mounts": {"http://": httpx.HTTPTransport()}},
        {"auth": ("user", "pass")},
        {"event_hooks": {"request": [print]}},
        {"cookies": {"session": "1"}},
    ],
)
def test_a_client_with_what_only_httpx_handles_sends_everything_through_httpx(options: dict[str, Any]) -> None:
    assert PlainGet.of(httpx.Client(base_url="http://127.0.0.1:9/api/v2", **options)) is None


def test_an_api_origin_named_in_no_proxy_is_not_proxied_and_goes_plain(api, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder, base_url = api
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    recorder.answers.append(JSONResponse({"login": "me"}))
    with client_for(base_url) as client:
        assert client.transport._plain is not None
        assert client.json("GET", "/me") == {"login": "me"}


def test_proxies_from_the_environment_are_honoured_through_httpx(api, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY set: the API client's GETs go to the proxy, as httpx sends them (absolute form)."""
    recorder, proxy_url = api
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    recorder.answers.append(JSONResponse({"login": "me"}))
    with CircleCIClient(base_url="http://api.example.invalid/api/v2", token="tok") as client:
        assert client.transport._plain is None
        assert client.json("GET", "/me") == {"login": "me"}
    [(target, headers)] = recorder.seen
    assert target == "/api/v2/me"
    assert headers["host"] == "api.example.invalid"


def test_tls_is_the_clients_own_its_certificate_authority_trusted_or_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSL_CERT_FILE (read by httpx as the client is built) names the authority: the pool's TLS trusts it."""
    authority = Authority.create(tmp_path)
    issued = authority.issue("api", names=("IP:127.0.0.1",))

    async def me(request: Request) -> Response:
        return JSONResponse({"login": "me"})

    app = Starlette(routes=[Route("/api/v2/me", me)])
    with running(app, ssl_certfile=str(issued.cert), ssl_keyfile=str(issued.key)) as base_url:
        with client_for(base_url, max_retries=0) as untrusting, pytest.raises(CircleCIUnreachable):
            untrusting.json("GET", "/me")  # the default trust store does not know this authority
        monkeypatch.setenv("SSL_CERT_FILE", str(authority.ca))
        with client_for(base_url) as client:
            assert client.transport._plain is not None
            assert client.json("GET", "/me") == {"login": "me"}


def test_the_live_simulator_tests_run_on_the_plain_path(live_simulator) -> None:
    """So test_client_live's pages, 429s, 5xx, timeouts and tokens cover this path too."""
    _, _, client = live_simulator
    assert client.transport._plain is not None
