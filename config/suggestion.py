"""`; did you mean 'x'?`: how the routes file's checks, the settings and the command line name the
choice closest to a mistyped value."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` naming the choice closest to `value`, or nothing when none is close."""
    close = difflib.get_close_matches(value, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
