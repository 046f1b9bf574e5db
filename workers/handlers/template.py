"""Handler templates: Jinja2 in a sandbox, checked against the sample event at load time."""

from __future__ import annotations

from collections.abc import Callable

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from config.errors import ConfigurationError
from workers.message import Message, sample_event


def compile_template(name: str, source: str | None, escape: Callable[[str], str]) -> jinja2.Template | None:
    """Compile a handler's template in a sandbox and render it once against the sample event."""
    if source is None:
        return None
    env = ImmutableSandboxedEnvironment(autoescape=False, undefined=jinja2.ChainableUndefined)
    env.filters["esc"] = lambda value: escape("" if value is None else str(value))
    try:
        template = env.from_string(source)
        event = sample_event()
        template.render(event=event, message=Message.from_event(event))
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigurationError(
            f"handler {name!r}, key 'template': does not compile (template line {exc.lineno}: {exc.message})"
        ) from None
    except Exception as exc:
        raise ConfigurationError(
            f"handler {name!r}, key 'template': fails on the sample event ({type(exc).__name__}: {exc})"
        ) from None
    return template
