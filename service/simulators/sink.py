"""A local chat sink: records every message posted to it and fails on demand, per path.

    circleci-events sink --port 8766 [--print]

Any POST, PUT or PATCH outside /_sink is a message: it is recorded on arrival (path, headers,
JSON or text body, and the status answered, 0 until then) and answered 200 "ok" the way Slack's
incoming webhooks answer, unless a fault matches; with `?wait=true` (Discord) it answers the
message created, `{"id": "<snowflake>", ...}`, so it can be edited (PATCH …/messages/<id>).
Control endpoints:

    POST   /_sink/faults    {"path": "/slack/*", "status": 429, "retry_after": 2, "times": 1}
                            or {"kind": "server_error"|"rate_limited"|"slow"|"down"|"bad_request",
                                "path": ..., "times": n, "delay": s, "duration": s}
    GET    /_sink/faults    DELETE /_sink/faults
    GET    /_sink/requests  ?path=/slack/ops   every request recorded, oldest first
    GET    /_sink/wait      ?path=/slack/ops&count=N&timeout=S   waits (at most S seconds, 10 by
                            default) until that path holds N requests; answers the count and the
                            Nth one's arrival `at`, without serialising what came before (a
                            benchmark's O(1) wait); `count` null when it timed out
    POST   /_sink/reset     forget requests and faults

`times` None fails every matching request; `duration` fails them for that many seconds
("down"); `status` None with a `delay` answers slowly but normally (a client timeout).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

__all__ = ["Received", "Sink", "SinkFault", "create_sink"]

_PRESETS: dict[str, dict[str, Any]] = {
    "server_error": {"status": 500},
    "rate_limited": {"status": 429, "retry_after": 1},
    "slow": {"status": None, "delay": 2.0},
    "down": {"status": 503, "times": None},
    "bad_request": {"status": 400, "body": "invalid_payload"},
}


@dataclass
class SinkFault:
    """Answers matching requests with `status` (after `delay`), `times` times or for `duration` s."""

    path: str = "*"
    status: int | None = 500
    retry_after: int | str | None = None
    body: str | None = None
    delay: float = 0.0
    times: int | None = 1
    duration: float | None = None
    fired: int = 0
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SinkFault:
        data = dict(data)
        preset = _PRESETS[data.pop("kind")] if "kind" in data else {}
        merged = preset | data
        if merged.get("duration") is not None and "times" not in data:
            merged["times"] = None
        return cls(**merged)

    def take(self, path: str) -> bool:
        if not fnmatch.fnmatchcase(path, self.path):
            return False
        if self.duration is not None and time.monotonic() - self.started > self.duration:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True

    def response(self) -> Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        body = self.body if self.body is not None else f"fault {self.status}"
        return PlainTextResponse(body, status_code=self.status or 200, headers=headers)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    at: float


@dataclass
class Sink:
    faults: list[SinkFault] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    on_receive: Callable[[Received], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    serial: int = 0
    # arrival times per path, for `wait`; and the waiters of the event loop the app runs in
    arrivals: dict[str, list[float]] = field(default_factory=dict)
    waiters: list[tuple[str, int, asyncio.Future[None]]] = field(default_factory=list)

    def add_fault(self, fault: SinkFault | None = None, **kwargs: Any) -> SinkFault:
        """Add a fault: a SinkFault, or its fields (`kind=` picks a preset)."""
        fault = fault or SinkFault.from_dict(kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.received.clear()
            self.arrivals.clear()

    def record(self, received: Received) -> None:
        """Keep `received` and wake whoever waits for its path to reach this count (in the app's loop)."""
        with self.lock:
            self.received.append(received)
            arrived = self.arrivals.setdefault(received.path, [])
            arrived.append(received.at)
            count = len(arrived)
            woken = [w for w in self.waiters if w[0] == received.path and w[1] <= count]
            self.waiters = [w for w in self.waiters if w not in woken]
        for _, _, future in woken:
            if not future.done():
                future.set_result(None)

    async def wait(self, path: str, count: int, timeout: float) -> tuple[int, float] | None:
        """(count, the `count`th arrival time) once `path` holds `count` requests; None after `timeout`."""
        with self.lock:
            arrived = self.arrivals.get(path, [])
            if len(arrived) >= count:
                return len(arrived), arrived[count - 1]
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiter = (path, count, future)
            self.waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            with self.lock:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)
            return None
        with self.lock:
            arrived = self.arrivals[path]
            return len(arrived), arrived[count - 1]

    def requests(self, path: str | None = None) -> list[Received]:
        """Every request recorded (to `path` when given), oldest first."""
        with self.lock:
            return [r for r in self.received if path is None or r.path == path]

    def delivered(self, path: str | None = None) -> list[Received]:
        """The requests answered 2xx: the messages a chat would show."""
        return [r for r in self.requests(path) if 200 <= r.status < 300]

    def _take_fault(self, path: str) -> SinkFault | None:
        with self.lock:
            return next((f for f in self.faults if f.take(path)), None)


