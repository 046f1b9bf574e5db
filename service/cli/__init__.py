"""The `circleci-events` command line.

Each command's module is imported only when that command runs (or when `--help` lists them
all): the modules behind `run` and `demo` pull in Starlette, Jinja and every handler, which
`events list` or `dead-letters show` have no use for, and every command paid for them at start.
"""

from __future__ import annotations

import importlib

import click

from config.version import version

# name -> "module:attribute", in the order `--help` lists them
COMMANDS = {
    "web": "service.cli.processes:web",
    "worker": "service.cli.processes:worker",
    "run": "service.cli.processes:run",
    "api": "service.cli.api:api",
    "webhooks": "service.cli.webhooks:webhooks",
    "check-config": "service.cli.check_config:check_config",
    "preview": "service.cli.preview:preview",
    "send-test-event": "service.cli.send_test_event:send_test_event",
    "events": "service.cli.events:events",
    "dead-letters": "service.cli.dead_letters:dead_letters",
    "demo": "service.cli.demo:demo",
    "simulator": "service.cli.simulators:simulator",
    "sink": "service.cli.simulators:sink",
    "slack-simulator": "service.cli.simulators:slack_simulator",
}


class LazyGroup(click.Group):
    """A group whose subcommands are `COMMANDS` entries, imported by name when asked for
    (click's documented pattern for lazily loaded subcommands)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *super().list_commands(ctx)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, attribute = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            raise RuntimeError(f"{COMMANDS[cmd_name]} is not the command {cmd_name!r}")  # a typo in COMMANDS
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version(), "--version", prog_name="circleci-events", message="%(prog)s %(version)s")
def main() -> None:
    """Receive CircleCI webhooks, enrich them and route them to the teams that act on them."""


__all__ = ["main"]
