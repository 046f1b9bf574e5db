"""`web` and `worker` (the Procfile's lines), and `run`: both, with an embedded Redis."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import click
import structlog

from config.settings import MAX_WEB_PROCESSES
from service.cli import instance
from service.cli.common import EXIT_FAILURE, clear_errors, fail, load_settings, require_redis
from workers.connection import warn_weak_tls
from workers.durability import ensure_durable

log = structlog.get_logger("service.cli")


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
@clear_errors
def web(workers: int | None) -> None:
    """Serve the webhook receiver (uvicorn, httptools with header limits, uvloop) on $PORT."""
    from service.cli.web_server import serve_web

    settings = load_settings()
    settings.require_webhook_secrets()
    ensure_port_free(settings.host, settings.port)
    warn_weak_tls(settings, log=log)
    redis = require_redis(settings)
    ensure_durable(redis, allow_eviction=settings.redis_allow_eviction, log=log)
    redis.close()  # each web process opens its own
    serve_web(settings, processes=workers or settings.web_concurrency)


@click.command()
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@clear_errors
def worker(burst: bool) -> None:
    """Run WORKER_CONCURRENCY RQ workers (threads, with the scheduler) on the events queue."""
    from workers.supervisor import run_worker

    settings = load_settings()
    require_redis(settings)
    if not run_worker(settings, burst=burst):
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

    The workers read the routes file again when it changes (saved, and still for 0.2 s) and
    when this process gets SIGHUP; a terminal that hangs up stops it, as Ctrl-C does.
    """
    from service.cli.embedded_redis import EmbeddedRedis
    from service.cli.routes_watch import RoutesWatch
    from workers.routes_file import load_routes

    settings = load_settings()
    # every mistake it can catch, before any child starts: one place says what to do
    settings.require_webhook_secrets()
    ensure_port_free(settings.host, settings.port)
    load_routes(settings.routes_file, settings.environ)
    if settings.redis_url:
        require_redis(settings).close()
    env = dict(settings.environ)  # the children read the same environment, with the Redis to use
    embedded = None
    if not settings.redis_url:
        embedded = EmbeddedRedis()
        env["REDIS_URL"] = embedded.start()
        click.echo(f"circleci-events: started {embedded.describe()}", err=True)
    # so that `events`, `dead-letters` and `send-test-event` in another shell find this instance
    local = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    secret = str(settings.webhook_secrets[0]) if settings.webhook_secrets else None
    instance.record(
        settings,
        redis_url=env["REDIS_URL"],
        webhook_url=f"http://{local}:{settings.port}/webhooks/circleci",
        secret=secret,
    )
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
    processes = [subprocess.Popen([*command, "web"], env=env, start_new_session=True)]
    workers = [
        subprocess.Popen([*command, "worker"], env=env, start_new_session=True, preexec_fn=ignore_hangup)
        for _ in range(settings.worker_count)
    ]
    processes += workers
    click.echo(
        f"circleci-events: receiving on http://{settings.host}:{settings.port}/webhooks/circleci "
        f"with {settings.worker_count} workers; Ctrl-C stops",
        err=True,
    )
    try:
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.2)
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
        if embedded is not None:
            embedded.stop()
    failed = [p for p in processes if p.returncode not in (0, -signal.SIGTERM, None)]
    if failed and not stopping:
        sys.exit(EXIT_FAILURE)
