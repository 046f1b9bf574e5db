"""The guarded HTTP protocol: head size and head time limits, and no body read at the client's pace.

Driven byte by byte through a fake transport (the network is faked, uvicorn and httptools are
real); tests/e2e/test_edge.py runs the same limits on a real `circleci-events web`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from structlog.testing import capture_logs
from uvicorn.config import Config
from uvicorn.server import ServerState

from config.log_sampler import LogSampler
from service.http_protocol import ClientConnections, guarded_http_protocol

LIMIT = 2048


class Transport:
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self, peer: str = "203.0.113.9") -> None:
        self.written = bytearray()
        self.closed = False
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": (self.peer, 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def status_lines(self) -> list[bytes]:
        return re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", bytes(self.written))


async def app(scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]) -> None:
    """/early answers 429 without reading the body; any other path reads it all, then answers 200."""
    if scope["type"] != "http":
        return
    if scope["path"] != "/early":
        while (await receive()).get("more_body"):
            pass
    status = 429 if scope["path"] == "/early" else 200
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def connect(
    *,
    header_timeout: float = 5.0,
    sampler: LogSampler | None = None,
    clients: ClientConnections | None = None,
    peer: str = "203.0.113.9",
    application: Any = app,
) -> tuple[Any, Transport]:
    protocol_class = guarded_http_protocol(
        max_header_bytes=LIMIT,
        header_timeout=header_timeout,
        log_sampler=LogSampler() if sampler is None else sampler,
        clients=clients,
    )
    config = Config(application, http=protocol_class, log_config=None, lifespan="off")
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = Transport(peer)
    protocol.connection_made(transport)
    return protocol, transport


def request(path: str = "/", body: bytes = b"", pad: int = 0) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n"
    if pad:
        head += f"x-pad: {'a' * pad}\r\n"
    return head.encode() + b"\r\n" + body


def refusal(transport: Transport) -> dict:
    head, _, body = bytes(transport.written).partition(b"\r\n\r\n")
    answer = json.loads(body)
    assert set(answer) == {"error_code", "message", "details", "request_id"}
    assert b"\r\nconnection: close" in head
    assert f"x-request-id: {answer['request_id']}".encode() in head
    return answer


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


@pytest.mark.parametrize("piece", [1, 100, 1000])
def test_a_head_over_the_limit_sent_in_pieces_gets_431_and_the_connection_closes(piece: int) -> None:
    async def scenario() -> None:
        protocol, transport = connect()
        data = b"GET / HTTP/1.1\r\nhost: x\r\n" + b"".join(f"x-h{i}: {'a' * 90}\r\n".encode() for i in range(100))
        sent = 0
        while not transport.closed and sent < len(data):
            protocol.data_received(data[sent : sent + piece])
            sent += piece
        assert transport.status_lines() == [b"HTTP/1.1 431 Request Header Fields Too Large"]
        assert transport.closed
        assert sent <= LIMIT + piece  # refused as soon as the limit was passed, not when the head ended
        answer = refusal(transport)
        assert answer["error_code"] == "headers_too_large"
        assert "WEB_MAX_HEADER_BYTES=2048" in answer["message"]

    run(scenario)


def test_one_endless_header_line_is_cut_off_before_it_ends() -> None:
    async def scenario() -> None:
        protocol, transport = connect()
        protocol.data_received(b"GET / HTTP/1.1\r\nx-endless: ")
        for _ in range(10):
            protocol.data_received(b"a" * 512)
        assert transport.status_lines() == [b"HTTP/1.1 431 Request Header Fields Too Large"]

    run(scenario)


def test_a_head_over_the_limit_in_one_read_is_refused_when_it_completes() -> None:
    async def scenario() -> None:
        protocol, transport = connect()
        protocol.data_received(request(pad=LIMIT))
        await asyncio.sleep(0.01)
        assert transport.status_lines() == [b"HTTP/1.1 431 Request Header Fields Too Large"]
        assert transport.closed

    run(scenario)


def test_heads_under_the_limit_are_answered_even_when_reads_mix_pipelined_requests() -> None:
    async def scenario() -> None:
        protocol, transport = connect()
        first, second = request(body=b"x" * 1500, pad=1500), request(body=b"y" * 100, pad=1500)
        data = first + second
        # one read ends the first request and starts the second; together they pass the limit
        protocol.data_received(data[: len(first) + 600])
        protocol.data_received(data[len(first) + 600 : -50])
        await asyncio.sleep(0.01)  # the first is answered while the second's body is still coming
        protocol.data_received(data[-50:])
        await asyncio.sleep(0.01)
        assert transport.status_lines() == [b"HTTP/1.1 200 OK"] * 2
        assert not transport.closed

    run(scenario)


def test_an_incomplete_head_gets_408_when_the_deadline_passes() -> None:
    async def scenario() -> None:
        protocol, transport = connect(header_timeout=0.1)
        for byte in request()[:5]:
            protocol.data_received(bytes([byte]))
            await asyncio.sleep(0.01)
        assert not transport.closed
        await asyncio.sleep(0.1)
        assert transport.status_lines() == [b"HTTP/1.1 408 Request Timeout"]
        assert transport.closed
        assert refusal(transport)["error_code"] == "header_timeout"

    run(scenario)


def test_a_connection_that_sends_nothing_is_closed_at_the_deadline() -> None:
    async def scenario() -> None:
        _, transport = connect(header_timeout=0.05)
        await asyncio.sleep(0.1)
        assert transport.closed

    run(scenario)


def test_the_deadline_covers_the_head_only_and_starts_again_for_the_next_request() -> None:
    async def scenario() -> None:
        protocol, transport = connect(header_timeout=0.1)
        data = request(body=b"{}")
        protocol.data_received(data[:-1])  # the head is complete; the body is not
        await asyncio.sleep(0.2)
        assert not transport.closed  # the body's time is WEB_BODY_TIMEOUT_SECONDS, in the app
        protocol.data_received(data[-1:])
        await asyncio.sleep(0.2)  # kept alive; idle time is uvicorn's keep-alive timer (5 s)
        assert transport.status_lines() == [b"HTTP/1.1 200 OK"]
        protocol.data_received(b"POST / HT")
        await asyncio.sleep(0.15)
        assert transport.status_lines() == [b"HTTP/1.1 200 OK", b"HTTP/1.1 408 Request Timeout"]
        assert transport.closed

    run(scenario)


def test_an_answer_sent_before_the_body_arrived_says_it_closes_the_connection_and_does() -> None:
    """A client must not reuse a connection the server is about to close (RFC 9112, 9.6): one
    that did (httpx's pool) had its next request reset."""

    async def scenario() -> None:
        protocol, transport = connect()
        protocol.data_received(request("/early", body=b"x" * 100)[:-50])
        await asyncio.sleep(0.01)
        assert transport.status_lines() == [b"HTTP/1.1 429 Too Many Requests"]
        assert b"\r\nconnection: close\r\n" in bytes(transport.written)
        assert transport.closed

    run(scenario)


def test_an_answer_after_the_whole_body_keeps_the_connection() -> None:
    async def scenario() -> None:
        protocol, transport = connect()
        protocol.data_received(request("/early", body=b"x" * 100))
        await asyncio.sleep(0.01)
        assert transport.status_lines() == [b"HTTP/1.1 429 Too Many Requests"]
        assert b"connection: close" not in bytes(transport.written)
        assert not transport.closed

    run(scenario)


def test_refusals_are_logged_once_per_client_and_code_per_interval() -> None:
    async def scenario() -> None:
        sampler = LogSampler()
        with capture_logs() as logs:
            for _ in range(3):
                protocol, _ = connect(sampler=sampler)
                protocol.data_received(request(pad=LIMIT))
        assert [(line["event"], line["error_code"], line["client"]) for line in logs] == [
            ("request_refused", "headers_too_large", "203.0.113.9")
        ]
        assert logs[0]["suppressed"] == 0 and len(logs[0]["request_id"]) == 32

    run(scenario)


def test_one_address_cannot_hold_more_unfinished_requests_than_its_cap() -> None:
    """1,000 half-sent requests from one address: the 21st is refused, others still get in (issue 23 item 3)."""

    async def scenario() -> None:
        clients = ClientConnections(max_connections=1000, max_incomplete=20)
        held = [connect(clients=clients) for _ in range(1000)]
        for protocol, _ in held:
            protocol.data_received(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-le")
        refused = [t for _, t in held if t.status_lines() == [b"HTTP/1.1 429 Too Many Requests"]]
        assert len(refused) == 980 and all(t.closed for t in refused)
        answer = refusal(refused[0])
        assert answer["error_code"] == "too_many_connections" and "WEB_MAX_CLIENT_INCOMPLETE=20" in answer["message"]
        other, transport = connect(clients=clients, peer="198.51.100.1")
        other.data_received(request(body=b"{}"))
        await asyncio.sleep(0.01)
        assert transport.status_lines() == [b"HTTP/1.1 200 OK"]
        for protocol, _ in [*held, (other, transport)]:
            protocol.connection_lost(None)
        assert not clients.incomplete and not clients.connections

    run(scenario)


def test_one_address_cannot_hold_more_connections_than_its_cap() -> None:
    async def scenario() -> None:
        clients = ClientConnections(max_connections=3, max_incomplete=3)
        held = [connect(clients=clients) for _ in range(4)]
        assert [t.closed for _, t in held] == [False, False, False, True]
        assert refusal(held[3][1])["error_code"] == "too_many_connections"
        held[0][0].connection_lost(None)
        assert not connect(clients=clients)[1].closed  # a slot came free

    run(scenario)


def test_trusted_proxies_are_not_capped_and_forwarding_from_others_is_reported_once() -> None:
    async def scenario() -> None:
        clients = ClientConnections(max_connections=1, max_incomplete=1, exempt=["10.0.0.0/8"])
        assert not any(connect(clients=clients, peer="10.1.2.3")[1].closed for _ in range(5))
        others = ClientConnections(max_connections=9, max_incomplete=9, exempt=["10.0.0.0/8"])
        forwarded = b"GET / HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 1.2.3.4\r\n\r\n"
        with capture_logs() as logs:
            connect(clients=others, peer="10.1.2.3")[0].data_received(forwarded)  # a trusted proxy: nothing said
            for peer in ["192.0.2.5", "192.0.2.5", "192.0.2.6"]:
                protocol, _ = connect(clients=others, peer=peer)
                protocol.data_received(forwarded)
                protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\nforwarded: for=1.2.3.4\r\n\r\n")
        [line] = [x for x in logs if x["event"] == "forwarded_headers_ignored"]
        assert line["client"] == "192.0.2.5" and "list it in TRUSTED_PROXIES" in line["reason"]

    run(scenario)


def test_a_client_hanging_up_on_pipelined_requests_is_one_disconnect_line_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """uvicorn marks only the newest request of a connection as disconnected: the answer to an
    earlier pipelined one went to the closed socket, and uvicorn logged two ERROR tracebacks."""

    async def scenario() -> None:
        release = asyncio.Event()

        async def slow(scope: dict, receive: Any, send: Any) -> None:
            while (await receive()).get("more_body"):
                pass
            await release.wait()
            await send({"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})

        protocol, transport = connect(application=slow)
        with capture_logs() as logs:
            protocol.data_received(request(body=b"{}") * 3)
            await asyncio.sleep(0)
            transport.close()
            protocol.connection_lost(None)
            release.set()
            for _ in range(5):
                await asyncio.sleep(0)
        assert transport.written == b""
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert [(x["event"], x["unanswered"]) for x in logs] == [("client_disconnected", 3)]

    caplog.set_level(logging.INFO)
    run(scenario)
