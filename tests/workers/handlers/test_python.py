"""Python handler: imports `module:function` at build time and maps its failures."""

from __future__ import annotations

from typing import Any

import pytest

from config.errors import ConfigurationError, DeliveryRejected, DeliveryRetryable
from tests.workers.handlers import callables
from tests.workers.handlers.conftest import make
from workers.handlers.python import PythonHandler


def test_calls_the_function_with_the_event_and_a_bound_logger(event: dict[str, Any], http: Any) -> None:
    callables.calls.clear()
    make("python").send(event, delivery_id="d-9", http=http())
    ((got, log),) = callables.calls
    assert got is event
    assert log._context == {"delivery_id": "d-9", "handler": "h"}


def test_an_exception_becomes_retryable(event: dict[str, Any], http: Any) -> None:
    handler = make("python", callable="tests.workers.handlers.callables:explode")
    with pytest.raises(DeliveryRetryable, match="RuntimeError: database is down") as info:
        handler.send(event, delivery_id="d", http=http())
    assert info.value.handler == "h"


def test_delivery_rejected_passes_through(event: dict[str, Any], http: Any) -> None:
    handler = make("python", callable="tests.workers.handlers.callables:reject")
    with pytest.raises(DeliveryRejected) as info:
        handler.send(event, delivery_id="d", http=http())
    assert info.value.handler == "h"


@pytest.mark.parametrize(
    ("spec", "reason"),
    [("no_colon", "expected 'module:function'"), ("not_a_module_xyz:f", "cannot import"),
     ("tests.workers.handlers.callables:missing", "has no 'missing'"),
     ("tests.workers.handlers.callables:not_callable", "is not callable")],
)  # fmt: skip
def test_a_bad_callable_is_a_configuration_error(spec: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=f"handler 'h', key 'callable': .*{reason}"):
        make("python", callable=spec)


@pytest.mark.parametrize("spec", ["config:notify", "workers.notify:send", "service.hooks.slack:post"])
def test_a_callable_in_a_module_named_like_our_packages_is_refused(spec: str) -> None:
    with pytest.raises(ConfigurationError, match=r"one of circleci-events' own .* rename your module or package"):
        PythonHandler("h", {"callable": spec})


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("tests.workers.handlers.callables:one_argument", "one_argument(event: 'dict[str, Any]') -> 'None'"),
        ("json:dumps", "json:dumps(obj, *, skipkeys=False"),  # the example file's old handler, failing every event
    ],
)
def test_a_callable_that_cannot_take_event_and_log_is_refused_at_load(spec: str, shown: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PythonHandler("custom", {"callable": spec})
    assert "cannot be called as function(event, log)" in caught.value.message
    assert shown.split("(")[0] in caught.value.message


@pytest.mark.parametrize("spec", ["tests.workers.handlers.callables:flexible", "builtins:print"])
def test_callables_that_take_two_arguments_load(spec: str) -> None:
    assert PythonHandler("custom", {"callable": spec}).spec == spec
