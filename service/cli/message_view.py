"""A rendered message as a person would read it in a terminal: what `demo` and `preview` print.

Each handler type shows the body its `render()` returns through its own `view()`
(workers/handlers): Slack's Block Kit as its `text` and a line per block, the other platforms as
their title, text and fields, a webhook or Python handler as what it is given. A type the
registry does not know is shown as JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workers.handlers import HANDLER_TYPES
from workers.handlers.view import json_lines


def message_lines(kind: str, body: Any) -> Iterable[str]:
    """What a handler of type `kind` would post, as lines to print."""
    cls = HANDLER_TYPES.get(kind)
    return cls.view(body) if cls is not None else json_lines(body)
