"""The end of a step's output as people read it: the last lines that matter, as plain text.

A v1.1 action's `output_url` answers a JSON array of `{message, time, type}` whose messages hold
ANSI escapes and `\\r\\n` (/work/shared/reference/next-features.md, section 1). Only the end of a
long log is read (workers/circleci/step_output.py), so the bytes may start mid-array:

    the whole array parses      its messages, joined
    only its end was read       each complete `"message": "…"` string in it, joined (the first,
                                cut, is dropped)
    neither                     LogTailUnavailable("not JSON")

Then: ANSI escape sequences (CSI, OSC, two-byte) removed; a carriage-return redraw (a progress
bar) keeps what was drawn last on its line; other control characters removed; trailing blank
lines dropped; the last `max_lines` lines, at most `max_chars` characters (cut at a line start).
Text that is mostly undecodable or control bytes is a binary log: LogTailUnavailable("binary").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from config.errors import LogTailUnavailable

__all__ = ["Tail", "messages", "plain", "read_tail", "tail"]

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MESSAGE = re.compile(r'"message"\s*:\s*("(?:[^"\\]|\\.)*")', re.DOTALL)
BINARY_SHARE = 0.3  # above this share of replacement or control characters, the log is binary


@dataclass(frozen=True)
class Tail:
    text: str
    truncated: bool  # lines or characters were left out before it


def read_tail(body: bytes, *, partial: bool, max_lines: int, max_chars: int, mask: Callable[[str], str] = str) -> Tail:
    """The tail of an output body (or of its end, `partial`), `mask` applied to the whole text
    before it is cut (a secret cut in half would no longer match); raises LogTailUnavailable."""
    text = messages(body, partial=partial)
    if text and _binary(text):
        raise LogTailUnavailable("the output is binary")
    last = tail(mask(plain(text)), max_lines=max_lines, max_chars=max_chars)
    return Tail(last.text, last.truncated or partial)


def messages(body: bytes, *, partial: bool) -> str:
    """The output's text: the array's messages joined. `partial`: the bytes are the end of a
    longer body, so the array's start is missing."""
    text = body.decode("utf-8", errors="replace")
    if not partial:
        try:
            data = json.loads(text)
        except ValueError:
            raise LogTailUnavailable("the output is not JSON") from None
        if not isinstance(data, list):
            raise LogTailUnavailable(f"the output is JSON but not an array ({type(data).__name__})")
        return "".join(str(item.get("message") or "") for item in data if isinstance(item, dict))
    found = [json.loads(m.group(1)) for m in _MESSAGE.finditer(text)]
    if not found and text.strip():
        raise LogTailUnavailable("the output's end holds no JSON messages")
    return "".join(found)


def plain(text: str) -> str:
    """ANSI escapes and control characters removed; each line as its last carriage-return redraw left it."""
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    lines = [line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r") for line in text.split("\n")]
    return "\n".join(_CONTROL.sub("", line).rstrip() for line in lines)


def tail(output: str, *, max_lines: int, max_chars: int) -> Tail:
    """The last lines of `output` (already plain), at most `max_lines` lines and `max_chars` characters."""
    lines = output.rstrip("\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    kept = lines[-max_lines:] if max_lines > 0 else []
    cut = len(kept) < len(lines)
    text = "\n".join(kept)
    if len(text) > max_chars:
        cut = True
        text = text[-max_chars:]
        newline = text.find("\n")
        if 0 <= newline < len(text) - 1:  # start at a line start unless one line is all there is
            text = text[newline + 1 :]
    return Tail(text, cut)


def _binary(text: str) -> bool:
    sample = text[-4096:]
    odd = sum(1 for c in sample if c == "\ufffd" or (c < " " and c not in "\n\t"))
    return odd > BINARY_SHARE * len(sample)
