"""`web` and `worker` (the Procfile's lines), and `run`: both, with an embedded Redis."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

import click
import structlog

from config.settings import MAX_WEB_PROCESSES
from service.cli import instance
from service.cli.common import EXIT_FAILURE, clear_errors, fail, load_settings, require_redis
from workers.connection import connect, warn_weak_tls
from workers.durability import ensure_durable

log = structlog.get_logger("service.cli")

# `run` starts its web and workers with it: it has said the Redis's risks once for all of them.
UNDER_RUN = click.option("--under-run", is_flag=True, hidden=True)


def ensure_port_free(host: str, port: int) -> None:
    """One line and exit 1 when the web could not listen (uvicorn would log five lines and exit 3)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                fail(f"cannot listen on {host}:{port}: the port is in use (another circleci-events web, or "
                     "another program); stop it or set PORT to a free port")  # fmt: skip
            fail(f"cannot listen on {host}:{port}: {exc.strerror}; check HOST and PORT")


@click.command()
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WEB_PROCESSES),
    default=None,
    help="Web processes sharing the port, one per core (default: WEB_CONCURRENCY, else 1).",
)
@UNDER_RUN
@clear_errors
def web(workers: int | None, under_run: bool) -> None:
    """Serve the webhook receiver (uvicorn, httptools with header limits, uvloop) on $PORT."""
    from service.cli.web_server import serve_web

    settings = load_settings()
    settings.require_webhook_secrets()
    ensure_port_free(settings.host, settings.port)
    if not under_run:
        warn_weak_tls(settings, log=log)
    redis = require_redis(settings)
    ensure_durable(redis, allow_eviction=settings.redis_allow_eviction, log=log, warn=not under_run)
    redis.close()  # each web process opens its own
    serve_web(settings, processes=workers or settings.web_concurrency)


@click.command()
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@UNDER_RUN
@clear_errors
def worker(burst: bool, under_run: bool) -> None:
    """Run WORKER_CONCURRENCY RQ workers (threads, with the scheduler) on the events queue."""
    from workers.supervisor import run_worker

    settings = load_settings()
    require_redis(settings)
    if not run_worker(settings, burst=burst, redis_warnings=not under_run):
        raise SystemExit(1)


def has_terminal() -> bool:
    """Whether this process has a controlling terminal (a terminal that hangs up takes it away)."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


def ignore_hangup() -> None:
    """A worker's `preexec_fn`: SIGHUP ignored until the worker takes it (a reload), not fatal while it starts."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


@click.command()
@clear_errors
def run() -> None:
    """Web, workers and the scheduler in one command; an embedded Redis when REDIS_URL is unset.

    It says what it starts as it starts it, then, once the web answers and every worker has
    registered, where to send webhooks and how to send a test event. The workers read the
    routes file again when it changes (saved, and still for 0.2 s) and when this process gets
    SIGHUP; a terminal that hangs up stops it, as Ctrl-C does.
    """
    from service.cli.embedded_redis import EmbeddedRedis
    from service.cli.readiness import Readiness, ready_lines
    from service.cli.routes_watch import RoutesWatch
    from workers.routes_file import load_routes

    began = time.monotonic()
    settings = load_settings()
    # every mistake it can catch, before any child starts: one place says what to do
    settings.require_webhook_secrets()
    ensure_port_free(settings.host, settings.port)
    load_routes(settings.routes_file, settings.environ)
    env = dict(settings.environ)  # the children read the same environment, with the Redis to use
    embedded = None
    if settings.redis_url:
        client = require_redis(settings)
        # said here once, not by the web and each worker (they run with --under-run)
        warn_weak_tls(settings, log=log)
        ensure_durable(client, allow_eviction=settings.redis_allow_eviction, log=log)
        say(f"using your Redis at {instance.redis_shown(settings.redis_url)} (REDIS_URL)")
    else:
        embedded = EmbeddedRedis()
        env["REDIS_URL"] = embedded.start()
        say(f"warning: started {embedded.describe()}")
        client = connect(replace(settings, redis_url=env["REDIS_URL"]))
    # so that `events`, `dead-letters` and `send-test-event` in another shell find this instance
    local = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base_url = f"http://{local}:{settings.port}"
    webhook_url = f"{base_url}/webhooks/circleci"
    secret = str(settings.webhook_secrets[0]) if settings.webhook_secrets else None
    instance.record(settings, redis_url=env["REDIS_URL"], webhook_url=webhook_url, secret=secret)
    command = [sys.executable, "-m", "service.cli"]
    watch = RoutesWatch(settings.routes_file)  # before the workers read it: a change while they start counts
    terminal = has_terminal()
    stopping = reload = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    def hangup(*_: Any) -> None:
        nonlocal stopping, reload
        if terminal and not has_terminal():
            stopping = True  # the terminal hung up (closed): stop, as before, rather than run on unseen
        else:
            reload = True  # `kill -HUP`: passed on to the workers

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hangup)
    # Own sessions: Ctrl-C reaches only this process, which stops the workers before Redis.
    web_process = subprocess.Popen([*command, "web", "--under-run"], env=env, start_new_session=True)
    say(f"started web (pid {web_process.pid}) on {base_url}")
    workers = [
        subprocess.Popen([*command, "worker", "--under-run"], env=env, start_new_session=True, preexec_fn=ignore_hangup)
        for _ in range(settings.worker_count)
    ]
    processes = [web_process, *workers]
    pids = ", ".join(str(p.pid) for p in workers)
    say(
        f"started {len(workers)} worker{'s' if len(workers) != 1 else ''} (pid {pids}), each running up to "
        f"{settings.worker_concurrency} jobs at once, routes from {settings.routes_file}"
    )
    readiness: Readiness | None = Readiness(client, base_url, [p.pid for p in workers])
    try:
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.2)
            if readiness is not None and readiness.check():
                readiness = None
                seconds = time.monotonic() - began
                for line in ready_lines(webhook_url=webhook_url, secrets=len(settings.webhook_secrets),
                                        address=f"{local}:{settings.port}", seconds=seconds,
                                        console=settings.admin_token is not None,
                                        feed=settings.feed_token is not None):  # fmt: skip
                    say(line)
            if watch.changed():
                log.info("routes_file_changed", routes_file=settings.routes_file, workers=len(workers))
                reload = True
            if reload and not stopping:
                reload = False
                for p in workers:
                    p.send_signal(signal.SIGHUP)
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:  # a worker may finish its jobs for its shutdown grace
            try:
                p.wait(timeout=settings.worker_shutdown_grace_seconds + 5)
            except subprocess.TimeoutExpired:
                p.kill()
        instance.forget(settings)
        client.close()
        if embedded is not None:
            embedded.stop()
    failed = [p for p in processes if p.returncode not in (0, -signal.SIGTERM, None)]
    if failed and not stopping:
        sys.exit(EXIT_FAILURE)


def say(line: str) -> None:
    """A line of `run`'s progress, on stderr with the children's logs; nothing once the terminal
    has hung up (writing to it fails with EIO) while `run` stops."""
    with contextlib.suppress(OSError):
        click.echo(f"circleci-events: {line}", err=True)
