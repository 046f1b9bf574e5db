"""What every command shares: exit codes, settings, one-line errors, tables or JSON."""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import wraps
from typing import Any, NoReturn

import click
import redis

from config.errors import CircleCIAPIError, CircleCIEventsError, ConfigurationError, RedisUnavailable
from config.logging import configure_logging
from config.settings import Settings
from config.suggestion import did_you_mean
from service.cli import instance
from workers.connection import connect, describe_failure

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def command_of(context: click.Context | None) -> str | None:
    """The command a process runs, without the program's name: `web`, `events show`."""
    names = []
    while context is not None and context.parent is not None:
        names.append(context.info_name or "")
        context = context.parent
    return " ".join(reversed(names)) or None


def load_settings(*, quiet: bool = False, role: str | None = None) -> Settings:
    """Settings from the environment, logging configured (to WARNING for `quiet` commands); `role`
    names the process where no command line does (a process that uvicorn's manager started)."""
    settings = Settings.from_environ()
    context = click.get_current_context(silent=True)
    configure_logging(
        log_format=settings.log_format,
        log_level="WARNING" if quiet else settings.log_level,
        secrets=settings.secret_values(),
        # the command: web, worker, run, "events show", ... (every line of a process says which it is)
        role=role or command_of(context),
    )
    return settings


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"circleci-events: {printable(message, newlines=False)}", err=True)
    sys.exit(code)


# Bidirectional overrides reorder what a terminal shows (a "Trojan source" branch name).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str, *, newlines: bool = True) -> str:
    """`text` safe for a terminal: control characters (an escape sequence in a branch name could
    retitle the window or rewrite the screen) and bidi overrides shown as `\\x1b`-style escapes."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if (char == "\n" and newlines) or char == "\t":
            out.append(char)
        elif not char.isprintable() and (unicodedata.category(char) == "Cc" or char in _BIDI or char == "\n"):
            out.append(char.encode("unicode_escape").decode())
        else:
            out.append(char)
    return "".join(out)


def echo(text: str = "") -> None:
    """Print a line made of stored or fetched data (event fields, API answers)."""
    click.echo(printable(text))


def clear_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures end in one line that says what to do and the right exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigurationError as exc:
            problems = exc.details.get("problems") or [exc.message]
            for problem in problems[:-1]:
                click.echo(f"circleci-events: configuration error: {printable(problem, newlines=False)}", err=True)
            more = f" ({len(problems)} mistakes in all)" if len(problems) > 1 else ""
            fail(f"configuration error: {problems[-1]}{more}", EXIT_USAGE)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, RedisUnavailable) as exc:
            fail(f"cannot reach Redis ({describe_failure(exc)}); check REDIS_URL and that Redis runs")
        except redis.exceptions.ResponseError as exc:  # e.g. SELECT of a database the server does not have
            fail(f"Redis refused a command ({exc}); check REDIS_URL: its database number, user and password")
        except instance.InstanceUnclear as exc:
            fail(exc.message, EXIT_USAGE)
        except CircleCIAPIError as exc:
            fail(exc.message)
        except CircleCIEventsError as exc:
            fail(exc.message)

    return wrapper


# Every command that may use the Redis of a `run` on this machine takes --instance to choose one.
instance_option = click.option(
    instance.INSTANCE_OPTION,
    "instance_pid",
    type=int,
    metavar="PID",
    help="Which `circleci-events run` on this machine to use, by its pid (needed when several run).",
)


def require_redis(settings: Settings, *, instance_pid: int | None = None) -> redis.Redis:
    """REDIS_URL's Redis, else the one of the `circleci-events run` on this machine (saying so):
    the one `instance_pid` names, or the only one running (several: InstanceUnclear)."""
    url = settings.redis_url
    if not url or instance_pid is not None:
        running = instance.choose(settings, instance_pid)
        if running is None:
            raise ConfigurationError(
                "REDIS_URL is not set and no `circleci-events run` (make run) is running here: point REDIS_URL "
                "at Redis, e.g. redis://127.0.0.1:6379/0"
            )
        click.echo(f"circleci-events: using {running.describe()}", err=True)
        url = running.redis_url
    client = connect(replace(settings, redis_url=url))
    client.ping()
    return client


def one_of(choices: Sequence[str], noun: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback: the option's value (or each of them) is one of `choices`, else one line
    naming them with a did-you-mean and exit 2 (`--status 'failure' is not a status: the statuses
    are ...; did you mean 'failed'?`)."""

    def check(context: click.Context, param: click.Parameter, value: Any) -> Any:
        for item in value if isinstance(value, tuple) else [value]:
            if item is not None and item not in choices:
                option = param.opts[0] if param.opts else param.name
                kinds = noun.split()[-1] + ("es" if noun.endswith("s") else "s")
                hint = did_you_mean(item, choices)
                fail(f"{option} {item!r} is not a {noun}: the {kinds} are {', '.join(choices)}{hint}", EXIT_USAGE)
        return value

    return check


def emit(rows: Sequence[Mapping[str, Any]], columns: Iterable[str], *, as_json: bool) -> None:
    """A listing: JSON when asked, else an aligned table of `columns`."""
    if as_json:
        click.echo(json.dumps(list(rows), indent=2, default=str))
        return
    columns = list(columns)
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        click.echo("(none)")


def emit_one(value: Mapping[str, Any], *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(value, indent=2, default=str))
        return
    width = max((len(k) for k in value), default=0)
    for key, item in value.items():
        click.echo(f"{key.ljust(width)}  {_cell(item)}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return printable(str(value), newlines=False)
