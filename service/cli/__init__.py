"""The `circleci-events` command line."""

from __future__ import annotations

import click

from config.version import version
from service.cli.api import api
from service.cli.check_config import check_config
from service.cli.dead_letters import dead_letters
from service.cli.demo import demo
from service.cli.events import events
from service.cli.preview import preview
from service.cli.processes import run, web, worker
from service.cli.send_test_event import send_test_event
from service.cli.simulators import simulator, sink, slack_simulator
from service.cli.webhooks import webhooks


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version(), "--version", prog_name="circleci-events", message="%(prog)s %(version)s")
def main() -> None:
    """Receive CircleCI webhooks, enrich them and route them to the teams that act on them."""


for command in (
    web,
    worker,
    run,
    api,
    webhooks,
    check_config,
    preview,
    send_test_event,
    events,
    dead_letters,
    demo,
    simulator,
    sink,
    slack_simulator,
):
    main.add_command(command)

__all__ = ["main"]
