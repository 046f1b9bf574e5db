"""A rendered body as a person reads it in a terminal: the layout each handler's `view()` uses.

label        first line
             the next lines under the first
"""

from __future__ import annotations

import json
from typing import Any

INDENT = " " * 13  # under the value of a `label        value` line


def labelled(label: str, text: str) -> str:
    """`label        first line`, the next lines under the first."""
    return f"{label:<12} " + f"\n{INDENT}".join(text.splitlines() or [""])


def json_lines(body: Any) -> list[str]:
    """A body no view knows better, as indented JSON."""
    return json.dumps(body, indent=2, ensure_ascii=False).splitlines()
