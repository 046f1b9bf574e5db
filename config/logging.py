"""structlog set-up: configure once per process; JSON in production, console on a terminal.

Every log line carries what is bound with `structlog.contextvars.bind_contextvars`
(request_id in the web process, event_id and job_id in the workers). Our own lines go
straight to stderr through structlog (the standard library's path cost a sixth of a webhook
request's CPU); records of other libraries (uvicorn, rq) get the same processors and renderer.

Whatever logger wrote a line, the process's `REDACTOR` removes every configured secret from it
as the last step before rendering: the settings' secrets are given here, the worker adds each
handler's (URLs, routing keys, signing secrets) when it loads the routes. httpx and httpcore
log each request's URL at INFO and DEBUG (a chat webhook's URL is its credential), and slack_sdk
logs every Web API answer at DEBUG (e-mail addresses, profiles from users.lookupByEmail), so they
are kept at WARNING whatever LOG_LEVEL says.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

import orjson
import structlog

from config.clock import add_timestamp
from config.redaction import Redactor

REDACTOR = Redactor()
QUIET_LIBRARIES = ("httpx", "httpcore", "slack_sdk")
# Every JSON line starts with these keys, in this order, whichever library wrote it; `logger`
# is the standard library logger's name for other libraries' lines, OWN_LOGGER for ours.
FIRST_KEYS = ("timestamp", "level", "role", "logger", "event")
OWN_LOGGER = "circleci-events"


def _one_shape(_: Any, __: str, event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
    event_dict.setdefault("logger", OWN_LOGGER)
    shaped = {key: event_dict[key] for key in FIRST_KEYS if key in event_dict}
    shaped.update(event_dict)  # the first keys keep their place, the rest follow in their order
    return shaped


def _json_line(value: Any, **kwargs: Any) -> str:
    """orjson for the standard library's records too: the same separators and encoding as ours."""
    return orjson.dumps(value, **kwargs).decode()


def chatter_level(log_level: str) -> str:
    """The level for a library's per-job chatter (RQ's "Job OK", "result is kept", "Listening on"):
    WARNING and up, unless LOG_LEVEL asks for DEBUG. One event's life reads in our own INFO lines."""
    return (
        "DEBUG" if log_level == "DEBUG" else logging.getLevelName(max(logging.WARNING, logging.getLevelName(log_level)))
    )


def configure_logging(
    *, log_format: str = "json", log_level: str = "INFO", secrets: Iterable[str] = (), role: str | None = None
) -> None:
    """`role`: what this process is (web, worker, run, a command), on every line whoever wrote it."""
    REDACTOR.add(secrets)

    def add_role(_: Any, __: str, event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
        if role:
            event_dict.setdefault("role", role)
        return event_dict

    shared: list[structlog.types.Processor] = [
        add_role,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        add_timestamp,
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.types.Processor
    own: structlog.types.Processor
    factory: structlog.WriteLoggerFactory | structlog.BytesLoggerFactory
    shape: list[structlog.types.Processor] = []
    if log_format == "console":
        renderer = own = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        factory = structlog.WriteLoggerFactory(file=sys.stderr)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json_line)
        own = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        shape = [_one_shape]
        factory = structlog.BytesLoggerFactory(file=sys.stderr.buffer)

    structlog.configure(
        processors=[*shared, REDACTOR, *shape, own],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(log_level)),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, REDACTOR, *shape, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(log_level)
    # uvicorn's access log repeats what our own request line says, without the request id
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error", "rq.worker"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # "Started server process", "Waiting for application startup", ...: web_started says it once
    logging.getLogger("uvicorn.error").setLevel(chatter_level(log_level))
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(log_level)))
