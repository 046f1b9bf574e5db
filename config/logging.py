"""structlog set-up: configure once per process; JSON in production, console on a terminal.

Every log line carries what is bound with `structlog.contextvars.bind_contextvars`
(request_id in the web process, event_id and job_id in the workers). Our own lines go
straight to stderr through structlog (the standard library's path cost a sixth of a webhook
request's CPU); records of other libraries (uvicorn, rq) get the same processors and renderer.
"""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

from config.clock import add_timestamp


def configure_logging(*, log_format: str = "json", log_level: str = "INFO") -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        add_timestamp,
    ]
    renderer: structlog.types.Processor
    own: structlog.types.Processor
    factory: structlog.WriteLoggerFactory | structlog.BytesLoggerFactory
    if log_format == "console":
        renderer = own = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        factory = structlog.WriteLoggerFactory(file=sys.stderr)
    else:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
        own = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = structlog.BytesLoggerFactory(file=sys.stderr.buffer)

    structlog.configure(
        processors=[*shared, own],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(log_level)),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
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
