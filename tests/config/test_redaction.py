"""Secrets out of every log line, whatever wrote it, and out of error excerpts."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from config.redaction import REDACTED, Redactor, option_secrets, url_secrets

SLACK = "https://hooks.slack.com/services/T0AAA1111/B0BBB2222/xoxTOKENvalue1234567890ab"
TEAMS = (
    "https://prod-42.westus.logic.azure.com:443/workflows/0123456789abcdef0123456789abcdef/triggers/manual/paths/"
    "invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFG"
)
DISCORD = "https://discord.com/api/webhooks/123456789012345678/DiScOrDtOkEn-abcdefghijklmnopqrstuvwxyz0123456789"


@pytest.mark.parametrize(
    "url, echoed",
    [
        (SLACK, "xoxTOKENvalue1234567890ab"),  # a bare token segment
        (SLACK, "/services/T0AAA1111/B0BBB2222/xoxTOKENvalue1234567890ab"),
        (TEAMS, "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFG"),  # the sig= value alone
        (TEAMS, "0123456789abcdef0123456789abcdef"),
        (DISCORD, "DiScOrDtOkEn-abcdefghijklmnopqrstuvwxyz0123456789"),
    ],
)
def test_every_credential_part_of_a_chat_url_is_redacted(url: str, echoed: str) -> None:
    text = f"server said: invalid token {echoed} (request {url})"
    redacted = Redactor(url_secrets(url)).redact(text)
    assert echoed not in redacted
    assert url not in redacted
    assert REDACTED in redacted


@pytest.mark.parametrize(
    ("configured", "text", "shown"),
    [
        (SLACK, f"posting to {SLACK}", "posting to https://hooks.slack.com/[redacted]"),
        (TEAMS, TEAMS, "https://prod-42.westus.logic.azure.com:443/[redacted]?[redacted]"),
        (DISCORD, DISCORD, "https://discord.com/[redacted]"),
        ("https://hooks.example.com:8443/in/HookToken0123456789", "https://hooks.example.com:8443/in/HookToken0123456789",
         "https://hooks.example.com:8443/[redacted]"),
        ("https://bot:pa55w0rd@hooks.example.com:8443/x", "https://bot:pa55w0rd@hooks.example.com:8443/x",
         "https://bot:[redacted]@hooks.example.com:8443/x"),
        ("https://hooks.example.com/in?key=hunter", "https://hooks.example.com/in?key=hunter",
         "https://hooks.example.com/in?[redacted]"),
        ("https://hooks.example.com/in?api_key=abc&v=2", "?api_key=abc&v=2", "?[redacted]"),
        # no credential in the URL: nothing of it is cut out of other text
        ("https://ci.example.com:8443/x", "https://ci.example.com:8443/x", "https://ci.example.com:8443/x"),
        ("https://ci.example.com:8443/x", "https://app.circleci.com/pipelines/gh/o/r/1/xyz",
         "https://app.circleci.com/pipelines/gh/o/r/1/xyz"),
        ("https://audit.example/ci", "https://ci.example.com:8443/x https://output.circle-artifacts.com/0/ci/junit.xml",
         "https://ci.example.com:8443/x https://output.circle-artifacts.com/0/ci/junit.xml"),
        (TEAMS, "sp=/triggers/manual/run api-version=2016-06-01", "sp=/triggers/manual/run api-version=2016-06-01"),
    ],
    ids=["slack", "teams", "discord", "port-kept", "password", "key-named", "key-named-short",
         "no-credential-url", "no-credential-other-url", "short-path", "teams-words"],
)  # fmt: skip
def test_a_url_loses_its_credential_and_keeps_scheme_host_and_port(configured: str, text: str, shown: str) -> None:
    assert Redactor(url_secrets(configured)).redact(text) == shown


def test_a_url_that_cannot_be_parsed_is_a_secret_whole() -> None:
    assert url_secrets("https://hooks.example.com:port/x") == ["https://hooks.example.com:port/x"]


def test_ordinary_words_of_a_url_stay_readable() -> None:
    redactor = Redactor(url_secrets(TEAMS))
    assert redactor.redact("triggers manual invoke api-version 2016-06-01 sv 1.0") == (
        "triggers manual invoke api-version 2016-06-01 sv 1.0"
    )


def test_a_secret_containing_another_is_removed_whole() -> None:
    redactor = Redactor(["abc", "abcdef"])
    assert redactor.redact("xx abcdef yy abc") == f"xx {REDACTED} yy {REDACTED}"


def test_secrets_with_regex_characters_are_literal() -> None:
    redactor = Redactor(["a.b*c", "(x|y)"])
    assert redactor.redact("a.b*c aXbc (x|y) x") == f"{REDACTED} aXbc {REDACTED} x"


def test_option_secrets_covers_urls_keys_and_signing_secrets() -> None:
    found = option_secrets({"url": SLACK, "secret": "sign-me", "routing_key": "R0UT1NGKEY", "template": "x"})
    assert {"sign-me", "R0UT1NGKEY", "xoxTOKENvalue1234567890ab"} <= set(found)
    assert Redactor(found).redact(SLACK) == "https://hooks.slack.com/[redacted]"
    assert "x" not in found


def test_structured_values_are_walked() -> None:
    redactor = Redactor(["hunter2"])
    assert redactor.redact_value({"a": ["x hunter2", ("hunter2",)], "n": 3}) == {
        "a": [f"x {REDACTED}", [REDACTED]],
        "n": 3,
    }


LOGGING_SCRIPT = """
import logging, sys
import httpx, structlog
from config.logging import REDACTOR, configure_logging
configure_logging(log_format=sys.argv[1], log_level="DEBUG", secrets=["ADMIN-s3cr3t"])
REDACTOR.add(["xoxTOKENvalue1234567890ab"])
url = "https://hooks.slack.com/services/T0/B0/xoxTOKENvalue1234567890ab"
logging.getLogger("httpx").info("HTTP Request: POST %s", url)
logging.getLogger("httpcore.connection").debug("connect_tcp.started host=%s", url)
logging.getLogger("rq.worker").info("job for %s", url)
logging.getLogger("some.library").warning("token ADMIN-s3cr3t in %s", url)
structlog.get_logger("ours").info("delivery_rejected", body_excerpt="no such hook xoxTOKENvalue1234567890ab",
                                  nested={"k": ["ADMIN-s3cr3t"]})
