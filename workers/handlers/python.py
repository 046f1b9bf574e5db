"""Python handler: calls the configured `module:function(event, log)` with the enriched event.

The function is imported once, when the handler is built (at load time). Its module cannot be
named `config`, `service` or `workers` (nor live in a package of those names): in the worker
those are this project's own packages, so yours would never be the one imported. `log` is a structlog
logger bound to the delivery id and handler name. Any exception it raises becomes
DeliveryRetryable, unless it raises DeliveryRejected (or DeliveryRetryable) itself.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import structlog

from config.errors import ConfigurationError, DeliveryRejected, DeliveryRetryable
from workers.handlers import transcript
from workers.handlers.base import EXCERPT_CHARS, Handler, HandlerContext
from workers.handlers.view import labelled

OUR_PACKAGES = ("config", "service", "workers")


def load_callable(name: str, spec: str) -> Callable[..., Any]:
    """Import `module:function`; a ConfigurationError names the handler when it cannot."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"handler {name!r}, key 'callable': expected 'module:function', got {spec!r}")
    top = module_name.split(".", 1)[0]
    if top in OUR_PACKAGES:
        raise ConfigurationError(
            f"handler {name!r}, key 'callable': the module {module_name!r} is in a package named {top!r}, "
            f"one of circleci-events' own ({', '.join(OUR_PACKAGES)}), so yours can never be imported in the "
            "worker; rename your module or package"
        )
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except ImportError as exc:
        raise ConfigurationError(f"handler {name!r}, key 'callable': cannot import {module_name!r} ({exc})") from None
    except AttributeError:
        raise ConfigurationError(f"handler {name!r}, key 'callable': {module_name!r} has no {attr!r}") from None
    if not callable(target):
        raise ConfigurationError(f"handler {name!r}, key 'callable': {spec!r} is not callable")
    check_signature(name, spec, target)
    return target  # type: ignore[no-any-return]


def check_signature(name: str, spec: str, target: Callable[..., Any]) -> None:
    """It is called as `function(event, log)`: one that cannot take that fails every event, so it fails here."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # some builtins publish no signature: nothing to check
        return
    try:
        signature.bind(object(), object())
    except TypeError as exc:
        raise ConfigurationError(
            f"handler {name!r}, key 'callable': {spec}{signature} cannot be called as function(event, log) "
            f"({exc}); give it two positional parameters"
        ) from None


class PythonHandler(Handler):
    type = "python"
    required = ("callable",)

    def __init__(self, name: str, options: Mapping[str, str | None], context: HandlerContext | None = None) -> None:
        super().__init__(name, options, context)
        self.spec = str(options["callable"])
        self.function = load_callable(name, self.spec)

    def render(self, event: dict[str, Any]) -> dict[str, Any]:
        return {"callable": self.spec, "event": event}

    @staticmethod
    def view(body: Any) -> list[str]:
        return [labelled("python", f"calls {body.get('callable')}(event, log)")]

    def send(self, event: dict[str, Any], *, delivery_id: str, http: httpx.Client) -> None:
        """Call the function; its failures become delivery errors."""
        log = structlog.get_logger("workers.handlers.python").bind(delivery_id=delivery_id, handler=self.name)
        transcript.note(f"python {self.spec}(event, log)", "called with the enriched event", [])
        try:
            self.function(event, log)
        except (DeliveryRejected, DeliveryRetryable) as exc:
            exc.handler = exc.handler or self.name
            raise
        except Exception as exc:
            excerpt = f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS]
            raise DeliveryRetryable(
                f"handler {self.name!r}: {self.spec} raised {excerpt}", handler=self.name, body_excerpt=excerpt
            ) from exc