async def _message(request: Request) -> Response:
    sink: Sink = request.app.state.sink
    raw = await request.body()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    # recorded on arrival (status 0 until answered), so a request the client gave up on still counts
    received = Received(request.method, request.url.path, dict(request.headers), body, 0, time.time())
    sink.record(received)
    fault = sink._take_fault(request.url.path)
    response: Response = PlainTextResponse("ok")
    if request.query_params.get("wait") == "true":  # Discord answers the message it created
        with sink.lock:
            sink.serial += 1
            response = JSONResponse({"id": str(10**17 + sink.serial), "channel_id": "1", "content": ""})
    if fault is not None:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is not None:
            response = fault.response()
    received.status = response.status_code
    if sink.on_receive is not None:
        sink.on_receive(received)
    return response


async def _faults(request: Request) -> Response:
    sink: Sink = request.app.state.sink
    if request.method == "POST":
        data = await request.json()
        added = [sink.add_fault(**f) for f in (data if isinstance(data, list) else [data])]
        return JSONResponse({"faults": [asdict(f) for f in added]}, status_code=201)
    if request.method == "DELETE":
        sink.clear_faults()
    with sink.lock:
        return JSONResponse({"faults": [asdict(f) for f in sink.faults]})


async def _requests(request: Request) -> Response:
    sink: Sink = request.app.state.sink
    listed = sink.requests(request.query_params.get("path"))
    return JSONResponse({"requests": [asdict(r) for r in listed], "total": len(listed)})


async def _wait(request: Request) -> Response:
    sink: Sink = request.app.state.sink
    query = request.query_params
    try:
        count, timeout = int(query.get("count", "1")), float(query.get("timeout", "10"))
    except ValueError:
        return JSONResponse({"error": "count is a whole number, timeout seconds"}, status_code=400)
    found = await sink.wait(query.get("path", ""), count, timeout)
    if found is None:
        return JSONResponse({"count": None, "at": None})
    return JSONResponse({"count": found[0], "at": found[1]})


async def _reset(request: Request) -> Response:
    request.app.state.sink.reset()
    return JSONResponse({"reset": True})


def create_sink(*, on_receive: Callable[[Received], None] | None = None) -> Starlette:
    """The sink app; its control object is `app.state.sink`."""
    app = Starlette(
        routes=[
            Route("/_sink/faults", _faults, methods=["GET", "POST", "DELETE"]),
            Route("/_sink/requests", _requests, methods=["GET"]),
            Route("/_sink/reset", _reset, methods=["POST"]),
            Route("/_sink/wait", _wait, methods=["GET"]),
            Route("/{path:path}", _message, methods=["POST", "PUT", "PATCH"]),
        ]
    )
    app.state.sink = Sink(on_receive=on_receive)
    return app


def describe(received: Received) -> str:
    """A message as a person reads it: Slack/Discord text, card titles, or compact JSON."""
    clock = time.strftime("%H:%M:%S", time.localtime(received.at))
    head = f"{clock} {received.method} {received.path} -> {received.status}"
    body = received.body
    lines: list[str] = []
    if isinstance(body, dict):
        for key in ("text", "content", "summary", "title"):
            if isinstance(body.get(key), str):
                lines.append(body[key])
        for block in body.get("blocks") or []:
            text = block.get("text") if isinstance(block, dict) else None
            if isinstance(text, dict) and isinstance(text.get("text"), str):
                lines.append(text["text"])
            for item in (block.get("fields") or []) if isinstance(block, dict) else []:
                if isinstance(item, dict) and isinstance(item.get("text"), str):
                    lines.append(item["text"])
        if not lines:
            lines.append(json.dumps(body, ensure_ascii=False)[:2000])
    elif body is not None:
        lines.append(str(body)[:2000])
    return "\n".join([head, *("    " + line for text in lines for line in text.splitlines())])
