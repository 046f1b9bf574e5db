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
