"""A step's output over real sockets: on the client's pool or through httpx, the same request and the same bounds."""

from __future__ import annotations

import asyncio
import gzip
import json
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from config.errors import LogTailUnavailable
from tests.certificates import Authority
from tests.server import running
from workers.circleci.step_output import READ_FACTOR, StepOutput

MAX = 4096


class Storage:
    """A stand-in storage host: records each request's target and headers, answers `answer`."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.answer: Response = Response(b'[{"message": "ok"}]', 206, headers={"content-range": "bytes 0-18/19"})

    @property
    def app(self) -> Starlette:
        async def any_get(request: Request) -> Response:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            self.seen.append((target, dict(request.headers)))
            return self.answer

        return Starlette(routes=[Route("/{path:path}", any_get)])


@pytest.fixture
def storage() -> Any:
    host = Storage()
    with running(host.app) as base_url:
        yield host, base_url


def opened(timeout: float = 5) -> closing[StepOutput]:
    return closing(StepOutput(max_bytes=MAX, timeout_seconds=timeout))


def on_the_pool(output: StepOutput, url: str) -> bool:
    plain = output._plain_for(httpx.URL(url))
    return plain is not None and plain.target(url) is not None


def test_the_output_goes_on_the_pool_with_the_headers_httpx_sends(storage) -> None:
    """A presigned URL's query goes as given; a URL httpx must encode first goes through httpx,
    and both send the same headers: Range, the client's own, never a token."""
    host, base_url = storage
    signed = f"{base_url}/out/1?X-Amz-Credential=AKIA%2F20260101&X-Amz-Signature=ab12"
    encoded = f"{base_url}/out/a b"
    with opened() as output:
        assert on_the_pool(output, signed) and not on_the_pool(output, encoded)
        assert output.fetch(signed) == (b'[{"message": "ok"}]', False)
        assert output.fetch(encoded) == (b'[{"message": "ok"}]', False)
    [(plain_target, plain_headers), (httpx_target, httpx_headers)] = host.seen
    assert plain_target == "/out/1?X-Amz-Credential=AKIA%2F20260101&X-Amz-Signature=ab12"
    assert httpx_target == "/out/a b"
    assert plain_headers == httpx_headers
    assert plain_headers["range"] == f"bytes=-{MAX}" and plain_headers["user-agent"] == "circleci-events"
    assert plain_headers["host"] == httpx.URL(base_url).netloc.decode()
    assert not {"circle-token", "authorization", "cookie"} & set(plain_headers)


@pytest.mark.parametrize("path", ["/out/1", "/out/a b"], ids=["pool", "httpx"])
def test_a_gzip_body_is_decoded_and_a_range_from_later_is_partial(storage, path: str) -> None:
    host, base_url = storage
    body = b'[{"message": "end"}]'
    host.answer = Response(
        gzip.compress(body), 206, headers={"content-encoding": "gzip", "content-range": "bytes 100-119/120"}
    )
    with opened() as output:
        assert output.fetch(base_url + path) == (body, True)


@pytest.mark.parametrize("path", ["/out/1", "/out/a b"], ids=["pool", "httpx"])
def test_a_host_ignoring_range_is_read_to_a_bound(storage, path: str) -> None:
    host, base_url = storage
    line = json.dumps({"message": "x" * 100}).encode() + b","
    host.answer = Response(b"[" + line * (READ_FACTOR * MAX // len(line) + 10) + b"{}]", 200)
    with opened() as output, pytest.raises(LogTailUnavailable, match="ignores Range"):
        output.fetch(base_url + path)
    host.answer = Response(b"[" + line * 100 + b"{}]", 200)  # ~10 kB: its last MAX bytes kept
    with opened() as output:
        body, partial = output.fetch(base_url + path)
    assert len(body) == MAX and body.endswith(b"{}]") and partial


@pytest.mark.parametrize(
    ("status", "reason"), [(403, "403 (expired or refused)"), (404, "404 (not found)"), (302, "302"), (500, "500")]
)
def test_an_answer_that_is_not_the_output_says_which(storage, status: int, reason: str) -> None:
    host, base_url = storage
    host.answer = Response(b"<Error/>", status, headers={"location": "https://elsewhere.example/"})
    with opened() as output, pytest.raises(LogTailUnavailable) as raised:
        output.fetch(f"{base_url}/out/1")
    assert str(raised.value.message) == f"the output URL answered {reason}"
    assert len(host.seen) == 1  # a redirect is not followed


def test_a_slow_host_is_given_up_within_the_timeout() -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(2)

    with running(slow) as base_url, opened(0.2) as output:
        assert on_the_pool(output, f"{base_url}/out/1")
        with pytest.raises(LogTailUnavailable, match=r"within 0\.2 s"):
            output.fetch(f"{base_url}/out/1")


def test_a_proxy_for_the_output_host_is_used_and_no_proxy_honoured(storage, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP(S)_PROXY from the environment: the output goes to the proxy through httpx; a host that
    NO_PROXY names goes on the pool."""
    proxy, proxy_url = storage
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "s3.example")
    with opened() as output:
        assert on_the_pool(output, "https://s3.example/out/1")
        assert not on_the_pool(output, "https://other.example/out/1")
        unheard = "http://127.0.0.2:9/out/1"  # nothing listens there: only the proxy can answer
        assert not on_the_pool(output, unheard)
        assert output.fetch(unheard) == (b'[{"message": "ok"}]', False)
    [(target, headers)] = proxy.seen
    assert target == "/out/1" and headers["host"] == "127.0.0.2:9" and headers["range"] == f"bytes=-{MAX}"


def test_tls_trusts_ssl_cert_file_and_refuses_an_unknown_authority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    authority = Authority.create(tmp_path)
    issued = authority.issue("storage", names=("IP:127.0.0.1",))
    host = Storage()
    with running(host.app, ssl_certfile=str(issued.cert), ssl_keyfile=str(issued.key)) as base_url:
        with opened() as untrusting:
            assert on_the_pool(untrusting, f"{base_url}/out/1")
            with pytest.raises(LogTailUnavailable, match="could not be reached"):
                untrusting.fetch(f"{base_url}/out/1")
        monkeypatch.setenv("SSL_CERT_FILE", str(authority.ca))
        with opened() as output:
            assert on_the_pool(output, f"{base_url}/out/1")
            assert output.fetch(f"{base_url}/out/1") == (b'[{"message": "ok"}]', False)


def test_cookies_a_host_set_are_not_sent_back(storage) -> None:
    host, base_url = storage
    host.answer = Response(b"[]", 206, headers={"set-cookie": "session=1; Path=/", "content-range": "bytes 0-1/2"})
    with opened() as output:
        output.fetch(f"{base_url}/out/1")
        output.fetch(f"{base_url}/out/2")
    assert "cookie" not in host.seen[1][1]
