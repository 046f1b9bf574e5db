"""The worker's side of a Slack button click: `workers.actions.act(click)`."""

from __future__ import annotations

from typing import Any

import structlog

log = structlog.get_logger("workers.actions")


def act(click: dict[str, Any]) -> dict[str, Any]:
    """Not acting yet: the click is logged."""
    log.info("action_received", action=click.get("action"), slack_user=click.get("user_id"))
    return {"outcome": "ignored"}
