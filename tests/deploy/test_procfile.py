"""The Procfile (Heroku, Dokku, foreman, honcho): `web` and `worker`, each a command that exists."""

from __future__ import annotations

from pathlib import Path

import click

from service.cli import main

ROOT = Path(__file__).parents[2]


def test_the_procfile_runs_the_web_and_worker_commands() -> None:
    lines = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert lines == {"web": "circleci-events web", "worker": "circleci-events worker"}
    for command in lines.values():
        program, name = command.split()
        assert program == "circleci-events" and main.get_command(click.Context(main), name) is not None
