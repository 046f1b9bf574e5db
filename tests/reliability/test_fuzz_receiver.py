"""R6: fuzzing the receiver: whatever arrives, the answer is never a 5xx, never a traceback, and
no body or log line holds the webhook secret.

10,000 requests: 9,400 to the app in process (Starlette's TestClient on fakeredis, to be fast)
across seven strategies, and 600 over real HTTP to `circleci-events web`, 40 of those over raw
sockets with declared lengths the body does not have. The project publishes no OpenAPI
document of its own endpoints, so there is no schemathesis run.
"""

from __future__ import annotations

import copy
import json
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from config.settings import Settings
from service.app import create_app
from service.signature import sign
from tests.conftest import SECRET, fresh, load_fixture

pytestmark = pytest.mark.e2e

URL = "/webhooks/circleci"
EVENT_TYPES = ["workflow-completed", "job-completed", "ping", "", "WORKFLOW-COMPLETED", "x" * 300]
PAYLOAD = fresh(load_fixture("workflow-completed.failed.github-oauth.derived.json"))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)


def fuzz(examples: int) -> Callable[..., Any]:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same 10,000 requests every run: a failure reproduces
        suppress_health_check=list(HealthCheck),
    )


def headers_for(body: bytes, *, event_type: str = "workflow-completed", secret: str = SECRET) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "circleci-signature": sign(body, secret),
        "circleci-event-type": event_type,
    }


