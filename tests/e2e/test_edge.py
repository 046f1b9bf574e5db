"""What a client without the secret can take from a real `circleci-events web` (issue 11, finding 9).

Raw sockets against the real process: uvicorn, httptools and our guarded protocol together.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import redis

from tests.conftest import SECRET, fresh, load_fixture
from tests.service.conftest import signed

URL = "/webhooks/circleci"


def address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def read_answer(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes (b"" when it closed without a word)."""
    sock.settimeout(timeout)
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return answer


def deliver(base: str, event_id: str, *, secret: str = SECRET, local_address: str | None = None) -> httpx.Response:
    """A delivery signed with `secret`, sent from `local_address` (another client) when given."""
    payload = dict(fresh(load_fixture("workflow-completed.github-oauth.docs.json")), id=event_id)
    with httpx.Client(transport=httpx.HTTPTransport(local_address=local_address)) as client:
        return client.post(base + URL, **signed(payload, secret=secret))


def test_16_mb_of_headers_get_431_or_a_closed_connection_and_the_process_stays_healthy(redis_url, web_factory) -> None:
    web, base = web_factory(redis_url)
    sock = socket.create_connection(address(base))
    answer: list[bytes] = []
    reader = threading.Thread(target=lambda: answer.append(read_answer(sock, 30)))
    reader.start()
    line = b"x-pad: " + b"a" * 8000 + b"\r\n"
    sent = 0
    try:
        sock.sendall(b"POST /webhooks/circleci HTTP/1.1\r\nhost: x\r\n")
        while sent < 16 * 1024 * 1024:
            sock.sendall(line)
            sent += len(line)
        sock.sendall(b"\r\n")
    except OSError:  # reset: the server closed the connection while we were still sending
        pass
    reader.join(30)
    sock.close()
    assert sent < 16 * 1024 * 1024, "the server read all 16 MB of headers"
    assert answer[0] == b"" or answer[0].startswith(b"HTTP/1.1 431 "), answer[0][:200]
    assert httpx.get(base + "/healthz").status_code == 200
    assert deliver(base, "after-431").status_code == 202
    refused = web.wait_for_log(lambda line: line.get("event") == "request_refused")
    assert refused["error_code"] == "headers_too_large" and refused["request_id"]


def test_a_client_trickling_its_headers_is_disconnected_within_the_deadline(redis_url, web_factory) -> None:
    _, base = web_factory(redis_url, WEB_HEADER_TIMEOUT_SECONDS="2")
    sock = socket.create_connection(address(base))
    sock.settimeout(0.05)
    started = time.monotonic()
    answer = b""
    for byte in b"POST /webhooks/circleci HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n":
        if answer or time.monotonic() - started > 15:  # the whole header would take ~80 s
            break
        try:
            sock.send(bytes([byte]))
            answer += sock.recv(4096)
        except TimeoutError:
            pass
        except OSError:
            break
        time.sleep(1)  # a byte a second
    answer += read_answer(sock, 1)
    elapsed = time.monotonic() - started
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"error_code":"header_timeout"' in answer
    assert elapsed < 15  # cut off at its 2 s deadline, not after the ~80 s the client would take
    assert deliver(base, "after-408").status_code == 202


def test_a_client_trickling_its_body_gets_408_and_is_disconnected(redis_url, web_factory) -> None:
    _, base = web_factory(redis_url, WEB_BODY_TIMEOUT_SECONDS="1")
    sock = socket.create_connection(address(base))
    sock.sendall(
        b"POST /webhooks/circleci HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"
    )
    started = time.monotonic()
    sock.settimeout(0.05)
    answer = b""
    closed = False
    while time.monotonic() - started < 6:
        try:
            sock.send(b" ")
            chunk = sock.recv(4096)
            if not chunk:
                closed = True
                break
            answer += chunk
        except TimeoutError:
            pass
        except OSError:
            closed = True
            break
        time.sleep(0.3)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"error_code":"body_timeout"' in answer
    assert closed, "the connection stayed open while the client kept sending its body"


def test_clients_without_the_secret_are_limited_per_address_before_redis(redis_url, web_factory) -> None:
    _, base = web_factory(redis_url, RATE_LIMIT_BURST="22", RATE_LIMIT_PER_SECOND="0.01")
    forged = [deliver(base, f"forged-{i}", secret="guess") for i in range(4)]
    assert [r.status_code for r in forged] == [401, 401, 429, 429]  # 1 + 10 tokens a guess out of 22
    assert int(forged[2].headers["retry-after"]) >= 1
    assert forged[2].json()["error_code"] == "rate_limited"
    assert redis.Redis.from_url(redis_url).keys("cie:bucket:*") == []  # refused without asking Redis
    # a signed delivery from the same address pays from its own bucket (issue 23 item 3)
    assert deliver(base, "from-the-guessers-address").status_code == 202
    assert deliver(base, "from-another-client", local_address="127.0.0.2").status_code == 202
