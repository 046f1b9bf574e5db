"""A local CircleCI API v2: the operations workers/circleci/client.py calls, with pagination,
latency, fault injection and call counts. Start it with one command:

    circleci-events simulator --port 8765 [--latency-ms 20] [--page-size N] [--token T] [--empty]

The API answers at / and at /api/v2 (so CIRCLECI_API_URL=http://127.0.0.1:8765/api/v2 works).
Control endpoints (no token needed):

    POST   /_sim/faults     {"path": "/workflow/*/job", "status": 429, "retry_after": 2, "times": 1}
                            or {"kind": "rate_limited_text"|"rate_limited"|"server_error"|
                                "unauthorized"|"forbidden"|"slow", "path": ..., "delay": 1.5, "after": 0}
    GET    /_sim/faults     DELETE /_sim/faults
    GET    /_sim/calls      {"calls": {"GET /workflow/{id}/job": 3, ...}, "total": n}
    GET    /_sim/call-times {"at": {"GET /workflow/{id}/job": 81234.5678, ...}}: when each operation
                            was last called, as time.monotonic() (CLOCK_MONOTONIC: one clock for
                            every process of the machine, so a benchmark compares it with its own)
    POST   /_sim/reset      forget calls and faults
    POST   /_sim/workflows  {"payload": <workflow-completed webhook>, "jobs": [<job spec>...],
                             "vcs": {<what GET /pipeline/{id} adds, e.g. a tag build's "tag">}}
    POST   /_sim/flaky-tests {"project": <slug>, "tests": [{"test_name", "classname", "job_name",
                             "times_flaked", …}], "casing": "snake" (the live API's) or "kebab"}
    GET    /_sim/workflows/{id}   the workflow and its jobs, as the simulator holds them

API v1.1's job (its steps and their output URLs) and the "storage" those URLs point to, which
refuses a CircleCI token: service/simulators/circleci_v1.py.

Workflow actions change state: approve turns an `on_hold` approval job into `success` (its
workflow runs on), cancel cancels a running or on-hold workflow and its waiting jobs, rerun starts
a new workflow in the same pipeline; a running workflow completes (`success`) `completion_seconds`
later (default 1 s).
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from service.simulators import circleci_api as simulator_api
from service.simulators import circleci_v1, circleci_webhooks
from service.simulators.circleci_data import Dataset, now

__all__ = ["OPERATIONS", "Fault", "Simulator", "create_simulator"]

# every API operation the simulator serves: (method, spec path template, handler)
OPERATIONS = [*circleci_webhooks.OPERATIONS, *simulator_api.OPERATIONS]

_PRESETS: dict[str, dict[str, Any]] = {
    "rate_limited": {"status": 429, "retry_after": 1},
    "rate_limited_text": {"status": 429, "retry_after": 1, "body": "Rate limited."},
    "server_error": {"status": 500},
    "unauthorized": {"status": 401, "body": {"message": "Invalid token provided."}},
    "forbidden": {"status": 403, "body": {"message": "Permission denied."}},
    "slow": {"status": None, "delay": 1.0},
}
_DEFAULT_BODIES: dict[int, Any] = {
    429: {"message": "Rate limit exceeded."},
    500: {"message": "Internal server error."},
    401: {"message": "You must log in first"},
}


@dataclass
class Fault:
    """Answers `times` matching calls (None: all) after letting `after` through.

    `path` is an fnmatch pattern on the request path (without /api/v2) or on the spec template;
    `status` None with a `delay` makes a slow but otherwise normal answer. A str `body` is sent
    as text/plain, as CircleCI's 429 "Rate limited." is.
    """

    path: str = "*"
    method: str = "*"
    status: int | None = 429
    retry_after: int | str | None = None
    body: Any = None
    delay: float = 0.0
    times: int | None = 1
    after: int = 0
    seen: int = 0
    fired: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        data = dict(data)
        preset = _PRESETS[data.pop("kind")] if "kind" in data else {}
        return cls(**(preset | data))

    def take(self, method: str, path: str, template: str) -> bool:
        if self.method not in ("*", method):
            return False
        if not (fnmatch.fnmatchcase(path, self.path) or fnmatch.fnmatchcase(template, self.path)):
            return False
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True

    def response(self) -> Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        body = self.body if self.body is not None else _DEFAULT_BODIES.get(self.status or 0, {})
        if isinstance(body, str):
            return PlainTextResponse(body, status_code=self.status or 200, headers=headers)
        return JSONResponse(body, status_code=self.status or 200, headers=headers)


@dataclass
class Simulator:
    dataset: Dataset
    page_size: int = 20
    latency: float = 0.0
    token: str | None = "sim-token"
    faults: list[Fault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens_at_storage: int = 0  # requests to an output URL that carried a CircleCI token (refused)

    def note_token_at_storage(self) -> None:
        with self.lock:
            self.tokens_at_storage += 1

    # when each operation was last called (time.monotonic()): what a latency measurement reads
    called_at: dict[str, float] = field(default_factory=dict)
    completion_seconds: float = 1.0

    def complete_later(self, workflow_id: str) -> None:
        """The workflow, and its unfinished jobs, succeed `completion_seconds` from now."""

        def complete() -> None:
            with self.dataset.lock:
                workflow = self.dataset.workflows.get(workflow_id)
                if workflow is None or workflow["status"] != "running":
                    return
                workflow |= {"status": "success", "stopped_at": now()}
                for job in self.dataset.jobs.get(workflow_id, []):
                    if job["status"] in ("queued", "running", "blocked"):
                        job |= {"status": "success", "stopped_at": now()}

        timer = threading.Timer(self.completion_seconds, complete)
        timer.daemon = True
        timer.start()

    def add_fault(self, fault: Fault | None = None, **kwargs: Any) -> Fault:
        fault = fault or Fault.from_dict(kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.calls.clear()

    def call_count(self, method: str, template: str) -> int:
        with self.lock:
            return self.calls[f"{method} {template}"]

    def _take_fault(self, method: str, path: str, template: str) -> Fault | None:
        with self.lock:
            self.calls[f"{method} {template}"] += 1
            self.called_at[f"{method} {template}"] = time.monotonic()
            return next((f for f in self.faults if f.take(method, path, template)), None)

    async def delay_or_fault(self, method: str, path: str, template: str) -> Response | None:
        """Count the call, wait the latency (and a fault's delay); a fault's answer, if one fires."""
        fault = self._take_fault(method, path, template)
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return fault.response()
        return None

    def _denied(self, request: Request) -> Response | None:
        if self.token is None:
            return None
        given = request.headers.get("circle-token")
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:]
        if given is None:
            return JSONResponse({"message": "You must log in first"}, status_code=401)
        if given != self.token:
            return JSONResponse({"message": "Invalid token provided."}, status_code=401)
        return None

    def page(self, request: Request, items: list[Any], listing: str) -> Response:
        """One page of `items` with an opaque token (base64 of offset and listing)."""
        offset = 0
        if token := request.query_params.get("page-token"):
            try:
                listed, offset = json.loads(base64.urlsafe_b64decode(token.encode()))
                assert listed == listing and offset >= 0
            except Exception:
                return JSONResponse({"message": "Invalid page token."}, status_code=400)
        end = offset + self.page_size
        next_token = None
        if end < len(items):
            next_token = base64.urlsafe_b64encode(json.dumps([listing, end]).encode()).decode()
        return JSONResponse({"items": items[offset:end], "next_page_token": next_token})


Handler = Callable[[Simulator, Request, Any], Response]


def _starlette_path(template: str) -> str:
    converters = {"project-slug": "project_slug:path", "job-number": "job_number:int"}
    return re.sub(r"\{([^}]+)\}", lambda m: "{" + converters.get(m[1], m[1].replace("-", "_")) + "}", template)


def _endpoint(sim: Simulator, method: str, template: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if (
            faulted := await sim.delay_or_fault(method, request.url.path.removeprefix("/api/v2"), template)
        ) is not None:
            return faulted
        if (denied := sim._denied(request)) is not None:
            return denied
        body = None
        if method in ("POST", "PUT") and (raw := await request.body()):
            try:
                body = json.loads(raw)
            except ValueError:
                return JSONResponse({"message": "Unexpected request body provided."}, status_code=400)
        with sim.dataset.lock:
            return handler(sim, request, body)

    return endpoint


async def _control_faults(request: Request) -> Response:
    sim: Simulator = request.app.state.simulator
    if request.method == "POST":
        data = await request.json()
        added = [sim.add_fault(**f) for f in (data if isinstance(data, list) else [data])]
        return JSONResponse({"faults": [asdict(f) for f in added]}, status_code=201)
    if request.method == "DELETE":
        with sim.lock:
            sim.faults.clear()
    with sim.lock:
        return JSONResponse({"faults": [asdict(f) for f in sim.faults]})


async def _control_calls(request: Request) -> Response:
    sim: Simulator = request.app.state.simulator
    with sim.lock:
        calls = {k: v for k, v in sorted(sim.calls.items()) if v}
    return JSONResponse({"calls": calls, "total": sum(calls.values())})


async def _control_call_times(request: Request) -> Response:
    sim: Simulator = request.app.state.simulator
    with sim.lock:
        return JSONResponse({"at": dict(sorted(sim.called_at.items()))})


async def _control_workflow(request: Request) -> Response:
    sim: Simulator = request.app.state.simulator
    workflow_id = request.path_params["id"]
    with sim.dataset.lock:
        workflow = sim.dataset.workflows.get(workflow_id)
        if workflow is None:
            return JSONResponse({"message": "Workflow not found."}, status_code=404)
        return JSONResponse({"workflow": workflow, "jobs": sim.dataset.jobs.get(workflow_id, [])})


async def _control_reset(request: Request) -> Response:
    request.app.state.simulator.reset()
    return JSONResponse({"message": "reset"})


async def _control_flaky_tests(request: Request) -> Response:
    """{"project": slug, "tests": [{test_name, classname, job_name, times_flaked, …}], "casing": "snake"|"kebab"}"""
    data = await request.json()
    dataset = request.app.state.simulator.dataset
    added = [dataset.add_flaky_test(data["project"], **fields) for fields in data.get("tests") or []]
    dataset.flaky_casing = data.get("casing", dataset.flaky_casing)
    return JSONResponse({"flaky_tests": added}, status_code=201)


async def _control_workflows(request: Request) -> Response:
    data = await request.json()
    payload, jobs = (data["payload"], data.get("jobs")) if "payload" in data else (data, None)
    vcs = data.get("vcs") if "payload" in data else None
    made = request.app.state.simulator.dataset.add_workflow_from_webhook(payload, jobs=jobs, vcs=vcs)
    return JSONResponse(made, status_code=201)


def create_simulator(
    dataset: Dataset | None = None,
    *,
    page_size: int = 20,
    latency: float = 0.0,
    token: str | None = "sim-token",
    completion_seconds: float = 1.0,
) -> Starlette:
    """The simulator app; `app.state.simulator` is the Python control API (faults, calls)."""
    sim = Simulator(dataset if dataset is not None else Dataset.example(), page_size, latency, token)
    sim.completion_seconds = completion_seconds
    api: list[BaseRoute] = [
        Route(_starlette_path(template), _endpoint(sim, method, template, handler), methods=[method])
        for method, template, handler in OPERATIONS
    ]
    control: list[BaseRoute] = [
        Route("/_sim/faults", _control_faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sim/calls", _control_calls),
        Route("/_sim/call-times", _control_call_times),
        Route("/_sim/reset", _control_reset, methods=["POST"]),
        Route("/_sim/workflows", _control_workflows, methods=["POST"]),
        Route("/_sim/flaky-tests", _control_flaky_tests, methods=["POST"]),
        Route("/_sim/workflows/{id}", _control_workflow, methods=["GET"]),
        Route(
            "/_sim/artifacts/{key:path}",
            _endpoint(sim, "GET", "/_sim/artifacts/{key}", simulator_api.artifact_redirect),
        ),
        Route("/_sim/artifact-blobs/{key:path}", simulator_api.artifact_blob),
        Route(
            "/api/v1.1/project/{vcs}/{org}/{repo}/{job_number:int}",
            _endpoint(sim, "GET", circleci_v1.V1_JOB, circleci_v1.job_v1),
        ),
        Route("/_sim/storage/output/{key:path}", circleci_v1.storage_output),
    ]
    app = Starlette(routes=[*control, Mount("/api/v2", routes=api), *api])
    app.state.simulator = sim
    return app