class Receiver:
    """The app in process; every answer and every log line checked, requests counted."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.sent = 0

    def post(self, body: bytes, headers: dict[str, str]) -> None:
        self.sent += 1
        response = self.client.post(URL, content=body, headers=headers)
        assert response.status_code < 500, (response.status_code, response.text, headers)
        assert "Traceback" not in response.text
        assert SECRET not in response.text


@pytest.fixture
def receiver(caplog: pytest.LogCaptureFixture) -> Iterator[Receiver]:
    config = Settings.from_environ(
        {
            "CIRCLECI_WEBHOOK_SECRETS": f"{SECRET},second-webhook-secret",
            "RATE_LIMIT_BURST": "1000000",
            "MAX_BODY_BYTES": "65536",
        }
    )
    app = create_app(config, redis=fakeredis.FakeAsyncRedis())
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs, TestClient(app, raise_server_exceptions=False) as client:
        yield Receiver(client)
    for line in [*map(repr, logs), *(r.getMessage() for r in caplog.records)]:
        assert SECRET not in line and "second-webhook-secret" not in line
        assert "Traceback" not in line
    assert not [r for r in caplog.records if r.exc_info], "an exception was logged"
    assert not [e for e in logs if e.get("exc_info") or e.get("exception")], "an exception was logged"


def signed_json(value: Any) -> bytes:
    return json.dumps(value).encode()


@fuzz(2000)
@given(body=st.binary(max_size=2000), event_type=st.sampled_from(EVENT_TYPES))
def run_malformed(receiver: Receiver, body: bytes, event_type: str) -> None:
    receiver.post(body, headers_for(body, event_type=event_type))


def test_malformed_bodies_signed_correctly_are_never_a_5xx(receiver: Receiver) -> None:
    run_malformed(receiver)
    assert receiver.sent == 2000


def nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    if kind == "dict":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"id":"x","type":"workflow-completed","workflow":' + b'{"a":' * depth + b"1" + b"}" * (depth + 1)


@fuzz(1000)
@given(depth=st.integers(1, 30000), kind=st.sampled_from(["list", "dict", "in-payload"]), cut=st.booleans())
def run_nested(receiver: Receiver, depth: int, kind: str, cut: bool) -> None:
    body = nested(depth, kind)
    body = body[: len(body) // 2] if cut else body
    receiver.post(body, headers_for(body))


def test_deeply_nested_json_is_never_a_5xx(receiver: Receiver) -> None:
    run_nested(receiver)
    assert receiver.sent == 1000


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


PAYLOAD_PATHS = paths(PAYLOAD)


@fuzz(2500)
@given(path=st.sampled_from(PAYLOAD_PATHS), value=JSON, drop=st.booleans())
def run_wrong_types(receiver: Receiver, path: tuple[Any, ...], value: Any, drop: bool) -> None:
    payload = copy.deepcopy(PAYLOAD)
    payload["id"] = str(receiver.sent)
    parent = payload
    for key in path[:-1]:
        parent = parent[key]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    body = signed_json(payload)
    receiver.post(body, headers_for(body))


def test_any_field_of_a_real_payload_with_a_wrong_type_or_missing_is_never_a_5xx(receiver: Receiver) -> None:
    run_wrong_types(receiver)
    assert receiver.sent == 2500


@fuzz(1200)
@given(texts=st.lists(st.text(), min_size=4, max_size=4), top=JSON)
def run_unicode(receiver: Receiver, texts: list[str], top: Any) -> None:
    payload = copy.deepcopy(PAYLOAD)
    payload["id"] = texts[0] or "empty"
    payload["project"]["slug"] = texts[1]
    payload["workflow"]["name"] = texts[2]
    payload["pipeline"]["vcs"]["commit"] = {"subject": texts[3], "body": top}
    payload[texts[3]] = top
    body = json.dumps(payload, ensure_ascii=bool(len(texts[0]) % 2)).encode("utf-8", "surrogatepass")
    receiver.post(body, headers_for(body))


def test_unicode_anywhere_in_a_payload_is_never_a_5xx(receiver: Receiver) -> None:
    run_unicode(receiver)
    assert receiver.sent == 1200


GOOD = signed_json(PAYLOAD)


@fuzz(1500)
@given(
    names=st.lists(st.sampled_from(["content-type", "circleci-signature", "circleci-event-type", "x-request-id",
                                    "x-forwarded-for", "content-encoding", "transfer-encoding", "expect"]),
                   min_size=1, max_size=4, unique=True),
    values=st.lists(HEADER_TEXT, min_size=4, max_size=4),
)  # fmt: skip
def run_header_garbage(receiver: Receiver, names: list[str], values: list[str]) -> None:
    headers = headers_for(GOOD)
    headers.update(zip(names, values, strict=False))
    receiver.post(GOOD, headers)


def test_garbage_in_any_header_is_never_a_5xx(receiver: Receiver) -> None:
    run_header_garbage(receiver)
    assert receiver.sent == 1500


@fuzz(1200)
@given(
    kind=st.sampled_from(["prefix", "other-secret", "random-hex", "many", "case", "sha1", "empty-secret"]),
    cut=st.integers(0, 67),
    noise=st.text(st.sampled_from("0123456789abcdefABCDEF=v1, "), max_size=140),
)
def run_bad_signatures(receiver: Receiver, kind: str, cut: int, noise: str) -> None:
    body = signed_json(dict(PAYLOAD, id=f"sig-{receiver.sent}"))
    good = sign(body, SECRET)
    header = {
        "prefix": good[:cut],
        "other-secret": sign(body, SECRET + "x"),
        "random-hex": "v1=" + noise,
        "many": ",".join([noise, good[:cut], "v1=" + "0" * 64]),
        "case": good.upper()[:cut] if cut else good.upper(),
        "sha1": "sha1=" + good[3:],
        "empty-secret": sign(body, ""),
    }[kind]
    headers = headers_for(body)
    headers["circleci-signature"] = header
    receiver.post(body, headers)


def test_bad_and_partial_signatures_are_never_a_5xx(receiver: Receiver) -> None:
    run_bad_signatures(receiver)
    assert receiver.sent == 1200


# -- over real HTTP, to `circleci-events web` -------------------------------------------------

REQUESTS = st.one_of(
    st.tuples(st.binary(max_size=500), st.just(True), st.fixed_dictionaries({})),
    st.tuples(st.binary(max_size=500), st.just(False), st.fixed_dictionaries({"circleci-signature": HEADER_TEXT})),
    st.tuples(st.just(GOOD), st.just(True), st.dictionaries(st.sampled_from(["content-type", "circleci-event-type",
              "x-request-id", "circleci-signature"]), HEADER_TEXT, max_size=3)),
)  # fmt: skip
DECLARED = ["1000000000000", str(2**63), "99999999999999999999999", "-1", "abc", " 12", "1e9", "0x10", "12, 12"]


def raw_post(port: int, declared: str, body: bytes, *, close_early: bool) -> bytes:
    """One request with the Content-Length we say; what came back (b"" if the server hung up)."""
    head = (
        f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"circleci-signature: {sign(body, SECRET)}\r\ncircleci-event-type: workflow-completed\r\n"
        f"Content-Length: {declared}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(head + body)
        if close_early:
            conn.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


def test_fuzzing_the_real_server_over_http_gives_no_5xx_and_no_traceback_or_secret_in_its_log(scenario) -> None:
    system = scenario()
    web = system.start_web(RATE_LIMIT_BURST="1000000", MAX_BODY_BYTES="65536")
    port = int(system.base.rsplit(":", 1)[1])
    sent = 0

    @fuzz(560)
    @given(request=REQUESTS)
    def run(request: tuple[bytes, bool, dict[str, str]]) -> None:
        nonlocal sent
        body, sign_it, extra = request
        headers = headers_for(body) if sign_it else {"content-type": "application/json"}
        headers.update(extra)
        sent += 1
        try:
            response = system.http.post(system.base + URL, content=body, headers=headers)
        except httpx.LocalProtocolError:  # a header httpx itself will not send: nothing reached the server
            return
        assert response.status_code < 500, (response.status_code, response.text)
        assert "Traceback" not in response.text and SECRET not in response.text

    run()
    for declared in DECLARED:
        for close_early in (False, True):
            for body in (b"", GOOD):
                sent += 1
                answer = raw_post(port, declared, body, close_early=close_early)
                status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b"---"
                assert not status.startswith(b"5"), answer[:300]
    truncated = sent
    for _ in range(4):  # a body shorter than declared, then the client hangs up
        sent += 1
        answer = raw_post(port, str(len(GOOD) + 100), GOOD, close_early=True)
        assert not answer.startswith(b"HTTP/1.1 5"), answer[:300]
    assert sent == 600 and sent - truncated == 4
    log = web.output()
    assert "Traceback" not in log
    assert SECRET not in log
    assert all(line.get("level") != "error" or line.get("event") == "redis_unavailable" for line in web.log_lines())
