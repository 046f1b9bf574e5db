"""`simulator` and `sink`: the local stand-ins for CircleCI's API and for chat services.

Try a routes file without accounts: point CIRCLECI_API_URL at the simulator and the handlers'
URLs at the sink, which prints what each would have shown.
"""

from __future__ import annotations

import click

from service.simulators.circleci import create_simulator
from service.simulators.circleci_data import Dataset
from service.simulators.sink import create_sink, describe
from service.simulators.slack import create_slack_simulator
from service.simulators.slack_click import DEFAULT_SIGNING_SECRET
from service.simulators.slack_workspace import Message, Workspace, readable

LOOPBACK = "127.0.0.1"


@click.command()
@click.option("--host", default=LOOPBACK, show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option("--latency-ms", type=click.FloatRange(0), default=0.0, show_default=True, help="Added to every answer.")
@click.option("--page-size", type=click.IntRange(1), default=20, show_default=True)
@click.option("--token", default="sim-token", show_default=True, help="The Circle-Token it expects; '' accepts any.")
@click.option("--empty", is_flag=True, help="Start without the example dataset.")
def simulator(host: str, port: int, latency_ms: float, page_size: int, token: str, empty: bool) -> None:
    """A local CircleCI API v2 (at / and /api/v2), with faults and call counts under /_sim."""
    import uvicorn

    app = create_simulator(
        Dataset() if empty else None, page_size=page_size, latency=latency_ms / 1000, token=token or None
    )
    uvicorn.run(app, host=host, port=port, log_level="info")


@click.command()
@click.option("--host", default=LOOPBACK, show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8766, show_default=True)
@click.option("--print", "show", is_flag=True, help="Print each message received, readably.")
def sink(host: str, port: int, show: bool) -> None:
    """A chat sink: records every message posted to it (any path), fails on demand under /_sink."""
    import uvicorn

    on_receive = (lambda received: click.echo(describe(received))) if show else None
    uvicorn.run(create_sink(on_receive=on_receive), host=host, port=port, log_level="warning")


@click.command("slack-simulator")
@click.option("--host", default=LOOPBACK, show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8767, show_default=True)
@click.option("--token", default="xoxb-sim-token", show_default=True, help="The bot token it accepts.")
@click.option(
    "--signing-secret",
    default=DEFAULT_SIGNING_SECRET,
    show_default=True,
    help="What its button clicks are signed with.",
)
@click.option("--print", "show", is_flag=True, help="Print each message posted or updated, readably.")
def slack_simulator(host: str, port: int, token: str, signing_secret: str, show: bool) -> None:
    """A local Slack Web API at /api/ (chat.postMessage, chat.update, users.lookupByEmail,
    conversations.open): #ci (C0CI), ada@example.com (U0ADA), faults and messages under /_slack."""
    import uvicorn

    workspace = Workspace.example(token)

    def on_change(method: str, message: Message | None) -> None:
        if message is not None:
            where = f"reply in {message.thread_ts}" if message.thread_ts else "message"
            text = readable(message.text, workspace)
            click.echo(f"{method} {message.channel} {message.ts} ({where}): {text}")

    app = create_slack_simulator(workspace, on_change=on_change if show else None, signing_secret=signing_secret)
    uvicorn.run(app, host=host, port=port, log_level="warning")
