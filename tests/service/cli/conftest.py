"""Running `circleci-events` as users do: a process of its own, through the real entry point."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from service.simulators.circleci import create_simulator
from service.simulators.circleci_data import Dataset
from tests import zygote
from tests.server import running

SIM_TOKEN = "sim-token"


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str, env: dict[str, str], input: str | None = None, timeout: float = 60) -> Result:
    """`python -m service.cli ARGS` in a process of its own (forked from a preloaded interpreter:
    tests/zygote.py), with this environment on top of the test's (minus the product's settings)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "REDIS_URL", "ROUTES_FILE"))}
    done = zygote.run(list(args), env={**base, "LOG_FORMAT": "json", **env}, input=input, timeout=timeout)
    return Result(done.returncode, done.stdout, done.stderr)


def assert_one_clear_line(result: Result, code: int) -> None:
    """One line that says what is wrong (click's usage errors: the usage, then one `Error:` line)."""
    assert result.code == code, (result.out, result.err)
    assert "Traceback" not in result.err + result.out
    lines = [line for line in result.err.splitlines() if line.strip()]
    if result.err.startswith("Usage:"):
        assert [line for line in lines if line.startswith("Error: ")], result.err
    else:
        assert len(lines) == 1 and lines[0].startswith("circleci-events: "), result.err


@pytest.fixture
def simulator() -> Iterator[tuple[str, object]]:
    app = create_simulator(Dataset.example(), page_size=2)
    with running(app) as base:
        yield base, app.state.simulator


@pytest.fixture
def api_env(simulator) -> dict[str, str]:
    base, _ = simulator
    return {"CIRCLE_TOKEN": SIM_TOKEN, "CIRCLECI_API_URL": base + "/api/v2"}
