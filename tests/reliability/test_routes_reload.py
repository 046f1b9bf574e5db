"""Routes change without a restart (issue 14, item 7), on real processes.

SIGHUP to a `circleci-events worker` reads the routes file again; `circleci-events run` does it
by itself when the file changes, and passes on a SIGHUP it gets. Here the handler `audit` is
moved to another sink path, the next event must arrive there; a file that does not load must be
refused with one error line while the routes before keep delivering.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.conftest import free_port
from tests.e2e.processes import Service, cli
from tests.reliability.conftest import HOOK_SECRET, ROUTES, Scenario
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

OLD, NEW = "/hooks/audit", "/hooks/moved"
MOVED = ROUTES.replace(OLD, NEW)
BROKEN = MOVED.replace("type: webhook", "type: webhok", 1)


def lines(service: Service, event: str) -> list[dict[str, Any]]:
    return [line for line in service.log_lines() if line.get("event") == event]


def deliver(system: Scenario, path: str) -> str:
    """Post one successful workflow's webhook; wait until the sink has it at `path`; its id."""
    (payload,) = system.events(1, failed_every=10**6)
    assert system.post(payload).status_code == 202
    wait_until(lambda: payload["id"] in {r.body["event_id"] for r in system.sink.delivered(path)},
               f"event delivered to {path}\n{system.log_text()}")  # fmt: skip
    return str(payload["id"])


def started_worker(system: Scenario) -> Service:
    system.start_web()
    (worker,) = system.start_workers(1)
    worker.wait_for_log(lambda line: line.get("event") == "worker_started")
    return worker


def hang_up(service: Service) -> None:
    assert service.process is not None
    service.process.send_signal(signal.SIGHUP)


def test_sighup_makes_a_worker_deliver_where_the_rewritten_routes_file_says(scenario) -> None:
    system = scenario()
    worker = started_worker(system)
    first = deliver(system, OLD)

    system.routes.write_text(MOVED)
    hang_up(worker)
    reloaded = worker.wait_for_log(lambda line: line.get("event") == "routes_reloaded")
    assert reloaded["handlers"] == ["audit", "failures"] and reloaded["subscriptions"] == 2
    assert system.sink_url not in str(reloaded) and HOOK_SECRET not in worker.output()

    second = deliver(system, NEW)
    assert {r.body["event_id"] for r in system.sink.delivered(OLD)} == {first}  # nothing more at the old path
    assert second != first and worker.process is not None and worker.process.poll() is None


def test_a_routes_file_that_does_not_load_is_refused_on_sighup_and_the_old_routes_still_deliver(scenario) -> None:
    system = scenario()
    worker = started_worker(system)

    system.routes.write_text(BROKEN)
    hang_up(worker)
    refused = worker.wait_for_log(lambda line: line.get("event") == "routes_reload_failed")
    assert refused["level"] == "error"
    assert "handler 'audit', key 'type': unknown type 'webhok'" in refused["error"], refused
    assert str(system.routes) in refused["error"] and "line 3" in refused["error"]

    deliver(system, OLD)
    assert not system.sink.delivered(NEW)
    assert len(lines(worker, "routes_reload_failed")) == 1 and not lines(worker, "routes_reloaded")
    assert worker.process is not None and worker.process.poll() is None


def test_a_routes_file_cut_short_before_its_subscriptions_is_refused_on_sighup(scenario) -> None:
    system = scenario()
    worker = started_worker(system)

    system.routes.write_text(MOVED[: MOVED.index("subscriptions:")])  # an interrupted write: handlers only
    hang_up(worker)
    refused = worker.wait_for_log(lambda line: line.get("event") == "routes_reload_failed")
    assert "missing key 'subscriptions'" in refused["error"] and "routes loaded before" in refused["kept"]

    deliver(system, OLD)  # still routed by the file before: the cut one would have routed nothing
    assert not lines(worker, "routes_reloaded")


def start_run(system: Scenario, workers: int) -> Service:
    """`circleci-events run` with `workers` worker processes, its output in one log."""
    port = free_port()
    run = Service(cli("run"), env=system.env(PORT=str(port), WORKERS=str(workers)), log_path=system.tmp / "run.log")
    system.processes.append(run.start())
    system.base = f"http://127.0.0.1:{port}"
    run.wait_http(system.base + "/healthz")
    wait_until(lambda: len(lines(run, "worker_started")) == workers, f"{workers} workers started\n{run.output()}")
    return run


def test_run_reloads_its_workers_when_the_routes_file_changes(scenario) -> None:
    system = scenario()
    run = start_run(system, workers=2)
    deliver(system, OLD)

    system.routes.write_text(MOVED)  # no signal: `run` sees the file change
    wait_until(lambda: len(lines(run, "routes_reloaded")) == 2, f"both workers reloaded\n{run.output()}")
    assert len(lines(run, "routes_file_changed")) == 1
    deliver(system, NEW)

    system.routes.write_text(MOVED)  # written again, the same content: no change
    system.routes.write_text(BROKEN)
    wait_until(lambda: len(lines(run, "routes_reload_failed")) == 2, f"both workers refused\n{run.output()}")
    deliver(system, NEW)  # the routes loaded before still deliver


def test_run_passes_a_sighup_on_to_its_workers(scenario) -> None:
    system = scenario()
    run = start_run(system, workers=2)
    system.routes.write_text(MOVED)
    hang_up(run)  # at once, before `run` would see the change by itself: told twice, read twice
    wait_until(lambda: len(lines(run, "routes_reloaded")) >= 2, f"both workers reloaded\n{run.output()}")
    deliver(system, NEW)
    assert run.process is not None and run.process.poll() is None
