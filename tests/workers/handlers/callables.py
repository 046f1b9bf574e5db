"""Importable functions the Python handler tests configure as `callable`."""

from __future__ import annotations

from typing import Any

from config.errors import DeliveryRejected

calls: list[tuple[dict[str, Any], Any]] = []


def record(event: dict[str, Any], log: Any) -> None:
    calls.append((event, log))


def explode(event: dict[str, Any], log: Any) -> None:
    raise RuntimeError("database is down")


def reject(event: dict[str, Any], log: Any) -> None:
    raise DeliveryRejected("this event is not wanted")


not_callable = 42


def one_argument(event: dict[str, Any]) -> None:
    """Forgets the logger: could never be called as function(event, log)."""


def flexible(*args: Any, **kwargs: Any) -> None:
    """Takes whatever it is given."""
