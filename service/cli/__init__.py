"""The `circleci-events` command line."""

from __future__ import annotations

import click

from service.cli.api import api
from service.cli.processes import run, web, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Receive CircleCI webhooks, enrich them and route them to the teams that act on them."""


for command in (web, worker, run, api):
    main.add_command(command)

__all__ = ["main"]
