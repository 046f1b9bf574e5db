"""uvicorn's httptools protocol, with limits on what a client sends before any app code runs.

uvicorn (0.54) takes request headers of any size and waits for them without end: 16 MB of
headers got an answer, and a client sending a byte every few seconds kept its connection
(issue 11, finding 9). Per connection, this protocol adds:

- WEB_MAX_HEADER_BYTES. The head (request line and headers) is counted as it arrives, before
  httptools has a whole header line, so one endless header is stopped too; past the limit the
  client gets 431 `headers_too_large` and the connection is closed. Where a read mixes the end
  of one pipelined request with the head of the next, that read is not counted, so a head can
  grow one read (at most 256 KiB) past the limit before it is refused; the app never sees a
  head over the limit, which is checked again, exactly, when it is complete.
- WEB_HEADER_TIMEOUT_SECONDS. The head must be complete this long after the connection opens,
  or after the first byte that follows the previous request on a kept-alive connection
  (uvicorn's keep-alive timer covers the idle time before it): else 408 `header_timeout`,
  and the connection is closed.
- A response that completes before its request's body has arrived (any early refusal, the
  body timeout of service/body.py) closes the connection: uvicorn's keep-alive timer restarts
  on every byte, so a client could otherwise keep sending that body a byte at a time. Such a
  response says `connection: close` in its head, so no client reuses the connection.

Per client address (the peer's, across this process's connections; issue 23 item 3):

- WEB_MAX_CLIENT_CONNECTIONS open connections, and WEB_MAX_CLIENT_INCOMPLETE requests begun and
  not yet complete (head or body still arriving). Past either, that connection gets 429
  `too_many_connections` and is closed: one address holding 1,000 half-sent requests used to
  take every slot of WEB_MAX_CONNECTIONS and make every other client's delivery 503. Peers in
  TRUSTED_PROXIES are not capped (every client behind a proxy shares its address; the proxy
  buffers and limits its own clients).
- A request carrying forwarding headers (`forwarded`, `x-forwarded-for`) from a peer not in
  TRUSTED_PROXIES is served as that peer's, and the first one a process sees logs one
  `forwarded_headers_ignored` warning naming TRUSTED_PROXIES, so an operator behind a proxy
  learns that every client shares one rate-limit bucket (a stranger's forged header costs no
  more than that one line).

A client that hangs up while its requests are being answered is a disconnect: every request of
the connection still running is told so (uvicorn tells only the newest, so the answer to an
earlier pipelined one was written to the closed socket and logged as two ERROR tracebacks), and
one `client_disconnected` line (sampled) says how many went unanswered.

Refusals use the error format of service/errors.py and carry a request id; their log lines go
through the process's LogSampler. `limit_concurrency` (WEB_MAX_CONNECTIONS) is uvicorn's own.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

import orjson
import structlog
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from config.errors import HeadersTooLarge, HeaderTimeout, TooManyConnections, WebhookError
from config.log_sampler import LogSampler
from service.errors import error_body
from service.trusted_proxies import TrustedProxies

log = structlog.get_logger("service.http_protocol")

# Where the connection is in its current request: waiting for its first byte, in the head, or
# past the head (the body, or waiting for the answer).
IDLE, HEAD, BODY = "idle", "head", "body"
FORWARDING_HEADERS = (b"forwarded", b"x-forwarded-for")


class ClientConnections:
    """Open connections and unfinished requests per client address, shared by one process's
    connections; `exempt` addresses (the trusted proxies) are not counted."""

    def __init__(self, *, max_connections: int, max_incomplete: int, exempt: Sequence[str] = ()) -> None:
        self.max_connections, self.max_incomplete = max_connections, max_incomplete
        self.exempt = TrustedProxies(exempt)
        self.connections: Counter[str] = Counter()
        self.incomplete: Counter[str] = Counter()
        self.forwarding_reported = False  # forwarded_headers_ignored is said once per process

    def trusted(self, address: str) -> bool:
        return address in self.exempt

    @staticmethod
    def add(counter: Counter[str], address: str, limit: int) -> bool:
        """Count one more for `address`; False (and nothing counted) past `limit`."""
        if counter[address] >= limit:
            return False
        counter[address] += 1
        return True

    @staticmethod
    def remove(counter: Counter[str], address: str) -> None:
        counter[address] -= 1
        if counter[address] <= 0:
            del counter[address]


class GuardedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a head size limit and a head deadline; see the module docstring."""

    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    log_sampler: LogSampler | None = None
    clients: ClientConnections | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state = IDLE
        self._messages = 0  # requests begun on this connection
        self._head_bytes = 0
        self._head_deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self._peer = ""  # the address counted in `clients`; "" when not counted
        self._counted_incomplete = False
        self._running: list[Any] = []  # the cycles whose app was started (pipelined ones too)

    # -- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        clients, peer = self.clients, self.client[0] if self.client else ""
        if clients is not None and peer and not clients.trusted(peer):
            if not clients.add(clients.connections, peer, clients.max_connections):
                self._refuse(self._crowded("WEB_MAX_CLIENT_CONNECTIONS", clients.max_connections, "open connections"))
                return
            self._peer = peer
        self._start_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_deadline()
        self._finish_incomplete()
        self._tell_running_cycles()
        if self._peer and self.clients is not None:
            self.clients.remove(self.clients.connections, self._peer)
            self._peer = ""
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        state, messages = self._state, self._messages
        if state == IDLE:
            self._start_head_deadline()
        super().data_received(data)
        # Count the whole read only when all of it belongs to the head still in progress.
        expected = messages + (1 if state == IDLE else 0)
        if state != BODY and self._state == HEAD and self._messages == expected and not self._refused:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(self._too_large())

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._state = HEAD
        self._messages += 1
        self._head_bytes = 0
        clients = self.clients
        if self._peer and clients is not None and not self._refused:
            if not clients.add(clients.incomplete, self._peer, clients.max_incomplete):
                self._refuse(self._crowded("WEB_MAX_CLIENT_INCOMPLETE", clients.max_incomplete, "unfinished requests"))
                return
            self._counted_incomplete = True

    def on_headers_complete(self) -> None:
        self._state = BODY
        self._stop_head_deadline()
        if self._refused:
            return
        self._note_forwarding()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_header_bytes:
            self._refuse(self._too_large())
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._state = IDLE
        self._finish_incomplete()
        if not self._refused:
            super().on_message_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        """Every request's app (pipelined ones too) runs through here: an answer that starts before
        the request's body has all arrived says `connection: close` (RFC 9112, 9.6), since
        `on_response_complete` closes that connection; a client that reused it would have its
        next request reset."""

        async def announcing_close(scope: Any, receive: Any, send: Any) -> None:
            if not cycle.more_body:  # the whole request arrived with its head (a webhook, mostly)
                await app(scope, receive, send)
                return

            async def send_announcing(message: Any) -> None:
                if message["type"] == "http.response.start" and cycle.more_body:
                    cycle.keep_alive = False  # uvicorn writes `connection: close` and closes after the body
                await send(message)

            await app(scope, receive, send_announcing)

        self._running = [c for c in self._running if not c.response_complete] + [cycle]
        super()._start_asgi_task(cycle, announcing_close)

    def on_response_complete(self) -> None:
        # With no pipelined request waiting, self.cycle is the one that just answered.
        if not self.pipeline and self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            self.transport.close()  # the rest of its body would be read for nothing, at the client's pace
        super().on_response_complete()

    def _tell_running_cycles(self) -> None:
        """The client hung up: every unanswered request of the connection learns it, so none writes
        its answer to the closed socket; one sampled line says so."""
        unanswered = [c for c in self._running if not c.response_complete]
        unanswered += [c for c, _ in self.pipeline]  # queued behind them, never started
        self._running = []
        for cycle in unanswered:
            cycle.disconnected = True
            cycle.message_event.set()
        if not unanswered:
            return
        client = self.client[0] if self.client else "unknown"
        suppressed = self.log_sampler.admit(f"{client} disconnected") if self.log_sampler is not None else 0
        if suppressed is not None:
            log.info("client_disconnected", client=client, unanswered=len(unanswered), suppressed=suppressed)

    # -- per address ---------------------------------------------------------------------

    def _finish_incomplete(self) -> None:
        if self._counted_incomplete and self.clients is not None:
            self.clients.remove(self.clients.incomplete, self._peer)
            self._counted_incomplete = False

    def _crowded(self, setting: str, limit: int, what: str) -> TooManyConnections:
        return TooManyConnections(
            f"too many {what} from this address: {setting}={limit}; finish or close some and retry",
            details={"limit": limit},
        )

    def _note_forwarding(self) -> None:
        """Forwarding headers from a peer that TRUSTED_PROXIES does not list are ignored: say so."""
        clients, peer = self.clients, self.client[0] if self.client else ""
        if clients is None or not peer or clients.trusted(peer):
            return
        if clients.forwarding_reported or not any(name.lower() in FORWARDING_HEADERS for name, _ in self.headers):
            return
        clients.forwarding_reported = True
        log.warning(
            "forwarded_headers_ignored",
            client=peer,
            reason="forwarding headers from a peer not in TRUSTED_PROXIES: every client behind it shares this "
            "address's rate limit and connection caps; if it is your proxy, list it in TRUSTED_PROXIES (said once)",
        )

    # -- refusals ------------------------------------------------------------------------

    def _start_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._state != BODY and not self._refused and not self.transport.is_closing():
            self._refuse(
                HeaderTimeout(
                    f"request line and headers not complete within WEB_HEADER_TIMEOUT_SECONDS={self.header_timeout:g}",
                    details={"timeout_seconds": self.header_timeout},
                )
            )

    def _too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(
            f"request line and headers exceed WEB_MAX_HEADER_BYTES={self.max_header_bytes}",
            details={"limit": self.max_header_bytes},
        )

    def _refuse(self, exc: WebhookError) -> None:
        """Answer `exc` and close; a response still being written for an earlier request goes first."""
        self._refused = True
        self._stop_head_deadline()
        request_id = os.urandom(16).hex()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # uvicorn closes the connection once that response is out
        else:
            self.transport.write(self._answer(exc, request_id))
            self.transport.close()
        client = self.client[0] if self.client else "unknown"
        suppressed = self.log_sampler.admit(f"{client} {exc.code}") if self.log_sampler is not None else 0
        if suppressed is not None:
            log.warning(
                "request_refused",
                error_code=exc.code,
                reason=exc.message,
                client=client,
                request_id=request_id,
                suppressed=suppressed,
            )

    def _answer(self, exc: WebhookError, request_id: str) -> bytes:
        body = orjson.dumps(error_body(exc.code, exc.message, exc.details, request_id))
        head = [STATUS_LINE[exc.http_status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
            b"x-request-id: " + request_id.encode() + b"\r\n\r\n",
        ]
        return b"".join(head) + body


def guarded_http_protocol(
    *,
    max_header_bytes: int,
    header_timeout: float,
    log_sampler: LogSampler,
    clients: ClientConnections | None = None,
) -> type[GuardedHttpProtocol]:
    """The protocol class with these limits, for `uvicorn.run(http=...)` (it builds one per connection)."""
    limits = {
        "max_header_bytes": max_header_bytes,
        "header_timeout": header_timeout,
        "log_sampler": log_sampler,
        "clients": clients,
    }
    return cast(type[GuardedHttpProtocol], type("GuardedHttpProtocol", (GuardedHttpProtocol,), limits))