try:
    raise RuntimeError("failed posting to " + url)
except RuntimeError:
    structlog.get_logger("ours").exception("send_failed")
"""


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_no_logger_writes_a_configured_secret(log_format: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOGGING_SCRIPT, log_format], capture_output=True, text=True, timeout=30, check=True
    )
    output = done.stderr
    assert "xoxTOKENvalue1234567890ab" not in output
    assert "ADMIN-s3cr3t" not in output
    assert "HTTP Request" not in output, "httpx's request lines stay below WARNING"
    assert "connect_tcp" not in output
    for kept in ("job for", "token [redacted]", "delivery_rejected", "send_failed", "RuntimeError"):
        assert kept in output, kept
    if log_format == "json":
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert {line["event"] for line in lines} >= {"delivery_rejected", "send_failed"}


def test_httpx_is_quiet_even_at_debug() -> None:
    from config.logging import configure_logging

    configure_logging(log_format="json", log_level="DEBUG")
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("httpcore").getEffectiveLevel() == logging.WARNING


def test_slack_sdk_debug_lines_stay_out_of_the_logs_even_at_debug() -> None:
    """slack_sdk logs every API answer at DEBUG: e-mail addresses, profiles (issue 23 item 6)."""
    from config.logging import configure_logging

    configure_logging(log_format="json", log_level="DEBUG")
    assert not logging.getLogger("slack_sdk.web.base_client").isEnabledFor(logging.INFO)


SHAPE_SCRIPT = """
import logging, structlog
from config.logging import configure_logging
configure_logging(log_format="json", log_level="INFO", role="worker")
structlog.get_logger("ours").info("event_delivered", handler="ops", attempts=1)
logging.getLogger("rq.worker").warning("Worker %s: warm shutdown requested", "w1")
logging.getLogger("uvicorn.error").info("Started server process [%d]", 7)
logging.getLogger("uvicorn.error").error("Exception in ASGI application")
"""


def test_every_json_line_has_one_shape_whoever_wrote_it() -> None:
    done = subprocess.run([sys.executable, "-c", SHAPE_SCRIPT], capture_output=True, text=True, timeout=30, check=True)
    lines = done.stderr.splitlines()
    assert len(lines) == 3, done.stderr
    parsed = [json.loads(line) for line in lines]
    assert [list(p)[:5] for p in parsed] == [["timestamp", "level", "role", "logger", "event"]] * 3
    assert [(p["logger"], p["level"], p["role"]) for p in parsed] == [
        ("circleci-events", "info", "worker"), ("rq.worker", "warning", "worker"), ("uvicorn.error", "error", "worker")
    ]  # fmt: skip
    assert parsed[0]["event"] == "event_delivered" and parsed[0]["attempts"] == 1
    assert "Started server process" not in done.stderr, "uvicorn's start-up chatter is below INFO"
    assert all(
        line == json.dumps(p, separators=(",", ":"), ensure_ascii=False) for line, p in zip(lines, parsed, strict=True)
    )
