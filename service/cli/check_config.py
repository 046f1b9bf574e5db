"""`circleci-events check-config [ROUTES_FILE]`: validate the routes file and show what it resolves to."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

from config.errors import ConfigurationError
from service.cli.common import clear_errors, emit, load_settings
from service.cli.routes_view import handler_row, read_routes, subscription_row


@click.command("check-config")
@click.argument("routes_file", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--placeholders",
    is_flag=True,
    help="Give every ${VAR} that is not set a dummy value of the right shape (for CI, without the secrets).",
)
@clear_errors
def check_config(routes_file: str | None, as_json: bool, placeholders: bool) -> None:
    """Validate ROUTES_FILE (default: $ROUTES_FILE) and print its handlers, subscriptions and alerts.

    With --placeholders, a `${VAR}` that is not set takes a dummy value (a URL under
    `.invalid`, a 32-character routing key, ...), so CI checks the file without the secrets.
    Secrets are never printed: URLs show their scheme and host, keys and secrets `[redacted]`.
    Exits 2 listing every mistake in the file, a line each with its file, line, handler or
    subscription and key; with --json, stdout still has the JSON: `valid` false and the
    `problems`.
    """
    file = routes_file
    try:
        settings = load_settings(quiet=True)
        file = routes_file or str(settings.routes_file)
        path, routes = read_routes(routes_file, settings, placeholders=placeholders)
    except ConfigurationError as exc:
        if as_json:  # the lines on stderr and the exit code 2 follow
            problems = exc.details.get("problems") or [exc.message]
            click.echo(json.dumps({"file": file, "valid": False, "problems": problems}, indent=2))
        raise
    handlers = [handler_row(h) for h in routes.handlers.values()]
    subscriptions = [subscription_row(s) for s in routes.subscriptions]
    alerts = asdict(routes.alerts) if routes.alerts is not None else None
    if as_json:
        shown: dict[str, Any] = {"file": str(path), "valid": True, "handlers": handlers}
        shown["subscriptions"] = subscriptions
        shown["alerts"] = alerts
        if placeholders:
            shown["placeholders"] = list(routes.placeholders)
        click.echo(json.dumps(shown, indent=2))
        return
    click.echo(f"{path}: valid; {len(handlers)} handlers, {len(subscriptions)} subscriptions")
    if routes.placeholders:
        click.echo(f"placeholders (not set here): {', '.join(routes.placeholders)}")
    click.echo()
    emit(
        [
            {
                **h,
                "can": ", ".join(h["can"]) or None,
                "options": " ".join(f"{k}={v}" for k, v in h["options"].items()) or None,
            }
            for h in handlers
        ],
        ["name", "type", "can", "options", "line"],
        as_json=False,
    )
    click.echo()
    rows = [
        {
            **s,
            "subscription": s["name"],
            "handlers": ", ".join(s["handlers"]),
            "match": "; ".join(f"{k}: {', '.join(v)}" for k, v in s["match"].items()) or "every event",
        }
        for s in subscriptions
    ]
    emit(rows, ["subscription", "handlers", "match", "line"], as_json=False)
    click.echo()
    if alerts is None:
        click.echo("alerts: none (an alerts: section names handlers told about dead letters and a refused token)")
    else:
        every = f"at most one message each every {alerts['interval_seconds']} s"
        click.echo(f"alerts: {', '.join(alerts['handlers'])} ({every}; line {alerts['line']})")
