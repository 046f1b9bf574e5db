"""The log tail: a step's output read as people read it (ANSI, redraws, caps, partial bodies)."""

from __future__ import annotations

import json

import pytest

from config.errors import LogTailUnavailable
from workers.log_tail import messages, plain, read_tail, tail

pytestmark = pytest.mark.unit


def body(*texts: str) -> bytes:
    return json.dumps([{"message": t, "time": "2026-12-07T00:00:00Z", "type": "out"} for t in texts]).encode()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mERROR\x1b[0m: boom", "ERROR: boom"),
        ("\x1b[1;32m✔\x1b[0m ok\r\n", "✔ ok\n"),
        ("Downloading 10%\rDownloading 55%\rDownloading 100%", "Downloading 100%"),
        ("\x1b]0;title\x07prompt", "prompt"),
        ("bell\x07 and nul\x00 gone", "bell and nul gone"),
        ("tabs\tstay", "tabs\tstay"),
        ("trailing spaces   \r\n", "trailing spaces\n"),
    ],
)
def test_ansi_escapes_and_carriage_return_redraws_are_removed(raw: str, shown: str) -> None:
    assert plain(raw) == shown


def test_the_last_lines_are_kept_and_the_cut_is_said() -> None:
    text = "\n".join(f"line {i}" for i in range(100)) + "\n\n\n"
    last = tail(text, max_lines=20, max_chars=2500)
    assert last.text.splitlines() == [f"line {i}" for i in range(80, 100)] and last.truncated


def test_the_character_cap_starts_at_a_line_start() -> None:
    text = "\n".join("x" * 30 + f" {i}" for i in range(10))
    last = tail(text, max_lines=20, max_chars=100)
    assert len(last.text) <= 100 and last.text.startswith("x") and last.text.endswith(" 9") and last.truncated


def test_a_short_output_is_whole() -> None:
    last = read_tail(body("one\r\n", "two\r\n"), partial=False, max_lines=20, max_chars=2500)
    assert (last.text, last.truncated) == ("one\ntwo", False)


def test_the_end_of_an_array_read_from_its_middle_gives_its_whole_messages() -> None:
    whole = body(*[f"message {i}\r\n" for i in range(50)])
    end = whole[len(whole) // 2 + 7 :]  # starts mid-message
    last = read_tail(end, partial=True, max_lines=5, max_chars=2500)
    assert last.text.splitlines() == [f"message {i}" for i in range(45, 50)] and last.truncated


def test_the_mask_runs_before_the_cut() -> None:
    last = read_tail(body("a\nb\nc"), partial=False, max_lines=2, max_chars=100, mask=lambda t: t.replace("b", "*"))
    assert last.text == "*\nc"


@pytest.mark.parametrize(
    ("content", "partial", "reason"),
    [
        (b"<html>Access Denied</html>", False, "not JSON"),
        (b'{"message": "an object"}', False, "not an array"),
        (b"\x00\x01\x02binary\xff\xfe" * 100, True, "holds no JSON messages"),
        (json.dumps([{"message": "\x00\x01\x02\x03\x04\x05" * 50}]).encode(), False, "binary"),
        (b'[{"message": "' + b"\xff\xfe\xfd" * 400 + b'"}]', False, "binary"),
    ],
    ids=["not-json", "json-object", "binary-bytes", "control-characters", "invalid-utf-8"],
)
def test_output_that_is_not_a_readable_log_says_why(content: bytes, partial: bool, reason: str) -> None:
    with pytest.raises(LogTailUnavailable, match=reason):
        read_tail(content, partial=partial, max_lines=20, max_chars=2500)


def test_a_few_invalid_utf_8_bytes_in_a_log_are_replaced_not_fatal() -> None:
    content = b'[{"message": "caf\xe9 ok\\r\\nnext line\\r\\n"}]'
    assert read_tail(content, partial=False, max_lines=20, max_chars=2500).text == "caf\ufffd ok\nnext line"


def test_messages_skips_entries_that_are_not_objects() -> None:
    assert messages(b'[1, {"message": "a"}, null, {"type": "out"}]', partial=False) == "a"
